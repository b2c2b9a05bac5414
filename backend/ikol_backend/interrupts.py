"""SIGINT and SIGTERM (the add-on's Cancel), and on Windows SIGBREAK (the Cancel there: a
console break to the backend's process group), end the backend like Ctrl-C: a
KeyboardInterrupt that unwinds, so partial files are removed, and then exit 130 with an
`interrupted` error.

Installed first thing, before torch and MediaPipe load (a second or two), so a signal during
start-up ends the same way. A signal that lands while a module is being imported ends the
process at once instead: raised inside a compiled module's initialisation (pybind11, as torch
and MediaPipe use), a KeyboardInterrupt aborts the interpreter, and an import has no partial
file to remove. Standard library only, to stay quick to import.
"""

import os
import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130
SIGNALS = (signal.SIGINT, signal.SIGTERM)
if sys.platform == "win32":
    SIGNALS += (signal.SIGBREAK,)  # a console break: how the add-on's Cancel reaches us there


def _inside_an_import(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    if _inside_an_import(frame):
        exit_interrupted("--events" in sys.argv[1:])
    raise KeyboardInterrupt


def end_on_signals() -> None:
    """From now on SIGNALS raise KeyboardInterrupt in the main thread."""
    for number in SIGNALS:
        signal.signal(number, _raise_interrupt)


def ignore_signals() -> None:
    """Once an interrupt is being handled: further signals must not cut the report short."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def exit_interrupted(events_requested: bool) -> None:
    """End at once with exit 130 after the `interrupted` error, for an interrupt that came
    while modules load (the events module itself may not be loaded yet)."""
    ignore_signals()
    from .events import Events  # standard library only

    events = Events(json_lines=events_requested)
    events.out = sys.__stdout__  # the process's stdout, also where a batch points sys.stdout away
    events.emit("error", code="interrupted", message="Interrupted.")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
