"""SMPL facts the add-on needs, and the change from the SMPL model frame to Blender's.

The backend holds the same joint table (ikol_backend.body.tree); a test keeps the two equal.
"""

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)
NUM_JOINTS = len(JOINT_NAMES)
NUM_BETAS = 10  # shape parameters the add-on uses (AMASS files carry 16: the first 10 are read)

# Model frame (Y up) to Blender (Z up): (x, y, z) -> (x, -z, y), a quarter turn about X.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def to_z_up(points: np.ndarray) -> np.ndarray:
    """(..., 3) model-frame points or vectors -> the same in Blender's Z-up frame."""
    return points @ Y_UP_TO_Z_UP.T
