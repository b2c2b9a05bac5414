"""Retargeting under real bpy.

SMPL motion (random joint-limited poses, and a procedural walk) goes onto procedurally built
armatures: a Mixamo-like rig (T-pose, other proportions, Y-up centimetre bones under a rotated,
scaled object, as FBX imports are) and a Rigify-like rig (FK control names, A-pose, spread legs,
a control bone pointing backwards, constraint-driven parents, Euler and axis-angle bones, the
object turned to face +X). Every rig gets random bone rolls. Directions are measured on what
Blender evaluates, not on the retargeting's own numbers.
"""

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_blender.motion import Motion
from ikol_blender.operators import retarget as retarget_operators
from ikol_blender.retarget import properties as retarget_properties
from ikol_blender.retarget.bake import RetargetError, RetargetOptions, retarget
from ikol_blender.retarget.bonemap import builtin_presets, load_map
from ikol_blender.retarget.io import append_armature, export_animation
from ikol_blender.scene.build import build_scene
from ikol_blender.smpl import JOINT_NAMES, to_z_up
from ikol_blender.ui import retarget_panel
from tests.tools.bpy_checks import LayoutRecorder, fcurve_values
from tests.tools.rigs import NEXT, SIDES, body_points, mixamo_like, rigify_like

# Joint rotation limits (radians) for the random poses.
LIMITS = {"pelvis": math.pi, "spine1": 0.5, "spine2": 0.4, "spine3": 0.4, "neck": 0.6,
          "head": 0.6, "collar": 0.3, "shoulder": 1.3, "elbow": 1.4, "wrist": 0.8, "hand": 0.3,
          "hip": 1.0, "knee": 1.3, "ankle": 0.6, "foot": 0.4}


def motion_from(poses: np.ndarray, trans: np.ndarray, rest: np.ndarray) -> Motion:
    frames = len(poses)
    return Motion(poses=poses, trans=trans, betas=np.zeros(10), frame_rate=30.0, rest_joints=rest,
                  joints=None, valid=np.ones(frames, bool), camera_intrinsics=None,
                  image_size=None, source="")


def random_motion(rest: np.ndarray, frames: int, seed: int) -> Motion:
    """Random poses within per-joint angle limits, and a wandering root."""
    rng = np.random.default_rng(seed)
    limits = np.array([LIMITS[n.split("_", 1)[-1]] for n in JOINT_NAMES])
    axes = rng.normal(size=(frames, 24, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    poses = axes * rng.uniform(0.0, 1.0, size=(frames, 24, 1)) * limits[:, None]
    trans = np.cumsum(rng.normal(scale=0.05, size=(frames, 3)), axis=0)
    return motion_from(poses, trans, rest)


def walk_motion(frames: int = 90, fps: float = 30.0,
                slide: float = 0.15) -> tuple[Motion, np.ndarray]:
    """A procedural walk whose planted foot slides at `slide` m/s, as feet in motion
    estimated from video do, and which foot is planted at each frame.

    One step cycle a second, 60 % stance: the hip turns at a steady rate from 0.3 rad forward
    to 0.3 rad back during stance (knee bent 0.35 rad), and swings back with the knee lifting.
    The root keeps the lower ankle at one height, and moves forward so that the planted ankle
    slides forwards at `slide`.

    Returns the motion and (F, 2) whether each foot (left, right) is planted: in stance and
    the lower one.
    """
    body = default_skeleton()
    t = np.arange(frames) / fps
    poses = np.zeros((frames, 24, 3))
    for side, offset in (("left", 0.0), ("right", 0.5)):
        u = (t + offset) % 1.0
        swing = np.clip((u - 0.6) / 0.4, 0.0, 1.0)
        hip = np.where(u < 0.6, -0.3 + 0.6 * u / 0.6, 0.3 - 0.3 * (1.0 - np.cos(math.pi * swing)))
        poses[:, JOINT_NAMES.index(f"{side}_hip"), 0] = hip  # negative: leg forward
        poses[:, JOINT_NAMES.index(f"{side}_knee"), 0] = 0.35 + 0.9 * np.sin(math.pi * swing)
    betas = torch.zeros(frames, 10)
    joints = body.posed_points(torch.from_numpy(poses).float(), betas)[:, :24].double().numpy()
    ankles = joints[:, [JOINT_NAMES.index("left_ankle"), JOINT_NAMES.index("right_ankle")]]
    heights = ankles[:, :, 1]
    stance = np.stack([(t + offset) % 1.0 < 0.6 for offset in (0.0, 0.5)], axis=1)
    side = np.argmin(np.where(stance, heights, np.inf), axis=1)  # the lower foot in stance
    rows = np.arange(frames)
    trans = np.zeros((frames, 3))
    trans[:, 1] = -heights.min(axis=1)
    for f in range(1, frames):
        step = ankles[f, side[f], 2] - ankles[f - 1, side[f], 2]
        trans[f, 2] = trans[f - 1, 2] - step + slide / fps  # model +Z: forward
    planted = np.zeros((frames, 2), bool)
    planted[rows, side] = heights[rows, side] - heights.min(axis=1) < 1e-3
    rest = body.rest_points(betas[:1])[0, :24].double().numpy()
    return motion_from(poses, trans, rest), planted


def smpl_source(motion: Motion) -> bpy.types.Object:
    return build_scene(motion, "smpl", body=False, camera=False).armature


def world_point(obj: bpy.types.Object, point) -> np.ndarray:
    """An armature-space point in world space (float64)."""
    world = np.array(obj.matrix_world, dtype=float)
    return world[:3, :3] @ np.array(point, dtype=float) + world[:3, 3]


def world_head(obj: bpy.types.Object, bone: str) -> np.ndarray:
    return world_point(obj, obj.pose.bones[bone].head)


def direction(obj: bpy.types.Object, bone: str, next_bone: str | None) -> np.ndarray:
    """A posed bone's world direction: to the next joint's head, or along the bone at a leaf."""
    if next_bone is None:
        return world_point(obj, obj.pose.bones[bone].tail) - world_head(obj, bone)
    return world_head(obj, next_bone) - world_head(obj, bone)


def angle(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(np.linalg.norm(np.cross(a, b)), a @ b))


def worst_direction_error(source: bpy.types.Object, target: bpy.types.Object, pairs, frames,
                          skip: set[str] = frozenset()) -> float:
    """Largest angle (degrees) between a mapped target bone and its SMPL joint, all frames."""
    target_of = {}
    for joint, bone in pairs:
        target_of.setdefault(joint, bone)
    worst = 0.0
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        for joint, bone in pairs:
            if joint in skip:
                continue
            nxt = NEXT.get(joint)
            if nxt not in target_of:
                nxt = None
            a = direction(source, joint, nxt)
            b = direction(target, bone, target_of.get(nxt))
            worst = max(worst, angle(a, b))
    return worst


def test_mixamo_like_follows_every_direction_within_2_degrees(empty_scene, rest_joints):
    source = smpl_source(random_motion(rest_joints, frames=40, seed=3))
    target = mixamo_like(rest_joints)
    result = retarget(source, target)
    assert result.bone_map.name == "Mixamo" and len(result.bone_map.pairs) == 22
    assert result.frames == (1, 40)
    assert math.degrees(result.error) < 0.05
    worst = worst_direction_error(source, target, result.bone_map.pairs, range(1, 41))
    assert worst < 2.0, f"{worst:.3f} degrees"


def test_rigify_like_a_pose_with_constraints_within_2_degrees(empty_scene, rest_joints):
    source = smpl_source(random_motion(rest_joints, frames=30, seed=4))
    target = rigify_like(rest_joints)
    result = retarget(source, target)
    assert result.bone_map.name == "Rigify"
    # The head and upper arms move through constraints: the first bake misses, passes fix it.
    assert result.passes >= 2 and math.degrees(result.error) < 0.05
    worst = worst_direction_error(source, target, result.bone_map.pairs, range(1, 31))
    assert worst < 2.0, f"{worst:.3f} degrees"
    # The limbs are switched to FK by keying the switch property the preset names.
    bpy.context.scene.frame_set(5)
    assert target.pose.bones["thigh_parent.L"]["IK_FK"] == pytest.approx(1.0)
    # Bones keep their rotation modes; the keys are written in them.
    assert target.pose.bones["forearm_fk.L"].rotation_mode == "YXZ"
    assert target.pose.bones["shin_fk.R"].rotation_mode == "AXIS_ANGLE"


def test_root_path_scaled_by_leg_lengths_or_kept_in_place(empty_scene, rest_joints):
    source = smpl_source(random_motion(rest_joints, frames=20, seed=5))
    target = mixamo_like(rest_joints)
    frames = range(1, 21)
    design = body_points(rest_joints, scale=1.1, legs=1.2)
    plain = to_z_up(rest_joints)
    leg = lambda p: (np.linalg.norm(p[4] - p[1]) + np.linalg.norm(p[7] - p[4]))  # noqa: E731
    expected = leg(design) / leg(plain)

    result = retarget(source, target)
    assert result.root_scale == pytest.approx(expected, rel=1e-5)
    source_path, target_path = [], []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        source_path.append(world_head(source, "pelvis"))
        target_path.append(world_head(target, "mixamorig:Hips"))
    source_path, target_path = np.array(source_path), np.array(target_path)
    np.testing.assert_allclose(target_path - target_path[0],
                               expected * (source_path - source_path[0]), atol=1e-4)

    retarget(source, target, options=RetargetOptions(in_place=True))
    rest_hips = world_point(target, target.data.bones["mixamorig:Hips"].head_local)
    for row, frame in enumerate(frames):
        bpy.context.scene.frame_set(frame)
        head = world_head(target, "mixamorig:Hips")
        np.testing.assert_allclose(head[:2], rest_hips[:2], atol=1e-4)
        rise = target_path[row, 2] - target_path[0, 2]
        np.testing.assert_allclose(head[2] - target_path[0, 2], rise, atol=1e-4)


# Segments of a generated Rigify rig's deform skeleton between the joints SMPL has.
RIGIFY_SEGMENTS = [("pelvis", "ORG-spine", "spine1", "ORG-spine.001"),
                   ("spine1", "ORG-spine.001", "spine2", "ORG-spine.002"),
                   ("spine2", "ORG-spine.002", "spine3", "ORG-spine.003"),
                   ("spine3", "ORG-spine.003", "neck", "ORG-spine.004"),
                   ("neck", "ORG-spine.004", "head", "ORG-spine.006")]
for _side, _s in (("left", "L"), ("right", "R")):
    RIGIFY_SEGMENTS += [
        (f"{_side}_collar", f"DEF-shoulder.{_s}", f"{_side}_shoulder", f"DEF-upper_arm.{_s}"),
        (f"{_side}_shoulder", f"DEF-upper_arm.{_s}", f"{_side}_elbow", f"DEF-forearm.{_s}"),
        (f"{_side}_elbow", f"DEF-forearm.{_s}", f"{_side}_wrist", f"DEF-hand.{_s}"),
        (f"{_side}_hip", f"DEF-thigh.{_s}", f"{_side}_knee", f"DEF-shin.{_s}"),
        (f"{_side}_knee", f"DEF-shin.{_s}", f"{_side}_ankle", f"DEF-foot.{_s}"),
        (f"{_side}_ankle", f"DEF-foot.{_s}", f"{_side}_foot", f"DEF-toe.{_s}")]


def test_generated_rigify_rig_deforms_like_the_source(empty_scene, rest_joints):
    """A real Rigify human (Blender's bundled Rigify): its FK controls hang from
    constraint-driven bones and its limbs default to IK; the deform skeleton must follow."""
    addon_utils = pytest.importorskip("addon_utils")
    addon_utils.enable("rigify", default_set=True)
    try:
        bpy.ops.object.armature_human_metarig_add()
        bpy.ops.pose.rigify_generate()
        rig = bpy.data.objects["rig"]
        source = smpl_source(random_motion(rest_joints, frames=12, seed=10))
        result = retarget(source, rig)
        assert result.bone_map.name == "Rigify" and len(result.bone_map.pairs) == 23
        assert math.degrees(result.error) < 0.05
        worst = 0.0
        for frame in range(1, 13):
            bpy.context.scene.frame_set(frame)
            for joint, bone, next_joint, next_bone in RIGIFY_SEGMENTS:
                a = world_head(source, next_joint) - world_head(source, joint)
                b = world_head(rig, next_bone) - world_head(rig, bone)
                worst = max(worst, angle(a[:3], b[:3]))
        assert worst < 2.0, f"{worst:.3f} degrees"
    finally:
        addon_utils.disable("rigify", default_set=True)


def ankle_paths(target: bpy.types.Object, ankles: list[str], frames) -> np.ndarray:
    """(F, 2, 3) world ankle positions as Blender evaluates them."""
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        out.append([world_head(target, ankle)[:3] for ankle in ankles])
    return np.array(out)


def planted_slide(paths: np.ndarray, planted: np.ndarray) -> float:
    """Horizontal distance (m) the ankles travel from frame to frame while planted in both."""
    steps = np.linalg.norm(np.diff(paths[:, :, :2], axis=0), axis=2)
    return float(steps[planted[1:] & planted[:-1]].sum())


def test_foot_lock_that_finds_no_planted_feet_says_so(empty_scene, rest_joints):
    """The body flies upwards the whole clip: no foot is ever planted."""
    motion, _ = walk_motion(frames=30)
    motion = replace(motion, trans=motion.trans + np.linspace(0.0, 30.0, 30)[:, None]
                     * np.array([0.0, 1.0, 0.0]))
    source = smpl_source(motion)
    target = mixamo_like(rest_joints)
    locked = retarget(source, target, options=RetargetOptions(foot_lock=True))
    assert locked.planted == 0 and locked.sliding is None
    assert locked.describe().endswith("; foot lock found no planted feet: nothing was locked")
    assert "foot lock" not in retarget(source, target).describe()


@pytest.mark.parametrize("scale", [(1.0, 1.5, 1.0), (0.01, 0.01, 0.02)])
def test_a_target_scaled_unevenly_is_refused(empty_scene, rest_joints, scale):
    source = smpl_source(random_motion(rest_joints, 3, seed=2))
    target = mixamo_like(rest_joints)
    target.scale = scale
    bpy.context.view_layer.update()
    with pytest.raises(RetargetError) as refused:
        retarget(source, target)
    assert str(refused.value).startswith(f"{target.name} is scaled unevenly (")
    assert "Apply the scale first" in str(refused.value)
    parent = bpy.data.objects.new("holder", None)
    bpy.context.scene.collection.objects.link(parent)
    target.scale = (0.01, 0.01, 0.01)  # mixamo's own even scale is fine...
    target.parent = parent
    parent.scale = (2.0, 1.0, 1.0)  # ...but not under an unevenly scaled parent
    bpy.context.view_layer.update()
    with pytest.raises(RetargetError):
        retarget(source, target)
    parent.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    assert retarget(source, target).error < math.radians(0.05)


def test_foot_lock_reduces_sliding_on_a_walk(empty_scene, rest_joints):
    motion, planted = walk_motion()
    source = smpl_source(motion)
    target = mixamo_like(rest_joints)
    frames = range(1, motion.num_frames + 1)
    ankles = ["mixamorig:LeftFoot", "mixamorig:RightFoot"]
    free = retarget(source, target)
    before = planted_slide(ankle_paths(target, ankles, frames), planted)
    locked = retarget(source, target, options=RetargetOptions(foot_lock=True))
    after = planted_slide(ankle_paths(target, ankles, frames), planted)
    # The source's planted feet slide 0.15 m/s, the target's as much times the leg ratio.
    steps = (planted[1:] & planted[:-1]).sum()
    assert before == pytest.approx(0.15 * free.root_scale * steps / 30.0, rel=0.05)
    assert free.sliding is None and locked.planted > 0.8 * planted.sum()
    assert after < 0.05 * before, f"sliding {before:.3f} m -> {after:.3f} m"
    assert locked.sliding[1] < 0.05 * locked.sliding[0]
    assert math.degrees(locked.error) < 0.05
    # Only the legs bend: the rest of the body still follows the source.
    legs = {f"{side}_{part}" for side in SIDES for part in ("hip", "knee")}
    pairs = locked.bone_map.pairs
    assert worst_direction_error(source, target, pairs, frames[::9], skip=legs) < 2.0


def test_source_untouched_and_previous_action_kept(empty_scene, rest_joints):
    source = smpl_source(random_motion(rest_joints, frames=10, seed=6))
    action = source.animation_data.action
    keys = fcurve_values(action, source)
    target = mixamo_like(rest_joints)
    first = retarget(source, target).action
    second = retarget(source, target).action
    assert source.animation_data.action == action
    after = fcurve_values(action, source)
    assert keys.keys() == after.keys() and all(np.array_equal(keys[k], after[k]) for k in keys)
    assert target.animation_data.action == second and first.use_fake_user
    assert bpy.context.scene.frame_current == 1


def test_clear_errors(empty_scene, rest_joints):
    source = smpl_source(random_motion(rest_joints, frames=3, seed=7))
    target = mixamo_like(rest_joints)
    with pytest.raises(RetargetError, match="same armature"):
        retarget(source, source)
    with pytest.raises(RetargetError, match="not an SMPL armature"):
        retarget(target, source, builtin_presets()["smpl"])
    target.data.pose_position = "REST"
    with pytest.raises(RetargetError, match="rest position"):
        retarget(source, target)
    target.data.pose_position = "POSE"
    bpy.ops.object.armature_add()
    with pytest.raises(RetargetError, match="No bone-map preset fits"):
        retarget(source, bpy.context.object)
    source.animation_data.action = None
    with pytest.raises(RetargetError, match="no action"):
        retarget(source, target, builtin_presets()["mixamo"])


@pytest.fixture
def registered(empty_scene):
    """The Retarget panel's settings, operators and panels registered on an empty scene."""
    register, unregister = bpy.utils.register_classes_factory(
        (*retarget_operators.CLASSES, *retarget_panel.CLASSES))
    retarget_properties.register()
    register()
    yield empty_scene
    unregister()
    retarget_properties.unregister()


def test_operator_custom_map_and_json_presets(registered, rest_joints, tmp_path: Path):
    scene = registered
    source = smpl_source(random_motion(rest_joints, frames=8, seed=8))
    target = rigify_like(rest_joints)
    settings = scene.ikol_retarget
    settings.source, settings.target = source, target
    assert bpy.ops.ikol.retarget() == {"FINISHED"}
    assert "Rigify" in settings.status
    assert target.animation_data.action.name.startswith("rig_retarget")

    # Edit the detected preset as a custom map, drop a pair, save and load it as JSON.
    assert bpy.ops.ikol.retarget_pairs_from_preset() == {"FINISHED"}
    assert settings.preset == "CUSTOM" and len(settings.pairs) == 23
    settings.active_pair = [p.target for p in settings.pairs].index("toe_fk.L")
    bpy.ops.ikol.retarget_pair_remove()
    path = tmp_path / "my_rig.json"
    assert bpy.ops.ikol.retarget_preset_save(filepath=str(path)) == {"FINISHED"}
    saved = load_map(path)
    assert saved.name == "my_rig" and len(saved.pairs) == 22 and saved.root == "torso"
    assert saved.properties["thigh_parent.L"] == {"IK_FK": 1.0}
    settings.pairs.clear()
    assert bpy.ops.ikol.retarget_preset_load(filepath=str(path)) == {"FINISHED"}
    assert [(p.joint, p.target) for p in settings.pairs] == list(saved.pairs)
    assert bpy.ops.ikol.retarget() == {"FINISHED"}
    assert "22 bones (Custom)" in settings.status

    # A broken map is refused with the reason.
    settings.pairs[1].target = settings.pairs[0].target
    with pytest.raises(RuntimeError, match="mapped twice"):
        bpy.ops.ikol.retarget()


def test_panels_draw_the_settings(registered, rest_joints):
    scene = registered
    settings = scene.ikol_retarget
    settings.target = rigify_like(rest_joints)
    for preset in ("AUTO", "CUSTOM"):
        settings.preset = preset
        calls = []
        for panel in (retarget_panel.IKOL_PT_retarget, retarget_panel.IKOL_PT_retarget_map):
            panel.draw(SimpleNamespace(layout=LayoutRecorder(calls)), bpy.context)
        drawn = {args[1] for name, args, _ in calls if name == "prop"}
        assert {"source", "target", "preset", "in_place", "auto_scale", "root_scale",
                "foot_lock"} <= drawn
        labels = " ".join(kwargs.get("text", "") for name, _, kwargs in calls if name == "label")
        assert ("Detected: Rigify (100% of its bones)" in labels) == (preset == "AUTO")
    bpy.ops.ikol.retarget_pair_add()
    calls = []
    settings.pairs[0].target = "torso"
    pair = settings.pairs[0]
    retarget_panel.IKOL_UL_retarget_pairs.draw_item(None, bpy.context, LayoutRecorder(calls),
                                                    settings, pair, 0, settings, "active_pair")
    assert ("prop_search", (pair, "target", settings.target.data, "bones"), {"text": ""}) in calls


def test_target_from_blend_exported_as_fbx_and_bvh(empty_scene, rest_joints, tmp_path: Path):
    mixamo_like(rest_joints)
    blend = tmp_path / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    source = smpl_source(random_motion(rest_joints, frames=6, seed=9))
    with pytest.raises(ValueError, match="no armature 'nope'"):
        append_armature(blend, "nope")
    target = append_armature(blend)
    assert target.name == "mixamo" and target.name in bpy.context.scene.objects
    retarget(source, target)
    for suffix in (".fbx", ".bvh"):
        out = tmp_path / f"walk{suffix}"
        export_animation(target, out)
        assert out.stat().st_size > 1000
    assert b"AnimationCurve" in (tmp_path / "walk.fbx").read_bytes()
    bvh = (tmp_path / "walk.bvh").read_text()
    assert "mixamorig:Hips" in bvh and "Frames: 6" in bvh
    with pytest.raises(ValueError, match="export to"):
        export_animation(target, tmp_path / "walk.abc")
