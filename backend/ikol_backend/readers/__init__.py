"""Readers: turn user files into a stream of RGB frames.

`open_source(inputs, FrameRange(start, stop, stride))` takes image files, one image folder or
one video and checks them up front; iterating the source yields `Frame`s one at a time, so a
long clip never sits in memory whole. `downscaled(rgb)` gives the front end a copy whose long
side is at most 1280 pixels, with the scale that maps its pixel coordinates back.
`images.read_image` and `images.check_exists` read and check a single still image.
"""

from .frames import DEFAULT_MAX_SIDE, Frame, FrameRange, downscaled
from .source import FrameSource, open_source

__all__ = ["DEFAULT_MAX_SIDE", "Frame", "FrameRange", "FrameSource", "downscaled", "open_source"]
