"""`estimate --smpl`: the motion is solved on the skeleton and shape space of an SMPL file
(here the generated stand-in)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ikol_backend.body.model import BodyModel

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"


def run_estimate(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ikol_backend", "estimate", *map(str, args), "--events"],
                          capture_output=True, text=True, timeout=300)


def test_motion_is_solved_on_the_smpl_files_skeleton(standin_files, standin_body: BodyModel, tmp_path: Path):
    result = run_estimate(SAMPLE, "-o", tmp_path / "m.npz", "--smpl", standin_files[0])
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "m.npz") as data:
        assert str(data["body_model"]) == standin_body.name
        betas = torch.as_tensor(data["betas"])[None]
        rest = standin_body.rest_points(betas)[0, :24].numpy()
        assert np.allclose(data["rest_joints"], rest, atol=1e-5)
        posed = standin_body.posed_points(torch.as_tensor(data["poses"]).reshape(1, 24, 3), betas)
        expected = posed[0, :24].numpy() + data["trans"][0]
        assert np.abs(data["joints"][0] - expected).max() < 1e-4  # metres


def test_a_file_that_is_not_an_smpl_model_stops_the_run_before_any_frame(tmp_path: Path):
    bogus = tmp_path / "model.npz"
    np.savez(bogus, weights=np.zeros(3))
    result = run_estimate(SAMPLE, "-o", tmp_path / "m.npz", "--smpl", bogus)
    assert result.returncode == 3
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["error"]
    assert events[0]["code"] == "model_invalid"
    assert events[0]["message"] == ("model.npz is not an SMPL model file: it has no v_template, "
                                    "shapedirs, posedirs, J_regressor, kintree_table, f")
    assert not (tmp_path / "m.npz").exists()
