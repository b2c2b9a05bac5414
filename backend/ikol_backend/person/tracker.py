"""One person followed through a clip with BlazePose, which itself sees one person at a time.

Finding everyone in a frame: BlazePose reports its most prominent person; that person's box is
then painted over and BlazePose looks again, until it finds nobody new. People are ranked by
box area, largest first, so `--person 0` is the largest person at the start.

Following the chosen person: in a clip, BlazePose's video mode (which follows its person from
the last landmarks, the fast way) is asked first, and its answer is taken while its box
overlaps the last one, so it is the same person; once it shows someone else it is not asked
again. Otherwise BlazePose looks only inside the last box grown by half its size (so it cannot
jump to someone else). When it finds nobody there, everyone in the whole frame is found again
and the person whose box overlaps the last one most is taken, if the overlap is large enough;
otherwise the frame has no person. After a long gap (the person left the picture) the search
accepts the largest person again.

Pixels: x right, y down, origin at the image's top-left corner.
"""

from dataclasses import dataclass, replace

import numpy as np

from ..frontends.blazepose import BlazePose, PoseLandmarks

MAX_PEOPLE = 6
SEARCH_GROWTH = 0.5  # the search window is the last box grown by this fraction of its size
MIN_OVERLAP = 0.2  # intersection over union with the last box to count as the same person
GAP_FRAMES = 30  # frames without the person after which anyone may be taken again
VISIBLE = 0.3  # landmark visibility from which a landmark counts for the box


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: x0 <= x < x1, y0 <= y < y1."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def iou(self, other: "Box") -> float:
        """Intersection over union, 0 to 1."""
        inner = Box(max(self.x0, other.x0), max(self.y0, other.y0),
                    min(self.x1, other.x1), min(self.y1, other.y1))
        union = self.area + other.area - inner.area
        return inner.area / union if union > 0 else 0.0

    def grown(self, fraction: float, width: int, height: int) -> "Box":
        """The box grown by `fraction` of its size on every side, kept inside the image."""
        dx = fraction * (self.x1 - self.x0)
        dy = fraction * (self.y1 - self.y0)
        return Box(max(0.0, self.x0 - dx), max(0.0, self.y0 - dy),
                   min(float(width), self.x1 + dx), min(float(height), self.y1 + dy))

    def pixels(self) -> tuple[slice, slice]:
        """Row and column slices of the whole pixels the box covers."""
        return (slice(int(self.y0), int(np.ceil(self.y1))), slice(int(self.x0), int(np.ceil(self.x1))))


def landmarks_box(marks: PoseLandmarks) -> Box:
    """The box around a person's visible image landmarks (all of them if none is visible)."""
    seen = marks.image[marks.visibility >= VISIBLE]
    points = seen if len(seen) >= 2 else marks.image
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return Box(float(x0), float(y0), float(x1), float(y1))


def find_people(detector: BlazePose, rgb: np.ndarray, limit: int = MAX_PEOPLE) -> list[PoseLandmarks]:
    """Everyone BlazePose finds in the (H, W, 3) uint8 RGB frame, largest box first.

    `detector` must look at each image afresh (not in video mode).
    """
    height, width = rgb.shape[:2]
    masked = rgb.copy()
    fill = np.median(rgb.reshape(-1, 3), axis=0).astype(np.uint8)
    people: list[PoseLandmarks] = []
    boxes: list[Box] = []
    while len(people) < limit:
        marks = detector.detect(masked)
        if marks is None:
            break
        box = landmarks_box(marks)
        if any(box.iou(known) > 0.5 for known in boxes):  # painting over did not hide them
            break
        people.append(marks)
        boxes.append(box)
        masked[box.grown(0.1, width, height).pixels()] = fill
    order = np.argsort([-box.area for box in boxes], kind="stable")
    return [people[i] for i in order]


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
        people = find_people(self.detector, rgb)
        if self.box is None or self.frames_missing >= GAP_FRAMES:
            if self.box is None:
                self.people_at_start = max(self.people_at_start, len(people))
            index = self.person if self.box is None else 0
            return people[index] if index < len(people) else None
        overlaps = [landmarks_box(marks).iou(self.box) for marks in people]
        if overlaps and max(overlaps) >= MIN_OVERLAP:
            return people[int(np.argmax(overlaps))]
        return None
