"""The add-on in real Blender: registration, Estimate Pose from every kind of source, cancel,
failures, import.

Estimate Pose runs as the modal operator runs it: `EstimateRun.tick()` once per timer step
until the backend ends, then `finish()` (a headless Blender has no event loop for the modal
operator itself). Poses are checked on what Blender evaluates, keys on the F-curves, both
against the motion file.
"""

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import cv2
import numpy as np
import pytest
import torch
from mathutils import Matrix, Quaternion, Vector

import ikol_blender
from ikol_blender.backend_process import BackendFailed, backend_python
from ikol_blender.footage import Footage
from ikol_blender.job import EstimateJob
from ikol_blender.motion import Motion
from ikol_blender.operators import estimate_pose
from ikol_blender.operators.estimate_pose import TIMER_STEP_S, EstimateRun, SourceError
from ikol_blender import preferences
from ikol_blender.preferences import IKOLPreferences
from ikol_blender.retarget.bake import RetargetError
from ikol_blender.scene.estimated import SceneRequest, add_estimated
from ikol_blender.smpl import JOINT_NAMES, Y_UP_TO_Z_UP, to_z_up
from ikol_blender.ui.panel import IKOL_PT_estimate
from tests.tools.bpy_checks import LayoutRecorder, fcurve_values
from tests.tools.programs import fake_nvidia_smi
from tests.tools.rigs import mixamo_like
from tests.tools.sample_clip import FPS, write_clip, write_images

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
# Where the backend runs with the default device (auto) here: the panel says it when done.
ON_DEVICE = "on GPU (CUDA)" if torch.cuda.is_available() else "on CPU"
KINDS = ("objects", "armatures", "meshes", "cameras", "actions", "materials", "images",
         "movieclips")


@pytest.fixture(scope="module")
def sample_motion() -> Motion:
    """The backend's motion for the sample photo."""
    job = EstimateJob(backend_python(), [SAMPLE])
    while not job.step(timeout=0.1):
        pass
    motion = job.motions()[0]
    job.cleanup()
    return motion


def data_counts() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind)) for kind in KINDS}


def run_like_the_modal_operator(context) -> tuple[EstimateRun, list[str]]:
    """Start, tick once per timer step until the backend ends, finish; the statuses shown."""
    run = EstimateRun(context)
    statuses = []
    while not run.tick(context):
        statuses.append(context.scene.ikol.status)
        assert context.scene.ikol.running
        time.sleep(TIMER_STEP_S)
    run.finish(context)
    return run, statuses


def check_keys_and_pose(armature: bpy.types.Object, motion: Motion, scene_frames: np.ndarray):
    """Every bone has one key per motion frame at `scene_frames`, holding the motion file's
    rotation (bone-local quaternion B^T C R C^T B, up to sign) and root translation; the
    evaluated joints are within 1 mm of the motion file's `joints` at every frame."""
    keys = fcurve_values(armature.animation_data.action, armature)
    to_z_up_matrix = Matrix(Y_UP_TO_Z_UP)
    worst_rotation = 0.0
    for joint, name in enumerate(JOINT_NAMES):
        rest = armature.data.bones[name].matrix_local.to_3x3()
        path = f'pose.bones["{name}"].rotation_quaternion'
        channels = [keys[(path, axis)] for axis in range(4)]
        for values in channels:
            assert len(values) == 2 * motion.num_frames
            np.testing.assert_allclose(values[0::2], scene_frames)
        quaternions = np.stack([values[1::2] for values in channels], axis=1)
        for frame, rotvec in enumerate(motion.poses[:, joint]):
            turn = Vector(rotvec)
            model = (Quaternion(turn.normalized(), turn.length) if turn.length else Quaternion())
            local = (rest.transposed() @ to_z_up_matrix @ model.to_matrix()
                     @ to_z_up_matrix.transposed() @ rest).to_quaternion()
            error = min(np.abs(quaternions[frame] - local).max(),
                        np.abs(quaternions[frame] + local).max())
            worst_rotation = max(worst_rotation, error)
    assert worst_rotation < 1e-5
    root_rest = armature.data.bones["pelvis"].matrix_local.to_3x3()
    root = np.stack([keys[('pose.bones["pelvis"].location', axis)][1::2] for axis in range(3)], 1)
    expected = np.array([root_rest.transposed() @ to_z_up_matrix @ Vector(t) for t in motion.trans])
    np.testing.assert_allclose(root, expected, atol=1e-5)
    for frame, scene_frame in enumerate(scene_frames):
        bpy.context.scene.frame_set(int(scene_frame))
        heads = np.array([armature.matrix_world @ armature.pose.bones[n].head for n in JOINT_NAMES])
        error = np.linalg.norm(heads - to_z_up(motion.joints[frame]), axis=1).max()
        assert error < 1e-3, f"frame {frame}: {error * 1000:.3f} mm"


def shown_backgrounds(camera: bpy.types.Object, frame: int) -> list[int]:
    """Which of the camera's background entries Blender shows at `frame`."""
    bpy.context.scene.frame_set(frame)
    evaluated = camera.data.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return [i for i, b in enumerate(evaluated.background_images) if b.show_background_image]


def test_register_and_unregister_twice(empty_scene):
    for _ in range(2):
        ikol_blender.register()
        assert hasattr(bpy.types.Scene, "ikol")
        assert bpy.ops.ikol.estimate_pose.poll()
        ikol_blender.unregister()
        assert not hasattr(bpy.types.Scene, "ikol")
        assert not hasattr(bpy.types, "IKOL_OT_estimate_pose")


def test_estimate_pose_on_a_photo(addon):
    addon.ikol.images.add().path = str(SAMPLE)
    run, statuses = run_like_the_modal_operator(bpy.context)
    assert statuses and all(status.startswith(("Estimating: frame ", "Making the body"))
                            for status in statuses)
    assert statuses[0].startswith("Estimating") and statuses[-1].startswith("Making the body")
    assert run.job.progress.done == run.job.progress.total == 1
    assert not addon.ikol.running and addon.ikol.status == (
        f"Done: person {ON_DEVICE}. 1 person found; following person 0 (track 0, 1 frame(s)).")
    assert not run.job.folder.exists()
    armature = bpy.data.objects["person"]
    body = bpy.data.objects["person_body"]
    assert body.type == "MESH" and len(body.data.vertices) > 13000  # the open body
    assert body.data.shape_keys.key_blocks.keys()[1:] == ["gender", "age", "muscle", "weight",
                                                          "height", "proportions"]
    camera = bpy.data.objects["person_camera"]
    assert addon.camera == camera and camera.data.show_background_images
    [background] = camera.data.background_images
    assert Path(background.image.filepath) == SAMPLE
    check_keys_and_pose(armature, run.job.motions()[0], np.array([1.0]))


def group_photo(folder: Path) -> Path:
    """A photo of three people side by side: the sample person at 1.0, 0.8 and 0.6 of its size."""
    person = cv2.imread(str(SAMPLE))[:, 90:340]
    height = person.shape[0]
    canvas = np.full((height, 3 * person.shape[1], 3), np.median(person[:20, :20], axis=(0, 1)), np.uint8)
    for number, scale in enumerate((1.0, 0.8, 0.6)):
        small = cv2.resize(person, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        left = number * person.shape[1]
        canvas[height - small.shape[0]:, left:left + small.shape[1]] = small
    cv2.imwrite(str(folder / "group.png"), canvas)
    return folder / "group.png"


def test_everyone_in_a_group_photo_gets_an_armature_and_body_in_one_undo_step(addon, tmp_path):
    addon.ikol.images.add().path = str(group_photo(tmp_path))
    addon.ikol.people = "all"
    before = data_counts()
    run, statuses = run_like_the_modal_operator(bpy.context)
    assert any(status.startswith("Making body 3 of 3") for status in statuses)
    assert addon.ikol.status.startswith(
        f"Done: 3 people {ON_DEVICE}. 3 people found; motion for 3 of them")
    motions = run.job.motions()
    armatures = [bpy.data.objects[f"group person {k}"] for k in range(3)]
    bodies = [bpy.data.objects[f"group person {k}_body"] for k in range(3)]
    assert [body.parent for body in bodies] == armatures
    after = data_counts()
    assert after["cameras"] - before["cameras"] == 1 and after["armatures"] - before["armatures"] == 3
    assert len({body.data.name for body in bodies}) == 3  # each body its own mesh and shape
    xs = [armature.matrix_world.translation.x + armature.pose.bones["pelvis"].head.x
          for armature in armatures]
    assert xs == sorted(xs)  # person 0 is the largest: the leftmost
    for armature, motion in zip(armatures, motions):
        check_keys_and_pose(armature, motion, np.array([1.0]))


def test_retargeting_everyone_at_once_is_refused(addon, rest_joints):
    addon.ikol.images.add().path = str(SAMPLE)
    addon.ikol.people = "all"
    addon.ikol.target, addon.ikol.target_armature = "EXISTING", mixamo_like(rest_joints)
    with pytest.raises(SourceError, match="Retargeting takes one person"):
        EstimateRun(bpy.context)
    assert not addon.ikol.running


def test_estimate_pose_on_a_movie_clip_keeps_its_timing(addon, tmp_path):
    """A Movie Clip the user placed at frame 10, every other frame from frame 1: the keys sit
    where the clip shows the frames they were estimated from."""
    clip = bpy.data.movieclips.load(str(write_clip(tmp_path / "walk.mp4")))
    clip.frame_start = 10
    settings = addon.ikol
    settings.source, settings.clip, settings.start, settings.stride = "CLIP", clip, 1, 2
    before = data_counts()
    run, _ = run_like_the_modal_operator(bpy.context)
    motion = run.job.motions()[0]
    np.testing.assert_array_equal(motion.frame_index, [1, 3, 5])
    # Blender plays movie frame (scene frame - frame_start + frame_offset) of a clip.
    scene_frames = motion.frame_index + clip.frame_start - clip.frame_offset
    check_keys_and_pose(bpy.data.objects["walk"], motion, scene_frames)
    assert (addon.frame_start, addon.frame_end) == (11, 15)
    assert addon.render.fps / addon.render.fps_base == pytest.approx(FPS)
    assert clip.frame_start == 10 and data_counts()["movieclips"] == before["movieclips"]
    [background] = bpy.data.objects["walk_camera"].data.background_images
    assert background.source == "MOVIE_CLIP" and background.clip == clip


def test_estimate_pose_on_an_image_folder(addon, tmp_path):
    """A folder in natural order, every other image: one background entry per estimated
    frame, each shown at its frame only."""
    folder = tmp_path / "shots"
    images = write_images(folder, ["frame1.png", "frame2.png", "frame10.png"])
    (folder / "notes.txt").write_text("not an image")
    settings = addon.ikol
    settings.source, settings.folder_path, settings.stride = "FOLDER", str(folder), 2
    run, _ = run_like_the_modal_operator(bpy.context)
    motion = run.job.motions()[0]
    np.testing.assert_array_equal(motion.frame_index, [0, 2])
    check_keys_and_pose(bpy.data.objects["shots"], motion, np.array([1.0, 2.0]))
    camera = bpy.data.objects["shots_camera"]
    shown = [Path(b.image.filepath) for b in camera.data.background_images]
    assert shown == [images[0], images[2]]  # frame1, frame10
    assert [shown_backgrounds(camera, frame) for frame in (1, 2)] == [[0], [1]]


def test_estimate_pose_onto_an_existing_armature(addon, rest_joints):
    target = mixamo_like(rest_joints)
    settings = addon.ikol
    settings.images.add().path = str(SAMPLE)
    settings.target, settings.target_armature = "EXISTING", target
    addon.ikol_retarget.preset = "mixamo"
    run_like_the_modal_operator(bpy.context)
    assert target.animation_data.action.name == "mixamo_retarget"
    assert "person_body" not in bpy.data.objects
    assert addon.ikol_retarget.source == bpy.data.objects["person"]
    assert addon.ikol_retarget.target == target
    assert addon.ikol.status.startswith(f"Done: mixamo {ON_DEVICE}. 1 person found")


def test_cancel_ends_the_backend_within_a_second_and_leaves_nothing(addon):
    for _ in range(300):
        addon.ikol.images.add().path = str(SAMPLE)
    before = data_counts()
    run = EstimateRun(bpy.context)
    while run.job.progress.done < 1:  # really running, model loaded
        run.tick(bpy.context, timeout=0.5)
    process = run.job._run.process
    tick = time.perf_counter()
    run.cancel(bpy.context)
    assert time.perf_counter() - tick < 1.0
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # the whole process group is gone
    assert not run.job.folder.exists()
    assert data_counts() == before
    assert not addon.ikol.running and addon.ikol.status == "Cancelled"


def test_a_failure_after_the_body_is_built_puts_everything_back(empty_scene, sample_motion,
                                                                rest_joints):
    """Retargeting refuses a rig shown in its rest position: the armature, camera, footage
    and actions made before are removed, the scene's settings and the rig's action restored."""
    target = mixamo_like(rest_joints)
    previous = bpy.data.actions.new("previous")
    target.animation_data_create().action = previous
    target.data.pose_position = "REST"
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end, scene.render.fps = 5, 50, 25
    before = data_counts()
    request = SceneRequest("person", footage=Footage(images=(SAMPLE,)), target=target)
    with pytest.raises(RetargetError, match="rest position"):
        add_estimated([sample_motion], request)
    assert data_counts() == before
    assert target.animation_data.action == previous
    assert (scene.frame_start, scene.frame_end, scene.render.fps, scene.camera) == (5, 50, 25, None)


def test_backend_error_leaves_the_scene_untouched(addon, tmp_path: Path):
    wall = tmp_path / "wall.png"
    image = bpy.data.images.new("wall", 160, 120)
    image.pixels.foreach_set(np.random.default_rng(0).uniform(size=160 * 120 * 4).astype(np.float32))
    image.filepath_raw, image.file_format = str(wall), "PNG"
    image.save()
    bpy.data.images.remove(image)
    before = data_counts()
    addon.ikol.images.add().path = str(wall)
    # Run headless, an operator's error report comes back as a RuntimeError.
    with pytest.raises(RuntimeError, match="No person was found in the input."):
        bpy.ops.ikol.estimate_pose("EXEC_DEFAULT")
    assert data_counts() == before
    assert addon.ikol.status == "Failed" and not addon.ikol.running


def test_crashing_backend_is_reported_and_leaves_the_scene_untouched(addon, tmp_path, monkeypatch):
    crash = tmp_path / "crashing-python"
    crash.write_text(f"#!{sys.executable}\nimport sys\nprint('Segmentation fault', file=sys.stderr)\nsys.exit(139)\n")
    crash.chmod(0o755)
    monkeypatch.setenv("IKOL_BACKEND_PYTHON", str(crash))
    job = EstimateJob(backend_python(), [SAMPLE])
    while not job.step(timeout=0.1):
        pass
    with pytest.raises(BackendFailed) as failure:
        job.motions()[0]
    job.cleanup()
    assert "exit code 139" in failure.value.message
    assert "Segmentation fault" in failure.value.message
    before = data_counts()
    addon.ikol.images.add().path = str(SAMPLE)
    with pytest.raises(RuntimeError, match="exit code 139"):
        bpy.ops.ikol.estimate_pose("EXEC_DEFAULT")
    assert data_counts() == before


def test_missing_source_and_options_are_refused_before_the_backend_starts(addon):
    settings = addon.ikol
    for source, message in (("IMAGES", "Add the image files"), ("FOLDER", "image folder"),
                            ("MOVIE", "movie file"), ("CLIP", "Movie Clip")):
        settings.source = source
        with pytest.raises(SourceError, match=message):
            EstimateRun(bpy.context)
    settings.source = "IMAGES"
    settings.images.add().path = str(SAMPLE)
    settings.front_end = "ikol"
    with pytest.raises(SourceError, match="needs its checkpoint"):
        EstimateRun(bpy.context)
    settings.front_end, settings.target = "default", "EXISTING"
    with pytest.raises(SourceError, match="armature to retarget onto"):
        EstimateRun(bpy.context)
    assert not settings.running


def test_panel_options_and_preferences_reach_the_backend(smpl_preference, standin, tmp_path):
    smpl_preference.device, smpl_preference.checkpoint = "cpu", str(tmp_path / "ikol.pth")
    settings = bpy.context.scene.ikol
    settings.front_end, settings.start, settings.stop, settings.stride = "ikol", 2, 40, 3
    settings.smooth, settings.fov = 0.25, 60.0
    settings.person, settings.fill, settings.flip_test, settings.half = 1, "none", True, True
    options = estimate_pose._estimate_options(settings)
    assert (options.person, options.fill, options.flip_test, options.half) == (1, "none", True, True)
    assert (options.front_end, options.start, options.stop, options.stride) == ("ikol", 2, 40, 3)
    assert (options.smooth, options.fov, options.device) == (0.25, 60.0, "cpu")
    assert (options.smpl, options.checkpoint) == (standin, tmp_path / "ikol.pth")
    settings.stop = 0
    assert estimate_pose._estimate_options(settings).stop is None  # 0: to the end


def test_torch_build_preference_and_install_backend_offline(smpl_preference, tmp_path,
                                                            monkeypatch):
    """The managed environment's torch build is a preference (Auto by default); with online
    access off Install backend refuses before anything runs, nvidia-smi included."""
    assert smpl_preference.torch_build == "auto"
    items = smpl_preference.bl_rna.properties["torch_build"].enum_items
    assert [item.identifier for item in items] == ["auto", "cpu", "cu130", "cu126"]
    # Only an installed extension has a user folder: here a temporary one stands in.
    monkeypatch.setattr(preferences, "user_dir", lambda create=False: tmp_path / "user")
    for environment, shown in (("MANAGED", True), ("CUSTOM", False)):
        calls = []
        smpl_preference.environment = environment
        IKOLPreferences.draw(SimpleNamespace(layout=LayoutRecorder(calls), **{
            name: getattr(smpl_preference, name) for name in ("environment", "torch_build")}),
            bpy.context)
        assert any(name == "prop" and args[1:] == ("torch_build",)
                   for name, args, _ in calls) == shown
    fake_nvidia_smi(tmp_path, "8.6, 580.65.06")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not bpy.app.online_access  # else the next line would really install
    with pytest.raises(RuntimeError, match="Online access is off"):
        bpy.ops.ikol.install_backend("EXEC_DEFAULT")
    assert not (tmp_path / "asked").exists()


def test_estimate_pose_with_an_smpl_model_builds_the_smpl_body(smpl_preference):
    """With an SMPL model file in the preferences the backend also makes the body file: the
    scene gets the SMPL mesh, its shape keys and (Shape Keys on) pose correctives."""
    settings = bpy.context.scene.ikol
    settings.images.add().path = str(SAMPLE)
    settings.shape_keys = True
    run, statuses = run_like_the_modal_operator(bpy.context)
    assert any(status.startswith("Making the body") for status in statuses)
    assert not run.job.folder.exists()
    motion = run.job.motions()[0]
    body = bpy.data.objects["person_body"]
    names = body.data.shape_keys.key_blocks.keys()
    assert {f"Shape{k:03d}" for k in range(10)} <= set(names)
    assert any(name.startswith("Pose_") for name in names)
    betas = [body.data.shape_keys.key_blocks[f"Shape{k:03d}"].value for k in range(10)]
    np.testing.assert_allclose(betas, motion.betas, atol=1e-6)
    check_keys_and_pose(bpy.data.objects["person"], motion, np.array([1.0]))


def test_panel_draws_each_source_and_target(addon):
    settings = addon.ikol
    for source in ("IMAGES", "FOLDER", "MOVIE", "CLIP"):
        for target in ("NEW", "EXISTING"):
            settings.source, settings.target = source, target
            calls = []
            IKOL_PT_estimate.draw(SimpleNamespace(layout=LayoutRecorder(calls)), bpy.context)
            drawn = {args[1] for name, args, _ in calls if name == "prop"}
            assert {"source", "start", "stop", "stride", "front_end", "smooth", "target",
                    "matched_camera", "body_mesh", "shape_keys"} <= drawn
            assert {"IMAGES": "template_list", "FOLDER": "folder_path", "MOVIE": "movie_path",
                    "CLIP": "clip"}[source] in drawn | {name for name, _, _ in calls}
            assert ("target_armature" in drawn) == (target == "EXISTING")
    settings.running, settings.status = True, "Estimating: frame 3/10, 2.0 frames/s"
    calls = []
    IKOL_PT_estimate.draw(SimpleNamespace(layout=LayoutRecorder(calls)), bpy.context)
    assert ("progress", (), {"factor": 0.0, "type": "BAR", "text": settings.status}) in calls
    assert any(name == "operator" and args[0] == "ikol.cancel_estimate" for name, args, _ in calls)


def test_job_reports_progress_and_yields_the_motion_it_wrote():
    job = EstimateJob(backend_python(), [SAMPLE, SAMPLE])
    while not job.step(timeout=0.1):
        pass
    motion = job.motions()[0]
    job.cleanup()
    assert job.progress.done == job.progress.total == 2
    assert motion.num_frames == 2 and motion.valid.all()
    assert not job.folder.exists()


def test_import_motion_of_an_estimated_file(addon, tmp_path: Path):
    job = EstimateJob(backend_python(), [SAMPLE])
    while not job.step(timeout=0.1):
        pass
    motion_file = tmp_path / "walk.npz"
    job.motion_path.rename(motion_file)
    job.cleanup()
    assert bpy.ops.ikol.import_motion(filepath=str(motion_file)) == {"FINISHED"}
    armature = bpy.data.objects["walk"]
    bpy.context.scene.frame_set(1)
    heads = np.array([armature.matrix_world @ armature.pose.bones[n].head for n in JOINT_NAMES])
    with np.load(motion_file) as data:
        assert np.abs(heads - to_z_up(data["joints"][0])).max() < 1e-3


def test_import_of_a_file_that_is_not_motion_is_refused(addon, tmp_path: Path):
    before = data_counts()
    bad = tmp_path / "weights.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(RuntimeError, match="missing poses, trans"):
        bpy.ops.ikol.import_motion(filepath=str(bad))
    assert data_counts() == before
