"""Readers: turn user files into RGB frames."""
