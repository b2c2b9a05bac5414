"""Running the backend as a subprocess and reading its JSON-lines events (docs/protocol.md).

No bpy here: the headless CLI and the modal operator both drive the backend through this.
"""

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .processes import ProcessRun

REPO_ROOT = Path(__file__).resolve().parent.parent


class BackendFailed(RuntimeError):
    """The backend reported an error or ended badly; `message` is meant for the user."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def backend_python(selected: str | None = None) -> str:
    """The Python that runs the backend.

    The IKOL_BACKEND_PYTHON variable when set, else `selected` (in Blender: the Python the
    add-on's preferences select, preferences.selected_python()), else the project's development
    environment (`.venv` beside this add-on's folder) when there is one, else this very
    interpreter.
    """
    chosen = os.environ.get("IKOL_BACKEND_PYTHON") or selected
    if chosen:
        return chosen
    dev_env = REPO_ROOT / ".venv" / "bin" / "python"
    if dev_env.exists():
        return str(dev_env)
    return sys.executable


class BackendRun:
    """One backend process, read without blocking: for a modal operator's timer or a loop.

    `process` (processes.ProcessRun) runs it in its own process group, so cancel() ends it and
    anything it started; poll() hands over its events.
    """

    def __init__(self, command: list[str]):
        try:
            self.process = ProcessRun(command)
        except OSError as exc:
            raise BackendFailed(
                "backend_missing", f"Cannot start the backend ({command[0]}): {exc}"
            ) from exc
        self._result: dict | None = None
        self._error: dict | None = None

    def poll(self, timeout: float = 0.0) -> list[dict]:
        """Events that arrived since the last call, waiting up to `timeout` s for the first
        line of output."""
        events = [event for event in map(parse_event, self.process.poll(timeout))
                  if event is not None]
        for event in events:
            if event["event"] == "result":
                self._result = event
            elif event["event"] == "error":
                self._error = event
        return events

    @property
    def done(self) -> bool:
        """The process has ended and all its output has been read (poll until it is empty)."""
        return self.process.done

    def outcome(self) -> dict:
        """The `result` event of a finished run; BackendFailed with the backend's message if
        it failed."""
        if self._error is not None:
            raise BackendFailed(self._error.get("code", "internal"),
                                self._error.get("message", "unknown error"))
        if self.process.returncode != 0 or self._result is None:
            tail = "".join(self.process.stderr_lines[-20:]).strip()
            raise BackendFailed(
                "backend_crashed",
                f"The backend ended with exit code {self.process.returncode}.\n{tail}",
            )
        return self._result

    def cancel(self) -> None:
        """End the backend's whole process group within about a second (processes.py)."""
        self.process.cancel()


def run_backend(command: list[str], on_event: Callable[[dict], None] | None = None) -> dict:
    """Run the backend to the end and return its `result` event.

    Every event is passed to `on_event` as it arrives. Raises BackendFailed with the
    backend's own message on an `error` event or a bad exit.
    """
    run = BackendRun(command)
    try:
        while not run.done:
            for event in run.poll(timeout=0.1):
                if on_event:
                    on_event(event)
    except BaseException:
        run.cancel()
        raise
    return run.outcome()


def parse_event(line: str) -> dict | None:
    """One stdout line -> an event dict, or None for a line that is not an event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
