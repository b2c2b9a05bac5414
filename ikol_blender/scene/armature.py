"""The SMPL armature: 24 bones named after SMPL joints, posed by quaternion and location keys."""

import bpy
import numpy as np
from mathutils import Quaternion, Vector

from ..motion import Motion, bone_rotvecs, root_locations
from ..smpl import JOINT_NAMES, PARENTS, to_z_up
from ..keyframes import write_keys


def build_armature(name: str, rest_joints: np.ndarray) -> bpy.types.Object:
    """A new armature object in the scene's active collection.

    Args:
        rest_joints: (24, 3) rest joint positions in the SMPL model frame (Y up, metres); they
            become bone heads in Blender's Z-up frame.
    """
    heads = to_z_up(rest_joints)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.collection.objects.link(obj)
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = [data.edit_bones.new(joint) for joint in JOINT_NAMES]
        for joint, bone in enumerate(bones):
            bone.head = Vector(heads[joint])
            bone.tail = Vector(_tail(joint, heads))
            bone.roll = 0.0
            if PARENTS[joint] >= 0:
                bone.parent = bones[PARENTS[joint]]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous_active
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return obj


def _tail(joint: int, heads: np.ndarray) -> np.ndarray:
    """Bones end at their first child; leaf bones continue their parent's bone by half."""
    kids = [k for k, parent in enumerate(PARENTS) if parent == joint]
    if kids:
        return heads[kids[0]]
    parent = PARENTS[joint]
    return heads[joint] + 0.5 * (heads[joint] - heads[parent])


def key_motion(obj: bpy.types.Object, motion: Motion, first_frame: int = 1) -> bpy.types.Action:
    """Key every frame of `motion` on the armature in bulk: bone quaternions, root location."""
    bone_rest = np.array(
        [obj.data.bones[name].matrix_local.to_3x3() for name in JOINT_NAMES], dtype=np.float64
    )
    rotvecs = bone_rotvecs(motion.poses, bone_rest)
    quats = np.empty(rotvecs.shape[:2] + (4,))
    for index in np.ndindex(rotvecs.shape[:2]):
        vector = Vector(rotvecs[index])
        angle = vector.length
        quats[index] = Quaternion(vector / angle, angle) if angle > 0 else Quaternion()
    frames = first_frame + np.arange(motion.num_frames, dtype=np.float64)
    channels: dict[tuple[str, int], np.ndarray] = {}
    for joint, name in enumerate(JOINT_NAMES):
        path = f'pose.bones["{name}"].rotation_quaternion'
        for axis in range(4):
            channels[(path, axis)] = quats[:, joint, axis]
    locations = root_locations(motion.trans, bone_rest[0])
    for axis in range(3):
        channels[(f'pose.bones["{JOINT_NAMES[0]}"].location', axis)] = locations[:, axis]
    return write_keys(obj, f"{obj.name}_motion", frames, channels)

