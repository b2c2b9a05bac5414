"""The IKOL layer: accuracy, agreement with an autograd Jacobian, gradients, warm start, modes.

Every test runs on the default skeleton and on the generated SMPL-format stand-in.
"""

import argparse
import json

import pytest
import roma
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.model import BodyModel
from ikol_backend.body.tree import LEAF_PARENTS, NUM_JOINTS, POINT_PARENTS
from ikol_backend.cli import main
from ikol_backend.errors import EXIT_USAGE
from ikol_backend.ik.bench_core import make_case, random_poses
from ikol_backend.ik.benchmark import add_parser
from ikol_backend.ik.ikol_layer import (
    PUBLISHED_SWING_JOINTS,
    SwingPose,
    SwingProblem,
    closed_form_jacobian,
    gauss_newton,
    ikol,
    twist_from_rotmats,
)
from ikol_backend.ik.shape_fit import fit_betas

F64 = torch.float64


@pytest.fixture(params=["default_skeleton", "standin"])
def body(request: pytest.FixtureRequest) -> BodyModel:
    if request.param == "default_skeleton":
        return default_skeleton()
    return request.getfixturevalue("standin_body")


def mpjpe_mm(points: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-sample mean distance of the 24 joints, mm."""
    return 1000 * (points[:, :NUM_JOINTS] - truth[:, :NUM_JOINTS]).norm(dim=-1).mean(-1)


def rot_err_deg(rotmats: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-sample mean geodesic angle of the 24 local rotations, degrees."""
    return torch.rad2deg(roma.rotmat_geodesic_distance(rotmats, truth)).mean(-1)


def reference_jacobian(problem: SwingProblem, theta: torch.Tensor, pose: SwingPose) -> torch.Tensor:
    """Plain autograd: the Jacobian of the batch-summed residuals (samples are independent)."""
    def summed(angles: torch.Tensor) -> torch.Tensor:
        return problem.residual(problem.pose(angles)).sum(0)

    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(summed, theta)
    return jac.permute(1, 0, 2)


def test_noise_free_targets_recovered(body: BodyModel) -> None:
    case = make_case(body, 1000, 0.0, seed=1, dtype=F64)
    for points in (29, 24):
        result = ikol(body, case.targets[:, :points], case.betas, case.twist, case.leaf, init="analytic")
        assert mpjpe_mm(result.points, case.points).mean() < 1.0
        assert rot_err_deg(result.rotmats, case.rotmats).mean() < 1.0
        assert mpjpe_mm(result.points, case.points).max() < 1e-6  # in fact exact


def test_gauss_newton_from_zero_swing_converges(body: BodyModel) -> None:
    """From the paper's zero start, with more iterations and less damping, GN finds the pose."""
    case = make_case(body, 1000, 0.0, seed=2, dtype=F64)
    result = ikol(body, case.targets, case.betas, case.twist, case.leaf, iterations=30, damping=1e-3)
    error = mpjpe_mm(result.points, case.points)
    assert error.median() < 1e-6
    assert (error < 1.0).float().mean() > 0.85  # a few poses end in a local minimum
    assert rot_err_deg(result.rotmats, case.rotmats).median() < 1e-6


@pytest.mark.parametrize("mode", ["paper_24", "points_29", "leaf_swing", "twist_free", "noisy_warm"])
def test_same_numbers_as_autograd_jacobian(body: BodyModel, mode: str) -> None:
    case = make_case(body, 16, 20.0 if mode == "noisy_warm" else 0.0, seed=3, dtype=F64)
    targets = case.targets[:, :24] if mode == "paper_24" else case.targets
    twist = None if mode == "twist_free" else case.twist
    leaf = None if mode in ("leaf_swing", "twist_free") else case.leaf
    problem = SwingProblem.build(body, targets, case.betas, twist, leaf)
    start = problem.pose(problem.aim() + 0.1 if mode == "noisy_warm" else problem.zero_swing())
    ours = problem.result(gauss_newton(problem, start, 5, 0.1, closed_form_jacobian))
    reference = problem.result(gauss_newton(problem, start, 5, 0.1, reference_jacobian))
    torch.testing.assert_close(ours.swing, reference.swing, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.rotmats, reference.rotmats, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.points, reference.points, atol=1e-8, rtol=0)  # metres
    for measure in (mpjpe_mm(ours.points, case.points) - mpjpe_mm(reference.points, case.points),
                    rot_err_deg(ours.rotmats, case.rotmats) - rot_err_deg(reference.rotmats, case.rotmats)):
        assert measure.abs().max() < 1e-5
    # And the Jacobians themselves, away from the solution.
    theta = torch.rand(problem.zero_swing().shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    pose = problem.pose(theta)
    torch.testing.assert_close(closed_form_jacobian(problem, theta, pose),
                               reference_jacobian(problem, theta, pose), atol=1e-10, rtol=0)


@pytest.mark.parametrize("leaves", ["given", "swung"])
def test_plane_turn_columns_equal_autograd(body: BodyModel, leaves: str) -> None:
    """Two-degree-of-freedom swings: the Jacobian with respect to swing angles and plane turns,
    at random angles and turns, equals autograd's."""
    case = make_case(body, 8, 20.0, seed=6, dtype=F64)
    problem = SwingProblem.build(body, case.targets, case.betas, case.twist,
                                 case.leaf if leaves == "given" else None)
    generator = torch.Generator().manual_seed(7)
    theta = problem.aim() + 0.3 * torch.randn(problem.zero_swing().shape, generator=generator, dtype=F64)
    plane = 0.5 * torch.randn(theta.shape, generator=generator, dtype=F64)

    def summed(angles: torch.Tensor) -> torch.Tensor:
        k = theta.shape[1]
        return problem.residual(problem.pose(angles[:, :k], angles[:, k:])).sum(0)

    expected = torch.autograd.functional.jacobian(summed, torch.cat([theta, plane], 1)).permute(1, 0, 2)
    ours = closed_form_jacobian(problem, theta, problem.pose(theta, plane), plane_columns=True)
    torch.testing.assert_close(ours, expected, atol=1e-10, rtol=0)
    # Without plane turns the swing columns are the one-degree-of-freedom layer's.
    torch.testing.assert_close(problem.pose(theta, torch.zeros_like(theta)).points, problem.pose(theta).points)


def _network_inputs(body: BodyModel, noise_mm: float) -> tuple[torch.Tensor, ...]:
    case = make_case(body, 2, noise_mm, seed=5, dtype=F64)
    return tuple(x.clone().requires_grad_(True) for x in (case.targets, case.betas, case.twist, case.leaf))


def test_gradcheck_exact_derivative_of_unrolled_solver(body: BodyModel) -> None:
    """With jacobian_grad=True autograd differentiates everything, Jacobian included."""
    def layer(targets, betas, twist, leaf):
        result = ikol(body, targets, betas, twist, leaf, iterations=2, jacobian_grad=True)
        return result.rotmats, result.points

    assert torch.autograd.gradcheck(layer, _network_inputs(body, 20.0), fast_mode=True)


def test_gradcheck_gn_diff_at_an_exact_fit(body: BodyModel) -> None:
    """GN-Diff (constant Jacobian) is the exact gradient where the targets are met exactly."""
    def layer(targets, betas, twist, leaf):
        result = ikol(body, targets, betas, twist, leaf, init="analytic", iterations=2)
        return result.rotmats, result.points

    assert torch.autograd.gradcheck(layer, _network_inputs(body, 0.0), fast_mode=True)


def test_gn_diff_treats_the_jacobian_as_constant(body: BodyModel) -> None:
    targets, betas, twist, leaf = _network_inputs(body, 20.0)
    weights = torch.randn(2, 29, 3, generator=torch.Generator().manual_seed(6), dtype=F64)

    def gradient(jacobian_grad: bool) -> torch.Tensor:
        result = ikol(body, targets, betas, twist, leaf, iterations=3, jacobian_grad=jacobian_grad)
        return torch.autograd.grad((result.points * weights).sum(), targets)[0]

    assert not torch.allclose(gradient(False), gradient(True), atol=1e-6)


def test_gradcheck_with_fitted_betas(body: BodyModel) -> None:
    case = make_case(body, 2, 20.0, seed=7, dtype=F64)

    def layer(targets):
        return ikol(body, targets, None, case.twist, case.leaf, iterations=2, jacobian_grad=True).points

    assert torch.autograd.gradcheck(layer, (case.targets.clone().requires_grad_(True),), fast_mode=True)


def _person(body: BodyModel, poses: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Frames of one person (one random shape) in `poses`: targets and true answers."""
    betas = torch.randn(1, 10, generator=torch.Generator().manual_seed(seed), dtype=F64)
    betas = betas.expand(len(poses), 10)
    body64 = body.to("cpu", F64)
    rest, rotmats = body64.rest_points(betas), roma.rotvec_to_rotmat(poses)
    points = body64.posed_points(poses, betas)
    return {
        "targets": points - points[:, :1], "betas": betas, "rest": rest,
        "twist": twist_from_rotmats(rotmats, rest), "leaf": rotmats[:, list(LEAF_PARENTS)],
    }


def test_warm_start_needs_fewer_iterations(body: BodyModel) -> None:
    """Frames of a smooth motion: starting from the previous frame's swing converges sooner."""
    ends = random_poses(2, torch.Generator().manual_seed(8), F64)
    frames = 30
    person = _person(body, roma.rotvec_slerp(ends[0], ends[1], torch.linspace(0, 1, frames, dtype=F64)), 8)
    inputs = [person[k] for k in ("targets", "betas", "twist", "leaf")]
    previous = ikol(body, *inputs, init="analytic").swing[:-1]
    current = [x[1:] for x in inputs]

    def iterations_needed(init: object) -> torch.Tensor:
        """Per frame, the fewest iterations (up to 20, else 99) that reach 1 mm."""
        needed = torch.full((frames - 1,), 99)
        for iterations in range(20, -1, -1):
            result = ikol(body, *current, init=init, iterations=iterations)
            needed[mpjpe_mm(result.points, current[0]) < 1.0] = iterations
        return needed

    warm, cold = iterations_needed(previous), iterations_needed("zero")
    assert (warm <= cold).all()
    assert warm.float().mean() < cold.float().mean()
    assert warm.max() <= 5


def test_twist_free_mode(body: BodyModel) -> None:
    """No twist and no leaf rotations: the positions are still met, with zero twist."""
    case = make_case(body, 200, 0.0, seed=9, dtype=F64)
    result = ikol(body, case.targets, case.betas, init="analytic")
    assert result.swing_joints == tuple(j for j in range(1, NUM_JOINTS) if j != 9)
    assert 1000 * (result.points - case.points).norm(dim=-1).max() < 1e-6  # leaf points too
    twist = twist_from_rotmats(result.rotmats, case.rest)
    swinging = [j - 1 for j in result.swing_joints]
    torch.testing.assert_close(twist[:, swinging], torch.tensor([1.0, 0.0], dtype=F64).expand(200, 22, 2))
    # With only the 24 joints, the leaf joints keep no rotation.
    result = ikol(body, case.targets[:, :24], case.betas, init="analytic")
    assert result.swing_joints == PUBLISHED_SWING_JOINTS
    assert mpjpe_mm(result.points, case.points).max() < 1e-6
    identity = torch.eye(3, dtype=F64).expand(200, 5, 3, 3)
    torch.testing.assert_close(result.rotmats[:, list(LEAF_PARENTS)], identity)


def test_betas_fitted_from_bone_lengths(body: BodyModel) -> None:
    case = make_case(body, 200, 0.0, seed=10, dtype=F64)
    parents = list(POINT_PARENTS[1:])

    def bone_error_mm(betas: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        fitted = body.to("cpu", F64).rest_points(betas)
        lengths = (fitted[:, 1:] - fitted[:, parents]).norm(dim=-1)
        return 1000 * (lengths - (rest[:, 1:] - rest[:, parents]).norm(dim=-1)).abs()

    assert bone_error_mm(fit_betas(body, case.targets, ridge=1e-8), case.rest).max() < 0.2
    result = ikol(body, case.targets, None, case.twist, case.leaf, init="analytic")
    assert bone_error_mm(result.betas, case.rest).mean() < 4.0  # the ridge prior shrinks a little
    assert mpjpe_mm(result.points, case.points).mean() < 5.0
    # One shape for the frames of one person, each frame with its own noise.
    person = _person(body, random_poses(20, torch.Generator().manual_seed(10), F64), 10)
    noise = torch.randn(20, 29, 3, generator=torch.Generator().manual_seed(11), dtype=F64)
    noisy = person["targets"] + 0.02 * noise
    shared = fit_betas(body, noisy, shared=True)
    torch.testing.assert_close(shared, shared[:1].expand(20, 10))
    one_by_one = fit_betas(body, noisy)
    assert bone_error_mm(shared, person["rest"]).mean() < bone_error_mm(one_by_one, person["rest"]).mean()


def test_float32_on_cpu(body: BodyModel) -> None:
    case = make_case(body, 1000, 0.0, seed=11, dtype=torch.float32)
    for init in ("analytic", "zero"):
        result = ikol(body, case.targets, case.betas, case.twist, case.leaf, init=init,
                      iterations=5 if init == "analytic" else 30, damping=0.1 if init == "analytic" else 1e-3)
        assert result.rotmats.dtype == torch.float32
        assert torch.isfinite(result.rotmats).all()
        if init == "analytic":
            assert mpjpe_mm(result.points, case.points).mean() < 1.0
            assert rot_err_deg(result.rotmats, case.rotmats).mean() < 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda(body: BodyModel) -> None:
    case = make_case(body, 1000, 0.0, seed=12, dtype=torch.float32, device="cuda")
    result = ikol(body, case.targets, case.betas, case.twist, case.leaf, init="analytic")
    assert result.rotmats.device.type == "cuda"
    assert mpjpe_mm(result.points, case.points).mean() < 1.0
    assert rot_err_deg(result.rotmats, case.rotmats).mean() < 1.0


def test_batch_rows_are_independent(body: BodyModel) -> None:
    case = make_case(body, 4, 20.0, seed=13, dtype=F64)
    together = ikol(body, case.targets, case.betas, case.twist, case.leaf)
    for i in range(4):
        row = slice(i, i + 1)
        alone = ikol(body, case.targets[row], case.betas[row], case.twist[row], case.leaf[row])
        torch.testing.assert_close(alone.rotmats[0], together.rotmats[i], atol=1e-10, rtol=0)


def test_bad_inputs(body: BodyModel) -> None:
    case = make_case(body, 2, 0.0, seed=14)
    with pytest.raises(ValueError, match="targets"):
        ikol(body, case.targets[:, :25], case.betas)
    with pytest.raises(ValueError, match="init"):
        ikol(body, case.targets, case.betas, init="random")
    with pytest.raises(ValueError, match="init swing angles"):
        ikol(body, case.targets, case.betas, case.twist, case.leaf, init=torch.zeros(2, 22))


def test_bench_ik_prints_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench-ik", "--json", "--batches", "2", "--repeats", "1",
                              "--methods", "gn_closed_form", "gn_autograd", "analytic_swing_twist"])
    args.run(args, None)
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 6
    for row in rows:
        keys = {"method", "device", "batch", "poses_per_s", "mpjpe_mm", "rot_err_deg", "noise_mm"}
        assert keys <= row.keys()
    by = {(r["method"], r["noise_mm"]): r for r in rows}
    for noise in (0.0, 20.0):
        ours, authors = by[("gn_closed_form", noise)], by[("gn_autograd", noise)]
        assert ours["mpjpe_mm"] == pytest.approx(authors["mpjpe_mm"], abs=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
def test_bench_ik_reports_a_missing_cuda_device_as_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-ik", "--device", "cuda", "--batches", "1"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == (
        "error: --device cuda was asked for, but torch sees no CUDA device here "
        "(run `ikol-backend doctor`).")
