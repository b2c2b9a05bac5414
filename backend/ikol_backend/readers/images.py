"""Reading still images."""

from pathlib import Path

import cv2
import numpy as np

from ..errors import BackendError


def check_exists(path: Path) -> None:
    """Fail early, before any model loads, on a path that is missing or not a file."""
    if not path.exists():
        raise BackendError("input_not_found", f"Input not found: {path}")
    if not path.is_file():
        raise BackendError("input_unreadable", f"Input is not a file: {path}")


def read_image(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, with its EXIF orientation applied."""
    check_exists(path)
    # imread applies the EXIF orientation unless told otherwise.
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BackendError(
            "input_unreadable", f"Not an image file (or a damaged one): {path}"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
