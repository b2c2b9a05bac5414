"""Loading SMPL-format model files: the stand-in through our loader and smplx, and clear errors."""

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch
from smplx.utils import Struct

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.smpl_file import LEAF_VERTEX_IDS, SmplFileError, load_smpl
from tests.tools.standin_smpl import standin_arrays, write_standin


def _random_pose(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    poses = 0.4 * torch.randn(batch, 24, 3, generator=generator)
    return poses, torch.randn(batch, 10, generator=generator)


def test_npz_and_pkl_give_the_same_body(standin_files: tuple[Path, Path]) -> None:
    npz, pkl = (load_smpl(path) for path in standin_files)
    assert npz.name == pkl.name == "standin_neutral" and npz.gender == "neutral"
    torch.testing.assert_close(npz.point_template, pkl.point_template)
    torch.testing.assert_close(npz.point_shapedirs, pkl.point_shapedirs)
    assert npz.mesh.faces.shape == (13776, 3) and npz.mesh.v_template.shape == (6890, 3)
    # The leaf points are the mesh vertices HybrIK reads them from.
    torch.testing.assert_close(npz.point_template[24:], npz.mesh.v_template[list(LEAF_VERTEX_IDS)])
    # The stand-in is built around the default skeleton.
    torch.testing.assert_close(npz.point_template, default_skeleton().point_template, atol=1e-6, rtol=0)


def test_joints_and_vertices_match_smplx(standin_files: tuple[Path, Path]) -> None:
    npz_path, pkl_path = standin_files
    poses, betas = _random_pose(3, seed=0)
    from_pkl = smplx.SMPL(model_path=str(pkl_path))  # smplx reads the pickle itself
    from_npz = smplx.SMPL(model_path=str(npz_path.parent), data_struct=Struct(**dict(np.load(npz_path))))
    for reference in (from_pkl, from_npz):
        out = reference(betas=betas, body_pose=poses[:, 1:].flatten(1), global_orient=poses[:, 0])
        body = load_smpl(npz_path)
        torch.testing.assert_close(body.posed_points(poses, betas)[:, :24], out.joints[:, :24],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(body.vertices(poses, betas), out.vertices, atol=1e-5, rtol=0)


def test_original_style_pickle_with_chumpy_objects(tmp_path: Path) -> None:
    _, pkl = write_standin(tmp_path, chumpy=True)
    with pytest.raises(ModuleNotFoundError):  # what loading it the ordinary way does here
        with pkl.open("rb") as handle:
            pickle.load(handle)
    body = load_smpl(pkl)
    plain = load_smpl(tmp_path / "standin_neutral.npz")
    torch.testing.assert_close(body.point_shapedirs, plain.point_shapedirs)


def test_sparse_regressor_inside_npz(tmp_path: Path) -> None:
    arrays = standin_arrays()
    path = tmp_path / "model.npz"
    np.savez(path, **{**arrays, "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"])})
    assert load_smpl(path).mesh.J_regressor.shape == (24, 6890)


@pytest.mark.parametrize("name, gender", [
    ("SMPL_NEUTRAL.npz", "neutral"), ("SMPL_MALE.npz", "male"), ("SMPL_FEMALE.pkl", "female"),
    ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", "female"), ("basicmodel_m_lbs_10_207_0_v1.1.0.pkl", "male"),
    ("basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "neutral"),
])
def test_gender_from_the_file_name(
    standin_files: tuple[Path, Path], tmp_path: Path, name: str, gender: str
) -> None:
    source = standin_files[0] if name.endswith(".npz") else standin_files[1]
    shutil.copy(source, tmp_path / name)
    assert load_smpl(tmp_path / name).gender == gender
    assert load_smpl(tmp_path / name, gender="female").gender == "female"


def _npz(tmp_path: Path, **changes: object) -> Path:
    arrays = {k: v for k, v in standin_arrays().items() if changes.get(k, 0) is not None}
    arrays.update({k: v for k, v in changes.items() if v is not None})
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.npz", "not found"),
    (lambda d: d, "is a folder: .*choose the .npz or .pkl file inside it"),
    (lambda d: _write(d / "model.obj", b"v 0 0 0"), "ends in .npz or .pkl"),
    (lambda d: _npz(d, weights=None, f=None), "has no weights, f"),
    (lambda d: _npz(d, v_template=np.zeros((10, 3))),
     r"v_template has shape \(10, 3\); an SMPL model has \(6890, 3\)"),
    (lambda d: _npz(d, J_regressor=np.zeros((24, 100))), "J_regressor has shape"),
    (lambda d: _npz(d, shapedirs=np.zeros((6890, 3, 4))), "4 shape components"),
    (lambda d: _npz(d, kintree_table=np.zeros((2, 24), dtype=np.int64)), "not the SMPL joint tree"),
    (lambda d: _npz(d, posedirs=np.full((6890, 3, 207), np.nan)), "not finite"),
    (lambda d: _npz(d, f=np.full((13776, 3), 7000)), "outside"),
    (lambda d: _write(d / "x.npz", b"not a zip"), "not a readable .npz"),
    (lambda d: _write(d / "x.pkl", pickle.dumps([1, 2, 3])), "holds a list"),
    (lambda d: _write(d / "x.pkl", b"garbage"), "not a readable pickle"),
])
def test_clear_errors(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(SmplFileError, match=message):
        load_smpl(make(tmp_path))


class _RunsCode:
    """A pickle that would run a shell command when loaded the ordinary way."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_an_unrelated_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": _RunsCode(marker)}))
    with pytest.raises(SmplFileError, match=r"contains (posix|nt)\.system"):
        load_smpl(path)
    assert not marker.exists()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "checkpoint.pkl")
    with pytest.raises(SmplFileError, match="checkpoint.pkl"):
        load_smpl(tmp_path / "checkpoint.pkl")


def test_a_mesh_is_needed_for_vertices() -> None:
    poses, betas = _random_pose(1, seed=1)
    with pytest.raises(ValueError, match="no mesh"):
        default_skeleton().vertices(poses, betas)


def test_command_line_reports_a_file_that_is_not_a_model(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "notes.npz"
    bad.write_text("not a model")
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "bench-ik", "--model", str(bad), "--batches", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 3
    assert "error: notes.npz is not a readable .npz file" in result.stderr
