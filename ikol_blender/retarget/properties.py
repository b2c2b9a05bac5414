"""Per-scene settings of the Retarget panel (`scene.ikol_retarget`) and the custom pair list."""

import json

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       IntProperty, PointerProperty, StringProperty)

from ..smpl import JOINT_NAMES
from .bake import RetargetOptions
from .bonemap import BoneMap, builtin_presets

AUTO, CUSTOM = "AUTO", "CUSTOM"


def _is_armature(_settings, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


def _preset_items() -> list[tuple[str, str, str]]:
    presets = [(key, preset.name, preset.description) for key, preset in builtin_presets().items()]
    return [(AUTO, "Auto-detect", "The built-in preset that fits the target's bone names best"),
            *presets, (CUSTOM, "Custom", "The pair list in Bone Map")]


class IKOLRetargetPair(bpy.types.PropertyGroup):
    joint: EnumProperty(name="SMPL joint", items=[(n, n, "") for n in JOINT_NAMES],
                        description="The source joint")
    target: StringProperty(name="Target bone", description="The bone that follows the joint")


class IKOLRetargetSettings(bpy.types.PropertyGroup):
    source: PointerProperty(type=bpy.types.Object, poll=_is_armature, name="Source",
                            description="The SMPL armature whose motion is copied")
    target: PointerProperty(type=bpy.types.Object, poll=_is_armature, name="Target",
                            description="The armature that receives the motion as a new action")
    preset: EnumProperty(name="Bone map", items=_preset_items(),
                         description="Which target bone follows which SMPL joint")
    pairs: CollectionProperty(type=IKOLRetargetPair)
    active_pair: IntProperty()
    in_place: BoolProperty(name="In place", description="Keep the root over its rest position; "
                           "only its vertical motion is kept")
    auto_scale: BoolProperty(name="Scale by legs", default=True,
                             description="Scale the root motion by the ratio of leg lengths")
    root_scale: FloatProperty(name="Root scale", default=1.0, min=0.0, soft_max=10.0,
                              description="Factor on the root motion when not scaled by legs")
    foot_lock: BoolProperty(name="Foot lock", description="Pin the feet while they are planted, "
                            "bending the legs, so that they do not slide")
    # The custom map's root bone, axis bones and constant properties (JSON), kept from the
    # preset it came from.
    custom_extras: StringProperty(default="{}")
    status: StringProperty(options={"SKIP_SAVE"})


def custom_map(settings: IKOLRetargetSettings) -> BoneMap:
    """The pair list as a bone map (pairs without a target bone are left out); BoneMapError
    if it is not a valid map (a bone mapped twice)."""
    extras = json.loads(settings.custom_extras)
    pairs = [[p.joint, p.target] for p in settings.pairs if p.target]
    targets = {bone for _, bone in pairs}
    if extras.get("root") not in targets:
        extras.pop("root", None)
    extras["axis_bones"] = [bone for bone in extras.get("axis_bones", ()) if bone in targets]
    return BoneMap.from_dict({"name": "Custom", **extras, "pairs": pairs})


def chosen_map(settings: IKOLRetargetSettings) -> BoneMap | None:
    """The panel's bone map: a preset, the custom list, or None to auto-detect."""
    if settings.preset == AUTO:
        return None
    if settings.preset == CUSTOM:
        return custom_map(settings)
    return builtin_presets()[settings.preset]


def chosen_options(settings: IKOLRetargetSettings) -> RetargetOptions:
    """The panel's root and foot-lock options."""
    return RetargetOptions(in_place=settings.in_place, foot_lock=settings.foot_lock,
                           root_scale=None if settings.auto_scale else settings.root_scale)


def fill_pairs(settings: IKOLRetargetSettings, bone_map: BoneMap) -> None:
    """Replace the pair list (and its root, axis bones and properties) with a map's."""
    extras = {key: value for key, value in bone_map.to_dict().items()
              if key in ("root", "axis_bones", "properties")}
    settings.custom_extras = json.dumps(extras)
    settings.pairs.clear()
    for joint, bone in bone_map.pairs:
        pair = settings.pairs.add()
        pair.joint, pair.target = joint, bone
    settings.active_pair = 0


CLASSES = (IKOLRetargetPair, IKOLRetargetSettings)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.Scene.ikol_retarget = PointerProperty(type=IKOLRetargetSettings)


def unregister() -> None:
    del bpy.types.Scene.ikol_retarget
    _unregister_classes()
