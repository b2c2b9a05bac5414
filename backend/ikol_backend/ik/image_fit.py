"""The image-aligned IKOL fit: the body placed on the person in the image.

The IKOL layer (`ikol_layer`) fits a pose to root-relative 3D targets. Here the same swing
angles, plus a turn of the whole body and the pelvis position in the camera's world, are fitted
to the 2D keypoints seen in the image and to the 3D targets together, by Levenberg-Marquardt
(damped Gauss-Newton) on

    E = sum_i w_img c_i rho(|s (pi(X_i) - x_i)|)   2D: reprojection, robust (Huber)
      + sum_i w_3d |Q P_i(theta, a) - T_i|^2       3D: root-relative targets
      + w_aim (|theta - theta_aim|^2 + |a|^2)      prior: near the closed-form aim
      + w_smooth sum_t |X_{t-1} - 2 X_t + X_{t+1}|^2   clips: acceleration

with the posed points X_i = Q P_i(theta, a) + c in the scene frame. Unknowns per frame: the
swing angles theta (the IKOL layer's), the turns a of their planes about the rest bones (so
that each bone can move in two directions, not only in the plane of its rest and target
bones: `SwingProblem.pose`), a turn Q of the whole body (so the root rotation is Q @ R_svd;
Q starts at the identity and is updated as Q <- exp(d) Q) and the pelvis position c. pi
projects through the camera, s = depth / focal turns pixels into metres at the person's
depth (fixed from the starting position, so all residuals are metres), c_i is the keypoint's
confidence, T_i the front end's root-relative 3D targets, theta_aim the swing angles that aim
every bone at its 3D target (`SwingProblem.aim`). docs/ik_layer.md gives the weights and why.

Clips: frames are solved jointly in overlapping windows (the acceleration term couples each
frame with its two neighbours on either side, so each window's normal matrix is block-banded;
it is solved by a block-banded Cholesky, all windows batched). Memory is flat in clip
length: the caller passes batches of frames, windows never span more than `WINDOW` frames.

The steps are Levenberg-Marquardt's: each frame's normal matrix gets its own damping times its
diagonal, and a still keeps a step only if it lowers its objective (the damping then falls;
else it rises and the still stays). Plain Gauss-Newton overshoots where the image weight is
high against the prior (measured: the objective rose in some iterations). Frames of a clip,
solved together in windows, take their window's step whole: refusing single frames' steps
between neighbours that moved made the motion jitter (accel error +25 %, docs/ik_layer.md).

Jacobians are closed form: the IKOL layer's point velocities (`closed_form_jacobian`) turned by
Q, the cross-product matrix of the posed points for the body's turn, the identity for the
position, and the chain rule through the pinhole projection. No autograd Jacobian, no loop
over the batch. GN-Diff as in the layer: the Jacobians (and the robust weights) are built with
autograd off, autograd runs through the residuals of the unrolled iterations.

Frames: the scene frame is the model frame placed in the camera's world: Y up, Z towards the
camera, X to the image's right; the camera sits at the origin looking along -Z (see
`camera.py`). Metres, radians, pixels (origin top-left, y down).
"""

import dataclasses
import math
from dataclasses import dataclass

import roma
import torch

from ..camera import between_frames
from .ikol_layer import SwingPose, SwingProblem, closed_form_jacobian, skew

WINDOW = 12  # frames solved jointly (clips)
WINDOW_STEP = 8  # a window keeps its middle 8 frames; 2 frames of overlap on either side
MAX_STEP_RAD = 0.5  # largest change of a swing angle, plane turn or body turn per iteration
MIN_DEPTH_M = 0.05  # points are kept this far in front of the camera in the projection
MARQUARDT_START = 1e-2  # each frame's starting damping, times its normal matrix's diagonal
MARQUARDT_DOWN = 3.0  # the damping is divided by this after a kept step
MARQUARDT_UP = 4.0  # and multiplied by this after a refused one


@dataclass(frozen=True)
class FitWeights:
    """Weights of the objective (module docstring). Residuals are in metres, angles in radians.

    image: 2D reprojection (metres at the person's depth), per unit confidence.
    points_3d: root-relative 3D targets.
    aim: swing angles to the closed-form aim, and plane turns to zero (per rad^2).
    smooth: acceleration of the posed points between frames (clips; 0: frames independent).
    robust_m: the Huber threshold of the 2D residual: beyond it a keypoint pulls linearly.
    damping: Levenberg damping added to the normal matrix (numerical safety).
    """

    image: float = 60.0
    points_3d: float = 1.0
    aim: float = 0.01
    smooth: float = 0.0
    robust_m: float = 0.05
    damping: float = 1e-4


@dataclass(frozen=True)
class ImageFitResult:
    """The fitted frames.

    Attributes:
        rotmats: (B, 24, 3, 3) local joint rotations, joint 0 global (in the scene frame).
        points: (B, 29, 3) posed joints and leaf points in the scene frame, metres.
        position: (B, 3) the pelvis joint in the scene frame, metres.
    """

    rotmats: torch.Tensor
    points: torch.Tensor
    position: torch.Tensor


@dataclass(frozen=True)
class ImageEvidence:
    """What the camera saw of B frames.

    keypoints: (B, P, 2) pixels of the first P points (24 joints, then the 5 leaf points).
    confidence: (B, P) in [0, 1]; 0 ignores a keypoint.
    camera: (3, 3) intrinsics, pixels (shared by the frames).
    """

    keypoints: torch.Tensor
    confidence: torch.Tensor
    camera: torch.Tensor


@dataclass(frozen=True)
class FitState:
    """The unknowns of B frames: swing angles (B, K), their planes' turns (B, K), body turn Q
    (B, 3, 3), pelvis (B, 3)."""

    swing: torch.Tensor
    plane: torch.Tensor
    turn: torch.Tensor
    position: torch.Tensor


class ImageFit:
    """The objective of one batch of frames, its residuals and closed-form Jacobians.

    Args:
        problem: the IKOL layer's problem for the frames (targets, shape, twist, leaves).
        seen: the 2D evidence of the same frames.
        weights: the objective's weights.
        scale: (B,) metres per pixel at the person's depth (depth / focal), held fixed.
        targets: (B, P, 3) the root-relative 3D evidence; None: the problem's targets.
    """

    def __init__(self, problem: SwingProblem, seen: ImageEvidence, weights: FitWeights,
                 scale: torch.Tensor, targets: torch.Tensor | None = None):
        self.problem = problem
        self.targets = problem.targets if targets is None else targets - targets[:, :1]
        self.weights = weights
        self.num = min(problem.targets.shape[1], seen.keypoints.shape[1])
        self.keypoints = seen.keypoints[:, :self.num].to(problem.targets)
        self.confidence = seen.confidence[:, :self.num].to(problem.targets)
        self.camera = seen.camera.to(problem.targets)
        self.scale = scale
        self.aim = problem.aim()

    @property
    def unknowns(self) -> int:
        """Unknowns per frame: K swing angles, K plane turns, 3 for the turn, 3 for the position."""
        return 2 * self.aim.shape[1] + 6

    def points(self, state: FitState, pose: SwingPose) -> torch.Tensor:
        """(B, P, 3) the posed target points in the scene frame."""
        return pose.points[:, :self.num] @ state.turn.transpose(1, 2) + state.position[:, None]

    def pixels(self, points: torch.Tensor) -> torch.Tensor:
        """(B, P, 3) scene-frame points -> (B, P, 2) pixels."""
        camera = between_frames(points)  # OpenCV: x right, y down, z ahead
        depth = camera[..., 2:].clamp_min(MIN_DEPTH_M)
        focal = self.camera.diagonal()[:2]
        return focal * camera[..., :2] / depth + self.camera[:2, 2]

    def residuals(self, state: FitState, pose: SwingPose, robust: torch.Tensor) -> torch.Tensor:
        """(B, R) the weighted residuals of each frame: 2D (P x 2), 3D (P x 3), aim (2K).

        `robust` (B, P) are the IRLS weights of the 2D residuals (`robust_weights`).
        """
        w = self.weights
        image = (self.pixels(self.points(state, pose)) - self.keypoints) * self.scale[:, None, None]
        image = image * (w.image * self.confidence * robust).sqrt().unsqueeze(-1)
        turned = pose.points[:, :self.num] @ state.turn.transpose(1, 2)
        body = (turned - self.targets[:, :self.num]) * w.points_3d ** 0.5
        aim = torch.cat([state.swing - self.aim, state.plane], 1) * w.aim ** 0.5
        return torch.cat([image.flatten(1), body.flatten(1), aim], 1)

    def image_error(self, state: FitState, pose: SwingPose) -> torch.Tensor:
        """(B, P) distance of each point from its keypoint in metres at the person's depth."""
        offset = self.pixels(self.points(state, pose)) - self.keypoints
        return offset.norm(dim=-1) * self.scale[:, None]

    def robust_weights(self, state: FitState, pose: SwingPose) -> torch.Tensor:
        """(B, P) Huber IRLS weights: 1 within `robust_m`, robust_m / error beyond."""
        error = self.image_error(state, pose)
        return (self.weights.robust_m / error.clamp_min(1e-12)).clamp_max(1.0)

    def point_jacobian(self, state: FitState, pose: SwingPose) -> torch.Tensor:
        """(B, P, 3, n) derivative of the scene-frame points with respect to the unknowns.

        Columns: the swing angles, their plane turns, the body's turn (Q <- exp(d) Q:
        dX = -[Q P]x d) and the pelvis position.
        """
        batch, num = pose.points.shape[0], self.num
        swing = closed_form_jacobian(self.problem, pose.swing, pose, plane_columns=True)
        swing = swing.view(batch, num, 3, -1)
        swing = torch.einsum("bij,bpjk->bpik", state.turn, swing)
        turned = pose.points[:, :num] @ state.turn.transpose(1, 2)
        turn = -skew(turned)
        move = torch.eye(3, dtype=turned.dtype, device=turned.device).expand(batch, num, 3, 3)
        return torch.cat([swing, turn, move], -1)

    def jacobian(self, state: FitState, pose: SwingPose, robust: torch.Tensor,
                 points_jacobian: torch.Tensor | None = None) -> torch.Tensor:
        """(B, R, n) derivative of `residuals` with respect to the unknowns."""
        w = self.weights
        moves = self.point_jacobian(state, pose) if points_jacobian is None else points_jacobian
        points = self.points(state, pose)
        camera = between_frames(points)
        depth = camera[..., 2].clamp_min(MIN_DEPTH_M)
        fx, fy = self.camera[0, 0], self.camera[1, 1]
        zero = torch.zeros_like(depth)
        # d(pixels)/d(scene point): the OpenCV projection's derivative, columns turned by
        # CAMERA_TO_MODEL (y and z change sign).
        projection = torch.stack([
            torch.stack([fx / depth, zero, fx * camera[..., 0] / depth ** 2], -1),
            torch.stack([zero, -fy / depth, fy * camera[..., 1] / depth ** 2], -1),
        ], -2)
        if (camera[..., 2] < MIN_DEPTH_M).any():  # clamped: the depth no longer moves the pixel
            projection = projection * torch.stack([torch.ones_like(depth)] * 2 + [
                (camera[..., 2] >= MIN_DEPTH_M).to(depth)], -1).unsqueeze(-2)
        factor = (w.image * self.confidence * robust).sqrt() * self.scale[:, None]
        image = factor[..., None, None] * (projection @ moves)
        body = moves.clone()
        body[..., -3:] = 0  # the 3D targets are root-relative: the position does not enter
        body = body * w.points_3d ** 0.5
        batch, k = moves.shape[0], 2 * self.aim.shape[1]
        aim = moves.new_zeros(batch, k, self.unknowns)
        aim[:, :, :k] = torch.eye(k, dtype=moves.dtype, device=moves.device) * w.aim ** 0.5
        return torch.cat([image.flatten(1, 2), body.flatten(1, 2), aim], 1)


def fit_to_image(
    problem: SwingProblem,
    seen: ImageEvidence,
    weights: FitWeights = FitWeights(),
    *,
    linked: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    iterations: int = 5,
    jacobian_grad: bool = False,
) -> ImageFitResult:
    """Levenberg-Marquardt on the image-aligned objective (module docstring), from the
    closed-form aim, flat planes, no turn and the pelvis placed by `place_in_camera`.

    Args:
        problem: the IKOL layer's problem for B frames.
        seen: their keypoints, confidences and camera.
        weights: see FitWeights; `smooth` > 0 couples linked frames.
        linked: (B,) bool, frame b follows frame b - 1 in time (clips); None: stills.
        targets: (B, P, 3) the 3D evidence when the problem aims at other points (e.g.
            `toward_rays`); None: the problem's targets.
        iterations: iterations (each also updates the robust weights).
        jacobian_grad: autograd also through the Jacobians and robust weights (the exact
            derivative of the unrolled solver) instead of treating them as constants.
    """
    grad = jacobian_grad and torch.is_grad_enabled()
    aimed = problem.pose(None)
    swing = aimed.swing
    eye = torch.eye(3, dtype=swing.dtype, device=swing.device)
    state = FitState(swing, torch.zeros_like(swing), eye.expand(swing.shape[0], 3, 3),
                     place_in_camera(aimed.points, seen))
    temporal = weights.smooth > 0 and linked is not None and bool(linked[1:].any())
    smooth = weights.smooth if temporal else 0.0
    if temporal:
        pull = weights.image * seen.confidence.to(state.position).sum(1)
        state = dataclasses.replace(
            state, position=smooth_over_time(state.position, pull, linked, weights.smooth))
    with torch.set_grad_enabled(grad):
        scale = (-state.position[:, 2]).clamp_min(MIN_DEPTH_M) / seen.camera[0, 0].to(state.position)
    fit = ImageFit(problem, seen, weights, scale, targets)
    windows = _windows(len(swing), swing.device) if temporal else None
    marquardt = swing.new_full((len(swing),), MARQUARDT_START)
    pose = problem.pose(state.swing, state.plane)
    for _ in range(iterations):
        with torch.set_grad_enabled(grad):
            robust = fit.robust_weights(state, pose)
            moves = fit.point_jacobian(state, pose)
            jac = fit.jacobian(state, pose, robust, moves)
            normal = jac.transpose(1, 2) @ jac
            normal = normal + torch.diag_embed(marquardt[:, None] * normal.diagonal(dim1=1, dim2=2))
        residual = fit.residuals(state, pose, robust)
        gradient = (jac.transpose(1, 2) @ residual.unsqueeze(-1)).squeeze(-1)
        if windows is None:
            step = _solve(normal, gradient, weights.damping)
        else:
            step = _window_step(windows, normal, gradient, moves.flatten(1, 2),
                                fit.points(state, pose).flatten(1), linked, smooth,
                                weights.damping, grad)
        moved = _stepped(state, step)
        moved_pose = problem.pose(moved.swing, moved.plane)
        if windows is None:
            kept = fit.residuals(moved, moved_pose, robust).square().sum(1) < residual.square().sum(1)
            marquardt = torch.where(kept, marquardt / MARQUARDT_DOWN, marquardt * MARQUARDT_UP)
            state, pose = _where(kept, moved, state), _where(kept, moved_pose, pose)
        else:  # frames solved together take their window's step whole
            marquardt = marquardt / MARQUARDT_DOWN
            state, pose = moved, moved_pose
    rotmats = problem.local_rotmats(pose)
    rotmats = torch.cat([(state.turn @ rotmats[:, 0]).unsqueeze(1), rotmats[:, 1:]], 1)
    points = pose.points @ state.turn.transpose(1, 2) + state.position[:, None]
    return ImageFitResult(rotmats, points, state.position)


def _stepped(state: FitState, step: torch.Tensor) -> FitState:
    """The state moved by minus `step` (B, 2K + 6), within a trust region: Gauss-Newton's
    linearisation holds for moderate turns only."""
    k = state.swing.shape[1]
    angles = step[:, :2 * k].clamp(-MAX_STEP_RAD, MAX_STEP_RAD)
    turn = step[:, 2 * k:2 * k + 3]
    turn = turn * (MAX_STEP_RAD / turn.norm(dim=-1, keepdim=True).clamp_min(MAX_STEP_RAD))
    return FitState(state.swing - angles[:, :k], state.plane - angles[:, k:],
                    roma.rotvec_to_rotmat(-turn) @ state.turn, state.position - step[:, 2 * k + 3:])


def _where(kept: torch.Tensor, new, old):
    """The dataclass of batched tensors (FitState, SwingPose) taking `new`'s rows where `kept`
    (B,) and `old`'s elsewhere."""
    picked = {}
    for field in dataclasses.fields(old):
        a, b = getattr(new, field.name), getattr(old, field.name)
        picked[field.name] = torch.where(kept.view(-1, *[1] * (a.dim() - 1)), a, b)
    return type(old)(**picked)


def smooth_weight(cutoff_hz: float, frame_rate: float, weights: FitWeights) -> float:
    """The acceleration weight that makes the fit a low-pass filter at about `cutoff_hz`.

    A quadratic fit with data weight w and acceleration weight s passes motions of angular
    frequency omega (radians per frame) where s omega^4 < w: s = w / (2 pi f / fps)^4. The
    data weight is that of a point seen in 2D and 3D (`image` + `points_3d`).
    """
    omega = min(2 * math.pi * cutoff_hz / frame_rate, 2.0)
    return (weights.image + weights.points_3d) / omega ** 4


def toward_rays(targets: torch.Tensor, seen: ImageEvidence, weights: FitWeights,
                linked: torch.Tensor | None = None) -> torch.Tensor:
    """(B, P, 3) root-relative 3D targets moved toward the rays of their keypoints.

    The targets are placed in front of the camera (`place_in_camera`); each point then moves
    across the viewing direction, at its own depth, onto the ray through its keypoint, by the
    share image / (image + points_3d) of the way, times its confidence. The result is what the
    IKOL layer aims at: bones whose directions agree with the image, so that the fit's swing
    angles (each turning its bone in the plane of the rest and the aimed bone) can reach the
    image. In a clip (`linked`, `weights.smooth` > 0) the moved points are then smoothed over
    time with the fit's acceleration weight (`smooth_over_time`), so that the planes the
    swings turn in follow the motion rather than the noise. Returned root-relative (the
    pelvis moves too).
    """
    num = min(targets.shape[1], seen.keypoints.shape[1])
    position = place_in_camera(targets, seen)
    placed = between_frames(targets + position[:, None])  # camera frame
    k = seen.camera.to(targets)
    ray = (seen.keypoints[:, :num].to(targets) - k[:2, 2]) / k.diagonal()[:2]
    depth = placed[:, :num, 2:].clamp_min(MIN_DEPTH_M)
    share = weights.image / (weights.image + weights.points_3d) * seen.confidence[:, :num].to(targets)
    moved = placed.clone()
    moved[:, :num, :2] = placed[:, :num, :2] + share[..., None] * (ray * depth - placed[:, :num, :2])
    moved = between_frames(moved)
    if linked is not None and weights.smooth > 0:
        pull = weights.image + weights.points_3d * torch.ones_like(moved[:, 0, 0])
        moved = smooth_over_time(moved.flatten(1), pull, linked, weights.smooth).view(moved.shape)
    return moved - moved[:, :1]


def smooth_over_time(values: torch.Tensor, pull: torch.Tensor, linked: torch.Tensor,
                     smooth: float) -> torch.Tensor:
    """(B, D) values of B frames smoothed over linked frames (a Whittaker smoother): the
    least-squares path minimising sum_t pull_t |y_t - values_t|^2 + smooth |y_{t-1} - 2 y_t +
    y_{t+1}|^2 (second differences only across linked frames). Zero phase: no lag."""
    count = len(values)
    d = torch.zeros(max(count - 2, 0), count, dtype=values.dtype, device=values.device)
    if count >= 3:
        t = torch.arange(1, count - 1, device=values.device)
        ok = (linked[1:-1] & linked[2:]).to(values)
        d[t - 1, t - 1], d[t - 1, t], d[t - 1, t + 1] = ok, -2 * ok, ok
    # float64: heavy smoothing makes the system stiff (weights up to ~1e6 against 1).
    d, pull64 = d.double(), pull.double()
    system = torch.diag(pull64 + 1e-9) + smooth * d.T @ d
    return torch.linalg.solve(system, pull64[:, None] * values.double()).to(values.dtype)


def place_in_camera(points: torch.Tensor, seen: ImageEvidence) -> torch.Tensor:
    """(B, P, 3) root-relative scene-frame points -> (B, 3) the pelvis position that puts them
    on their keypoints, by linear least squares.

    Solves fx (X + cx_) = (u - cx) (Z + cz_) (and the same in y) in the camera frame for the
    position, each equation weighted by its keypoint's confidence. Falls back to 3 m in front
    of the camera where no keypoint is confident.
    """
    num = min(points.shape[1], seen.keypoints.shape[1])
    camera_points = between_frames(points[:, :num])
    k = seen.camera.to(points)
    offset = seen.keypoints[:, :num].to(points) - k[:2, 2]
    focal = k.diagonal()[:2]
    zeros, ones = torch.zeros_like(offset[..., 0]), torch.ones_like(offset[..., 0])
    rows = torch.cat([
        torch.stack([focal[0] * ones, zeros, -offset[..., 0]], -1),
        torch.stack([zeros, focal[1] * ones, -offset[..., 1]], -1),
    ], 1)  # (B, 2P, 3)
    rhs = torch.cat([
        offset[..., 0] * camera_points[..., 2] - focal[0] * camera_points[..., 0],
        offset[..., 1] * camera_points[..., 2] - focal[1] * camera_points[..., 1],
    ], 1)
    weight = seen.confidence[:, :num].to(points).repeat(1, 2)
    normal = rows.transpose(1, 2) @ (weight[..., None] * rows)
    gradient = rows.transpose(1, 2) @ (weight * rhs).unsqueeze(-1)
    eye = torch.eye(3, dtype=points.dtype, device=points.device)
    fallback = points.new_tensor([0.0, 0.0, 3.0])
    tiny = 1e-9 * focal[0] ** 2
    solved = torch.linalg.solve(normal + tiny * eye, gradient + tiny * fallback[:, None]).squeeze(-1)
    return between_frames(solved)


def fit_focal(points: torch.Tensor, seen: ImageEvidence, prior_focal: float,
              prior_sigma: float, pixel_sigma: float) -> float:
    """The focal length (pixels) shared by B frames whose root-relative 3D points are known.

    With fx = fy = f and the principal point fixed, the projection equations are linear in
    f, f times the x and y of each frame's position and that position's depth:
        f X_i + (f t_x) - (u_i - cx) t_z = (u_i - cx) Z_i   (camera frame; same in y),
    each row divided by the frame's depth so that it counts in pixels, weighted by the
    keypoint's confidence over `pixel_sigma`. The per-frame unknowns are eliminated (Schur
    complement), the frames' evidence averaged (as much as one frame's: the frames of a clip
    share the front end's errors), and a prior (f - prior) / (prior_sigma prior) keeps f near
    the prior where the data cannot tell (a body far away, seen almost without perspective).

    Args:
        points: (B, P, 3) root-relative points in the scene frame (metres).
        seen: their keypoints and confidences (the camera's principal point is used).
        prior_focal: the prior's focal length, pixels.
        prior_sigma: relative spread of the prior.
        pixel_sigma: the keypoints' noise, pixels.
    """
    num = min(points.shape[1], seen.keypoints.shape[1])
    cam = between_frames(points[:, :num]).double()
    offset = (seen.keypoints[:, :num].to(cam) - seen.camera[:2, 2].to(cam))
    start = between_frames(place_in_camera(points, seen).double())
    depth = start[:, 2].clamp_min(MIN_DEPTH_M)
    weight = (seen.confidence[:, :num].to(cam) / pixel_sigma ** 2) / depth[:, None] ** 2
    zeros, ones = torch.zeros_like(offset[..., 0]), torch.ones_like(offset[..., 0])
    # Unknowns: [f | f t_x, f t_y, t_z] per frame.
    rows_x = torch.stack([cam[..., 0], ones, zeros, -offset[..., 0]], -1)
    rows_y = torch.stack([cam[..., 1], zeros, ones, -offset[..., 1]], -1)
    rows = torch.cat([rows_x, rows_y], 1)
    rhs = torch.cat([offset[..., 0] * cam[..., 2], offset[..., 1] * cam[..., 2]], 1)
    w = weight.repeat(1, 2)
    normal = rows.transpose(1, 2) @ (w[..., None] * rows)  # (B, 4, 4)
    gradient = (rows.transpose(1, 2) @ (w * rhs).unsqueeze(-1)).squeeze(-1)  # (B, 4)
    own = normal[:, 1:, 1:] + 1e-12 * torch.eye(3, dtype=cam.dtype)
    cross = normal[:, 0, 1:]
    reduced = normal[:, 0, 0] - (cross.unsqueeze(1) @ torch.linalg.solve(own, cross.unsqueeze(-1))).flatten()
    reduced_rhs = gradient[:, 0] - (cross.unsqueeze(1) @ torch.linalg.solve(own, gradient[:, 1:].unsqueeze(-1))).flatten()
    prior = 1.0 / (prior_sigma * prior_focal) ** 2
    # The frames' evidence is averaged, not summed: the frames of one clip share the front
    # end's errors (its depth scale), so more frames do not make the focal length surer.
    return float((reduced_rhs.mean() + prior * prior_focal) / (reduced.mean() + prior))


def _solve(normal: torch.Tensor, gradient: torch.Tensor, damping: float) -> torch.Tensor:
    """(B, n, n), (B, n) -> (B, n) the damped Gauss-Newton step (normal + damping I)^-1 g."""
    eye = torch.eye(normal.shape[-1], dtype=normal.dtype, device=normal.device)
    factor, _ = torch.linalg.cholesky_ex(normal + damping * eye)
    return torch.cholesky_solve(gradient.unsqueeze(-1), factor).squeeze(-1)


@dataclass(frozen=True)
class _Windows:
    """Overlapping windows over B frames: (Wn, L) frame rows, and which window keeps each."""

    rows: torch.Tensor  # (Wn, L) long
    keep: torch.Tensor  # (Wn, L) bool: this window's solution is the frame's


def _windows(count: int, device: torch.device) -> _Windows:
    """Windows of WINDOW frames (fewer if the batch is shorter), each keeping the frames
    nearest its middle, so every frame is solved with a few neighbours on either side."""
    length = min(WINDOW, count)
    starts = list(range(0, max(count - length, 0) + 1, WINDOW_STEP))
    if starts[-1] != count - length:
        starts.append(count - length)
    rows = torch.tensor([list(range(s, s + length)) for s in starts], device=device)
    centre = rows.float().mean(1)  # (Wn,)
    distance = (torch.arange(count, device=device)[:, None].float() - centre[None]).abs()
    inside = (rows[None] == torch.arange(count, device=device)[:, None, None]).any(-1)  # (B, Wn)
    owner = torch.where(inside, distance, torch.full_like(distance, float("inf"))).argmin(1)
    keep = owner[rows] == torch.arange(len(starts), device=device)[:, None]
    return _Windows(rows, keep)


def _window_step(windows: _Windows, normal: torch.Tensor, gradient: torch.Tensor,
                 moves: torch.Tensor, points: torch.Tensor, linked: torch.Tensor,
                 smooth: float, damping: float, grad: bool) -> torch.Tensor:
    """The Gauss-Newton step of every frame, each window solved jointly with the acceleration
    term  smooth |X_{t-1} - 2 X_t + X_{t+1}|^2  between linked frames.

    Args:
        normal, gradient: (B, n, n), (B, n) each frame's own terms.
        moves: (B, 3P, n) derivative of each frame's scene points; points: (B, 3P).
        linked: (B,) frame b follows frame b - 1.
    """
    rows, keep = windows.rows, windows.keep
    count, length = rows.shape
    n = normal.shape[-1]
    out_dtype = gradient.dtype
    # float64 throughout: a heavy acceleration weight (up to ~1e6 against data weights ~1e2)
    # makes the window's system stiff; float32 rounding of its entries would drown the data.
    normal, gradient, moves, points = normal.double(), gradient.double(), moves.double(), points.double()
    dtype, device = normal.dtype, normal.device
    # Second differences inside each window, only across linked frames: D (Wn, L-2, L).
    d = torch.zeros(count, max(length - 2, 0), length, dtype=dtype, device=device)
    if length >= 3:
        middle = torch.arange(1, length - 1, device=device)
        ok = (linked.to(device)[rows[:, 1:-1]] & linked.to(device)[rows[:, 2:]]).to(dtype)
        d[:, middle - 1, middle - 1] = ok
        d[:, middle - 1, middle] = -2 * ok
        d[:, middle - 1, middle + 1] = ok
    coupling = smooth * d.transpose(1, 2) @ d  # (Wn, L, L), pentadiagonal
    with torch.set_grad_enabled(grad):
        a = moves[rows]  # (Wn, L, 3P, n)
        # The window's normal matrix by its nonzero blocks: (t, t) and (t + o, t) for o = 1, 2.
        bands = []
        for offset in range(min(3, length)):
            t = torch.arange(length - offset, device=device)
            weight = coupling[:, t + offset, t][..., None, None]
            bands.append(weight * (a[:, offset:].transpose(-1, -2) @ a[:, :length - offset]))
        bands[0] = bands[0] + normal[rows]
    pulled = coupling @ points[rows]  # (Wn, L, 3P)
    total = gradient[rows] + (a.transpose(-1, -2) @ pulled.unsqueeze(-1)).squeeze(-1)
    step = _banded_solve(bands, total, damping)
    out = torch.zeros_like(gradient)
    return out.index_put((rows[keep],), step[keep]).to(out_dtype)


def _banded_solve(bands: list[torch.Tensor], rhs: torch.Tensor, damping: float) -> torch.Tensor:
    """Solve (A + damping I) x = rhs for symmetric block-banded A, batched over windows.

    Args:
        bands: A's lower blocks: bands[o] (Wn, L - o, n, n) holds A[t + o, t], o = 0, 1, 2
            (fewer when L < 3).
        rhs: (Wn, L, n).

    Block Cholesky A = F F^T with F's blocks on the same bands, then one sweep forward and
    one back: L small factorisations instead of one of size L n (a tenth of the work at
    L = 12, and no dense L n x L n matrix in memory).
    """
    length, n = rhs.shape[1], rhs.shape[2]
    eye = torch.eye(n, dtype=rhs.dtype, device=rhs.device)
    width = len(bands) - 1
    diag: list[torch.Tensor] = []  # F[t, t], lower triangular
    below: list[list[torch.Tensor]] = [[] for _ in range(width + 1)]  # below[o][t] = F[t + o, t]
    for t in range(length):
        block = bands[0][:, t] + damping * eye
        for o in range(1, min(width, t) + 1):
            block = block - below[o][t - o] @ below[o][t - o].transpose(-1, -2)
        factor, _ = torch.linalg.cholesky_ex(block)
        diag.append(factor)
        for o in range(1, width + 1):
            if t + o >= length:
                break
            block = bands[o][:, t]
            if o == 1 and t >= 1 and width >= 2:  # F[t + 1, t - 1] F[t, t - 1]^T
                block = block - below[2][t - 1] @ below[1][t - 1].transpose(-1, -2)
            # F[t + o, t] = block F[t, t]^-T
            below[o].append(torch.linalg.solve_triangular(
                factor, block.transpose(-1, -2), upper=False).transpose(-1, -2))
    forward: list[torch.Tensor] = []
    for t in range(length):
        value = rhs[:, t, :, None]
        for o in range(1, min(width, t) + 1):
            value = value - below[o][t - o] @ forward[t - o]
        forward.append(torch.linalg.solve_triangular(diag[t], value, upper=False))
    back: list[torch.Tensor] = [forward[0]] * length
    for t in reversed(range(length)):
        value = forward[t]
        for o in range(1, width + 1):
            if t + o < length:
                value = value - below[o][t].transpose(-1, -2) @ back[t + o]
        back[t] = torch.linalg.solve_triangular(diag[t].transpose(-1, -2), value, upper=True)
    return torch.stack(back, 1).squeeze(-1)
