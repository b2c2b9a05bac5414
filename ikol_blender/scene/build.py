"""Turning a motion into Blender data: one entry point shared by the CLI and the operators."""

from dataclasses import dataclass

import bpy

from ..motion import Motion
from .armature import build_armature, key_motion
from .body_mesh import build_body_mesh
from .camera import build_camera, set_render_size


@dataclass
class BuiltScene:
    armature: bpy.types.Object
    body: bpy.types.Object | None
    camera: bpy.types.Object | None


def build_scene(motion: Motion, name: str, body: bool = True, camera: bool = True) -> BuiltScene:
    """Add an animated SMPL armature (and optionally a body mesh and the matched camera)
    to the current scene, and set the scene's frame rate and range from the motion.

    All or nothing: if anything fails, what was added is removed again and the error raised.
    """
    if motion.rest_joints is None:
        raise ValueError(
            "The motion file has no rest skeleton ('rest_joints'); files without one "
            "(e.g. AMASS) need an SMPL model file, which is not supported yet."
        )
    scene = bpy.context.scene
    before = {kind: set(getattr(bpy.data, kind)) for kind in _MADE_HERE}
    saved = (scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base,
             scene.render.resolution_x, scene.render.resolution_y, scene.camera)
    try:
        return _build(motion, name, body, camera)
    except BaseException:
        for kind in _MADE_HERE:
            collection = getattr(bpy.data, kind)
            for block in set(collection) - before[kind]:
                collection.remove(block)
        (scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base,
         scene.render.resolution_x, scene.render.resolution_y, scene.camera) = saved
        raise


# Kinds of data-blocks the scene writer creates (objects first: they use the others).
_MADE_HERE = ("objects", "armatures", "meshes", "cameras", "actions", "materials")


def _build(motion: Motion, name: str, body: bool, camera: bool) -> BuiltScene:
    armature = build_armature(name, motion.rest_joints)
    key_motion(armature, motion)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, motion.num_frames
    scene.render.fps = max(1, round(motion.frame_rate))
    scene.render.fps_base = scene.render.fps / motion.frame_rate
    mesh = build_body_mesh(armature, f"{name}_body") if body else None
    cam = None
    if camera and motion.camera_intrinsics is not None and motion.image_size is not None:
        cam = build_camera(f"{name}_camera", motion.camera_intrinsics, motion.image_size)
        set_render_size(scene, motion.image_size)
        scene.camera = cam
    return BuiltScene(armature, mesh, cam)
