"""Retargeting math without a Blender scene: bone maps and presets, rotation transfer over two
rest poses, pose bases, root path, foot lock. (numpy only; Blender Z up, metres, radians.)"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ikol_blender.retarget import footlock
from ikol_blender.retarget.bonemap import (BoneMapError, builtin_presets, detect, load_map,
                                           map_from_name, resolve, save_map)
from ikol_blender.retarget.skeleton import (Bases, Skeleton, corrected_bases, driven_parents,
                                            polar_rotation, rotation_angles, solve_bases,
                                            topological_order)
from ikol_blender.retarget.transfer import (alignments, facing_rotation, leg_length,
                                            reference_child, root_path, rotation_between,
                                            target_rotations)
from ikol_blender.smpl import JOINT_NAMES, PARENTS

RNG = np.random.default_rng(0)


def random_rotations(count: int) -> np.ndarray:
    """(count, 3, 3) random rotations (from random quaternions)."""
    q = RNG.normal(size=(count, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def turn_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --- bone maps -------------------------------------------------------------------------------

def test_presets_load_and_cover_the_body():
    presets = builtin_presets()
    assert set(presets) == {"mixamo", "rigify", "unreal_ue4", "unreal_ue5", "smplx", "smpl"}
    for preset in presets.values():
        joints = {joint for joint, _ in preset.pairs}
        assert {"pelvis", "spine1", "neck", "head", "left_hip", "right_ankle", "left_shoulder",
                "right_wrist"} <= joints, preset.name
        assert preset.root_bone == dict(preset.pairs)["pelvis"] or preset.name == "Rigify"
    assert presets["rigify"].root_bone == "torso"


@pytest.mark.parametrize("preset_id",
                         ["mixamo", "rigify", "unreal_ue4", "unreal_ue5", "smplx", "smpl"])
def test_each_preset_is_detected_from_its_own_bone_names(preset_id):
    preset = builtin_presets()[preset_id]
    names = [bone for _, bone in preset.pairs] + list(preset.requires) + ["extra", "root"]
    assert detect(names) == (preset_id, 1.0)


def test_detection_needs_most_bones_and_follows_namespaces():
    mixamo = [bone.replace("mixamorig:", "mixamorig7:")
              for _, bone in builtin_presets()["mixamo"].pairs]
    assert detect(mixamo) == ("mixamo", 1.0)
    resolved = resolve(builtin_presets()["mixamo"], mixamo)
    assert resolved.root == "mixamorig7:Hips" and len(resolved.pairs) == 22
    assert detect(mixamo[:10] + ["Bone"]) is None
    assert detect(["Bone", "Bone.001"]) is None


def test_ue5_names_pick_ue5_and_ue4_names_ue4():
    ue5 = [bone for _, bone in builtin_presets()["unreal_ue5"].pairs] + ["spine_02", "spine_04"]
    ue4 = [bone for _, bone in builtin_presets()["unreal_ue4"].pairs]
    assert detect(ue5)[0] == "unreal_ue5"
    assert detect(ue4)[0] == "unreal_ue4"


def test_resolve_keeps_only_present_bones():
    rigify = builtin_presets()["rigify"]
    names = [bone for _, bone in rigify.pairs if not bone.startswith("toe")] + ["thigh_parent.L"]
    resolved = resolve(rigify, names)
    assert len(resolved.pairs) == len(rigify.pairs) - 2
    assert set(resolved.properties) == {"thigh_parent.L"}
    assert resolved.axis_bones == ("spine_fk", "spine_fk.001")


def test_map_json_round_trip(tmp_path: Path):
    original = builtin_presets()["rigify"]
    path = tmp_path / "rig.json"
    save_map(original, path)
    assert load_map(path) == original
    assert '["pelvis", "torso"],' in path.read_text()  # one pair a line, for people to edit


@pytest.mark.parametrize("data, message", [
    ({"pairs": [["hips", "Hips"]]}, "not SMPL joints: hips"),
    ({"pairs": [["pelvis", "Hips"], ["spine1", "Hips"]]}, "mapped twice: Hips"),
    ({"pairs": [["pelvis", "Hips"]], "root": "Root"}, "root bone 'Root'"),
    ({"pairs": [["pelvis", "Hips"]], "axis_bones": ["Spine"]}, "axis bones not mapped: Spine"),
    ({"pairs": [["pelvis"]]}, "not a bone map"),
    ({"name": "x"}, "not a bone map"),
])
def test_bad_maps_are_refused_with_the_reason(tmp_path: Path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BoneMapError, match=message):
        load_map(path)


def test_maps_named_on_a_command_line(tmp_path: Path):
    assert map_from_name("auto") is None
    assert map_from_name("rigify") == builtin_presets()["rigify"]
    path = tmp_path / "mine.json"
    save_map(builtin_presets()["mixamo"], path)
    assert map_from_name(str(path)) == builtin_presets()["mixamo"]
    with pytest.raises(BoneMapError, match="unknown bone map 'maya'"):
        map_from_name("maya")


def test_unreadable_map_file(tmp_path: Path):
    with pytest.raises(BoneMapError, match="cannot read"):
        load_map(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(BoneMapError, match="JSON object"):
        load_map(tmp_path / "list.json")


# --- rotations -------------------------------------------------------------------------------

def test_rotation_between_is_the_smallest_turn():
    a, b = RNG.normal(size=(50, 3)), RNG.normal(size=(50, 3))
    turn = rotation_between(a, b)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(np.einsum("nij,nj->ni", turn, unit(a)), unit(b), atol=1e-12)
    identity = np.broadcast_to(np.eye(3), turn.shape)
    np.testing.assert_allclose(turn @ np.swapaxes(turn, 1, 2), identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(turn), 1.0)
    # Smallest: the axis is square to both, the angle theirs.
    between = np.arccos(np.clip(np.sum(unit(a) * unit(b), 1), -1, 1))
    np.testing.assert_allclose(rotation_angles(turn, identity), between, atol=1e-9)
    half = rotation_between(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -2.0]))
    np.testing.assert_allclose(half @ [0.0, 0.0, 1.0], [0.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(half), 1.0)


def test_facing_rotation_finds_the_turn_about_z():
    points = RNG.normal(size=(20, 3))
    turned = points @ turn_z(2.0).T + [3.0, -1.0, 0.5]
    np.testing.assert_allclose(facing_rotation(points, turned), turn_z(-2.0), atol=1e-12)


def test_reference_child_follows_the_main_line():
    index = JOINT_NAMES.index
    everything = set(range(24))
    assert reference_child(index("pelvis"), everything) == index("spine1")
    assert reference_child(index("spine3"), everything) == index("neck")
    assert reference_child(index("spine1"), everything - {index("spine2")}) == index("spine3")
    assert reference_child(index("left_wrist"), everything - {index("left_hand")}) is None


# A small SMPL-shaped body (Z up, facing -Y) for the transfer tests.
BODY = {"pelvis": (0, 0, 1.0), "left_hip": (0.08, 0, 0.92), "right_hip": (-0.08, 0, 0.92),
        "spine1": (0, 0, 1.1), "left_knee": (0.09, 0, 0.5), "right_knee": (-0.09, 0, 0.5),
        "spine2": (0, 0, 1.22), "left_ankle": (0.09, 0.03, 0.1), "right_ankle": (-0.09, 0.03, 0.1),
        "spine3": (0, 0, 1.3), "left_foot": (0.1, -0.1, 0.03), "right_foot": (-0.1, -0.1, 0.03),
        "neck": (0, 0, 1.5), "left_collar": (0.07, 0, 1.42), "right_collar": (-0.07, 0, 1.42),
        "head": (0, -0.02, 1.6),
        "left_shoulder": (0.17, 0, 1.45), "right_shoulder": (-0.17, 0, 1.45),
        "left_elbow": (0.43, 0, 1.45), "right_elbow": (-0.43, 0, 1.45),
        "left_wrist": (0.68, 0, 1.45), "right_wrist": (-0.68, 0, 1.45),
        "left_hand": (0.77, 0, 1.45), "right_hand": (-0.77, 0, 1.45)}
HEADS = np.array([BODY[name] for name in JOINT_NAMES], dtype=float)


def posed_joints(heads: np.ndarray, rest: np.ndarray, world: np.ndarray) -> np.ndarray:
    """(F, 24, 3) joints of an SMPL-tree body whose bones have rest rotations `rest` (24,3,3)
    and world rotations `world` (F,24,3,3): each child moves rigidly with its parent bone."""
    out = np.empty((world.shape[0], 24, 3))
    out[:, 0] = heads[0]
    for joint in range(1, 24):
        parent = PARENTS[joint]
        offset = rest[parent].T @ (heads[joint] - heads[parent])
        out[:, joint] = out[:, parent] + world[:, parent] @ offset
    return out


def test_transfer_matches_every_direction_over_different_rests():
    """A-pose target, turned 90 degrees, with random bone axes: after the transfer each
    segment of the target points where the source's does, at every frame."""
    frames = 6
    source_rest = random_rotations(24)
    source_world = random_rotations(frames * 24).reshape(frames, 24, 3, 3)
    target_heads = HEADS.copy()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = target_heads[JOINT_NAMES.index(f"{side}_shoulder")].copy()
        drop = np.array([[math.cos(0.8), 0, sign * math.sin(0.8)], [0, 1, 0],
                         [-sign * math.sin(0.8), 0, math.cos(0.8)]])
        for part in ("elbow", "wrist", "hand"):
            j = JOINT_NAMES.index(f"{side}_{part}")
            target_heads[j] = shoulder + drop @ (target_heads[j] - shoulder)
    target_heads = 1.2 * target_heads @ turn_z(math.pi / 2).T
    target_rest = random_rotations(24)
    rest_world = np.tile(np.eye(4), (24, 1, 1))
    rest_world[:, :3, :3], rest_world[:, :3, 3] = target_rest, target_heads

    pairs = list(range(24))
    facing = facing_rotation(HEADS, target_heads)
    np.testing.assert_allclose(facing, turn_z(-math.pi / 2), atol=1e-9)
    align = alignments(pairs, HEADS, rest_world, facing, [False] * 24)
    wanted = target_rotations(source_rest, source_world, align, target_rest)

    source_joints = posed_joints(HEADS, source_rest, source_world)
    target_joints = posed_joints(target_heads, target_rest, wanted)
    for joint in range(1, 24):
        parent = PARENTS[joint]
        if reference_child(parent, set(pairs)) != joint:
            continue
        a = source_joints[:, joint] - source_joints[:, parent]
        b = target_joints[:, joint] - target_joints[:, parent]
        angle = np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), np.sum(a * b, 1))
        assert np.all(angle < 1e-9), JOINT_NAMES[parent]


def test_leaf_keeps_its_rest_relation_and_axis_bones_use_their_axis():
    source_rest = np.broadcast_to(np.eye(3), (24, 3, 3))
    target_rest = random_rotations(24)
    rest_world = np.tile(np.eye(4), (24, 1, 1))
    rest_world[:, :3, :3], rest_world[:, :3, 3] = target_rest, HEADS
    pairs = list(range(24))
    axis = [False] * 24
    spine1 = JOINT_NAMES.index("spine1")
    axis[spine1] = True
    align = alignments(pairs, HEADS, rest_world, np.eye(3), axis)
    head, neck = JOINT_NAMES.index("head"), JOINT_NAMES.index("neck")
    np.testing.assert_allclose(align[head], align[neck])
    # The axis bone's own Y axis is laid along the source's spine1 -> spine2 line.
    direction = HEADS[JOINT_NAMES.index("spine2")] - HEADS[spine1]
    np.testing.assert_allclose(align[spine1] @ target_rest[spine1][:, 1],
                               direction / np.linalg.norm(direction), atol=1e-12)
    # With the rests equal and no turn, the target stays at rest.
    identity = np.broadcast_to(np.eye(3), (24, 3, 3))
    wanted = target_rotations(source_rest, source_rest[None], identity, target_rest)
    np.testing.assert_allclose(wanted[0], target_rest, atol=1e-12)


def test_leg_length_and_root_path():
    heads = {name: HEADS[j] for j, name in enumerate(JOINT_NAMES)}
    expected = np.linalg.norm(HEADS[4] - HEADS[1]) + np.linalg.norm(HEADS[7] - HEADS[4])
    assert leg_length(heads) == pytest.approx(expected)
    assert leg_length({"pelvis": HEADS[0]}) is None
    source = RNG.normal(size=(5, 3))
    path = root_path(source, source[0], np.array([1.0, 2.0, 3.0]), 2.0, in_place=False)
    np.testing.assert_allclose(path - [1.0, 2.0, 3.0], 2.0 * (source - source[0]))
    still = root_path(source, source[0], np.array([1.0, 2.0, 3.0]), 2.0, in_place=True)
    np.testing.assert_allclose(still[:, :2], np.broadcast_to([1.0, 2.0], (5, 2)))
    np.testing.assert_allclose(still[:, 2], path[:, 2])


# --- pose bases --------------------------------------------------------------------------------

def chain_skeleton() -> Skeleton:
    """Five bones: a root, an undriven bone between, two driven children, one sideways."""
    parents = np.array([-1, 0, 1, 2, 1])
    rest = np.tile(np.eye(4), (5, 1, 1))
    rest[:, :3, :3] = random_rotations(5)
    rest[:, :3, 3] = RNG.normal(size=(5, 3))
    world = np.eye(4)
    world[:3, :3] = 0.01 * turn_z(0.7)
    world[:3, 3] = [1.0, 2.0, 0.0]
    return Skeleton(names=tuple("abcde"), parents=parents, rest=rest, world=world)


def pose_from_bases(skeleton: Skeleton, bones: list[int], rotations: np.ndarray, root: int,
                    location: np.ndarray, extra: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Blender's relation, written out independently: (F, n, 4, 4) armature-space matrices.
    `extra` turns some bones further in their own frame, as a constraint would."""
    frames = rotations.shape[0]
    pose = np.empty((frames, len(skeleton.names), 4, 4))
    for bone, parent in enumerate(skeleton.parents):
        basis = np.tile(np.eye(4), (frames, 1, 1))
        if bone in bones:
            k = bones.index(bone)
            basis[:, :3, :3] = rotations[:, k]
            if k == root:
                basis[:, :3, 3] = location
        if extra and bone in extra:
            basis[:, :3, :3] = basis[:, :3, :3] @ extra[bone]
        base = skeleton.rest[bone] if parent < 0 else (
            pose[:, parent] @ np.linalg.inv(skeleton.rest[parent]) @ skeleton.rest[bone])
        pose[:, bone] = base @ basis
    return pose


def test_solve_bases_gives_the_wanted_rotations_and_root():
    skeleton = chain_skeleton()
    bones, root = [0, 2, 3, 4], 0
    wanted = random_rotations(3 * 4).reshape(3, 4, 3, 3)
    heads = RNG.normal(size=(3, 3))
    bases = solve_bases(skeleton, bones, wanted, root, heads)
    pose = pose_from_bases(skeleton, bones, bases.rotations, root, bases.root_location)
    np.testing.assert_allclose(pose[:, bones, :3, :3], wanted, atol=1e-10)
    np.testing.assert_allclose(pose[:, 0, :3, 3], heads, atol=1e-10)
    np.testing.assert_allclose(bases.pose, pose, atol=1e-10)
    # Points and rotations to and from world space.
    world = skeleton.heads_world(pose)
    np.testing.assert_allclose(skeleton.points_armature(world), pose[..., :3, 3], atol=1e-10)
    np.testing.assert_allclose(skeleton.rotations_armature(skeleton.rotations_world(pose)),
                               pose[..., :3, :3], atol=1e-10)


def test_corrected_bases_undo_what_a_constraint_adds():
    """A 'constraint' turns the undriven bone b, moving the driven chain c-d below it, and one
    on the root shifts it: a single correction fixes the whole chain."""
    skeleton = chain_skeleton()
    bones, root = [0, 2, 3, 4], 0
    wanted = random_rotations(2 * 4).reshape(2, 4, 3, 3)
    heads = RNG.normal(size=(2, 3))
    extra = {1: random_rotations(1)[0]}

    def evaluate(bases: Bases) -> np.ndarray:
        pose = pose_from_bases(skeleton, bones, bases.rotations, root, bases.root_location, extra)
        pose[:, 0, :3, 3] += [0.1, 0.0, 0.0]
        return pose[:, bones]

    bases = solve_bases(skeleton, bones, wanted, root, heads)
    assert rotation_angles(polar_rotation(evaluate(bases)[..., :3, :3]), wanted).max() > 0.01
    parents = driven_parents(skeleton, bones)
    assert parents == [-1, 0, 1, 0]
    fixed = corrected_bases(bases, evaluate(bases), wanted, parents, root, heads)
    evaluated = evaluate(fixed)
    np.testing.assert_allclose(rotation_angles(polar_rotation(evaluated[..., :3, :3]), wanted), 0.0,
                               atol=1e-7)
    np.testing.assert_allclose(evaluated[:, root, :3, 3], heads, atol=1e-9)


def test_topological_order_puts_parents_first():
    parents = [3, -1, 1, 1, 0]
    order = topological_order(parents)
    assert sorted(order) == list(range(5))
    assert all(order.index(parents[b]) < order.index(b) for b in range(5) if parents[b] >= 0)


# --- foot lock -------------------------------------------------------------------------------

def stepping_ankle(frames: int = 60, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """An ankle that plants (sliding 0.1 m/s) and swings (forward 2 m/s, 20 cm up), twice."""
    ankle = np.zeros((frames, 3))
    truth = np.zeros(frames, bool)
    x = 0.0
    for f in range(frames):
        planted = (f % 30) < 18
        truth[f] = planted
        x += (0.1 if planted else 2.0) / fps
        lift = 0.0 if planted else 0.2 * math.sin(math.pi * ((f % 30) - 17) / 13)
        ankle[f] = [x, 0.0, 0.1 + lift]
    return ankle, truth


def test_contacts_found_from_height_and_speed():
    ankle, truth = stepping_ankle()
    planted = footlock.contacts(ankle, 30.0, leg_length=0.9)
    assert (planted == truth).mean() > 0.9
    assert not planted[~truth & (ankle[:, 2] > 0.15)].any()


def test_contacts_follow_a_rising_floor():
    """The floor rises 30 cm over the clip (a slope, or a tilted camera): contacts are found
    all along it, not only near the clip's lowest point."""
    ankle, truth = stepping_ankle(frames=150)
    ankle[:, 2] += np.linspace(0.0, 0.3, len(ankle))
    planted = footlock.contacts(ankle, 30.0, leg_length=0.9)
    assert (planted == truth).mean() > 0.9
    last_steps = slice(90, 150)
    assert (planted[last_steps] == truth[last_steps]).mean() > 0.9


def test_a_glitch_frame_does_not_disable_the_contacts():
    """One frame where the whole body dips 8 cm: the other contacts are still found."""
    ankle, truth = stepping_ankle(frames=150)
    glitch = 40
    ankle[glitch, 2] -= 0.08
    planted = footlock.contacts(ankle, 30.0, leg_length=0.9)
    others = np.arange(len(ankle)) != glitch
    assert (planted[others] == truth[others]).mean() > 0.9


def test_ground_level_is_a_low_percentile_of_the_neighbourhood():
    height = np.concatenate([np.zeros(40), np.full(40, 1.0)])
    height[10] = -5.0  # a single glitch
    ground = footlock.ground_level(height, frame_rate=10.0)  # 10 frames either side
    np.testing.assert_allclose(ground[:25], 0.0)
    np.testing.assert_allclose(ground[55:], 1.0)


def test_pins_hold_during_contacts_and_fade_around_them():
    ankle, _ = stepping_ankle()
    planted = footlock.contacts(ankle, 30.0, leg_length=0.9)
    goal = footlock.pinned_goals(ankle, planted, blend=3)
    assert len(footlock.planted_steps(goal, planted)) > 20
    np.testing.assert_allclose(footlock.planted_steps(goal, planted), 0.0, atol=1e-12)
    np.testing.assert_allclose(goal[:, 2], ankle[:, 2])
    assert footlock.planted_steps(ankle, planted).mean() == pytest.approx(0.1 / 30.0)
    # Around a contact the pin fades: the jump between frames stays small.
    steps = np.linalg.norm(np.diff(goal[:, :2], axis=0), axis=1)
    free = np.linalg.norm(np.diff(ankle[:, :2], axis=0), axis=1)
    assert steps.max() < free.max() + 0.02


def test_leg_turns_bring_the_ankle_to_the_goal_keeping_lengths():
    frames = 4
    hip = np.tile([0.0, 0.0, 1.0], (frames, 1))
    knee = np.tile([0.0, -0.05, 0.55], (frames, 1))
    ankle = np.tile([0.0, 0.0, 0.1], (frames, 1))
    goal = ankle + np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.08, 0.0], [0.0, 0.0, 0.05]])
    forward = np.tile([0.0, -1.0, 0.0], (frames, 1))
    thigh_turn, shin_turn = footlock.leg_turns(hip, knee, ankle, goal, forward)
    new_knee = hip + np.einsum("fij,fj->fi", thigh_turn, knee - hip)
    new_ankle = new_knee + np.einsum("fij,fj->fi", shin_turn, ankle - knee)
    np.testing.assert_allclose(new_ankle, goal, atol=1e-9)
    np.testing.assert_allclose(thigh_turn[0], np.eye(3))
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=1),
                               np.linalg.norm(knee - hip, axis=1))
    # The knee stays on its bend side of the hip-ankle line (in front).
    line = (goal - hip) / np.linalg.norm(goal - hip, axis=1, keepdims=True)
    side = (new_knee - hip) - np.sum((new_knee - hip) * line, 1, keepdims=True) * line
    assert np.all(np.sum(side * forward, 1) > 0.0)
    # A straight leg bends towards `forward`; an unreachable goal gets the straight leg.
    straight_knee = np.tile([0.0, 0.0, 0.55], (1, 1))
    turn_thigh, _ = footlock.leg_turns(hip[:1], straight_knee, ankle[:1],
                                       ankle[:1] + [0.0, 0.0, 0.1], forward[:1])
    assert (hip[:1] + turn_thigh[0] @ (straight_knee[0] - hip[0]))[0, 1] < 0.0
    far = footlock.leg_turns(hip[:1], knee[:1], ankle[:1], ankle[:1] + [0.0, 0.0, -1.0],
                             forward[:1])
    assert np.all(np.isfinite(far[0])) and np.all(np.isfinite(far[1]))
