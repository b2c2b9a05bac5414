"""Reading motion files (layout in docs/protocol.md) and turning SMPL rotations into bone rotations.

No bpy here: numpy only, so it is tested without Blender.
"""

import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from .smpl import NUM_BETAS, NUM_JOINTS, Y_UP_TO_Z_UP


class MotionFileError(ValueError):
    """The file is missing, unreadable or not a motion file; the message says which."""


# Widths of `poses` (numbers per frame) -> joints to read: SMPL's 24, or the 22 body joints that
# SMPL-H (AMASS: 52 joints, hands from joint 22 on) and SMPL-X (AMASS: 55 joints, jaw, eyes and
# hands from joint 22 on) share with SMPL; SMPL's hand joints 22 and 23 then stay unrotated.
POSE_WIDTHS = {NUM_JOINTS * 3: NUM_JOINTS, 52 * 3: 22, 55 * 3: 22}
# Limits of motion files (docs/protocol.md): frames (about 55 minutes at 30 fps), bytes a frame
# in any one array (SMPL-X poses in float64 take 1,320), and the size of a JSON file (parsed
# whole: about 40,000 of the backend's frames).
MAX_FRAMES = 100_000
MAX_ROW_BYTES = 2048
MAX_JSON_BYTES = 128_000_000


@dataclass(frozen=True)
class Motion:
    """SMPL motion: axis-angle in radians, metres.

    Attributes:
        poses: (N, 24, 3) axis-angle per joint, relative to the parent; joint 0 global.
        trans: (N, 3) root translation.
        betas: (10,) body shape, or (N, 10) when it changes from frame to frame.
        frame_rate: frames per second of the source.
        rest_joints: (24, 3) rest skeleton the poses were solved on, or None (files made
            elsewhere, such as AMASS).
        joints: (N, 24, 3) posed joints with the translation applied, or None.
        valid: (N,) whether the person was found in each frame.
        camera_intrinsics: (3, 3) pixels, or None.
        image_size: (width, height) pixels, or None.
        source: the footage the motion came from, or "".
        frame_index: (N,) each frame's index in the source (video frame, or place in the
            image list), or None.
        gender: "neutral", "male" or "female", as the file says.
        up_axis: the up axis of the world the root rotation and translation are given in:
            "Y" (the SMPL model frame: this project's files) or "Z" (AMASS and files made
            elsewhere: a Z-up world, as Blender's).
    """

    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    frame_rate: float
    rest_joints: np.ndarray | None
    joints: np.ndarray | None
    valid: np.ndarray
    camera_intrinsics: np.ndarray | None
    image_size: tuple[int, int] | None
    source: str
    frame_index: np.ndarray | None = None
    gender: str = "neutral"
    up_axis: str = "Y"

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    @property
    def mean_betas(self) -> np.ndarray:
        """(10,) the body shape: the betas, or their mean when they change per frame."""
        return self.betas if self.betas.ndim == 1 else self.betas.mean(axis=0)


def load_motion(path: Path) -> Motion:
    """Read a motion file: ours (`.npz`, or `.json` with the same keys), or AMASS-style (SMPL,
    SMPL-H or SMPL-X poses, 16 betas, `mocap_framerate` or `mocap_frame_rate`); raise
    MotionFileError naming what is wrong.

    Nothing is unpickled: an optional key stored as a pickled object is left out. At most
    MAX_FRAMES frames, checked from the arrays' headers before any is loaded. Files with a
    `format_version` (this project's) are in the SMPL model frame (up_axis "Y"); others are
    taken to be in a Z-up world, as AMASS is (up_axis "Z").
    """
    arrays = read_arrays(path, max_rows=MAX_FRAMES, required=("poses", "trans"))
    missing = [key for key in ("poses", "trans") if key not in arrays]
    if missing:
        raise MotionFileError(f"{path.name} is not a motion file: missing {', '.join(missing)}")
    poses = _numbers(arrays, "poses", path)
    widths = ", ".join(map(str, POSE_WIDTHS))
    if poses.ndim != 2 or poses.shape[1] not in POSE_WIDTHS:
        raise MotionFileError(f"{path.name}: 'poses' must be (N, {widths}) (SMPL, SMPL-H or "
                              f"SMPL-X axis-angle), not {poses.shape}")
    frames = poses.shape[0]
    if frames == 0:
        raise MotionFileError(f"{path.name} has no frames")
    joints_read = POSE_WIDTHS[poses.shape[1]]
    smpl_poses = np.zeros((frames, NUM_JOINTS, 3))
    smpl_poses[:, :joints_read] = poses[:, : joints_read * 3].reshape(frames, joints_read, 3)
    trans = _numbers(arrays, "trans", path)
    if trans.shape != (frames, 3):
        raise MotionFileError(f"{path.name}: 'trans' must be ({frames}, 3), not {trans.shape}")
    rest_joints = _numbers(arrays, "rest_joints", path) if "rest_joints" in arrays else None
    if rest_joints is not None and rest_joints.shape != (NUM_JOINTS, 3):
        raise MotionFileError(f"{path.name}: 'rest_joints' must be (24, 3), not {rest_joints.shape}")
    size = arrays.get("image_size")
    return Motion(
        poses=smpl_poses,
        trans=trans,
        betas=_betas(arrays, frames, path),
        frame_rate=_frame_rate(arrays, path),
        rest_joints=rest_joints,
        joints=arrays.get("joints"),
        valid=np.asarray(arrays.get("valid", np.ones(frames, dtype=bool)), dtype=bool),
        camera_intrinsics=arrays.get("camera_intrinsics"),
        image_size=None if size is None else (int(size[0]), int(size[1])),
        source=str(arrays.get("source", "")),
        frame_index=arrays.get("frame_index"),
        gender=_text(arrays.get("gender", "neutral")).lower(),
        up_axis="Y" if "format_version" in arrays else "Z",
    )


def read_arrays(path: Path, error: type[ValueError] = MotionFileError, what: str = "motion",
                max_rows: int | None = None, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of the file (`.npz`, or `.json`: keys to nested lists) that loads without
    unpickling; `error` (`what`: the kind of file, for the message) when the file is missing,
    not readable, damaged, or (with `max_rows`) holds an array of more rows, or more than
    MAX_ROW_BYTES a row; also when a key in `required` is there but unusable (pickled, say)."""
    if not path.is_file():
        raise error(f"{what.capitalize()} file not found: {path}")
    read = _read_json if path.suffix.lower() == ".json" else _read_npz
    arrays, unusable = read(path, error, what, max_rows)
    for key in required:
        if key in unusable:
            raise error(f"{path.name}: '{key}' cannot be read: {unusable[key]}")
    return arrays


def _read_npz(path: Path, error: type[ValueError], what: str,
              max_rows: int | None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays, and why the pickled ones are not; each array's size is checked from its
    header before it is read."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise error(f"Not a readable .npz {what} file: {path} ({exc})") from exc
    arrays: dict[str, np.ndarray] = {}
    unusable: dict[str, str] = {}
    with archive:
        for name in archive.namelist():
            key = name.removesuffix(".npy")
            if key == name:
                continue  # not an array
            shape, dtype = _member(archive, name, error, path, _header)
            _check_size(key, shape, dtype.itemsize, max_rows, error, path, what)
            if dtype.hasobject:
                unusable[key] = "it is stored as pickled Python objects, which are never loaded"
            else:
                arrays[key] = _member(archive, name, error, path, lambda member:
                                      np.lib.format.read_array(member, allow_pickle=False))
    return arrays, unusable


def _member(archive: zipfile.ZipFile, name: str, error: type[ValueError], path: Path,
            read: Callable[[IO[bytes]], Any]) -> Any:
    """`read` of one member (never unpickling); `error` when the member is damaged."""
    try:
        with archive.open(name) as member:
            return read(member)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise error(f"{path.name}: '{name.removesuffix('.npy')}' cannot be read, the file is "
                    f"damaged ({exc})") from exc


def _header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npy member's header claims."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype


def _read_json(path: Path, error: type[ValueError], what: str,
               max_rows: int | None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The keys of a JSON motion file (the backend's `-o NAME.json`) as arrays, and why the
    others are not arrays; the file is at most MAX_JSON_BYTES."""
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise error(f"{path.name} is {size / 1e6:,.0f} MB, more than the "
                    f"{MAX_JSON_BYTES / 1e6:,.0f} MB a JSON {what} file may hold (use .npz)")
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as exc:
        raise error(f"Not a readable JSON {what} file: {path} ({exc})") from exc
    if not isinstance(content, dict):
        raise error(f"Not a JSON {what} file: {path} (it holds no object of named arrays)")
    arrays: dict[str, np.ndarray] = {}
    unusable: dict[str, str] = {}
    for key, value in content.items():
        try:
            array = np.asarray(value)
        except ValueError:  # ragged lists
            array = np.asarray(None)
        if array.dtype.kind not in "biufU":
            unusable[key] = "it is not a regular array of numbers, nor a text"
            continue
        _check_size(key, array.shape, array.dtype.itemsize, max_rows, error, path, what)
        arrays[key] = array
    return arrays, unusable


def _check_size(key: str, shape: tuple[int, ...], itemsize: int, max_rows: int | None,
                error: type[ValueError], path: Path, what: str) -> None:
    """`error` when an array has more than `max_rows` rows or more than MAX_ROW_BYTES a row."""
    if max_rows is None:
        return
    rows = shape[0] if shape else 1
    if rows > max_rows:
        raise error(f"{path.name}: '{key}' holds {rows:,} frames, more than the {max_rows:,} "
                    f"a {what} file may hold")
    if math.prod(shape) * itemsize > max_rows * MAX_ROW_BYTES:
        raise error(f"{path.name}: '{key}' is too large for a {what} file: {shape}")


def _numbers(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    """arrays[key] as float64, checked to hold finite numbers."""
    value = arrays[key]
    if value.dtype.kind not in "fiu" or not np.isfinite(value).all():
        raise MotionFileError(f"{path.name}: '{key}' must hold finite numbers")
    return value.astype(np.float64)


def _betas(arrays: dict[str, np.ndarray], frames: int, path: Path) -> np.ndarray:
    """(10,) or (N, 10): the first 10 betas (AMASS has 16), zeros after fewer; zeros without."""
    if "betas" not in arrays:
        return np.zeros(NUM_BETAS)
    betas = _numbers(arrays, "betas", path)
    if betas.ndim == 2 and betas.shape[0] == frames:
        out = np.zeros((frames, NUM_BETAS))
    elif betas.ndim == 1:
        out = np.zeros(NUM_BETAS)
    else:
        raise MotionFileError(f"{path.name}: 'betas' must be (K,) or ({frames}, K), not {betas.shape}")
    count = min(NUM_BETAS, betas.shape[-1])
    out[..., :count] = betas[..., :count]
    return out


def _frame_rate(arrays: dict[str, np.ndarray], path: Path) -> float:
    """`mocap_framerate` (ours, AMASS SMPL-H) or `mocap_frame_rate` (AMASS SMPL-X); 30 without."""
    for key in ("mocap_framerate", "mocap_frame_rate"):
        if key in arrays:
            rate = _numbers(arrays, key, path)
            if rate.size != 1 or float(rate) <= 0:
                raise MotionFileError(f"{path.name}: '{key}' must be one positive number")
            return float(rate)
    return 30.0


def _text(value: np.ndarray | str) -> str:
    """A string stored as text or as bytes (some AMASS files)."""
    item = np.asarray(value).item() if isinstance(value, np.ndarray) else value
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def bone_rotvecs(poses: np.ndarray, bone_rest: np.ndarray) -> np.ndarray:
    """SMPL joint rotations as rotations of Blender pose bones.

    A pose bone's rotation is expressed in the bone's own rest frame, so the SMPL rotation
    R (model frame) becomes B^T C R C^T B, with C the Y-up to Z-up turn and B the bone's rest
    orientation in armature space. Conjugating a rotation keeps its angle and carries its axis,
    so the axis-angle vector is simply mapped by B^T C.

    Args:
        poses: (N, 24, 3) axis-angle, model frame.
        bone_rest: (24, 3, 3) rest orientation of each bone in the armature's Z-up space.

    Returns:
        (N, 24, 3) axis-angle vectors in each bone's rest frame.
    """
    to_bone = np.transpose(bone_rest, (0, 2, 1)) @ Y_UP_TO_Z_UP  # (24, 3, 3)
    return np.einsum("jab,njb->nja", to_bone, poses)


def root_locations(trans: np.ndarray, root_rest: np.ndarray) -> np.ndarray:
    """(N, 3) model-frame root translation -> the root pose bone's location (its rest frame)."""
    return trans @ Y_UP_TO_Z_UP.T @ root_rest
