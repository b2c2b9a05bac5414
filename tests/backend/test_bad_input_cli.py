"""`ikol-backend` as a user runs it, given damaged or unusable input and output on purpose:
a documented exit code and one clear error event (never `internal`, never a traceback), the
problem found before any work where it can be, nothing partial left behind."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.tools.sample_clip import frame_image, write_frames

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"


def backend(*args: str | Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    result = subprocess.run([sys.executable, "-m", "ikol_backend", *map(str, args), "--events"],
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def error_of(events: list[dict]) -> tuple[str, str]:
    assert [e["event"] for e in events] == ["error"], events  # found before any frame
    return events[0]["code"], events[0]["message"]


def test_an_existing_folder_as_the_output_is_refused_before_any_work(tmp_path: Path):
    folder = tmp_path / "motion.npz"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result, events = backend("estimate", SAMPLE, "-o", folder)
    assert result.returncode == 5
    assert error_of(events) == ("output_unwritable",
                                f"The output is a folder, not a file name: {folder}")
    result, events = backend("body", "-o", folder)
    assert result.returncode == 5 and events[-1]["code"] == "output_unwritable"
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_a_jpeg_cut_short_is_a_damaged_input(tmp_path: Path):
    data = cv2.imencode(".jpg", cv2.imread(str(SAMPLE)))[1].tobytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:len(data) * 3 // 4])
    result, events = backend("estimate", cut, "-o", tmp_path / "m.npz")
    assert result.returncode == 3
    assert error_of(events) == ("input_unreadable", f"Image is damaged (cut short): {cut}")
    assert list(tmp_path.iterdir()) == [cut]


def test_an_image_whose_header_claims_a_huge_size_is_refused_clearly(tmp_path: Path):
    from tests.backend.test_readers import header_only_png

    huge = header_only_png(tmp_path / "huge.png", 100_000, 100_000)
    result, events = backend("estimate", huge, "-o", tmp_path / "m.npz")
    assert result.returncode == 3
    code, message = error_of(events)
    assert code == "input_unsupported"
    assert message.startswith("Image is too large: 100000x100000 pixels (10000 megapixels)")
    assert "error:" not in message and list(tmp_path.iterdir()) == [huge]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Ten frames of the person (MJPG .avi: cut short, it keeps decoding up to the cut)."""
    folder = tmp_path_factory.mktemp("clip")
    return write_frames(folder / "walk.avi", (frame_image(k % 5) for k in range(10)), 24.0, "MJPG")


def test_a_cut_video_is_estimated_from_the_frames_it_holds_with_a_warning(clip: Path,
                                                                           tmp_path: Path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) * 7 // 10])
    output = tmp_path / "m.npz"
    result, events = backend("estimate", cut, "-o", output)
    assert result.returncode == 0, events[-1]
    kept = events[-1]["summary"]["frames"]
    assert 5 <= kept < 9 and events[0] == {"event": "start", "frames": 10,
                                            "front_end": "default", "device": events[0]["device"]}
    warnings = [e for e in events if e["event"] == "warning"]
    assert warnings == [{"event": "warning", "code": "damaged_input", "message":
                         f"Video is damaged: decoding stopped at frame {kept} of the 10 the "
                         f"container lists; {10 - kept} of the 10 selected frames (frame {kept} "
                         f"on) are lost: {cut}"}]
    with np.load(output) as motion:
        assert motion["frame_index"].tolist() == list(range(kept))


def test_a_video_with_too_few_frames_left_is_refused(clip: Path, tmp_path: Path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) * 2 // 5])
    output = tmp_path / "m.npz"
    result, events = backend("estimate", cut, "-o", output)
    assert result.returncode == 3
    assert events[-1]["event"] == "error" and events[-1]["code"] == "input_unreadable"
    assert events[-1]["message"].startswith("Video is damaged: only ")
    assert "at least 50% must" in events[-1]["message"]
    assert not output.exists() and list(tmp_path.iterdir()) == [cut]


def test_a_checkpoint_with_keys_the_network_does_not_use_loads_with_a_warning(tmp_path: Path):
    from tests.tools.random_ikol import authors_layout, random_network

    import torch

    path = tmp_path / "extra.pth"
    torch.save({**authors_layout(random_network()), "init_cam": torch.zeros(3)}, path)
    result, events = backend("estimate", SAMPLE, "-o", tmp_path / "m.npz", "--front-end", "ikol",
                             "--checkpoint", path, "--device", "cpu")
    assert result.returncode == 0, events[-1]
    assert [e for e in events if e["event"] == "warning"] == [{
        "event": "warning", "code": "checkpoint_unused_keys", "message":
        f"{path}: the IKOL24 network does not use every key of the checkpoint; ignored "
        "1 unused key: init_cam"}]
