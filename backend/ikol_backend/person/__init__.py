"""Finding the person: every person in a frame, then one chosen person tracked across frames."""

from .finding import Box, find_everyone, find_people, landmarks_box
from .tracker import PersonTracker

__all__ = ["Box", "PersonTracker", "find_everyone", "find_people", "landmarks_box"]
