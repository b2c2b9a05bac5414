"""Running the backend as a subprocess and reading its JSON-lines events (docs/protocol.md).

No bpy here: the headless CLI and the modal operator both drive the backend through this.
"""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class BackendFailed(RuntimeError):
    """The backend reported an error or ended badly; `message` is meant for the user."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def backend_python() -> str:
    """The Python that runs the backend.

    The IKOL_BACKEND_PYTHON variable when set, else the project's development environment
    (`.venv` beside this add-on's folder) when there is one, else this very interpreter.
    """
    chosen = os.environ.get("IKOL_BACKEND_PYTHON")
    if chosen:
        return chosen
    dev_env = REPO_ROOT / ".venv" / "bin" / "python"
    if dev_env.exists():
        return str(dev_env)
    return sys.executable


def estimate_command(python: str, inputs: list[Path], output: Path, fov: float | None) -> list[str]:
    command = [python, "-m", "ikol_backend", "estimate", *map(str, inputs), "-o", str(output),
               "--events"]
    if fov is not None:
        command += ["--fov", str(fov)]
    return command


def run_backend(command: list[str], on_event: Callable[[dict], None] | None = None) -> dict:
    """Run the backend to the end (no shell) and return its `result` event.

    Every event is passed to `on_event` as it arrives. Raises BackendFailed with the
    backend's own message on an `error` event or a non-zero exit.
    """
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackendFailed("backend_missing", f"Cannot start the backend ({command[0]}): {exc}")
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr), daemon=True)
    reader.start()
    result: dict | None = None
    error: dict | None = None
    for line in process.stdout:
        event = parse_event(line)
        if event is None:
            continue
        if on_event:
            on_event(event)
        if event["event"] == "result":
            result = event
        elif event["event"] == "error":
            error = event
    process.wait()
    reader.join()
    if error is not None:
        raise BackendFailed(error.get("code", "internal"), error.get("message", "unknown error"))
    if process.returncode != 0 or result is None:
        tail = "".join(stderr_lines[-20:]).strip()
        raise BackendFailed(
            "backend_crashed", f"The backend ended with exit code {process.returncode}.\n{tail}"
        )
    return result


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
