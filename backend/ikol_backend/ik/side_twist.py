"""Twist angles from where a body part's side points: the roll of the hands, feet and head.

Positions of joints fix every bone's direction but not its roll about itself. Where a front end
also sees which way a part's side points (the knuckle line of a hand, the sole's normal, the
line between the ears), the roll follows: after a twist-free solve, the twist of the joint
that carries the part is the angle about its bone from where its rest side vector ended up to
where the side is seen. Solving again with those twists poses the parts' rolls.

Frames: the SMPL model frame (Y up, X to the body's left, Z forward), radians. Twist angles
follow `ikol_layer.ikol`: joint j turns about its rest bone toward TWIST_CHILD[j].
"""

import torch

from ..body.kinematics import forward_kinematics
from ..body.tree import NUM_JOINTS
from .ikol_layer import TWIST_CHILD

MIN_SIDE = 0.2  # of a side vector's length left across the bone: below, the roll is unseen


def twist_towards_sides(
    local_rotmats: torch.Tensor,
    rest_points: torch.Tensor,
    joints: tuple[int, ...],
    rest_sides: torch.Tensor,
    seen_sides: torch.Tensor,
    seen: torch.Tensor,
) -> torch.Tensor:
    """Twist angles that turn each joint's rest side vector onto the seen one.

    Args:
        local_rotmats: (B, 24, 3, 3) a solved pose (its twists of `joints` are replaced, so
            they should be zero), joint 0 global.
        rest_points: (B, 29, 3) its rest points.
        joints: the J joints whose twist is set.
        rest_sides: (J, 3) each joint's side vector at rest, in the model frame.
        seen_sides: (B, J, 3) the side vectors seen, model frame (any length).
        seen: (B, J) bool, whether each side was seen; unseen ones keep zero twist.

    Returns:
        (B, 23, 2) (cos, sin) of the twist of joints 1-23, zero twist for the others.
    """
    _, global_rotmats = forward_kinematics(local_rotmats, rest_points)
    index = list(joints)
    rotations = global_rotmats[:, index]  # (B, J, 3, 3)
    rest_bone = rest_points[:, [TWIST_CHILD[j] for j in joints]] - rest_points[:, index]
    bone = torch.nn.functional.normalize((rotations @ rest_bone.unsqueeze(-1)).squeeze(-1), dim=-1)
    now = (rotations @ rest_sides.to(rotations).unsqueeze(-1)).squeeze(-1)
    now, wanted = _across(now, bone), _across(seen_sides.to(bone), bone)
    angle = torch.atan2((bone * torch.linalg.cross(now, wanted)).sum(-1), (now * wanted).sum(-1))
    visible = seen & (now.norm(dim=-1) > MIN_SIDE) & (wanted.norm(dim=-1) > MIN_SIDE)
    angle = torch.where(visible, angle, torch.zeros_like(angle))
    twist = torch.zeros(angle.shape[0], NUM_JOINTS - 1, dtype=angle.dtype, device=angle.device)
    twist[:, [j - 1 for j in joints]] = angle
    return torch.stack([twist.cos(), twist.sin()], dim=-1)


def _across(vectors: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """The part of unit-scaled `vectors` across the unit `axis` (its length says how much)."""
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return unit - (unit * axis).sum(-1, keepdim=True) * axis
