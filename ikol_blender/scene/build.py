"""Turning a motion into Blender data: one entry point shared by the CLI and the operators."""

from dataclasses import dataclass, replace

import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from ..body_file import Body
from ..motion import Motion
from ..smpl import Y_UP_TO_Z_UP
from .armature import build_armature, key_motion
from .body_mesh import build_body_mesh
from .camera import build_camera, set_render_size
from .rollback import kept_on_failure
from .smpl_body import build_smpl_mesh


@dataclass
class BuiltScene:
    armature: bpy.types.Object
    body: bpy.types.Object | None
    camera: bpy.types.Object | None


def build_scene(motion: Motion, name: str, body: Body | bool = True,
                camera: bool = True) -> BuiltScene:
    """Add an animated SMPL armature (and optionally a body mesh and the matched camera)
    to the current scene, and set the scene's frame rate and range from the motion.

    Args:
        body: a body file's Body: the armature gets its rest skeleton and, when it has a mesh,
            that mesh with its shape keys (the open body: set to its fitted phenotypes; SMPL:
            set to its betas, keyed per frame when the motion's betas change per frame); True:
            the motion's own rest skeleton and the capsule body; False: no mesh.

    A motion in a Z-up world (AMASS) is turned into the model frame first, so the armature's
    world positions are the file's. With a Body and a motion that has its own rest skeleton,
    the translation is corrected so the pelvis stays where the motion put it.

    All or nothing: if anything fails, what was added is removed again and the error raised.
    """
    motion = _on_skeleton(motion, body if isinstance(body, Body) else None)
    with kept_on_failure(bpy.context.scene):
        return _build(motion, name, body, camera)


def set_frame_rate(scene: bpy.types.Scene, rate: float) -> None:
    """Frames per second as Blender holds them: a whole number over a base (29.97 = 30/1.001)."""
    scene.render.fps = max(1, round(rate))
    scene.render.fps_base = scene.render.fps / rate


def _build(motion: Motion, name: str, body: Body | bool, camera: bool) -> BuiltScene:
    armature = build_armature(name, motion.rest_joints)
    key_motion(armature, motion)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, motion.num_frames
    set_frame_rate(scene, motion.frame_rate)
    if isinstance(body, Body) and body.mesh is not None:
        betas = motion.betas if motion.betas.ndim == 2 else body.betas
        mesh = build_smpl_mesh(armature, body.mesh, f"{name}_body", betas)
    elif body:
        mesh = build_body_mesh(armature, f"{name}_body")
    else:
        mesh = None
    cam = None
    if camera and motion.camera_intrinsics is not None and motion.image_size is not None:
        cam = build_camera(f"{name}_camera", motion.camera_intrinsics, motion.image_size)
        set_render_size(scene, motion.image_size)
        scene.camera = cam
    return BuiltScene(armature, mesh, cam)


def _on_skeleton(motion: Motion, body: Body | None) -> Motion:
    """The motion in the model frame, on the rest skeleton the armature gets (the body's when
    given, else the motion's own)."""
    if body is None and motion.rest_joints is None:
        raise ValueError(
            "The motion file has no rest skeleton ('rest_joints'), as files made elsewhere "
            "(e.g. AMASS) have none: it needs a body file (ikol-backend body) for its betas."
        )
    own_pelvis = motion.rest_joints[0] if motion.rest_joints is not None else body.rest_joints[0]
    if motion.up_axis == "Z":
        motion = _from_z_up_world(motion, own_pelvis)
    if body is None:
        return motion
    # SMPL puts the pelvis at rest pelvis + trans: keep it there on the body's skeleton.
    return replace(motion, rest_joints=body.rest_joints,
                   trans=motion.trans + own_pelvis - body.rest_joints[0])


def _from_z_up_world(motion: Motion, rest_pelvis: np.ndarray) -> Motion:
    """A motion whose root rotation R and translation t place the body in a Z-up world (AMASS:
    world = R (p - J0) + J0 + t for a model-frame point p, J0 the rest pelvis) -> the same
    motion in the model frame, so that Blender (model frame turned by C) shows that world:
    root rotation C^T R, translation C^T (t + J0) - J0."""
    to_model = Matrix(Y_UP_TO_Z_UP).transposed()
    poses = motion.poses.copy()
    for frame, rotvec in enumerate(motion.poses[:, 0]):
        vector = Vector(rotvec)
        root = Quaternion(vector.normalized(), vector.length) if vector.length > 0 else Quaternion()
        axis, angle = (to_model @ root.to_matrix()).to_quaternion().to_axis_angle()
        poses[frame, 0] = np.array(axis) * angle
    to_model_rows = Y_UP_TO_Z_UP  # row vectors: v @ C = (C^T v)^T
    return replace(
        motion, poses=poses, up_axis="Y",
        trans=(motion.trans + rest_pelvis) @ to_model_rows - rest_pelvis,
        joints=None if motion.joints is None else motion.joints @ to_model_rows,
    )
