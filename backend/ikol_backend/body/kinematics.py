"""Batched forward kinematics on the SMPL joint tree (torch)."""

import torch

from .tree import NUM_JOINTS, POINT_PARENTS


def forward_kinematics(
    local_rotmats: torch.Tensor, rest_points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a rest skeleton.

    Args:
        local_rotmats: (B, 24, 3, 3) rotation of each joint relative to its parent, in a frame
            equal to the model frame at rest; joint 0 is the global orientation.
        rest_points: (B, 29, 3) rest positions of the 24 joints and 5 leaf points (metres).

    Returns:
        points: (B, 29, 3) posed positions, the root staying at its rest position.
        global_rotmats: (B, 24, 3, 3) rotation of each joint in the model frame.
    """
    globals_: list[torch.Tensor] = []
    points: list[torch.Tensor] = []
    for i, parent in enumerate(POINT_PARENTS):
        if parent < 0:
            globals_.append(local_rotmats[:, 0])
            points.append(rest_points[:, 0])
            continue
        bone = rest_points[:, i] - rest_points[:, parent]
        points.append(points[parent] + (globals_[parent] @ bone.unsqueeze(-1)).squeeze(-1))
        if i < NUM_JOINTS:
            globals_.append(globals_[parent] @ local_rotmats[:, i])
    return torch.stack(points, dim=1), torch.stack(globals_, dim=1)
