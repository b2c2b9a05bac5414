"""Filling frames without the person, and One-Euro smoothing over time."""

import numpy as np
import pytest
import roma
import torch

from ikol_backend.temporal import cutoff_for_strength, fill_missing, one_euro, same_hemisphere, unit


def test_hold_takes_the_last_valid_frame_and_the_first_before_it():
    values = np.arange(6, dtype=float).reshape(6, 1, 1)
    valid = np.array([False, True, False, False, True, False])
    held = fill_missing(values, valid, "hold")
    assert held.ravel().tolist() == [1, 1, 1, 1, 4, 4]


def test_interpolate_is_linear_between_valid_frames_and_held_at_the_ends():
    values = np.array([0, 10, 0, 0, 40, 0], dtype=float).reshape(6, 1, 1)
    valid = np.array([False, True, False, False, True, False])
    filled = fill_missing(values, valid, "interpolate")
    assert filled.ravel().tolist() == [10, 10, 20, 30, 40, 40]


def test_none_leaves_values_alone_and_valid_frames_are_never_changed():
    values = np.random.default_rng(0).normal(size=(7, 29, 3))
    valid = np.array([1, 0, 1, 1, 0, 0, 1], bool)
    assert np.array_equal(fill_missing(values, valid, "none"), values)
    for mode in ("hold", "interpolate"):
        assert np.array_equal(fill_missing(values, valid, mode)[valid], values[valid])


def test_zero_strength_is_refused_and_strength_lowers_the_cutoff():
    with pytest.raises(ValueError):
        cutoff_for_strength(0.0)
    cutoffs = [cutoff_for_strength(s) for s in (0.1, 0.5, 1.0)]
    assert cutoffs == sorted(cutoffs, reverse=True)


def test_one_euro_removes_most_jitter_from_a_still_point_and_follows_a_move():
    rng = np.random.default_rng(1)
    frames = 300
    truth = np.zeros((frames, 1, 3))
    truth[150:, 0, 0] = np.linspace(0, 1.5, 150)  # still 5 s, then 0.3 m/s at 30 fps
    noisy = truth + rng.normal(scale=0.01, size=truth.shape)
    jitter = {}
    for strength in (0.5, 1.0):
        smoothed = one_euro(noisy, 30.0, cutoff_for_strength(strength))
        jitter[strength] = np.std(smoothed[20:150] - truth[20:150]) / np.std(noisy[20:150] - truth[20:150])
        assert np.abs(smoothed[-1] - truth[-1]).max() < 0.05  # m: lag while moving stays small
    assert jitter[0.5] < 0.55 and jitter[1.0] < 0.3


def test_one_euro_restarts_after_an_invalid_frame_and_passes_it_through():
    values = np.array([0.0, 0.0, 9.0, 5.0, 5.0]).reshape(5, 1, 1)
    valid = np.array([True, True, False, True, True])
    out = one_euro(values, 30.0, 0.5, valid=valid)
    assert out[2, 0, 0] == 9.0
    assert out[3, 0, 0] == 5.0  # a fresh start, not pulled towards the frames before the gap


def test_quaternions_smoothed_in_one_hemisphere_stay_a_steady_rotation():
    """q and -q alternating (one rotation) must not average to nonsense."""
    rotation = roma.rotvec_to_unitquat(torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)).numpy()
    signs = np.array([1, -1] * 10, dtype=float)[:, None, None]
    flipping = signs * rotation[None]
    smoothed = unit(one_euro(same_hemisphere(flipping), 30.0, cutoff_for_strength(1.0)))
    assert np.allclose(np.abs(np.sum(smoothed * rotation[None], axis=-1)), 1.0, atol=1e-9)
