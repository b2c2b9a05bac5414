"""The pinhole camera of the footage and the root translation fitted through it.

Two frames appear here:
- camera frame: x to the image's right, y down, z along the viewing direction (OpenCV);
- model (scene) frame: Y up, Z towards the camera, X to the image's right. The camera sits at
  the origin and looks along -Z. A body facing the camera has its SMPL axes aligned with it.
Both in metres. One is the other turned half a turn about X.
"""

import math

import numpy as np

CAMERA_TO_MODEL = np.diag([1.0, -1.0, -1.0])  # its own inverse

DEFAULT_FOV_DEG = 55.0  # across the image's long side, when neither focal nor FOV is given


def intrinsics(
    width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG, focal_px: float | None = None
) -> np.ndarray:
    """(3, 3) camera matrix in pixels, principal point at the image centre.

    The focal length is `focal_px` when given, else the one that spans `fov_deg` (degrees)
    across the image's long side.
    """
    focal = focal_px or 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def fit_translation(
    points_model: np.ndarray, pixels: np.ndarray, weights: np.ndarray, camera: np.ndarray
) -> np.ndarray:
    """Translation that puts posed points where they are seen, by linear least squares.

    Solves for t in the model frame so that projecting `points_model + t` lands on `pixels`,
    using the linearised reprojection equations fx (X + tx) = (u - cx) (Z + tz) (and the same
    for y) in the camera frame, each weighted by `weights`.

    Args:
        points_model: (P, 3) posed points relative to the body, model frame, metres.
        pixels: (P, 2) where they are seen.
        weights: (P,) confidence of each point (0 ignores it).
        camera: (3, 3) intrinsics.
    """
    points = points_model @ CAMERA_TO_MODEL.T  # same matrix both ways
    fx, fy, cx, cy = camera[0, 0], camera[1, 1], camera[0, 2], camera[1, 2]
    du, dv = pixels[:, 0] - cx, pixels[:, 1] - cy
    zeros, ones = np.zeros_like(du), np.ones_like(du)
    rows = np.concatenate(
        [np.stack([fx * ones, zeros, -du], 1), np.stack([zeros, fy * ones, -dv], 1)]
    )
    rhs = np.concatenate([du * points[:, 2] - fx * points[:, 0], dv * points[:, 2] - fy * points[:, 1]])
    w = np.sqrt(np.concatenate([weights, weights]))
    t_camera, *_ = np.linalg.lstsq(rows * w[:, None], rhs * w, rcond=None)
    return CAMERA_TO_MODEL @ t_camera
