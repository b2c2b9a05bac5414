"""An estimation job: backend run, staged files, progress, and the scene built at the end.

Shared by the Estimate Pose operator (stepped from a timer), its blocking form and the tests.
No UI here; the scene is only touched in finish().
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .backend_process import BackendFailed, BackendRun, backend_python, estimate_command
from .motion import Motion, load_motion


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    frames_per_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class EstimateJob:
    """Runs the backend on `inputs` into a private temporary folder."""

    def __init__(self, inputs: list[Path], fov: float | None = None, python: str | None = None):
        self.folder = Path(tempfile.mkdtemp(prefix="ikol-"))
        self.motion_path = self.folder / "motion.npz"
        self.progress = Progress()
        command = estimate_command(python or backend_python(), inputs, self.motion_path, fov)
        try:
            self._run = BackendRun(command)
        except BaseException:
            self.cleanup()
            raise

    def step(self, timeout: float = 0.0) -> bool:
        """Take in new events; True once the backend has ended."""
        for event in self._run.poll(timeout):
            kind = event["event"]
            if kind == "start":
                self.progress.total = int(event.get("frames", 0))
            elif kind == "progress":
                self.progress.done = int(event["done"])
                self.progress.total = int(event["total"])
                self.progress.frames_per_s = float(event.get("frames_per_s", 0.0))
            elif kind == "warning":
                self.progress.warnings.append(str(event.get("message", "")))
        return self._run.done

    def motion(self) -> Motion:
        """The estimated motion of a finished run; BackendFailed with the backend's message."""
        self._run.outcome()
        return load_motion(self.motion_path)

    def cancel(self) -> None:
        """End the backend within about a second and remove every temporary file."""
        self._run.cancel()
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
