"""The IKOL layer: batched, differentiable Gauss-Newton inverse kinematics on the SMPL tree.

From root-relative target points (24 joints, optionally the 5 leaf points), a body shape, twist
angles and leaf rotations to the 24 local joint rotations, following IKOL (Zhang et al., AAAI
2023) and the authors' code:

- The pelvis (root) and spine3 have several children. Each takes the rotation that best turns
  its rest child bones onto the target child bones (an SVD fit, `roma.special_procrustes`).
  The fit of spine3 over its three children fixes its rotation in the model frame, so it does
  not depend on the unknowns below.
- Every other joint j with one child c is `swing(theta_j) @ twist(phi_j)`. The twist turns
  about the rest bone t = rest[c] - rest[j] by the given angle phi_j. The swing turns by the
  unknown angle theta_j about the axis n = normalise(t x p), p being the target bone
  target[c] - target[j] carried into the parent's frame by the parent's current rotation. So
  the axis follows the parent: it depends on the swing angles of all ancestors.
- The five leaf joints (head, hands, feet) take the given leaf rotations.
- Gauss-Newton on the swing angles for the squared distance between the posed and target
  points: delta = (J^T J + u I)^-1 J^T r; the paper starts from zero swing with u = 0.1 and
  five iterations, which are the defaults. The Jacobian J is built in closed form (columns
  propagated down the tree, including how each axis moves with its ancestors). In the
  backward pass J is a constant (GN-Diff); autograd runs through the residuals of the
  unrolled iterations.

Beyond the paper: other starting points (every bone aimed at its target in one closed-form
sweep, which is exact without noise, or a warm start from the previous frame's swing angles),
configurable iterations and damping, betas fitted from bone lengths when none are given, and a
twist-free mode: without twist angles every joint takes the minimal twist (phi = 0), and
without leaf rotations the hands, feet and head get a swing unknown toward their leaf keypoint
(middle finger tip, big toe, head top) when the targets have those points, or no rotation when
they do not. For the image-aligned fit (`image_fit`), `SwingProblem.pose` also takes plane
turns that turn each swing's axis about its rest bone (a two-degree-of-freedom swing), with
their own closed-form Jacobian columns. docs/ik_layer.md has the measurements behind the
choices.

Frames and units: the SMPL model frame (Y up, X to the body's left, Z forward), metres,
radians. Rotations are local (relative to the parent, in a frame equal to the model frame at
rest); joint 0 is the global orientation. Every tensor is batched (leading B), float32 or
float64, on any device; no Python loop runs over the batch.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import roma
import torch

from ..body.model import BodyModel
from ..body.tree import LEAF_PARENTS, NUM_JOINTS, NUM_POINTS, PARENTS, POINT_PARENTS, children
from .shape_fit import fit_betas

SPINE3 = 9
ROOT_CHILDREN: tuple[int, ...] = (1, 2, 3)
SPINE3_CHILDREN: tuple[int, ...] = (12, 13, 14)
# Joints with a swing unknown in the published layer: 1-8, 12-14, 16-21 (spine3, which the
# paper also lists, is fitted by SVD at test time, so its angle would have no effect).
PUBLISHED_SWING_JOINTS: tuple[int, ...] = tuple(
    j for j in range(1, NUM_JOINTS) if j != SPINE3 and j not in LEAF_PARENTS
)
# The point whose rest bone each joint twists about: its first child (spine3: the neck).
TWIST_CHILD: tuple[int, ...] = tuple(kids[0] for kids in children()[:NUM_JOINTS])
_LEAF_SLOT = {joint: slot for slot, joint in enumerate(LEAF_PARENTS)}
_AXIS_EPS = 1e-12  # m^2: below this |t x p|, the bone is taken as aligned

JacobianFn = Callable[["SwingProblem", torch.Tensor, "SwingPose"], torch.Tensor]


@dataclass(frozen=True)
class IKResult:
    """What the layer returns.

    Attributes:
        rotmats: (B, 24, 3, 3) local joint rotations, joint 0 global.
        swing: (B, K) swing angles (radians) of `swing_joints`; pass back as `init` to
            warm-start the next frame.
        swing_joints: the joint of each column of `swing`.
        points: (B, 29, 3) posed joints and leaf points, pelvis at the origin (metres).
        betas: (B, 10) the shape used (given or fitted).
    """

    rotmats: torch.Tensor
    swing: torch.Tensor
    swing_joints: tuple[int, ...]
    points: torch.Tensor
    betas: torch.Tensor

    def poses(self) -> torch.Tensor:
        """(B, 24, 3) axis-angle poses (radians), SMPL order."""
        return roma.rotmat_to_rotvec(self.rotmats)


def ikol(
    body: BodyModel,
    targets: torch.Tensor,
    betas: torch.Tensor | None = None,
    twist: torch.Tensor | None = None,
    leaf_rotmats: torch.Tensor | None = None,
    *,
    init: torch.Tensor | str = "zero",
    iterations: int = 5,
    damping: float = 0.1,
    jacobian_grad: bool = False,
) -> IKResult:
    """Solve for the joint rotations that pose `body` onto `targets`.

    Args:
        body: the skeleton (default skeleton, SMPL file or stand-in).
        targets: (B, 24, 3) joints or (B, 29, 3) joints and leaf points, model frame, metres.
            Only positions relative to the pelvis matter.
        betas: (B, 10) shape; None fits it from the target bone lengths.
        twist: (B, 23, 2) (cos, sin) of the twist angle of joints 1-23 about their rest bone
            (need not be normalised); None gives the minimal-twist prior (zero twist).
        leaf_rotmats: (B, 5, 3, 3) local rotations of the leaf joints 15, 22, 23, 10, 11 (head,
            hands, feet); None swings them toward the leaf points when `targets` has 29 points
            and leaves them unrotated otherwise.
        init: where Gauss-Newton starts: "zero" (zero swing, as in the paper), "analytic"
            (every bone aimed at its target in one sweep down the tree, see
            `SwingProblem.aim`), or (B, K) swing angles, e.g. the previous frame's
            `IKResult.swing` (warm start).
        iterations: Gauss-Newton iterations (paper: 5).
        damping: u in (J^T J + u I), m^2 (paper: 0.1).
        jacobian_grad: if True, autograd also runs through the closed-form Jacobian (the exact
            derivative of the unrolled solver) instead of treating it as a constant (GN-Diff).
    """
    problem = SwingProblem.build(body, targets, betas, twist, leaf_rotmats)
    if isinstance(init, torch.Tensor):
        expected = (targets.shape[0], len(problem.plan.swing_joints))
        if init.shape != expected:
            raise ValueError(f"init swing angles must be {expected} here, got {tuple(init.shape)}")
        start = problem.pose(init.to(problem.targets))
    elif init == "zero":
        start = problem.pose(problem.zero_swing())
    elif init == "analytic":
        start = problem.pose(None)
    else:
        raise ValueError(f"init must be 'zero', 'analytic' or a tensor, got {init!r}")
    return problem.result(
        gauss_newton(problem, start, iterations, damping, closed_form_jacobian, jacobian_grad)
    )


def twist_from_rotmats(local_rotmats: torch.Tensor, rest_points: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) local rotations, (B, 29, 3) rest points -> (B, 23, 2) twist (cos, sin).

    The twist of joint j is the angle of its rotation about its rest bone toward TWIST_CHILD[j]
    in the swing-twist decomposition (rotation = swing @ twist), for joints 1-23.
    """
    quat = roma.rotmat_to_unitquat(local_rotmats[:, 1:])  # (x, y, z, w)
    child = torch.tensor(TWIST_CHILD[1:], device=rest_points.device)
    bone = rest_points[:, child] - rest_points[:, 1:NUM_JOINTS]
    along = (quat[..., :3] * torch.nn.functional.normalize(bone, dim=-1)).sum(-1)
    angle = 2.0 * torch.atan2(along, quat[..., 3])
    return torch.stack([angle.cos(), angle.sin()], dim=-1)


@dataclass(frozen=True)
class _Plan:
    """The tree as chains, and where each number of the solver lives.

    The pelvis and spine3 are the only joints with several children, and both have rotations
    that the swing angles do not change (SVD fits). The rest of the tree is six chains hanging
    from them: the legs and the lower spine from the pelvis, the neck and the arms from spine3.
    Each chain joint has one child point. Chains are padded to a common length, so that each
    step down the chains is one batched operation; a "slot" is (chain, step), flattened.
    """

    chains: tuple[tuple[int, ...], ...]
    steps: int
    num_targets: int
    swing_joints: tuple[int, ...]  # joint of each unknown, in column order
    base: tuple[int, ...]  # per chain: the fixed joint it hangs from (pelvis or spine3)
    slot_joint: tuple[int, ...]  # per slot: its joint, -1 for padding
    slot_child: tuple[int, ...]  # per slot: its child point, -1 for padding
    slot_unknown: tuple[bool, ...]  # per slot: has a swing unknown
    column_slot: tuple[int, ...]  # per unknown: its slot
    joint_source: tuple[int, ...]  # per joint: row in [pelvis, slots..., spine3]
    spine2_slot: int
    point_row: tuple[int, ...]  # per point 1-28: its row in [chains' first joints, slots' children]
    below_spine3: tuple[bool, ...]  # per point 1-28: in a chain hanging from spine3
    jacobian_source: tuple[int, ...]  # nonzeros of the Jacobian: slot * S + step of the velocity
    jacobian_target: tuple[int, ...]  # nonzeros of the Jacobian: point * K + column


@lru_cache(maxsize=8)
def _plan(leaf_swing: bool, num_targets: int) -> _Plan:
    kids = children()
    chains: list[tuple[int, ...]] = []
    base: list[int] = []
    for fixed in (0, SPINE3):
        for first in kids[fixed]:
            chain = [first]
            while (nxt := kids[chain[-1]][0]) < NUM_JOINTS and nxt != SPINE3:
                chain.append(nxt)
            chains.append(tuple(chain))
            base.append(fixed)
    steps = max(len(chain) for chain in chains)
    slot_joint = [chain[s] if s < len(chain) else -1 for chain in chains for s in range(steps)]
    swing = sorted(j for j in slot_joint if j in PUBLISHED_SWING_JOINTS or
                   (leaf_swing and j in LEAF_PARENTS))
    slot_of = {joint: slot for slot, joint in enumerate(slot_joint) if joint >= 0}
    column_slot = tuple(slot_of[j] for j in swing)
    slot_child = [kids[j][0] if j >= 0 else -1 for j in slot_joint]
    joint_source = [0] * NUM_JOINTS
    for joint, slot in slot_of.items():
        joint_source[joint] = 1 + slot
    joint_source[SPINE3] = 1 + len(slot_joint)
    # Each point is the child of one bone: from a chain's base to its first joint, or from a
    # slot's joint to its child. Its place is its chain's base plus the bones down the chain.
    bone_child = [chain[0] for chain in chains] + slot_child
    point_row = tuple(bone_child.index(point) for point in range(1, NUM_POINTS))
    chain_of_row = list(range(len(chains))) + [slot // steps for slot in range(len(slot_child))]

    # Point i moves with the unknowns of the slot whose child it is (that slot's velocity) and,
    # rigidly, with those of every chain ending at a fixed joint above it (the velocity there).
    child_slot = {child: slot for slot, child in enumerate(slot_child) if child >= 0}
    source, target = [], []
    for point in range(1, num_targets):
        parent = POINT_PARENTS[point]
        slots = [slot_of[parent]] if parent in slot_of else []
        fixed = base[slot_of[parent] // steps] if parent in slot_of else parent
        while fixed != 0:
            slots.append(child_slot[fixed])
            fixed = base[child_slot[fixed] // steps]
        for slot in slots:
            first = slot - slot % steps
            for upstream in range(first, slot + 1):
                if slot_joint[upstream] in swing:
                    source.append(slot * steps + upstream % steps)
                    target.append(point * len(swing) + swing.index(slot_joint[upstream]))
    return _Plan(
        chains=tuple(chains),
        steps=steps,
        num_targets=num_targets,
        swing_joints=tuple(swing),
        base=tuple(base),
        slot_joint=tuple(slot_joint),
        slot_child=tuple(slot_child),
        slot_unknown=tuple(j in swing for j in slot_joint),
        column_slot=column_slot,
        joint_source=tuple(joint_source),
        spine2_slot=slot_of[PARENTS[SPINE3]],
        point_row=point_row,
        below_spine3=tuple(base[chain_of_row[row]] == SPINE3 for row in point_row),
        jacobian_source=tuple(source),
        jacobian_target=tuple(target),
    )


@dataclass(frozen=True)
class _Tables:
    """A plan's index lists and masks as tensors on one device (C chains of S steps: C * S
    slots; K unknowns).

    Slot tables index a (B, 30, ...) stack of the 29 points plus a zero row (index 29, used for
    padding).
    """

    column_slot: torch.Tensor  # (K,) the slot of each unknown
    joint_source: torch.Tensor  # (24,) each joint's row in [pelvis, slots..., spine3]
    jacobian_source: torch.Tensor  # Jacobian nonzeros: indices into the flattened velocities
    jacobian_target: torch.Tensor  # Jacobian nonzeros: indices into the flattened Jacobian
    first_joint: torch.Tensor  # (C,) each chain's first joint
    slot_child: torch.Tensor  # (C * S,) each slot's child point
    slot_aimed: torch.Tensor  # (C * S,) the child point a slot's swing aims at
    slot_origin: torch.Tensor  # (C * S,) the joint that aim starts from
    turn_source: torch.Tensor  # (C * S,) into [identity, twists of joints 1-23, leaves]
    unknown: torch.Tensor  # (C, S) 1 where the slot has a swing unknown
    point_row: torch.Tensor  # (28,) each point's row in [first joints (C), slot children (C * S)]
    below_spine3: torch.Tensor  # (28, 1) 1 where the point hangs from spine3
    spine3_row: int  # spine3's row (the child of spine2's slot)


@dataclass(frozen=True)
class SwingPose:
    """Forward kinematics at some swing angles, with what the Jacobian needs.

    Per-slot tensors are (B, C, S, ...) for C chains of S steps.
    """

    swing: torch.Tensor  # (B, K) the swing angles
    points: torch.Tensor  # (B, 29, 3)
    slot_local: torch.Tensor  # (B, C, S, 3, 3) local rotation of each slot's joint
    angle: torch.Tensor  # (B, C, S) swing angle per slot (0 where no unknown)
    plane_turn: torch.Tensor | None  # (B, C, S) turn of each swing's plane about its rest
    # bone; None where no turn was asked for (the paper's planes)
    parent_global: torch.Tensor  # (B, C, S, 3, 3) global rotation of each slot's parent
    axis: torch.Tensor  # (B, C, S, 3) unit swing axis (its plane turned), parent frame
    cross_norm: torch.Tensor  # (B, C, S, 1) |t x p|
    carried: torch.Tensor  # (B, C, S, 3) target child bone p in the parent frame
    child_bone: torch.Tensor  # (B, C, S, 3) posed bone from each slot's joint to its child


@dataclass(frozen=True)
class SwingProblem:
    """Everything about one batch that does not change over the iterations."""

    plan: _Plan
    betas: torch.Tensor  # (B, 10)
    targets: torch.Tensor  # (B, P, 3) root-relative, P = 24 or 29
    first_rest: torch.Tensor  # (B, C, 3) rest bone from each chain's base to its first joint
    child_rest: torch.Tensor  # (B, C, S, 3) t: rest bone to each slot's child (0: padding)
    child_target: torch.Tensor  # (B, C, S, 3) d: target bone to each slot's child (0: none)
    turn: torch.Tensor  # (B, C, S, 3, 3) twist of a swing slot, rotation of a given leaf
    unknown: torch.Tensor  # (C, S) 1 where the slot has a swing unknown
    base: torch.Tensor  # (B, C, 3, 3) global rotation of each chain's fixed base joint
    root: torch.Tensor  # (B, 3, 3) global rotation of the pelvis
    spine3: torch.Tensor  # (B, 3, 3) global rotation of spine3
    tables: _Tables  # the plan's tables on the batch's device

    @staticmethod
    def build(
        body: BodyModel,
        targets: torch.Tensor,
        betas: torch.Tensor | None,
        twist: torch.Tensor | None,
        leaf_rotmats: torch.Tensor | None,
    ) -> "SwingProblem":
        """Prepare a batch; arguments as for `ikol`."""
        if targets.dim() != 3 or targets.shape[1] not in (NUM_JOINTS, NUM_POINTS) or targets.shape[2] != 3:
            raise ValueError(f"targets must be (B, 24, 3) or (B, 29, 3), got {tuple(targets.shape)}")
        batch, num_targets = targets.shape[:2]
        targets = targets - targets[:, :1]
        betas = fit_betas(body, targets) if betas is None else betas.to(targets)
        rest = body.rest_points(betas)
        parents = list(POINT_PARENTS[1:])
        rest_bone = torch.cat([torch.zeros_like(rest[:, :1]), rest[:, 1:] - rest[:, parents]], 1)
        plan = _plan(leaf_rotmats is None and num_targets == NUM_POINTS, num_targets)
        chains, steps = len(plan.chains), plan.steps
        tables = _tables(plan, targets.device, targets.dtype)

        def per_slot(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            """Rows of (B, N, ...) picked by a slot table (N = 29 or 24: no row, zeros)."""
            missing = NUM_POINTS + 1 - values.shape[1]
            padding = torch.zeros_like(values[:, :1]).expand(-1, missing, *values.shape[2:])
            picked = torch.cat([values, padding], 1)[:, index]
            return picked.view(batch, chains, steps, *values.shape[2:])

        child_rest = per_slot(rest_bone, tables.slot_child)
        # Target bones only where a swing aims at them (a given leaf joint needs none).
        child_target = per_slot(targets, tables.slot_aimed) - per_slot(targets, tables.slot_origin)
        # Each slot's fixed rotation: the twist of a swing joint, or the given leaf rotation.
        eye = torch.eye(3, dtype=targets.dtype, device=targets.device)
        if twist is None:
            twist_rot = eye.expand(batch, NUM_JOINTS - 1, 3, 3)
        else:
            angle = torch.atan2(twist[..., 1], twist[..., 0]).to(targets)  # joints 1-23
            axis = torch.nn.functional.normalize(rest_bone[:, list(TWIST_CHILD[1:])], dim=-1)
            twist_rot = roma.rotvec_to_rotmat(angle.unsqueeze(-1) * axis)
        if leaf_rotmats is None:
            leaf = eye.expand(batch, len(LEAF_PARENTS), 3, 3)
        else:
            leaf = leaf_rotmats.to(targets)
        rotations = torch.cat([eye.expand(batch, 1, 3, 3), twist_rot, leaf], 1)
        turn = rotations[:, tables.turn_source].view(batch, chains, steps, 3, 3)

        root, spine3 = _fit_rotations(rest_bone, targets, ((0, ROOT_CHILDREN), (SPINE3, SPINE3_CHILDREN)))
        return SwingProblem(
            plan=plan,
            betas=betas,
            targets=targets,
            first_rest=rest_bone[:, tables.first_joint],
            child_rest=child_rest,
            child_target=child_target,
            turn=turn,
            unknown=tables.unknown,
            base=torch.stack([root if b == 0 else spine3 for b in plan.base], 1),
            root=root,
            spine3=spine3,
            tables=tables,
        )

    def zero_swing(self) -> torch.Tensor:
        """(B, K) zero swing angles, the paper's starting point."""
        return self.targets.new_zeros(self.targets.shape[0], len(self.plan.swing_joints))

    def aim(self) -> torch.Tensor:
        """(B, K) the swing angles that aim each rest bone exactly at its target bone.

        One sweep down the tree (HybrIK-style closed-form IK with the given twist): each angle
        is the one between the rest bone and the target bone carried into the parent's frame.
        Exact for noise-free targets; a starting point for Gauss-Newton otherwise.
        """
        return self.pose(None).swing

    def pose(self, theta: torch.Tensor | None, plane_turn: torch.Tensor | None = None) -> SwingPose:
        """Forward kinematics at swing angles theta (B, K); None aims every bone (see `aim`).

        plane_turn: (B, K) turns each swing's plane about its rest bone (radians, right-handed
        about t): the axis n = normalise(t x p) becomes cos(a) n + sin(a) t^ x n, so that swing
        angle and plane turn together reach any direction of the bone (a two-degree-of-freedom
        swing). None: the planes of the rest and target bones (a = 0), as in the paper.
        """
        batch = self.targets.shape[0]
        chains, steps = self.unknown.shape

        def per_slot(columns: torch.Tensor) -> torch.Tensor:
            slots = self.targets.new_zeros(batch, chains * steps)
            return slots.index_copy(1, self.tables.column_slot, columns).view(batch, chains, steps)

        slot_angle = None if theta is None else per_slot(theta).unsqueeze(-1)
        slot_turn = None if plane_turn is None else per_slot(plane_turn)
        if slot_turn is not None:
            along = torch.nn.functional.normalize(self.child_rest, dim=-1)
            turn_cos, turn_sin = slot_turn.cos().unsqueeze(-1), slot_turn.sin().unsqueeze(-1)
        frame = self.base
        frames, locals_, axes, norms, carried_all, angles = [], [], [], [], [], []
        for s in range(steps):
            rest = self.child_rest[:, :, s]
            carried = (frame.transpose(-1, -2) @ self.child_target[:, :, s].unsqueeze(-1)).squeeze(-1)
            cross = torch.linalg.cross(rest, carried)
            cross_norm = cross.norm(dim=-1, keepdim=True).clamp_min(_AXIS_EPS)
            axis = cross / cross_norm
            if slot_turn is not None:
                axis = turn_cos[:, :, s] * axis + turn_sin[:, :, s] * torch.linalg.cross(along[:, :, s], axis)
            if slot_angle is None:
                dot = (rest * carried).sum(-1, keepdim=True)
                angle = torch.atan2(cross_norm, dot) * self.unknown[:, s].unsqueeze(-1)
            else:
                angle = slot_angle[:, :, s]
            local = _turn(axis, angle) @ self.turn[:, :, s]
            frames.append(frame)
            frame = frame @ local
            locals_.append(local)
            axes.append(axis)
            norms.append(cross_norm)
            carried_all.append(carried)
            angles.append(angle.squeeze(-1))
        parent_global, slot_local, angle = _stack(frames), _stack(locals_), _stack(angles)
        child_bone = (parent_global @ slot_local @ self.child_rest.unsqueeze(-1)).squeeze(-1)
        # Places relative to each chain's base: its first joint, then the bones down the chain.
        first_bone = (self.base @ self.first_rest.unsqueeze(-1)).squeeze(-1)
        below = first_bone.unsqueeze(2) + child_bone.cumsum(2)
        rows = torch.cat([first_bone, below.flatten(1, 2)], 1)
        spine3 = rows[:, self.tables.spine3_row].unsqueeze(1)
        points = rows[:, self.tables.point_row] + self.tables.below_spine3 * spine3
        return SwingPose(
            swing=angle.flatten(1)[:, self.tables.column_slot] if theta is None else theta,
            points=torch.cat([torch.zeros_like(points[:, :1]), points], 1),
            slot_local=slot_local,
            angle=angle,
            plane_turn=slot_turn,
            parent_global=parent_global,
            axis=_stack(axes),
            cross_norm=_stack(norms),
            carried=_stack(carried_all),
            child_bone=child_bone,
        )

    def local_rotmats(self, pose: SwingPose) -> torch.Tensor:
        """(B, 24, 3, 3) local joint rotations of a pose, joint 0 global."""
        slot_local = pose.slot_local.flatten(1, 2)
        k = self.plan.spine2_slot
        spine2 = pose.parent_global.flatten(1, 2)[:, k] @ slot_local[:, k]
        spine3 = spine2.transpose(-1, -2) @ self.spine3
        rotations = torch.cat([self.root.unsqueeze(1), slot_local, spine3.unsqueeze(1)], 1)
        return rotations[:, self.tables.joint_source]

    def residual(self, pose: SwingPose) -> torch.Tensor:
        """(B, 3P) posed minus target points, metres."""
        num = self.targets.shape[1]
        return (pose.points[:, :num] - self.targets).flatten(1)

    def result(self, pose: SwingPose) -> IKResult:
        return IKResult(self.local_rotmats(pose), pose.swing, self.plan.swing_joints, pose.points, self.betas)


def gauss_newton(
    problem: SwingProblem,
    pose: SwingPose,
    iterations: int,
    damping: float,
    jacobian: JacobianFn,
    jacobian_grad: bool = False,
) -> SwingPose:
    """Damped Gauss-Newton on the swing angles: theta -= (J^T J + u I)^-1 J^T r.

    Starts from `pose` (`problem.pose(theta)`) and returns the pose after `iterations` steps.
    Unless `jacobian_grad`, the Jacobian is built without autograd, so the backward pass
    treats it as a constant.
    """
    theta = pose.swing
    eye = torch.eye(theta.shape[1], dtype=theta.dtype, device=theta.device)
    for _ in range(iterations):
        residual = problem.residual(pose)
        with torch.set_grad_enabled(jacobian_grad and torch.is_grad_enabled()):
            jac = jacobian(problem, theta, pose)
            normal = jac.transpose(1, 2) @ jac + damping * eye
            factor, _ = torch.linalg.cholesky_ex(normal)
        step = torch.cholesky_solve(jac.transpose(1, 2) @ residual.unsqueeze(-1), factor)
        theta = theta - step.squeeze(-1)
        pose = problem.pose(theta)
    return pose


def closed_form_jacobian(problem: SwingProblem, theta: torch.Tensor, pose: SwingPose,
                         plane_columns: bool = False) -> torch.Tensor:
    """(B, 3P, K) derivative of the posed target points with respect to the swing angles;
    (B, 3P, 2K) with `plane_columns`: then also with respect to the plane turns (`pose`).

    Walks down the chains with each joint's spatial angular velocity w (3 x S per chain: one
    column per step's swing angle, and one per step's plane turn; dG = [w]x G). For a slot
    with parent rotation G_q, axis n (its plane turned by a about the rest bone t), angle
    theta and carried target bone p, a change dn of the axis turns the joint by
    R dn = sin(theta) dn + (1 - cos(theta)) n x dn, so
        w = w_q + G_q R dn + G_q n e_theta + G_q R (t^ x n) e_a,
        dn = R_t(a) (I - n0 n0^T) (t x (p x G_q^T w_q)) / |t x p|   (n0: the unturned axis),
    the dn term being how the swing moves when its axis follows the parent; it vanishes where
    theta = 0 (given leaf rotations). The chains start from fixed joints (w = 0). A point's
    velocity is the sum of w x (posed bone) over the slots above it in its chain, plus the
    velocity of the fixed joint its chain hangs from (spine3 moves rigidly with the spine).
    """
    batch = theta.shape[0]
    chains, steps = problem.unknown.shape
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    # R = sin (I - n n^T) + (1 - cos) [n]x maps a change of the axis to the joint's turn.
    sin, cos = pose.angle.sin()[..., None, None], pose.angle.cos()[..., None, None]
    axis = pose.axis
    rotate = sin * (eye - axis.unsqueeze(-1) * axis.unsqueeze(-2)) + (1 - cos) * skew(axis)
    unknown = problem.unknown[..., None]
    seeds = [(pose.parent_global @ axis.unsqueeze(-1)).squeeze(-1) * unknown]
    if plane_columns or pose.plane_turn is not None:
        along = torch.nn.functional.normalize(problem.child_rest, dim=-1)
    if plane_columns:
        spin = rotate @ torch.linalg.cross(along, axis).unsqueeze(-1)
        seeds.append((pose.parent_global @ spin).squeeze(-1) * unknown)
    # M maps the parent's angular velocity to the turn by dn, both in the parent frame: with
    # [t]x [p]x = p t^T - (t.p) I and R (I - n n^T) = R,
    # M = R R_t(a) [t]x [p]x / |t x p| = ((R R_t p) t^T - (t.p) R R_t) / |t x p|.
    # The first step's parent (a fixed joint) does not move, so its transfer is never used.
    # (R_t(a) = I where no plane turn was asked for.)
    rest, carried, rotate = problem.child_rest[:, :, 1:], pose.carried[:, :, 1:], rotate[:, :, 1:]
    if pose.plane_turn is not None:
        rotate = rotate @ _turn(along[:, :, 1:], pose.plane_turn[:, :, 1:, None])
    turned = rotate @ carried.unsqueeze(-1)
    dot = (rest * carried).sum(-1, keepdim=True).unsqueeze(-1)
    m = (turned * rest.unsqueeze(-2) - dot * rotate) / pose.cross_norm[:, :, 1:].unsqueeze(-1)
    frame = pose.parent_global[:, :, 1:]
    transfer = eye + frame @ m @ frame.transpose(-1, -2)  # (B, C, S - 1, 3, 3)
    seed = torch.stack(seeds, -1)  # (B, C, S, 3, kinds)
    kinds = seed.shape[-1]
    columns = torch.eye(steps, dtype=theta.dtype, device=theta.device)
    # Columns: every kind's S steps, kind-major (theta's, then the plane turns').
    omega = (seed[:, :, 0, :, :, None] * columns[0]).flatten(-2)  # (B, C, 3, kinds * S)
    omegas = [omega]
    for s in range(1, steps):
        omega = transfer[:, :, s - 1] @ omega + (seed[:, :, s, :, :, None] * columns[s]).flatten(-2)
        omegas.append(omega)
    omega = torch.stack(omegas, 2)  # (B, C, S, 3, kinds * S)
    velocity = -(skew(pose.child_bone) @ omega).cumsum(2)  # w x bone = -[bone]x w
    num, num_swing = problem.targets.shape[1], theta.shape[1]
    parts = []
    for kind in range(kinds):
        jac = velocity.new_zeros(batch, 3 * num * num_swing)
        nonzeros = velocity[..., kind * steps:(kind + 1) * steps].flatten(1)[:, problem.tables.jacobian_source]
        jac.index_copy_(1, problem.tables.jacobian_target, nonzeros)
        parts.append(jac.view(batch, 3 * num, num_swing))
    return torch.cat(parts, -1)


@lru_cache(maxsize=32)
def _tables(plan: _Plan, device: torch.device, dtype: torch.dtype) -> _Tables:
    """The plan's tables on `device`, masks in `dtype`."""
    chains, steps = len(plan.chains), plan.steps

    def long(values: list[int] | tuple[int, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    pad = NUM_POINTS
    aims = [u and c < plan.num_targets for c, u in zip(plan.slot_child, plan.slot_unknown)]
    given = [j in LEAF_PARENTS and not u for j, u in zip(plan.slot_joint, plan.slot_unknown)]
    # Nonzeros of the Jacobian, per coordinate x: from the velocities (B, C, S, 3, S) flattened,
    # to the Jacobian (B, P, 3, K) flattened.
    num_swing, x = len(plan.swing_joints), torch.arange(3).unsqueeze(0)
    source = torch.tensor(plan.jacobian_source).unsqueeze(1)
    target = torch.tensor(plan.jacobian_target).unsqueeze(1)
    return _Tables(
        column_slot=long(plan.column_slot),
        joint_source=long(plan.joint_source),
        jacobian_source=(((source // steps) * 3 + x) * steps + source % steps).flatten().to(device),
        jacobian_target=(((target // num_swing) * 3 + x) * num_swing + target % num_swing)
        .flatten().to(device),
        first_joint=long([chain[0] for chain in plan.chains]),
        slot_child=long([c if c >= 0 else pad for c in plan.slot_child]),
        slot_aimed=long([c if a else pad for c, a in zip(plan.slot_child, aims)]),
        slot_origin=long([j if a else pad for j, a in zip(plan.slot_joint, aims)]),
        turn_source=long([NUM_JOINTS + _LEAF_SLOT[j] if g else max(j, 0)
                          for j, g in zip(plan.slot_joint, given)]),
        unknown=torch.tensor(plan.slot_unknown, dtype=dtype, device=device).view(chains, steps),
        point_row=long(plan.point_row),
        below_spine3=torch.tensor(plan.below_spine3, dtype=dtype, device=device).unsqueeze(-1),
        spine3_row=plan.point_row[SPINE3 - 1],
    )


def _turn(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations by `angle` (..., 1) radians about the unit `axis` (..., 3), the
    identity where the axis is zero (Rodrigues: I + sin [n]x + (1 - cos) [n]x^2)."""
    cross = skew(axis)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + angle.sin().unsqueeze(-1) * cross + (1 - angle.cos()).unsqueeze(-1) * (cross @ cross)


def _stack(per_step: list[torch.Tensor]) -> torch.Tensor:
    """Per-step (B, C, ...) tensors -> (B, C, S, ...)."""
    return torch.stack(per_step, 2)


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices: skew(a) @ b = a x b."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


def _fit_rotations(
    rest_bone: torch.Tensor, targets: torch.Tensor, fits: tuple[tuple[int, tuple[int, ...]], ...]
) -> tuple[torch.Tensor, ...]:
    """Per (joint, kids) of `fits`: the (B, 3, 3) global rotation best turning the rest bones
    to `kids` onto the target ones (one batched SVD fit for all; kids of equal count)."""
    matrices = [(targets[:, list(kids)] - targets[:, joint:joint + 1]).transpose(1, 2)
                @ rest_bone[:, list(kids)] for joint, kids in fits]
    return roma.special_procrustes(torch.cat(matrices)).split(targets.shape[0])
