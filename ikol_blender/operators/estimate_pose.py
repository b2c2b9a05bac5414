"""Estimate Pose: runs the backend without blocking Blender, then builds the scene."""

from pathlib import Path

import bpy

from ..backend_process import BackendFailed
from ..job import EstimateJob
from ..motion import MotionFileError
from ..scene.build import build_scene

TIMER_STEP_S = 0.1


class IKOL_OT_estimate_pose(bpy.types.Operator):
    """Estimate an animated SMPL body from the photo (Esc cancels)"""

    bl_idname = "ikol.estimate_pose"
    bl_label = "Estimate Pose"
    bl_options = {"REGISTER", "UNDO"}

    _job: EstimateJob | None = None
    _timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not context.scene.ikol.running

    def _start(self, context: bpy.types.Context) -> bool:
        settings = context.scene.ikol
        photo = Path(bpy.path.abspath(settings.input_path))
        if not settings.input_path or not photo.is_file():
            self.report({"ERROR"}, f"Choose a photo first (not found: {photo})")
            return False
        try:
            self._job = EstimateJob([photo], fov=settings.fov)
        except BackendFailed as exc:
            self.report({"ERROR"}, exc.message)
            return False
        settings.running, settings.cancel_requested = True, False
        settings.progress, settings.status = 0.0, "Starting the backend"
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking form (scripts, --background): the same job, stepped to the end."""
        if not self._start(context):
            return {"CANCELLED"}
        while not self._job.step(timeout=TIMER_STEP_S):
            pass
        return self._finish(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not self._start(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_STEP_S, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        settings = context.scene.ikol
        if event.type == "ESC" or settings.cancel_requested:
            self._end_modal(context)
            self._job.cancel()
            self._reset(context, "Cancelled")
            self.report({"WARNING"}, "Estimate Pose cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = self._job.step()
        progress = self._job.progress
        settings.progress = progress.fraction
        settings.status = f"Frame {progress.done}/{progress.total}, {progress.frames_per_s:.1f} frames/s"
        context.window_manager.progress_update(int(100 * progress.fraction))
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if not finished:
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._finish(context)

    def _finish(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol
        try:
            motion = self._job.motion()
            for warning in self._job.progress.warnings:
                self.report({"WARNING"}, warning)
            built = build_scene(motion, Path(settings.input_path).stem,
                                body=settings.body_mesh, camera=settings.matched_camera)
        except (BackendFailed, MotionFileError) as exc:
            self._reset(context, "Failed")
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            self._job.cleanup()
        self._reset(context, f"Done: {built.armature.name}")
        self.report({"INFO"}, f"Estimated {motion.num_frames} frame(s) onto {built.armature.name}")
        return {"FINISHED"}

    def _end_modal(self, context: bpy.types.Context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()

    @staticmethod
    def _reset(context: bpy.types.Context, status: str) -> None:
        settings = context.scene.ikol
        settings.running, settings.cancel_requested = False, False
        settings.progress, settings.status = 0.0, status


class IKOL_OT_cancel_estimate(bpy.types.Operator):
    """Stop the running Estimate Pose; the scene stays as it was"""

    bl_idname = "ikol.cancel_estimate"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene.ikol.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.ikol.cancel_requested = True
        return {"FINISHED"}


CLASSES = (IKOL_OT_estimate_pose, IKOL_OT_cancel_estimate)
