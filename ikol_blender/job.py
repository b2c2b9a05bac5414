"""An estimation job: the backend runs, staged files and progress; no bpy, no scene.

Shared by the Estimate Pose operator (stepped from a timer), its blocking form, the headless
CLI and the tests. The job runs `ikol-backend estimate` into a private temporary folder (with
`people` "all", a folder of one motion file per person) and, when a mesh is wanted, then
`ikol-backend body` for each person's estimated body shape (the mesh the scene is built with:
the open body, or the SMPL mesh with an SMPL model file; none for the capsule body). All run
without blocking the caller, one after another; cancel() ends whichever runs.
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .backend_process import BackendFailed, BackendRun
from .body_file import BODY_FILE_NAME, Body, body_command, load_body
from .motion import Motion, MotionFileError, load_motion
from .options import EstimateOptions, estimate_command

DEVICE_NAMES = {"cpu": "CPU", "cuda": "GPU (CUDA)", "mps": "Apple's GPU (MPS)"}


@dataclass
class Progress:
    stage: str = "Estimating"
    done: int = 0
    total: int = 0
    frames_per_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    people: str = ""  # who was found and who is followed, as the backend says it
    device: str = ""  # where torch ran (the start event's cpu, cuda or mps); empty before

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def device_name(self) -> str:
        """The device for people: "CPU", "GPU (CUDA)", "Apple's GPU (MPS)"."""
        return DEVICE_NAMES.get(self.device, self.device)


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
        self.everyone = options.people == "all"
        # The backend's output: the motion file, or (everyone) the folder of person files.
        self.motion_path = self.folder / ("people" if self.everyone else "motion.npz")
        self.progress = Progress()
        self._options = options
        self._python = python
        self._make_body = mesh and (options.smpl is not None or not capsules)
        self._pose_correctives = pose_correctives
        self._motions: list[Motion] | None = None
        self.summary: dict = {}
        self._bodies_started = 0  # body files asked for so far
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
                self.progress.device = str(event.get("device", ""))
            elif kind == "progress":
                self.progress.done = int(event["done"])
                self.progress.total = int(event["total"])
                self.progress.frames_per_s = float(event.get("frames_per_s", 0.0))
            elif kind == "warning":
                self.progress.warnings.append(str(event.get("message", "")))
            elif kind == "people":
                self.progress.people = str(event.get("message", ""))
        if not self._run.done:
            return False
        if not self._make_body:
            return True
        try:
            motions = self.motions() if self._bodies_started == 0 else self._motions
            if self._bodies_started:
                self._run.outcome()  # the last body's: raises if it failed
        except (BackendFailed, MotionFileError):
            return True  # motions() or bodies() raise it again for the caller
        if self._bodies_started == len(motions):
            return True
        self.progress.stage = ("Making the body" if len(motions) == 1 else
                               f"Making body {self._bodies_started + 1} of {len(motions)}")
        self._run = BackendRun(body_command(
            self._python, self._options.smpl, motions[self._bodies_started].mean_betas,
            self.body_path(self._bodies_started), self._pose_correctives))
        self._bodies_started += 1
        return False

    def body_path(self, person: int) -> Path:
        return self.folder / f"{person}-{BODY_FILE_NAME}"

    def motions(self) -> list[Motion]:
        """The estimated motion of each person of a finished job (one unless `people` is
        "all"); BackendFailed with the backend's message. Sets `summary`: the backend's
        (frames, valid_frames, people found, seconds per stage)."""
        if self._motions is None:
            self.summary = self._run.outcome()["summary"]
            if self.everyone:
                self._motions = [load_motion(self.motion_path / person["file"])
                                 for person in self.summary["people"]]
            else:
                self._motions = [load_motion(self.motion_path)]
        return self._motions

    def motion_files(self) -> list[Path]:
        """The motion files of a finished job, one per person, in order."""
        if not self.everyone:
            return [self.motion_path]
        return [self.motion_path / person["file"] for person in self.summary["people"]]

    def bodies(self) -> list[Body | None]:
        """Each person's body of a finished job that made them (a mesh wanted, not the
        capsules), else Nones; BackendFailed or BodyFileError if one could not be made."""
        motions = self.motions()
        if not self._make_body:
            return [None] * len(motions)
        self._run.outcome()
        return [load_body(self.body_path(person)) for person in range(len(motions))]

    def cancel(self) -> None:
        """End the backend within about a second and remove every temporary file."""
        self._run.cancel()
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
