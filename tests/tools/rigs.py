"""Procedural target rigs for retargeting tests (real bpy): a Mixamo-like and a Rigify-like
armature built around the default skeleton's rest joints, each with random bone rolls."""

import math

import bpy
import numpy as np
import torch
from mathutils import Matrix, Vector

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_blender.retarget.bonemap import builtin_presets
from ikol_blender.smpl import JOINT_NAMES, PARENTS, to_z_up

SIDES = ("left", "right")
# The next joint down the body from each joint: a bone's direction runs from one to the other.
NEXT = {"pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck",
        "neck": "head"}
for _side in SIDES:
    NEXT |= {f"{_side}_collar": f"{_side}_shoulder", f"{_side}_shoulder": f"{_side}_elbow",
             f"{_side}_elbow": f"{_side}_wrist",
             f"{_side}_hip": f"{_side}_knee", f"{_side}_knee": f"{_side}_ankle",
             f"{_side}_ankle": f"{_side}_foot"}


def default_rest_joints() -> np.ndarray:
    """(24, 3) default-skeleton rest joints, SMPL model frame."""
    return default_skeleton().rest_points(torch.zeros(1, 10))[0, :24].double().numpy()


def body_points(rest: np.ndarray, *, scale: float = 1.0, legs: float = 1.0, arms: float = 1.0,
                arm_drop: float = 0.0, leg_spread: float = 0.0) -> np.ndarray:
    """(24, 3) joints of a body facing -Y (Z up, metres): the SMPL rest joints resized, arms
    turned down by `arm_drop` and legs outwards by `leg_spread` (radians) at the shoulders and
    hips (arm_drop 0.8 makes an A-pose)."""
    points = to_z_up(rest) * scale
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for chain, factor, angle in ((("shoulder", "elbow", "wrist", "hand"), arms, arm_drop),
                                     (("hip", "knee", "ankle", "foot"), legs, -leg_spread)):
            ids = [JOINT_NAMES.index(f"{side}_{part}") for part in chain]
            base = points[ids[0]].copy()
            turn = np.array(Matrix.Rotation(sign * angle, 3, "Y"))
            points[ids[1:]] = base + (points[ids[1:]] - base) * factor @ turn.T
    return points


def leaf_tail(points: np.ndarray, joint: int) -> np.ndarray:
    """Tail of a bone ending a chain: its parent's segment continued by half (as SMPL's)."""
    return points[joint] + 0.5 * (points[joint] - points[PARENTS[joint]])


def segment_tail(points: np.ndarray, joint: str) -> np.ndarray:
    nxt = NEXT.get(joint)
    j = JOINT_NAMES.index(joint)
    if joint.endswith("wrist"):
        return points[JOINT_NAMES.index(joint.replace("wrist", "hand"))]
    return points[JOINT_NAMES.index(nxt)] if nxt else leaf_tail(points, j)


def make_armature(name: str, world: Matrix, bones: list[tuple], seed: int) -> bpy.types.Object:
    """An armature object; bones are (name, parent or None, head, tail) in world space
    (converted to the object's space) with random rolls."""
    rng = np.random.default_rng(seed)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.collection.objects.link(obj)
    obj.matrix_world = world
    inverse = world.inverted()
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, parent, head, tail in bones:
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail = inverse @ Vector(head), inverse @ Vector(tail)
        bone.roll = rng.uniform(-math.pi, math.pi)
        if parent:
            bone.parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return obj


def mixamo_like(rest: np.ndarray) -> bpy.types.Object:
    """T-pose, 1.1x taller with 1.2x longer legs, bones in Y-up centimetres under an object
    turned +90 degrees about X and scaled 0.01, standing 1 m to the side."""
    names = dict(builtin_presets()["mixamo"].pairs)
    points = body_points(rest, scale=1.1, legs=1.2) + np.array([1.0, 0.0, 0.0])
    bones = []
    for j, joint in enumerate(JOINT_NAMES):
        if joint not in names:
            continue
        parent = PARENTS[j]
        while parent >= 0 and JOINT_NAMES[parent] not in names:
            parent = PARENTS[parent]
        bones.append((names[joint], names[JOINT_NAMES[parent]] if parent >= 0 else None,
                      points[j], segment_tail(points, joint)))
    world = (Matrix.Translation((1.0, 0.0, 0.0)) @ Matrix.Rotation(math.pi / 2, 4, "X")
             @ Matrix.Scale(0.01, 4))
    return make_armature("mixamo", world, bones, seed=1)


def rigify_like(rest: np.ndarray) -> bpy.types.Object:
    """Rigify FK names; A-pose (arms 45 degrees down), legs spread 6 degrees, 0.95x with 1.1x
    arms; `torso` points backwards; upper arms hang from a bone that copies `shoulder.L/R`
    (as Rigify's ORG bones do), the head from one that copies the torso's rotation (Rigify's
    head isolation); some bones use Euler or axis-angle rotation; the object faces +X."""
    targets = {bone for _, bone in builtin_presets()["rigify"].pairs}
    design = body_points(rest, scale=0.95, arms=1.1, arm_drop=math.radians(45),
                         leg_spread=math.radians(6))
    world = Matrix.Translation((-1.5, 2.0, 0.0)) @ Matrix.Rotation(math.pi / 2, 4, "Z")
    turn = np.array(world)
    points = design @ turn[:3, :3].T + turn[:3, 3]
    back = turn[:3, :3] @ np.array([0.0, 0.25, 0.0])
    p = {joint: points[j] for j, joint in enumerate(JOINT_NAMES)}
    bones = [("root", None, points[0] - np.array([0, 0, 1.0]), points[0] - np.array([0, 0, 0.8])),
             ("torso", "root", p["pelvis"], p["pelvis"] + back),
             ("spine_fk", "torso", p["pelvis"], p["spine1"]),
             ("MCH-spine.001", "torso", p["spine1"], p["spine1"] + back),
             ("spine_fk.001", "MCH-spine.001", p["spine1"], p["spine2"]),
             ("spine_fk.002", "spine_fk.001", p["spine2"], p["spine3"]),
             ("spine_fk.003", "spine_fk.002", p["spine3"], p["neck"]),
             ("neck", "spine_fk.003", p["neck"], p["head"]),
             ("MCH-ROT-head", "neck", p["head"], p["head"] + back),
             ("head", "MCH-ROT-head", p["head"], leaf_tail(points, JOINT_NAMES.index("head")))]
    for side, s in (("left", "L"), ("right", "R")):
        q = {part: p[f"{side}_{part}"] for part in
             ("collar", "shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "foot")}
        bones += [(f"shoulder.{s}", "spine_fk.003", q["collar"], q["shoulder"]),
                  (f"ORG-shoulder.{s}", "spine_fk.003", q["collar"], q["shoulder"]),
                  (f"MCH-upper_arm_parent.{s}", f"ORG-shoulder.{s}", q["shoulder"],
                   q["shoulder"] + back),
                  (f"upper_arm_fk.{s}", f"MCH-upper_arm_parent.{s}", q["shoulder"], q["elbow"]),
                  (f"forearm_fk.{s}", f"upper_arm_fk.{s}", q["elbow"], q["wrist"]),
                  (f"hand_fk.{s}", f"forearm_fk.{s}", q["wrist"], q["hand"]),
                  (f"thigh_parent.{s}", "spine_fk", q["hip"], q["hip"] + back),
                  (f"thigh_fk.{s}", f"thigh_parent.{s}", q["hip"], q["knee"]),
                  (f"shin_fk.{s}", f"thigh_fk.{s}", q["knee"], q["ankle"]),
                  (f"foot_fk.{s}", f"shin_fk.{s}", q["ankle"], q["foot"]),
                  (f"toe_fk.{s}", f"foot_fk.{s}", q["foot"],
                   leaf_tail(points, JOINT_NAMES.index(f"{side}_foot")))]
    obj = make_armature("rig", world, [(n, par, h, t) for n, par, h, t in bones], seed=2)
    # Control bones that share a pose with another keep that bone's roll.
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit = obj.data.edit_bones
    edit["MCH-ROT-head"].roll = edit["torso"].roll
    for s in "LR":
        edit[f"ORG-shoulder.{s}"].roll = edit[f"shoulder.{s}"].roll
    bpy.ops.object.mode_set(mode="OBJECT")
    pose = obj.pose.bones
    head_follow = pose["MCH-ROT-head"].constraints.new("COPY_ROTATION")
    head_follow.target, head_follow.subtarget = obj, "torso"
    for s in "LR":
        copy = pose[f"ORG-shoulder.{s}"].constraints.new("COPY_TRANSFORMS")
        copy.target, copy.subtarget = obj, f"shoulder.{s}"
        pose[f"thigh_parent.{s}"]["IK_FK"] = 0.0
    pose["forearm_fk.L"].rotation_mode = "YXZ"
    pose["shin_fk.R"].rotation_mode = "AXIS_ANGLE"
    assert targets <= set(pose.keys())
    return obj
