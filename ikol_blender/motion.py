"""Reading motion files (layout in docs/protocol.md) and turning SMPL rotations into bone rotations.

No bpy here: numpy only, so it is tested without Blender.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .smpl import NUM_JOINTS, Y_UP_TO_Z_UP


class MotionFileError(ValueError):
    """The file is missing, unreadable or not a motion file; the message says which."""


@dataclass(frozen=True)
class Motion:
    """SMPL motion in the model frame (Y up, metres, axis-angle in radians).

    Attributes:
        poses: (N, 24, 3) axis-angle per joint, relative to the parent; joint 0 global.
        trans: (N, 3) root translation.
        betas: (10,) body shape.
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

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]


def load_motion(path: Path) -> Motion:
    """Read a motion `.npz` (ours or AMASS-style); raise MotionFileError naming what is wrong."""
    if not path.is_file():
        raise MotionFileError(f"Motion file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise MotionFileError(f"Not a readable .npz motion file: {path} ({exc})") from exc
    missing = [key for key in ("poses", "trans") if key not in arrays]
    if missing:
        raise MotionFileError(f"{path.name} is not a motion file: missing {', '.join(missing)}")
    poses = np.asarray(arrays["poses"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] < NUM_JOINTS * 3:
        raise MotionFileError(f"{path.name}: 'poses' must be (N, 72 or more), not {poses.shape}")
    frames = poses.shape[0]
    trans = np.asarray(arrays["trans"], dtype=np.float64)
    if trans.shape != (frames, 3):
        raise MotionFileError(f"{path.name}: 'trans' must be ({frames}, 3), not {trans.shape}")
    size = arrays.get("image_size")
    return Motion(
        poses=poses[:, : NUM_JOINTS * 3].reshape(frames, NUM_JOINTS, 3),
        trans=trans,
        betas=np.asarray(arrays.get("betas", np.zeros(10)), dtype=np.float64)[:10],
        frame_rate=float(arrays.get("mocap_framerate", 30.0)),
        rest_joints=arrays.get("rest_joints"),
        joints=arrays.get("joints"),
        valid=np.asarray(arrays.get("valid", np.ones(frames, dtype=bool)), dtype=bool),
        camera_intrinsics=arrays.get("camera_intrinsics"),
        image_size=None if size is None else (int(size[0]), int(size[1])),
        source=str(arrays.get("source", "")),
        frame_index=arrays.get("frame_index"),
    )


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
