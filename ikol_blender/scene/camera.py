"""A camera matching the footage: the motion file's intrinsics, placed as the backend's camera,
with the footage as its background.

The backend's camera sits at the origin of the model frame looking along -Z with +Y up; in
Blender (Z up) that is the origin, looking along +Y, with +Z up.
"""

import math
from pathlib import Path

import bpy
import numpy as np

from ..keyframes import CONSTANT, write_channels


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


def load_clip(movie: Path, first_source_frame: int) -> bpy.types.MovieClip:
    """A new Movie Clip of `movie` that shows its frame `first_source_frame` (from 0) at scene
    frame 1."""
    clip = bpy.data.movieclips.load(str(movie), check_existing=False)
    clip.frame_start = 1 - first_source_frame + clip.frame_offset
    return clip


def clip_scene_frames(clip: bpy.types.MovieClip, frame_index: np.ndarray) -> np.ndarray:
    """The scene frame at which `clip` shows each source frame in `frame_index` (from 0): Blender
    plays movie frame `scene frame - frame_start + frame_offset` there."""
    return np.asarray(frame_index, dtype=np.float64) + clip.frame_start - clip.frame_offset


def add_clip_background(camera: bpy.types.Object, clip: bpy.types.MovieClip) -> None:
    """Show `clip` behind the camera's view, playing on its own timing."""
    background = _new_background(camera)
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.use_camera_clip = False


def add_image_background(camera: bpy.types.Object, images: list[Path], first_frame: int = 1) -> None:
    """Show `images[i]` behind the camera's view at scene frame `first_frame + i`.

    One image stays still; several get one background entry each, shown only at its frame:
    `show_background_image` is keyed on the camera's data with constant interpolation, on
    at its frame and off at the frames beside it (three keys per entry at most).
    """
    entries = []
    for path in images:
        background = _new_background(camera)
        background.image = bpy.data.images.load(str(path), check_existing=True)
        entries.append(len(camera.data.background_images) - 1)
    if len(images) < 2:
        return
    last = len(images) - 1
    channels = {}
    for i, entry in enumerate(entries):
        frame = first_frame + i
        keys = [(frame, 1.0)]
        if i > 0:
            keys.insert(0, (frame - 1, 0.0))
        if i < last:
            keys.append((frame + 1, 0.0))
        frames, shown = np.array(keys, dtype=np.float64).T
        channels[(f"background_images[{entry}].show_background_image", 0)] = (frames, shown)
    write_channels(camera.data, f"{camera.name}_footage", channels, interpolation=CONSTANT)


def _new_background(camera: bpy.types.Object) -> bpy.types.CameraBackgroundImage:
    camera.data.show_background_images = True
    background = camera.data.background_images.new()
    background.frame_method = "STRETCH"  # the footage fills the camera frame, as it was filmed
    background.display_depth = "BACK"
    return background
