"""Keyframe writing speed under real bpy: the add-on's bulk writer against keyframe_insert.

    .venv/bin/python bench/keyframes.py [--frames 10000] [--baseline-frames 1000] [--repeats 3]

Both write the same SMPL motion (24 bone quaternions and the root location per frame) onto the
same armature. keyframe_insert is slow enough that it runs on the first --baseline-frames
frames only; the table gives per-frame times so the two compare directly, and the projected
time of keyframe_insert for all frames. Medians of --repeats runs.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ikol_blender.motion import Motion, bone_rotvecs, root_locations  # noqa: E402
from ikol_blender.scene.armature import build_armature, key_motion  # noqa: E402
from ikol_blender.smpl import JOINT_NAMES, NUM_JOINTS  # noqa: E402

REST = np.array([[0.0, 0.0, 0.0]] + [[0.1 * np.sin(j), -0.05 * j, 0.02 * np.cos(j)]
                                      for j in range(1, NUM_JOINTS)])


def make_motion(frames: int) -> Motion:
    rng = np.random.default_rng(0)
    return Motion(
        poses=rng.normal(scale=0.3, size=(frames, NUM_JOINTS, 3)), trans=rng.normal(size=(frames, 3)),
        betas=np.zeros(10), frame_rate=30.0, rest_joints=REST, joints=None,
        valid=np.ones(frames, bool), camera_intrinsics=None, image_size=None, source="",
    )


def fresh_armature() -> bpy.types.Object:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return build_armature("bench", REST)


def ours(motion: Motion) -> float:
    armature = fresh_armature()
    tick = time.perf_counter()
    key_motion(armature, motion)
    return time.perf_counter() - tick


def keyframe_insert(motion: Motion) -> float:
    armature = fresh_armature()
    armature.animation_data_create()
    bones = [armature.pose.bones[name] for name in JOINT_NAMES]
    rest = np.array([armature.data.bones[n].matrix_local.to_3x3() for n in JOINT_NAMES])
    from mathutils import Quaternion, Vector

    tick = time.perf_counter()
    rotvecs = bone_rotvecs(motion.poses, rest)
    locations = root_locations(motion.trans, rest[0])
    for frame in range(motion.num_frames):
        for bone, rotvec in zip(bones, rotvecs[frame]):
            vector = Vector(rotvec)
            angle = vector.length
            bone.rotation_quaternion = Quaternion(vector / angle, angle) if angle else Quaternion()
            bone.keyframe_insert("rotation_quaternion", frame=frame + 1)
        bones[0].location = locations[frame]
        bones[0].keyframe_insert("location", frame=frame + 1)
    return time.perf_counter() - tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--baseline-frames", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name, run, frames in (("bulk (ours)", ours, args.frames),
                              ("keyframe_insert", keyframe_insert, args.baseline_frames)):
        motion = make_motion(frames)
        seconds = statistics.median(run(motion) for _ in range(args.repeats))
        rows.append((name, frames, seconds, 1000 * seconds / frames))
    print(f"Blender {bpy.app.version_string}, {NUM_JOINTS} bones, median of {args.repeats}")
    print(f"{'method':<17}{'frames':>8}{'seconds':>10}{'ms/frame':>10}{f'projected {args.frames} frames (s)':>32}")
    for name, frames, seconds, per_frame in rows:
        print(f"{name:<17}{frames:>8}{seconds:>10.3f}{per_frame:>10.4f}{per_frame * args.frames / 1000:>32.2f}")
    print(f"ratio (keyframe_insert / ours, per frame): {rows[1][3] / rows[0][3]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
