"""Video files as a frame source, decoded one frame at a time by OpenCV's bundled FFmpeg."""

import math
from collections.abc import Iterator
from pathlib import Path

import cv2

from ..errors import BackendError
from .frames import Frame, FrameRange

VIDEO_SUFFIXES = frozenset({".avi", ".mkv", ".mov", ".mp4", ".webm"})
DEFAULT_FPS = 30.0  # frames/s, used when the container gives no usable rate
# Frames: a gap to the next wanted frame shorter than this is skipped with grab() (decoded,
# not converted); a longer one with a seek. OpenCV's seek decodes from about 16 frames before
# the target plus up to a keyframe interval, so it only pays off across long gaps.
SEEK_MIN_GAP = 300
# A damaged video: decoding stops at the first frame that cannot be decoded. The frames before
# it are kept, with a note, when at least this share of the selected frames decoded; with
# fewer, the video is refused.
MIN_DECODED_SHARE = 0.5
# Frames a container's frame count may overstate (some estimate it from the duration) before a
# video that ends early counts as damaged.
COUNT_SLACK = 1


def frame_rate(reported: float) -> tuple[float, str | None]:
    """The frame rate (frames/s) to use for a container's reported one, and why, if replaced.

    Rates of 1000 and more come from containers that report their millisecond time base.
    """
    if math.isfinite(reported) and 0 < reported < 1000:
        return reported, None
    return DEFAULT_FPS, (f"The video reports no usable frame rate ({reported:g}); "
                         f"assuming {DEFAULT_FPS:g} frames/s.")


class VideoSource:
    """Frames of one video file, decoded while iterating; each iteration opens the file anew.

    On opening, the first frame is decoded to fail early and to learn the frame size.
    `frame_count` is the number of frames the range selects according to the container's frame
    count, which can overstate what a damaged file holds; None when the container gives no
    count or no usable frame rate.

    A damaged file (decoding stops before the container's count): iteration ends at the first
    frame that does not decode. `damage_note` then says how many selected frames were lost and
    from which frame on (None while none were); when fewer than MIN_DECODED_SHARE of the
    selected frames decoded, the end of the iteration raises `input_unreadable` instead.
    """

    def __init__(self, path: Path, frame_range: FrameRange = FrameRange()):
        self.path = path
        self.paths = [path]
        self._range = frame_range
        self.damage_note: str | None = None
        capture = self._open()
        try:
            self.fps, self.fps_note = frame_rate(capture.get(cv2.CAP_PROP_FPS))
            reported_count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
            decoded, bgr = capture.read()
        finally:
            capture.release()
        if not decoded:
            raise BackendError("input_unreadable",
                               f"Video has no frames that can be decoded: {path}")
        self.frame_size = (bgr.shape[1], bgr.shape[0])  # (width, height) in pixels, upright
        self.frame_count: int | None = None
        self._container_count: int | None = None
        if reported_count >= 1 and self.fps_note is None:
            self._container_count = int(reported_count)
            indices = frame_range.within(self._container_count)
            if not indices:
                raise BackendError(
                    "bad_frame_range",
                    f"Frame range starts at frame {frame_range.start}, "
                    f"but the video has {self._container_count} frames: {path}",
                )
            self.frame_count = len(indices)

    def __iter__(self) -> Iterator[Frame]:
        start, stop, stride = self._range.start, self._range.stop, self._range.stride
        self.damage_note = None
        yielded = 0
        capture = self._open()
        try:
            position = 0  # the frame the capture decodes next
            index = start  # the frame to yield next
            while stop is None or index < stop:
                position = _skip(capture, position, index)
                if position < index:
                    break
                decoded, bgr = capture.read()
                if not decoded:
                    break
                yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index / self.fps)
                yielded += 1
                position = index + 1
                index += stride
            ended_early = stop is None or index < stop
        finally:
            capture.release()
        if ended_early:
            self._check_damage(position, yielded)
        if yielded == 0:
            raise BackendError("bad_frame_range",
                               f"Frame range starts at frame {start}, "
                               f"past the end of the video: {self.path}")

    def _check_damage(self, failed_at: int, yielded: int) -> None:
        """Decoding stopped at frame `failed_at`: a note, or an error, if the container says
        the video goes on."""
        count = self._container_count
        if count is None or failed_at >= count - COUNT_SLACK:
            return  # the real end of the video
        selected = self._range.within(count)
        lost = len(range(max(failed_at, selected.start), selected.stop, selected.step))
        if lost == 0:
            return
        where = f"decoding stopped at frame {failed_at} of the {count} the container lists"
        if yielded < MIN_DECODED_SHARE * len(selected):
            raise BackendError(
                "input_unreadable",
                f"Video is damaged: only {yielded} of the {len(selected)} selected frames "
                f"decode ({where}); at least {MIN_DECODED_SHARE:.0%} must"
                + (f". To use the frames before the damage, stop at frame {failed_at} "
                   f"(--stop {failed_at})" if failed_at > selected.start else "")
                + f": {self.path}")
        self.damage_note = (f"Video is damaged: {where}; {lost} of the {len(selected)} "
                            f"selected frames (frame {failed_at} on) are lost: {self.path}")

    def _open(self) -> cv2.VideoCapture:
        # FFmpeg only: other backends read some paths as image-sequence patterns.
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise BackendError(
                "input_unreadable",
                f"Cannot open video (damaged, truncated or not a video): {self.path}",
            )
        # Turn frames upright as the container says (phones record sideways); off by default.
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        return capture


def _skip(capture: cv2.VideoCapture, position: int, index: int) -> int:
    """Move `capture` from frame `position` on to frame `index` without converting the frames
    in between; returns the frame it reached: `index`, or less if decoding stopped first."""
    gap = index - position
    if gap >= SEEK_MIN_GAP and capture.set(cv2.CAP_PROP_POS_FRAMES, index):
        return index
    for _ in range(gap):
        if not capture.grab():
            return position
        position += 1
    return position
