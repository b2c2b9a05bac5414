"""Finding the person: every person in a frame, then one chosen person tracked across frames."""

from .tracker import Box, PersonTracker, find_people, landmarks_box

__all__ = ["Box", "PersonTracker", "find_people", "landmarks_box"]
