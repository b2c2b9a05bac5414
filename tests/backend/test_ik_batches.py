"""A clip longer than one IK batch: the batches' seams leave no jump in the motion."""

import numpy as np
import torch
import pytest

from ikol_backend import estimate
from ikol_backend.observations import Observations
from tests.backend.test_image_fit import clip

FRAMES = 72


def solved_joints(monkeypatch: pytest.MonkeyPatch, batch: int, overlap: int) -> np.ndarray:
    """(FRAMES, 24, 3) posed joints (camera's world, metres) of `estimate._solve` on a smooth
    synthetic clip at 30 frames/s, fitted in IK batches of `batch` frames sharing `overlap`."""
    monkeypatch.setattr(estimate, "IK_BATCH", batch)
    monkeypatch.setattr(estimate, "IK_OVERLAP", overlap)
    body, _, _, targets, pixels, camera = clip(FRAMES, seed=4)
    keypoints = np.concatenate([pixels.numpy(), np.ones((FRAMES, 29, 1))], -1)
    seen = Observations(frame_index=np.arange(FRAMES), valid=np.ones(FRAMES, bool),
                        points=targets.numpy(), keypoints_2d=keypoints)
    solved = estimate._solve(body.to("cpu", torch.float32), seen, seen.valid,
                             camera.numpy(), torch.device("cpu"), 30.0, 0.25)
    return solved["joints"].astype(np.float64) + solved["trans"][:, None]


def acceleration(joints: np.ndarray) -> np.ndarray:
    """(FRAMES - 2,) the largest second difference over the joints at each frame, metres."""
    return np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1).max(-1)


def test_batches_of_a_clip_are_coupled_across_their_seams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 40 frames sharing 16 (seams faded over frames 24-39 and 48-63): no frame
    accelerates more than 5 mm/frame^2 beyond the same frame of the clip fitted in one batch
    (the synthetic clip's noise alone gives 27-163 mm/frame^2); batches sharing no frames
    jump at their seams."""
    whole = acceleration(solved_joints(monkeypatch, FRAMES, 16))
    batched = acceleration(solved_joints(monkeypatch, 40, 16))
    cut = acceleration(solved_joints(monkeypatch, 40, 0))
    assert (batched - whole).max() < 0.005
    assert (cut - whole).max() > 0.05
