"""Reading still images, within a pixel budget, refusing damaged ones."""

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import BackendError
from .jpeg import jpeg_is_complete

# At most this many pixels are decoded per image (about 150 MB as 8-bit colour, twice that
# while converting to RGB), whatever the file's size. Larger JPEG images are decoded reduced
# by 2, 4 or 8 (libjpeg's scaled decoding, which never holds the full size); other formats
# cannot be decoded reduced, so larger ones are refused. The pose model sees 1280 pixels on the
# long side at most, so 50 megapixels leave plenty for the network's crop.
MAX_DECODED_PIXELS = 50_000_000
REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def check_exists(path: Path) -> None:
    """Fail early, before any model loads, on a path that is missing or not a file."""
    if not path.exists():
        raise BackendError("input_not_found", f"Input not found: {path}")
    if not path.is_file():
        raise BackendError("input_unreadable", f"Input is not a file: {path}")


def read_image(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, with its EXIF orientation applied.

    An image above MAX_DECODED_PIXELS comes back reduced (JPEG) or is refused; a JPEG cut
    short is refused as damaged.
    """
    check_exists(path)
    reduction = 1
    header = stored_size(path)
    if header is not None:
        width, height, kind = header
        reduction = _reduction(path, width, height, kind)
        if kind == "JPEG" and not jpeg_is_complete(path):
            raise BackendError("input_unreadable", f"Image is damaged (cut short): {path}")
    try:  # imread applies the EXIF orientation unless told otherwise
        bgr = cv2.imread(str(path), REDUCED_COLOR[reduction])
    except cv2.error:  # OpenCV's own size limits, seen in the header
        bgr = None
    if bgr is None:
        raise BackendError(
            "input_unreadable", f"Not an image file (or a damaged one): {path}"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def stored_size(path: Path) -> tuple[int, int, str] | None:
    """(width, height, format) as the file's header states them, without decoding the pixels;
    None when the header is not one Pillow knows."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only the header is read: no decompression bomb here
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _reduction(path: Path, width: int, height: int, kind: str) -> int:
    """1, or the factor a JPEG above the pixel budget is decoded reduced by; refuses an image
    that cannot be decoded within the budget."""
    pixels = width * height
    if pixels <= MAX_DECODED_PIXELS:
        return 1
    size = f"{width}x{height} pixels ({pixels / 1e6:.0f} megapixels)"
    budget = f"{MAX_DECODED_PIXELS / 1e6:.0f} megapixels"
    if kind != "JPEG":
        raise BackendError(
            "input_unsupported",
            f"Image is too large: {size}; images above {budget} are read only as JPEG "
            f"(decoded reduced). Scale it down or save it as JPEG: {path}")
    for factor in (2, 4, 8):
        if math.ceil(width / factor) * math.ceil(height / factor) <= MAX_DECODED_PIXELS:
            return factor
    raise BackendError(
        "input_unsupported",
        f"Image is too large: {size}; even decoded at 1/8 it is above {budget}. "
        f"Scale it down: {path}")
