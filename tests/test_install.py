"""The built zip installs into real bpy through Blender's extension system, works, and uninstalls
leaving nothing behind; "Install backend" makes a managed environment that runs the backend.

Blender runs in a child process (this file run as a script, see `drive_blender`) whose user
resources are a temporary folder (BLENDER_USER_RESOURCES) and whose TMPDIR is another: the real
user configuration is never touched, what the run leaves is visible, and a broken install cannot
poison the test process.
"""

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEV_PYTHON = ROOT / ".venv" / "bin" / "python"
SAMPLE = ROOT / "samples" / "person.png"
REPO_MODULE = "ikol_test"
PACKAGE = f"bl_ext.{REPO_MODULE}.ikol_blender"
RESULT_PREFIX = "IKOL-RESULT "


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "build.py", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return next(out.glob("ikol_blender-*.zip"))


def snapshot(folder: Path) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*")} if folder.exists() else {}


def run_blender(mode: str, zip_path: Path, tmp_path: Path, timeout: float,
                **environment: str) -> dict:
    """Run `drive_blender(mode, ...)` in a child bpy; returns its summary and checks that it
    left nothing behind: no temporary files, no add-on files, the real user config untouched."""
    user, temp = tmp_path / "blender-user", tmp_path / "tmp"
    user.mkdir()
    temp.mkdir()
    real_config = Path.home() / ".config" / "blender"
    before = snapshot(real_config)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user), "TMPDIR": str(temp), **environment}
    done = subprocess.run([sys.executable, __file__, mode, str(zip_path)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    summary = json.loads(next(line for line in reversed(done.stdout.splitlines())
                              if line.startswith(RESULT_PREFIX))[len(RESULT_PREFIX):])
    assert summary["config"].startswith(str(user))
    # torch makes its compiler cache folder on import; everything else must be gone.
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    # Blender keeps its own bookkeeping (repository and cache metadata); nothing of the add-on.
    kept = [path.relative_to(user).as_posix() for path in user.rglob("*") if path.is_file()]
    assert [path for path in kept if not path.startswith(("extensions/.cache/", "repo/.blender_ext/"))] == []
    assert list((user / "extensions" / ".user").rglob("*")) in ([], [user / "extensions" / ".user" / REPO_MODULE])
    assert snapshot(real_config) == before
    return summary


def test_extension_installs_runs_and_uninstalls(built_zip, tmp_path):
    summary = run_blender("estimate", built_zip, tmp_path, timeout=600,
                          IKOL_BACKEND_PYTHON=str(DEV_PYTHON))
    assert summary["install"] == ["FINISHED"] and summary["enabled"]
    assert "wheels/ikol_backend-0.1.0-py3-none-any.whl" in summary["installed_files"]
    assert summary["estimate"] == ["FINISHED"]
    assert {"person", "person_body", "person_camera"} <= set(summary["objects"])
    assert summary["bones"] == 24 and summary["animated"]
    assert "Online access is off" in summary["install_backend_offline"]
    assert summary["check"] == ["FINISHED"] and summary["report"]["ok"]
    assert summary["report_python"].startswith(str(DEV_PYTHON.parent.parent))
    assert summary["uninstall"] == ["FINISHED"]
    assert summary["after"] == {"enabled": False, "modules": [], "scene_property": False,
                                "operators": [], "add_on_files": [], "user_folder": False}


def test_install_backend_makes_a_managed_environment_that_runs(built_zip, tmp_path):
    """One environment made from the bundled wheel plus the package index (pip's cache is
    reused between runs), then doctor and Estimate Pose through it."""
    from tests.tools.standin_smpl import write_standin  # not in the child: it lacks tests/

    standin = write_standin(tmp_path)[0]
    start = time.perf_counter()
    summary = run_blender("install-backend", built_zip, tmp_path, timeout=1800,
                          IKOL_TEST_SMPL=str(standin))
    print(f"install backend: {summary['install_backend_s']:.0f} s, "
          f"whole run {time.perf_counter() - start:.0f} s")
    assert summary["install_backend"] == ["FINISHED"], summary
    managed = summary["managed_python"]
    assert managed.startswith(summary["user_folder"]) and "backend-env" in managed
    assert summary["check"] == ["FINISHED"], summary["report"]
    checks = {check["name"]: check for check in summary["report"]["checks"]}
    assert all(check["ok"] for check in checks.values()), checks
    assert managed in checks["python"]["message"]
    assert checks["ikol_backend"]["version"] == "0.1.0"
    assert "6890 vertices" in checks["smpl"]["message"]
    assert summary["estimate"] == ["FINISHED"] and summary["bones"] == 24
    assert summary["after"]["user_folder"] is False  # the environment went with the extension


@pytest.fixture
def backend_env():
    """ikol_blender.backend_env (bpy-free), imported here: the child has no tests/ on its path."""
    import importlib

    return importlib.import_module("ikol_blender.backend_env")


def test_steps_stop_at_a_failing_step_and_say_which(backend_env, tmp_path):
    python = sys.executable
    steps = backend_env.Steps([
        ("Saying hello", [python, "-c", "print('hello')"]),
        ("Breaking", [python, "-c", "import sys; print('it broke'); sys.exit(3)"]),
        ("Never", [python, "-c", "print('never runs')"]),
    ], tmp_path / "logs" / "steps.log")
    steps.wait(interval=0.05)
    assert steps.done and steps.fraction == 1.0
    assert steps.error.startswith("Breaking failed (exit code 3).")
    assert "it broke" in steps.error and str(steps.log_path) in steps.error
    log = steps.log_path.read_text()
    assert "hello" in log and "never runs" not in log


def test_steps_cancel_ends_the_running_command(backend_env, tmp_path):
    steps = backend_env.Steps([("Waiting", [sys.executable, "-c", "import time; time.sleep(60)"])],
                              tmp_path / "steps.log")
    start = time.perf_counter()
    steps.cancel()
    assert steps.poll() and time.perf_counter() - start < 5
    assert steps.error.startswith("Waiting failed (cancelled)")


def test_steps_report_a_command_that_cannot_start(backend_env, tmp_path):
    steps = backend_env.Steps([("Starting", [str(tmp_path / "no-python"), "-V"])],
                              tmp_path / "steps.log")
    assert steps.poll() and "cannot start" in steps.error


def test_base_python_is_a_python_3_11_with_venv(backend_env, tmp_path):
    assert backend_env.find_base_python([str(tmp_path / "nothing"), sys.executable]) == sys.executable
    assert sys.executable == backend_env.python_candidates()[0]
    with pytest.raises(backend_env.BackendEnvError, match="No Python 3.11"):
        backend_env.find_base_python([str(tmp_path / "nothing")])


def test_bundled_wheel_is_exactly_one_backend_wheel(backend_env, tmp_path):
    with pytest.raises(backend_env.BackendEnvError, match="not built with build.py"):
        backend_env.bundled_wheel(tmp_path)
    for version in ("0.1.0", "0.2.0"):
        (tmp_path / f"ikol_backend-{version}-py3-none-any.whl").touch()
    with pytest.raises(backend_env.BackendEnvError, match="0.1.0.*0.2.0"):
        backend_env.bundled_wheel(tmp_path)


def test_managed_environment_counts_only_once_installed(backend_env, tmp_path):
    python = backend_env.env_python(tmp_path / backend_env.ENV_FOLDER)
    python.parent.mkdir(parents=True)
    python.touch()
    assert backend_env.managed_python(tmp_path) is None
    (tmp_path / backend_env.ENV_FOLDER / backend_env.INSTALLED_MARK).write_text("wheel")
    assert backend_env.managed_python(tmp_path) == python


def test_doctor_report_is_the_last_json_line_of_the_log(backend_env):
    log = '$ python -m ikol_backend.doctor\nINFO: noise\n{"ok": true, "checks": []}\n'
    assert backend_env.read_doctor_report(log) == {"ok": True, "checks": []}
    assert backend_env.read_doctor_report("No module named ikol_backend\n") is None
    assert backend_env.doctor_command("py", "cuda", "", "/m.pth") == [
        "py", "-m", "ikol_backend.doctor", "--json", "--device", "cuda", "--checkpoint", "/m.pth"]


@pytest.fixture
def programs():
    """tests.tools.programs, imported here like backend_env."""
    import importlib

    return importlib.import_module("tests.tools.programs")


@pytest.mark.parametrize("output, code, build", [
    ("8.6, 580.65.06", 0, "cu130"),  # an RTX 30 on a CUDA 13 driver
    ("12.0, 590.44.01\n7.5, 581.15", 0, "cu130"),  # Blackwell and Turing
    ("8.9, 570.124.06", 0, "cu126"),  # driver too old for CUDA 13
    ("6.1, 580.65.06", 0, "cu126"),  # Pascal: CUDA 12.6 is the last build for it
    ("8.6, 580.65.06\n6.1, 580.65.06", 0, "cu126"),  # every GPU must be served
    ("3.7, 470.82.01", 0, "cpu"),  # Kepler: no build of the pinned torch
    ("8.6, 520.61.05", 0, "cpu"),  # driver too old for CUDA 12
    ("No devices were found", 6, "cpu"),
    ("[N/A], 580.65.06", 0, "cpu"),
])
def test_auto_torch_build_is_what_nvidia_smi_on_path_says_the_gpus_need(
        backend_env, programs, tmp_path, monkeypatch, output, code, build):
    programs.fake_nvidia_smi(tmp_path, output, code)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert backend_env.GPU_QUERY == programs.GPU_QUERY
    assert backend_env.chosen_torch_build("auto") == build
    assert (tmp_path / "asked").exists()
    assert backend_env.chosen_torch_build("cpu") == "cpu"
    assert backend_env.chosen_torch_build("cu126") == "cu126"


def test_no_nvidia_smi_or_macos_means_the_package_index_torch(backend_env, programs, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert backend_env.chosen_torch_build("auto") == "cpu"
    programs.fake_nvidia_smi(tmp_path, "8.6, 580.65.06")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert backend_env.chosen_torch_build("auto") == "cpu"
    assert not (tmp_path / "asked").exists()  # never asked on macOS
    with pytest.raises(backend_env.BackendEnvError, match="no CUDA builds for macOS"):
        backend_env.chosen_torch_build("cu130")


def bundled(folder: Path) -> Path:
    """A backend wheel (an empty stand-in) with build.py's constraints beside it."""
    spec = importlib.util.spec_from_file_location("ikol_build_script", ROOT / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    (folder / "constraints.txt").write_text(build.backend_constraints(), encoding="utf-8")
    wheel = folder / "ikol_backend-0.1.0-py3-none-any.whl"
    wheel.touch()
    return wheel


def torch_pin() -> str:
    return next(line.split("#")[0].strip() for line in (ROOT / "requirements.txt").open()
                if line.startswith("torch=="))


def test_a_cuda_build_installs_the_pinned_torch_from_pytorchs_index_first(backend_env, tmp_path):
    wheel, env = bundled(tmp_path), tmp_path / "env"
    python = str(backend_env.env_python(env))
    pip = [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
           "--progress-bar", "off"]
    cuda = backend_env.install_commands("py3.11", env, wheel, "cu130")
    cpu = backend_env.install_commands("py3.11", env, wheel, "cpu")
    assert torch_pin() == "torch==2.13.0"
    assert cuda[1] == (f"Installing {torch_pin()} (cu130) from PyTorch's index",
                       [*pip, "--index-url", "https://download.pytorch.org/whl/cu130", torch_pin()])
    assert cuda[:1] + cuda[2:] == cpu  # the rest as without it, the constraints keeping torch
    assert cpu[1][1] == [*pip, "--constraint", str(tmp_path / "constraints.txt"), str(wheel)]
    (tmp_path / "constraints.txt").write_text("numpy==1.26.4\n")
    with pytest.raises(backend_env.BackendEnvError, match="pins no torch"):
        backend_env.install_commands("py3.11", env, wheel, "cu126")


def test_the_install_log_shows_the_torch_command_it_runs(backend_env, programs, tmp_path,
                                                          monkeypatch):
    """Auto with an NVIDIA GPU: the log names the PyTorch index command before running it. The
    environment is never made (the base Python is a stand-in), so the step cannot start and
    nothing is downloaded."""
    folder = tmp_path / "bin"
    folder.mkdir()
    programs.fake_nvidia_smi(folder, "8.6, 580.65.06")
    monkeypatch.setenv("PATH", str(folder))
    base_python = programs.program(tmp_path, "base-python", "print('no environment made')\n")
    steps = backend_env.start_install(tmp_path / "user", "auto", wheel=bundled(tmp_path),
                                      base_python=str(base_python))
    steps.wait(interval=0.05)
    title = f"Installing {torch_pin()} (cu130) from PyTorch's index"
    command = [str(backend_env.env_python(tmp_path / "user" / backend_env.ENV_FOLDER)),
               "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
               "--progress-bar", "off", "--index-url", "https://download.pytorch.org/whl/cu130",
               torch_pin()]
    assert f"# {title}\n$ {shlex.join(command)}\n" in steps.log_path.read_text()
    assert steps.error.startswith(f"{title} failed (cannot start")


# --- the child: runs under bpy with temporary user resources ----------------------------------


def drive_blender(mode: str, zip_path: str) -> dict:
    """Install the zip into a new user repository, exercise it, uninstall it; a summary."""
    import importlib

    import bpy

    preferences = bpy.context.preferences
    resources = Path(os.environ["BLENDER_USER_RESOURCES"])
    repo = preferences.extensions.repos.new(
        name="IKOL test", module=REPO_MODULE, custom_directory=str(resources / "repo"),
        source="USER")
    summary: dict = {"config": bpy.utils.user_resource("CONFIG")}
    summary["install"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo=REPO_MODULE, enable_on_install=True))
    summary["enabled"] = PACKAGE in preferences.addons
    installed = Path(repo.directory) / "ikol_blender"
    summary["installed_files"] = sorted(p.relative_to(installed).as_posix()
                                        for p in installed.rglob("*") if p.is_file())
    addon_preferences = importlib.import_module(f"{PACKAGE}.preferences")
    options = preferences.addons[PACKAGE].preferences
    summary["user_folder"] = bpy.utils.extension_path_user(PACKAGE)

    if mode == "estimate":
        try:
            bpy.ops.ikol.install_backend("EXEC_DEFAULT")
            summary["install_backend_offline"] = "no error"
        except RuntimeError as exc:  # an operator's ERROR report
            summary["install_backend_offline"] = str(exc)
    else:
        options.smpl_model = os.environ["IKOL_TEST_SMPL"]
        preferences.system.use_online_access = True  # what the user allows in Preferences
        start = time.perf_counter()
        summary["install_backend"] = sorted(bpy.ops.ikol.install_backend("EXEC_DEFAULT"))
        summary["install_backend_s"] = time.perf_counter() - start
        summary["managed_python"] = addon_preferences.selected_python()
        os.environ["IKOL_BACKEND_PYTHON"] = summary["managed_python"]

    summary["check"] = sorted(bpy.ops.ikol.check_backend("EXEC_DEFAULT"))
    summary["report"] = addon_preferences.ACTIVITY.report
    summary["report_python"] = summary["report"]["checks"][0]["message"].split(" at ")[-1]
    bpy.context.scene.ikol.images.add().path = str(SAMPLE)
    summary["estimate"] = sorted(bpy.ops.ikol.estimate_pose("EXEC_DEFAULT"))
    summary["objects"] = sorted(obj.name for obj in bpy.data.objects)
    armature = bpy.data.objects["person"]
    summary["bones"] = len(armature.data.bones)
    summary["animated"] = armature.animation_data.action is not None

    index = [item.module for item in preferences.extensions.repos].index(REPO_MODULE)
    summary["uninstall"] = sorted(bpy.ops.extensions.package_uninstall(
        repo_index=index, pkg_id="ikol_blender"))
    summary["after"] = {
        "enabled": PACKAGE in preferences.addons,
        "modules": [name for name in sys.modules if name.startswith(PACKAGE)],
        "scene_property": hasattr(bpy.types.Scene, "ikol"),
        "operators": [name for name in dir(bpy.types) if name.startswith("IKOL_")],
        "add_on_files": [str(path) for path in installed.rglob("*")],
        "user_folder": Path(summary["user_folder"]).exists(),
    }
    preferences.extensions.repos.remove(repo)
    return summary


if __name__ == "__main__":
    print(RESULT_PREFIX + json.dumps(drive_blender(sys.argv[1], sys.argv[2])), flush=True)
