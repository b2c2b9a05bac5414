"""`estimate --front-end ikol`: the IKOL network (random weights in the authors' checkpoint
layout) through the whole command line: crops of the tracked person, network, IK, motion file."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import roma
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.frontends.blazepose import BlazePose, MirroredPass
from ikol_backend.frontends.ikol_net import IkolNetFrontEnd, person_crop
from ikol_backend.network.ikol24 import IKOL24
from ikol_backend.person import landmarks_box
from tests.tools.random_ikol import write_random_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"


def run_estimate(*args: str | Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    result = subprocess.run([sys.executable, "-m", "ikol_backend", "estimate", *map(str, args), "--events"],
                            capture_output=True, text=True, timeout=300)
    return result, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("ikol") / "ikol24.pth")


def test_network_front_end_writes_a_consistent_motion(checkpoint: Path, tmp_path: Path):
    result, events = run_estimate(SAMPLE, SAMPLE, "-o", tmp_path / "m.npz", "--front-end", "ikol",
                                  "--checkpoint", checkpoint, "--flip-test")
    assert result.returncode == 0, result.stderr
    assert events[0] == {"event": "start", "frames": 2, "front_end": "ikol", "device": "cpu"}
    assert set(events[-1]["summary"]["seconds"]) >= {"decode", "landmarks", "network", "ik", "write"}
    with np.load(tmp_path / "m.npz") as data:
        assert str(data["front_end"]) == "ikol"
        assert data["valid"].tolist() == [True, True]
        poses = data["poses"].reshape(2, 24, 3)
        assert np.isfinite(poses).all() and np.isfinite(data["trans"]).all()
        keypoints = data["keypoints_2d"]
        assert (keypoints[:, :24, 2] == 1).all() and (keypoints[:, 24:] == 0).all()
        width, height = data["image_size"]
        assert (keypoints[:, :24, 0] > -width).all() and (keypoints[:, :24, 0] < 2 * width).all()
        # The joints are the rest skeleton posed by the written rotations, moved by trans.
        body = default_skeleton().to("cpu", torch.float64)
        betas = torch.as_tensor(data["betas"], dtype=torch.float64)[None]
        posed = body.posed_points(torch.as_tensor(poses[:1], dtype=torch.float64), betas)[0, :24]
        assert np.abs(posed.numpy() + data["trans"][0] - data["joints"][0]).max() < 1e-4


def test_network_twist_and_leaf_rotations_reach_the_pose(checkpoint: Path, tmp_path: Path):
    """The network's leaf rotations are written as the leaf joints' rotations (the IK layer
    takes them as given)."""
    result, _ = run_estimate(SAMPLE, "-o", tmp_path / "m.npz", "--front-end", "ikol",
                             "--checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "m.npz") as data:
        poses, camera = data["poses"].reshape(24, 3), data["camera_intrinsics"].astype(np.float64)
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    with BlazePose() as detector, MirroredPass() as mirror:  # as estimate finds the person
        box = landmarks_box(mirror.averaged(rgb, detector.detect(rgb)))
    crop, affine = person_crop(rgb, (box.x0, box.y0, box.x1, box.y1))
    found = IkolNetFrontEnd(checkpoint, torch.device("cpu")).estimate(crop[None], affine[None], camera)
    written = roma.rotvec_to_rotmat(torch.as_tensor(poses[[15, 22, 23, 10, 11]], dtype=torch.float64))
    assert torch.allclose(written, torch.as_tensor(found.leaf_rotmats[0], dtype=torch.float64), atol=1e-4)


def test_network_front_end_needs_a_checkpoint(tmp_path: Path):
    result, events = run_estimate(SAMPLE, "-o", tmp_path / "m.npz", "--front-end", "ikol")
    assert result.returncode == 2
    assert events == [{"event": "error", "code": "bad_option", "message":
                       "The ikol front end needs the network's weights: --checkpoint FILE."}]


def test_a_checkpoint_of_another_model_is_refused_before_any_frame(tmp_path: Path):
    state = dict(IKOL24().state_dict())
    del state["decleaf.weight"], state["decleaf.bias"]
    state["final_layer.weight"] = torch.zeros(29 * 64, 256, 1, 1)
    state["final_layer.bias"] = torch.zeros(29 * 64)
    hybrik = tmp_path / "hybrik.pth"
    torch.save(state, hybrik)
    result, events = run_estimate(SAMPLE, "-o", tmp_path / "m.npz", "--front-end", "ikol",
                                  "--checkpoint", hybrik)
    assert result.returncode == 3
    assert events == [{"event": "error", "code": "checkpoint_invalid", "message": (
        f"{hybrik}: does not fit the IKOL24 network (ResNet-34 backbone, 24 joints): "
        "2 missing keys: decleaf.weight, decleaf.bias; "
        "2 shape mismatches: final_layer.weight is (1856, 256, 1, 1) in the file, "
        "(1536, 256, 1, 1) in the network, final_layer.bias is (1856,) in the file, "
        "(1536,) in the network")}]
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --half is allowed")
def test_half_precision_without_cuda_is_a_usage_error(checkpoint: Path, tmp_path: Path):
    result, events = run_estimate(SAMPLE, "-o", tmp_path / "m.npz", "--front-end", "ikol",
                                  "--checkpoint", checkpoint, "--half")
    assert result.returncode == 2
    assert events == [{"event": "error", "code": "bad_option", "message":
                       "half precision (--half) needs a CUDA device; the network would run on cpu"}]
