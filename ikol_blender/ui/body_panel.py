"""The IKOL Body panel: the open body's shape keys and "Skeleton from Shape Keys"."""

import bpy

from ..scene.body_shape import SHAPEDIRS_PROPERTY, body_of


class IKOL_PT_body(bpy.types.Panel):
    bl_label = "Body Shape"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IKOL"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return body_of(context.active_object) is not None

    def draw(self, context: bpy.types.Context) -> None:
        body = body_of(context.active_object)
        layout = self.layout
        layout.use_property_split = True
        blocks = body.data.shape_keys.key_blocks
        for name in body[SHAPEDIRS_PROPERTY].keys():
            if name in blocks:
                layout.prop(blocks[name], "value", text=name.capitalize())
        layout.operator("ikol.skeleton_from_shape_keys", icon="ARMATURE_DATA")


CLASSES = (IKOL_PT_body,)
