"""Estimated motion into the scene, as Estimate Pose and the headless CLI both make it: an SMPL
armature and body per person (build.py; `--people all` gives several, each with its own
shape and name), one matched camera with the footage as its background, and optionally one
person's motion retargeted onto an existing armature. All of it or nothing: on any failure the
scene is put back as it was.

Timing: the motion's k-th frame is keyed at scene frame 1 + k, except with a movie as the
background: Blender plays a movie frame by frame and cannot skip, so the keys move to the
scene frames where the movie shows each source frame (`frame_index`), the scene takes the
movie's frame rate, and with a stride above 1 the body is interpolated between estimated frames.
"""

from dataclasses import dataclass, field

import bpy
import numpy as np

from ..body_file import Body
from ..footage import Footage, same_picture
from ..motion import Motion
from ..retarget.bake import RetargetError, RetargetOptions, RetargetResult, retarget
from ..retarget.bonemap import BoneMap
from .build import BuiltScene, build_scene, set_frame_rate
from .rollback import kept_on_failure
from .camera import add_clip_background, add_image_background, clip_scene_frames, load_clip
from ..keyframes import move_keys



@dataclass(frozen=True)
class SceneRequest:
    """What to make of an estimated motion.

    Attributes:
        name: the armature's name (and the prefix of the other objects').
        body_mesh: add a body mesh bound to the armature (not when retargeting).
        camera: add the matched camera (when the motion has intrinsics).
        footage: what the motion was estimated from, shown behind the camera; None for none.
        target: an existing armature to retarget the motion onto; None for a new SMPL body.
        bone_map: the retargeting map; None to detect a built-in preset.
        retarget: retargeting options.
    """

    name: str
    body_mesh: bool = True
    camera: bool = True
    footage: Footage | None = None
    target: bpy.types.Object | None = None
    bone_map: BoneMap | None = None
    retarget: RetargetOptions = RetargetOptions()


@dataclass
class MadeScene:
    """What was added: each person's armature, body and (the first's) camera; the retargeting."""

    people: list[BuiltScene]
    retargeted: RetargetResult | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def built(self) -> BuiltScene:
        """The first person's, which holds the camera."""
        return self.people[0]


def add_estimated(motions: list[Motion], request: SceneRequest,
                  bodies: list[Body | None] | None = None) -> MadeScene:
    """Add everything `request` asks for to the current scene; on failure leave it as it was.

    `motions`: one per person, all over the same frames and through the same camera (the
    backend's `--people all` files), or just one. `bodies`: the body made for each motion's
    shape (job.EstimateJob.bodies: the open body or the SMPL mesh), or None (the capsule
    body); their meshes are used when a body mesh is asked for. With several people each
    armature is named "NAME person K" in the files' order; retargeting takes one person.
    """
    if request.target is not None and len(motions) != 1:
        raise RetargetError(f"Retargeting onto {request.target.name} takes one person, not "
                         f"{len(motions)}: retarget each person's armature in turn")
    bodies = bodies or [None] * len(motions)
    mesh = request.body_mesh and request.target is None
    with kept_on_failure(bpy.context.scene, request.target):
        people = []
        for number, (motion, body) in enumerate(zip(motions, bodies)):
            name = request.name if len(motions) == 1 else f"{request.name} person {number}"
            people.append(build_scene(motion, name, body=body if body is not None and mesh else mesh,
                                      camera=request.camera and number == 0))
        made = MadeScene(people)
        if made.built.camera is not None and request.footage is not None:
            made.warnings += _add_footage(people, motions[0], request.footage)
        if request.target is not None:
            made.retargeted = retarget(made.built.armature, request.target, request.bone_map,
                                       request.retarget)
        return made


def _add_footage(people: list[BuiltScene], motion: Motion, footage: Footage) -> list[str]:
    """The footage behind the first person's matched camera, every person's keys in step with
    it; warnings for the user."""
    built = people[0]
    frame_index = (np.arange(motion.num_frames) if motion.frame_index is None
                   else np.asarray(motion.frame_index, dtype=np.int64))
    if footage.images:
        if frame_index.max() >= len(footage.images):
            return [f"The footage has {len(footage.images)} images but the motion refers to "
                    f"image {frame_index.max()}: no background"]
        add_image_background(built.camera, [footage.images[i] for i in frame_index])
        size = built.camera.data.background_images[0].image.size
    else:
        clip = (bpy.data.movieclips[footage.clip] if footage.clip is not None
                else load_clip(footage.movie, int(frame_index[0])))
        if clip.fps <= 0:  # a file Blender's own decoder cannot read
            return [f"Blender cannot play {clip.filepath}: no background"]
        add_clip_background(built.camera, clip)
        frames = clip_scene_frames(clip, frame_index)
        for person in people:
            move_keys(person.armature, frames)
        scene = bpy.context.scene
        scene.frame_start, scene.frame_end = int(frames[0]), int(frames[-1])
        set_frame_rate(scene, clip.fps)
        size = clip.size
    if motion.image_size is not None and not same_picture(tuple(size), tuple(motion.image_size)):
        width, height = motion.image_size
        return [f"The footage is {size[0]}x{size[1]} pixels but was read as {width}x{height} "
                "(rotated by its metadata?): the background will not line up"]
    return []
