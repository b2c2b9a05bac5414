"""The footage a motion was estimated from, as Blender shows it behind the matched camera and
under renders: still images (one per source frame) or a movie (a file, or a Movie Clip already
in the .blend).

The backend reads an image folder as its images in natural order (docs/protocol.md); the same
rule here maps a motion's `frame_index` to the folder's files. No bpy here.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path

# The backend's input suffixes (docs/protocol.md); a test keeps them equal to the backend's.
IMAGE_SUFFIXES = frozenset({
    ".bmp", ".dib", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".ras",
    ".sr", ".tif", ".tiff", ".webp",
})
VIDEO_SUFFIXES = frozenset({".avi", ".mkv", ".mov", ".mp4", ".webm"})


@dataclass(frozen=True)
class Footage:
    """Where the source frames are.

    Attributes:
        images: still images; frame_index i of the motion is images[i].
        movie: a movie file; frame_index i is its frame i (from 0).
        clip: the name of a Movie Clip in the .blend (its own timing is kept).
    """

    images: tuple[Path, ...] = ()
    movie: Path | None = None
    clip: str | None = None


def footage_of(inputs: list[Path]) -> Footage:
    """The footage of the backend inputs `inputs`: one image folder, one movie, or images."""
    if len(inputs) == 1 and inputs[0].is_dir():
        return Footage(images=tuple(folder_images(inputs[0])))
    if len(inputs) == 1 and inputs[0].suffix.lower() in VIDEO_SUFFIXES:
        return Footage(movie=inputs[0])
    return Footage(images=tuple(inputs))


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in `folder` (hidden ones skipped), in natural order."""
    images = [path for path in folder.iterdir()
              if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
              and path.is_file()]
    return sorted(images, key=natural_key)


def natural_key(path: Path) -> tuple[tuple[str | int, ...], str]:
    """Sort key ordering runs of digits by value (frame2 before frame10), case ignored."""
    parts = re.split(r"(\d+)", path.name.casefold())
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), path.name


def same_picture(stored: tuple[int, int], read: tuple[int, int]) -> bool:
    """Whether footage stored at `stored` (width, height) pixels was read at `read` whole or
    reduced by 2, 4 or 8 (the backend decodes images above its pixel budget reduced, rounding
    up as libjpeg does): the background still lines up with the camera."""
    return any(tuple(math.ceil(side / factor) for side in stored) == tuple(read)
               for factor in (1, 2, 4, 8))
