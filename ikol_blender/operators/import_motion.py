"""File > Import > SMPL motion (.npz): motion files made elsewhere, onto a new SMPL armature."""

from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..motion import MotionFileError, load_motion
from ..scene.build import build_scene


class IKOL_OT_import_motion(bpy.types.Operator, ImportHelper):
    """Import an SMPL motion file (.npz) as an animated SMPL armature"""

    bl_idname = "ikol.import_motion"
    bl_label = "Import SMPL Motion"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(self.filepath)
        try:
            motion = load_motion(path)
            built = build_scene(motion, path.stem, camera=motion.camera_intrinsics is not None)
        except (MotionFileError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {motion.num_frames} frame(s) onto {built.armature.name}")
        return {"FINISHED"}


def menu_import(self, context: bpy.types.Context) -> None:
    self.layout.operator(IKOL_OT_import_motion.bl_idname, text="SMPL motion (.npz)")


CLASSES = (IKOL_OT_import_motion,)
