"""Rendering the posed body over the footage (Cycles on the CPU, then an alpha-over)."""

import os
import tempfile
from pathlib import Path

import bpy
import numpy as np


def render_over_photo(
    scene: bpy.types.Scene, camera: bpy.types.Object, photo: Path, output: Path, frame: int,
    samples: int = 16,
) -> None:
    """Render `frame` through `camera` and write it over `photo` as a PNG at `output`.

    The render size must already match the photo (see camera.set_render_size).
    """
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True  # OpenImageDenoise, on the CPU
    scene.render.film_transparent = True
    scene.view_settings.view_transform = "Standard"
    _ensure_light(scene)
    scene.frame_set(frame)
    with tempfile.TemporaryDirectory() as folder:
        layer_path = Path(folder) / "body.png"
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGBA"
        scene.render.filepath = str(layer_path)
        bpy.ops.render.render(write_still=True)
        body = _pixels(layer_path)
    background = _pixels(photo)
    if background.shape != body.shape:
        raise ValueError(f"Render size {body.shape[:2]} differs from the photo's {background.shape[:2]}")
    alpha = body[..., 3:4]
    composite = body * alpha + background * (1 - alpha)
    composite[..., 3] = 1.0
    _save_png(composite, output)


def _ensure_light(scene: bpy.types.Scene) -> None:
    if any(obj.type == "LIGHT" for obj in scene.objects):
        return
    light = bpy.data.objects.new("IKOL light", bpy.data.lights.new("IKOL light", "SUN"))
    light.data.energy = 3.0
    light.rotation_euler = (0.9, 0.0, 0.4)
    scene.collection.objects.link(light)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("IKOL world")
    scene.world.color = (0.4, 0.4, 0.4)


def _pixels(path: Path) -> np.ndarray:
    """(H, W, 4) float RGBA of an image file, rows bottom to top as Blender stores them."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(height, width, 4)
    finally:
        bpy.data.images.remove(image)


def _save_png(pixels: np.ndarray, output: Path) -> None:
    """Write (H, W, 4) float RGBA to `output` whole: to a temporary name, then renamed."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.new("IKOL composite", width, height, alpha=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".png", dir=output.parent)
    os.close(handle)
    try:
        image.pixels.foreach_set(pixels.ravel())
        image.filepath_raw = tmp_name
        image.file_format = "PNG"
        image.save()
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    finally:
        bpy.data.images.remove(image)
