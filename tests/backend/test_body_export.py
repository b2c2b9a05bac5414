"""`ikol-backend body`: the body file for Blender, from the stand-in SMPL model or the default
skeleton, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

from ikol_backend import cli
from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.export import betas_from_motion
from ikol_backend.body.model import BodyModel

BETAS = [0.8, -1.2, 0.5, 0.0, 1.5, -0.3, 0.2, 0.0, -0.7, 0.4]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[dict]]:
    code = cli.main(argv + ["--events"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_body_file_from_an_smpl_file_through_the_command_line(standin_files, standin_body: BodyModel,
                                                              tmp_path: Path):
    out = tmp_path / "body.npz"
    command = [sys.executable, "-m", "ikol_backend", "body", "--smpl", str(standin_files[1]),
               "--betas", *map(str, BETAS), "-o", str(out), "--events"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["event"] == "result" and result["path"] == str(out)
    assert result["summary"]["body_model"] == "standin_neutral" and result["summary"]["vertices"] == 6890
    mesh = standin_body.mesh
    with np.load(out, allow_pickle=False) as body:
        assert sorted(body.files) == ["betas", "body_model", "faces", "format_version", "gender",
                                      "rest_joints", "shapedirs", "v_template", "weights"]
        assert body["faces"].dtype == np.int32 and body["v_template"].dtype == np.float32
        assert str(body["gender"]) == "neutral" and str(body["body_model"]) == "standin_neutral"
        np.testing.assert_allclose(body["betas"], BETAS, atol=1e-7)
        expected_joints = standin_body.rest_points(torch.tensor([BETAS]))[0, :24].numpy()
        np.testing.assert_allclose(body["rest_joints"], expected_joints, atol=1e-6)
        np.testing.assert_array_equal(body["faces"], mesh.faces.numpy())
        np.testing.assert_array_equal(body["weights"], mesh.weights.numpy())
        np.testing.assert_array_equal(body["v_template"], mesh.v_template.numpy())
        np.testing.assert_array_equal(body["shapedirs"], mesh.shapedirs.numpy())
        # The rest joints are the SMPL joints of the shaped mesh.
        shaped = body["v_template"] + body["shapedirs"] @ body["betas"]
        regressed = mesh.J_regressor.numpy() @ shaped
        np.testing.assert_allclose(body["rest_joints"], regressed, atol=1e-5)


def test_pose_correctives_are_smpl_pose_blend_shapes(standin_files, standin_body: BodyModel,
                                                     tmp_path: Path, capsys):
    out = tmp_path / "body.npz"
    code, events = run_cli(["body", "--smpl", str(standin_files[0]), "--pose-correctives",
                            "-o", str(out)], capsys)
    assert code == 0 and events[-1]["event"] == "result"
    with np.load(out) as body:
        posedirs = body["posedirs"]
    assert posedirs.shape == (6890, 3, 207) and posedirs.dtype == np.float32
    # The documented use: offsets = posedirs . vec(R_j - I) over joints 1..23, row-major.
    rotations = roma.rotvec_to_rotmat(0.5 * torch.randn(23, 3, generator=torch.Generator().manual_seed(3)))
    feature = (rotations - torch.eye(3)).reshape(207)
    smplx_offsets = (feature @ standin_body.mesh.posedirs).reshape(6890, 3)  # smplx's layout
    np.testing.assert_allclose(posedirs @ feature.numpy(), smplx_offsets.numpy(), atol=1e-6)


def test_body_file_of_the_default_skeleton(tmp_path: Path, capsys):
    out = tmp_path / "body.npz"
    code, events = run_cli(["body", "--skeleton-only", "--betas", "1", "-0.5", "-o", str(out)], capsys)
    assert code == 0
    assert events[-1]["summary"]["body_model"] == "default_skeleton"
    assert events[-1]["summary"]["vertices"] == 0
    with np.load(out) as body:
        assert sorted(body.files) == ["betas", "body_model", "format_version", "gender", "rest_joints"]
        np.testing.assert_array_equal(body["betas"], [1, -0.5] + [0] * 8)
        expected = default_skeleton().rest_points(torch.tensor([[1.0, -0.5] + [0.0] * 8]))[0, :24]
        np.testing.assert_allclose(body["rest_joints"], expected.numpy(), atol=1e-7)


def test_betas_from_motion_files(tmp_path: Path):
    amass = tmp_path / "amass.npz"
    np.savez(amass, poses=np.zeros((3, 156)), trans=np.zeros((3, 3)), betas=np.arange(16.0))
    np.testing.assert_array_equal(betas_from_motion(amass), np.arange(10.0))
    per_frame = tmp_path / "per_frame.npz"
    np.savez(per_frame, betas=np.stack([np.full(10, 1.0), np.full(10, 3.0)]))
    np.testing.assert_array_equal(betas_from_motion(per_frame), np.full(10, 2.0))
    short = tmp_path / "short.npz"
    np.savez(short, betas=np.ones(4))
    np.testing.assert_array_equal(betas_from_motion(short), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])


def test_betas_from_a_motion_file_on_the_command_line(tmp_path: Path, capsys):
    motion = tmp_path / "walk.npz"
    np.savez(motion, poses=np.zeros((2, 72)), trans=np.zeros((2, 3)), betas=np.full(10, 0.5))
    out = tmp_path / "body.npz"
    code, _ = run_cli(["body", "--skeleton-only", "--betas-from", str(motion), "-o", str(out)], capsys)
    assert code == 0
    with np.load(out) as body:
        np.testing.assert_array_equal(body["betas"], np.full(10, 0.5, np.float32))


@pytest.mark.parametrize("make_args, code, exit_code", [
    (lambda d: ["--smpl", str(d / "missing.npz")], "model_invalid", 3),
    (lambda d: ["--smpl", str(d / "not_smpl.npz")], "model_invalid", 3),
    (lambda d: ["--betas-from", str(d / "missing.npz")], "input_not_found", 3),
    (lambda d: ["--betas-from", str(d / "garbage.npz")], "input_unreadable", 3),
    (lambda d: ["--betas-from", str(d / "not_smpl.npz")], "input_unsupported", 3),
    (lambda d: ["--betas", *["0.1"] * 11], "bad_option", 2),
    (lambda d: ["--betas", "nan"], "bad_option", 2),
    (lambda d: ["--pose-correctives"], "bad_option", 2),
    (lambda d: ["--skeleton-only", "--smpl", str(d / "not_smpl.npz")], "bad_option", 2),
])
def test_errors_name_the_problem_and_keep_the_earlier_file(tmp_path: Path, capsys, make_args,
                                                            code: str, exit_code: int):
    np.savez(tmp_path / "not_smpl.npz", something=np.zeros(3))
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    out = tmp_path / "body.npz"
    out.write_bytes(b"earlier")
    got, events = run_cli(["body", *make_args(tmp_path), "-o", str(out)], capsys)
    assert got == exit_code
    assert [event["event"] for event in events] == ["error"]
    assert events[0]["code"] == code and events[0]["message"]
    assert out.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["body.npz", "garbage.npz", "not_smpl.npz"]


def test_missing_output_folder(tmp_path: Path, capsys):
    got, events = run_cli(["body", "-o", str(tmp_path / "nope" / "body.npz")], capsys)
    assert got == 5 and events[0]["code"] == "output_unwritable"


def test_without_events_people_read_what_was_written(tmp_path: Path, capsys):
    out = tmp_path / "body.npz"
    assert cli.main(["body", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"Wrote {out}. Time: load ")
