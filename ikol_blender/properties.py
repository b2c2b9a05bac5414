"""Per-scene settings of the IKOL panel (`scene.ikol`)."""

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty


class IKOLSettings(bpy.types.PropertyGroup):
    input_path: StringProperty(
        name="Photo", subtype="FILE_PATH", description="Photo of a person to estimate from"
    )
    fov: FloatProperty(
        name="Field of view", default=55.0, min=5.0, max=170.0, subtype="NONE",
        description="The camera's field of view across the image's long side, in degrees",
    )
    body_mesh: BoolProperty(name="Body mesh", default=True,
                            description="Add a body mesh bound to the armature")
    matched_camera: BoolProperty(name="Matched camera", default=True,
                                 description="Add a camera matching the photo")
    # Run state, shown while Estimate Pose runs; not saved with the file.
    running: BoolProperty(options={"SKIP_SAVE"})
    cancel_requested: BoolProperty(options={"SKIP_SAVE"})
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    status: StringProperty(options={"SKIP_SAVE"})


def register() -> None:
    bpy.utils.register_class(IKOLSettings)
    bpy.types.Scene.ikol = bpy.props.PointerProperty(type=IKOLSettings)


def unregister() -> None:
    del bpy.types.Scene.ikol
    bpy.utils.unregister_class(IKOLSettings)
