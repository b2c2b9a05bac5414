"""Reading armatures for retargeting: rest skeletons and evaluated poses (bpy)."""

import bpy
import numpy as np

from .skeleton import Skeleton, topological_order


def read_skeleton(obj: bpy.types.Object) -> Skeleton:
    """The armature's rest skeleton (bone matrices in armature space) and world matrix."""
    bones = obj.data.bones
    names = [bone.name for bone in bones]
    index = {name: i for i, name in enumerate(names)}
    parents = [index[bone.parent.name] if bone.parent else -1 for bone in bones]
    rest = np.empty(16 * len(bones), dtype=np.float32)
    bones.foreach_get("matrix_local", rest)
    rest = rest.reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)  # stored column-major
    order = topological_order(parents)
    position = {old: new for new, old in enumerate(order)}
    return Skeleton(
        names=tuple(names[i] for i in order),
        parents=np.array([position[parents[i]] if parents[i] >= 0 else -1 for i in order]),
        rest=rest[order],
        world=np.array(obj.matrix_world, dtype=np.float64),
    )


def sample_pose(obj: bpy.types.Object, skeleton: Skeleton, frames: np.ndarray) -> np.ndarray:
    """(F, n, 4, 4) the armature-space bone matrices Blender evaluates at each frame, in the
    skeleton's bone order. Sets the scene's frame; the caller puts it back."""
    scene = bpy.context.scene
    pose_bones = obj.pose.bones
    order = [pose_bones.find(name) for name in skeleton.names]
    buffer = np.empty(16 * len(pose_bones), dtype=np.float32)
    out = np.empty((len(frames), len(order), 4, 4))
    for row, frame in enumerate(frames):
        scene.frame_set(int(frame))
        pose_bones.foreach_get("matrix", buffer)
        out[row] = buffer.reshape(-1, 4, 4).transpose(0, 2, 1)[order]
    return out
