"""Finding everyone in a frame: BlazePose's multi-person landmarker over the frame and windows.

BlazePose's person detector looks at a 224-pixel copy of what it is given, so people who are
small in the frame (far away, or one of many side by side in a wide picture) go unseen on the
whole frame; `find_everyone` therefore also looks in windows across the frame (squares the
frame's short side and half of it wide, and upright windows as tall as the short side and half
as wide), each overlapping the next by half, with everyone found so far painted over (so the
landmark model does not mark them again in every window). Everyone is marked
on their own crop (the detector's box around them), so two people never share a skeleton. A
person whose box touches a window's inner edge is cut by it and is left to a window that holds
them whole; one found twice is kept once. A close-up (a head and shoulders filling the frame)
can leave the detector nothing to see of a body: when no one is found, the frame is looked at
again shrunk inside larger canvases, with room below and beside it for the unseen body.

Pixels: x right, y down, origin at the image's top-left corner.
"""

from dataclasses import dataclass

import numpy as np

from ..frontends.blazepose import BlazePose, PoseLandmarks

VISIBLE = 0.5  # landmark visibility from which a landmark counts as seen
MIN_SEEN = 8  # landmarks seen, of 33, for a detection to be a person (not a glove or a hand)
SAME_PERSON = 0.15  # median landmark distance, as a share of the box's long side: the same person
PAINT_GROWTH = 0.1  # a person found is painted over, box grown by this share, in the windows' look
HEAD_TOP = 0.15  # ... and by this share of its height upward (the head above the eyes)
SAME_BOX = 0.5  # boxes overlapping this much (intersection over union): the same person
PART_OF = 0.7  # share of a smaller box inside a known person's box: a part of that person
MIN_WINDOW = 96  # pixels: windows across the frame are at least this wide
MIN_LOOK = 32  # pixels: a window narrower than this (a track's, cut by the frame) is not looked in
CUT_MARGIN = 0.02  # share of a window's side: a box this close to an inner edge is cut by it
CLOSE_UP_CANVASES = (1.5, 2.0, 3.0)  # canvases a close-up is shrunk into, in frame sizes


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

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2])

    @property
    def size(self) -> float:
        """The long side, pixels."""
        return max(self.x1 - self.x0, self.y1 - self.y0)

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

    def moved(self, dx: float, dy: float) -> "Box":
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def pixels(self) -> tuple[slice, slice]:
        """Row and column slices of the whole pixels the box covers."""
        return (slice(int(self.y0), int(np.ceil(self.y1))), slice(int(self.x0), int(np.ceil(self.x1))))


def landmarks_box(marks: PoseLandmarks) -> Box:
    """The box around a person's visible image landmarks (all of them if few are visible)."""
    seen = marks.image[marks.visibility >= VISIBLE]
    points = seen if len(seen) >= 2 else marks.image
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return Box(float(x0), float(y0), float(x1), float(y1))


def is_person(marks: PoseLandmarks) -> bool:
    """Whether a detection shows enough of a body (MIN_SEEN landmarks seen) to be a person."""
    return int((marks.visibility >= VISIBLE).sum()) >= MIN_SEEN


def same_person(a: PoseLandmarks, b: PoseLandmarks) -> bool:
    """Whether two detections mark the same person: their landmarks nearly coincide, or their
    boxes mostly overlap (the same person marked twice, facing two ways, or someone mostly
    hidden behind them: one of the two is all that can be told apart)."""
    box_a, box_b = landmarks_box(a), landmarks_box(b)
    size = max(box_a.size, box_b.size, 1.0)
    return (box_a.iou(box_b) >= SAME_BOX
            or float(np.median(np.linalg.norm(a.image - b.image, axis=1))) < SAME_PERSON * size)


def find_in(detector: BlazePose, rgb: np.ndarray, window: Box | None = None) -> list[PoseLandmarks]:
    """Everyone BlazePose sees inside `window` (None: the whole frame) of the (H, W, 3) uint8
    RGB frame, in the frame's pixels; people cut by the window's inner edges, and detections
    with too few seen landmarks to be a person, are left out."""
    if window is None:
        window = Box(0, 0, rgb.shape[1], rgb.shape[0])
    if min(window.x1 - window.x0, window.y1 - window.y0) < MIN_LOOK:
        return []
    rows, cols = window.pixels()
    found = []
    for marks in detector.detect_all(rgb[rows, cols]):
        marks = marks.moved(cols.start, rows.start)
        if is_person(marks) and not _cut(landmarks_box(marks), window, rgb):
            found.append(marks)
    return found


def find_everyone(detector: BlazePose, rgb: np.ndarray) -> list[PoseLandmarks]:
    """Everyone in the frame, small people and close-ups too: the whole frame, then windows
    across it, then (if no one was found) the frame shrunk into a larger canvas; largest box
    first. About 10 to 30 BlazePose looks on a 1280 x 720 frame."""
    people = find_in(detector, rgb)
    height, width = rgb.shape[:2]
    masked, fill, painted = rgb.copy(), np.median(rgb.reshape(-1, 3), axis=0).astype(np.uint8), 0
    for window in windows(width, height):
        for marks in people[painted:]:  # those found are painted over: not marked again
            box = landmarks_box(marks)
            head = HEAD_TOP * (box.y1 - box.y0)  # the landmarks end at the eyes: hair above
            box = Box(box.x0, max(0.0, box.y0 - head), box.x1, box.y1)
            masked[box.grown(PAINT_GROWTH, width, height).pixels()] = fill
        painted = len(people)
        add_new(people, find_in(detector, masked, window))
    if not people:
        people = _close_up(detector, rgb)
    return sorted(people, key=lambda marks: -landmarks_box(marks).area)


def add_new(people: list[PoseLandmarks], found: list[PoseLandmarks]) -> None:
    """Add to `people` each of `found` that is not already among them: neither the same
    person again nor a smaller skeleton lying mostly inside one of theirs (a hand, a glove or
    the feet of someone found whole, as a window that cuts a person can show them)."""
    for marks in found:
        box = landmarks_box(marks)
        if not any(same_person(marks, known) or _part_of(box, landmarks_box(known))
                   for known in people):
            people.append(marks)


def _part_of(box: Box, known: Box) -> bool:
    return box.area < known.area and box.intersection(known).area > PART_OF * box.area


def windows(width: int, height: int) -> list[Box]:
    """Windows covering the frame: squares with sides of the short side and half of it, and
    upright ones as tall as the short side and half as wide (a standing person beside
    others), each overlapping its neighbours by half."""
    found = []
    short = min(width, height)
    for across, down in ((short, short), (short // 2, short), (short // 2, short // 2)):
        if across < MIN_WINDOW:
            break
        found += [Box(x, y, x + across, y + down)
                  for y in _starts(height, down) for x in _starts(width, across)]
    return found


def _starts(length: int, side: int) -> list[int]:
    """Window starts every half side, the last one flush with the end."""
    starts = list(range(0, length - side + 1, side // 2))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def _cut(box: Box, window: Box, rgb: np.ndarray) -> bool:
    """Whether `box` reaches an edge of `window` that is not an edge of the frame."""
    height, width = rgb.shape[:2]
    margin = CUT_MARGIN * (window.x1 - window.x0)
    return ((window.x0 > 0 and box.x0 <= window.x0 + margin)
            or (window.y0 > 0 and box.y0 <= window.y0 + margin)
            or (window.x1 < width and box.x1 >= window.x1 - margin)
            or (window.y1 < height and box.y1 >= window.y1 - margin))


def _close_up(detector: BlazePose, rgb: np.ndarray) -> list[PoseLandmarks]:
    """Everyone found in the frame placed at the top middle of a larger canvas (filled with
    the frame's edge colour; CLOSE_UP_CANVASES, the first that shows someone), in the frame's
    pixels; landmarks outside the frame are not seen (visibility 0)."""
    height, width = rgb.shape[:2]
    edge = np.median(np.concatenate([rgb[-1], rgb[:, 0], rgb[:, -1]]), axis=0)
    for size in CLOSE_UP_CANVASES:
        canvas = np.empty((int(height * size), int(width * size), 3), np.uint8)
        canvas[:] = edge
        left = (canvas.shape[1] - width) // 2
        canvas[:height, left:left + width] = rgb
        found = []
        for marks in detector.detect_all(canvas):
            marks = marks.moved(-left, 0)
            inside = np.all((marks.image >= 0) & (marks.image < (width, height)), axis=1)
            marks = PoseLandmarks(marks.world, marks.image, np.where(inside, marks.visibility, 0.0))
            if is_person(marks):
                add_new(found, [marks])
        if found:
            return found
    return []
