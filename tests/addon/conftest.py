import bpy
import pytest


@pytest.fixture
def empty_scene():
    """A fresh, empty Blender scene (real bpy)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)
