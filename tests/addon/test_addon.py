"""The add-on in real Blender: registration, Estimate Pose, cancel, failures, import."""

import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest

import ikol_blender
from ikol_blender.job import EstimateJob
from ikol_blender.backend_process import BackendFailed
from ikol_blender.smpl import JOINT_NAMES, to_z_up

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"


@pytest.fixture
def addon(empty_scene):
    ikol_blender.register()
    yield bpy.context.scene
    ikol_blender.unregister()


def data_counts() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind))
            for kind in ("objects", "armatures", "meshes", "cameras", "actions", "materials")}


def test_register_and_unregister_twice(empty_scene):
    for _ in range(2):
        ikol_blender.register()
        assert hasattr(bpy.types.Scene, "ikol")
        assert bpy.ops.ikol.estimate_pose.poll()
        ikol_blender.unregister()
        assert not hasattr(bpy.types.Scene, "ikol")
        assert not hasattr(bpy.types, "IKOL_OT_estimate_pose")


def test_estimate_pose_builds_the_posed_body(addon):
    addon.ikol.input_path = str(SAMPLE)
    assert bpy.ops.ikol.estimate_pose("EXEC_DEFAULT") == {"FINISHED"}
    armature = bpy.data.objects["person"]
    assert armature.type == "ARMATURE"
    assert bpy.data.objects["person_body"].type == "MESH"
    assert bpy.data.objects["person_camera"].type == "CAMERA"
    assert not addon.ikol.running
    assert addon.ikol.status == "Done: person"


def test_job_reports_progress_and_yields_the_motion_it_wrote():
    job = EstimateJob([SAMPLE, SAMPLE])
    seen = []
    while not job.step(timeout=0.1):
        seen.append(job.progress.done)
    motion = job.motion()
    job.cleanup()
    assert job.progress.done == job.progress.total == 2
    assert motion.num_frames == 2 and motion.valid.all()
    assert not job.folder.exists()


def test_cancel_ends_the_backend_within_a_second_and_leaves_nothing(addon):
    before = data_counts()
    job = EstimateJob([SAMPLE] * 300)
    while job.progress.done < 1:  # really running, model loaded
        job.step(timeout=0.5)
    process = job._run._process
    tick = time.perf_counter()
    job.cancel()
    assert time.perf_counter() - tick < 1.0
    assert process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # the whole process group is gone
    assert not job.folder.exists()
    assert data_counts() == before


def test_backend_error_leaves_the_scene_untouched(addon, tmp_path: Path):
    wall = tmp_path / "wall.png"
    image = bpy.data.images.new("wall", 160, 120)
    image.pixels.foreach_set(np.random.default_rng(0).uniform(size=160 * 120 * 4).astype(np.float32))
    image.filepath_raw, image.file_format = str(wall), "PNG"
    image.save()
    bpy.data.images.remove(image)
    before = data_counts()
    addon.ikol.input_path = str(wall)
    # Run headless, an operator's error report comes back as a RuntimeError.
    with pytest.raises(RuntimeError, match="No person was found in the input."):
        bpy.ops.ikol.estimate_pose("EXEC_DEFAULT")
    assert data_counts() == before
    assert addon.ikol.status == "Failed"


def test_crashing_backend_is_reported_and_leaves_the_scene_untouched(addon, tmp_path, monkeypatch):
    crash = tmp_path / "crashing-python"
    crash.write_text(f"#!{sys.executable}\nimport sys\nprint('Segmentation fault', file=sys.stderr)\nsys.exit(139)\n")
    crash.chmod(0o755)
    monkeypatch.setenv("IKOL_BACKEND_PYTHON", str(crash))
    job = EstimateJob([SAMPLE])
    while not job.step(timeout=0.1):
        pass
    with pytest.raises(BackendFailed) as failure:
        job.motion()
    job.cleanup()
    assert "exit code 139" in failure.value.message
    assert "Segmentation fault" in failure.value.message
    before = data_counts()
    addon.ikol.input_path = str(SAMPLE)
    with pytest.raises(RuntimeError, match="exit code 139"):
        bpy.ops.ikol.estimate_pose("EXEC_DEFAULT")
    assert data_counts() == before


def test_import_motion_of_an_estimated_file(addon, tmp_path: Path):
    job = EstimateJob([SAMPLE])
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
