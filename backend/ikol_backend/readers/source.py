"""One frame source for whatever the user gave: image files, an image folder or a video."""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ..errors import BackendError
from .frames import Frame, FrameRange
from .image_files import IMAGE_SUFFIXES, ImageSource, list_images
from .images import check_exists
from .video import VIDEO_SUFFIXES, VideoSource


class FrameSource(Protocol):
    """Frames streamed one at a time; iterating again starts over.

    `paths`: the files frames come from (`Frame.index` indexes it for images).
    `frame_count`: frames an iteration yields (after range and stride), None if not known.
    `fps`: the source's frames per second (before stride); None for images.
    `fps_note`: why `fps` is a stated default rather than the container's, or None.
    `frame_size`: (width, height) in pixels of the first full-resolution frame.
    `damage_note`: after an iteration, what a damaged input lost (frames that did not decode
    and where), or None; meant for a `warning` event.
    """

    paths: list[Path]
    frame_count: int | None
    fps: float | None
    fps_note: str | None
    frame_size: tuple[int, int]
    damage_note: str | None

    def __iter__(self) -> Iterator[Frame]: ...


def open_source(inputs: Sequence[str | Path],
                frame_range: FrameRange = FrameRange()) -> FrameSource:
    """Open image files (any mix of formats, in the order given), one image folder (natural
    order) or one video file, checking every path and decoding the first frame."""
    paths = [Path(item) for item in inputs]
    if not paths:
        raise BackendError("input_not_found", "No input given.")
    if len(paths) == 1 and paths[0].is_dir():
        images = list_images(paths[0])
        for path in images:
            _check_not_empty(path)
        return ImageSource(images, frame_range)
    for path in paths:
        if path.is_dir():
            raise BackendError("input_unsupported",
                               f"A folder must be given alone, not with other inputs: {path}")
        check_exists(path)
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES and len(paths) > 1:
            raise BackendError("input_unsupported",
                               f"A video must be given alone, not with other inputs: {path}")
        if suffix not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
            raise BackendError(
                "input_unsupported",
                f"Not an image or video file: {path} (images: "
                f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))})",
            )
        _check_not_empty(path)
    if paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return VideoSource(paths[0], frame_range)
    return ImageSource(paths, frame_range)


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise BackendError("input_unreadable", f"Input is empty (0 bytes): {path}")
