# SPDX-License-Identifier: GPL-3.0-or-later
"""IKOL for Blender: photos and video of a person in, an animated SMPL body out.

The add-on drives a separate backend process (package ikol_backend) and writes what it returns
into the scene. This package imports only bpy, mathutils, numpy and the standard library.
"""


def register() -> None:
    """The panel and operators register here (none yet: the headless CLI is the entry point)."""


def unregister() -> None:
    """Counterpart of register()."""
