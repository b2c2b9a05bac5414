"""Synthetic clips for the pipeline benchmark: the sample photo walking across a plain canvas.

Each frame is a canvas of one colour (the photo's wall) of the asked size, with
samples/person.png pasted on it, scaled so the person is about 2/3 of the frame height, at a
horizontal place that goes from the left edge to the right edge and back every
WALK_PERIOD_S seconds. With several people, each further one is smaller (PEOPLE_FRACTIONS:
further away), mirrored every other one, and walks its own period (crossing the others and
passing behind the nearer ones: the nearest is pasted last). Clips are MP4 ('mp4v'), written to a cache folder under a name that
says the size, length and generator version, so a later run reuses them. Nothing is
downloaded and no media is committed.
"""

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "person.png"
PERSON_HEIGHT_PX = 355  # the person's height in the sample photo (samples/README.md)
PERSON_FRACTION = 2 / 3  # of the frame height
PEOPLE_FRACTIONS = (2 / 3, 0.55, 0.45, 0.38)  # of the frame height, nearest first
FPS = 30.0
WALK_PERIOD_S = 8.0  # left edge to right edge and back
GENERATOR_VERSION = 1  # part of the file name: change it when the frames change
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "ikol-bench-clips"


def parse_resolution(text: str) -> tuple[int, int]:
    """(width, height) in pixels from "720p", "1080p" or "WIDTHxHEIGHT"."""
    if text in RESOLUTIONS:
        return RESOLUTIONS[text]
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ValueError(f"resolution {text!r}: expected 720p, 1080p or WIDTHxHEIGHT, e.g. 320x240")
    return int(width), int(height)


def walk_clip(size: tuple[int, int], frames: int, cache: Path = DEFAULT_CACHE,
              people: int = 1) -> Path:
    """The clip of `frames` frames at FPS and `size` (width, height) pixels with `people`
    people walking (1 to len(PEOPLE_FRACTIONS)), written if missing."""
    width, height = size
    crowd = f"{people}people_" if people > 1 else ""
    path = cache / f"walk_{crowd}{width}x{height}_{frames}f_v{GENERATOR_VERSION}.mp4"
    if not path.exists():  # written whole or not at all, so an existing file is complete
        cache.mkdir(parents=True, exist_ok=True)
        write_walk_clip(path, size, frames, people)
    return path


def write_walk_clip(path: Path, size: tuple[int, int], frames: int, people: int = 1) -> None:
    """Write the walking clip to `path` (a temporary name beside it, then renamed) and check
    that OpenCV decodes it back with the right size and length."""
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, not {frames}")
    if not 1 <= people <= len(PEOPLE_FRACTIONS):
        raise ValueError(f"1 to {len(PEOPLE_FRACTIONS)} people, not {people}")
    width, height = size
    photo = cv2.imread(str(SAMPLE))
    walkers = []  # (sprite, top, travel, period s), farthest first
    for number in reversed(range(people)):
        scale = PEOPLE_FRACTIONS[number] * height / PERSON_HEIGHT_PX
        sprite = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        sprite = sprite[:, ::-1] if number % 2 else sprite
        sprite_height, sprite_width = sprite.shape[:2]
        if sprite_width > width or sprite_height > height:
            raise ValueError(f"{width}x{height} is too narrow for the person "
                             f"({sprite_width}x{sprite_height} px at 2/3 of the frame height)")
        top = (height - sprite_height) // 2
        walkers.append((np.ascontiguousarray(sprite), top, width - sprite_width,
                        WALK_PERIOD_S * (1 + 0.37 * number)))
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.median(photo[:8].reshape(-1, 3), axis=0)  # the wall behind the people
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write MP4 (mp4v) to {partial}")
        for k in range(frames):
            frame = canvas.copy()
            for number, (sprite, top, travel, period) in enumerate(walkers):
                phase = (k / FPS / period + 0.5 * number) % 1.0
                left = round(travel * (1.0 - abs(1.0 - 2.0 * phase)))  # 0 -> travel -> 0
                frame[top:top + sprite.shape[0], left:left + sprite.shape[1]] = sprite
            writer.write(frame)
        writer.release()
        check_decodes(partial, size, frames)
        os.replace(partial, path)
    finally:
        writer.release()
        partial.unlink(missing_ok=True)


def check_decodes(path: Path, size: tuple[int, int], frames: int) -> None:
    """Raise unless OpenCV reads `path` back as `frames` frames of `size` (width, height)."""
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = capture.read()
    finally:
        capture.release()
    if not ok or (first.shape[1], first.shape[0]) != size or count != frames:
        found = "nothing" if not ok else f"{count} frames of {first.shape[1]}x{first.shape[0]}"
        raise RuntimeError(f"{path}: OpenCV decodes {found}, expected {frames} of {size[0]}x{size[1]}")
