"""bench/accuracy.py: its measures on arrays with known answers, its cache bookkeeping, the
framing helpers of tests/tools/anny_scene.py (pure numpy: no anny, no Blender), and one run
end to end on the bundled sample photo (a still and a short clip made of it)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import accuracy  # noqa: E402
import anny_scene  # noqa: E402  (numpy only at import; anny is needed by Body alone)
from sample_clip import write_frames  # noqa: E402

SAMPLE = ROOT / "samples" / "person.png"


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def skeletons(rng, frames: int) -> np.ndarray:
    """(frames, 12, 3) joints about 3 m in front of a camera, moving smoothly."""
    base = rng.normal(scale=0.3, size=(12, 3)) + [0.0, 0.0, 3.0]
    t = np.arange(frames)[:, None, None]
    return base + 0.02 * np.sin(0.3 * t + rng.uniform(0, 6, size=(1, 12, 3)))


def test_pa_mpjpe_ignores_a_similarity_transform_and_sees_a_bent_limb() -> None:
    rng = np.random.default_rng(1)
    true = skeletons(rng, 5)
    pred = np.stack([1.7 * t @ random_rotation(rng).T + rng.normal(size=3) for t in true])
    assert np.abs(accuracy.pa_mpjpe(pred, true)).max() < 1e-9
    bent = true.copy()
    bent[:, 4] += [0.0, 0.1, 0.0]  # one wrist 10 cm off: Procrustes spreads it, cannot hide it
    errors = accuracy.pa_mpjpe(bent, true)
    assert np.all((errors > 0.004) & (errors < 0.1 / 12 * 2))


def test_root_relative_mpjpe_known_answers() -> None:
    rng = np.random.default_rng(2)
    true = skeletons(rng, 4)
    assert np.abs(accuracy.root_relative_mpjpe(true + [0.3, -0.2, 1.0], true)).max() < 1e-12
    moved = true.copy()
    others = [j for j in range(12) if j not in accuracy.HIPS]
    moved[:, others] += [0.0, 0.03, 0.04]  # 5 cm, hips untouched: 10 of 12 joints off by 5 cm
    assert np.allclose(accuracy.root_relative_mpjpe(moved, true), 0.05 * 10 / 12)
    # a turn about the hip midpoint is an error here (PA-MPJPE would hide it)
    mid = true[0, list(accuracy.HIPS)].mean(axis=0)
    turned = (true[:1] - mid) @ random_rotation(rng).T + mid
    assert accuracy.root_relative_mpjpe(turned, true[:1])[0] > 0.05
    assert accuracy.pa_mpjpe(turned, true[:1])[0] < 1e-9


def test_error_2d_percent_of_height() -> None:
    true = np.random.default_rng(3).uniform(0, 400, size=(3, 12, 2))
    assert np.allclose(accuracy.error_2d_percent(true + [3.0, 4.0], true, 500), 1.0)
    heights = np.array([500, 250, 1000])
    assert np.allclose(accuracy.error_2d_percent(true + [3.0, 4.0], true, heights), [1, 2, 0.5])


def test_accel_error_zero_for_one_clip_wide_similarity_and_known_for_a_jolt() -> None:
    rng = np.random.default_rng(4)
    true = skeletons(rng, 30)
    pred = 0.8 * true @ random_rotation(rng).T + [1.0, 2.0, 3.0]
    assert accuracy.accel_errors(pred, true).max() < 1e-9
    # a different turn per frame is not one similarity: it shows
    wobbly = np.stack([t @ random_rotation(rng).T for t in true])
    assert accuracy.accel_errors(wobbly, true).mean() > 0.01
    # one frame 6 mm off: second differences off by 6, 12, 6 mm in the 3 triples around it
    jolt = true.copy()
    jolt[15] += [0.0, 0.0, 0.006]
    errors = accuracy.accel_errors(jolt, true)
    assert errors.shape == (28 * 12,)
    assert errors.mean() == pytest.approx(0.024 / 28, rel=0.02)
    # frames without the person: left out of the fit and of every triple they are in
    broken = true.copy()
    broken[15] = np.nan
    valid = np.ones(30, bool)
    valid[15] = False
    errors = accuracy.accel_errors(broken, true, valid)
    assert errors.shape == (25 * 12,) and errors.max() < 1e-9
    assert accuracy.accel_errors(true[:2], true[:2]).size == 0


def test_projection_and_intrinsics() -> None:
    points = np.array([[0.5, -0.25, 2.0], [0.0, 0.0, 4.0]])
    k = np.array([[600.0, 0, 320], [0, 610.0, 240], [0, 0, 1]])
    assert accuracy.intrinsics_of(k) == (600.0, 610.0, 320.0, 240.0)
    assert accuracy.intrinsics_of([600, 610, 320, 240]) == (600.0, 610.0, 320.0, 240.0)
    uv = accuracy.project(points, *accuracy.intrinsics_of(k))
    assert np.allclose(uv, [[470.0, 163.75], [320.0, 240.0]])
    with pytest.raises(ValueError):
        accuracy.intrinsics_of(np.zeros(5))


def test_heading_from_the_hips() -> None:
    joints = np.zeros((12, 3))
    left, right = accuracy.HIPS
    joints[left], joints[right] = [0.1, 0, 3], [-0.1, 0, 3]  # left hip on the image's right
    assert accuracy.heading_deg(joints) == pytest.approx(0.0)
    assert accuracy.view_of(joints) == "front"
    joints[left], joints[right] = [0.0, 0, 3.1], [0.0, 0, 2.9]  # left hip away: turned left
    assert accuracy.heading_deg(joints) == pytest.approx(90.0)
    assert accuracy.view_of(joints) == "side"


def test_variants_and_options() -> None:
    args = accuracy.parse_arguments(["--variant", 'raw=--smooth 0', "--variant",
                                     'focal=--focal {focal} --smooth "0.5"'])
    assert args.variant == [("raw", ["--smooth", "0"]),
                            ("focal", ["--focal", "{focal}", "--smooth", "0.5"])]
    assert accuracy.parse_arguments([]).variant == [("default", [])]
    for bad in (["--variant", "noequals"], ["--variant", "a=", "--variant", "a=--smooth 1"],
                ["--clips", "9"], ["--stills", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            accuracy.parse_arguments(bad)
        assert exit_info.value.code == 2


def test_cache_manifest_marks_what_is_complete(tmp_path: Path) -> None:
    names = accuracy.wanted(3, 1)
    assert names == ["still_000", "still_001", "still_002", "walk"]
    assert accuracy.missing(tmp_path, names) == names
    for name in ("still_000", "walk"):
        for path in accuracy.item_paths(tmp_path, name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    manifest = accuracy.read_manifest(tmp_path)
    manifest["items"].update({"still_000": {"frames": 1}, "still_001": {"frames": 1},
                              "walk": {"frames": 64}})
    accuracy.write_json(tmp_path / "manifest.json", manifest)
    # still_001 is in the manifest but its files are gone; still_002 was never made
    assert accuracy.missing(tmp_path, names) == ["still_001", "still_002"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_default_cache_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IKOL_BENCH_CACHE", str(tmp_path))
    assert accuracy.default_cache() == tmp_path / "accuracy" / f"v{accuracy.SET_VERSION}"
    monkeypatch.delenv("IKOL_BENCH_CACHE")
    assert accuracy.default_cache().parts[-3:-1] == ("ikol-for-blender", "accuracy")


def test_framing_puts_the_person_off_centre() -> None:
    rng = np.random.default_rng(5)
    # a 1.75 m tall box of points standing at the origin
    points = np.concatenate([rng.uniform([-0.25, -0.15, 0.0], [0.25, 0.15, 1.75], (400, 3)),
                             [[0, 0, 0], [0, 0, 1.75]]])
    camera = anny_scene.camera_looking((0.0, -4.0, 1.2), (0.0, 0.0, 0.9), 640, 480, 35.0)
    moved = anny_scene.aim_off_centre(camera, points, (120.0, -30.0))
    box = anny_scene.box_of(moved, points)
    assert (box[0] + box[2]) / 2 == pytest.approx(320 + 120, abs=1.0)
    assert (box[1] + box[3]) / 2 == pytest.approx(240 - 30, abs=1.0)
    assert np.allclose(moved.location, camera.location)
    camera, info = anny_scene.random_framing(np.random.default_rng(6), points, np.zeros(3))
    box = anny_scene.box_of(camera, points)
    assert 0 <= box[0] and box[2] <= camera.width and 0 <= box[1] and box[3] <= camera.height
    assert max(abs(x) for x in info["box_offset_frac"]) <= 0.25 + 1e-3
    assert 2.5 <= info["distance_m"] <= 6.0 and abs(info["pitch_deg"]) <= 20
    assert 24 <= camera.lens_mm <= 85 and (camera.width, camera.height) in anny_scene.STILL_SIZES


def test_pose_angles_are_deterministic_and_directions_right() -> None:
    assert np.allclose(anny_scene.arm_direction(1.0, 90, 0), [0, -1, 0])  # forward
    assert np.allclose(anny_scene.arm_direction(-1.0, 0, 0), [-1, 0, 0])  # right arm out
    assert np.allclose(anny_scene.arm_direction(1.0, 0, 90), [0, 0, 1])  # up
    r = anny_scene.turn_onto([1, 0, 0], [0, 1, 1])
    assert np.allclose(r @ [1, 0, 0], np.array([0, 1, 1]) / math.sqrt(2))
    for kind in anny_scene.POSE_KINDS:
        a = anny_scene.random_angles(np.random.default_rng(7), kind)
        b = anny_scene.random_angles(np.random.default_rng(7), kind)
        assert a == b and set(a) == set(anny_scene.RELAXED)
        assert all(math.isfinite(v) for v in a.values())
    with pytest.raises(ValueError):
        anny_scene.random_angles(np.random.default_rng(7), "cartwheel")


def test_end_to_end_on_the_sample_photo(tmp_path: Path) -> None:
    """A still with a person, a blank still (nobody: counted, left out of the means) and a
    6-frame clip of the photo, through the project and BlazePose."""
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((512, 384, 3), 128, np.uint8))
    blank.with_suffix(".json").write_text(json.dumps(truth))
    clip = tmp_path / "still_clip.avi"
    write_frames(clip, [cv2.imread(str(SAMPLE))] * 6, fps=30.0, fourcc="MJPG")
    frame = {k: truth[k] for k in ("joints_cam", "joints_2d")}
    clip.with_suffix(".json").write_text(json.dumps({"camera": truth["camera"],
                                                     "frames": [frame] * 6}))
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "accuracy.py"), "--images", str(SAMPLE),
         str(blank), "--videos", str(clip), "--variant", "plain=", "--json", str(out)],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "### stills (2 images)" in table and "### clip still_clip (6 frames)" in table
    assert "| measure: mean (median) | plain | BlazePose | plain / BlazePose |" in table
    assert "| frames with the person found | 1/2 | 1/2 | |" in table
    assert "- BlazePose found no person in (left out of its means): blank" in table
    assert "| accel error (camera frame), mm/frame² | " in table
    assert "Machine: " in table and "CPUs" in table

    report = json.loads(out.read_text())
    stills = report["sets"]["stills (2 images)"]["results"]
    clip_set = report["sets"]["clip still_clip (6 frames)"]["results"]
    for method in ("plain", "BlazePose"):
        for results in (stills, clip_set):
            assert results[method]["pa_mpjpe_mm"]["mean"] < 120
            assert results[method]["root_relative_mpjpe_mm"]["mean"] < 200
            assert results[method]["error_2d_percent_height"]["mean"] < 5
        assert clip_set[method]["found"] == 6
        assert clip_set[method]["accel_mm_per_frame2"]["mean"] < 50
    # BlazePose's own landmarks on this photo: within 1-9 px (samples/README.md)
    assert 0.1 < stills["BlazePose"]["error_2d_percent_height"]["mean"] < 2.0
    person = report["items"]["person"]
    assert person["plain"]["valid"] == [True] and person["view"] == "front"
    assert report["items"]["blank"]["plain"]["valid"] == [False]
