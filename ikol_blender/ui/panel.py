"""The IKOL tab in the 3D Viewport sidebar: the Estimate Pose panel."""

import bpy


class IKOL_UL_images(bpy.types.UIList):
    """One row per source image: its file name."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        layout.prop(item, "path", text="", emboss=False, icon="IMAGE_DATA")


def _draw_source(layout: bpy.types.UILayout, settings) -> None:
    layout.prop(settings, "source")
    if settings.source == "IMAGES":
        row = layout.row()
        row.template_list("IKOL_UL_images", "", settings, "images", settings, "active_image",
                          rows=3)
        buttons = row.column(align=True)
        buttons.operator("ikol.add_images", icon="ADD", text="")
        buttons.operator("ikol.remove_image", icon="REMOVE", text="")
    elif settings.source == "FOLDER":
        layout.prop(settings, "folder_path")
    elif settings.source == "MOVIE":
        layout.prop(settings, "movie_path")
    else:
        layout.prop(settings, "clip")


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
        options = layout.column()
        options.enabled = not settings.running
        _draw_source(options, settings)
        frames = options.column(heading="Frames", align=True)
        frames.prop(settings, "start")
        frames.prop(settings, "stop")
        frames.prop(settings, "stride")
        options.prop(settings, "people", expand=True)
        if settings.people == "one":
            options.prop(settings, "person")
        options.prop(settings, "fill")
        options.prop(settings, "front_end")
        if settings.front_end == "ikol":
            network = options.column(heading="Network")
            network.prop(settings, "flip_test")
            network.prop(settings, "half")
        options.prop(settings, "smooth")
        options.prop(settings, "fov")
        options.prop(settings, "target")
        if settings.target == "EXISTING":
            options.prop(settings, "target_armature")
            options.prop(context.scene.ikol_retarget, "preset")
            options.label(text="Root and foot lock: Retarget panel", icon="INFO")
        extras = options.column(heading="Add")
        extras.prop(settings, "matched_camera")
        body = extras.column()
        body.enabled = settings.target == "NEW"
        body.prop(settings, "body_mesh")
        body.prop(settings, "capsule_body")
        body.prop(settings, "shape_keys")
        if settings.running:
            layout.progress(factor=settings.progress, type="BAR", text=settings.status)
            layout.operator("ikol.cancel_estimate", icon="CANCEL")
        else:
            layout.operator("ikol.estimate_pose", icon="ARMATURE_DATA")
            if settings.status:
                layout.label(text=settings.status)


CLASSES = (IKOL_UL_images, IKOL_PT_estimate)
