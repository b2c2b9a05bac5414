"""Synthetic IK cases and the runner of the IK benchmark (described in `benchmark`, whose
command line chooses the methods, batches and noise levels)."""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import roma
import torch

from ..body.kinematics import forward_kinematics
from ..body.model import NUM_BETAS, BodyModel
from ..body.tree import LEAF_PARENTS, NUM_JOINTS
from .analytic import analytic_ik
from .ikol_layer import SwingPose, SwingProblem, closed_form_jacobian, gauss_newton, twist_from_rotmats

ADAM_STEPS, ADAM_LR, ADAM_CHECK_EVERY = 500, 0.05, 10
SLOW_METHODS = ("gn_autograd", "adam")  # skipped above `max_slow_batch`

# Range of each rotation-vector component (x, y, z) in degrees, local frame, for the left
# side and the centre; the right side mirrors the left (y and z change sign). Model frame:
# Y up, X to the body's left, Z forward; in the rest pose the legs point down (-Y) and the
# left arm points along +X.
_LIMITS_DEG = {
    1: ((-100, 30), (-40, 40), (-20, 45)),  # hip: flexion is -x
    4: ((0, 140), (-5, 5), (-5, 5)),  # knee: flexion is +x
    7: ((-30, 40), (-15, 15), (-20, 20)),  # ankle
    10: ((-30, 30), (-10, 10), (-10, 10)),  # foot
    3: ((-25, 25), (-25, 25), (-20, 20)),  # spine1
    6: ((-25, 25), (-25, 25), (-20, 20)),  # spine2
    9: ((-25, 25), (-25, 25), (-20, 20)),  # spine3
    12: ((-30, 30), (-40, 40), (-25, 25)),  # neck
    15: ((-25, 25), (-30, 30), (-15, 15)),  # head
    13: ((-15, 15), (-20, 20), (-15, 25)),  # collar
    16: ((-60, 60), (-90, 30), (-90, 40)),  # shoulder: lowering the arm is -z, forward -y
    18: ((-60, 60), (-140, 0), (-10, 10)),  # elbow: flexion is -y
    20: ((-40, 40), (-30, 30), (-60, 60)),  # wrist
    22: ((-20, 20), (-20, 20), (-20, 20)),  # hand
}
_MIRROR = {2: 1, 5: 4, 8: 7, 11: 10, 14: 13, 17: 16, 19: 18, 21: 20, 23: 22}
_ROOT_TILT_DEG = 30.0


def joint_limits() -> tuple[torch.Tensor, torch.Tensor]:
    """(24, 3) lower and upper bounds (radians) of each joint's rotation-vector components."""
    low, high = torch.zeros(NUM_JOINTS, 3), torch.zeros(NUM_JOINTS, 3)
    for joint, ranges in _LIMITS_DEG.items():
        low[joint] = torch.tensor([r[0] for r in ranges], dtype=torch.float32)
        high[joint] = torch.tensor([r[1] for r in ranges], dtype=torch.float32)
    for joint, left in _MIRROR.items():
        low[joint, 0], high[joint, 0] = low[left, 0], high[left, 0]
        low[joint, 1:], high[joint, 1:] = -high[left, 1:], -low[left, 1:]
    return low.deg2rad(), high.deg2rad()


def random_poses(
    batch: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(B, 24, 3) axis-angle poses, each component uniform within the joint limits.

    The pelvis turns about Y to any heading and tilts up to 30 degrees about X and Z. Drawn on
    the CPU (reproducible for a seed on any device); move the result where it is needed.
    """
    low, high = joint_limits()
    poses = low + torch.rand(batch, NUM_JOINTS, 3, generator=generator) * (high - low)
    heading = (torch.rand(batch, generator=generator) * 2 - 1) * math.pi
    tilt = (torch.rand(batch, 2, generator=generator) * 2 - 1) * math.radians(_ROOT_TILT_DEG)
    zero = torch.zeros(batch)
    poses[:, 0] = roma.rotvec_composition([
        torch.stack([zero, heading, zero], -1),
        torch.stack([tilt[:, 0], zero, tilt[:, 1]], -1),
    ])
    return poses.to(dtype)


@dataclass(frozen=True)
class Case:
    """A batch of synthetic IK problems with their answers (tensors on one device)."""

    rotmats: torch.Tensor  # (B, 24, 3, 3) true local rotations
    betas: torch.Tensor  # (B, 10)
    rest: torch.Tensor  # (B, 29, 3) rest points
    points: torch.Tensor  # (B, 29, 3) true posed points, pelvis at the origin
    targets: torch.Tensor  # (B, 29, 3) noisy points, pelvis-relative
    twist: torch.Tensor  # (B, 23, 2) true twist (cos, sin)
    leaf: torch.Tensor  # (B, 5, 3, 3) true leaf rotations
    noise_mm: float


def make_case(
    body: BodyModel,
    batch: int,
    noise_mm: float,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Case:
    """Random poses and shapes, their forward kinematics, and targets with noise."""
    generator = torch.Generator().manual_seed(seed)
    poses = random_poses(batch, generator, torch.float64)
    betas = torch.randn(batch, NUM_BETAS, generator=generator, dtype=torch.float64)
    noise = torch.randn(batch, 29, 3, generator=generator, dtype=torch.float64) * noise_mm / 1000
    body64 = body.to("cpu", torch.float64)
    rest = body64.rest_points(betas)
    rotmats = roma.rotvec_to_rotmat(poses)
    points = _pose_points(rotmats, rest)
    targets = points + noise
    targets = targets - targets[:, :1]

    def put(x: torch.Tensor) -> torch.Tensor:
        return x.to(device, dtype)

    return Case(
        rotmats=put(rotmats), betas=put(betas), rest=put(rest), points=put(points),
        targets=put(targets), twist=put(twist_from_rotmats(rotmats, rest)),
        leaf=put(rotmats[:, list(LEAF_PARENTS)]), noise_mm=noise_mm,
    )


@dataclass(frozen=True)
class GNSettings:
    """Settings of both Gauss-Newton methods."""

    init: str = "analytic"
    iterations: int = 5
    damping: float = 0.1

    def describe(self) -> str:
        return f"init={self.init} it={self.iterations} u={self.damping:g}"


def autograd_jacobian(problem: SwingProblem, theta: torch.Tensor, pose: SwingPose) -> torch.Tensor:
    """(B, 3P, K) Jacobian the authors' way: autograd of the batch-summed residuals."""

    def summed(angles: torch.Tensor) -> torch.Tensor:
        return problem.residual(problem.pose(angles)).sum(0)

    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(summed, theta, vectorize=True)
    return jac.permute(1, 0, 2)


def solve(
    method: str, body: BodyModel, case: Case, gn: GNSettings, adam_fit_m: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one method on a case: (B, 24, 3, 3) local rotations and (B, 29, 3) points."""
    if method in ("gn_closed_form", "gn_autograd"):
        jacobian = closed_form_jacobian if method == "gn_closed_form" else autograd_jacobian
        problem = SwingProblem.build(body, case.targets, case.betas, case.twist, case.leaf)
        start = problem.pose(None if gn.init == "analytic" else problem.zero_swing())
        result = problem.result(gauss_newton(problem, start, gn.iterations, gn.damping, jacobian))
        return result.rotmats, result.points
    if method == "analytic_swing_twist":
        rotmats = analytic_ik(case.rest, case.targets)
        return rotmats, _pose_points(rotmats, case.rest)
    if method == "adam":
        return _adam(case, adam_fit_m)
    raise ValueError(f"unknown method {method!r}")


def _pose_points(rotmats: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    points, _ = forward_kinematics(rotmats, rest)
    return points - points[:, :1]


def _adam(case: Case, fit_m: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPLify-style: Adam on axis-angle until the fit matches `fit_m` (metres) or 500 steps."""
    rest, targets = case.rest, case.targets
    root = roma.rigid_vectors_registration(rest[:, 1:4] - rest[:, :1], targets[:, 1:4])
    poses = torch.zeros(rest.shape[0], NUM_JOINTS, 3, dtype=rest.dtype, device=rest.device)
    poses[:, 0] = roma.rotmat_to_rotvec(root)
    poses.requires_grad_(True)
    optimizer = torch.optim.Adam([poses], lr=ADAM_LR)
    with torch.enable_grad():
        for step in range(ADAM_STEPS):
            points = _pose_points(roma.rotvec_to_rotmat(poses), rest)
            distance = (points - targets).square().sum(-1)
            if fit_m is not None and step % ADAM_CHECK_EVERY == 0:
                if distance.detach().sqrt().mean().item() <= fit_m:
                    break
            optimizer.zero_grad()
            distance.sum(-1).mean().backward()
            optimizer.step()
    rotmats = roma.rotvec_to_rotmat(poses.detach())
    return rotmats, _pose_points(rotmats, rest)


def _timed(run: Callable[[], Any], repeats: int, device: torch.device) -> tuple[float, Any]:
    """Median seconds of `repeats` runs after a warm-up, and the last output."""
    out = run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run_benchmark(
    body: BodyModel,
    methods: tuple[str, ...],
    batches: tuple[int, ...],
    noises_mm: tuple[float, ...],
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
    max_slow_batch: int = 1024,
    gn: GNSettings = GNSettings(),
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (noise, batch, method); slow methods above `max_slow_batch` are skipped."""
    dev = torch.device(device)
    body = body.to(dev, dtype)
    rows = []
    for noise in noises_mm:
        for batch in batches:
            case = make_case(body, batch, noise, seed=batch, dtype=dtype, device=dev)
            fit_m = None
            for method in methods:
                row: dict[str, Any] = {
                    "method": method, "device": dev.type, "batch": batch, "noise_mm": noise,
                    "poses_per_s": None, "mpjpe_mm": None, "rot_err_deg": None,
                    "settings": gn.describe() if method.startswith("gn_") else "",
                }
                if method in SLOW_METHODS and batch > max_slow_batch:
                    row["note"] = f"skipped: batch above --max-slow-batch {max_slow_batch}"
                else:
                    with torch.no_grad():
                        seconds, (rotmats, points) = _timed(
                            lambda: solve(method, body, case, gn, fit_m), repeats, dev)
                    error = (points[:, :NUM_JOINTS] - case.points[:, :NUM_JOINTS]).norm(dim=-1)
                    angle = roma.rotmat_geodesic_distance(rotmats, case.rotmats)
                    row.update(poses_per_s=batch / seconds, mpjpe_mm=1000 * error.mean().item(),
                               rot_err_deg=math.degrees(angle.mean().item()))
                    if method == "gn_closed_form":
                        fit_m = (points - case.targets).norm(dim=-1).mean().item()
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows
