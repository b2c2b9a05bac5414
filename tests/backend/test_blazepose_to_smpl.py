"""The landmark-to-SMPL mapping: affine weights, and docs/frontends.md says what the code does."""

import re
from pathlib import Path

import numpy as np

from ikol_backend.body.tree import JOINT_NAMES, LEAF_NAMES
from ikol_backend.frontends.blazepose import PoseLandmarks
from ikol_backend.frontends.blazepose_to_smpl import (
    LANDMARK_NAMES, SMPL_FROM_BLAZEPOSE, mapping_matrix, smpl_targets,
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
    world[index["left_shoulder"]] = (0.2, -0.5, 0.1)  # up and away from the camera
    marks = PoseLandmarks(world, np.zeros((33, 2)), np.ones(33))
    points, _, confidence = smpl_targets(marks)
    shoulder = JOINT_NAMES.index("left_shoulder")
    np.testing.assert_allclose(points[shoulder], (0.2, 0.5, -0.1))
    np.testing.assert_allclose(confidence, 1.0)


def test_confidence_is_the_weakest_landmark_used():
    visibility = np.ones(33)
    visibility[LANDMARK_NAMES.index("left_heel")] = 0.2
    marks = PoseLandmarks(np.zeros((33, 3)), np.zeros((33, 2)), visibility)
    _, _, confidence = smpl_targets(marks)
    assert confidence[JOINT_NAMES.index("left_foot")] == 0.2
    assert confidence[JOINT_NAMES.index("left_ankle")] == 1.0
