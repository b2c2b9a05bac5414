"""Running a child process without blocking, and ending it with everything it started in
bounded time. No bpy here.

Every child the add-on starts (the backend, the installer's steps, the doctor) runs through
ProcessRun, in a process group of its own, so the whole group can be ended: first asked to
stop, so they can clean up, then killed, whatever ignores the request. On Linux and macOS the
group is a new session, asked with SIGTERM and killed with SIGKILL; on Windows, which has
neither, it is CREATE_NEW_PROCESS_GROUP, asked with a console break (CTRL_BREAK_EVENT: the
backend takes it as an interrupt and removes its temporary files) and killed with `taskkill
/T /F` (the process and everything it started). Neither wait is open-ended, so Cancel,
unregistering the add-on or quitting Blender never hangs on a child that will not stop. (The
backend has the same for its own children in its process_group module: neither side imports
the other.)
"""

import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Any, TextIO

GRACE_S = 0.5  # seconds a child gets to end after being asked to stop
KILL_WAIT_S = 5.0  # seconds to wait for the system to end it once killed
CREATE_NEW_PROCESS_GROUP = 0x00000200  # Windows' flag (subprocess defines it only there)
CTRL_BREAK_EVENT = 1  # Windows' console break (signal defines it only there)


class ProcessRun:
    """One command (no shell, stdin closed) in its own process group, read without blocking.

    With `log` (an open text file) the command writes its stdout and stderr there itself;
    otherwise threads read them: stdout's lines come from poll(), stderr's are kept in
    `stderr_lines`. `env`: the command's environment (None: this process's).
    """

    def __init__(self, command: list[str], log: TextIO | None = None,
                 env: dict[str, str] | None = None):
        """Start the command; OSError when it cannot start."""
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log or subprocess.PIPE,
            stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True, env=env,
            **group_options(),
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        self._readers = [] if log else [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=lambda: self.stderr_lines.extend(self._process.stderr),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line)

    @property
    def pid(self) -> int:
        """The process's id, also its process group's."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: the signal that ended it); None while it runs."""
        return self._process.poll()

    def poll(self, timeout: float = 0.0) -> list[str]:
        """stdout lines that arrived since the last call, waiting up to `timeout` s for the
        first (none with a log)."""
        lines = []
        try:
            lines.append(self._lines.get(timeout=timeout) if timeout else self._lines.get_nowait())
            while True:
                lines.append(self._lines.get_nowait())
        except queue.Empty:
            pass
        return lines

    @property
    def done(self) -> bool:
        """The process has ended and all its output has been read (poll until it is empty)."""
        return (self._process.poll() is not None and self._lines.empty()
                and not any(reader.is_alive() for reader in self._readers))

    def cancel(self, grace: float = GRACE_S) -> None:
        """End the process's whole group: asked to stop, killed after `grace` s (bounded)."""
        end_process_group(self._process, grace)
        for reader in self._readers:
            reader.join(timeout=1.0)


def group_options() -> dict[str, Any]:
    """Popen keyword arguments that start the child in a new process group."""
    if sys.platform == "win32":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def end_process_group(process: subprocess.Popen, grace: float = GRACE_S) -> bool:
    """End `process` and its process group: asked to stop, then killed after `grace` seconds.

    Returns within about `grace` + KILL_WAIT_S seconds; True once the process has ended.
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
    """Kill (`kill`) the process's group, or ask it to stop."""
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
