"""The image-aligned fit: exact recovery, closed-form Jacobians, gradients, robustness, clips."""

import pytest
import roma
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.kinematics import forward_kinematics
from ikol_backend.ik.bench_core import make_case
from ikol_backend.ik.ikol_layer import SwingProblem
from ikol_backend.ik.image_fit import (
    FitState,
    FitWeights,
    ImageEvidence,
    ImageFit,
    _window_step,
    _windows,
    fit_focal,
    fit_to_image,
    place_in_camera,
    toward_rays,
)
from ikol_backend.ik.shape_fit import fit_betas_to_image

F64 = torch.float64
FLIP = torch.tensor([1.0, -1.0, -1.0], dtype=F64)  # scene frame <-> OpenCV camera frame


def camera_matrix(focal: float = 600.0) -> torch.Tensor:
    return torch.tensor([[focal, 0.0, 320.0], [0.0, focal, 240.0], [0.0, 0.0, 1.0]], dtype=F64)


def project(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """(..., 3) scene-frame points -> (..., 2) pixels."""
    cam = points * FLIP
    return cam[..., :2] / cam[..., 2:] * camera.diagonal()[:2] + camera[:2, 2]


def scene(batch: int, seed: int, focal: float = 600.0):
    """Random posed bodies placed 3-6 m in front of the camera, and their exact projections."""
    body = default_skeleton().to("cpu", F64)
    case = make_case(body, batch, 0.0, seed=seed, dtype=F64)
    generator = torch.Generator().manual_seed(seed)
    place = torch.rand(batch, 3, generator=generator, dtype=F64)
    position = torch.stack([place[:, 0] - 0.5, 0.6 * place[:, 1] - 0.3, -3.0 - 3.0 * place[:, 2]], -1)
    camera = camera_matrix(focal)
    points = case.points + position[:, None]
    seen = ImageEvidence(project(points, camera), torch.ones(batch, 29, dtype=F64), camera)
    return body, case, position, points, seen


def test_place_in_camera_recovers_the_position_and_ignores_unconfident_points():
    body, case, position, _, seen = scene(16, seed=1)
    torch.testing.assert_close(place_in_camera(case.points, seen), position, atol=1e-6, rtol=0)
    confidence = seen.confidence.clone()
    confidence[:, :5] = 0
    moved = ImageEvidence(seen.keypoints + 80 * (confidence == 0)[..., None], confidence, seen.camera)
    torch.testing.assert_close(place_in_camera(case.points, moved), position, atol=1e-6, rtol=0)


def test_exact_recovery_of_pose_root_and_position_from_projections():
    """Noise-free projections and 3D targets, the start (the problem's aim) turned 12 degrees
    off the truth and no prior: the fit lands on the truth. (The image alone leaves each bone's
    sign in depth open once its swing has two degrees of freedom: the 3D targets settle it.)"""
    body, case, position, points, seen = scene(32, seed=2)
    wrong = roma.rotvec_to_rotmat(torch.tensor([0.05, 0.2, 0.03], dtype=F64))
    problem = SwingProblem.build(body, case.targets @ wrong.T, case.betas, case.twist, case.leaf)
    weights = FitWeights(aim=0.0, damping=1e-9)
    fitted = fit_to_image(problem, seen, weights, targets=case.targets, iterations=15)
    assert (fitted.points - points).norm(dim=-1).max() < 1e-9  # metres
    assert (fitted.position - position).norm(dim=-1).max() < 1e-9
    angle = roma.rotmat_geodesic_distance(fitted.rotmats, case.rotmats)
    assert angle.max() < 1e-7  # radians, every joint including the root


def test_focal_length_recovered_from_noise_free_projections():
    body, case, _, _, seen = scene(8, seed=3, focal=900.0)
    prior_camera = ImageEvidence(seen.keypoints, seen.confidence, camera_matrix(500.0))
    focal = fit_focal(case.points, prior_camera, prior_focal=500.0, prior_sigma=1e3, pixel_sigma=1.0)
    assert abs(focal - 900.0) < 1e-6
    # With a firm prior and no evidence (no confident keypoint) the prior's focal comes back.
    unseen = ImageEvidence(seen.keypoints, torch.zeros_like(seen.confidence), camera_matrix(500.0))
    assert abs(fit_focal(case.points, unseen, 500.0, 0.3, 1.0) - 500.0) < 1e-6


def test_shape_recovered_from_2d_and_3d():
    body, case, position, points, seen = scene(6, seed=4)
    betas = case.betas[:1].expand(6, -1)
    rest = body.rest_points(betas)
    posed, global_rotmats = forward_kinematics(case.rotmats, rest)
    posed = posed - posed[:, :1]
    seen = ImageEvidence(project(posed + position[:, None], seen.camera), seen.confidence, seen.camera)
    fitted = fit_betas_to_image(body, global_rotmats, posed, seen.keypoints, seen.confidence,
                                seen.camera, image_weight=4.0, points_weight=1.0, ridge=1e-12)
    torch.testing.assert_close(fitted, betas[0], atol=1e-6, rtol=0)


def random_state(problem: SwingProblem, position: torch.Tensor, seed: int) -> FitState:
    generator = torch.Generator().manual_seed(seed)
    aim = problem.aim()
    swing = aim + 0.1 * torch.randn(aim.shape, generator=generator, dtype=F64)
    plane = 0.3 * torch.randn(aim.shape, generator=generator, dtype=F64)
    turn = roma.rotvec_to_rotmat(0.1 * torch.randn(len(aim), 3, generator=generator, dtype=F64))
    return FitState(swing, plane, turn, position + 0.1)


def test_closed_form_jacobians_equal_autograd():
    body, case, position, _, seen = scene(12, seed=5)
    for leaves, count in ((case.leaf, 24), (None, 29)):
        problem = SwingProblem.build(body, case.targets[:, :count] + 0.01, case.betas, case.twist, leaves)
        fit = ImageFit(problem, seen, FitWeights(), torch.full((12,), 0.008, dtype=F64))
        state = random_state(problem, position, seed=6)
        pose = problem.pose(state.swing, state.plane)
        robust = fit.robust_weights(state, pose)
        k = state.swing.shape[1]

        def moved(delta: torch.Tensor) -> FitState:
            return FitState(state.swing + delta[:, :k], state.plane + delta[:, k:2 * k],
                            roma.rotvec_to_rotmat(delta[:, 2 * k:2 * k + 3]) @ state.turn,
                            state.position + delta[:, 2 * k + 3:])

        def residuals(delta: torch.Tensor) -> torch.Tensor:
            s = moved(delta)
            return fit.residuals(s, problem.pose(s.swing, s.plane), robust).sum(0)

        def points(delta: torch.Tensor) -> torch.Tensor:
            s = moved(delta)
            return fit.points(s, problem.pose(s.swing, s.plane)).flatten(1).sum(0)

        zero = torch.zeros(12, fit.unknowns, dtype=F64)
        expected = torch.autograd.functional.jacobian(residuals, zero).permute(1, 0, 2)
        torch.testing.assert_close(fit.jacobian(state, pose, robust), expected, atol=1e-6, rtol=0)
        expected = torch.autograd.functional.jacobian(points, zero).permute(1, 0, 2)
        torch.testing.assert_close(fit.point_jacobian(state, pose).flatten(1, 2), expected, atol=1e-6, rtol=0)


def test_gradcheck_through_the_unrolled_fit():
    """The exact derivative of two unrolled iterations, checked numerically on a few keypoints
    (2D) and targets (3D) moved by small offsets."""
    body, case, _, _, seen = scene(1, seed=7)
    moved_2d, moved_3d = [4, 18, 20], [18, 21]

    def solve(offset_2d: torch.Tensor, offset_3d: torch.Tensor) -> torch.Tensor:
        keypoints = seen.keypoints.clone()
        keypoints[:, moved_2d] += offset_2d
        targets = case.targets.clone()
        targets[:, moved_3d] += offset_3d
        problem = SwingProblem.build(body, targets, case.betas, case.twist, case.leaf)
        evidence = ImageEvidence(keypoints, seen.confidence, seen.camera)
        return fit_to_image(problem, evidence, iterations=2, jacobian_grad=True).points

    offsets = (torch.full((3, 2), 2.0, dtype=F64, requires_grad=True),
               torch.full((2, 3), 0.01, dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(solve, offsets, eps=1e-6, atol=1e-5)
    # GN-Diff (Jacobians constant in the backward pass) gives a gradient too.
    keypoints = seen.keypoints.clone().requires_grad_()
    targets = case.targets.clone().requires_grad_()
    problem = SwingProblem.build(body, targets, case.betas, case.twist, case.leaf)
    fit_to_image(problem, ImageEvidence(keypoints, seen.confidence, seen.camera)).points.sum().backward()
    assert keypoints.grad.abs().sum() > 0 and targets.grad.abs().sum() > 0


def test_a_wild_keypoint_moves_the_robust_fit_far_less():
    body, case, _, points, seen = scene(16, seed=8)
    problem = SwingProblem.build(body, case.targets, case.betas, case.twist, case.leaf)
    wild = seen.keypoints.clone()
    wild[:, 20] += 150.0  # left wrist 150 px away, full confidence
    evidence = ImageEvidence(wild, seen.confidence, seen.camera)
    robust = fit_to_image(problem, evidence, FitWeights(robust_m=0.05)).points
    plain = fit_to_image(problem, evidence, FitWeights(robust_m=1e9)).points
    robust_shift = (robust - points).norm(dim=-1).mean()
    plain_shift = (plain - points).norm(dim=-1).mean()
    assert robust_shift < 0.3 * plain_shift


def clip(frames: int, seed: int):
    """A smooth motion (rotations interpolated between two poses, walking sideways) with noisy
    3D targets and 2D keypoints."""
    body = default_skeleton().to("cpu", F64)
    ends = make_case(body, 2, 0.0, seed=seed, dtype=F64)
    t = torch.linspace(0, 1, frames, dtype=F64)
    steps = roma.rotvec_slerp(roma.rotmat_to_rotvec(ends.rotmats[0]), roma.rotmat_to_rotvec(ends.rotmats[1]), t)
    betas = ends.betas[:1].expand(frames, -1)
    points, _ = forward_kinematics(roma.rotvec_to_rotmat(steps), body.rest_points(betas))
    points = points - points[:, :1]
    position = torch.stack([t - 0.5, torch.zeros_like(t), -4.0 - t], -1)
    generator = torch.Generator().manual_seed(seed)
    targets = points + 0.03 * torch.randn(points.shape, generator=generator, dtype=F64)
    camera = camera_matrix()
    pixels = project(points + position[:, None], camera)
    pixels = pixels + 3.0 * torch.randn(pixels.shape, generator=generator, dtype=F64)
    return body, betas, points + position[:, None], targets - targets[:, :1], pixels, camera


def test_window_step_equals_the_dense_gauss_newton_step():
    """One window over a short clip: the banded assembly equals the step of the stacked
    residuals (every frame's own, plus the weighted second differences of all points)."""
    body, betas, _, targets, pixels, camera = clip(7, seed=9)
    problem = SwingProblem.build(body, targets, betas, None, None)
    seen = ImageEvidence(pixels, torch.ones(7, 29, dtype=F64), camera)
    fit = ImageFit(problem, seen, FitWeights(), torch.full((7,), 0.008, dtype=F64))
    aimed = problem.pose(None)
    state = FitState(aimed.swing, torch.zeros_like(aimed.swing), torch.eye(3, dtype=F64).expand(7, 3, 3),
                     place_in_camera(aimed.points, seen))
    pose = problem.pose(state.swing)
    robust = fit.robust_weights(state, pose)
    jac, moves = fit.jacobian(state, pose, robust), fit.point_jacobian(state, pose).flatten(1, 2)
    residual = fit.residuals(state, pose, robust)
    points = fit.points(state, pose).flatten(1)
    linked = torch.tensor([False] + [True] * 6)
    step = _window_step(_windows(7, torch.device("cpu")), jac.transpose(1, 2) @ jac,
                        (jac.transpose(1, 2) @ residual.unsqueeze(-1)).squeeze(-1), moves, points,
                        linked, smooth=50.0, damping=0.0, grad=False)
    n, rows = fit.unknowns, residual.shape[1]
    dense = torch.zeros(7 * rows + 5 * moves.shape[1], 7 * n, dtype=F64)
    stacked = torch.zeros(dense.shape[0], dtype=F64)
    for f in range(7):
        dense[f * rows:(f + 1) * rows, f * n:(f + 1) * n] = jac[f]
        stacked[f * rows:(f + 1) * rows] = residual[f]
    for t in range(1, 6):
        row = 7 * rows + (t - 1) * moves.shape[1]
        part = slice(row, row + moves.shape[1])
        for f, c in ((t - 1, 1.0), (t, -2.0), (t + 1, 1.0)):
            dense[part, f * n:(f + 1) * n] += 50.0 ** 0.5 * c * moves[f]
            stacked[part] += 50.0 ** 0.5 * c * points[f]
    expected = torch.linalg.lstsq(dense, stacked).solution.view(7, n)
    torch.testing.assert_close(step, expected, atol=1e-8, rtol=1e-6)


def test_clip_with_a_dropped_frame_stays_smooth():
    frames, dropped = 40, 20
    body, betas, truth, targets, pixels, camera = clip(frames, seed=10)
    confidence = torch.ones(frames, 29, dtype=F64)
    confidence[dropped] = 0  # nobody seen: the 3D targets are held from the frame before
    targets = targets.clone()
    targets[dropped] = targets[dropped - 1]
    pixels = pixels.clone()
    pixels[dropped] = pixels[dropped - 1]
    seen = ImageEvidence(pixels, confidence, camera)
    linked = torch.ones(frames, dtype=torch.bool)

    def fit(weights: FitWeights) -> torch.Tensor:
        problem = SwingProblem.build(body, toward_rays(targets, seen, weights, linked), betas, None, None)
        return fit_to_image(problem, seen, weights, linked=linked, targets=targets).points[:, :24]

    def accel(points: torch.Tensor) -> torch.Tensor:
        """(N - 2,) mean second difference of the points per frame, metres."""
        return (points[2:] - 2 * points[1:-1] + points[:-2]).norm(dim=-1).mean(-1)

    raw, smooth = fit(FitWeights(smooth=0.0)), fit(FitWeights(smooth=200.0))
    true_accel = accel(truth[:, :24])
    assert accel(smooth).mean() < 0.5 * accel(raw).mean()  # less jitter
    assert accel(smooth)[dropped - 1] < 0.2 * accel(raw)[dropped - 1]  # no jump at the gap
    assert accel(raw)[dropped - 1] > 2 * accel(raw).median()  # which the raw fit shows
    error = (smooth - truth[:, :24]).norm(dim=-1).mean()
    assert error < (raw - truth[:, :24]).norm(dim=-1).mean()
    assert true_accel.max() < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_result():
    """A clip fitted jointly over frames on the GPU (float32) lands where the CPU puts it."""
    body, betas, truth, targets, pixels, camera = clip(40, seed=11)
    linked = torch.ones(40, dtype=torch.bool)
    weights = FitWeights(smooth=200.0)
    fitted = {}
    for device in ("cpu", "cuda"):
        seen = ImageEvidence(pixels.float().to(device), torch.ones(40, 29, device=device),
                             camera.float().to(device))
        aimed = toward_rays(targets.float().to(device), seen, weights, linked.to(device))
        problem = SwingProblem.build(body.to(device), aimed, betas.float().to(device), None, None)
        result = fit_to_image(problem, seen, weights, linked=linked.to(device),
                              targets=targets.float().to(device))
        assert result.points.device.type == device
        fitted[device] = result.points.cpu()
    assert (fitted["cuda"] - fitted["cpu"]).norm(dim=-1).max() < 1e-3  # metres
    assert (fitted["cuda"] - truth.float()).norm(dim=-1).mean() < 0.1
