"""IKOL for Blender inference backend: photos and video in, SMPL motion out."""

__version__ = "0.1.0"
