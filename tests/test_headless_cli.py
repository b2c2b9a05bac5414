"""The headless CLI (ikol_blender/cli.py) given bad paths on purpose, interrupted, and
retargeting a motion file it did not estimate: real subprocesses, real bpy, real signals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest

from ikol_blender.outputs import OutputError, publish

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "person.png"
CLI = ROOT / "ikol_blender" / "cli.py"


def cli(*args: str | Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env=env)


def usage_error(*args: str | Path) -> str:
    """The CLI's message for arguments refused before any work (exit 2, within seconds)."""
    start = time.monotonic()
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - start < 10
    return result.stderr.strip().splitlines()[-1]


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path: Path):
    folder = tmp_path / "taken.blend"
    folder.mkdir()
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    given = ["--input", SAMPLE, "--output"]
    assert usage_error(*given, folder).endswith(
        f"error: --output: {folder} is a folder, not a file name")
    scene = tmp_path / "scene.blend"
    assert usage_error(*given, scene, "--render", blocker / "render.png").endswith(
        f"error: --render: {blocker} is a file, so {blocker / 'render.png'} cannot be made")
    assert usage_error(*given, scene, "--render-all", blocker).endswith(
        f"error: --render-all: {blocker} is a file, not a folder")
    exported = tmp_path / "walk.fbx"
    exported.mkdir()
    assert usage_error(*given, scene, "--export", exported).endswith(
        f"error: --export: {exported} is a folder, not a file name")
    assert usage_error(*given, tmp_path / "scene.npz").endswith(
        f"error: --output and --motion name the same file: {tmp_path / 'scene.npz'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "taken.blend", "walk.fbx"]
    assert list(folder.iterdir()) == []


def test_network_options_without_the_ikol_front_end_are_refused(tmp_path: Path):
    given = ["--input", SAMPLE, "--output", tmp_path / "scene.blend"]
    for option in (["--checkpoint", tmp_path / "ikol.pth"], ["--flip-test"], ["--half"]):
        assert usage_error(*given, *option).endswith(
            f"error: {option[0]} is an option of the IKOL network: use it with --front-end ikol")
    assert list(tmp_path.iterdir()) == []


def test_a_retarget_file_that_is_missing_or_not_a_blend_is_refused(tmp_path: Path):
    missing, text = tmp_path / "rig.blend", tmp_path / "rig_notes.blend"
    text.write_text("not a blend file")
    given = ["--input", SAMPLE, "--output", tmp_path / "scene.blend", "--retarget"]
    assert usage_error(*given, missing).endswith(f"error: --retarget: {missing} does not exist")
    assert usage_error(*given, text).endswith(f"error: --retarget: {text} is not a .blend file")
    assert usage_error(*given, tmp_path).endswith(f"error: --retarget: {tmp_path} is not a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig_notes.blend"]


def test_publishing_is_all_or_nothing(tmp_path: Path):
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "a.npz").write_bytes(b"new motion")
    (staged / "b.png").write_bytes(b"new render")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.npz").write_bytes(b"old motion")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder must go")
    with pytest.raises(OutputError):
        publish([(staged / "a.npz", out / "a.npz"), (staged / "b.png", out / "new" / "b.png"),
                 (staged / "b.png", blocker / "sub" / "b.png")])
    assert [p.name for p in out.iterdir()] == ["a.npz"]  # no partial copy, no new folder
    assert (out / "a.npz").read_bytes() == b"old motion"
    publish([(staged / "a.npz", out / "a.npz"), (staged / "b.png", out / "new" / "b.png")])
    assert (out / "a.npz").read_bytes() == b"new motion"
    assert sorted(p.name for p in out.rglob("*")) == ["a.npz", "b.png", "new"]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_backend_and_leaves_no_temporary_folder(signal_number: int,
                                                                   tmp_path: Path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(CLI), "--input", SAMPLE, "--output", out / "scene.blend"],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _processes_mentioning(str(temp)):  # the backend runs, writing into temp
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert not out.exists()
    assert _processes_mentioning(str(temp)) == []


def test_an_existing_motion_file_is_retargeted_headless(tmp_path: Path):
    from tests.addon.test_retarget import mixamo_like

    from ikol_backend.body.default_skeleton import default_skeleton
    import torch

    rest = default_skeleton().rest_points(torch.zeros(1, 10))[0, :24].double().numpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mixamo_like(rest)
    rig = tmp_path / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(rig))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    frames = 5
    poses = np.zeros((frames, 72), np.float32)
    poses[:, 3 * 18 + 2] = np.linspace(0.0, 1.2, frames)  # the left elbow bends
    motion = tmp_path / "walk.npz"
    np.savez(motion, poses=poses, trans=np.zeros((frames, 3), np.float32),
             betas=np.zeros(10, np.float32), mocap_framerate=np.float64(25.0),
             rest_joints=rest.astype(np.float32), format_version=np.int32(1))
    before = motion.read_bytes()

    result = cli("--motion", motion, "--retarget", rig, "--bone-map", "mixamo",
                 "--output", tmp_path / "walk.blend", "--export", tmp_path / "walk.bvh")
    assert result.returncode == 0, result.stderr
    assert motion.read_bytes() == before  # the given motion file is read, never written
    bvh = (tmp_path / "walk.bvh").read_text()
    assert bvh.startswith("HIERARCHY") and "mixamorig:LeftForeArm" in bvh
    assert f"Frames: {frames}" in bvh
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "walk.blend"))
    try:
        assert bpy.data.objects["mixamo"].animation_data.action.name == "mixamo_retarget"
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    assert usage_error("--motion", tmp_path / "none.npz", "--output", tmp_path / "x.blend"
                       ).endswith(f"error: --motion: {tmp_path / 'none.npz'} does not exist")
    assert usage_error("--motion", motion, "--output", tmp_path / "x.blend", "--render",
                       tmp_path / "x.png").endswith(
        "error: --render and --render-all need --input (the footage to render over)")


def test_a_motion_file_gets_the_open_body_or_with_capsules_the_capsule_body(tmp_path: Path):
    from ikol_backend.body.default_skeleton import default_skeleton
    import torch

    rest = default_skeleton().rest_points(torch.zeros(1, 10))[0, :24].double().numpy()
    motion = tmp_path / "wave.npz"
    poses = np.zeros((3, 72), np.float32)
    poses[:, 3 * 16 + 2] = [-1.2, -0.6, 0.0]  # the left arm comes down
    np.savez(motion, poses=poses, trans=np.zeros((3, 3), np.float32),
             betas=np.zeros(10, np.float32), mocap_framerate=np.float64(30.0),
             rest_joints=rest.astype(np.float32), format_version=np.int32(1))
    for extra, blend in (([], "open.blend"), (["--capsules"], "capsules.blend")):
        result = cli("--motion", motion, "--output", tmp_path / blend, *extra)
        assert result.returncode == 0, result.stderr
    try:
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "open.blend"))
        body = bpy.data.objects["wave_body"]
        assert len(body.data.vertices) > 13000 and len(body.data.shape_keys.key_blocks) == 7
        heads = np.array([bpy.data.objects["wave"].data.bones[n].head_local for n in
                          ("pelvis", "left_wrist")])
        np.testing.assert_allclose(heads, rest[[0, 20]] @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]),
                                   atol=1e-5)  # the motion's own skeleton, Z up
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "capsules.blend"))
        assert bpy.data.objects["wave_body"].data.shape_keys is None
        assert len(bpy.data.objects["wave_body"].vertex_groups) == 24
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    assert usage_error("--motion", motion, "--output", tmp_path / "x.blend", "--capsules",
                       "--smpl", tmp_path / "model.npz").endswith(
        "error: --capsules is the body without an SMPL file: not with --smpl")
