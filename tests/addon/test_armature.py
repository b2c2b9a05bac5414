"""The SMPL armature in real Blender reproduces the motion file's joints."""

from pathlib import Path

import bpy
import numpy as np
import pytest
import roma
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.tree import JOINT_NAMES as BACKEND_JOINT_NAMES, PARENTS as BACKEND_PARENTS
from ikol_blender.motion import Motion
from ikol_blender.scene.build import build_scene
from ikol_blender.smpl import JOINT_NAMES, PARENTS, to_z_up


def make_motion(frames: int, seed: int = 0) -> Motion:
    """Random poses on the default skeleton, joints from the backend's own kinematics."""
    generator = torch.Generator().manual_seed(seed)
    body = default_skeleton()
    poses = 0.6 * roma.random_rotvec(frames * 24).reshape(frames, 24, 3)
    poses = poses * torch.rand(frames, 24, 1, generator=generator)
    betas = torch.zeros(frames, 10)
    trans = torch.randn(frames, 3, generator=generator)
    joints = body.posed_points(poses, betas)[:, :24] + trans[:, None]
    return Motion(
        poses=poses.double().numpy(), trans=trans.double().numpy(), betas=np.zeros(10),
        frame_rate=30.0, rest_joints=body.rest_points(betas[:1])[0, :24].numpy(),
        joints=joints.numpy(), valid=np.ones(frames, bool), camera_intrinsics=None,
        image_size=None, source="",
    )


def posed_heads(armature: bpy.types.Object, frame: int) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    return np.array([armature.matrix_world @ armature.pose.bones[n].head for n in JOINT_NAMES])


def test_joint_tables_agree_with_backend():
    assert JOINT_NAMES == BACKEND_JOINT_NAMES
    assert PARENTS == BACKEND_PARENTS


def test_armature_bones_follow_smpl_tree(empty_scene):
    built = build_scene(make_motion(1), "person", body=False)
    bones = built.armature.data.bones
    assert sorted(b.name for b in bones) == sorted(JOINT_NAMES)
    for name, parent in zip(JOINT_NAMES, PARENTS):
        assert (bones[name].parent.name if bones[name].parent else None) == (
            JOINT_NAMES[parent] if parent >= 0 else None)


def test_keyed_pose_matches_motion_joints_within_1mm(empty_scene):
    motion = make_motion(5)
    built = build_scene(motion, "person")
    for frame in range(motion.num_frames):
        error = np.linalg.norm(posed_heads(built.armature, frame + 1) - to_z_up(motion.joints[frame]), axis=1)
        assert error.max() < 1e-3, f"frame {frame}: {error.max() * 1000:.3f} mm"


def test_scene_frame_range_and_rate(empty_scene):
    motion = make_motion(7)
    build_scene(motion, "person", body=False)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 7)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(30.0)


def test_saved_blend_keeps_the_pose(empty_scene, tmp_path: Path):
    motion = make_motion(3, seed=1)
    build_scene(motion, "person")
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    armature = bpy.data.objects["person"]
    error = np.linalg.norm(posed_heads(armature, 3) - to_z_up(motion.joints[2]), axis=1)
    assert error.max() < 1e-3
