"""Windows and macOS code paths, exercised here on Linux: the platform is faked only where the
real one is needed (POSIX-only modules hidden, sys.platform, Windows' signals), and what runs
is real (processes, signals, the backend)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ikol_backend import doctor, estimate, process_group
from ikol_backend.errors import BackendError
from ikol_blender import processes
from tests.test_processes import STUBBORN, alive, both_ready, grandchild_of, wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"

# Python as on Windows: no fcntl, no process groups, no SIGKILL; then every module of the
# backend and the add-on imports, and the backend's command line answers.
WITHOUT_POSIX = """
import importlib, os, pkgutil, signal, sys
sys.modules["fcntl"] = None
for name in ("killpg", "setsid", "getpgid", "sched_getaffinity"):
    delattr(os, name)
del signal.SIGKILL
import ikol_backend, ikol_blender
for package in (ikol_backend, ikol_blender):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
from ikol_backend.cli import main
for command in ("estimate", "batch", "doctor"):
    try:
        main([command, "--help"])
    except SystemExit as end:
        assert end.code == 0, (command, end.code)
print("imported", len(sys.modules))
"""


def test_the_backend_and_the_add_on_import_without_fcntl_killpg_or_sigkill():
    result = subprocess.run([sys.executable, "-c", WITHOUT_POSIX], capture_output=True,
                            text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr  # the command line may point stdout to stderr
    assert said.count("--device {auto,cpu,cuda,mps}") == 6 and "imported" in said


# --- Process groups on Windows' terms -------------------------------------------------------

WINDOWS_ENDS = [
    pytest.param(lambda process, grace: processes.end_process_group(process, grace), processes,
                 id="add-on"),
    pytest.param(process_group.end_group, process_group, id="backend"),
]


class _Windows:
    """os.kill and taskkill as Windows has them, for children started here in a group of
    their own: a console break reaches the whole group (delivered here as SIGINT, which is how
    Python takes it: KeyboardInterrupt), and `taskkill /T /F` kills the process's tree."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.breaks: list[int] = []
        self.taskkills: list[list[str]] = []
        monkeypatch.setattr(sys, "platform", "win32")
        real_kill = os.kill
        monkeypatch.setattr(os, "kill", lambda pid, number: (
            self.console_break(pid) if number == process_group.CTRL_BREAK_EVENT
            else real_kill(pid, number)))
        real_run = subprocess.run
        monkeypatch.setattr(subprocess, "run", lambda command, **options: (
            self.taskkill(command, options) if command[0] == "taskkill"
            else real_run(command, **options)))

    def console_break(self, pid: int) -> None:
        self.breaks.append(pid)
        os.killpg(pid, signal.SIGINT)

    def taskkill(self, command: list[str], options: dict) -> subprocess.CompletedProcess:
        assert "shell" not in options
        self.taskkills.append(command)
        os.killpg(int(command[-1]), signal.SIGKILL)
        return subprocess.CompletedProcess(command, 0)


def test_on_windows_children_start_in_a_new_process_group(monkeypatch: pytest.MonkeyPatch):
    assert processes.CTRL_BREAK_EVENT == process_group.CTRL_BREAK_EVENT == 1  # Windows' values
    monkeypatch.setattr(sys, "platform", "win32")
    for module in (processes, process_group):
        assert module.group_options() == {"creationflags": 0x00000200}
    monkeypatch.setattr(sys, "platform", "linux")
    for module in (processes, process_group):
        assert module.group_options() == {"start_new_session": True}


@pytest.mark.parametrize("end, module", WINDOWS_ENDS)
def test_on_windows_a_console_break_comes_first_and_ends_a_child_that_takes_it(
        end, module, monkeypatch: pytest.MonkeyPatch):
    child = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); "
                              "time.sleep(60)"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        assert child.stdout.readline() == b"ready\n"
        windows = _Windows(monkeypatch)
        began = time.monotonic()
        end(child, 5.0)
        assert time.monotonic() - began < 3.0
        assert windows.breaks == [child.pid] and child.returncode == -signal.SIGINT  # as Python ends
        if module is processes:
            assert windows.taskkills == []
    finally:
        child.kill()


@pytest.mark.parametrize("end, module", WINDOWS_ENDS)
def test_on_windows_a_child_that_ignores_the_break_is_ended_with_its_tree_by_taskkill(
        end, module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log = tmp_path / "out.txt"
    stubborn = STUBBORN.replace("signal.signal(signal.SIGTERM, signal.SIG_IGN)",
                                "signal.signal(signal.SIGINT, signal.SIG_IGN)")
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-c", stubborn], stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: both_ready(log))
        grandchild = grandchild_of(log.read_text())
        windows = _Windows(monkeypatch)
        end(child, 0.3)
        assert windows.breaks == [child.pid]
        assert windows.taskkills == [["taskkill", "/T", "/F", "/PID", str(child.pid)]]
        assert child.returncode == -signal.SIGKILL
        wait_for(lambda: not alive(grandchild), timeout=5)
    finally:
        child.kill()


# Run the backend with Windows' interrupts: SIGBREAK among them (SIGUSR1 stands in for it).
WITH_SIGBREAK = """
import runpy, signal, sys
signal.SIGBREAK = signal.SIGUSR1
platform, sys.platform = sys.platform, "win32"
from ikol_backend import interrupts
sys.platform = platform
assert interrupts.SIGNALS[-1] == signal.SIGUSR1
sys.argv = ["ikol-backend", *sys.argv[1:]]
runpy.run_module("ikol_backend", run_name="__main__", alter_sys=True)
"""


def test_on_windows_a_console_break_interrupts_the_backend_which_cleans_up(tmp_path: Path):
    output = tmp_path / "out" / "m.npz"
    output.parent.mkdir()
    process = subprocess.Popen([sys.executable, "-c", WITH_SIGBREAK, "estimate", str(SAMPLE),
                                "-o", str(output), "--events"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGUSR1)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert json.loads(stdout.splitlines()[-1]) == {"event": "error", "code": "interrupted",
                                                   "message": "Interrupted."}
    assert "Traceback" not in stderr and list(output.parent.iterdir()) == []


# --- Apple's GPU ------------------------------------------------------------------------------

def test_auto_picks_cuda_then_apples_gpu_then_the_cpu(monkeypatch: pytest.MonkeyPatch):
    for cuda, mps, expected in ((True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        assert estimate._device("auto").type == expected
        if mps:  # faked present: it is what was asked for
            assert estimate._device("mps").type == "mps"


def test_mps_asked_for_where_there_is_none_is_a_usage_error_and_the_doctor_says_why(
        tmp_path: Path):
    if torch.backends.mps.is_available():
        pytest.fail("this test expects a machine without Apple's GPU")
    with pytest.raises(BackendError) as error:
        estimate._device("mps")
    assert error.value.code == "bad_option"
    result = subprocess.run([sys.executable, "-m", "ikol_backend", "estimate", str(SAMPLE), "-o",
                             str(tmp_path / "m.npz"), "--device", "mps", "--events"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["message"] == (
        "--device mps was asked for, but torch sees no MPS device here (run `ikol-backend "
        "doctor`).")
    check = doctor.check_device("mps")
    assert not check.ok and "torch sees no Apple GPU" in check.message
    assert doctor.check_device("auto").ok


def test_the_doctor_tries_apples_gpu_when_torch_reports_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    for device in ("auto", "mps"):  # the probe really runs, and fails here: there is no MPS
        check = doctor.check_device(device)
        assert not check.ok and check.message.startswith("MPS is present but fails to run")


# --- Paths ------------------------------------------------------------------------------------

def test_paths_with_spaces_non_ascii_names_and_past_260_characters(tmp_path: Path):
    deep = tmp_path / "Zoë Ångström's clips" / "日本語 フォルダ"
    while len(str(deep)) < 300:
        deep = deep / "a folder with a long name, ünïcödé"
    deep.mkdir(parents=True)
    photo = shutil.copy(SAMPLE, deep / "the person é.png")
    outdir = deep / "motion out"
    result = subprocess.run([sys.executable, "-m", "ikol_backend", "batch", str(photo), "-o",
                             str(outdir), "--events"], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(outdir)) == ["manifest.jsonl", "the person é.npz"]
    line = json.loads((outdir / "manifest.jsonl").read_text(encoding="utf-8"))
    assert line["input"] == str(photo) and line["status"] == "done"
