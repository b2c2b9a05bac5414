"""Which tracks become motion: one person (`--person K`) or everyone (`--people all`).

Frames here are the tracker's frame numbers (0 for the first frame read).
"""

import numpy as np

from .tracker import Track

START_S = 0.5  # seconds from the first sighting of anyone over which people are ranked by size
MIN_TRACK_S = 0.5  # `--people all`: a track seen over a shorter span is left out


def ranked_at_start(tracks: list[Track], frame_rate: float) -> list[Track]:
    """The tracks seen in the first START_S seconds after anyone is first seen, largest first
    (mean box area over those frames, a frame without them counting 0)."""
    if not tracks:
        return []
    start = min(track.first_frame for track in tracks)
    span = max(1, round(START_S * frame_rate))

    def size(track: Track) -> float:
        return sum(area for frame, area in zip(track.frames, track.areas)
                   if frame < start + span) / span

    return sorted((t for t in tracks if t.first_frame < start + span), key=lambda t: -size(t))


def everyone(tracks: list[Track], frame_rate: float, stills: bool) -> list[Track]:
    """The tracks that are people rather than glimpses: in video, seen from first to last
    over at least MIN_TRACK_S seconds (stills: every track); numbered by first appearance,
    ties by size (larger first)."""
    shortest = 1 if stills else max(1, round(MIN_TRACK_S * frame_rate))
    lasting = [t for t in tracks if t.frames[-1] - t.frames[0] + 1 >= shortest]
    return sorted(lasting, key=lambda t: (t.first_frame, -t.areas[0]))


def frame_spans(frames: list[int]) -> str:
    """Frame numbers as short ranges: [3, 4, 5, 9] -> "3-5, 9"."""
    if not frames:
        return ""
    breaks = np.flatnonzero(np.diff(frames) != 1)
    starts = [frames[0], *(frames[i + 1] for i in breaks)]
    ends = [*(frames[i] for i in breaks), frames[-1]]
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts, ends))
