"""The IKOL tab in the 3D Viewport sidebar."""

import bpy


class IKOL_PT_estimate(bpy.types.Panel):
    bl_label = "Estimate Pose"
    bl_idname = "IKOL_PT_estimate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IKOL"

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.ikol
        layout = self.layout
        layout.use_property_split = True
        column = layout.column()
        column.enabled = not settings.running
        column.prop(settings, "input_path")
        column.prop(settings, "fov")
        column.prop(settings, "body_mesh")
        column.prop(settings, "matched_camera")
        if settings.running:
            layout.progress(factor=settings.progress, text=settings.status)
            layout.operator("ikol.cancel_estimate", icon="CANCEL")
        else:
            layout.operator("ikol.estimate_pose", icon="ARMATURE_DATA")
            if settings.status:
                layout.label(text=settings.status)


CLASSES = (IKOL_PT_estimate,)
