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


def between_frames(points):
    """(..., 3) torch points from the model (scene) frame to the camera frame or back: y and z
    change sign (CAMERA_TO_MODEL is its own inverse)."""
    return points * points.new_tensor(CAMERA_TO_MODEL.diagonal().tolist())


def intrinsics(
    width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG, focal_px: float | None = None
) -> np.ndarray:
    """(3, 3) camera matrix in pixels, principal point at the image centre.

    The focal length is `focal_px` when given, else the one that spans `fov_deg` (degrees)
    across the image's long side.
    """
    focal = focal_px or 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def view_to_camera(pixels: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """(N, 2) pixels -> (N, 3, 3) rotations, model frame, turning a view straight at each pixel
    into the camera's own view.

    A pose model that sees a crop around the person gives 3D as if the camera looked straight
    at the person (BlazePose's world landmarks); the real camera looks along its optical axis,
    so for a person off the image centre the 3D must turn by the angle between the optical
    axis and the ray through the person: the rotation taking (0, 0, 1) onto that ray (camera
    frame), carried into the model frame (Y up, Z towards the camera).
    """
    import roma  # here, not at the top: the command line imports this module before torch
    import torch

    ray = np.concatenate([(pixels - camera[:2, 2]) / np.diag(camera)[:2], np.ones((len(pixels), 1))], 1)
    ray = ray / np.linalg.norm(ray, axis=1, keepdims=True)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sine = np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.arctan2(sine, ray[:, 2:])
    rotvec = axis / np.maximum(sine, 1e-12) * angle
    turn = roma.rotvec_to_rotmat(torch.as_tensor(rotvec, dtype=torch.float64)).numpy()
    return CAMERA_TO_MODEL @ turn @ CAMERA_TO_MODEL

