"""File > Import > SMPL motion (.npz, or the backend's .json): motion files made elsewhere
(this project's, from another machine, or AMASS-style), onto a new SMPL armature.

The body comes from the backend (`ikol-backend body`: the rest skeleton for the file's betas
and the shaped, skinned mesh: the open body, or the SMPL mesh when the preferences name an
SMPL model file). That runs a short backend process (a few seconds, mostly starting torch)
while Blender waits. With "Capsule Body" a file with its own rest skeleton needs no backend; one
without (AMASS) gets the default skeleton's.
"""

import tempfile
from dataclasses import replace
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..backend_process import BackendFailed, backend_python
from ..body_file import Body, BodyFileError, export_body, load_body
from ..motion import Motion, MotionFileError, load_motion
from ..preferences import addon_preferences, selected_python
from ..scene.build import build_scene


class IKOL_OT_import_motion(bpy.types.Operator, ImportHelper):
    """Import an SMPL motion file (.npz, also AMASS; or the backend's .json) as an animated SMPL
    armature"""

    bl_idname = "ikol.import_motion"
    bl_label = "Import SMPL Motion"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz;*.json", options={"HIDDEN"})
    up_axis: EnumProperty(
        name="World up",
        description="The up axis of the world the file's root rotation and translation are in",
        items=(
            ("AUTO", "Auto", "Y for this add-on's own files (they have a format_version), Z for "
             "files made elsewhere, as AMASS"),
            ("Y", "Y up", "The SMPL model frame, as this add-on's own files"),
            ("Z", "Z up", "A Z-up world, as AMASS: it stays Blender's world"),
        ),
        default="AUTO",
    )
    capsule_body: BoolProperty(
        name="Capsule Body",
        description="Without an SMPL model file: a capsule per bone instead of the open body",
        default=False,
    )
    pose_correctives: BoolProperty(
        name="Pose correctives",
        description="With an SMPL model file in the preferences: add SMPL's pose-corrective "
                    "shape keys (207, driven by the bones)",
        default=False,
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(self.filepath)
        try:
            motion = load_motion(path)
            if self.up_axis != "AUTO":
                motion = replace(motion, up_axis=self.up_axis)
            body = self._body(motion)
            built = build_scene(motion, path.stem, body=body if body is not None else True,
                                camera=motion.camera_intrinsics is not None)
        except (MotionFileError, BodyFileError, BackendFailed, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if (body is not None and body.mesh is not None and body.mesh.shape_values is None
                and motion.gender not in ("neutral", body.gender)):
            self.report({"WARNING"}, f"The motion is for a {motion.gender} body; the SMPL model "
                                     f"file is {body.gender}")
        self.report({"INFO"}, f"Imported {motion.num_frames} frame(s) onto {built.armature.name}")
        return {"FINISHED"}

    def _body(self, motion: Motion) -> Body | None:
        """The body from the backend (the SMPL mesh with the preferences' SMPL file, else the
        open body), or None when the motion's own skeleton and the capsule body will do."""
        preferences = addon_preferences()
        smpl = (Path(bpy.path.abspath(preferences.smpl_model))
                if preferences is not None and preferences.smpl_model else None)
        capsules = self.capsule_body and smpl is None
        if capsules and motion.rest_joints is not None:
            return None
        with tempfile.TemporaryDirectory(prefix="ikol-body-") as folder:
            body_path = export_body(backend_python(selected_python()), smpl, motion.mean_betas, Path(folder),
                                    pose_correctives=self.pose_correctives and smpl is not None,
                                    skeleton_only=capsules)
            return load_body(body_path)


def menu_import(self, context: bpy.types.Context) -> None:
    self.layout.operator(IKOL_OT_import_motion.bl_idname, text="SMPL motion (.npz, .json)")


CLASSES = (IKOL_OT_import_motion,)
