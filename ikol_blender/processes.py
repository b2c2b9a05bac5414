"""Ending a child process and everything it started, in bounded time. No bpy here.

Children the add-on starts (the backend, the installer's pip) run in their own process group
(`start_new_session=True`), so the whole group can be ended: SIGTERM first, so they can clean
up, then SIGKILL for whatever ignores it. Neither wait is open-ended, so Cancel, unregistering
the add-on or quitting Blender never hangs on a child that will not stop.
"""

import os
import signal
import subprocess

GRACE_S = 0.5  # seconds a child gets to end after SIGTERM
KILL_WAIT_S = 5.0  # seconds to wait for the kernel to end it after SIGKILL


def end_process_group(process: subprocess.Popen, grace: float = GRACE_S) -> bool:
    """End `process` and its process group: SIGTERM, then SIGKILL after `grace` seconds.

    Returns within about `grace` + KILL_WAIT_S seconds; True once the process has ended.
    Where there are no process groups (Windows), the process alone is ended.
    """
    for kill, wait in ((False, grace), (True, KILL_WAIT_S)):
        if process.poll() is not None:
            return True
        try:
            _signal(process, kill)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            return True
        except subprocess.TimeoutExpired:
            continue
    return process.poll() is not None


def _signal(process: subprocess.Popen, kill: bool) -> None:
    """SIGKILL (`kill`) or SIGTERM to the process's group, or to the process on Windows."""
    if hasattr(os, "killpg"):
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    elif kill:
        process.kill()
    else:
        process.terminate()
