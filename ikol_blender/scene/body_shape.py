"""The open body's skeleton following its shape keys.

Blender cannot drive an armature's rest pose, so the rest joints follow the shape keys on
request (the IKOL Body panel's "Skeleton from Shape Keys"): the body file gives the rest joints
with every key at 0 and their move per unit of each key, kept on the mesh object as custom
properties (Blender Z-up, armature space, metres); the rest joints for the keys' current values
are their linear sum, exactly as the skin's shape is.

Moving a rest joint keeps each bone's rest orientation (only heads, and tails along the same
direction, move), so the keyed rotations keep their meaning: an SMPL pose is a rotation per
bone, independent of where the joints sit.
"""

import bpy
import numpy as np
from mathutils import Vector

from ..smpl import JOINT_NAMES, NUM_JOINTS, PARENTS, to_z_up

TEMPLATE_PROPERTY = "ikol_joint_template"
SHAPEDIRS_PROPERTY = "ikol_joint_shapedirs"


def store_joint_shapes(obj: bpy.types.Object, joint_template: np.ndarray,
                       joint_shapedirs: np.ndarray, names: tuple[str, ...]) -> None:
    """Keep the rest joints per shape key on the mesh object.

    Args:
        joint_template: (24, 3) rest joints with every key at 0, model frame (Y up).
        joint_shapedirs: (24, 3, K) their move per unit of each key named in `names`.
    """
    obj[TEMPLATE_PROPERTY] = to_z_up(joint_template).ravel().tolist()
    obj[SHAPEDIRS_PROPERTY] = {name: to_z_up(joint_shapedirs[:, :, index]).ravel().tolist()
                               for index, name in enumerate(names)}


def follows_shape_keys(obj: bpy.types.Object | None) -> bool:
    """Whether `obj` is a body mesh that carries its rest joints per shape key."""
    return obj is not None and obj.type == "MESH" and TEMPLATE_PROPERTY in obj


def body_of(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The open body mesh for the active object: itself, or the mesh bound to an armature."""
    if follows_shape_keys(obj):
        return obj
    if obj is not None and obj.type == "ARMATURE":
        return next((child for child in obj.children if follows_shape_keys(child)), None)
    return None


def joints_from_shape_keys(obj: bpy.types.Object) -> np.ndarray:
    """(24, 3) rest joints for the mesh's current shape key values (a muted key counts 0),
    Blender Z-up, armature space."""
    # A copy: np.asarray would share the ID property's own memory, and += would change it.
    joints = np.array(obj[TEMPLATE_PROPERTY], dtype=np.float64).reshape(NUM_JOINTS, 3)
    blocks = obj.data.shape_keys.key_blocks
    for name, move in obj[SHAPEDIRS_PROPERTY].items():
        block = blocks.get(name)
        if block is not None and not block.mute:
            joints += block.value * np.asarray(move, dtype=np.float64).reshape(NUM_JOINTS, 3)
    return joints


def follow_shape_keys(obj: bpy.types.Object) -> bpy.types.Object:
    """Move the rest joints of the armature `obj` is bound to onto the joints for its shape
    keys' current values; the armature."""
    armature = obj.find_armature() or obj.parent
    if armature is None or armature.type != "ARMATURE":
        raise ValueError(f"{obj.name} is bound to no armature")
    heads = joints_from_shape_keys(obj)
    view_layer = bpy.context.view_layer
    previous_active, previous_mode = view_layer.objects.active, obj.mode
    if previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = armature.data.edit_bones
        for joint, name in enumerate(JOINT_NAMES):
            bone = bones[name]
            direction = (bone.tail - bone.head).normalized()
            roll = bone.roll
            bone.head = Vector(heads[joint])
            bone.tail = bone.head + direction * _length(joint, heads)
            bone.roll = roll
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous_active
    return armature


def _length(joint: int, heads: np.ndarray) -> float:
    """A bone's length: to its first child, or (leaf bones) half its parent's."""
    kids = [k for k, parent in enumerate(PARENTS) if parent == joint]
    if kids:
        return float(np.linalg.norm(heads[kids[0]] - heads[joint]))
    parent = PARENTS[joint]
    return 0.5 * float(np.linalg.norm(heads[joint] - heads[parent]))
