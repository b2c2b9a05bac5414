"""Across frames: filling frames without the person, and One-Euro smoothing that keeps
rotations rotations.

Arrays are (N, K, C): N frames, K items (points, joints), C components per item (3 for a point,
2 for a (cos, sin) angle, 4 for a unit quaternion). Frames are evenly spaced in time.
"""

import math

import numpy as np

from .options import FILL_MODES
# --smooth 0..1 sets the One-Euro cutoff at rest between these (Hz), on a log scale.
LIGHTEST_CUTOFF_HZ = 20.0
HEAVIEST_CUTOFF_HZ = 0.25
SPEED_COEFFICIENT = 1.5  # One-Euro beta: extra cutoff (Hz) per unit of speed (units/s)
DERIVATIVE_CUTOFF_HZ = 1.0


def fill_missing(values: np.ndarray, valid: np.ndarray, mode: str) -> np.ndarray:
    """Values for the frames where `valid` is False, taken from the valid ones.

    "hold": the last valid frame's values (the first valid one's before it); "interpolate":
    linear in time between the valid frames on either side, held at the ends; "none": a copy,
    untouched. Unit vectors (quaternions, (cos, sin) angles) come back unnormalised: pass
    them through `unit` after.
    """
    if mode not in FILL_MODES:
        raise ValueError(f"fill mode must be one of {FILL_MODES}, got {mode!r}")
    out = np.array(values, dtype=np.float64, copy=True)
    known = np.flatnonzero(valid)
    if mode == "none" or len(known) == 0 or len(known) == len(valid):
        return out
    frames = np.arange(len(valid))
    if mode == "hold":
        source = known[np.clip(np.searchsorted(known, frames, side="right") - 1, 0, None)]
        return out[source]
    flat = out.reshape(len(valid), -1)
    for column in range(flat.shape[1]):
        flat[:, column] = np.interp(frames, known, flat[known, column])
    return flat.reshape(out.shape)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Each item's components scaled to length 1 (quaternions, (cos, sin) angles)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def same_hemisphere(quaternions: np.ndarray) -> np.ndarray:
    """(N, K, 4) unit quaternions with signs flipped so each is on the side of the frame
    before (q and -q are the same rotation); smoothing then never averages across a flip."""
    out = np.array(quaternions, dtype=np.float64, copy=True)
    for i in range(1, len(out)):
        flip = np.sum(out[i] * out[i - 1], axis=-1) < 0
        out[i, flip] *= -1
    return out


def cutoff_for_strength(strength: float) -> float:
    """The One-Euro cutoff at rest (Hz) for `--smooth` strength in (0, 1]."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"smoothing strength must be in (0, 1], got {strength}")
    return LIGHTEST_CUTOFF_HZ * (HEAVIEST_CUTOFF_HZ / LIGHTEST_CUTOFF_HZ) ** strength


def one_euro(
    values: np.ndarray, frame_rate: float, min_cutoff_hz: float,
    beta: float = SPEED_COEFFICIENT, valid: np.ndarray | None = None,
) -> np.ndarray:
    """One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) run forward in time.

    A low-pass filter per item whose cutoff rises with the item's speed (the length of its
    C-component velocity), so still poses are smoothed hard and fast moves lag little.
    Frames where `valid` is False are passed through and restart the filter after them.

    Args:
        values: (N, K, C) evenly spaced samples.
        frame_rate: samples per second.
        min_cutoff_hz: the cutoff at rest; lower is smoother.
        beta: extra cutoff (Hz) per unit/s of speed.
    """
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    valid = np.ones(len(values), bool) if valid is None else np.asarray(valid, bool)
    period = 1.0 / frame_rate
    speed_alpha = _alpha(DERIVATIVE_CUTOFF_HZ, period)
    previous: np.ndarray | None = None
    velocity = np.zeros(values.shape[1:])
    for i in range(len(values)):
        if not valid[i]:
            previous = None
            continue
        if previous is None:
            previous, velocity = values[i], np.zeros(values.shape[1:])
            continue
        raw_velocity = (values[i] - previous) / period
        velocity = speed_alpha * raw_velocity + (1 - speed_alpha) * velocity
        speed = np.linalg.norm(velocity, axis=-1, keepdims=True)
        alpha = _alpha(min_cutoff_hz + beta * speed, period)
        previous = alpha * values[i] + (1 - alpha) * previous
        out[i] = previous
    return out


def _alpha(cutoff_hz: float | np.ndarray, period: float) -> float | np.ndarray:
    """Smoothing factor of a first-order low-pass at `cutoff_hz` for samples `period` apart."""
    time_constant = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + time_constant / period)
