"""Writing many keys at once, on the layered actions of Blender 4.4+ and the older API of 4.2-4.3."""

import bpy
import numpy as np


def write_keys(
    obj: bpy.types.Object,
    action_name: str,
    frames: np.ndarray,
    channels: dict[tuple[str, int], np.ndarray],
) -> bpy.types.Action:
    """Assign a new action to `obj` holding one F-curve per (data path, index) channel.

    Keys are written in bulk (keyframe_points.add + foreach_set); F-curves are grouped by bone.
    """
    action = bpy.data.actions.new(action_name)
    animation = obj.animation_data or obj.animation_data_create()
    animation.action = action
    fcurves = _fcurve_collection(action, animation, obj)
    count = len(frames)
    for (data_path, index), values in channels.items():
        group = data_path.split('"')[1] if '"' in data_path else obj.name
        fcurve = _new_fcurve(fcurves, data_path, index, group)
        fcurve.keyframe_points.add(count)
        coords = np.empty(2 * count, dtype=np.float32)
        coords[0::2] = frames
        coords[1::2] = values
        fcurve.keyframe_points.foreach_set("co", coords)
        fcurve.update()
    return action


def _fcurve_collection(action: bpy.types.Action, animation, obj: bpy.types.Object):
    """The F-curve collection to add to: a channel bag (4.4+) or the action itself (4.2-4.3)."""
    if not hasattr(action, "layers"):
        return action
    from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

    slot = animation.action_slot or action.slots.new(id_type=obj.id_type, name=obj.name)
    animation.action_slot = slot
    return action_ensure_channelbag_for_slot(action, slot)


def _new_fcurve(owner, data_path: str, index: int, group: str) -> bpy.types.FCurve:
    if isinstance(owner, bpy.types.Action):  # Blender 4.2-4.3
        return owner.fcurves.new(data_path, index=index, action_group=group)
    return owner.fcurves.new(data_path, index=index, group_name=group)
