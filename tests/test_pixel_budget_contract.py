"""An image the backend decodes reduced (above its pixel budget) still lines up behind the
add-on's camera: the add-on accepts the reduced size as the same picture, a rotated one not."""

from pathlib import Path

import cv2
import numpy as np

from ikol_backend.readers import images
from ikol_blender.footage import same_picture


def test_a_reduced_decode_is_the_same_picture_to_the_add_on(tmp_path: Path, monkeypatch):
    photo = tmp_path / "photo.jpg"
    stored = (301, 203)  # odd sides: libjpeg rounds the reduced size up
    cv2.imwrite(str(photo), np.full((stored[1], stored[0], 3), 128, np.uint8))
    for budget, factor in ((20_000, 2), (15_000, 4), (3_000, 8)):
        monkeypatch.setattr(images, "MAX_DECODED_PIXELS", budget)
        height, width = images.read_image(photo).shape[:2]
        assert (width, height) == (-(-stored[0] // factor), -(-stored[1] // factor))
        assert same_picture(stored, (width, height))
        assert not same_picture(stored[::-1], (width, height))  # turned by its metadata
    assert same_picture(stored, stored) and not same_picture(stored, (300, 203))
