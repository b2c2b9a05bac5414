"""From BlazePose's 33 landmarks to the 29 SMPL points (24 joints and 5 leaf points).

Every SMPL point is a fixed weighted sum of landmarks (weights sum to 1), so the same matrix
maps 3D world landmarks and 2D image landmarks. The weights place the points where the default
skeleton has them relative to the landmarks BlazePose gives (hip, shoulder, ear, knuckle, heel
and toe points); the table is documented in docs/frontends.md.
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


def smpl_targets(marks: PoseLandmarks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SMPL point targets from one person's landmarks.

    Returns:
        points_3d: (29, 3) metres, model frame (Y up, X image right, Z towards the camera),
            origin between the hips.
        points_2d: (29, 2) pixels.
        confidence: (29,) in [0, 1], the smallest visibility among the landmarks used.
    """
    # MediaPipe's world frame is oriented like the camera frame.
    points_3d = _MATRIX @ marks.world @ CAMERA_TO_MODEL.T
    points_2d = _MATRIX @ marks.image
    used = _MATRIX != 0
    confidence = np.where(used, marks.visibility[None, :], 1.0).min(axis=1)
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
