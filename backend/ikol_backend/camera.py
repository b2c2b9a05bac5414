"""The pinhole camera of the footage (the body is placed through it by `ik.image_fit`).

Two frames appear here:
- camera frame: x to the image's right, y down, z along the viewing direction (OpenCV);
- model (scene) frame: Y up, Z towards the camera, X to the image's right. The camera sits at
  the origin and looks along -Z. A body facing the camera has its SMPL axes aligned with it.
Both in metres. One is the other turned half a turn about X.
"""

import math

import numpy as np

CAMERA_TO_MODEL = np.diag([1.0, -1.0, -1.0])  # its own inverse

DEFAULT_FOV_DEG = 55.0  # across the image's long side: the focal length's prior


def intrinsics(
    width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG, focal_px: float | None = None
) -> np.ndarray:
    """(3, 3) camera matrix in pixels, principal point at the image centre.

    The focal length is `focal_px` when given, else the one that spans `fov_deg` (degrees)
    across the image's long side.
    """
    focal = focal_px or 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
