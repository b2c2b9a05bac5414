"""Child processes in a process group of their own, and ending that whole group, each
platform's way. Standard library only.

POSIX: a new session (`start_new_session`); the group gets SIGTERM, then SIGKILL for whatever
is left. Windows, which has neither sessions nor killpg: CREATE_NEW_PROCESS_GROUP; the group
gets a console break (CTRL_BREAK_EVENT: the backend takes it as an interrupt, see interrupts),
then `taskkill /T /F` ends the process and every process it started.
"""

import os
import signal
import subprocess
import sys
from typing import Any

CREATE_NEW_PROCESS_GROUP = 0x00000200  # Windows' flag (subprocess defines it only there)
CTRL_BREAK_EVENT = 1  # Windows' console break (signal defines it only there)
KILL_WAIT_S = 5.0  # seconds to wait for the system to end the group once it is killed


def group_options() -> dict[str, Any]:
    """Popen keyword arguments that start the child in a new process group."""
    if sys.platform == "win32":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def end_group(process: subprocess.Popen, grace: float) -> None:
    """End `process` and the processes of its group: asked to stop, then killed after `grace`
    seconds, what is left of the group too (whether or not `process` itself has ended). Returns
    within about `grace` + KILL_WAIT_S seconds."""
    for kill, wait in ((False, grace), (True, KILL_WAIT_S)):
        try:
            _signal(process, kill)
        except ProcessLookupError:  # nothing of the group is left
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def _signal(process: subprocess.Popen, kill: bool) -> None:
    if sys.platform != "win32":
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    elif not kill:
        try:
            os.kill(process.pid, CTRL_BREAK_EVENT)
        except OSError:  # no console shared with the child: the kill that follows ends it
            pass
    else:
        try:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=KILL_WAIT_S)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if process.poll() is None:
            process.kill()
