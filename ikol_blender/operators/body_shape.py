"""Skeleton from Shape Keys: the open body's rest joints moved to follow its shape keys."""

import bpy

from ..scene.body_shape import body_of, follow_shape_keys


class IKOL_OT_skeleton_from_shape_keys(bpy.types.Operator):
    """Move the armature's rest joints to where the open body's shape keys put them"""

    bl_idname = "ikol.skeleton_from_shape_keys"
    bl_label = "Skeleton from Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return body_of(context.active_object) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            armature = follow_shape_keys(body_of(context.active_object))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Moved the rest joints of {armature.name}")
        return {"FINISHED"}


CLASSES = (IKOL_OT_skeleton_from_shape_keys,)
