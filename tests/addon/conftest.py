"""Fixtures shared by the add-on tests (real bpy)."""

from pathlib import Path

import bpy
import numpy as np
import pytest

import ikol_blender
from ikol_blender.backend_process import backend_python
from ikol_blender.preferences import addon_preferences
from tests.tools.rigs import default_rest_joints
from tests.tools.standin_smpl import standin_arrays


@pytest.fixture
def empty_scene():
    """A fresh, empty Blender scene (real bpy)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def addon(empty_scene):
    """The add-on registered on an empty scene."""
    ikol_blender.register()
    yield bpy.context.scene
    ikol_blender.unregister()


@pytest.fixture(scope="module")
def rest_joints() -> np.ndarray:
    """(24, 3) default-skeleton rest joints, SMPL model frame."""
    return default_rest_joints()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in SMPL model with pose blend shapes 100 times the stand-in's own, so that
    leaving them out moves vertices by centimetres and the check of them means something."""
    arrays = standin_arrays()
    arrays["posedirs"] = 100 * arrays["posedirs"]
    path = tmp_path_factory.mktemp("model") / "standin_neutral.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def smpl_preference(addon, standin: Path):
    """The add-on's preferences naming the stand-in as the SMPL model file, and the Python
    the tests use as the backend's (the managed one needs the add-on installed)."""
    python = backend_python()
    entry = bpy.context.preferences.addons.new()
    entry.module = ikol_blender.__name__
    preferences = addon_preferences()
    preferences.environment, preferences.python_path = "CUSTOM", python
    preferences.smpl_model = str(standin)
    yield preferences
    bpy.context.preferences.addons.remove(entry)
