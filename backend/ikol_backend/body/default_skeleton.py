"""The default skeleton, used when no SMPL model file is given.

Rest positions of the SMPL joint tree for an adult of about 1.72 m standing in the T-pose,
from published average body proportions (segment lengths as fractions of stature: thigh 0.22,
shank 0.23, upper arm 0.15, forearm 0.145, hand 0.11 with the hand joint at the knuckles,
shoulder breadth 0.20 between shoulder joints). The numbers are this project's own, not SMPL's.
Model frame: Y up, X to the body's left, Z forward, metres, pelvis joint at the origin.

Shape: the ten betas are symmetric per-segment proportions, so that a fit from keypoints can
match a real person's limbs, torso and widths. Each beta lengthens its bones (both sides) by
the stated fraction of their rest vectors per unit, and everything below them moves along:
  beta 0: overall size, +5 % per unit, about the pelvis;
  beta 1: thighs (hip to knee), +5 %;
  beta 2: shanks (knee to ankle), +5 %;
  beta 3: upper arms (shoulder to elbow), +5 %;
  beta 4: forearms (elbow to wrist), +5 %;
  beta 5: shoulder width: the sideways (x) part of spine3 to collar and collar to shoulder, +8 %;
  beta 6: hip width: the sideways (x) part of pelvis to hip, +8 %;
  beta 7: torso length: the vertical (y) part of the spine, spine3 to neck and to collars, +5 %;
  beta 8: neck and head (neck to head to head top), +5 %;
  beta 9: hands and feet (wrist to fingertip, ankle to toe), +5 %.
A unit is about one standard deviation of adult proportions, so a prior that betas are
standard normal is a fair one.
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

# Per bone (named by its child's part): (beta, growth per unit, which components grow).
_ALL, _X, _Y = (1.0, 1.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
_GROWTH: dict[str, list[tuple[int, float, tuple[float, float, float]]]] = {
    "knee": [(1, 0.05, _ALL)],
    "ankle": [(2, 0.05, _ALL)],
    "elbow": [(3, 0.05, _ALL)],
    "wrist": [(4, 0.05, _ALL)],
    "collar": [(5, 0.08, _X), (7, 0.05, _Y)],
    "shoulder": [(5, 0.08, _X)],
    "hip": [(6, 0.08, _X)],
    "spine1": [(7, 0.05, _Y)],
    "spine2": [(7, 0.05, _Y)],
    "spine3": [(7, 0.05, _Y)],
    "neck": [(7, 0.05, _Y)],
    "head": [(8, 0.05, _ALL)],
    "head_top": [(8, 0.05, _ALL)],
    "foot": [(9, 0.05, _ALL)],
    "bigtoe": [(9, 0.05, _ALL)],
    "hand": [(9, 0.05, _ALL)],
    "middle_tip": [(9, 0.05, _ALL)],
}


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
    for i, name in enumerate(names):  # parents come before their children
        parent = POINT_PARENTS[i]
        if parent < 0:
            continue
        shapedirs[i, :, 1:] = shapedirs[parent, :, 1:]
        bone = template[i] - template[parent]
        for beta, rate, parts in _GROWTH.get(_part(name), []):
            shapedirs[i, :, beta] += rate * bone * torch.tensor(parts)
    return BodyModel("default_skeleton", template, shapedirs)
