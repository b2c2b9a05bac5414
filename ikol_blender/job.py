"""An estimation job: the backend runs, staged files and progress; no bpy, no scene.

Shared by the Estimate Pose operator (stepped from a timer), its blocking form, the headless
CLI and the tests. The job runs `ikol-backend estimate` into a private temporary folder and,
when a mesh is wanted, then `ikol-backend body` for the estimated body shape (the mesh the
scene is built with: the open body, or the SMPL mesh with an SMPL model file; none for the
capsule body). Both run without blocking the caller; cancel() ends either.
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .backend_process import BackendFailed, BackendRun
from .body_file import BODY_FILE_NAME, Body, body_command, load_body
from .motion import Motion, MotionFileError, load_motion
from .options import EstimateOptions, estimate_command


@dataclass
class Progress:
    stage: str = "Estimating"
    done: int = 0
    total: int = 0
    frames_per_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class EstimateJob:
    """Runs the backend on `inputs`, then makes the body for the estimated shape.

    Args:
        python: the backend's interpreter (backend_process.backend_python()).
        inputs: image files, one image folder or one movie file.
        mesh: whether the scene wants a body mesh (no body file is made without one).
        pose_correctives: ask the body file for SMPL's pose blend shapes (shape keys).
        capsules: without an SMPL model file, the capsule body (no body file) instead of the
            open body.
    """

    def __init__(self, python: str, inputs: list[Path],
                 options: EstimateOptions = EstimateOptions(), mesh: bool = True,
                 pose_correctives: bool = False, capsules: bool = False):
        self.folder = Path(tempfile.mkdtemp(prefix="ikol-"))
        self.motion_path = self.folder / "motion.npz"
        self.body_path = self.folder / BODY_FILE_NAME
        self.progress = Progress()
        self._options = options
        self._python = python
        self._make_body = mesh and (options.smpl is not None or not capsules)
        self._pose_correctives = pose_correctives
        self._motion: Motion | None = None
        self.summary: dict = {}
        self._making_body = False
        try:
            self._run = BackendRun(estimate_command(self._python, inputs, self.motion_path, options))
        except BaseException:
            self.cleanup()
            raise

    def step(self, timeout: float = 0.0) -> bool:
        """Take in new events; True once the job has ended (successfully or not)."""
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
        if not self._run.done:
            return False
        if self._making_body or not self._make_body:
            return True
        try:
            motion = self.motion()
        except (BackendFailed, MotionFileError):
            return True  # motion() raises it again for the caller
        self._making_body = True
        self.progress.stage = "Making the body"
        self._run = BackendRun(body_command(self._python, self._options.smpl, motion.mean_betas,
                                            self.body_path, self._pose_correctives))
        return False

    def motion(self) -> Motion:
        """The estimated motion of a finished job; BackendFailed with the backend's message.
        Sets `summary`: the backend's (frames, valid_frames, seconds per stage)."""
        if self._motion is None:
            self.summary = self._run.outcome()["summary"]
            self._motion = load_motion(self.motion_path)
        return self._motion

    def body(self) -> Body | None:
        """The body of a finished job that made one (a mesh wanted, not the capsules), else
        None; BackendFailed or BodyFileError if it could not be made."""
        if not self._make_body:
            return None
        self.motion()
        self._run.outcome()
        return load_body(self.body_path)

    def cancel(self) -> None:
        """End the backend within about a second and remove every temporary file."""
        self._run.cancel()
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
