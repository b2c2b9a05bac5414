"""Issue 23 on the headless CLI: motion-file limits and clear messages, the backend's JSON
motion files, its own exit code for "no person", renders that stop on a signal, --render-all
with --stride, a render scale and render progress. Real subprocesses, real bpy, real signals."""

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from ikol_backend.writers.motion import write_motion
from ikol_blender.motion import MAX_FRAMES, MotionFileError, load_motion
from tests.tools.sample_clip import write_clip

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
CLI = ROOT / "ikol_blender" / "cli.py"


def cli(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, **kwargs)


def motion_arrays(frames: int) -> dict[str, np.ndarray]:
    """A small motion as the backend writes it: the left elbow bending."""
    poses = np.zeros((frames, 72), np.float32)
    poses[:, 3 * 18 + 2] = np.linspace(0.0, 1.2, frames)
    return {"poses": poses, "trans": np.zeros((frames, 3), np.float32),
            "betas": np.zeros(10, np.float32), "gender": np.array("neutral"),
            "mocap_framerate": np.float32(30.0),
            "rest_joints": np.random.default_rng(0).normal(size=(24, 3)).astype(np.float32)}


def huge_motion(path: Path, frames: int) -> Path:
    """A valid .npz whose poses hold `frames` frames of zeros, compressed (small on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("poses.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (frames, 72)})
            chunk = bytes(72 * 4 * 10_000)
            for _ in range(frames // 10_000):
                member.write(chunk)
        with archive.open("trans.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros((frames, 3), np.float32))
    return path


# --- Motion files ---------------------------------------------------------------------------

def test_motion_files_over_the_frame_limit_are_refused_before_loading(tmp_path: Path):
    big = huge_motion(tmp_path / "long.npz", 1_000_000)
    assert big.stat().st_size < 2_000_000  # 288 MB of poses, compressed
    began = time.monotonic()
    with pytest.raises(MotionFileError, match=f"'poses' holds 1,000,000 frames, more than the "
                                              f"{MAX_FRAMES:,} a motion file may hold"):
        load_motion(big)
    assert time.monotonic() - began < 1
    result = cli("--motion", big, "--output", tmp_path / "long.blend", "--capsules")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: long.npz: 'poses' holds 1,000,000 frames, more than the {MAX_FRAMES:,} a "
        "motion file may hold")
    assert not (tmp_path / "long.blend").exists()
    at_limit = huge_motion(tmp_path / "limit.npz", MAX_FRAMES)
    assert load_motion(at_limit).num_frames == MAX_FRAMES


def test_unusable_poses_are_named_with_what_is_wrong(tmp_path: Path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, poses=np.array([{"frames": 3}], dtype=object), trans=np.zeros((1, 3)))
    cut = tmp_path / "cut.npz"
    with zipfile.ZipFile(cut, "w") as archive:
        with archive.open("poses.npy", "w") as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": False, "shape": (1000, 72)})
            member.write(bytes(4000))  # of 288,000
        with archive.open("trans.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros((1000, 3), np.float32))
    ragged = tmp_path / "ragged.json"
    ragged.write_text('{"poses": [[0, 0], [0]], "trans": [[0, 0, 0]]}')
    for path, problem in (
            (pickled, "'poses' cannot be read: it is stored as pickled Python objects, which "
                      "are never loaded"),
            (cut, "'poses' cannot be read, the file is damaged (EOF: reading array data"),
            (ragged, "'poses' cannot be read: it is not a regular array of numbers, nor a text")):
        with pytest.raises(MotionFileError) as failure:
            load_motion(path)
        assert str(failure.value).startswith(f"{path.name}: {problem}")


def test_the_backends_json_motion_files_load_as_its_npz_files_do(tmp_path: Path):
    arrays = motion_arrays(4)
    write_motion(tmp_path / "wave.json", arrays)
    write_motion(tmp_path / "wave.npz", arrays)
    from_json, from_npz = load_motion(tmp_path / "wave.json"), load_motion(tmp_path / "wave.npz")
    for field in ("poses", "trans", "betas", "rest_joints"):
        np.testing.assert_array_equal(getattr(from_json, field), getattr(from_npz, field))
    assert (from_json.frame_rate, from_json.gender, from_json.up_axis) == (30.0, "neutral", "Y")
    result = cli("--motion", tmp_path / "wave.json", "--output", tmp_path / "wave.blend",
                 "--capsules")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "wave.blend").is_file()


# --- Exit codes -----------------------------------------------------------------------------

def test_no_person_has_its_own_exit_code(tmp_path: Path):
    empty = tmp_path / "wall.png"
    cv2.imwrite(str(empty), np.full((240, 320, 3), 128, np.uint8))
    result = cli("--input", empty, "--output", tmp_path / "out" / "scene.blend")
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: No person")
    assert not (tmp_path / "out").exists()


# --- Renders --------------------------------------------------------------------------------

@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_render_at_once_and_leaves_nothing(signal_number: int, tmp_path: Path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(CLI), "--input", SAMPLE, "--output", out / "scene.blend",
         "--render", out / "render.png", "--samples", "100000"],  # minutes of rendering
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if line.startswith("Rendering"):
                break
        time.sleep(1.0)  # Cycles is rendering
        assert process.poll() is None
        process.send_signal(signal_number)
        began = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert took < 3
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert not out.exists()


def test_render_all_renders_the_estimated_frames_scaled_with_progress(tmp_path: Path):
    movie = write_clip(tmp_path / "walk.mp4", frames=7)
    footage = cv2.VideoCapture(str(movie))
    width, height = (int(footage.get(prop)) for prop in (cv2.CAP_PROP_FRAME_WIDTH,
                                                          cv2.CAP_PROP_FRAME_HEIGHT))
    footage.release()
    out = tmp_path / "out"
    result = cli("--input", movie, "--output", out / "scene.blend", "--stride", 3,
                 "--render-all", out / "frames", "--render-scale", 50, "--samples", 1)
    assert result.returncode == 0, result.stderr
    frames = sorted((out / "frames").iterdir())
    assert [path.name for path in frames] == ["0001.png", "0004.png", "0007.png"]  # of 1-7
    for path in frames:
        assert cv2.imread(str(path)).shape == (round(height / 2), round(width / 2), 3)
    lines = result.stderr.splitlines()
    assert f"Rendering 3 frame(s) at {round(width / 2)}x{round(height / 2)}, 1 samples:" in lines
    progress = [line for line in lines if line.startswith("  rendered ")]
    assert [line.split(":")[0] for line in progress] == [
        "  rendered 1/3", "  rendered 2/3", "  rendered 3/3"]
    assert progress[-1].endswith(", 0 s left") and " s a frame, " in progress[0]
    assert "Saved" not in result.stdout and "partial" not in result.stdout
    assert "--render-scale must be 1 to 100" in cli(
        "--input", movie, "--output", out / "x.blend", "--render-scale", 0).stderr
