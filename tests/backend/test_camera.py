"""Camera intrinsics."""

import numpy as np

from ikol_backend.camera import intrinsics, view_to_camera


def test_intrinsics_from_field_of_view():
    camera = intrinsics(640, 480, fov_deg=90.0)
    np.testing.assert_allclose(camera[0, 0], 320.0)
    np.testing.assert_allclose(camera[:2, 2], (320.0, 240.0))


def test_focal_length_overrides_the_field_of_view():
    camera = intrinsics(640, 480, fov_deg=90.0, focal_px=1000.0)
    np.testing.assert_allclose(camera[[0, 1], [0, 1]], 1000.0)


def test_view_to_camera_turns_the_straight_view_onto_each_pixels_ray():
    camera = intrinsics(640, 480, focal_px=500.0)
    pixels = np.array([[320.0, 240.0], [600.0, 100.0], [10.0, 470.0]])
    turns = view_to_camera(pixels, camera)
    np.testing.assert_allclose(turns[0], np.eye(3), atol=1e-12)  # the centre: no turn
    for turn, (u, v) in zip(turns, pixels):
        ray = np.array([(u - 320.0) / 500.0, -(v - 240.0) / 500.0, -1.0])  # model frame: Y up, -Z ahead
        np.testing.assert_allclose(turn @ [0.0, 0.0, -1.0], ray / np.linalg.norm(ray), atol=1e-12)
        np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-12)
