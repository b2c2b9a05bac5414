"""One person followed through a clip with BlazePose, which itself sees one person at a time.

At the start (the first frame of a clip, the first of a list of stills) everyone is found,
small people too (`finding.find_everyone`), and ranked by box area, largest first, so
`--person 0` is the largest person at the start.

Following the chosen person: in a clip, BlazePose's video mode (which follows its person from
the last landmarks, the fast way) is asked first, and its answer is taken while its box
overlaps the last one, so it is the same person; once it shows someone else it is not asked
again. Otherwise BlazePose looks only inside the last box grown by half its size (so it cannot
jump to someone else). When it finds nobody there, everyone in the whole frame is found again
(`finding.find_people`, the quick whole-frame search) and the person whose box overlaps the
last one most is taken, if the overlap is large enough; otherwise the frame has no person.
After a long gap (the person left the picture) the search accepts the largest person again.

Pixels: x right, y down, origin at the image's top-left corner.
"""

from dataclasses import replace

import numpy as np

from ..frontends.blazepose import BlazePose, PoseLandmarks
from .finding import Box, find_everyone, find_people, landmarks_box

SEARCH_GROWTH = 0.5  # the search window is the last box grown by this fraction of its size
MIN_OVERLAP = 0.2  # intersection over union with the last box to count as the same person
GAP_FRAMES = 30  # frames without the person after which anyone may be taken again


class PersonTracker:
    """The `person`-th largest person at the start, followed frame to frame.

    `detector` looks at each image afresh; `video`, a BlazePose in video mode fed every frame
    of one clip, or None (still images). `track(rgb)` gives the person's landmarks in the frame
    (image landmarks in the frame's pixels), or None when they are not found there.
    """

    def __init__(self, detector: BlazePose, person: int = 0, video: BlazePose | None = None):
        if person < 0:
            raise ValueError(f"person must be 0 or more, got {person}")
        self.detector = detector
        self.video = video if person == 0 else None  # video mode follows the most prominent
        self.person = person
        self.box: Box | None = None
        self.frames_missing = 0
        self.people_at_start = 0
        self.started = False  # whether the first frame's thorough search has been made

    def track(self, rgb: np.ndarray) -> PoseLandmarks | None:
        marks = self._follow_video(rgb) if self.video is not None else None
        if marks is None and self.box is not None:
            marks = self._follow(rgb)
        if marks is None:
            marks = self._search(rgb)
        if marks is None:
            self.frames_missing += 1
            return None
        self.box = landmarks_box(marks)
        self.frames_missing = 0
        return marks

    def _follow_video(self, rgb: np.ndarray) -> PoseLandmarks | None:
        """BlazePose's video mode, if it shows the person being followed."""
        marks = self.video.detect(rgb)
        if self.box is None or marks is None:
            return None
        if landmarks_box(marks).iou(self.box) < MIN_OVERLAP:
            self.video = None  # it follows someone else now
            return None
        return marks

    def _follow(self, rgb: np.ndarray) -> PoseLandmarks | None:
        """Look for the person only near their last box."""
        height, width = rgb.shape[:2]
        window = self.box.grown(SEARCH_GROWTH, width, height)
        rows, cols = window.pixels()
        marks = self.detector.detect(np.ascontiguousarray(rgb[rows, cols]))
        if marks is None:
            return None
        return replace(marks, image=marks.image + (cols.start, rows.start))

    def _search(self, rgb: np.ndarray) -> PoseLandmarks | None:
        """Look at the whole frame: the chosen person at the start, else the one where they were."""
        people = (find_people if self.started else find_everyone)(self.detector, rgb)
        self.started = True
        if self.box is None or self.frames_missing >= GAP_FRAMES:
            if self.box is None:
                self.people_at_start = max(self.people_at_start, len(people))
            index = self.person if self.box is None else 0
            return people[index] if index < len(people) else None
        overlaps = [landmarks_box(marks).iou(self.box) for marks in people]
        if overlaps and max(overlaps) >= MIN_OVERLAP:
            return people[int(np.argmax(overlaps))]
        return None
