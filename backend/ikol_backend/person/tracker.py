"""Everyone followed through a clip (or a list of stills), each on a track with an identity.

Each frame, BlazePose in video mode (the follower) gives everyone it follows from their last
landmarks and everyone its detector finds; at the start and every SURVEY_EVERY_S seconds the
frame is also searched thoroughly (`finding.find_everyone`: windows across it, for small
people). Detections are given to tracks in one global assignment per frame
(`scipy.optimize.linear_sum_assignment`) on a cost made of where the track predicts the person
(box overlap and landmark distance, constant velocity) and how they look (colour histograms
of the torso and the legs). A track left without a detection (seen in the last frame, or in a
few frames already: not a glimpse) is looked for again in a window around its predicted box
(small people, people beside others), then assigned again. Detections still left over go to
tracks lost for a while (back from behind someone, or from outside the picture) at a looser
cost if their colours agree. A track not seen in a frame is missing there, never filled by someone else; it waits up to
KEEP_MISSING_S seconds to be found again (occlusion, leaving the picture), after which it
ends. Detections no track takes start new tracks.

Pixels: x right, y down, origin at the image's top-left corner; times in frames of the clip.
"""

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..frontends.blazepose import BlazePose, PoseLandmarks
from .finding import (VISIBLE, Box, add_new, find_everyone, find_in, is_person, landmarks_box,
                      same_person)

SURVEY_EVERY_S = 10.0  # seconds between thorough searches (small people)
KEEP_MISSING_S = 2.0  # seconds a track waits, unseen, before it ends
REACH_PER_S = 1.5  # how much wider, per second unseen, a track's prediction reaches
LOST_COST = 0.5  # added to a track's cost, in proportion to how long it has waited unseen
ESTABLISHED = 3  # frames a track seen in the last frame or in this many is looked for
WINDOW_GROWTH = 0.5  # a track's window is its predicted box grown by this share of its size
VELOCITY_MEMORY = 0.6  # weight of the previous velocity in the smoothed one
APPEARANCE_MEMORY = 0.8  # weight of the track's colours against a new detection's
MAX_COST = 1.5  # an assignment costing more than this is refused
# A lost track may take a detection no one else took at a higher cost, if it looks alike:
RETURN_COST, RETURN_COLOURS = 2.2, 0.6
FOLLOW_PRESENCE = 0.3  # the follower keeps a person while its landmark model is this sure
# Landmarks compared between a track's prediction and a detection: shoulders to ankles.
BODY = np.array([11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
TORSO = np.array([11, 12, 23, 24])
HISTOGRAM_BINS = (12, 6)  # hue, saturation


@dataclass
class Track:
    """One person: where they were seen and how they look.

    Attributes:
        identity: numbered from 0 in order of creation.
        first_frame: the frame (call number) they were first seen in.
        frames: the frames they were seen in, in order.
        areas: their box's area in each of those frames, pixels².
        first_box: their box in the first of those frames.
        parts: the identities of the tracker's tracks this one is made of (`stitched`), in
            order; just its own for a track as the tracker made it.
    """

    identity: int
    first_frame: int
    box: Box
    marks: PoseLandmarks
    appearance: np.ndarray
    last_seen: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # px per frame
    frames: list[int] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)
    first_box: Box | None = None
    parts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.first_box = self.first_box or self.box
        self.parts = self.parts or [self.identity]

    def predicted_box(self, frame: int) -> Box:
        dx, dy = self.velocity * (frame - self.last_seen)
        return self.box.moved(dx, dy)

    def predicted_marks(self, frame: int) -> np.ndarray:
        return self.marks.image + self.velocity * (frame - self.last_seen)


class PeopleTracker:
    """Everyone in a sequence of frames, each on their own track.

    Use as a context manager. It holds two BlazePose landmarkers: `detector` looks at each
    image afresh; `follower`, in video mode, is fed every frame (it follows everyone it has
    seen from their last landmarks, and looks for more). `frame_rate` (frames per second) sets
    how often the frame is surveyed thoroughly and how long a track waits unseen.
    `update(rgb)` takes the next (H, W, 3) uint8 RGB frame and gives {track identity:
    landmarks} for the people seen in it; `tracks` holds every track so far.
    """

    def __init__(self, frame_rate: float):
        self.detector = BlazePose()
        self.follower = BlazePose(video=True, min_presence=FOLLOW_PRESENCE)
        self.tracks: list[Track] = []
        self.frame = -1
        self.frame_rate = frame_rate
        self._survey_every = max(1, round(SURVEY_EVERY_S * frame_rate))
        self._keep_missing = max(1, round(KEEP_MISSING_S * frame_rate))

    def __enter__(self) -> "PeopleTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detector.__exit__(*exc)
        self.follower.__exit__(*exc)

    def live(self) -> list[Track]:
        """The tracks still waiting to be seen again (or seen in the last frame)."""
        return [t for t in self.tracks if self.frame - t.last_seen <= self._keep_missing]

    def update(self, rgb: np.ndarray) -> dict[int, PoseLandmarks]:
        self.frame += 1
        tracks = self.live()
        found = self._everyone(rgb)
        seen = self._match(tracks, found, rgb)
        missing = [t for t in tracks if t.identity not in seen and self._wanted(t)]
        if missing:  # look again where they should be: small people, people beside others
            height, width = rgb.shape[:2]
            nearby: list[PoseLandmarks] = []
            for track in missing:
                window = track.predicted_box(self.frame).grown(WINDOW_GROWTH, width, height)
                add_new(nearby, find_in(self.detector, rgb, window))
            nearby = [m for m in nearby if not any(same_person(m, s) for s in seen.values())]
            seen |= self._match(missing, nearby, rgb)
            found += nearby
        unmatched = [m for m in found if not any(m is s for s in seen.values())]
        lost = [t for t in tracks if t.identity not in seen and t.last_seen < self.frame - 1]
        if unmatched and lost:  # someone back from behind another, or from outside the picture
            seen |= self._match(lost, unmatched, rgb, limit=RETURN_COST, colours=RETURN_COLOURS)
        for marks in unmatched:
            if not any(marks is s for s in seen.values()):
                seen[self._start(marks, rgb).identity] = marks
        return seen

    def _everyone(self, rgb: np.ndarray) -> list[PoseLandmarks]:
        """Everyone the follower sees this frame (everyone it follows, and everyone its person
        detector finds in the whole frame), and at the start and every SURVEY_EVERY_S everyone
        a thorough search finds (small people)."""
        found: list[PoseLandmarks] = []
        add_new(found, [m for m in self.follower.detect_all(rgb) if is_person(m)])
        if self.frame % self._survey_every == 0:
            add_new(found, find_everyone(self.detector, rgb))
        return found

    def _wanted(self, track: Track) -> bool:
        """Whether a track is worth looking for: seen in the last frame or in ESTABLISHED
        frames (not a glimpse of something that was never seen again)."""
        return track.last_seen == self.frame - 1 or len(track.frames) >= ESTABLISHED

    def _match(self, tracks: list[Track], found: list[PoseLandmarks], rgb: np.ndarray,
               limit: float = MAX_COST, colours: float = 1.0) -> dict[int, PoseLandmarks]:
        """Give `found` to `tracks` (one global assignment; pairs costing over `limit` or
        whose colours differ by more than `colours` refused) and update the tracks matched."""
        looks = [appearance(rgb, marks) for marks in found]
        seen = {}
        for track_index, found_index in self._assign(tracks, found, looks, limit, colours):
            track = tracks[track_index]
            self._seen(track, found[found_index], looks[found_index])
            seen[track.identity] = track.marks
        return seen

    def _start(self, marks: PoseLandmarks, rgb: np.ndarray) -> Track:
        track = Track(len(self.tracks), self.frame, landmarks_box(marks), marks,
                      appearance(rgb, marks), self.frame)
        track.frames.append(self.frame)
        track.areas.append(track.box.area)
        self.tracks.append(track)
        return track

    def _assign(self, tracks: list[Track], found: list[PoseLandmarks], looks: list[np.ndarray],
                limit: float, colours: float) -> list[tuple[int, int]]:
        """(track index, detection index) pairs of one global least-cost assignment."""
        if not tracks or not found:
            return []
        from scipy.optimize import linear_sum_assignment

        cost = np.full((len(tracks), len(found)), np.inf)
        for row, track in enumerate(tracks):
            for col, (marks, look) in enumerate(zip(found, looks)):
                unlike = cv2.compareHist(track.appearance, look, cv2.HISTCMP_BHATTACHARYYA)
                if unlike <= colours:
                    cost[row, col] = self._cost(track, marks, unlike)
        rows, cols = linear_sum_assignment(np.minimum(cost, 10 * RETURN_COST))
        return [(r, c) for r, c in zip(rows, cols) if cost[r, c] <= limit]

    def _cost(self, track: Track, marks: PoseLandmarks, unlike: float) -> float:
        """How unlikely `marks` (whose colours are `unlike` the track's, 0 to 1) is to be
        `track`'s person: 0 for a perfect match; above MAX_COST for someone else. The further
        the track is from its last sighting, the less its predicted place counts against the
        detection."""
        unseen = self.frame - track.last_seen
        box = landmarks_box(marks)
        predicted = track.predicted_box(self.frame)
        size = max(predicted.size, 1.0)
        unseen_s = (unseen - 1) / self.frame_rate
        reach = 1.0 + REACH_PER_S * unseen_s  # the prediction's spread grows with time unseen
        travel = _travel(box, predicted, reach)
        if travel == np.inf:
            return np.inf
        seen = (marks.visibility[BODY] >= VISIBLE) & (track.marks.visibility[BODY] >= VISIBLE)
        offsets = np.linalg.norm(marks.image[BODY] - track.predicted_marks(self.frame)[BODY], axis=1)
        landmarks = float(np.median(offsets[seen])) / (size * reach) if seen.any() else travel
        waited = LOST_COST * min(1.0, unseen_s / KEEP_MISSING_S)  # the person just seen first
        return (1.0 - box.iou(predicted)) / reach + landmarks + 1.5 * unlike + waited

    def _seen(self, track: Track, marks: PoseLandmarks, look: np.ndarray) -> None:
        box = landmarks_box(marks)
        step = (box.centre - track.box.centre) / (self.frame - track.last_seen)
        track.velocity = VELOCITY_MEMORY * track.velocity + (1 - VELOCITY_MEMORY) * step
        track.box, track.marks, track.last_seen = box, marks, self.frame
        track.appearance = (APPEARANCE_MEMORY * track.appearance
                            + (1 - APPEARANCE_MEMORY) * look).astype(np.float32)
        track.frames.append(self.frame)
        track.areas.append(box.area)


def _travel(box: Box, predicted: Box, reach: float) -> float:
    """How far `box` lies from a track's predicted box, in shares of `reach` times its size;
    infinite beyond one reach or at a very different size (not the track's person)."""
    size = max(predicted.size, 1.0)
    travel = float(np.linalg.norm(box.centre - predicted.centre)) / (size * reach)
    return travel if travel <= 1.0 and 0.4 < box.size / size < 2.5 else np.inf


def appearance(rgb: np.ndarray, marks: PoseLandmarks) -> np.ndarray:
    """Normalised hue-saturation histograms (float32) of the torso (the box of the shoulders
    and hips, shrunk) and the legs (hips to knees) in the (H, W, 3) uint8 RGB frame, end to
    end."""
    parts = [marks.image[TORSO], marks.image[[23, 24, 25, 26]]]
    histograms = []
    height, width = rgb.shape[:2]
    for points in parts:
        low, high = points.min(axis=0), points.max(axis=0)
        centre, half = (low + high) / 2, 0.3 * (high - low)
        box = Box(*(centre - half), *(centre + half)).intersection(Box(0, 0, width, height))
        rows, cols = box.pixels()
        patch = rgb[rows, cols]
        hist = (cv2.calcHist([cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2HSV)], [0, 1],
                             None, list(HISTOGRAM_BINS), [0, 180, 0, 256])
                if patch.size else np.zeros(HISTOGRAM_BINS, np.float32))
        histograms.append(hist.ravel())
    joined = np.concatenate(histograms).astype(np.float32)
    return joined / max(float(joined.sum()), 1e-6)


def stitched(tracks: list[Track], frame_rate: float) -> list[Track]:
    """The tracks with each one that continues an earlier one joined to it: the same person
    back after an occlusion (or a stretch out of the picture) that the tracker did not bridge.
    Track B continues track A when B starts after A's last frame, within KEEP_MISSING_S, where
    A's motion and the time between put them (as `PeopleTracker._cost` reaches), at a similar
    size and in similar colours (RETURN_COLOURS); the closest pairs are joined first, each
    track continuing at most one and continued by at most one. Joined tracks keep the first's
    identity and list every part (`Track.parts`); the tracks given are left as they are."""
    longest = round(KEEP_MISSING_S * frame_rate)
    pairs = []
    for a in tracks:
        for b in tracks:
            gap = b.first_frame - a.frames[-1]
            if not 0 < gap <= longest:
                continue
            reach = 1.0 + REACH_PER_S * gap / frame_rate
            travel = _travel(b.first_box, a.box.moved(*(a.velocity * gap)), reach)
            unlike = cv2.compareHist(a.appearance, b.appearance, cv2.HISTCMP_BHATTACHARYYA)
            if travel < np.inf and unlike <= RETURN_COLOURS:
                pairs.append((travel + 1.5 * unlike, a.identity, b.identity))
    following: dict[int, int] = {}
    continued: set[int] = set()
    for _, a, b in sorted(pairs):
        if a not in following and b not in continued:
            following[a], continued = b, continued | {b}
    by_identity = {t.identity: t for t in tracks}
    joined = []
    for track in tracks:
        if track.identity in continued:
            continue
        whole = replace(track, frames=list(track.frames), areas=list(track.areas),
                        parts=[track.identity])
        while whole.parts[-1] in following:
            part = by_identity[following[whole.parts[-1]]]
            whole.frames += part.frames
            whole.areas += part.areas
            whole.parts.append(part.identity)
            whole.box, whole.marks, whole.last_seen = part.box, part.marks, part.last_seen
        joined.append(whole)
    return joined
