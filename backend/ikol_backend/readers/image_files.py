"""Still images as a frame source: files in the order given, or a folder in natural order."""

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import BackendError
from .frames import Frame, FrameRange
from .images import read_image

# What OpenCV decodes to 8-bit colour here; a folder's other files are ignored.
IMAGE_SUFFIXES = frozenset({
    ".bmp", ".dib", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".ras",
    ".sr", ".tif", ".tiff", ".webp",
})


def natural_key(path: Path) -> tuple[tuple[str | int, ...], str]:
    """Sort key that orders runs of digits by value (frame2 before frame10), ignoring case."""
    parts = re.split(r"(\d+)", path.name.casefold())
    # Splitting on a captured group puts the digit runs at the odd places.
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), path.name


def list_images(folder: Path) -> list[Path]:
    """The image files directly in `folder` (hidden files skipped), in natural order."""
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        raise BackendError("input_unreadable",
                           f"Cannot read folder ({error.strerror}): {folder}") from error
    images = [path for path in entries
              if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
              and path.is_file()]
    if not images:
        raise BackendError(
            "input_unsupported",
            f"No image files in folder: {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})",
        )
    return sorted(images, key=natural_key)


class ImageSource:
    """Frames from still images, each decoded when iteration reaches it.

    The first selected image is decoded on opening, to fail early and learn the frame size;
    that decoded frame is handed to the first iteration instead of being decoded again.
    """

    def __init__(self, paths: list[Path], frame_range: FrameRange = FrameRange()):
        self.paths = paths
        self._indices = frame_range.within(len(paths))
        if not self._indices:
            raise BackendError(
                "bad_frame_range",
                f"Frame range starts at frame {frame_range.start}, "
                f"but the input has {len(paths)} images",
            )
        self.frame_count: int | None = len(self._indices)
        self.fps: float | None = None  # stills have no frame rate: the caller picks one
        self.fps_note: str | None = None
        self.damage_note: str | None = None  # a damaged image is an error, never a note
        self._first: Frame | None = self._read(self._indices[0])
        height, width = self._first.rgb.shape[:2]
        self.frame_size = (width, height)  # pixels, of the first frame (images may differ)

    def __iter__(self) -> Iterator[Frame]:
        first, self._first = self._first, None
        yield first if first is not None else self._read(self._indices[0])
        for index in self._indices[1:]:
            yield self._read(index)

    def _read(self, index: int) -> Frame:
        return Frame(index, read_image(self.paths[index]), None)
