"""Retarget: the Retarget panel's operators (retarget, and editing, saving, loading bone maps)."""

import math
from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..retarget.bake import RetargetError, retarget
from ..retarget.bonemap import BoneMap, BoneMapError, builtin_presets, detect, load_map, save_map
from ..retarget.properties import AUTO, CUSTOM, chosen_map, chosen_options, custom_map, fill_pairs


class IKOL_OT_retarget(bpy.types.Operator):
    """Bake the source's motion onto the target as a new action (the Retarget panel's settings)"""

    bl_idname = "ikol.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = context.scene.ikol_retarget
        return settings.source is not None and settings.target is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol_retarget
        try:
            result = retarget(settings.source, settings.target, chosen_map(settings),
                              chosen_options(settings))
        except (RetargetError, BoneMapError) as exc:
            settings.status = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.status = result.describe()
        level = {"INFO"} if math.degrees(result.error) < 1.0 else {"WARNING"}
        self.report(level, settings.status)
        return {"FINISHED"}


class IKOL_OT_retarget_pair_add(bpy.types.Operator):
    """Add a pair to the custom bone map"""

    bl_idname = "ikol.retarget_pair_add"
    bl_label = "Add Pair"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol_retarget
        settings.pairs.add()
        settings.active_pair = len(settings.pairs) - 1
        settings.preset = CUSTOM
        return {"FINISHED"}


class IKOL_OT_retarget_pair_remove(bpy.types.Operator):
    """Remove the selected pair from the custom bone map"""

    bl_idname = "ikol.retarget_pair_remove"
    bl_label = "Remove Pair"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = context.scene.ikol_retarget
        return 0 <= settings.active_pair < len(settings.pairs)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol_retarget
        settings.pairs.remove(settings.active_pair)
        settings.active_pair = min(settings.active_pair, len(settings.pairs) - 1)
        settings.preset = CUSTOM
        return {"FINISHED"}


class IKOL_OT_retarget_pairs_from_preset(bpy.types.Operator):
    """Copy the chosen (or detected) preset into the custom bone map, to edit it"""

    bl_idname = "ikol.retarget_pairs_from_preset"
    bl_label = "Edit as Custom"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene.ikol_retarget.preset != CUSTOM

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol_retarget
        preset = settings.preset
        if preset == AUTO:
            found = detect(settings.target.data.bones.keys()) if settings.target else None
            if found is None:
                self.report({"ERROR"}, "No preset fits the target; choose one")
                return {"CANCELLED"}
            preset = found[0]
        fill_pairs(settings, builtin_presets()[preset])
        settings.preset = CUSTOM
        return {"FINISHED"}


class IKOL_OT_retarget_preset_save(bpy.types.Operator, ExportHelper):
    """Save the custom bone map as a JSON preset"""

    bl_idname = "ikol.retarget_preset_save"
    bl_label = "Save Bone Map"
    bl_options = {"REGISTER", "INTERNAL"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            bone_map = custom_map(context.scene.ikol_retarget)
            save_map(BoneMap.from_dict({**bone_map.to_dict(), "name": Path(self.filepath).stem}),
                     Path(self.filepath))
        except (BoneMapError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved {len(bone_map.pairs)} pairs to {self.filepath}")
        return {"FINISHED"}


class IKOL_OT_retarget_preset_load(bpy.types.Operator, ImportHelper):
    """Load a JSON bone-map preset into the custom bone map"""

    bl_idname = "ikol.retarget_preset_load"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol_retarget
        try:
            bone_map = load_map(Path(self.filepath))
        except BoneMapError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        fill_pairs(settings, bone_map)
        settings.preset = CUSTOM
        self.report({"INFO"}, f"Loaded {len(bone_map.pairs)} pairs ({bone_map.name})")
        return {"FINISHED"}


CLASSES = (IKOL_OT_retarget, IKOL_OT_retarget_pair_add, IKOL_OT_retarget_pair_remove,
           IKOL_OT_retarget_pairs_from_preset, IKOL_OT_retarget_preset_save,
           IKOL_OT_retarget_preset_load)
