"""Closed-form swing IK (HybrIK-style, without given twist), batched in torch.

Walks the tree from the root. The root and spine3, which have several children, take the
rotation that best aligns their rest child bones with the target child bones (an SVD fit).
Every other joint takes the smallest rotation (a pure swing) that turns its rest bone, as
carried by its parent, onto the target bone; its twist is inherited from the parent. Joints
with a leaf point as their only child aim at that leaf. All positions: model frame, metres.
"""

import roma
import torch

from ..body.tree import NUM_JOINTS, children

_CHILDREN = children()


def swing_rotmat(from_dirs: torch.Tensor, to_dirs: torch.Tensor) -> torch.Tensor:
    """(..., 3), (..., 3) -> (..., 3, 3): the smallest rotation turning from_dirs onto to_dirs.

    Vectors need not be unit length. Parallel inputs give the identity; exactly opposite
    inputs (no unique answer) also give the identity.
    """
    a = torch.nn.functional.normalize(from_dirs, dim=-1)
    b = torch.nn.functional.normalize(to_dirs, dim=-1)
    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(dim=-1, keepdim=True)
    angle = torch.atan2(sin, cos)
    rotvec = torch.where(sin > 1e-8, axis / sin.clamp_min(1e-8) * angle, torch.zeros_like(axis))
    return roma.rotvec_to_rotmat(rotvec)


def analytic_ik(rest_points: torch.Tensor, target_points: torch.Tensor) -> torch.Tensor:
    """Joint rotations that point every rest bone along the matching target bone.

    Args:
        rest_points: (B, 29, 3) rest skeleton (24 joints, then the 5 leaf points).
        target_points: (B, 29, 3) target positions; only bone directions are used, so the
            target may be at any scale and position.

    Returns:
        (B, 24, 3, 3) local rotations, relative to the parent, joint 0 global.
    """
    batch = rest_points.shape[0]
    eye = torch.eye(3, dtype=rest_points.dtype, device=rest_points.device).expand(batch, 3, 3)
    parent_global = [eye] * NUM_JOINTS
    local = [eye] * NUM_JOINTS
    for joint in range(NUM_JOINTS):
        kids = _CHILDREN[joint]
        carried = parent_global[joint]
        rest_bones = rest_points[:, kids] - rest_points[:, joint : joint + 1]
        target_bones = target_points[:, kids] - target_points[:, joint : joint + 1]
        carried_bones = (carried.unsqueeze(1) @ rest_bones.unsqueeze(-1)).squeeze(-1)
        if len(kids) == 1:
            world_change = swing_rotmat(carried_bones[:, 0], target_bones[:, 0])
        else:
            world_change = roma.rigid_vectors_registration(carried_bones, target_bones)
        joint_global = world_change @ carried
        local[joint] = carried.transpose(-1, -2) @ joint_global
        for kid in kids:
            if kid < NUM_JOINTS:
                parent_global[kid] = joint_global
    return torch.stack(local, dim=1)
