# SPDX-License-Identifier: GPL-3.0-or-later
"""IKOL for Blender: photos and video of a person in, an animated SMPL body out.

The add-on drives a separate backend process (package ikol_backend) and writes what it returns
into the scene. This package imports only bpy, mathutils, numpy and the standard library.
"""

import bpy

from . import preferences, properties
from .operators import body_shape, estimate_pose, import_motion
from .operators import retarget as retarget_operators
from .retarget import properties as retarget_properties
from .ui import body_panel, panel, retarget_panel

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(
    (*estimate_pose.CLASSES, *import_motion.CLASSES, *retarget_operators.CLASSES,
     *body_shape.CLASSES, *panel.CLASSES, *retarget_panel.CLASSES, *body_panel.CLASSES))


def register() -> None:
    properties.register()
    preferences.register()
    retarget_properties.register()
    _register_classes()
    bpy.types.TOPBAR_MT_file_import.append(import_motion.menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(import_motion.menu_import)
    _unregister_classes()
    retarget_properties.unregister()
    preferences.unregister()
    properties.unregister()
