"""All or nothing: whatever a block adds to the file is removed again if it fails, and the
scene's settings (and a retarget target's animation) are put back. Shared by the scene writer
(build.py) and Estimate Pose's scene (estimated.py)."""

from collections.abc import Iterator
from contextlib import contextmanager

import bpy

# Data-block kinds a scene is made of (objects first: they use the others). A mesh's shape
# keys and their drivers go with the mesh.
_KINDS = ("objects", "armatures", "meshes", "cameras", "actions", "materials", "images",
          "movieclips", "lights", "worlds", "node_groups")
_SCENE_SETTINGS = ("frame_start", "frame_end", "frame_current", "camera", "render.fps",
                   "render.fps_base", "render.resolution_x", "render.resolution_y",
                   "render.resolution_percentage", "render.pixel_aspect_x",
                   "render.pixel_aspect_y")


@contextmanager
def kept_on_failure(scene: bpy.types.Scene, target: bpy.types.Object | None = None) -> Iterator[None]:
    """Undo everything made in the block if it raises: new data-blocks are removed, the scene's
    frame range, frame rate, render size and camera restored, and `target`'s animation (the
    armature being retargeted onto) put back."""
    before = {kind: set(getattr(bpy.data, kind)) for kind in _KINDS}
    settings = {name: _get(scene, name) for name in _SCENE_SETTINGS}
    animation = _animation_state(target)
    try:
        yield
    except BaseException:
        for kind in _KINDS:
            collection = getattr(bpy.data, kind)
            for block in set(collection) - before[kind]:
                collection.remove(block)
        for name, value in settings.items():
            _set(scene, name, value)
        if target is not None:
            _restore_animation(target, animation)
        raise


def _get(owner: object, dotted: str) -> object:
    for name in dotted.split("."):
        owner = getattr(owner, name)
    return owner


def _set(owner: object, dotted: str, value: object) -> None:
    *path, name = dotted.split(".")
    setattr(_get(owner, ".".join(path)) if path else owner, name, value)


def _animation_state(obj: bpy.types.Object | None) -> tuple | None:
    """The object's action and (4.4+) slot, or None when it has no animation data."""
    if obj is None or obj.animation_data is None:
        return None
    return obj.animation_data.action, getattr(obj.animation_data, "action_slot", None)


def _restore_animation(obj: bpy.types.Object, state: tuple | None) -> None:
    if state is None:
        obj.animation_data_clear()
        return
    action, slot = state
    obj.animation_data.action = action
    if slot is not None:
        obj.animation_data.action_slot = slot
