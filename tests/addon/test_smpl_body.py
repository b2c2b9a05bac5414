"""The SMPL body in real Blender: body files from the backend, the skinned and shaped mesh
checked against SMPL's own skinning, and Import Motion of AMASS-style files."""

from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np
import pytest
import roma
import torch
from bpy_extras.anim_utils import action_get_channelbag_for_slot

from ikol_backend.body.model import BodyModel
from ikol_backend.body.smpl_file import load_smpl
from ikol_blender.backend_process import BackendFailed, backend_python
from ikol_blender.body_file import Body, BodyFileError, export_body, load_body
from ikol_blender.motion import Motion
from ikol_blender.scene.build import build_scene
from ikol_blender.smpl import JOINT_NAMES, Y_UP_TO_Z_UP, to_z_up

BETAS = np.array([0.8, -1.2, 0.5, 0.0, 1.5, -0.3, 0.2, 0.0, -0.7, 0.4])
SHAPE_KEYS = [f"Shape{k:03d}" for k in range(10)]
DATA_KINDS = ("objects", "armatures", "meshes", "cameras", "actions", "materials", "shape_keys")


@pytest.fixture(scope="module")
def smpl_body(standin: Path, tmp_path_factory: pytest.TempPathFactory) -> Body:
    """A body file made by the real backend, with pose correctives."""
    folder = tmp_path_factory.mktemp("body")
    return load_body(export_body(backend_python(), standin, BETAS, folder, pose_correctives=True))


@pytest.fixture(scope="module")
def model(standin: Path) -> BodyModel:
    return load_smpl(standin)


def data_counts() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind)) for kind in DATA_KINDS}


def random_motion(frames: int, rest_joints: np.ndarray | None, seed: int) -> Motion:
    rng = np.random.default_rng(seed)
    return Motion(poses=0.4 * rng.normal(size=(frames, 24, 3)), trans=0.3 * rng.normal(size=(frames, 3)),
                  betas=BETAS, frame_rate=30.0, rest_joints=rest_joints, joints=None,
                  valid=np.ones(frames, dtype=bool), camera_intrinsics=None, image_size=None,
                  source="")


def evaluated_vertices(obj: bpy.types.Object, frame: int) -> np.ndarray:
    """World positions of the mesh's vertices at `frame`, after shape keys and the armature."""
    bpy.context.scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    coords = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    evaluated.to_mesh_clear()
    matrix = np.array(obj.matrix_world)
    return coords.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def smpl_vertices(model: BodyModel, poses: np.ndarray, betas: np.ndarray,
                  pose_correctives: bool) -> np.ndarray:
    """(N, V, 3) SMPL's own skinning (the backend's, smplx lbs), model frame, root at rest."""
    if not pose_correctives:
        mesh = replace(model.mesh, posedirs=torch.zeros_like(model.mesh.posedirs))
        model = replace(model, mesh=mesh)
    betas = np.broadcast_to(betas, (len(poses), 10))
    return model.vertices(torch.tensor(poses, dtype=torch.float32),
                          torch.tensor(np.array(betas), dtype=torch.float32)).numpy()


def test_export_body_reports_the_backends_message(tmp_path: Path):
    with pytest.raises(BackendFailed) as failure:
        export_body(backend_python(), tmp_path / "missing.pkl", BETAS, tmp_path)
    assert failure.value.code == "model_invalid"
    assert failure.value.message == f"SMPL model file not found: {tmp_path / 'missing.pkl'}"


def test_load_body_names_what_is_wrong(smpl_body: Body, tmp_path: Path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, rest_joints=np.zeros((24, 3)))
    with pytest.raises(BodyFileError, match="bad.npz is not a body file: it has no 'betas'"):
        load_body(bad)
    np.savez(bad, rest_joints=np.zeros((24, 3)), betas=np.zeros(10), v_template=smpl_body.mesh.v_template,
             faces=np.array([[0, 1, 7000]]), weights=smpl_body.mesh.weights,
             shapedirs=smpl_body.mesh.shapedirs)
    with pytest.raises(BodyFileError, match="'faces' refers to vertices outside 0..6889"):
        load_body(bad)
    with pytest.raises(BodyFileError, match="Body file not found"):
        load_body(tmp_path / "none.npz")


def test_smpl_mesh_skinned_and_shaped_like_smpl(empty_scene, smpl_body: Body, model: BodyModel):
    plain = replace(smpl_body, mesh=replace(smpl_body.mesh, posedirs=None))
    motion = random_motion(3, smpl_body.rest_joints, seed=1)
    built = build_scene(motion, "walk", body=plain)
    mesh = built.body
    assert mesh.parent == built.armature
    assert [group.name for group in mesh.vertex_groups] == list(JOINT_NAMES)
    assert [(m.type, m.object) for m in mesh.modifiers] == [("ARMATURE", built.armature)]
    keys = mesh.data.shape_keys.key_blocks
    assert [key.name for key in keys] == ["Basis"] + SHAPE_KEYS
    np.testing.assert_allclose([keys[name].value for name in SHAPE_KEYS], BETAS, atol=1e-6)
    assert mesh.data.shape_keys.animation_data is None  # one betas vector: nothing keyed
    # A shape key is one unit of its beta.
    basis = np.array([v.co for v in keys["Basis"].data])
    np.testing.assert_allclose(basis, to_z_up(smpl_body.mesh.v_template), atol=1e-6)
    np.testing.assert_allclose(np.array([v.co for v in keys["Shape004"].data]) - basis,
                               to_z_up(smpl_body.mesh.shapedirs[:, :, 4]), atol=1e-6)
    # The armature's rest skeleton is the betas' rest joints.
    heads = np.array([built.armature.data.bones[name].head_local for name in JOINT_NAMES])
    np.testing.assert_allclose(heads, to_z_up(smpl_body.rest_joints), atol=1e-6)
    # Posed by the armature, the vertices are where SMPL's skinning (no pose blend shapes) puts them.
    expected = smpl_vertices(model, motion.poses, BETAS, pose_correctives=False) + motion.trans[:, None]
    for frame in range(motion.num_frames):
        got = evaluated_vertices(mesh, frame + 1)
        assert np.abs(got - to_z_up(expected[frame])).max() < 1e-3


def test_pose_correctives_put_vertices_where_smpl_does(empty_scene, smpl_body: Body, model: BodyModel):
    motion = random_motion(3, smpl_body.rest_joints, seed=2)
    built = build_scene(motion, "walk", body=smpl_body)
    keys = built.body.data.shape_keys.key_blocks
    assert len(keys) == 1 + 10 + 207
    drivers = built.body.data.shape_keys.animation_data.drivers
    driver = drivers.find('key_blocks["Pose_left_elbow_01"].value').driver
    assert driver.expression == "2*(x*y-w*z)/(w*w+x*x+y*y+z*z)" and driver.is_simple_expression
    with_correctives = smpl_vertices(model, motion.poses, BETAS, pose_correctives=True)
    without = smpl_vertices(model, motion.poses, BETAS, pose_correctives=False)
    assert np.abs(with_correctives - without).max() > 0.01  # they matter here
    for frame in range(motion.num_frames):
        got = evaluated_vertices(built.body, frame + 1)
        expected = to_z_up(with_correctives[frame] + motion.trans[frame])
        assert np.abs(got - expected).max() < 1e-3


def test_betas_per_frame_are_keyed(empty_scene, smpl_body: Body):
    plain = replace(smpl_body, mesh=replace(smpl_body.mesh, posedirs=None))
    motion = random_motion(4, smpl_body.rest_joints, seed=3)
    per_frame = BETAS + 0.5 * np.arange(4)[:, None]
    built = build_scene(replace(motion, betas=per_frame), "walk", body=plain)
    keys = built.body.data.shape_keys.key_blocks
    for frame in range(4):
        bpy.context.scene.frame_set(frame + 1)
        np.testing.assert_allclose([keys[name].value for name in SHAPE_KEYS], per_frame[frame],
                                   atol=1e-5)


def test_a_failing_build_leaves_the_scene_as_it_was(empty_scene, smpl_body: Body):
    before = data_counts()
    motion = random_motion(2, smpl_body.rest_joints, seed=4)
    wild = np.full((2, 10), 12.0)  # beyond what Blender's shape keys can hold
    with pytest.raises(ValueError, match="A beta of 12.0"):
        build_scene(replace(motion, betas=wild), "walk", body=smpl_body)
    assert data_counts() == before


def test_body_without_mesh_and_a_motion_on_another_skeleton(empty_scene, tmp_path: Path):
    """The default skeleton's body for other betas: the armature takes the body's skeleton, the
    capsule mesh, and the pelvis stays where the motion put it."""
    body = load_body(export_body(backend_python(), None, BETAS, tmp_path, skeleton_only=True))
    assert body.mesh is None and body.model_name == "default_skeleton" and body.gender == "neutral"
    np.testing.assert_allclose(body.betas, BETAS, atol=1e-6)
    own_rest = 0.9 * body.rest_joints + [0.0, 0.1, 0.0]
    motion = random_motion(2, own_rest, seed=5)
    built = build_scene(motion, "walk", body=body)
    assert [group.name for group in built.body.vertex_groups] == list(JOINT_NAMES)
    assert built.body.data.shape_keys is None
    heads = np.array([built.armature.data.bones[name].head_local for name in JOINT_NAMES])
    np.testing.assert_allclose(heads, to_z_up(body.rest_joints), atol=1e-6)
    for frame in range(2):
        bpy.context.scene.frame_set(frame + 1)
        pelvis = built.armature.matrix_world @ built.armature.pose.bones["pelvis"].head
        np.testing.assert_allclose(pelvis, to_z_up(own_rest[0] + motion.trans[frame]), atol=1e-5)


def write_amass(path: Path, frames: int, width: int = 156, seed: int = 0,
                rate_key: str = "mocap_framerate", **extra) -> dict:
    """An AMASS-style file: SMPL-H (156) or SMPL-X (165) poses, 16 betas, the gender as bytes,
    a Z-up world, no rest skeleton."""
    rng = np.random.default_rng(seed)
    arrays = {"poses": 0.3 * rng.normal(size=(frames, width)),
              "trans": rng.normal(size=(frames, 3)) + [0, 0, 0.9],
              "betas": np.concatenate([BETAS, rng.normal(size=6)]),
              "gender": np.bytes_(b"female"), rate_key: np.float64(120.0),
              "dmpls": np.zeros((frames, 8))} | extra
    np.savez(path, **arrays)
    return arrays


def bone_rest(armature: bpy.types.Object, name: str) -> np.ndarray:
    return np.array(armature.data.bones[name].matrix_local.to_3x3())


def rotation(rotvec: np.ndarray) -> np.ndarray:
    return roma.rotvec_to_rotmat(torch.tensor(rotvec)).numpy()


def test_import_with_the_capsule_body(addon, tmp_path: Path):
    """Capsule Body: a file with its own skeleton needs no backend; one without (AMASS) gets
    the default skeleton's."""
    for name, rest in (("own", True), ("amass", False)):
        path = tmp_path / f"{name}.npz"
        if rest:
            motion = random_motion(2, None, seed=3)
            np.savez(path, poses=motion.poses.reshape(2, 72), trans=motion.trans, betas=BETAS,
                     rest_joints=0.5 * np.ones((24, 3)) * np.arange(24)[:, None] / 24,
                     format_version=np.int32(1))
        else:
            write_amass(path, 2)
        assert bpy.ops.ikol.import_motion(filepath=str(path), capsule_body=True) == {"FINISHED"}
        body = bpy.data.objects[f"{name}_body"]
        assert body.data.shape_keys is None and len(body.vertex_groups) == 24


def test_import_of_an_amass_style_file(addon, tmp_path: Path):
    path = tmp_path / "jog_poses.npz"
    frames = 5
    data = write_amass(path, frames)
    assert bpy.ops.ikol.import_motion(filepath=str(path)) == {"FINISHED"}
    armature = bpy.data.objects["jog_poses"]
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, frames)
    animation = armature.animation_data
    fcurves = action_get_channelbag_for_slot(animation.action, animation.action_slot).fcurves
    assert len(fcurves) == 24 * 4 + 3  # quaternions and the root's location
    assert all([k.co[0] for k in fcurve.keyframe_points] == list(range(1, frames + 1)) for fcurve in fcurves)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(120.0)
    keys = bpy.data.objects["jog_poses_body"].data.shape_keys.key_blocks  # no SMPL file: open body
    assert keys.keys()[1:] == ["gender", "age", "muscle", "weight", "height", "proportions"]
    turn = Y_UP_TO_Z_UP
    poses = data["poses"][:, :66].reshape(frames, 22, 3)
    for frame in range(frames):
        scene.frame_set(frame + 1)
        for joint, name in enumerate(JOINT_NAMES):
            bone = armature.pose.bones[name]
            rest = bone_rest(armature, name)
            if joint == 0:
                # Z-up world kept: the root's armature-space orientation is R C^T B.
                expected = rotation(poses[frame, 0]) @ turn.T @ rest
                np.testing.assert_allclose(np.array(bone.matrix.to_3x3()), expected, atol=1e-5)
                continue
            local = rotation(poses[frame, joint]) if joint < 22 else np.eye(3)  # SMPL hands: rest
            expected = rest.T @ turn @ local @ turn.T @ rest
            np.testing.assert_allclose(np.array(bone.matrix_basis.to_3x3()), expected, atol=1e-5)
        # The default skeleton's pelvis is at the origin: the world pelvis is the translation.
        pelvis = armature.matrix_world @ armature.pose.bones["pelvis"].head
        np.testing.assert_allclose(pelvis, data["trans"][frame], atol=1e-5)


@pytest.mark.parametrize("width", [156, 165])
def test_amass_with_an_smpl_file_puts_the_body_where_amass_does(smpl_preference, model: BodyModel,
                                                                 tmp_path: Path, width: int):
    path = tmp_path / "dance.npz"
    frames = 3
    # AMASS's SMPL-X files name the rate mocap_frame_rate.
    rate_key = "mocap_frame_rate" if width == 165 else "mocap_framerate"
    data = write_amass(path, frames, width=width, seed=width, rate_key=rate_key)
    assert bpy.ops.ikol.import_motion(filepath=str(path)) == {"FINISHED"}
    mesh = bpy.data.objects["dance_body"]
    keys = mesh.data.shape_keys.key_blocks
    np.testing.assert_allclose([keys[name].value for name in SHAPE_KEYS], data["betas"][:10], atol=1e-6)
    scene = bpy.context.scene
    assert scene.render.fps / scene.render.fps_base == pytest.approx(120.0)
    poses = np.zeros((frames, 24, 3))
    poses[:, :22] = data["poses"][:, :66].reshape(frames, 22, 3)
    # SMPL in AMASS's Z-up world: its vertices with the root at rest, plus the translation, as
    # they are, with no change of frame.
    expected = smpl_vertices(model, poses, data["betas"][:10], pose_correctives=False)
    for frame in range(frames):
        got = evaluated_vertices(mesh, frame + 1)
        assert np.abs(got - (expected[frame] + data["trans"][frame])).max() < 1e-3


def test_world_up_option_y_keeps_the_model_frame(addon, tmp_path: Path):
    path = tmp_path / "yup.npz"
    data = write_amass(path, 2)
    assert bpy.ops.ikol.import_motion(filepath=str(path), up_axis="Y") == {"FINISHED"}
    armature = bpy.data.objects["yup"]
    bpy.context.scene.frame_set(1)
    pelvis = armature.matrix_world @ armature.pose.bones["pelvis"].head
    np.testing.assert_allclose(pelvis, to_z_up(data["trans"][0]), atol=1e-5)


@pytest.mark.parametrize("arrays, message", [
    ({"poses": np.zeros((3, 100)), "trans": np.zeros((3, 3))},
     r"'poses' must be \(N, 72, 156, 165\)"),
    ({"poses": np.full((3, 72), np.nan), "trans": np.zeros((3, 3))}, "'poses' must hold finite numbers"),
    ({"poses": np.zeros((3, 156)), "trans": np.zeros((2, 3))}, r"'trans' must be \(3, 3\)"),
    ({"poses": np.zeros((3, 156)), "trans": np.zeros((3, 3)), "betas": np.zeros((2, 10))},
     r"'betas' must be \(K,\) or \(3, K\)"),
    ({"poses": np.zeros((0, 156)), "trans": np.zeros((0, 3))}, "has no frames"),
    ({"poses": np.zeros((3, 156)), "trans": np.zeros((3, 3)), "mocap_framerate": np.float64(0)},
     "'mocap_framerate' must be one positive number"),
])
def test_broken_files_leave_the_scene_untouched(addon, tmp_path: Path, arrays: dict, message: str):
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    before = data_counts()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.ikol.import_motion(filepath=str(path))
    assert data_counts() == before


def test_an_smpl_file_that_is_not_one_is_reported(smpl_preference, tmp_path: Path):
    not_smpl = tmp_path / "model.npz"
    np.savez(not_smpl, v_template=np.zeros((10, 3)))
    smpl_preference.smpl_model = str(not_smpl)
    path = tmp_path / "run.npz"
    write_amass(path, 2)
    before = data_counts()
    with pytest.raises(RuntimeError, match="model.npz is not an SMPL model file: it has no shapedirs"):
        bpy.ops.ikol.import_motion(filepath=str(path))
    assert data_counts() == before


class _TouchesWhenUnpickled:
    """Unpickling this makes a file: a stand-in for a pickle that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_pickled_keys_are_never_loaded(addon, tmp_path: Path):
    path, marker = tmp_path / "with_object.npz", tmp_path / "pickle_ran"
    write_amass(path, 2, extra_info=np.array([_TouchesWhenUnpickled(marker)], dtype=object))
    assert bpy.ops.ikol.import_motion(filepath=str(path)) == {"FINISHED"}
    assert bpy.data.objects["with_object"].type == "ARMATURE"
    assert not marker.exists()  # the pickled key was never unpickled
    np.load(path, allow_pickle=True)["extra_info"]  # the payload is real: loading it runs it
    assert marker.exists()
