"""The landmark-to-SMPL mapping: affine weights, and docs/frontends.md says what the code does."""

import re
from pathlib import Path

import numpy as np

from ikol_backend.body.tree import JOINT_NAMES, LEAF_NAMES
from ikol_backend.frontends.blazepose import PoseLandmarks
from ikol_backend.frontends.blazepose_to_smpl import (
    LANDMARK_NAMES, LIMB_OFFSETS, SMPL_FROM_BLAZEPOSE, TORSO_OFFSETS, UNMARKED, joint_centres,
    mapping_matrix, smpl_targets,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "frontends.md"


def test_weights_are_affine():
    np.testing.assert_allclose(mapping_matrix().sum(axis=1), 1.0)


def test_documented_table_matches_code():
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.fullmatch(r"\| (\w+) \| (.+) \|", line)
        if match and match.group(1) in SMPL_FROM_BLAZEPOSE:
            terms = re.findall(r"(-?[\d.]+) (\w+)", match.group(2))
            rows[match.group(1)] = {name: float(w) for w, name in terms}
    assert list(rows) == list(JOINT_NAMES + LEAF_NAMES)
    for point, weights in rows.items():
        code = {k: v for k, v in SMPL_FROM_BLAZEPOSE[point].items() if abs(v) > 1e-12}
        assert weights.keys() == code.keys(), point
        for name, weight in weights.items():
            assert abs(weight - code[name]) < 5e-3, (point, name)


def test_targets_turn_mediapipe_frame_to_model_frame():
    world = np.zeros((33, 3))
    index = {name: i for i, name in enumerate(LANDMARK_NAMES)}
    world[index["left_foot_index"]] = (0.2, -0.5, 0.1)  # up and away from the camera
    marks = PoseLandmarks(world, np.zeros((33, 2)), np.ones(33))
    points, _, confidence = smpl_targets(marks)
    toe = (JOINT_NAMES + LEAF_NAMES).index("left_bigtoe")
    np.testing.assert_allclose(points[toe], (0.2, 0.5, -0.1))
    unmarked = [(JOINT_NAMES + LEAF_NAMES).index(name) for name in UNMARKED]
    np.testing.assert_allclose(np.delete(confidence, unmarked), 1.0)
    np.testing.assert_allclose(confidence[unmarked], 0.0)


def standing_person() -> np.ndarray:
    """(33, 3) MediaPipe world landmarks of a person facing the camera, arms out sideways
    (x: image right = the person's left, y down, z away from the camera), metres."""
    index = {name: i for i, name in enumerate(LANDMARK_NAMES)}
    world = np.zeros((33, 3))
    for side, x in (("left", 1.0), ("right", -1.0)):
        for name, (px, py) in {"shoulder": (0.2, -0.5), "elbow": (0.45, -0.5), "wrist": (0.7, -0.5),
                               "hip": (0.1, 0.0), "knee": (0.1, 0.45), "ankle": (0.1, 0.9)}.items():
            world[index[f"{side}_{name}"]] = (x * px, py, 0.0)
    return world


def test_joint_centres_move_in_the_body_directions():
    world = standing_person()
    image = 100.0 * world[:, :2] + (320.0, 240.0)  # 100 px per metre
    moved_world, moved_image = joint_centres(PoseLandmarks(world, image, np.ones(33)))
    index = {name: i for i, name in enumerate(LANDMARK_NAMES)}
    for side, outward in (("left", 1.0), ("right", -1.0)):
        for joint, (out, rise, ahead) in TORSO_OFFSETS.items():
            # outward is +-x, up is -y, forward (towards the camera) is -z
            expected = world[index[f"{side}_{joint}"]] + (outward * out, -rise, -ahead)
            np.testing.assert_allclose(moved_world[index[f"{side}_{joint}"]], expected, atol=1e-9)
        for joint, (above, along) in LIMB_OFFSETS.items():
            bone = world[index[f"{side}_{joint}"]] - world[index[f"{side}_{above}"]]
            expected = world[index[f"{side}_{joint}"]] + along * bone / np.linalg.norm(bone)
            np.testing.assert_allclose(moved_world[index[f"{side}_{joint}"]], expected, atol=1e-9)
    np.testing.assert_allclose(moved_image, 100.0 * moved_world[:, :2] + (320.0, 240.0), atol=1e-6)
    unmoved = [index[name] for name in ("nose", "left_heel", "right_index", "left_ear")]
    np.testing.assert_array_equal(moved_world[unmoved], world[unmoved])


def test_confidence_is_the_weakest_landmark_used():
    visibility = np.ones(33)
    visibility[LANDMARK_NAMES.index("left_heel")] = 0.2
    marks = PoseLandmarks(np.zeros((33, 3)), np.zeros((33, 2)), visibility)
    _, _, confidence = smpl_targets(marks)
    assert confidence[JOINT_NAMES.index("left_foot")] == 0.2
    assert confidence[JOINT_NAMES.index("left_ankle")] == 1.0
