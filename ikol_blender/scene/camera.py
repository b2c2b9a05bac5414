"""A camera matching the footage: the motion file's intrinsics, placed as the backend's camera.

The backend's camera sits at the origin of the model frame looking along -Z with +Y up; in
Blender (Z up) that is the origin, looking along +Y, with +Z up.
"""

import math

import bpy
import numpy as np


def build_camera(name: str, intrinsics: np.ndarray, image_size: tuple[int, int]) -> bpy.types.Object:
    """A camera object with the given (3, 3) pixel intrinsics and (width, height)."""
    width, height = image_size
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "HORIZONTAL" if width >= height else "VERTICAL"
    long_side = max(width, height)
    data.sensor_width = data.sensor_height = 36.0
    focal_px = float(intrinsics[0, 0])  # square pixels assumed
    data.lens = focal_px * 36.0 / long_side
    data.shift_x = (width / 2 - float(intrinsics[0, 2])) / long_side
    data.shift_y = (float(intrinsics[1, 2]) - height / 2) / long_side
    data.clip_start, data.clip_end = 0.05, 200.0
    obj = bpy.data.objects.new(name, data)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    bpy.context.collection.objects.link(obj)
    return obj


def set_render_size(scene: bpy.types.Scene, image_size: tuple[int, int]) -> None:
    scene.render.resolution_x, scene.render.resolution_y = image_size
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
