"""What tests read back from Blender: an action's keys, and what a panel draws."""

import bpy
import numpy as np


def fcurve_values(action: bpy.types.Action, obj: bpy.types.Object) -> dict:
    if hasattr(action, "layers"):
        from bpy_extras.anim_utils import action_get_channelbag_for_slot
        fcurves = action_get_channelbag_for_slot(action, obj.animation_data.action_slot).fcurves
    else:
        fcurves = action.fcurves
    out = {}
    for fcurve in fcurves:
        values = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", values)
        out[(fcurve.data_path, fcurve.array_index)] = values
    return out


class LayoutRecorder:
    """Stands in for a UI layout (there is none headless): records what a panel draws."""

    def __init__(self, calls: list):
        self.__dict__["calls"] = calls

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return call

    def __setattr__(self, name: str, value) -> None:
        pass
