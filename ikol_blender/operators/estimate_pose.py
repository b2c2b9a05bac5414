"""Estimate Pose: runs the backend without blocking Blender, then builds the scene.

`EstimateRun` is one run as the panel sets it up: the operator steps it from a timer (modal)
or to the end (execute); tests drive it the same way, since a headless Blender has no event
loop for a modal operator. The scene is only changed at the end, all at once (one undo step);
a failure or Cancel leaves it as it was and removes every temporary file.
"""

from dataclasses import fields
from pathlib import Path

import bpy

from .. import preferences
from ..backend_process import BackendFailed, backend_python
from ..body_file import BodyFileError
from ..footage import Footage, footage_of, natural_key
from ..job import EstimateJob
from ..motion import MotionFileError
from ..options import EstimateOptions
from ..retarget.bake import RetargetError
from ..retarget.bonemap import BoneMapError
from ..retarget.properties import chosen_map, chosen_options
from ..scene.estimated import MadeScene, SceneRequest, add_estimated

TIMER_STEP_S = 0.1
FAILURES = (BackendFailed, MotionFileError, BodyFileError, RetargetError, BoneMapError)


class SourceError(ValueError):
    """The panel's source or options cannot be used; the message says what to fix."""


class EstimateRun:
    """The panel's source and options, the backend job, and the scene made at the end.

    Each step takes the context of the operator call it runs in (a context is only valid
    during its call).
    """

    def __init__(self, context: bpy.types.Context):
        """Start the backend; SourceError or BackendFailed if it cannot start."""
        settings = context.scene.ikol
        self.inputs, self.name, self._clip = _source(settings)
        if settings.target == "EXISTING" and settings.target_armature is None:
            raise SourceError("Choose the armature to retarget onto")
        if settings.target == "EXISTING" and settings.people == "all":
            raise SourceError("Retargeting takes one person: choose People: One, or make "
                              "everyone's SMPL bodies and retarget each in the Retarget panel")
        options = _estimate_options(settings)
        if settings.front_end == "ikol" and options.checkpoint is None:
            raise SourceError("The IKOL network needs its checkpoint: set it in the add-on's "
                              "preferences, or choose the BlazePose front end")
        python = backend_python(preferences.selected_python())
        self.job = EstimateJob(python, self.inputs, options,
                               mesh=settings.body_mesh and settings.target == "NEW",
                               pose_correctives=settings.shape_keys,
                               capsules=settings.capsule_body)
        settings.running, settings.cancel_requested = True, False
        settings.progress, settings.status = 0.0, "Starting the backend"

    def tick(self, context: bpy.types.Context, timeout: float = 0.0) -> bool:
        """Take in the backend's news and show it in the panel; True once it has ended."""
        ended = self.job.step(timeout)
        progress = self.job.progress
        settings = context.scene.ikol
        settings.progress = progress.fraction
        settings.status = (f"{progress.stage}: frame {progress.done}/{progress.total}, "
                           f"{progress.frames_per_s:.1f} frames/s")
        return ended

    def finish(self, context: bpy.types.Context) -> MadeScene:
        """Build the scene from the ended job (raises one of FAILURES, scene untouched)."""
        settings, retarget_settings = context.scene.ikol, context.scene.ikol_retarget
        try:
            motions = self.job.motions()
            bodies = self.job.bodies()
            footage = Footage(clip=self._clip) if self._clip else footage_of(self.inputs)
            existing = settings.target == "EXISTING"
            request = SceneRequest(
                name=self.name, body_mesh=settings.body_mesh,
                camera=settings.matched_camera, footage=footage,
                target=settings.target_armature if existing else None,
                bone_map=chosen_map(retarget_settings) if existing else None,
                retarget=chosen_options(retarget_settings))
            made = add_estimated(motions, request, bodies)
        except BaseException:
            _reset(settings, "Failed")
            raise
        finally:
            self.job.cleanup()
        made.warnings[:0] = self.job.progress.warnings
        if made.retargeted is not None:
            retarget_settings.source, retarget_settings.target = made.built.armature, request.target
        done = (request.target or made.built.armature).name if len(made.people) == 1 else \
            f"{len(made.people)} people"
        progress = self.job.progress
        _reset(settings, f"Done: {done} on {progress.device_name}. {progress.people}".strip())
        return made

    def cancel(self, context: bpy.types.Context) -> None:
        """End the backend and remove its files; the scene stays as it was."""
        self.job.cancel()
        _reset(context.scene.ikol, "Cancelled")


def _source(settings) -> tuple[list[Path], str, str | None]:
    """The backend inputs, a name for what is made, and the Movie Clip's name (CLIP source)."""
    if settings.source == "IMAGES":
        paths = [Path(bpy.path.abspath(item.path)) for item in settings.images if item.path]
        if not paths:
            raise SourceError("Add the image files first")
        return paths, paths[0].stem, None
    if settings.source == "FOLDER":
        if not settings.folder_path:
            raise SourceError("Choose the image folder first")
        folder = Path(bpy.path.abspath(settings.folder_path))
        return [folder], folder.name, None
    if settings.source == "MOVIE":
        if not settings.movie_path:
            raise SourceError("Choose the movie file first")
        movie = Path(bpy.path.abspath(settings.movie_path))
        return [movie], movie.stem, None
    clip = settings.clip
    if clip is None:
        raise SourceError("Choose the Movie Clip first")
    if clip.source != "MOVIE":
        raise SourceError(f"{clip.name} is an image sequence: choose its folder as the source "
                          "(Image Folder) instead")
    movie = Path(bpy.path.abspath(clip.filepath, library=clip.library))
    return [movie], Path(clip.name).stem, clip.name


def _estimate_options(settings) -> EstimateOptions:
    """The panel's options (the settings named like them; 0 for "not set" where the option's
    default is None) and the add-on preferences' device and model files."""
    chosen: dict[str, object] = {}
    for option in fields(EstimateOptions):
        if option.name in settings.bl_rna.properties:
            value = getattr(settings, option.name)
            chosen[option.name] = None if option.default is None and not value else value
    prefs = preferences.addon_preferences()
    if prefs:
        chosen.update(device=prefs.device, smpl=_chosen_file(prefs.smpl_model),
                      checkpoint=_chosen_file(prefs.checkpoint))
    return EstimateOptions(**chosen)


def _chosen_file(path: str) -> Path | None:
    return Path(bpy.path.abspath(path)) if path else None


def _reset(settings, status: str) -> None:
    settings.running, settings.cancel_requested = False, False
    settings.progress, settings.status = 0.0, status


class IKOL_OT_estimate_pose(bpy.types.Operator):
    """Estimate an animated SMPL body from the chosen source (Esc cancels)"""

    bl_idname = "ikol.estimate_pose"
    bl_label = "Estimate Pose"
    bl_options = {"REGISTER", "UNDO"}

    _run: EstimateRun | None = None
    _timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not context.scene.ikol.running

    def _start(self, context: bpy.types.Context) -> bool:
        try:
            self._run = EstimateRun(context)
        except (SourceError, BackendFailed) as exc:
            self.report({"ERROR"}, str(exc))
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking form (scripts, --background): the same run, stepped to the end."""
        if not self._start(context):
            return {"CANCELLED"}
        while not self._run.tick(context, timeout=TIMER_STEP_S):
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
        if event.type == "ESC" or context.scene.ikol.cancel_requested:
            self._end_modal(context)
            self._run.cancel(context)
            self.report({"WARNING"}, "Estimate Pose cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        ended = self._run.tick(context)
        context.window_manager.progress_update(int(100 * self._run.job.progress.fraction))
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if not ended:
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._finish(context)

    def _finish(self, context: bpy.types.Context) -> set[str]:
        try:
            made = self._run.finish(context)
        except FAILURES as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for warning in made.warnings:
            self.report({"WARNING"}, warning)
        target = (made.retargeted.action.name if made.retargeted else
                  ", ".join(person.armature.name for person in made.people))
        self.report({"INFO"}, f"Estimated {self._run.job.motions()[0].num_frames} frame(s) onto "
                    f"{target}" + (f"; retargeted: {made.retargeted.describe()}" if made.retargeted
                                   else "") + f". {self._run.job.progress.people}")
        return {"FINISHED"}

    def _end_modal(self, context: bpy.types.Context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()


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


class IKOL_OT_add_images(bpy.types.Operator):
    """Add image files to the source list (several can be selected)"""

    bl_idname = "ikol.add_images"
    bl_label = "Add Images"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement,
                                        options={"HIDDEN", "SKIP_SAVE"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol
        chosen = [Path(self.directory) / item.name for item in self.files if item.name]
        for path in sorted(chosen, key=natural_key):
            settings.images.add().path = str(path)
        settings.active_image = len(settings.images) - 1
        return {"FINISHED"}


class IKOL_OT_remove_image(bpy.types.Operator):
    """Remove the selected image from the source list"""

    bl_idname = "ikol.remove_image"
    bl_label = "Remove Image"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        settings = context.scene.ikol
        return 0 <= settings.active_image < len(settings.images)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.ikol
        settings.images.remove(settings.active_image)
        settings.active_image = min(settings.active_image, len(settings.images) - 1)
        return {"FINISHED"}


CLASSES = (IKOL_OT_estimate_pose, IKOL_OT_cancel_estimate, IKOL_OT_add_images,
           IKOL_OT_remove_image)
