"""The default skeleton, used when no SMPL model file is given.

Rest positions of the SMPL joint tree for an adult of about 1.72 m standing in the T-pose,
from published average body proportions (segment lengths as fractions of stature: thigh 0.22,
shank 0.23, upper arm 0.15, forearm 0.145, hand 0.11 with the hand joint at the knuckles,
shoulder breadth 0.20 between shoulder joints). The numbers are this project's own, not SMPL's.
Model frame: Y up, X to the body's left, Z forward, metres, pelvis joint at the origin.

Shape: four of the ten betas have a meaning here (the rest are zero directions), so that betas
fitted from bone lengths stay a small, readable set:
  beta 0: overall size, +5 % per unit, about the pelvis;
  beta 1: leg length, +5 % of the legs per unit (the body moves with its feet on the ground
          only after translation, not in this frame);
  beta 2: shoulder breadth, +8 % of the collar-to-shoulder offsets per unit;
  beta 3: arm length, +5 % of the arms per unit.
"""

import torch

from .model import NUM_BETAS, BodyModel
from .tree import JOINT_NAMES, LEAF_NAMES, POINT_PARENTS

_LEFT_SIDE = {
    # name: (x, y, z) for the left side; the right side mirrors x.
    "hip": (0.070, -0.090, 0.000),
    "knee": (0.095, -0.470, 0.005),
    "ankle": (0.090, -0.870, -0.035),
    "foot": (0.110, -0.930, 0.095),
    "collar": (0.075, 0.410, -0.010),
    "shoulder": (0.170, 0.440, -0.015),
    "elbow": (0.430, 0.430, -0.030),
    "wrist": (0.680, 0.430, -0.030),
    "hand": (0.765, 0.425, -0.035),
    "middle_tip": (0.860, 0.420, -0.035),
    "bigtoe": (0.120, -0.950, 0.150),
}
_CENTRE = {
    "pelvis": (0.0, 0.0, 0.0),
    "spine1": (0.0, 0.110, -0.020),
    "spine2": (0.0, 0.240, 0.000),
    "spine3": (0.0, 0.300, 0.020),
    "neck": (0.0, 0.500, -0.010),
    "head": (0.0, 0.590, 0.030),
    "head_top": (0.0, 0.770, 0.000),
}

_LEGS = {"hip", "knee", "ankle", "foot", "bigtoe"}
_ARMS = {"elbow", "wrist", "hand", "middle_tip"}


def _position(name: str) -> tuple[float, float, float]:
    if name in _CENTRE:
        return _CENTRE[name]
    side, part = name.split("_", 1)
    x, y, z = _LEFT_SIDE[part]
    return (x if side == "left" else -x, y, z)


def _part(name: str) -> str:
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


def default_skeleton() -> BodyModel:
    """The default skeleton as a BodyModel (float32, CPU)."""
    names = JOINT_NAMES + LEAF_NAMES
    template = torch.tensor([_position(n) for n in names], dtype=torch.float32)
    shapedirs = torch.zeros(len(names), 3, NUM_BETAS)
    shapedirs[:, :, 0] = 0.05 * template
    for i, name in enumerate(names):
        part = _part(name)
        parent = POINT_PARENTS[i]
        if part in _LEGS - {"hip"}:
            # Each leg segment grows with the segment above it.
            shapedirs[i, :, 1] = shapedirs[parent, :, 1] + 0.05 * (template[i] - template[parent])
        if part == "shoulder" or part in _ARMS:
            grow = 0.08 if part == "shoulder" else 0.0
            shapedirs[i, :, 2] = shapedirs[parent, :, 2] + grow * (template[i] - template[parent])
        if part in _ARMS:
            shapedirs[i, :, 3] = shapedirs[parent, :, 3] + 0.05 * (template[i] - template[parent])
    return BodyModel("default_skeleton", template, shapedirs)
