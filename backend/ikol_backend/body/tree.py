"""The SMPL joint tree: 24 joints plus the five leaf points of the 29-joint convention.

Index order and names follow SMPL. A parent of -1 marks the root.
"""

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)

LEAF_NAMES: tuple[str, ...] = (
    "head_top", "left_middle_tip", "right_middle_tip", "left_bigtoe", "right_bigtoe",
)
LEAF_PARENTS: tuple[int, ...] = (15, 22, 23, 10, 11)

NUM_JOINTS = len(JOINT_NAMES)  # 24
NUM_BETAS = 10  # shape parameters of the body models (SMPL's betas, the default skeleton's)
NUM_POINTS = NUM_JOINTS + len(LEAF_NAMES)  # 29
NUM_BETAS = 10  # body shape parameters
POINT_PARENTS: tuple[int, ...] = PARENTS + LEAF_PARENTS


def children(parents: tuple[int, ...] = POINT_PARENTS) -> list[list[int]]:
    """Child indices of every point, in index order."""
    kids: list[list[int]] = [[] for _ in parents]
    for child, parent in enumerate(parents):
        if parent >= 0:
            kids[parent].append(child)
    return kids
