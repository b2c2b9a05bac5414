"""`ikol-backend estimate` on a real video clip and an image folder (real decoding, real model)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

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


def estimate(*args: str | Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "estimate", *map(str, args), "--events"],
        capture_output=True, text=True, timeout=300,
    )
    return result, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "walk.avi"
    frames = shifted_frames()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


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
                          "message": "--focal must be a positive number of pixels, not -5"}
