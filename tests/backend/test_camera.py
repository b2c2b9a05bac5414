"""Camera intrinsics."""

import numpy as np

from ikol_backend.camera import intrinsics


def test_intrinsics_from_field_of_view():
    camera = intrinsics(640, 480, fov_deg=90.0)
    np.testing.assert_allclose(camera[0, 0], 320.0)
    np.testing.assert_allclose(camera[:2, 2], (320.0, 240.0))


def test_focal_length_overrides_the_field_of_view():
    camera = intrinsics(640, 480, fov_deg=90.0, focal_px=1000.0)
    np.testing.assert_allclose(camera[[0, 1], [0, 1]], 1000.0)
