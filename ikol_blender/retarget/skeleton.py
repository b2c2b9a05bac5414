"""Rest skeletons, and pose-bone values that give wanted bone rotations. No bpy here.

Frames: *armature space* is the armature object's own space (that of Blender's
`Bone.matrix_local` and `PoseBone.matrix`); *world* is the object's `matrix_world` applied to it
(objects may be rotated, moved and scaled uniformly). Rotations are 3x3 matrices, positions in
the space's units (world: metres). Blender poses a bone that inherits rotation and scale as

    pose[b] = pose[parent] @ inv(rest[parent]) @ rest[b] @ T(location) @ R(rotation)

(`rest[b] @ T @ R` for a bone without parent). Constraints are not modelled here: the bake
measures what Blender evaluates and corrects the bases (`corrected_bases`).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """An armature's rest.

    Attributes:
        names: bone names, parents before children.
        parents: (n,) index of each bone's parent, -1 for none.
        rest: (n, 4, 4) rest bone matrices, armature space.
        world: (4, 4) the object's world matrix.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    rest: np.ndarray
    world: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def object_rotation(self) -> np.ndarray:
        """(3, 3) the object's rotation (its world matrix without scale)."""
        return polar_rotation(self.world[:3, :3])

    def heads_world(self, pose: np.ndarray) -> np.ndarray:
        """(..., n, 4, 4) armature-space bone matrices -> (..., n, 3) world head positions."""
        return pose[..., :3, 3] @ self.world[:3, :3].T + self.world[:3, 3]

    def rotations_world(self, pose: np.ndarray) -> np.ndarray:
        """(..., n, 4, 4) armature-space bone matrices -> (..., n, 3, 3) world rotations."""
        return self.object_rotation @ polar_rotation(pose[..., :3, :3])

    def rotations_armature(self, rotations: np.ndarray) -> np.ndarray:
        """(..., 3, 3) world rotations -> the same in armature space."""
        return self.object_rotation.T @ rotations

    def points_armature(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> armature space."""
        inverse = np.linalg.inv(self.world)
        return points @ inverse[:3, :3].T + inverse[:3, 3]


def topological_order(parents: list[int]) -> list[int]:
    """Indices ordered so that every parent comes before its children."""
    order: list[int] = []
    placed = [False] * len(parents)

    def place(index: int) -> None:
        chain = []
        while index >= 0 and not placed[index]:
            chain.append(index)
            index = parents[index]
        for bone in reversed(chain):
            placed[bone] = True
            order.append(bone)

    for index in range(len(parents)):
        place(index)
    return order


def polar_rotation(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> the nearest rotations (drops scale and shear)."""
    u, _, vt = np.linalg.svd(matrices)
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    u[..., :, 2] *= sign[..., None]
    return u @ vt


@dataclass(frozen=True)
class Bases:
    """Pose-bone values for the driven bones, and the whole pose they give.

    Attributes:
        rotations: (F, m, 3, 3) each driven bone's rotation in its rest frame (Blender's
            pose-bone rotation as a matrix).
        root_location: (F, 3) the root bone's location in its rest frame.
        pose: (F, n, 4, 4) every bone's armature-space matrix, undriven bones at rest relative
            to their parents.
    """

    rotations: np.ndarray
    root_location: np.ndarray
    pose: np.ndarray


def solve_bases(skeleton: Skeleton, bones: list[int], rotations: np.ndarray, root: int,
                root_heads: np.ndarray) -> Bases:
    """Pose-bone values that give each driven bone a wanted armature-space rotation.

    Args:
        bones: (m,) indices of the driven bones.
        rotations: (F, m, 3, 3) wanted rotations, armature space.
        root: position in `bones` of the bone that also gets a location.
        root_heads: (F, 3) wanted head of that bone, armature space.
    """
    frames, count = rotations.shape[0], len(skeleton.names)
    slot = {bone: k for k, bone in enumerate(bones)}
    pose = np.empty((frames, count, 4, 4))
    basis = np.empty((frames, len(bones), 3, 3))
    location = np.zeros((frames, 3))
    for bone in range(count):
        parent = skeleton.parents[bone]
        if parent < 0:
            frame = np.broadcast_to(skeleton.rest[bone], (frames, 4, 4)).copy()
        else:
            offset = np.linalg.inv(skeleton.rest[parent]) @ skeleton.rest[bone]
            frame = pose[:, parent] @ offset
        k = slot.get(bone)
        if k is not None:
            turn = polar_rotation(frame[:, :3, :3])
            basis[:, k] = np.swapaxes(turn, 1, 2) @ rotations[:, k]
            if k == root:
                location[:] = np.einsum("fji,fj->fi", turn, root_heads - frame[:, :3, 3])
                frame[:, :3, 3] = root_heads
            frame[:, :3, :3] = rotations[:, k]
        pose[:, bone] = frame
    return Bases(basis, location, pose)


def driven_parents(skeleton: Skeleton, bones: list[int]) -> list[int]:
    """For each driven bone, the position in `bones` of its nearest driven ancestor, or -1."""
    slot = {bone: k for k, bone in enumerate(bones)}
    out = []
    for bone in bones:
        parent = skeleton.parents[bone]
        while parent >= 0 and parent not in slot:
            parent = skeleton.parents[parent]
        out.append(slot[parent] if parent >= 0 else -1)
    return out


def corrected_bases(bases: Bases, evaluated: np.ndarray, rotations: np.ndarray,
                    driven_parents: list[int], root: int, root_heads: np.ndarray) -> Bases:
    """Bases that fix what Blender evaluated (constraints, drivers) against what was wanted.

    Args:
        evaluated: (F, m, 4, 4) armature-space matrices Blender gave the driven bones.
        driven_parents: (m,) position in `bones` of each driven bone's nearest driven ancestor,
            -1 for none.
        rotations, root, root_heads: as for `solve_bases`.

    A bone's evaluated frame is P @ R(basis). P is taken to turn with its nearest driven
    ancestor, whose own fix (wanted @ evaluated^T) is applied to it at the same time; so a
    chain under one constraint-driven bone is fixed in one round, not one bone per round.
    The root's location is fixed likewise, without that prediction. `pose` is the evaluated one.
    """
    turn = polar_rotation(evaluated[..., :3, :3])
    fix = rotations @ np.swapaxes(turn, -1, -2)
    parent_fix = np.where(np.array(driven_parents)[None, :, None, None] >= 0,
                          fix[:, driven_parents], np.eye(3))
    basis = bases.rotations @ np.swapaxes(parent_fix @ turn, -1, -2) @ rotations
    parent_turn = turn[:, root] @ np.swapaxes(bases.rotations[:, root], 1, 2)
    miss = root_heads - evaluated[:, root, :3, 3]
    location = bases.root_location + np.einsum("fji,fj->fi", parent_turn, miss)
    return Bases(basis, location, evaluated)


def rotation_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) pairs of rotations -> (...) angle of the turn between them, radians."""
    cos = (np.einsum("...ij,...ij->...", a, b) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))
