"""Foot lock: find when a foot is planted and pin it there by bending its leg. No bpy here.

World space (Blender: Z up, metres), one row per frame. A foot is planted while its ankle is
low and slow, for at least MIN_CONTACT_FRAMES frames: low, within HEIGHT_FRACTION of a leg
length above the ankle's ground level around that moment (a low percentile, GROUND_PERCENTILE,
of its heights within NEIGHBOURHOOD_S seconds either side: it follows a rising floor or a
tilted camera, and a few glitch frames do not move it); slow, horizontal and vertical speeds
each under SPEED_FRACTION leg lengths per second. During a contact the ankle is pinned to its mean
horizontal position over that contact (its height is left alone); the pin fades in and out over
BLEND_FRAMES frames on either side. The thigh and shin then turn so that the ankle reaches the
pin (two-bone IK: lengths kept, the knee stays in its own bend plane); the foot keeps its world
rotation.
"""

import numpy as np

from .transfer import rotation_between

HEIGHT_FRACTION = 0.06
SPEED_FRACTION = 0.6
NEIGHBOURHOOD_S = 1.0
GROUND_PERCENTILE = 10.0
MIN_CONTACT_FRAMES = 2
BLEND_FRAMES = 3


def horizontal_speed(ankle: np.ndarray, frame_rate: float) -> np.ndarray:
    """(F, 3) positions -> (F,) horizontal speed, metres per second (central differences)."""
    if len(ankle) < 2:
        return np.zeros(len(ankle))
    return np.linalg.norm(np.gradient(ankle[:, :2], axis=0), axis=1) * frame_rate


def vertical_speed(ankle: np.ndarray, frame_rate: float) -> np.ndarray:
    """(F, 3) positions -> (F,) vertical speed, metres per second (central differences)."""
    if len(ankle) < 2:
        return np.zeros(len(ankle))
    return np.abs(np.gradient(ankle[:, 2])) * frame_rate


def ground_level(height: np.ndarray, frame_rate: float) -> np.ndarray:
    """(F,) ankle heights -> (F,) the ankle's ground level at each frame: the
    GROUND_PERCENTILE-th percentile of its heights within NEIGHBOURHOOD_S seconds either side."""
    reach = max(1, round(NEIGHBOURHOOD_S * frame_rate))
    padded = np.pad(np.asarray(height, dtype=np.float64), reach, constant_values=np.nan)
    around = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1)
    return np.nanpercentile(around, GROUND_PERCENTILE, axis=1)


def contacts(ankle: np.ndarray, frame_rate: float, leg_length: float) -> np.ndarray:
    """(F, 3) ankle path -> (F,) True where the foot is planted."""
    low = ankle[:, 2] - ground_level(ankle[:, 2], frame_rate) < HEIGHT_FRACTION * leg_length
    slow = ((horizontal_speed(ankle, frame_rate) < SPEED_FRACTION * leg_length)
            & (vertical_speed(ankle, frame_rate) < SPEED_FRACTION * leg_length))
    planted = low & slow
    for start, stop in _runs(planted):
        if stop - start < MIN_CONTACT_FRAMES:
            planted[start:stop] = False
    return planted


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def pinned_goals(ankle: np.ndarray, planted: np.ndarray, blend: int = BLEND_FRAMES) -> np.ndarray:
    """(F, 3) where each ankle should be: pinned during contacts, blended around them."""
    offset = np.zeros_like(ankle)
    weight = np.zeros(len(ankle))
    for start, stop in _runs(planted):
        pin = ankle[start:stop, :2].mean(axis=0)
        offset[start:stop, :2] = pin - ankle[start:stop, :2]
        weight[start:stop] = 1.0
        for step in range(1, blend + 1):
            fade = 1.0 - step / (blend + 1)
            for frame, edge in ((start - step, start), (stop - 1 + step, stop - 1)):
                if 0 <= frame < len(ankle) and fade > weight[frame]:
                    weight[frame] = fade
                    offset[frame, :2] = fade * (pin - ankle[edge, :2])
    return ankle + offset


def leg_turns(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray,
              forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World turns of thigh and shin that bring the ankle to `goal` (two-bone IK).

    Args:
        hip, knee, ankle: (F, 3) joint positions as posed. goal: (F, 3) where the ankle goes.
        forward: (F, 3) the way the knee bends when the leg is straight (the body's front).

    Returns:
        (F, 3, 3) turn of the thigh about the hip and (F, 3, 3) turn of the shin, both to be
        applied on the left of the bones' world rotations; identity where goal == ankle.
    """
    thigh, shin = np.linalg.norm(knee - hip, axis=1), np.linalg.norm(ankle - knee, axis=1)
    to_goal = goal - hip
    distance = np.linalg.norm(to_goal, axis=1)
    along = to_goal / np.maximum(distance, 1e-12)[:, None]
    reach = np.clip(distance, np.abs(thigh - shin) + 1e-9, thigh + shin - 1e-9)
    bend = knee - hip
    bend -= np.einsum("fi,fi->f", bend, along)[:, None] * along
    straight = np.linalg.norm(bend, axis=1) < 1e-6 * thigh
    hint = forward - np.einsum("fi,fi->f", forward, along)[:, None] * along
    bend = np.where(straight[:, None], hint, bend)
    bend /= np.linalg.norm(bend, axis=1, keepdims=True)
    down = (thigh**2 - shin**2 + reach**2) / (2.0 * reach)
    out = np.sqrt(np.maximum(thigh**2 - down**2, 0.0))
    new_knee = hip + down[:, None] * along + out[:, None] * bend
    new_ankle = hip + reach[:, None] * along
    moved = np.linalg.norm(goal - ankle, axis=1) > 0.0
    identity = np.broadcast_to(np.eye(3), (len(hip), 3, 3))
    moved = moved[:, None, None]
    thigh_turn = np.where(moved, rotation_between(knee - hip, new_knee - hip), identity)
    shin_turn = np.where(moved, rotation_between(ankle - knee, new_ankle - new_knee), identity)
    return thigh_turn, shin_turn


def planted_steps(ankle: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """Horizontal distances (m) the ankle moves from one planted frame to the next planted one."""
    steps = np.linalg.norm(np.diff(ankle[:, :2], axis=0), axis=1)
    return steps[planted[1:] & planted[:-1]]
