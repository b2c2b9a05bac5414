"""Writing many keys at once, on the layered actions of Blender 4.4+ and the older API of 4.2-4.3.

Functions named `_layered_*` use the 4.4+ API (slots and channel bags) only; every other
function here also runs on 4.2-4.3 (tests/addon/test_keyframes_api.py checks that against the
4.2 API stubs).
"""

import bpy
import numpy as np

# Keyframe.interpolation values, for foreach_set (the enum's order in Blender).
CONSTANT = 0
# The data-blocks the add-on keys: armatures (objects), cameras, shape keys.
AnimatedID = bpy.types.Object | bpy.types.Camera | bpy.types.Key


def write_keys(
    owner: AnimatedID,
    action_name: str,
    frames: np.ndarray,
    channels: dict[tuple[str, int], np.ndarray],
    interpolation: int | None = None,
) -> bpy.types.Action:
    """Assign a new action to `owner` (an object, a camera, ...) holding one F-curve per
    (data path, index) channel, every channel keyed at `frames`.

    Keys are written in bulk (keyframe_points.add + foreach_set); F-curves are grouped by bone.
    `interpolation`: a Keyframe.interpolation value for every key (CONSTANT), or None for
    Blender's default (Bezier).
    """
    return write_channels(owner, action_name,
                          {channel: (frames, values) for channel, values in channels.items()},
                          interpolation)


def write_channels(
    owner: AnimatedID,
    action_name: str,
    channels: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    interpolation: int | None = None,
) -> bpy.types.Action:
    """write_keys with frames of their own per channel: (data path, index) -> (frames, values)."""
    action = bpy.data.actions.new(action_name)
    animation = owner.animation_data or owner.animation_data_create()
    animation.action = action
    channelbag = _layered_channelbag(action, animation, owner) if hasattr(action, "layers") else None
    for (data_path, index), (frames, values) in channels.items():
        group = data_path.split('"')[1] if '"' in data_path else owner.name
        if channelbag is None:
            fcurve = _legacy_new_fcurve(action, data_path, index, group)
        else:
            fcurve = channelbag.fcurves.new(data_path, index=index, group_name=group)
        count = len(frames)
        fcurve.keyframe_points.add(count)
        coords = np.empty(2 * count, dtype=np.float32)
        coords[0::2] = frames
        coords[1::2] = values
        fcurve.keyframe_points.foreach_set("co", coords)
        if interpolation is not None:
            fcurve.keyframe_points.foreach_set("interpolation", np.full(count, interpolation, np.int32))
        fcurve.update()
    return action


def move_keys(owner: AnimatedID, frames: np.ndarray) -> None:
    """Move the k-th key of every F-curve of `owner`'s action to `frames[k]` (increasing), e.g.
    to key a motion at its source frames; handles are recomputed."""
    for fcurve in _fcurves(owner):
        points = fcurve.keyframe_points
        if len(points) != len(frames):
            raise ValueError(f"{fcurve.data_path} has {len(points)} keys, not {len(frames)}")
        coords = np.empty(2 * len(points), dtype=np.float32)
        points.foreach_get("co", coords)
        coords[0::2] = frames
        points.foreach_set("co", coords)
        fcurve.update()


def keyed_frames(owner: AnimatedID) -> list[int]:
    """The frames at which `owner`'s action has keys, in order: those of its first F-curve
    (every curve of a motion is keyed at the same frames); none without F-curves."""
    for fcurve in _fcurves(owner):
        coords = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", coords)
        return [int(round(frame)) for frame in coords[0::2]]
    return []


def _fcurves(owner: AnimatedID) -> "bpy.types.ActionFCurves | bpy.types.ActionChannelbagFCurves":
    """The F-curves of `owner`'s action: the assigned slot's (4.4+), or the action's own."""
    action = owner.animation_data.action
    if hasattr(action, "layers"):
        return _layered_fcurves(action, owner.animation_data)
    return action.fcurves


def _legacy_new_fcurve(action: bpy.types.Action, data_path: str, index: int,
                       group: str) -> bpy.types.FCurve:
    """Blender 4.2-4.3: F-curves live on the action itself."""
    return action.fcurves.new(data_path, index=index, action_group=group)


def _layered_channelbag(action: bpy.types.Action, animation: bpy.types.AnimData,
                        owner: AnimatedID) -> "bpy.types.ActionChannelbag":
    """Blender 4.4+: the channel bag of a slot made for `owner` (types named in quotes: 4.2
    has none of them)."""
    from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

    slot = animation.action_slot or action.slots.new(id_type=owner.id_type, name=owner.name)
    animation.action_slot = slot
    return action_ensure_channelbag_for_slot(action, slot)


def _layered_fcurves(action: bpy.types.Action,
                     animation: bpy.types.AnimData) -> "bpy.types.ActionChannelbagFCurves | list":
    """Blender 4.4+: the F-curves of the assigned slot (none when it has no channel bag)."""
    from bpy_extras.anim_utils import action_get_channelbag_for_slot

    channelbag = action_get_channelbag_for_slot(action, animation.action_slot)
    return channelbag.fcurves if channelbag is not None else []
