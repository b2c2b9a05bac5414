"""Add-on preferences: which Python runs the backend, the torch build Install backend installs,
the device, optional model files, and the "Install backend" and "Check backend" buttons.

The backend runs either in the managed environment (made by "Install backend" in the
extension's user folder, see backend_env) or in a Python the user picks that already has the
backend. The operators that run the backend pass `selected_python()` to
backend_process.backend_python().
"""

from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import backend_env, backend_process
from .options import DEVICES

TIMER_STEP_S = 0.25
CHECK_LOG = "check-backend.log"
ONLINE_ACCESS_OFF = (
    "Online access is off. Installing the backend downloads its dependencies (torch, MediaPipe: "
    "about 3 GB) from the Python package index, a CUDA build of torch from PyTorch's index: "
    "allow online access in Preferences > System > Network, then click Install backend again"
)


@dataclass
class Activity:
    """What the preferences show about the latest install or check (not saved)."""

    steps: backend_env.Steps | None = None  # the running install or check
    running: str = ""  # its operator's label, empty when none runs
    fraction: float = 0.0
    line: str = ""
    report: dict = field(default_factory=dict)  # the latest doctor report


ACTIVITY = Activity()


def user_dir(create: bool = False) -> Path:
    """The extension's own user folder, where the managed environment and logs live (the
    add-on has no bl_info, so it is always enabled as an extension and has one)."""
    return Path(bpy.utils.extension_path_user(__package__, create=create))


def addon_preferences() -> "IKOLPreferences | None":
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def selected_python() -> str | None:
    """The Python the preferences select for the backend: the user's pick, or the managed
    environment once installed; None when there is neither (backend_python() falls back)."""
    preferences = addon_preferences()
    if preferences is None:
        return None
    if preferences.environment == "CUSTOM":
        return bpy.path.abspath(preferences.python_path) if preferences.python_path else None
    managed = backend_env.managed_python(user_dir())
    return str(managed) if managed else None


class IKOLPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    environment: EnumProperty(
        name="Backend environment",
        items=(
            ("MANAGED", "Managed", "An environment this add-on installs in its user folder "
             "(Install backend)"),
            ("CUSTOM", "Python interpreter", "A Python you set up that has the backend "
             "(ikol-backend) installed"),
        ),
        default="MANAGED",
    )
    python_path: StringProperty(
        name="Python", subtype="FILE_PATH",
        description="Python interpreter with the backend installed (e.g. a venv's bin/python)",
    )
    torch_build: EnumProperty(
        name="Torch build",
        description="Which torch Install backend installs",
        items=backend_env.TORCH_BUILDS,
    )
    device: EnumProperty(
        name="Device",
        items=DEVICES,
    )
    smpl_model: StringProperty(
        name="SMPL model", subtype="FILE_PATH",
        description="Optional SMPL model file (.npz or .pkl) from the SMPL website; it is not "
                    "shipped with the add-on. A .pkl is read without running code in it",
    )
    checkpoint: StringProperty(
        name="IKOL checkpoint", subtype="FILE_PATH",
        description="Optional IKOL network checkpoint (.pth, loaded as plain tensors)",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.row().prop(self, "environment", expand=True)
        if self.environment == "CUSTOM":
            layout.prop(self, "python_path")
        else:
            managed = backend_env.managed_python(user_dir())
            layout.label(text=f"Installed: {managed}" if managed else "Not installed yet",
                         icon="CHECKMARK" if managed else "INFO")
            layout.prop(self, "torch_build")
        layout.prop(self, "device")
        layout.prop(self, "smpl_model")
        layout.prop(self, "checkpoint")
        row = layout.row()
        if self.environment == "MANAGED":
            row.operator(IKOL_OT_install_backend.bl_idname, icon="IMPORT")
        row.operator(IKOL_OT_check_backend.bl_idname, icon="VIEWZOOM")
        if ACTIVITY.running:
            layout.progress(factor=ACTIVITY.fraction, type="BAR", text=ACTIVITY.running)
        if ACTIVITY.line:
            layout.label(text=ACTIVITY.line)
        for check in ACTIVITY.report.get("checks", ()):
            layout.label(text=f"{check['name']}: {check['message']}",
                         icon="CHECKMARK" if check["ok"] else "ERROR")


class _StepsOperator:
    """Runs backend_env.Steps: blocking in execute(), on a timer in invoke() (Esc cancels)."""

    _timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not ACTIVITY.running

    def begin(self, context: bpy.types.Context) -> backend_env.Steps | None:
        """Start the steps, or report why not and return None."""
        raise NotImplementedError

    def finish(self, context: bpy.types.Context, steps: backend_env.Steps) -> set[str]:
        """Report the outcome of the ended steps."""
        raise NotImplementedError

    def _start(self, context: bpy.types.Context) -> bool:
        ACTIVITY.steps = self.begin(context)
        if ACTIVITY.steps is None:
            return False
        ACTIVITY.running, ACTIVITY.fraction, ACTIVITY.line = self.bl_label, 0.0, ""
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self._start(context):
            return {"CANCELLED"}
        ACTIVITY.steps.wait()
        return self._end(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not self._start(context):
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(TIMER_STEP_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        steps = ACTIVITY.steps
        if event.type == "ESC":
            steps.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        done = steps.poll()
        ACTIVITY.fraction = steps.fraction
        ACTIVITY.line = f"{steps.title}: {steps.last_line()}"[:200]
        _redraw_preferences(context)
        if not done:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        return self._end(context)

    def _end(self, context: bpy.types.Context) -> set[str]:
        try:
            return self.finish(context, ACTIVITY.steps)
        finally:
            ACTIVITY.steps, ACTIVITY.running = None, ""
            _redraw_preferences(context)


class IKOL_OT_install_backend(_StepsOperator, bpy.types.Operator):
    """Create the managed backend environment and install the backend into it with pip; its
    dependencies (about 3 GB) come from the Python package index, a CUDA build of torch from
    PyTorch's index"""

    bl_idname = "ikol.install_backend"
    bl_label = "Install backend"

    def begin(self, context: bpy.types.Context) -> backend_env.Steps | None:
        if not bpy.app.online_access:
            self.report({"ERROR"}, ONLINE_ACCESS_OFF)
            return None
        try:
            return backend_env.start_install(user_dir(create=True),
                                             addon_preferences().torch_build)
        except backend_env.BackendEnvError as exc:
            self.report({"ERROR"}, str(exc))
            return None

    def finish(self, context: bpy.types.Context, steps: backend_env.Steps) -> set[str]:
        if steps.error:
            ACTIVITY.line = "Install backend failed"
            self.report({"ERROR"}, f"Installing the backend: {steps.error}")
            return {"CANCELLED"}
        ACTIVITY.line = f"Installed in {backend_env.managed_python(user_dir())}"
        self.report({"INFO"}, f"Backend installed (log: {steps.log_path})")
        return {"FINISHED"}


class IKOL_OT_check_backend(_StepsOperator, bpy.types.Operator):
    """Run the backend's doctor with the Python Estimate Pose uses: versions, device, BlazePose
    and the model files set here"""

    bl_idname = "ikol.check_backend"
    bl_label = "Check backend"

    def begin(self, context: bpy.types.Context) -> backend_env.Steps | None:
        preferences = addon_preferences()
        command = backend_env.doctor_command(
            backend_process.backend_python(selected_python()), preferences.device,
            bpy.path.abspath(preferences.smpl_model) if preferences.smpl_model else "",
            bpy.path.abspath(preferences.checkpoint) if preferences.checkpoint else "",
        )
        ACTIVITY.report = {}
        return backend_env.Steps([("Checking the backend", command)],
                                 user_dir(create=True) / CHECK_LOG)

    def finish(self, context: bpy.types.Context, steps: backend_env.Steps) -> set[str]:
        report = backend_env.read_doctor_report(steps.log_path.read_text(errors="replace"))
        if report is None:
            ACTIVITY.line = "The backend did not run"
            self.report({"ERROR"}, f"Checking the backend: {steps.error}")
            return {"CANCELLED"}
        ACTIVITY.report = report
        failed = [check["name"] for check in report["checks"] if not check["ok"]]
        ACTIVITY.line = (f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed
                         else "All checks passed")
        self.report({"WARNING"} if failed else {"INFO"}, f"Check backend: {ACTIVITY.line}")
        return {"FINISHED"}


def _redraw_preferences(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


CLASSES = (IKOLPreferences, IKOL_OT_install_backend, IKOL_OT_check_backend)
register, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def unregister() -> None:
    if ACTIVITY.steps is not None:  # disabled while installing or checking
        ACTIVITY.steps.cancel()
    _unregister_classes()
