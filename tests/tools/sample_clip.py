"""Short test footage made from the sample photo: frame k is the photo moved and scaled a
little, with k shown as the grey level of a square in the top-left corner."""

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
FPS = 24.0
MARKER = 32  # pixels: the side of the frame-number square


def marker_level(frame: int) -> int:
    """The grey level (0-255) of frame `frame`'s marker square."""
    return 20 + 35 * frame


def frame_image(frame: int) -> np.ndarray:
    """(H, W, 3) BGR: the photo moved 4k pixels right and scaled by 1 + 0.02k about its centre
    (k = `frame`), its marker square at marker_level(k)."""
    photo = cv2.imread(str(SAMPLE))
    height, width = photo.shape[:2]
    scale = 1.0 + 0.02 * frame
    warp = np.array([[scale, 0.0, (1 - scale) * width / 2 + 4 * frame],
                     [0.0, scale, (1 - scale) * height / 2]])
    image = cv2.warpAffine(photo, warp, (width, height), borderMode=cv2.BORDER_REPLICATE)
    image[:MARKER, :MARKER] = marker_level(frame)
    return image


def write_frames(path: Path, frames: Iterable[np.ndarray], fps: float = FPS, fourcc: str = "mp4v",
                 size: tuple[int, int] | None = None) -> Path:
    """A video of (H, W, 3) uint8 BGR frames through OpenCV; `size` (width, height) defaults to
    the first frame's (give it for a video without frames)."""
    frames = iter(frames)
    first = next(frames, None)
    if size is None:
        size = first.shape[1], first.shape[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    try:
        assert writer.isOpened(), f"this OpenCV cannot write {fourcc} into {path.suffix}"
        if first is not None:
            writer.write(first)
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def write_clip(path: Path, frames: int = 6) -> Path:
    """An MP4 (mp4v) of frame_image(0), ..., frame_image(frames - 1) at FPS."""
    return write_frames(path, (frame_image(frame) for frame in range(frames)))


def write_images(folder: Path, names: list[str]) -> list[Path]:
    """frame_image(k) as folder/names[k] (the suffix picks the format)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in names]
    for frame, path in enumerate(paths):
        cv2.imwrite(str(path), frame_image(frame))
    return paths
