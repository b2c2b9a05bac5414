"""`ikol-backend doctor`: can this environment run the backend?

Checks the Python version, the packages the backend imports (their versions), the compute device,
MediaPipe's BlazePose model files (present, and loading), and the SMPL model file and IKOL
checkpoint when given. Each check is ok or failed, with a message for people. Prints a table, or
one JSON line with `--json`: {"ok": bool, "checks": [{"name", "ok", "message", "version"}]}.
Exits 1 when a check fails.

`python -m ikol_backend.doctor` runs the same checks without the rest of the command line, so it
reports a broken torch or numpy instead of failing to start (the Blender add-on uses it).
Heavy packages are imported inside the checks for the same reason.
"""

import argparse
import importlib
import importlib.metadata
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .options import DEVICES

# (name shown, module imported, distribution its version is read from when the module has none)
PACKAGES: tuple[tuple[str, str, str], ...] = (
    ("ikol_backend", "ikol_backend", "ikol-backend"),
    ("torch", "torch", "torch"),
    ("numpy", "numpy", "numpy"),
    ("mediapipe", "mediapipe", "mediapipe"),
    ("opencv", "cv2", "opencv-contrib-python"),
    ("smplx", "smplx", "smplx"),
    ("roma", "roma", "roma"),
    ("scipy", "scipy", "scipy"),
)

# BlazePose "full" (model_complexity=1): the person detector and the landmark model.
BLAZEPOSE_FILES = (
    "modules/pose_detection/pose_detection.tflite",
    "modules/pose_landmark/pose_landmark_full.tflite",
)


@dataclass
class Check:
    """One finding: `version` is set for the checks that find one."""

    name: str
    ok: bool
    message: str
    version: str | None = None


def _first_line(exc: Exception) -> str:
    """The first line of an exception's message (the table shows one line per check)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def check_python() -> Check:
    """Python 3.11 or newer (Blender 4.2-5.0 use 3.11; the backend needs at least that)."""
    version = platform.python_version()
    ok = sys.version_info >= (3, 11)
    message = f"{version} at {sys.executable}" + ("" if ok else " (3.11 or newer needed)")
    return Check("python", ok, message, version)


def check_package(name: str, module_name: str, distribution: str) -> Check:
    """Import one package and report its version."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the finding (ImportError, ABI errors...)
        return Check(name, False, f"does not import: {type(exc).__name__}: {_first_line(exc)}")
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown version"
    return Check(name, True, version, version)


def check_device(device: str) -> Check:
    """Where the backend will run (`device`: one of DEVICES); a failure when the GPU asked for
    is missing or unusable."""
    try:
        import torch
    except Exception as exc:
        return Check("device", False, f"torch does not import: {_first_line(exc)}")
    if device == "cpu":
        return Check("device", True, f"CPU (chosen), {torch.get_num_threads()} threads")
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return _check_cuda(torch)
    if device in ("auto", "mps") and torch.backends.mps.is_available():
        return _check_mps(torch)
    built = f"torch built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only torch"
    if device == "cuda":
        return Check("device", False, f"CUDA asked for, but torch sees no CUDA device ({built})")
    if device == "mps":
        return Check("device", False, "MPS asked for, but torch sees no Apple GPU (MPS needs "
                                      "Apple silicon and a torch built with it)")
    return Check("device", True, f"no CUDA device or Apple GPU ({built}): the CPU will be used, "
                                 f"{torch.get_num_threads()} threads")


def _check_cuda(torch: Any) -> Check:
    """CUDA runs a small product; the devices and their memory."""
    try:
        probe = torch.ones(64, 64, device="cuda")
        float((probe @ probe).sum())
    except Exception as exc:
        return Check("device", False, f"CUDA is present but fails to run: {_first_line(exc)}")
    names = ", ".join(
        f"{torch.cuda.get_device_name(i)} "
        f"({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
        for i in range(torch.cuda.device_count())
    )
    return Check("device", True, f"CUDA {torch.version.cuda}: {names}", torch.version.cuda)


def _check_mps(torch: Any) -> Check:
    """Apple's GPU (MPS) runs a small product."""
    try:
        probe = torch.ones(64, 64, device="mps")
        float((probe @ probe).sum())
    except Exception as exc:
        return Check("device", False, f"MPS is present but fails to run: {_first_line(exc)}")
    return Check("device", True, "MPS: Apple's GPU")


def check_blazepose() -> Check:
    """The model files are in the mediapipe package, and BlazePose loads and runs on a frame."""
    try:
        import mediapipe
        import numpy as np

        from .frontends.blazepose import BlazePose
    except Exception as exc:
        return Check("blazepose", False, f"mediapipe does not import: {_first_line(exc)}")
    package = Path(mediapipe.__file__).parent
    missing = [name for name in BLAZEPOSE_FILES if not (package / name).is_file()]
    if missing:
        return Check("blazepose", False, f"model files missing from {package}: {', '.join(missing)}")
    start = time.perf_counter()
    try:
        with BlazePose() as pose:
            pose.detect(np.zeros((256, 256, 3), dtype=np.uint8))
    except Exception as exc:
        return Check("blazepose", False, f"model files present but do not load: {_first_line(exc)}")
    return Check("blazepose", True,
                 f"model files present; loads and runs ({time.perf_counter() - start:.1f} s)")


def check_open_body() -> Check:
    """anny is installed (the open body) and whether its data are made yet (without importing
    anny: that takes a second)."""
    from .body.anny_data import anny_version, data_path

    version = anny_version()
    if not version:
        return Check("open_body", False, "anny is not installed: no open body (the capsule body "
                                         "and SMPL files still work)")
    path = data_path()
    state = (f"data ready ({path})" if path.is_file()
             else "its data are made on first use, about two minutes (or: ikol-backend prepare)")
    return Check("open_body", True, f"anny {version}; {state}", version)


def check_smpl(path: Path) -> Check:
    """The SMPL-format model file loads through the backend's own loader."""
    if not path.exists():
        return Check("smpl", False, f"{path}: not found")
    if path.is_dir():
        return Check("smpl", False, f"{path}: is a folder, not an SMPL model file")
    try:
        from .body.smpl_file import load_smpl

        body = load_smpl(path)
    except Exception as exc:
        return Check("smpl", False, _naming(path, _first_line(exc)))
    vertices = body.mesh.v_template.shape[0]
    return Check("smpl", True, f"{path}: {body.gender}, {vertices} vertices")


def check_checkpoint(path: Path) -> Check:
    """The IKOL checkpoint loads into the IKOL24 network (`weights_only=True`: no code runs)."""
    from .errors import BackendError

    try:
        from .network.checkpoint import open_checkpoint

        loaded = open_checkpoint(path, "cpu")
    except BackendError as exc:  # the loader's message names the file and what is wrong
        return Check("checkpoint", False, exc.message)
    except Exception as exc:  # torch does not import, for one
        return Check("checkpoint", False, f"{path}: {_first_line(exc)}")
    tensors = loaded.network.state_dict().values()
    numbers = sum(tensor.numel() for tensor in tensors if tensor.is_floating_point())
    ignored = f"; {len(loaded.unused_keys)} unused keys ignored" if loaded.unused_keys else ""
    return Check("checkpoint", True,
                 f"{path}: IKOL24 (ResNet-34), {len(tensors)} tensors, "
                 f"{numbers / 1e6:.1f} million numbers{ignored}")


def _naming(path: Path, message: str) -> str:
    """`message` about the file `path`, naming it once, in full, at the start."""
    if str(path) in message:
        return message
    if message.startswith(path.name):
        return str(path) + message[len(path.name):]
    return f"{path}: {message}"


def run_checks(device: str = "auto", smpl: Path | None = None,
               checkpoint: Path | None = None) -> list[Check]:
    """All checks, in the order they are shown."""
    checks = [check_python()]
    checks += [check_package(*package) for package in PACKAGES]
    checks += [check_device(device), check_blazepose(), check_open_body()]
    if smpl is not None:
        checks.append(check_smpl(smpl))
    if checkpoint is not None:
        checks.append(check_checkpoint(checkpoint))
    return checks


def format_report(checks: list[Check]) -> str:
    """A plain-text table, one line per check, and a closing verdict."""
    width = max(len(check.name) for check in checks)
    lines = [f"{'ok' if check.ok else 'FAIL':4}  {check.name:{width}}  {check.message}"
             for check in checks]
    failed = [check.name for check in checks if not check.ok]
    lines.append(f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed
                 else "All checks passed.")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="the device to check for (default auto: CUDA, else Apple's GPU "
                             "(MPS), else the CPU)")
    parser.add_argument("--smpl", type=Path, help="an SMPL-format model file to try loading")
    parser.add_argument("--checkpoint", type=Path, help="an IKOL checkpoint (.pth) to try loading")


def report(args: argparse.Namespace) -> bool:
    """Run the checks from parsed arguments and print the report; True when all passed."""
    checks = run_checks(args.device, args.smpl, args.checkpoint)
    ok = all(check.ok for check in checks)
    if args.json:
        document: dict[str, Any] = {"ok": ok, "checks": [asdict(check) for check in checks]}
        print(json.dumps(document), flush=True)
    else:
        print(format_report(checks), flush=True)
    return ok


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `doctor` on the `ikol-backend` command line (run(args, events) protocol)."""
    parser = subparsers.add_parser("doctor", help="check that this environment can run the backend")
    add_arguments(parser)
    parser.set_defaults(run=lambda args, events: None if report(args) else sys.exit(1))
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m ikol_backend.doctor`: the checks alone; 0 when all passed, else 1."""
    parser = argparse.ArgumentParser(prog="python -m ikol_backend.doctor",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return 0 if report(parser.parse_args(argv)) else 1


if __name__ == "__main__":
    sys.exit(main())
