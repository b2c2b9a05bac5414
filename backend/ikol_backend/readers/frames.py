"""Frames as readers yield them, the range of frames to read, and downscaling for the front end."""

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import BackendError

DEFAULT_MAX_SIDE = 1280  # pixels: the long side of the copy the front end gets


@dataclass(frozen=True)
class Frame:
    """One full-resolution frame.

    `index`: the frame's place in its source, from 0, before any range or stride is applied
    (a video's frame number; an image's place in the given list or the sorted folder).
    `rgb`: (H, W, 3) uint8 RGB, upright (EXIF or container orientation applied).
    `timestamp`: seconds from the start of a video (index / frame rate); None for images.
    """

    index: int
    rgb: np.ndarray
    timestamp: float | None


@dataclass(frozen=True)
class FrameRange:
    """The frames to read: indices start, start + stride, ... below stop (None: to the end)."""

    start: int = 0
    stop: int | None = None
    stride: int = 1

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise BackendError("bad_frame_range",
                               f"Frame stride must be 1 or more, got {self.stride}.")
        if self.start < 0:
            raise BackendError("bad_frame_range",
                               f"First frame must be 0 or more, got {self.start}.")
        if self.stop is not None and self.stop <= self.start:
            raise BackendError(
                "bad_frame_range",
                f"Frame range is empty: stop ({self.stop}) must be after start ({self.start}).",
            )

    def within(self, count: int) -> range:
        """The selected indices of a source of `count` frames."""
        end = count if self.stop is None else min(self.stop, count)
        return range(self.start, end, self.stride)


def downscaled(rgb: np.ndarray, max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """A copy of `rgb` whose long side is at most `max_side` pixels, and its scale factor.

    `scale` (≤ 1) is downscaled size / full size, the same on both axes. Pixel coordinates
    measured from the top-left image corner (pixel i covers [i, i + 1), as in normalised
    landmarks times the image size) map back exactly: full = downscaled / scale. An image that
    is small enough comes back as is, not copied, with scale 1.0.
    """
    long_side = max(rgb.shape[:2])
    if long_side <= max_side:
        return rgb, 1.0
    scale = max_side / long_side
    # Given fx and fy (no output size), resize maps coordinates by exactly `scale`; the
    # output's long side rounds to max_side. INTER_AREA averages, so no aliasing.
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, scale
