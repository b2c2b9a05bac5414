"""Rest-pose-aware rotation transfer from SMPL joints to target bones, and root motion. No bpy.

Everything is in world space (Blender: Z up, metres, radians); rotations are 3x3 matrices.
For a pair (SMPL joint j, target bone b):

    target(t) = change_j(t) @ align_b @ target_rest_b
    change_j(t) = source_j(t) @ source_rest_j^T     the joint's world turn since its rest

`align_b = turn_b @ facing`: `facing` turns the target about Z to face as the source does, and
`turn_b` is the smallest rotation taking the target's rest direction of b onto the source's rest
direction of j. A direction runs from a joint to its *reference child* (the next mapped joint
down the SMPL tree; spine1 for the pelvis, neck for spine3), on each rig between its own bone
heads. A target bone not placed on its joint (a control on a pivot, as Rigify's `spine_fk`
bones are: the map lists them as axis bones), or whose head coincides with its child's, uses its
own Y axis instead. Pairs with no mapped child (head, hands, feet) take their parent pair's
alignment, so they keep their rest pose relative to the limb they end.

So each mapped direction of the target equals the source's at every frame, whatever the two
rest poses (T or A), bone axes and rolls.
"""

from collections.abc import Mapping

import numpy as np

from ..smpl import JOINT_NAMES, PARENTS

# Where the tree forks, the child that continues the body's main line.
_MAIN_CHILD = {JOINT_NAMES.index("pelvis"): JOINT_NAMES.index("spine1"),
               JOINT_NAMES.index("spine3"): JOINT_NAMES.index("neck")}
LEGS = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))
# Target segments shorter than this (world units) count as a shared pivot.
PIVOT_TOLERANCE = 1e-4


def _next_joint(joint: int) -> int | None:
    if joint in _MAIN_CHILD:
        return _MAIN_CHILD[joint]
    children = [child for child, parent in enumerate(PARENTS) if parent == joint]
    return children[0] if children else None


def reference_child(joint: int, mapped: set[int]) -> int | None:
    """The first mapped joint down the main line below `joint`, or None."""
    child = _next_joint(joint)
    while child is not None and child not in mapped:
        child = _next_joint(child)
    return child


def mapped_ancestor(joint: int, mapped: set[int]) -> int | None:
    parent = PARENTS[joint]
    while parent >= 0 and parent not in mapped:
        parent = PARENTS[parent]
    return parent if parent >= 0 else None


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3) directions a, b -> (..., 3, 3) the smallest rotation turning a onto b
    (a half turn about an axis square to a when they are opposite)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    cos = np.einsum("...i,...i->...", a, b)
    cross = np.zeros(a.shape + (3,))  # the matrix of axis x (.)
    cross[..., 0, 1], cross[..., 0, 2] = -axis[..., 2], axis[..., 1]
    cross[..., 1, 2] = -axis[..., 0]
    cross = cross - np.swapaxes(cross, -1, -2)
    opposite = cos < -1.0 + 1e-9
    factor = 1.0 / np.where(opposite, 1.0, 1.0 + cos)
    turn = np.eye(3) + cross + cross @ cross * factor[..., None, None]
    if np.any(opposite):
        helper = np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        square = np.cross(a, helper)
        square /= np.linalg.norm(square, axis=-1, keepdims=True)
        half = 2.0 * square[..., :, None] * square[..., None, :] - np.eye(3)
        turn = np.where(opposite[..., None, None], half, turn)
    return turn


def facing_rotation(source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """(3, 3) the turn about Z that best lays the target's rest joints over the source's.

    Args:
        source_points, target_points: (k, 3) the same joints on each rig, world space.
    """
    source = source_points[:, :2] - source_points[:, :2].mean(axis=0)
    target = target_points[:, :2] - target_points[:, :2].mean(axis=0)
    cross = np.sum(target[:, 0] * source[:, 1] - target[:, 1] * source[:, 0])
    dot = np.sum(target * source)
    angle = np.arctan2(cross, dot) if np.hypot(cross, dot) > 1e-12 else 0.0
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def alignments(pair_joints: list[int], source_heads: np.ndarray, target_rest: np.ndarray,
               facing: np.ndarray, along_axis: list[bool]) -> np.ndarray:
    """(m, 3, 3) each pair's `align_b` (module docstring).

    Args:
        pair_joints: (m,) SMPL joint index of each pair.
        source_heads: (24, 3) the source's rest joint positions, world space.
        target_rest: (m, 4, 4) each pair's target bone rest matrix, world space (rotation
            part orthonormal).
        facing: (3, 3) from `facing_rotation`.
        along_axis: (m,) whether each target bone's direction is its own Y axis.
    """
    first = {joint: i for i, joint in reversed(list(enumerate(pair_joints)))}
    mapped = set(pair_joints)
    align = np.empty((len(pair_joints), 3, 3))
    # SMPL parents have smaller indices than their children: parents' pairs come first.
    for i in sorted(range(len(pair_joints)), key=lambda i: pair_joints[i]):
        joint = pair_joints[i]
        child = reference_child(joint, mapped)
        if child is None:
            parent = mapped_ancestor(joint, mapped)
            align[i] = facing if parent is None else align[first[parent]]
            continue
        source_direction = source_heads[child] - source_heads[joint]
        target_direction = target_rest[first[child], :3, 3] - target_rest[i, :3, 3]
        if along_axis[i] or np.linalg.norm(target_direction) < PIVOT_TOLERANCE:
            target_direction = target_rest[i, :3, 1]
        align[i] = rotation_between(facing @ target_direction, source_direction) @ facing
    return align


def target_rotations(source_rest: np.ndarray, source_posed: np.ndarray, align: np.ndarray,
                     target_rest: np.ndarray) -> np.ndarray:
    """World rotations of the target bones at every frame.

    Args:
        source_rest: (m, 3, 3) each pair's source joint rest rotation, world.
        source_posed: (F, m, 3, 3) the same, posed.
        align: (m, 3, 3) from `alignments`.
        target_rest: (m, 3, 3) each pair's target bone rest rotation, world.
    """
    change = source_posed @ np.swapaxes(source_rest, -1, -2)
    return change @ (align @ target_rest)


def leg_length(heads: Mapping[str, np.ndarray]) -> float | None:
    """Mean over the legs found of hip-knee plus knee-ankle length; None if neither is mapped.

    Args:
        heads: rest position (3,) by SMPL joint name, world space.
    """
    lengths = [np.linalg.norm(heads[knee] - heads[hip]) + np.linalg.norm(heads[ankle] - heads[knee])
               for hip, knee, ankle in LEGS if all(j in heads for j in (hip, knee, ankle))]
    return float(np.mean(lengths)) if lengths else None


def root_path(source_heads: np.ndarray, source_rest: np.ndarray, target_rest: np.ndarray,
              scale: float, in_place: bool) -> np.ndarray:
    """(F, 3) world path of the target's root bone head.

    The source root's displacement from its rest position, times `scale`, is added to the
    target root's rest position; `in_place` keeps only its vertical part.

    Args:
        source_heads: (F, 3) the source root joint's path. source_rest, target_rest: (3,).
    """
    displacement = scale * (source_heads - source_rest)
    if in_place:
        displacement[:, :2] = 0.0
    return target_rest + displacement
