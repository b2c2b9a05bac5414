"""Finding everyone in a frame with BlazePose, which itself reports one person at a time.

The whole frame first: BlazePose reports its most prominent person; that person's box is then
painted over and BlazePose looks again, until it finds nobody new (`find_people`). BlazePose
looks at a small copy of what it is given, so people who are small in the frame (far away, or
one of many side by side in a wide picture) go unseen that way; `find_everyone` then also looks
in square windows across the frame, the frame's short side and half of it wide, each
overlapping the next by half, with everyone already found painted over. A person whose box
touches a window's inner edge is cut by it and is left to a window that holds them whole.

Pixels: x right, y down, origin at the image's top-left corner.
"""

from dataclasses import dataclass, replace

import numpy as np

from ..frontends.blazepose import BlazePose, PoseLandmarks

MAX_PEOPLE = 6
VISIBLE = 0.3  # landmark visibility from which a landmark counts for the box
PAINT_GROWTH = 0.1  # a found person is painted over with their box grown by this fraction
SAME_PERSON = 0.5  # share of the smaller box inside the other: the same person again
MIN_WINDOW = 96  # pixels: smaller windows are not searched
CUT_MARGIN = 0.02  # share of a window's side: a box this close to an inner edge is cut by it


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

    def intersection(self, other: "Box") -> "Box":
        return Box(max(self.x0, other.x0), max(self.y0, other.y0),
                   min(self.x1, other.x1), min(self.y1, other.y1))

    def iou(self, other: "Box") -> float:
        """Intersection over union, 0 to 1."""
        inner = self.intersection(other).area
        union = self.area + other.area - inner
        return inner / union if union > 0 else 0.0

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
    """Everyone BlazePose finds in the whole (H, W, 3) uint8 RGB frame, largest box first.

    `detector` must look at each image afresh (not in video mode).
    """
    return _Search(detector, rgb, limit).in_window(None).largest_first()


def find_everyone(detector: BlazePose, rgb: np.ndarray, limit: int = MAX_PEOPLE) -> list[PoseLandmarks]:
    """Everyone in the frame, small people too: the whole frame, then windows across it;
    largest box first. About 15 to 50 BlazePose runs on a 1280 x 720 frame."""
    search = _Search(detector, rgb, limit).in_window(None)
    height, width = rgb.shape[:2]
    for window in windows(width, height):
        if search.full:
            break
        search.in_window(window)
    return search.largest_first()


def windows(width: int, height: int) -> list[Box]:
    """Square windows covering the frame: sides of the short side and half of it, each
    overlapping its neighbours by half."""
    found = []
    short = min(width, height)
    for side in (short, short // 2):
        if side < MIN_WINDOW:
            break
        found += [Box(x, y, x + side, y + side)
                  for y in _starts(height, side) for x in _starts(width, side)]
    return found


def _starts(length: int, side: int) -> list[int]:
    """Window starts every half side, the last one flush with the end."""
    starts = list(range(0, length - side + 1, side // 2))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


class _Search:
    """People found so far in one frame, which is painted over where they are."""

    def __init__(self, detector: BlazePose, rgb: np.ndarray, limit: int):
        self.detector = detector
        self.height, self.width = rgb.shape[:2]
        self.masked = rgb.copy()
        self.fill = np.median(rgb.reshape(-1, 3), axis=0).astype(np.uint8)
        self.limit = limit
        self.people: list[PoseLandmarks] = []
        self.boxes: list[Box] = []

    @property
    def full(self) -> bool:
        return len(self.people) >= self.limit

    def in_window(self, window: Box | None) -> "_Search":
        """Ask BlazePose again and again inside `window` (None: the whole frame) until it
        finds nobody new."""
        rows, cols = window.pixels() if window is not None else (slice(None), slice(None))
        while not self.full:
            marks = self.detector.detect(np.ascontiguousarray(self.masked[rows, cols]))
            if marks is None:
                break
            if window is not None:
                marks = replace(marks, image=marks.image + (window.x0, window.y0))
            box = landmarks_box(marks)
            if any(_same(box, known) for known in self.boxes):  # painting over did not hide them
                break
            if window is not None and self._cut(box, window):
                break
            self.people.append(marks)
            self.boxes.append(box)
            self.masked[box.grown(PAINT_GROWTH, self.width, self.height).pixels()] = self.fill
        return self

    def _cut(self, box: Box, window: Box) -> bool:
        """Whether `box` reaches an edge of `window` that is not an edge of the frame."""
        margin = CUT_MARGIN * (window.x1 - window.x0)
        return ((window.x0 > 0 and box.x0 <= window.x0 + margin)
                or (window.y0 > 0 and box.y0 <= window.y0 + margin)
                or (window.x1 < self.width and box.x1 >= window.x1 - margin)
                or (window.y1 < self.height and box.y1 >= window.y1 - margin))

    def largest_first(self) -> list[PoseLandmarks]:
        order = np.argsort([-box.area for box in self.boxes], kind="stable")
        return [self.people[i] for i in order]


def _same(box: Box, known: Box) -> bool:
    """Whether two boxes are the same person: most of the smaller lies inside the other."""
    smaller = min(box.area, known.area)
    return smaller > 0 and box.intersection(known).area > SAME_PERSON * smaller
