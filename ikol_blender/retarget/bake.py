"""Retarget an SMPL armature's motion onto another armature: the entry point (bpy).

`retarget` samples the source at every frame of its action, turns its joints' world rotations
into the target bones' (transfer), moves the target's root along the scaled source path, pins
planted feet if asked (footlock), solves pose-bone values (skeleton) and bakes them into a new
action on the target with `keyframes.write_keys`. It then lets Blender evaluate the target
at every frame and corrects the keys until every driven bone has the wanted rotation: rigs whose
controls move through constraints (Rigify's FK chains hang from constraint-driven bones) need
this; plain rigs match at once. The source is only read.
"""

import math
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ..keyframes import write_keys
from ..smpl import JOINT_NAMES
from . import footlock
from .bonemap import BoneMap, builtin_presets, detect, resolve
from .rig import read_skeleton, sample_pose
from .skeleton import (Bases, Skeleton, corrected_bases, driven_parents, polar_rotation,
                       rotation_angles, solve_bases)
from .transfer import LEGS, alignments, facing_rotation, leg_length, root_path, target_rotations

# The SMPL armature faces -Y in its own space (the model's +Z, turned Z-up).
SMPL_FORWARD = np.array([0.0, -1.0, 0.0])
ROOT_TOLERANCE = 1e-4  # world units
UNEVEN_SCALE = 1e-4  # relative: object scales that differ more between axes are refused


class RetargetError(ValueError):
    """Retargeting cannot start; the message says why."""


@dataclass(frozen=True)
class RetargetOptions:
    """How to retarget.

    Attributes:
        in_place: keep the root over its rest position (vertical motion only).
        root_scale: factor on the root's displacement; None for the target's leg length over
            the source's (1 when either rig has no mapped leg).
        foot_lock: pin planted feet (footlock module).
        passes: most evaluate-and-correct rounds.
        tolerance: stop once every driven bone is this close to its wanted rotation (radians).
    """

    in_place: bool = False
    root_scale: float | None = None
    foot_lock: bool = False
    passes: int = 4
    tolerance: float = math.radians(0.05)


@dataclass(frozen=True)
class RetargetResult:
    """What was baked, and how close Blender's evaluation came to it.

    Attributes:
        action: the new action, assigned to the target.
        bone_map: the map as resolved on the target (only bones it has).
        frames: first and last frame baked.
        root_scale: the factor applied to the root's displacement.
        error: largest angle between a driven bone's evaluated and wanted rotation (radians).
        root_error: largest distance of the root bone's head from its path (world units).
        passes: evaluate rounds used.
        planted: frames with a foot pinned, both feet counted (0 without foot lock).
        sliding: mean horizontal speed of planted ankles, from planted frame to planted
            frame, before and after the lock (m/s); None without foot lock or contacts.
        foot_lock: whether foot lock was asked for.
    """

    action: bpy.types.Action
    bone_map: BoneMap
    frames: tuple[int, int]
    root_scale: float
    error: float
    root_error: float
    passes: int
    planted: int
    sliding: tuple[float, float] | None
    foot_lock: bool = False

    def describe(self) -> str:
        """One line for people: what was baked, how close, and what foot lock did."""
        first, last = self.frames
        text = (f"{self.action.name}: {len(self.bone_map.pairs)} bones ({self.bone_map.name}), "
                f"frames {first}-{last}, root x{self.root_scale:.3f}, "
                f"off by {math.degrees(self.error):.2f}° at most")
        if self.sliding is not None:
            before, after = self.sliding
            text += (f"; feet planted {self.planted} frames, "
                     f"sliding {before:.3f} -> {after:.3f} m/s")
        elif self.foot_lock:
            text += "; foot lock found no planted feet: nothing was locked"
        return text


def retarget(source: bpy.types.Object, target: bpy.types.Object, bone_map: BoneMap | None = None,
             options: RetargetOptions = RetargetOptions()) -> RetargetResult:
    """Bake `source`'s motion onto `target` as a new action (the previous one keeps a fake user).

    Args:
        source: an SMPL armature (bones named after SMPL joints) with an action.
        target: any armature standing upright along world Z.
        bone_map: SMPL joint to target bone pairs; None to detect a built-in preset.
    """
    bone_map = resolve(_choose_map(target, bone_map), [bone.name for bone in target.data.bones])
    frames = _check(source, target, bone_map)
    scene = bpy.context.scene
    now = scene.frame_current
    try:
        return _retarget(source, target, bone_map, frames, options)
    finally:
        scene.frame_set(now)


def uneven_scale(linear: np.ndarray, tolerance: float = UNEVEN_SCALE) -> tuple[float, ...] | None:
    """The scale along each axis of a (3, 3) world matrix when it is not the same along all of
    them (or the matrix shears), else None."""
    gram = linear.T @ linear
    even = np.trace(gram) / 3.0
    if even > 0 and np.abs(gram / even - np.eye(3)).max() <= tolerance:
        return None
    return tuple(round(float(s), 4) for s in np.linalg.norm(linear, axis=0))


def _choose_map(target: bpy.types.Object, bone_map: BoneMap | None) -> BoneMap:
    if bone_map is not None:
        return bone_map
    found = detect([bone.name for bone in target.data.bones])
    if found is None:
        raise RetargetError(f"No bone-map preset fits {target.name}; choose one or map the bones")
    return builtin_presets()[found[0]]


def _check(source: bpy.types.Object, target: bpy.types.Object, bone_map: BoneMap) -> np.ndarray:
    """The frames to bake; RetargetError if the objects or the map cannot be used."""
    for role, obj in (("source", source), ("target", target)):
        if obj is None or obj.type != "ARMATURE":
            raise RetargetError(f"The {role} must be an armature")
        if obj.mode == "EDIT":
            raise RetargetError(f"Leave edit mode on {obj.name} first")
        if obj.data.pose_position == "REST":
            raise RetargetError(f"{obj.name} shows its rest position: set Pose Position to Pose")
        scale = uneven_scale(np.array(obj.matrix_world, dtype=np.float64)[:3, :3])
        if scale is not None:
            raise RetargetError(
                f"{obj.name} is scaled unevenly ({', '.join(f'{s:g}' for s in scale)} along its "
                "axes, its parents' scale included): bones cannot keep their angles. Apply the "
                "scale first (Object > Apply > Scale)")
    if source == target:
        raise RetargetError("Source and target are the same armature")
    if not bone_map.pairs:
        raise RetargetError(f"None of the {bone_map.name} bones are in {target.name}")
    needed = {"pelvis"} | {joint for joint, _ in bone_map.pairs}
    missing = sorted(needed - set(source.data.bones.keys()))
    if missing:
        raise RetargetError(f"{source.name} is not an SMPL armature: no {', '.join(missing)}")
    action = source.animation_data.action if source.animation_data else None
    if action is None:
        raise RetargetError(f"{source.name} has no action to retarget")
    start, end = action.frame_range
    return np.arange(round(start), round(end) + 1)


@dataclass(frozen=True)
class _Source:
    """The source's SMPL joints, world space; `row` gives a joint's row in the arrays."""

    rig: Skeleton
    row: dict[int, int]
    rest: np.ndarray          # (k, 3, 3) rest rotations
    posed: np.ndarray         # (F, k, 3, 3)
    heads_rest: np.ndarray    # (24, 3), NaN for joints the source lacks
    heads_posed: np.ndarray   # (F, k, 3)


def _sample_source(source: bpy.types.Object, frames: np.ndarray) -> _Source:
    rig = read_skeleton(source)
    present = [j for j, name in enumerate(JOINT_NAMES) if name in rig.names]
    bones = [rig.index(JOINT_NAMES[j]) for j in present]
    posed = sample_pose(source, rig, frames)[:, bones]
    heads_rest = np.full((len(JOINT_NAMES), 3), np.nan)
    heads_rest[present] = rig.heads_world(rig.rest[bones])
    return _Source(rig=rig, row={j: k for k, j in enumerate(present)},
                   rest=rig.rotations_world(rig.rest[bones]), posed=rig.rotations_world(posed),
                   heads_rest=heads_rest, heads_posed=rig.heads_world(posed))


@dataclass(frozen=True)
class _Leg:
    ankle: int             # pair index of the ankle bone
    planted: np.ndarray    # (F,) bool
    before: np.ndarray     # (F, 3) ankle path without the lock, world


def _retarget(source: bpy.types.Object, target: bpy.types.Object, bone_map: BoneMap,
              frames: np.ndarray, options: RetargetOptions) -> RetargetResult:
    src = _sample_source(source, frames)
    rig = read_skeleton(target)
    names = [bone for _, bone in bone_map.pairs]
    bones = [rig.index(bone) for bone in names]
    pair_joints = [JOINT_NAMES.index(joint) for joint, _ in bone_map.pairs]
    rows = [src.row[j] for j in pair_joints]
    first = {joint: i for i, joint in reversed(list(enumerate(pair_joints)))}

    # Rotations: each pair's source turn, carried over the two rests (transfer module).
    target_rest = rig.rotations_world(rig.rest[bones])
    target_heads = rig.heads_world(rig.rest[bones])
    rest_world = np.tile(np.eye(4), (len(bones), 1, 1))
    rest_world[:, :3, :3], rest_world[:, :3, 3] = target_rest, target_heads
    facing = facing_rotation(src.heads_rest[pair_joints], target_heads)
    axis = [bone in bone_map.axis_bones for bone in names]
    align = alignments(pair_joints, src.heads_rest, rest_world, facing, axis)
    wanted = target_rotations(src.rest[rows], src.posed[:, rows], align, target_rest)

    # Root: the source path, scaled, from the target's rest position.
    root = names.index(bone_map.root_bone)
    scale = options.root_scale
    if scale is None:
        source_legs = leg_length({JOINT_NAMES[j]: src.heads_rest[j] for j in src.row})
        target_legs = leg_length({JOINT_NAMES[j]: target_heads[i] for j, i in first.items()})
        scale = target_legs / source_legs if source_legs and target_legs else 1.0
    root_joint = pair_joints[root]
    path = root_path(src.heads_posed[:, src.row[root_joint]], src.heads_rest[root_joint],
                     target_heads[root], scale, options.in_place)
    path_local = rig.points_armature(path)
    bases = solve_bases(rig, bones, rig.rotations_armature(wanted), root, path_local)

    legs: list[_Leg] = []
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    if options.foot_lock:
        pelvis = src.row[JOINT_NAMES.index("pelvis")]
        turn = src.posed[:, pelvis] @ src.rest[pelvis].T
        forward = turn @ (src.rig.object_rotation @ SMPL_FORWARD)
        legs = _lock_feet(rig, bones, bases, wanted, pair_joints, first, forward, fps)
        if legs:
            bases = solve_bases(rig, bones, rig.rotations_armature(wanted), root, path_local)

    action, evaluated, error, root_error, passes = _bake(
        target, rig, frames, bones, bases, rig.rotations_armature(wanted), root, path, bone_map,
        options)
    sliding = None
    planted = sum(int(leg.planted.sum()) for leg in legs)
    if planted:
        after = [rig.heads_world(evaluated[:, leg.ankle]) for leg in legs]
        sliding = (_mean_sliding([leg.before for leg in legs], legs, fps),
                   _mean_sliding(after, legs, fps))
    return RetargetResult(action=action, bone_map=bone_map,
                          frames=(int(frames[0]), int(frames[-1])), root_scale=float(scale),
                          error=error, root_error=root_error, passes=passes, planted=planted,
                          sliding=sliding, foot_lock=options.foot_lock)


def _lock_feet(rig: Skeleton, bones: list[int], bases: Bases, wanted: np.ndarray,
               pair_joints: list[int], first: dict[int, int], forward: np.ndarray,
               fps: float) -> list[_Leg]:
    """Turn thighs and shins in `wanted` (world rotations, changed in place) so planted feet
    stay put; the legs locked, each with its contacts and its ankle path before the lock."""
    legs = []
    heads = rig.heads_world(bases.pose[:, bones])
    for chain in LEGS:
        joints = [JOINT_NAMES.index(name) for name in chain]
        if not all(j in first for j in joints):
            continue
        hip, knee, ankle = (heads[:, first[j]] for j in joints)
        length = np.linalg.norm(knee[0] - hip[0]) + np.linalg.norm(ankle[0] - knee[0])
        planted = footlock.contacts(ankle, fps, length)
        goal = footlock.pinned_goals(ankle, planted)
        thigh_turn, shin_turn = footlock.leg_turns(hip, knee, ankle, goal, forward)
        for i, joint in enumerate(pair_joints):
            if joint == joints[0]:
                wanted[:, i] = thigh_turn @ wanted[:, i]
            elif joint == joints[1]:
                wanted[:, i] = shin_turn @ wanted[:, i]
        legs.append(_Leg(ankle=first[joints[2]], planted=planted, before=ankle))
    return legs


def _mean_sliding(paths: list[np.ndarray], legs: list[_Leg], fps: float) -> float:
    """Mean horizontal ankle speed from planted frame to planted frame, all legs (m/s)."""
    steps = [footlock.planted_steps(path, leg.planted) for path, leg in zip(paths, legs)]
    return float(np.concatenate(steps).mean() * fps)


def _bake(target: bpy.types.Object, rig: Skeleton, frames: np.ndarray, bones: list[int],
          bases: Bases, wanted: np.ndarray, root: int, path: np.ndarray, bone_map: BoneMap,
          options: RetargetOptions) -> tuple[bpy.types.Action, np.ndarray, float, float, int]:
    """Write the keys, evaluate, correct, until close enough or out of passes.

    Args:
        wanted: (F, m, 3, 3) driven bones' rotations, armature space. path: (F, 3) root, world.

    Returns the action, the evaluated (F, m, 4, 4) driven bones, the largest rotation error
    (radians), the largest root error (world units) and the passes used.
    """
    previous = target.animation_data.action if target.animation_data else None
    if previous is not None:
        previous.use_fake_user = True
    path_local = rig.points_armature(path)
    parents = driven_parents(rig, bones)
    action = None
    for done in range(1, options.passes + 1):
        if action is not None:
            bpy.data.actions.remove(action)
        action = _write(target, frames, bases, root, bone_map)
        evaluated = sample_pose(target, rig, frames)[:, bones]
        error = float(rotation_angles(polar_rotation(evaluated[..., :3, :3]), wanted).max())
        miss = rig.heads_world(evaluated[:, root]) - path
        root_error = float(np.linalg.norm(miss, axis=-1).max())
        if error <= options.tolerance and root_error <= ROOT_TOLERANCE:
            break
        if done < options.passes:
            bases = corrected_bases(bases, evaluated, wanted, parents, root, path_local)
    return action, evaluated, error, root_error, done


def _write(target: bpy.types.Object, frames: np.ndarray, bases: Bases, root: int,
           bone_map: BoneMap) -> bpy.types.Action:
    """A new action on the target: each driven bone's rotation in its own rotation mode, the
    root's location, and the map's constant custom properties."""
    channels: dict[tuple[str, int], np.ndarray] = {}
    for k, (_, name) in enumerate(bone_map.pairs):
        pose_bone = target.pose.bones[name]
        path = f'pose.bones["{bpy.utils.escape_identifier(name)}"]'
        prop, values = _rotation_channels(bases.rotations[:, k], pose_bone.rotation_mode)
        for axis in range(values.shape[1]):
            channels[(f"{path}.{prop}", axis)] = values[:, axis]
        if k == root:
            for axis in range(3):
                channels[(f"{path}.location", axis)] = bases.root_location[:, axis]
    for name, values in bone_map.properties.items():
        pose_bone = target.pose.bones[name]
        path = f'pose.bones["{bpy.utils.escape_identifier(name)}"]'
        for key, value in values.items():
            if key in pose_bone:
                key_path = f'{path}["{bpy.utils.escape_identifier(key)}"]'
                channels[(key_path, 0)] = np.full(len(frames), value)
    return write_keys(target, f"{target.name}_retarget", frames.astype(np.float64), channels)


def _rotation_channels(rotations: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """(F, 3, 3) rotations -> the pose-bone property for `mode` and its (F, c) values, kept
    continuous from frame to frame (no quaternion sign flips, compatible Euler angles)."""
    quaternions = np.array([Matrix(m.tolist()).to_quaternion() for m in rotations])
    signs = np.sign(np.einsum("fi,fi->f", quaternions[1:], quaternions[:-1]))
    signs[signs == 0] = 1.0
    quaternions *= np.concatenate(([1.0], np.cumprod(signs)))[:, None]
    if mode == "QUATERNION":
        return "rotation_quaternion", quaternions
    if mode == "AXIS_ANGLE":
        values = []
        for q in quaternions:
            axis, angle = Quaternion(q).to_axis_angle()
            values.append((angle, *axis))
        return "rotation_axis_angle", np.array(values)
    eulers, previous = [], None
    for m in rotations:
        matrix = Matrix(m.tolist())
        previous = matrix.to_euler(mode) if previous is None else matrix.to_euler(mode, previous)
        eulers.append(tuple(previous))
    return "rotation_euler", np.array(eulers)
