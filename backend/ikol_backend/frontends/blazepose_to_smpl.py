"""From BlazePose's 33 landmarks to the 29 SMPL points (24 joints and 5 leaf points).

First the limb landmarks are moved to the joint centres they stand for (BlazePose marks the
shoulders, hips and ankles off the joints' centres of rotation), by offsets in the body's own
directions (`joint_centres`). Then every SMPL point is a fixed weighted sum of landmarks
(weights sum to 1), so the same matrix maps 3D world landmarks and 2D image landmarks. The
weights place the points where the default skeleton has them relative to the landmarks BlazePose
gives (hip, shoulder, ear, knuckle, heel and toe points); both tables are documented in
docs/frontends.md.
"""

import numpy as np

from ..body.tree import JOINT_NAMES, LEAF_NAMES
from ..camera import CAMERA_TO_MODEL
from .blazepose import NUM_LANDMARKS, PoseLandmarks

LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
LANDMARK_INDEX: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}

_MID_HIP = {"left_hip": 0.5, "right_hip": 0.5}
_MID_SHOULDER = {"left_shoulder": 0.5, "right_shoulder": 0.5}
_MID_EAR = {"left_ear": 0.5, "right_ear": 0.5}


def _lerp(a: dict[str, float], b: dict[str, float], t: float) -> dict[str, float]:
    """Weights of the point a + t (b - a); t may lie outside [0, 1]."""
    out: dict[str, float] = {}
    for name, w in a.items():
        out[name] = out.get(name, 0.0) + (1 - t) * w
    for name, w in b.items():
        out[name] = out.get(name, 0.0) + t * w
    return out


def _sided(side: str) -> dict[str, dict[str, float]]:
    s = side
    hand = {f"{s}_index": 0.5, f"{s}_pinky": 0.5}
    return {
        f"{s}_hip": {f"{s}_hip": 1.0},
        f"{s}_knee": {f"{s}_knee": 1.0},
        f"{s}_ankle": {f"{s}_ankle": 1.0},
        f"{s}_foot": {f"{s}_heel": 0.3, f"{s}_foot_index": 0.7},
        f"{s}_bigtoe": {f"{s}_foot_index": 1.0},
        f"{s}_collar": _lerp(_MID_SHOULDER, {f"{s}_shoulder": 1.0}, 0.45),
        f"{s}_shoulder": {f"{s}_shoulder": 1.0},
        f"{s}_elbow": {f"{s}_elbow": 1.0},
        f"{s}_wrist": {f"{s}_wrist": 1.0},
        f"{s}_hand": hand,
        f"{s}_middle_tip": _lerp({f"{s}_wrist": 1.0}, hand, 2.0),
    }

# Fractions along the line from the hips' midpoint to the shoulders' midpoint.
_SPINE = {"pelvis": 0.17, "spine1": 0.38, "spine2": 0.62, "spine3": 0.74}

SMPL_FROM_BLAZEPOSE: dict[str, dict[str, float]] = {
    **{name: _lerp(_MID_HIP, _MID_SHOULDER, t) for name, t in _SPINE.items()},
    "neck": _lerp(_MID_SHOULDER, _MID_EAR, 0.33),
    "head": dict(_MID_EAR),
    "head_top": _lerp(_MID_SHOULDER, _MID_EAR, 1.7),
    **_sided("left"),
    **_sided("right"),
}


def mapping_matrix() -> np.ndarray:
    """(29, 33) weights: SMPL points (joint order, then leaf points) from landmarks."""
    matrix = np.zeros((len(JOINT_NAMES) + len(LEAF_NAMES), NUM_LANDMARKS))
    for row, name in enumerate(JOINT_NAMES + LEAF_NAMES):
        for landmark, weight in SMPL_FROM_BLAZEPOSE[name].items():
            matrix[row, LANDMARK_INDEX[landmark]] += weight
    return matrix


_MATRIX = mapping_matrix()


# Joint centre minus landmark, metres, in the body's own directions, measured on renders of
# bodies with known joints (bench/landmark_offsets.py: the calibration stills, apart from the
# measured ones). Shoulders and hips: (outward, up, forward) in the torso's directions (outward:
# the person's left for the left side, right for the right side). Elbows, wrists, knees,
# ankles: along the limb, away from the landmark of the joint above.
TORSO_OFFSETS: dict[str, tuple[float, float, float]] = {
    "shoulder": (0.015, -0.023, -0.009),
    "hip": (0.012, -0.016, -0.035),
}
LIMB_OFFSETS: dict[str, tuple[str, float]] = {
    "elbow": ("shoulder", 0.007),
    "wrist": ("elbow", -0.007),
    "knee": ("hip", 0.004),
    "ankle": ("knee", 0.021),
}


def _unit(v: np.ndarray) -> np.ndarray:
    """v / |v|, or zero where |v| is (nearly) zero."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm > 1e-9, v / np.maximum(norm, 1e-9), 0.0)


def torso_directions(world: np.ndarray) -> np.ndarray:
    """(33, 3) MediaPipe world landmarks -> (3, 3) rows: the person's left, up and forward
    (unit vectors in MediaPipe's world frame: x image right, y down, z away from the camera)."""
    at = {name: world[i] for name, i in LANDMARK_INDEX.items()}
    left = _unit(at["left_shoulder"] - at["right_shoulder"] + at["left_hip"] - at["right_hip"])
    up = (at["left_shoulder"] + at["right_shoulder"] - at["left_hip"] - at["right_hip"]) / 2
    up = _unit(up - left * (left @ up))
    return np.stack([left, up, np.cross(left, up)])


def limb_direction(world: np.ndarray, side: str, joint: str) -> np.ndarray:
    """(3,) unit vector from the landmark above `joint` to it (LIMB_OFFSETS), MediaPipe frame."""
    above = LIMB_OFFSETS[joint][0]
    return _unit(world[LANDMARK_INDEX[f"{side}_{joint}"]] - world[LANDMARK_INDEX[f"{side}_{above}"]])


def joint_centre_offsets(world: np.ndarray) -> np.ndarray:
    """(33, 3) MediaPipe world landmarks -> (33, 3) metres to add to them (MediaPipe frame):
    nonzero for the twelve limb landmarks, zero for the rest."""
    left, up, forward = torso_directions(world)
    offsets = np.zeros_like(world)
    for side, outward in (("left", left), ("right", -left)):
        for joint, (out, rise, ahead) in TORSO_OFFSETS.items():
            offsets[LANDMARK_INDEX[f"{side}_{joint}"]] = out * outward + rise * up + ahead * forward
        for joint, (_, along) in LIMB_OFFSETS.items():
            offsets[LANDMARK_INDEX[f"{side}_{joint}"]] = along * limb_direction(world, side, joint)
    return offsets


def pixels_per_metre(world: np.ndarray, image: np.ndarray) -> float:
    """The scale s of image ≈ s · world_xy + t (least squares over all landmarks): the
    person's image scale, for carrying small world offsets into the image."""
    xy = world[:, :2] - world[:, :2].mean(axis=0)
    uv = image - image.mean(axis=0)
    return float((xy * uv).sum() / max((xy * xy).sum(), 1e-12))


def joint_centres(marks: PoseLandmarks) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks with the limb ones moved to their joints' centres: (33, 3) world
    (MediaPipe frame, metres) and (33, 2) image (pixels; the offsets scaled by
    `pixels_per_metre`, MediaPipe's world axes being the image's)."""
    offsets = joint_centre_offsets(marks.world)
    scale = pixels_per_metre(marks.world, marks.image)
    return marks.world + offsets, marks.image + scale * offsets[:, :2]


# Points BlazePose does not mark: their places between hips and shoulders are the default
# skeleton's, not the person's, and the head top and finger tips are guesses extrapolated past
# the ears and knuckles, so in the image they are no evidence (2D confidence 0; measured on the
# rendered stills, docs/accuracy.md: 2D error 1.00 -> 0.97 % of image height for the torso
# points; for the guessed tips 0.926 -> 0.923 %, and the sample photo's head no longer bows
# 24 degrees toward the camera to shorten its guessed top). They stay 3D targets.
UNMARKED: tuple[str, ...] = ("pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar",
                             "head_top", "left_middle_tip", "right_middle_tip")
UNMARKED_ROWS = [(JOINT_NAMES + LEAF_NAMES).index(name) for name in UNMARKED]


def smpl_targets(marks: PoseLandmarks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SMPL point targets from one person's landmarks.

    Returns:
        points_3d: (29, 3) metres, model frame (Y up, X image right, Z towards the camera),
            origin between the hips.
        points_2d: (29, 2) pixels.
        confidence: (29,) in [0, 1], of the 2D points: the smallest visibility among the
            landmarks used; 0 for UNMARKED points.
    """
    world, image = joint_centres(marks)
    # MediaPipe's world frame is oriented like the camera frame.
    points_3d = _MATRIX @ world @ CAMERA_TO_MODEL.T
    points_2d = _MATRIX @ image
    used = _MATRIX != 0
    confidence = np.where(used, marks.visibility[None, :], 1.0).min(axis=1)
    confidence[UNMARKED_ROWS] = 0.0
    return points_3d, points_2d, confidence


# The joints whose roll BlazePose shows, and the side vector each has in the rest T-pose (model
# frame; palms down, thumbs forward, feet forward, face forward):
# hands: from the pinky to the index knuckle (forward); feet: the normal of the plane through
# heel, toe and ankle, (toe - heel) x (ankle - heel) (to the body's right); head: from the
# right ear to the left one (to the body's left).
SIDE_JOINTS: tuple[int, ...] = (20, 21, 7, 8, 15)  # wrists, ankles, head
REST_SIDES = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0],
                       [1.0, 0.0, 0.0]])
SIDE_SEEN = 0.5  # landmark visibility from which a side counts as seen


def side_vectors(marks: PoseLandmarks) -> tuple[np.ndarray, np.ndarray]:
    """Which way the hands, feet and head face, for `ik.side_twist`.

    Returns:
        sides: (5, 3) side vectors of SIDE_JOINTS (as REST_SIDES describes), model frame,
            metres (not normalised).
        confidence: (5,) the smallest visibility among the landmarks used.
    """
    world = marks.world @ CAMERA_TO_MODEL.T

    def at(name: str) -> np.ndarray:
        return world[LANDMARK_INDEX[name]]

    sides, used = [], []
    for s in ("left", "right"):
        sides.append(at(f"{s}_index") - at(f"{s}_pinky"))
        used.append((f"{s}_index", f"{s}_pinky"))
    for s in ("left", "right"):
        heel = at(f"{s}_heel")
        sides.append(np.cross(at(f"{s}_foot_index") - heel, at(f"{s}_ankle") - heel))
        used.append((f"{s}_heel", f"{s}_foot_index", f"{s}_ankle"))
    sides.append(at("left_ear") - at("right_ear"))
    used.append(("left_ear", "right_ear"))
    confidence = np.array([min(marks.visibility[LANDMARK_INDEX[n]] for n in names) for names in used])
    return np.stack(sides), confidence
