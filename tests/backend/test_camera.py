"""Camera intrinsics and the root translation fit."""

import numpy as np

from ikol_backend.camera import CAMERA_TO_MODEL, fit_translation, intrinsics


def project(points_model: np.ndarray, camera: np.ndarray) -> np.ndarray:
    points = points_model @ CAMERA_TO_MODEL.T
    pixels = points @ camera.T
    return pixels[:, :2] / pixels[:, 2:]


def test_intrinsics_from_field_of_view():
    camera = intrinsics(640, 480, fov_deg=90.0)
    np.testing.assert_allclose(camera[0, 0], 320.0)
    np.testing.assert_allclose(camera[:2, 2], (320.0, 240.0))


def test_translation_fit_recovers_the_true_translation():
    rng = np.random.default_rng(0)
    body = rng.normal(scale=0.4, size=(29, 3))
    truth = np.array([0.3, -0.2, -4.0])  # in front of the camera: negative Z in the model frame
    camera = intrinsics(512, 384)
    pixels = project(body + truth, camera)
    fitted = fit_translation(body, pixels, np.ones(29), camera)
    np.testing.assert_allclose(fitted, truth, atol=1e-9)


def test_translation_fit_ignores_zero_weight_points():
    rng = np.random.default_rng(1)
    body = rng.normal(scale=0.4, size=(29, 3))
    truth = np.array([-0.5, 0.1, -3.0])
    camera = intrinsics(400, 600)
    pixels = project(body + truth, camera)
    weights = np.ones(29)
    pixels[:5] += 80.0
    weights[:5] = 0.0
    np.testing.assert_allclose(fit_translation(body, pixels, weights, camera), truth, atol=1e-9)


def test_focal_length_overrides_the_field_of_view():
    camera = intrinsics(640, 480, fov_deg=90.0, focal_px=1000.0)
    np.testing.assert_allclose(camera[[0, 1], [0, 1]], 1000.0)
