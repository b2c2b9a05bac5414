"""The Retarget panel in the IKOL sidebar tab, with its Bone Map sub-panel (the custom pairs)."""

import bpy

from ..retarget.bonemap import builtin_presets, detect
from ..retarget.properties import AUTO, CUSTOM


class IKOL_UL_retarget_pairs(bpy.types.UIList):
    """One row per pair: SMPL joint, target bone (searched among the target's bones)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "joint", text="")
        target = context.scene.ikol_retarget.target
        if target is not None:
            row.prop_search(item, "target", target.data, "bones", text="")
        else:
            row.prop(item, "target", text="")


class IKOL_PT_retarget(bpy.types.Panel):
    bl_label = "Retarget"
    bl_idname = "IKOL_PT_retarget"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IKOL"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.ikol_retarget
        layout = self.layout
        layout.use_property_split = True
        column = layout.column()
        column.prop(settings, "source")
        column.prop(settings, "target")
        column.prop(settings, "preset")
        if settings.preset == AUTO and settings.target is not None:
            found = detect(settings.target.data.bones.keys())
            text = (f"Detected: {builtin_presets()[found[0]].name} ({found[1]:.0%} of its bones)"
                    if found else "No preset fits: choose one or map the bones")
            column.label(text=text, icon="INFO" if found else "ERROR")
        column = layout.column(heading="Root")
        column.prop(settings, "in_place")
        column.prop(settings, "auto_scale")
        row = column.row()
        row.enabled = not settings.auto_scale
        row.prop(settings, "root_scale")
        layout.prop(settings, "foot_lock")
        layout.operator("ikol.retarget", icon="ARMATURE_DATA")
        if settings.status:
            layout.label(text=settings.status)


class IKOL_PT_retarget_map(bpy.types.Panel):
    bl_label = "Bone Map"
    bl_idname = "IKOL_PT_retarget_map"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "IKOL"
    bl_parent_id = "IKOL_PT_retarget"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        settings = context.scene.ikol_retarget
        layout = self.layout
        if settings.preset != CUSTOM:
            layout.label(text="The preset is used; edit a copy of it here:")
            layout.operator("ikol.retarget_pairs_from_preset", icon="DUPLICATE")
        row = layout.row()
        pairs = row.column()
        pairs.enabled = settings.preset == CUSTOM
        pairs.template_list("IKOL_UL_retarget_pairs", "", settings, "pairs", settings,
                            "active_pair", rows=6)
        buttons = row.column(align=True)
        buttons.operator("ikol.retarget_pair_add", icon="ADD", text="")
        buttons.operator("ikol.retarget_pair_remove", icon="REMOVE", text="")
        row = layout.row(align=True)
        row.operator("ikol.retarget_preset_load", icon="FILEBROWSER", text="Load")
        row.operator("ikol.retarget_preset_save", icon="FILE_TICK", text="Save")


CLASSES = (IKOL_UL_retarget_pairs, IKOL_PT_retarget, IKOL_PT_retarget_map)
