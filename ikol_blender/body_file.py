"""The body file (docs/protocol.md): made by `ikol-backend body`, read here into numpy.

The add-on never reads SMPL model files nor imports anny; the backend does, and writes what a
Blender mesh needs: the open body (anny's skin, the default) or the SMPL mesh. No bpy here.
Positions are in the SMPL model frame (Y up, X to the body's left, Z forward, metres).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend_process import run_backend
from .motion import read_arrays
from .smpl import NUM_BETAS, NUM_JOINTS

NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)  # 207
BODY_FILE_NAME = "body.npz"


class BodyFileError(ValueError):
    """The body file is missing, unreadable or malformed; the message says which."""


@dataclass(frozen=True)
class BodyMesh:
    """A skinned mesh for Blender with linear shape keys: the SMPL mesh or the open body.

    Attributes:
        v_template: (V, 3) rest vertices with every shape key at 0, metres.
        faces: (F, 3) vertex indices of each triangle.
        weights: (V, 24) skinning weight of each vertex per SMPL joint.
        shapedirs: (V, 3, K) vertex offset per unit of each shape key (SMPL: the 10 betas).
        posedirs: (V, 3, 207) pose blend shapes (offset per element of the rotation matrices of
            joints 1-23 minus the identity, row by row), or None.
        shape_names: the K shape keys' names (SMPL: Shape000-Shape009; the open body: anny's
            phenotypes).
        shape_values: (K,) the values the keys are set to (the open body's fitted phenotypes),
            or None for SMPL, whose keys take the motion's betas.
        joint_template: (24, 3) rest joints with every key at 0 (the open body), or None.
        joint_shapedirs: (24, 3, K) rest joint move per unit of each key (the open body), or None.
    """

    v_template: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray | None
    shape_names: tuple[str, ...] = tuple(f"Shape{beta:03d}" for beta in range(NUM_BETAS))
    shape_values: np.ndarray | None = None
    joint_template: np.ndarray | None = None
    joint_shapedirs: np.ndarray | None = None


@dataclass(frozen=True)
class Body:
    """A body for the scene: the rest skeleton for `betas`, and the mesh (the open body's or,
    when an SMPL model file was given, SMPL's).

    Attributes:
        rest_joints: (24, 3) rest joint positions for `betas`, metres.
        betas: (10,) the body shape the rest joints were made for.
        gender: "neutral", "male" or "female".
        model_name: the SMPL file's name, "anny" (the open body) or "default_skeleton".
        mesh: the mesh, or None (the default skeleton alone).
    """

    rest_joints: np.ndarray
    betas: np.ndarray
    gender: str
    model_name: str
    mesh: BodyMesh | None


def body_command(python: str, smpl_path: Path | None, betas: np.ndarray, output: Path,
                 pose_correctives: bool = False, skeleton_only: bool = False) -> list[str]:
    """The backend's command line that writes a body file (no shell is involved): the SMPL
    mesh with `smpl_path`, else the open body, or with `skeleton_only` the default skeleton's
    rest joints alone."""
    # Fixed-point betas: argparse would take "-1e-05" for an option.
    command = [python, "-m", "ikol_backend", "body", "-o", str(output), "--events",
               "--betas", *(f"{float(b):.9f}" for b in betas)]
    if smpl_path is not None:
        command += ["--smpl", str(smpl_path)]
    if pose_correctives:
        command.append("--pose-correctives")
    if skeleton_only:
        command.append("--skeleton-only")
    return command


def export_body(python: str, smpl_path: Path | None, betas: np.ndarray, out_dir: Path,
                pose_correctives: bool = False, skeleton_only: bool = False) -> Path:
    """Run the backend to write the body file for `betas` (10,) into `out_dir`; its path.

    With `smpl_path` the body has the SMPL mesh, else it is the open body (with
    `skeleton_only`, the default skeleton alone). Raises BackendFailed with the backend's
    message (e.g. a file that is not an SMPL model).
    """
    output = out_dir / BODY_FILE_NAME
    run_backend(body_command(python, smpl_path, betas, output, pose_correctives, skeleton_only))
    return output


def load_body(path: Path) -> Body:
    """Read a body file; raise BodyFileError naming what is wrong."""
    arrays = read_arrays(path, BodyFileError, "body")
    rest_joints = _array(arrays, "rest_joints", (NUM_JOINTS, 3), path)
    betas = _array(arrays, "betas", (NUM_BETAS,), path)
    mesh = None
    if "v_template" in arrays:
        v_template = _array(arrays, "v_template", (None, 3), path)
        count = v_template.shape[0]
        faces = _array(arrays, "faces", (None, 3), path, dtype=np.int64)
        if faces.size and (faces.min() < 0 or faces.max() >= count):
            raise BodyFileError(f"{path.name}: 'faces' refers to vertices outside 0..{count - 1}")
        shape: dict = {}
        if "shape_names" in arrays:  # the open body: named keys, their values, joints per key
            if arrays["shape_names"].dtype.kind != "U" or arrays["shape_names"].ndim != 1:
                raise BodyFileError(f"{path.name}: 'shape_names' is not a list of names")
            names = tuple(str(name) for name in arrays["shape_names"])
            keys = len(names)
            shape = dict(
                shape_names=names,
                shape_values=_array(arrays, "shape_values", (keys,), path),
                joint_template=_array(arrays, "joint_template", (NUM_JOINTS, 3), path),
                joint_shapedirs=_array(arrays, "joint_shapedirs", (NUM_JOINTS, 3, keys), path),
            )
        mesh = BodyMesh(
            v_template=v_template,
            faces=faces,
            weights=_array(arrays, "weights", (count, NUM_JOINTS), path),
            shapedirs=_array(arrays, "shapedirs",
                             (count, 3, len(shape.get("shape_names", ())) or NUM_BETAS), path),
            posedirs=(_array(arrays, "posedirs", (count, 3, NUM_POSE_FEATURES), path)
                      if "posedirs" in arrays else None),
            **shape,
        )
    return Body(rest_joints=rest_joints, betas=betas, gender=str(arrays.get("gender", "neutral")),
                model_name=str(arrays.get("body_model", path.stem)), mesh=mesh)


def _array(arrays: dict[str, np.ndarray], key: str, shape: tuple[int | None, ...], path: Path,
           dtype: type = np.float64) -> np.ndarray:
    """arrays[key] checked for its shape (None: any length) and finite numbers."""
    if key not in arrays:
        raise BodyFileError(f"{path.name} is not a body file: it has no '{key}'")
    value = arrays[key]
    if value.dtype.kind not in "fiu":
        raise BodyFileError(f"{path.name}: '{key}' is not numeric ({value.dtype})")
    if value.ndim != len(shape) or any(s is not None and g != s for g, s in zip(value.shape, shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise BodyFileError(f"{path.name}: '{key}' has shape {value.shape}, not {want}")
    if not np.isfinite(value).all():
        raise BodyFileError(f"{path.name}: '{key}' has values that are not finite numbers")
    return value.astype(dtype)
