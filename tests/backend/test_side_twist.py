"""Rolls of the hands, feet and head from their seen sides (`ik.side_twist`) and from
BlazePose landmarks (`side_vectors`)."""

import numpy as np
import roma
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.kinematics import forward_kinematics
from ikol_backend.camera import CAMERA_TO_MODEL
from ikol_backend.frontends.blazepose import PoseLandmarks
from ikol_backend.frontends.blazepose_to_smpl import LANDMARK_NAMES, REST_SIDES, SIDE_JOINTS, side_vectors
from ikol_backend.ik.ikol_layer import ikol, twist_from_rotmats
from ikol_backend.ik.side_twist import twist_towards_sides


def random_pose(batch: int, seed: int) -> torch.Tensor:
    """(B, 24, 3, 3) local rotations up to about 40° per joint, hands/feet/head rolled more."""
    generator = torch.Generator().manual_seed(seed)
    rotvecs = 0.35 * torch.randn(batch, 24, 3, generator=generator, dtype=torch.float64)
    rotvecs[:, list(SIDE_JOINTS)] *= 2.0
    return roma.rotvec_to_rotmat(rotvecs)


def test_seen_sides_give_back_the_true_orientation_of_hands_feet_and_head():
    body = default_skeleton().to("cpu", torch.float64)
    betas = torch.zeros(64, 10, dtype=torch.float64)
    rest = body.rest_points(betas)
    truth = random_pose(64, seed=4)
    points, true_global = forward_kinematics(truth, rest)
    sides = true_global[:, list(SIDE_JOINTS)] @ torch.as_tensor(REST_SIDES).unsqueeze(-1)
    seen = torch.ones(64, len(SIDE_JOINTS), dtype=torch.bool)

    twist_free = ikol(body, points, betas=betas, init="analytic")
    twist = twist_towards_sides(twist_free.rotmats, rest, SIDE_JOINTS, torch.as_tensor(REST_SIDES),
                                sides.squeeze(-1), seen)
    solved = ikol(body, points, betas=betas, twist=twist, init="analytic")
    _, before = forward_kinematics(twist_free.rotmats, rest)
    _, after = forward_kinematics(solved.rotmats, rest)

    def error_deg(rotations: torch.Tensor) -> torch.Tensor:
        index = list(SIDE_JOINTS)
        relative = rotations[:, index].transpose(-1, -2) @ true_global[:, index]
        return torch.rad2deg(roma.rotmat_to_rotvec(relative).norm(dim=-1))

    assert error_deg(after).max() < 0.01
    assert error_deg(before).median() > 10  # without the sides, the rolls are unknown
    assert (solved.points - (points - points[:, :1])).norm(dim=-1).max() < 1e-9  # joints unchanged


def test_unseen_sides_keep_zero_twist():
    body = default_skeleton().to("cpu", torch.float64)
    rest = body.rest_points(torch.zeros(2, 10, dtype=torch.float64))
    pose = random_pose(2, seed=5)
    points, _ = forward_kinematics(pose, rest)
    free = ikol(body, points, betas=torch.zeros(2, 10, dtype=torch.float64), init="analytic")
    sides = torch.randn(2, len(SIDE_JOINTS), 3, dtype=torch.float64)
    twist = twist_towards_sides(free.rotmats, rest, SIDE_JOINTS, torch.as_tensor(REST_SIDES), sides,
                                torch.zeros(2, len(SIDE_JOINTS), dtype=torch.bool))
    assert torch.equal(twist, torch.stack([torch.ones(2, 23), torch.zeros(2, 23)], -1).double())


def test_landmarks_of_a_t_pose_give_the_rest_sides():
    """BlazePose landmarks placed as a body in the T-pose would show them (palms down, thumbs
    forward, feet forward, facing the camera), in MediaPipe's world frame."""
    model = {  # model frame: X the body's left, Y up, Z forward; metres
        "left_wrist": (0.70, 0.45, 0.0), "left_index": (0.80, 0.45, 0.03),
        "left_pinky": (0.78, 0.45, -0.03),
        "right_wrist": (-0.70, 0.45, 0.0), "right_index": (-0.80, 0.45, 0.03),
        "right_pinky": (-0.78, 0.45, -0.03),
        "left_ankle": (0.09, -0.87, 0.0), "left_heel": (0.09, -0.93, -0.05),
        "left_foot_index": (0.10, -0.95, 0.15),
        "right_ankle": (-0.09, -0.87, 0.0), "right_heel": (-0.09, -0.93, -0.05),
        "right_foot_index": (-0.10, -0.95, 0.15),
        "left_ear": (0.07, 0.62, 0.0), "right_ear": (-0.07, 0.62, 0.0),
    }
    world = np.zeros((len(LANDMARK_NAMES), 3))
    for name, position in model.items():
        world[LANDMARK_NAMES.index(name)] = CAMERA_TO_MODEL @ np.array(position)
    marks = PoseLandmarks(world=world, image=np.zeros((len(LANDMARK_NAMES), 2)),
                          visibility=np.ones(len(LANDMARK_NAMES)))
    sides, confidence = side_vectors(marks)
    directions = sides / np.linalg.norm(sides, axis=1, keepdims=True)
    assert np.all(np.sum(directions * REST_SIDES, axis=1) > 0.9)  # the right way round
    assert np.all(confidence == 1.0)
