"""Finding people: everyone in a frame, and everyone followed across frames on their own track."""

from .finding import Box, find_everyone, find_in, landmarks_box, same_person
from .tracker import PeopleTracker, Track, stitched

__all__ = ["Box", "PeopleTracker", "Track", "find_everyone", "find_in", "landmarks_box",
           "same_person", "stitched"]
