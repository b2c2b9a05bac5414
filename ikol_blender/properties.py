"""Per-scene settings of the IKOL panel (`scene.ikol`).

A setting named like a field of options.EstimateOptions is that backend option (Estimate Pose
passes it on); 0 stands for "not set" where the option's default is None (Stop Before, Field of
View).
"""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       IntProperty, PointerProperty, StringProperty)

from .options import FILLS, FRONT_ENDS, PEOPLE, EstimateOptions

SOURCES = (
    ("IMAGES", "Image Files", "One or more photos, one frame each, in the order listed"),
    ("FOLDER", "Image Folder", "A folder of images, read in natural order (frame2 before frame10)"),
    ("MOVIE", "Movie File", "A movie file (mp4, avi, mov, mkv, webm)"),
    ("CLIP", "Movie Clip", "A Movie Clip already in this .blend"),
)
TARGETS = (
    ("NEW", "New SMPL Body", "A new SMPL armature (and body mesh)"),
    ("EXISTING", "Existing Armature", "Retarget onto an armature in the scene, with the "
     "Retarget panel's bone map and root options"),
)


def _is_armature(_settings, obj: bpy.types.Object) -> bool:
    return obj.type == "ARMATURE"


class IKOLImagePath(bpy.types.PropertyGroup):
    path: StringProperty(name="Image", subtype="FILE_PATH")


class IKOLSettings(bpy.types.PropertyGroup):
    source: EnumProperty(name="Source", items=SOURCES, description="What to estimate from")
    images: CollectionProperty(type=IKOLImagePath, description="The photos, in frame order")
    active_image: IntProperty()
    folder_path: StringProperty(name="Folder", subtype="DIR_PATH",
                                description="Folder of images, one frame each")
    movie_path: StringProperty(name="Movie", subtype="FILE_PATH", description="Movie file")
    clip: PointerProperty(type=bpy.types.MovieClip, name="Clip",
                          description="Movie Clip to estimate from (its movie file is read)")
    start: IntProperty(name="First Frame", min=0, description="First source frame, from 0")
    stop: IntProperty(name="Stop Before", min=0,
                      description="Source frame to stop before; 0 reads to the end")
    stride: IntProperty(name="Stride", default=EstimateOptions.stride, min=1,
                        description="Use every Nth frame")
    front_end: EnumProperty(name="Front End", items=FRONT_ENDS,
                            description="What finds the person's joints in each frame")
    people: EnumProperty(name="People", items=PEOPLE, default=EstimateOptions.people,
                         description="One person, or everyone (an armature and body each)")
    person: IntProperty(name="Person", min=0, default=EstimateOptions.person,
                        description="Which person: 0 is the largest at the start, 1 the next")
    fill: EnumProperty(name="Missing Frames", items=FILLS,
                       description="What frames without the person get (they stay marked "
                                   "invalid in the motion file)")
    flip_test: BoolProperty(name="Flip Test", default=False,
                            description="IKOL network: also run the mirrored crop and average "
                                        "(twice the work)")
    half: BoolProperty(name="Half Precision", default=False,
                       description="IKOL network: run in float16 (needs a CUDA device)")
    smooth: FloatProperty(name="Smoothing", default=EstimateOptions.smooth, min=0.0, max=1.0,
                          subtype="FACTOR", description="Temporal smoothing of video: 0 raw "
                                                        "(frames fitted independently), 1 heavy")
    fov: FloatProperty(
        name="Field of View", default=0.0, min=0.0, max=170.0,
        description="The camera's field of view across the image's long side, in degrees; "
                    "0: fitted to the footage",
    )
    target: EnumProperty(name="Target", items=TARGETS, description="What receives the motion")
    target_armature: PointerProperty(type=bpy.types.Object, poll=_is_armature, name="Armature",
                                     description="The armature to retarget the motion onto")
    matched_camera: BoolProperty(name="Matched Camera", default=True,
                                 description="Add a camera matching the footage, with the "
                                             "footage as its background")
    body_mesh: BoolProperty(name="Body Mesh", default=True,
                            description="Add a body mesh bound to the armature: the open body, "
                                        "or the SMPL mesh with an SMPL model in the preferences")
    capsule_body: BoolProperty(name="Capsule Body", default=False,
                               description="Without an SMPL model: a capsule per bone instead "
                                           "of the open body")
    shape_keys: BoolProperty(name="Shape Keys", default=False,
                             description="Give the SMPL mesh its pose-corrective shape keys "
                                         "(needs the SMPL model in the add-on's preferences)")
    # Run state, shown while Estimate Pose runs; not saved with the file.
    running: BoolProperty(options={"SKIP_SAVE"})
    cancel_requested: BoolProperty(options={"SKIP_SAVE"})
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    status: StringProperty(options={"SKIP_SAVE"})


CLASSES = (IKOLImagePath, IKOLSettings)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.Scene.ikol = bpy.props.PointerProperty(type=IKOLSettings)


def unregister() -> None:
    del bpy.types.Scene.ikol
    _unregister_classes()
