"""The whole path as a user runs it: real subprocesses, the real pose model, real bpy."""

import json
import re
import subprocess
import sys
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest
import torch

from ikol_backend.camera import CAMERA_TO_MODEL
from ikol_blender.smpl import JOINT_NAMES, to_z_up
from tests.tools.bpy_checks import fcurve_values
from tests.tools.sample_clip import FPS, MARKER, marker_level, write_clip

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "person.png"
CLI = ROOT / "ikol_blender" / "cli.py"
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def documented_rows(section: str) -> dict[str, list[str]]:
    """`name` -> backticked names in the rest of the row, for the table under `section`."""
    text = PROTOCOL.split(section, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `(\w+)` \|(.*)", line)
        if match:
            rows[match.group(1)] = re.findall(r"`(\w+)` \(", match.group(2))
    return rows


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    result = run(CLI, "--input", SAMPLE, "--output", out / "scene.blend",
                 "--render", out / "render.png")
    assert result.returncode == 0, result.stderr
    return {"out": out, "stdout": result.stdout}


def test_demo_writes_motion_blend_and_render(demo):
    out = demo["out"]
    assert sorted(p.name for p in out.iterdir()) == ["render.png", "scene.blend", "scene.npz"]
    assert ("Person found in 1 of 1 frame(s) (1 person found; following person 0)."
            in demo["stdout"])
    device = "GPU (CUDA)" if torch.cuda.is_available() else "CPU"  # the default device: auto
    assert f"\nDevice: {device}\n" in demo["stdout"]
    assert "Time per stage:" in demo["stdout"]


def test_motion_file_has_the_documented_keys(demo):
    with np.load(demo["out"] / "scene.npz") as data:
        keys = set(data.files)
        poses, joints = data["poses"], data["joints"]
        assert poses.shape == (1, 72) and poses.dtype == np.float32
        assert joints.shape == (1, 24, 3)
        assert bool(data["valid"][0])
        assert str(data["gender"]) == "neutral"
    assert keys == set(documented_rows("## Motion file"))
    assert np.isfinite(poses).all() and np.isfinite(joints).all()


def test_saved_blend_puts_every_joint_within_1mm_of_the_motion_file(demo):
    with np.load(demo["out"] / "scene.npz") as data:
        joints = data["joints"][0]
    bpy.ops.wm.open_mainfile(filepath=str(demo["out"] / "scene.blend"))
    try:
        armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        bpy.context.scene.frame_set(1)
        heads = np.array([armature.matrix_world @ armature.pose.bones[n].head for n in JOINT_NAMES])
        error = np.linalg.norm(heads - to_z_up(joints), axis=1)
        assert error.max() < 1e-3, f"{error.max() * 1000:.3f} mm"
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_render_is_the_photo_with_the_body_over_it(demo):
    render = bpy.data.images.load(str(demo["out"] / "render.png"))
    photo = bpy.data.images.load(str(SAMPLE))
    try:
        assert tuple(render.size) == tuple(photo.size)
        a = np.array(render.pixels[:]).reshape(-1, 4)[:, :3]
        b = np.array(photo.pixels[:]).reshape(-1, 4)[:, :3]
        changed = (np.abs(a - b).max(axis=1) > 0.05).mean()
        assert 0.01 < changed < 0.6, f"{changed:.1%} of pixels changed"
    finally:
        bpy.data.images.remove(render)
        bpy.data.images.remove(photo)


def test_backend_events_follow_the_protocol(tmp_path: Path):
    result = run("-m", "ikol_backend", "estimate", SAMPLE, "-o", tmp_path / "m.npz", "--events")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    documented = documented_rows("## Events")
    assert [e["event"] for e in events] == ["start", "progress", "people", "result"]
    for event in events:
        required = [f for f in documented[event["event"]] if f not in ("frame",)]
        assert set(required) <= set(event), event
    assert events[-1]["path"] == str(tmp_path / "m.npz")


# Bad input: a clear message, a non-zero exit, and no output file.
def test_missing_photo(tmp_path: Path):
    missing = tmp_path / "nope.jpg"
    result = run(CLI, "--input", missing, "--output", tmp_path / "scene.blend")
    assert result.returncode != 0
    assert f"error: Input not found: {missing}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_file_that_is_not_an_image(tmp_path: Path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    result = run(CLI, "--input", fake, "--output", tmp_path / "scene.blend")
    assert result.returncode != 0
    assert f"error: Not an image file (or a damaged one): {fake}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.jpg"]


def test_photo_without_a_person(tmp_path: Path):
    empty = tmp_path / "wall.png"
    pixels = np.random.default_rng(0).uniform(size=(240, 320, 4)).astype(np.float32)
    pixels[..., 3] = 1.0
    image = bpy.data.images.new("wall", 320, 240)
    image.pixels.foreach_set(pixels.ravel())
    image.filepath_raw, image.file_format = str(empty), "PNG"
    image.save()
    bpy.data.images.remove(image)
    result = run(CLI, "--input", empty, "--output", tmp_path / "scene.blend")
    assert result.returncode != 0
    assert "error: No person was found in the input." in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wall.png"]


def pa_mpjpe_mm(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean joint error after the best similarity alignment (Procrustes), millimetres."""
    p, t = predicted - predicted.mean(0), truth - truth.mean(0)
    u, s, vt = np.linalg.svd(t.T @ p)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = (s * np.diag(d)).sum() / (p**2).sum()
    return 1000 * np.linalg.norm(scale * p @ rotation.T - t, axis=1).mean()


def test_sample_pose_is_close_to_the_true_joints(demo):
    """The sample photo's true joints are known (samples/person.json): a loose accuracy floor
    (about 57 mm PA-MPJPE when written), to catch regressions."""
    truth_file = json.loads((ROOT / "samples" / "person.json").read_text())
    truth = np.array([truth_file["joints_cam"][name] for name in JOINT_NAMES])
    with np.load(demo["out"] / "scene.npz") as data:
        predicted = data["joints"][0] @ CAMERA_TO_MODEL.T  # model frame to camera frame
    assert pa_mpjpe_mm(predicted, truth) < 80.0


def test_headless_retarget_onto_a_rig_from_a_blend_and_bvh_export(tmp_path: Path):
    from tests.tools.rigs import default_rest_joints, mixamo_like

    bpy.ops.wm.read_factory_settings(use_empty=True)
    mixamo_like(default_rest_joints())
    rig = tmp_path / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(rig))
    bpy.ops.wm.read_factory_settings(use_empty=True)

    result = run(CLI, "--input", SAMPLE, "--output", tmp_path / "scene.blend", "--retarget", rig,
                 "--bone-map", "mixamo", "--export", tmp_path / "motion.bvh")
    assert result.returncode == 0, result.stderr
    bvh = (tmp_path / "motion.bvh").read_text()
    assert bvh.startswith("HIERARCHY") and "mixamorig:LeftUpLeg" in bvh
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    try:
        target = bpy.data.objects["mixamo"]
        assert target.animation_data.action.name == "mixamo_retarget"
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory) -> dict:
    """The CLI on a 6-frame movie, every other frame from frame 1, each of them rendered over
    the footage, the SMPL armature exported as FBX."""
    out = tmp_path_factory.mktemp("clip")
    movie = write_clip(out / "walk.mp4")
    result = run(CLI, "--input", movie, "--output", out / "scene.blend", "--start", 1,
                 "--stride", 2, "--smooth", 0.5, "--render-all", out / "frames", "--samples", 1,
                 "--export", out / "walk.fbx")
    assert result.returncode == 0, result.stderr
    return {"out": out, "stdout": result.stdout}


def test_clip_keys_sit_at_the_movie_frames_they_came_from(clip_run):
    """The movie plays frame by frame behind the camera (scene frame f shows movie frame f):
    motion frame k is keyed where the movie shows its source frame, 1 mm from its joints."""
    out = clip_run["out"]
    with np.load(out / "scene.npz") as data:
        frame_index, joints = data["frame_index"], data["joints"]
    np.testing.assert_array_equal(frame_index, [1, 3, 5])
    bpy.ops.wm.open_mainfile(filepath=str(out / "scene.blend"))
    try:
        scene = bpy.context.scene
        assert (scene.frame_start, scene.frame_end) == (1, 5)
        assert scene.render.fps / scene.render.fps_base == pytest.approx(FPS)
        armature = bpy.data.objects["walk"]
        [background] = bpy.data.objects["walk_camera"].data.background_images
        clip = background.clip
        assert Path(clip.filepath) == out / "walk.mp4"
        scene_frames = frame_index + clip.frame_start - clip.frame_offset
        np.testing.assert_array_equal(scene_frames, [1, 3, 5])
        for (path, _), keys in fcurve_values(armature.animation_data.action, armature).items():
            np.testing.assert_array_equal(keys[0::2], scene_frames, err_msg=path)
        for frame, scene_frame in enumerate(scene_frames):
            scene.frame_set(int(scene_frame))
            heads = np.array([armature.matrix_world @ armature.pose.bones[n].head
                              for n in JOINT_NAMES])
            error = np.linalg.norm(heads - to_z_up(joints[frame]), axis=1).max()
            assert error < 1e-3, f"frame {frame}: {error * 1000:.3f} mm"
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_clip_renders_show_the_body_over_the_movie_frame_of_each_scene_frame(clip_run):
    """Scene frame f shows movie frame f (its marker square), partly covered by the body."""
    capture = cv2.VideoCapture(str(clip_run["out"] / "walk.mp4"))
    movie = []
    while (frame := capture.read()[1]) is not None:
        movie.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) / 255.0)
    frames = sorted((clip_run["out"] / "frames").iterdir())
    assert [p.name for p in frames] == ["0001.png", "0003.png", "0005.png"]  # the estimated ones
    for path in frames:
        scene_frame = int(path.stem)
        render = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) / 255.0
        inner = slice(MARKER // 4, 3 * MARKER // 4)
        level = 255 * render[inner, inner].mean()
        assert abs(level - marker_level(scene_frame)) < 8, (scene_frame, level)
        changed = (np.abs(render - movie[scene_frame]).max(axis=2) > 0.1).mean()
        assert 0.01 < changed < 0.6, f"frame {scene_frame}: {changed:.1%} of pixels changed"


def test_clip_exports_the_smpl_armature_as_fbx(clip_run):
    fbx = (clip_run["out"] / "walk.fbx").read_bytes()
    assert fbx.startswith(b"Kaydara FBX Binary") and b"left_knee" in fbx


def test_bad_cli_options_exit_with_usage_errors_and_write_nothing(tmp_path: Path):
    for options in (["--export", tmp_path / "walk.obj"], ["--render-frame", 3],
                    ["--samples", 0]):
        result = run(CLI, "--input", SAMPLE, "--output", tmp_path / "scene.blend", *options)
        assert result.returncode == 2, options
        assert "error:" in result.stderr
    assert list(tmp_path.iterdir()) == []
