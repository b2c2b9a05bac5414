"""`ikol-backend estimate` on a real video clip and an image folder (real decoding, real model)."""

import io
import json
import signal
import time
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.tools.sample_clip import write_frames

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
FRAMES = 8
SHIFT_PX = 6  # the person moves right by this much per frame


def shifted_frames() -> list[np.ndarray]:
    photo = cv2.imread(str(SAMPLE))
    frames = []
    for i in range(FRAMES):
        moved = np.roll(photo, SHIFT_PX * (i - FRAMES // 2), axis=1)
        frames.append(moved)
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 24.0) -> Path:
    """An MJPG .avi of BGR frames."""
    return write_frames(path, frames, fps, "MJPG")


def estimate(*args: str | Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "estimate", *map(str, args), "--events"],
        capture_output=True, text=True, timeout=300,
    )
    return result, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "walk.avi", shifted_frames())


def test_clip_gives_one_pose_per_frame_following_the_person(clip: Path, tmp_path: Path):
    result, events = estimate(clip, "-o", tmp_path / "m.npz")
    assert result.returncode == 0, result.stderr
    assert events[0] == {"event": "start", "frames": FRAMES, "front_end": "default", "device": "cpu"}
    assert [e["done"] for e in events if e["event"] == "progress"] == list(range(1, FRAMES + 1))
    with np.load(tmp_path / "m.npz") as data:
        assert data["poses"].shape == (FRAMES, 72)
        assert data["valid"].all()
        assert float(data["mocap_framerate"]) == pytest.approx(24.0)
        assert list(data["frame_index"]) == list(range(FRAMES))
        x = data["trans"][:, 0]
        pelvis_px = data["keypoints_2d"][:, 0, 0]
    assert np.all(np.diff(x) > 0), x  # the body moves right through the scene
    # BlazePose's video mode smooths landmarks, so the first steps lag a little.
    assert np.all(np.diff(pelvis_px) > 0)
    assert abs(np.diff(pelvis_px).mean() - SHIFT_PX) < 1.5


def test_clip_range_and_stride(clip: Path, tmp_path: Path):
    result, _ = estimate(clip, "-o", tmp_path / "m.npz", "--start", "1", "--stop", "7",
                         "--stride", "2")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "m.npz") as data:
        assert list(data["frame_index"]) == [1, 3, 5]
        assert float(data["mocap_framerate"]) == pytest.approx(12.0)


def test_image_folder_in_natural_order(tmp_path: Path):
    folder = tmp_path / "shots"
    folder.mkdir()
    frames = shifted_frames()[:3]
    for i, frame in zip((2, 10, 1), frames):  # natural order: frame1, frame2, frame10
        cv2.imwrite(str(folder / f"frame{i}.png"), frame)
    result, events = estimate(folder, "-o", tmp_path / "m.npz")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "m.npz") as data:
        pelvis_px = data["keypoints_2d"][:, 0, 0]
    # frame1 holds the third shift, frame2 the first, frame10 the second
    assert np.argsort(pelvis_px).tolist() == [1, 2, 0]


def test_bad_frame_range_is_a_usage_error(clip: Path, tmp_path: Path):
    result, events = estimate(clip, "-o", tmp_path / "m.npz", "--stride", "0")
    assert result.returncode == 2
    assert events[-1]["event"] == "error" and events[-1]["code"] == "bad_frame_range"
    assert not (tmp_path / "m.npz").exists()


def test_focal_length_reaches_the_motion_file(clip: Path, tmp_path: Path):
    result, _ = estimate(clip, "-o", tmp_path / "m.npz", "--stop", "1", "--focal", "700")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "m.npz") as data:
        assert data["camera_intrinsics"][0, 0] == pytest.approx(700.0)


def test_focal_length_must_be_positive(clip: Path, tmp_path: Path):
    result, events = estimate(clip, "-o", tmp_path / "m.npz", "--focal", "-5")
    assert result.returncode == 2
    assert events[-1] == {"event": "error", "code": "bad_camera",
                          "message": "--focal must be a number of pixels from 1 to 1,000,000, not -5"}


def test_an_infinite_focal_length_is_refused_at_once(clip: Path, tmp_path: Path):
    """It used to hang inside a least-squares solve, deaf to SIGTERM."""
    began = time.monotonic()
    result, events = estimate(clip, "-o", tmp_path / "m.npz", "--focal", "inf")
    assert result.returncode == 2 and time.monotonic() - began < 60
    assert events[-1]["code"] == "bad_camera" and not (tmp_path / "m.npz").exists()


FOCAL_RANGE = "--focal must be a number of pixels from 1 to 1,000,000, not {}"
FOV_RANGE = "--fov must be an angle from 1 to 179 degrees, not {}"
NETWORK_ONLY = "{} is an option of the IKOL network: use it with --front-end ikol."


@pytest.mark.parametrize("args, code, message", [
    (["--focal", "1e309"], "bad_camera", FOCAL_RANGE.format("inf")),
    (["--focal", "nan"], "bad_camera", FOCAL_RANGE.format("nan")),
    (["--focal", "1e-300"], "bad_camera", FOCAL_RANGE.format("1e-300")),
    (["--fov", "0"], "bad_camera", FOV_RANGE.format("0")),
    (["--fov", "-10"], "bad_camera", FOV_RANGE.format("-10")),
    (["--fov", "360"], "bad_camera", FOV_RANGE.format("360")),
    (["--fov", "inf"], "bad_camera", FOV_RANGE.format("inf")),
    (["--fov", "nan"], "bad_camera", FOV_RANGE.format("nan")),
    (["--half"], "bad_option", NETWORK_ONLY.format("--half")),
    (["--flip-test"], "bad_option", NETWORK_ONLY.format("--flip-test")),
    (["--checkpoint", "weights.pth"], "bad_option", NETWORK_ONLY.format("--checkpoint")),
])
def test_camera_and_network_options_are_checked_before_anything_is_read(
        args: list[str], code: str, message: str, tmp_path: Path):
    from ikol_backend.cli import build_parser
    from ikol_backend.errors import BackendError
    from ikol_backend.events import Events

    parsed = build_parser().parse_args(["estimate", str(tmp_path / "missing.mp4"),
                                        "-o", str(tmp_path / "m.npz"), *args])
    with pytest.raises(BackendError) as caught:  # before the missing input is looked at
        parsed.run(parsed, Events(json_lines=True, stream=io.StringIO()))
    assert (caught.value.code, caught.value.message) == (code, message)
    assert caught.value.exit_code == 2


def empty_like(frame: np.ndarray) -> np.ndarray:
    """The picture's background colour everywhere: a frame with nobody in it."""
    return np.broadcast_to(np.median(frame[:20, :20].reshape(-1, 3), axis=0), frame.shape).astype(np.uint8)


@pytest.fixture(scope="module")
def clip_with_gap(tmp_path_factory) -> Path:
    frames = shifted_frames()
    frames[3], frames[4] = empty_like(frames[3]), empty_like(frames[4])
    return write_clip(tmp_path_factory.mktemp("gap") / "gap.avi", frames)


def test_frames_without_the_person_are_warned_marked_and_filled(clip_with_gap: Path, tmp_path: Path):
    runs = {}
    for fill in ("none", "hold", "interpolate"):  # raw: no temporal term couples the frames
        result, events = estimate(clip_with_gap, "-o", tmp_path / f"{fill}.npz", "--fill", fill,
                                  "--smooth", "0")
        assert result.returncode == 0, result.stderr
        warned = [e["message"] for e in events if e["event"] == "warning" and e["code"] == "person_unseen"]
        assert len(warned) == 1 and "not seen in 2 of 8 frame(s) (3-4)" in warned[0]
        with np.load(tmp_path / f"{fill}.npz") as data:
            runs[fill] = {key: data[key] for key in ("poses", "trans", "valid")}
            assert data["valid"].tolist() == [True] * 3 + [False] * 2 + [True] * 3
    assert not runs["none"]["poses"][3:5].any() and not runs["none"]["trans"][3:5].any()
    for fill in ("hold", "interpolate"):  # valid frames do not depend on the fill
        assert np.allclose(runs[fill]["poses"][runs[fill]["valid"]], runs["none"]["poses"][runs["none"]["valid"]],
                           atol=1e-4)
    held, between = runs["hold"]["trans"][:, 0], runs["interpolate"]["trans"][:, 0]
    assert held[3] == pytest.approx(held[2], abs=1e-4) and held[4] == pytest.approx(held[2], abs=1e-4)
    assert between[2] < between[3] < between[4] < between[5]


def test_smoothing_calms_a_jittering_clip(tmp_path: Path):
    rng = np.random.default_rng(3)
    photo = cv2.imread(str(SAMPLE))
    frames = [np.roll(photo, int(rng.integers(-8, 9)), axis=1) for _ in range(16)]
    clip = write_clip(tmp_path / "jitter.avi", frames, fps=30.0)
    jitter = {}
    for smooth in ("0", "1"):
        result, _ = estimate(clip, "-o", tmp_path / f"s{smooth}.npz", "--smooth", smooth)
        assert result.returncode == 0, result.stderr
        with np.load(tmp_path / f"s{smooth}.npz") as data:
            jitter[smooth] = np.abs(np.diff(data["trans"][:, 0])).mean()
    assert jitter["1"] < 0.5 * jitter["0"], jitter


def test_smoothing_out_of_range_is_a_usage_error(clip: Path, tmp_path: Path):
    result, events = estimate(clip, "-o", tmp_path / "m.npz", "--smooth", "1.5")
    assert result.returncode == 2
    assert events[-1] == {"event": "error", "code": "bad_option",
                          "message": "--smooth must be between 0 and 1, not 1.5"}


def test_json_output_on_request(clip: Path, tmp_path: Path):
    result, _ = estimate(clip, "-o", tmp_path / "m.json", "--stop", "2")
    assert result.returncode == 0, result.stderr
    motion = json.loads((tmp_path / "m.json").read_text())
    assert np.array(motion["poses"]).shape == (2, 72)
    assert np.array(motion["joints"]).shape == (2, 24, 3)
    assert motion["valid"] == [True, True] and motion["gender"] == "neutral"


def test_progress_bar_on_stderr_without_events(clip: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "estimate", str(clip), "-o", str(tmp_path / "m.npz")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    bars = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert bars[-1].startswith(f"[{'#' * 30}] {FRAMES}/{FRAMES} frames, ")


@pytest.mark.skipif(torch_cuda_available := __import__("torch").cuda.is_available(),
                    reason="this machine has CUDA, so --device cuda is not an error here")
def test_cuda_asked_for_without_cuda_is_a_usage_error(clip: Path, tmp_path: Path):
    result, events = estimate(clip, "-o", tmp_path / "m.npz", "--device", "cuda")
    assert result.returncode == 2
    assert events[-1] == {"event": "error", "code": "bad_option", "message":
                          "--device cuda was asked for, but torch sees no CUDA device here "
                          "(run `ikol-backend doctor`)."}


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_within_a_second_and_leaves_no_output(
        signal_number: int, tmp_path: Path):
    long_clip = write_clip(tmp_path / "long.avi", shifted_frames() * 40)  # 320 frames
    output = tmp_path / "out" / "m.npz"
    output.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "ikol_backend", "estimate", str(long_clip), "-o", str(output), "--events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if json.loads(line)["event"] == "progress":
                break
        sent = time.monotonic()
        process.send_signal(signal_number)
        rest, _ = process.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 130
    assert json.loads(rest.splitlines()[-1]) == {"event": "error", "code": "interrupted",
                                                 "message": "Interrupted."}
    assert took < 1.0, took
    assert list(output.parent.iterdir()) == []
