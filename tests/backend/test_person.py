"""Finding people and following everyone (real BlazePose on generated pictures of people)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ikol_backend.frontends.blazepose import MIRRORED, BlazePose, MirroredPass, PoseLandmarks
from ikol_backend.frontends.blazepose_to_smpl import LANDMARK_NAMES
from ikol_backend.person import Box, PeopleTracker, Track, find_everyone, landmarks_box, stitched
from ikol_backend.person.finding import _close_up
from ikol_backend.person.choice import everyone, frame_spans, ranked_at_start

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
SMALL_SCALE = 0.7
SMALL_LEFT = 550  # px: where the smaller person's picture starts


def two_people(shift: int = 0) -> np.ndarray:
    """(512, 900, 3) RGB: the sample person on the left, a 0.7-size copy on the right,
    both moved `shift` px to the right."""
    person = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    height, width = person.shape[:2]
    canvas = np.empty((height, 900, 3), np.uint8)
    canvas[:] = np.median(person[:20, :20].reshape(-1, 3), axis=0)
    canvas[:, shift:shift + width] = person
    small = cv2.resize(person, (round(width * SMALL_SCALE), round(height * SMALL_SCALE)))
    canvas[height - small.shape[0]:, SMALL_LEFT + shift:SMALL_LEFT + shift + small.shape[1]] = small
    return canvas


def crowd(scales: list[float], gap: int = 0) -> tuple[np.ndarray, list[Box]]:
    """(512, W, 3) RGB: copies of the sample person, scaled by `scales`, standing side by side
    left to right `gap` px apart (every other one mirrored), and each copy's picture box."""
    person = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)[:, 90:340]
    height, width = person.shape[:2]
    pictures = [cv2.resize(person, (round(width * scale), round(height * scale)),
                           interpolation=cv2.INTER_AREA)[:, ::1 - 2 * (i % 2)]
                for i, scale in enumerate(scales)]
    canvas = np.empty((height, sum(p.shape[1] + gap for p in pictures) - gap, 3), np.uint8)
    canvas[:] = np.median(person[:20, :20].reshape(-1, 3), axis=0)
    boxes, left = [], 0
    for picture in pictures:
        top = height - picture.shape[0]
        canvas[top:, left:left + picture.shape[1]] = picture
        boxes.append(Box(left, top, left + picture.shape[1], height))
        left += picture.shape[1] + gap
    return canvas, boxes


def holder(marks, boxes: list[Box]) -> int:
    """Which picture box holds the person's landmark box."""
    box = landmarks_box(marks)
    return max(range(len(boxes)), key=lambda i: box.intersection(boxes[i]).area / box.area)


@pytest.mark.parametrize("scales, gap", [
    ([1.0] * 5, 134),  # side by side in a wide picture (1920 px): small for BlazePose's eye
    ([1.0, 0.8, 0.6, 0.45, 0.35], 0),  # at different sizes
    ([0.35, 0.45, 0.6, 0.8, 1.0], 40),
    ([1.0, 1.0, 1.0], 120),
    ([1.0, 0.15, 0.15], 40),  # small beside a large one
])
def test_everyone_clearly_visible_is_found_largest_first(scales: list[float], gap: int):
    picture, boxes = crowd(scales, gap)
    with BlazePose() as detector:
        people = find_everyone(detector, picture)
    assert len(people) == len(scales)
    found = [holder(marks, boxes) for marks in people]
    assert sorted(found) == list(range(len(scales)))  # each person once
    areas = [landmarks_box(marks).area for marks in people]
    assert areas == sorted(areas, reverse=True)
    if len(set(scales)) == len(scales):
        assert found == sorted(range(len(scales)), key=lambda i: -scales[i])


@pytest.mark.parametrize("person", [2, 4])
def test_the_chosen_one_of_five_keeps_their_track_from_the_first_frame_of_a_clip(person: int):
    scales = [1.0, 0.8, 0.6, 0.45, 0.35]
    with PeopleTracker(frame_rate=24.0) as tracker:
        held = []
        for shift in (0, 4, 8):
            picture, boxes = crowd(scales)
            seen = tracker.update(np.roll(picture, shift, axis=1))
            if shift == 0:
                chosen = ranked_at_start(tracker.tracks, 24.0)[person].identity
            assert chosen in seen
            held.append(holder(seen[chosen], [Box(b.x0 + shift, b.y0, b.x1 + shift, b.y1) for b in boxes]))
    assert len(tracker.tracks) == 5 and held == [person] * 3


def test_person_n_of_five_in_a_photo_from_the_command_line(tmp_path: Path):
    picture, boxes = crowd([1.0, 0.8, 0.6, 0.45, 0.35])
    photo = tmp_path / "five.png"
    cv2.imwrite(str(photo), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    for person in (4, 5):
        result = subprocess.run(
            [sys.executable, "-m", "ikol_backend", "estimate", str(photo), "-o",
             str(tmp_path / f"m{person}.npz"), "--person", str(person)],
            capture_output=True, text=True, timeout=120)
        if person == 4:
            assert result.returncode == 0, result.stderr
            with np.load(tmp_path / "m4.npz") as motion:
                x, y = motion["keypoints_2d"][0, :24, :2].mean(axis=0)
            smallest = boxes[4]
            assert smallest.x0 <= x <= smallest.x1 and smallest.y0 <= y <= smallest.y1
        else:
            assert result.returncode == 4
            assert result.stderr.splitlines()[-1] == (
                "error: Person 5 was asked for (0 is the largest), but only 5 people were found "
                "at the start.")
            assert "No person found" not in result.stderr  # no warning contradicts it


def test_box_overlap_and_growth():
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30)) == 0.0
    assert a.grown(0.5, 12, 100) == Box(0, 0, 12, 15)


def test_everyone_is_found_largest_first():
    with BlazePose() as detector:
        people = find_everyone(detector, two_people())
    assert len(people) == 2
    big, small = (landmarks_box(marks) for marks in people)
    assert big.area > small.area
    assert big.x1 < SMALL_LEFT <= small.x0


@pytest.mark.parametrize("person, left_of_split", [(0, True), (1, False)])
def test_each_person_keeps_their_track_while_both_move(person: int, left_of_split: bool):
    shifts = range(0, 60, 12)
    with PeopleTracker(frame_rate=24.0) as tracker:
        frames = [tracker.update(two_people(shift)) for shift in shifts]
    chosen = ranked_at_start(tracker.tracks, 24.0)[person]
    assert len(tracker.tracks) == 2 and chosen.frames == [0, 1, 2, 3, 4]
    moved = [landmarks_box(seen[chosen.identity]).centre[0] - shift
             for seen, shift in zip(frames, shifts)]
    split = SMALL_LEFT - 20
    assert all((c < split) == left_of_split for c in moved)
    assert np.ptp(moved) < 15  # px: the same person every frame, not a jump


def test_person_beyond_those_visible_is_a_clear_error(tmp_path: Path):
    picture = tmp_path / "two.png"
    cv2.imwrite(str(picture), cv2.cvtColor(two_people(), cv2.COLOR_RGB2BGR))
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "estimate", str(picture), "-o", str(tmp_path / "m.npz"),
         "--person", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 4
    assert result.stderr.splitlines()[-1] == (
        "error: Person 2 was asked for (0 is the largest), but only 2 people were found at the "
        "start.")
    assert not (tmp_path / "m.npz").exists()


def test_the_mirrored_pass_averages_the_same_person():
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    with BlazePose() as detector, MirroredPass() as mirror:
        marks = detector.detect(rgb)
        averaged = mirror.averaged(rgb, marks)
    moved = np.linalg.norm(averaged.image - marks.image, axis=1)
    size = np.ptp(marks.image, axis=0).max()
    assert 0 < np.median(moved) < 0.05 * size  # the mirrored pass counts, and agrees
    names = [name.replace("left", "L").replace("right", "left").replace("L", "right")
             for name in LANDMARK_NAMES]
    assert [LANDMARK_NAMES[i] for i in MIRRORED] == names


def test_a_mirrored_pass_that_finds_someone_else_is_not_used():
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    with BlazePose() as detector, MirroredPass() as mirror:
        marks = detector.detect(rgb)
        elsewhere = PoseLandmarks(marks.world, marks.image + (200.0, 0.0), marks.visibility)
        mirror._pose.detect_all = lambda image: [elsewhere]  # as if the mirror showed another person
        assert mirror.averaged(rgb, marks) is marks


def close_up() -> np.ndarray:
    """(H, W, 3) RGB: the sample person's head and shoulders, cut at the chest, 3x enlarged."""
    person = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    return cv2.resize(person[50:230, 120:320], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)


def test_a_close_up_is_found_and_what_is_below_the_frame_is_not_seen():
    picture = close_up()
    height, width = picture.shape[:2]
    with BlazePose() as detector:
        people = find_everyone(detector, picture)
        shrunk = _close_up(detector, picture)  # the fallback when the frame alone shows no one
    assert len(people) == 1 and len(shrunk) == 1
    below = shrunk[0].image[:, 1] >= height
    assert below[[23, 24, 25, 26, 27, 28]].all()  # hips, knees, ankles: out of the frame
    assert (shrunk[0].visibility[below] == 0).all()
    assert np.all(np.abs(people[0].image[[0, 11, 12]] - shrunk[0].image[[0, 11, 12]]) < 0.05 * width)


def test_everyone_in_a_photo_gets_a_motion_file(tmp_path: Path):
    picture, boxes = crowd([1.0, 0.8, 0.6])
    photo = tmp_path / "three.png"
    cv2.imwrite(str(photo), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    out = tmp_path / "people"
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "estimate", str(photo), "-o", str(out),
         "--people", "all", "--events"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    people = next(e for e in events if e["event"] == "people")
    assert people["found"] == 3 and sorted(people["tracks"]) == [0, 1, 2] and "3 people found" in people["message"]
    summary = next(e for e in events if e["event"] == "result")["summary"]
    assert [p["file"] for p in summary["people"]] == ["person0.npz", "person1.npz", "person2.npz"]
    assert sorted(p.name for p in out.iterdir()) == ["person0.npz", "person1.npz", "person2.npz"]
    holders, cameras = [], []
    for name in ("person0.npz", "person1.npz", "person2.npz"):
        with np.load(out / name) as motion:
            assert motion["poses"].shape == (1, 72) and motion["valid"].tolist() == [True]
            x, y = motion["keypoints_2d"][0, :24, :2].mean(axis=0)
            holders.append(next(i for i, b in enumerate(boxes) if b.x0 <= x <= b.x1))
            cameras.append(motion["camera_intrinsics"].tolist())
    assert holders == [0, 1, 2]  # each person once; all seen first in frame 0, so largest first
    assert cameras[0] == cameras[1] == cameras[2]  # one camera for everyone


def test_people_ranked_at_start_and_everyone_who_stays():
    def track(identity: int, frames: list[int], area: float) -> Track:
        box = Box(0, 0, 1, 1)
        made = Track(identity, frames[0], box, None, np.zeros(1, np.float32), frames[-1])
        made.frames, made.areas = frames, [area] * len(frames)
        return made

    big_late = track(0, list(range(5, 40)), 900.0)  # comes in after the start
    small = track(1, list(range(0, 40)), 100.0)
    middle = track(2, list(range(0, 40)), 400.0)
    glimpse = track(3, [20, 21], 500.0)
    tracks = [big_late, small, middle, glimpse]
    assert [t.identity for t in ranked_at_start(tracks, frame_rate=10.0)] == [2, 1]
    assert [t.identity for t in everyone(tracks, frame_rate=10.0, stills=False)] == [2, 1, 0]
    assert [t.identity for t in everyone(tracks, frame_rate=10.0, stills=True)] == [2, 1, 0, 3]
    assert frame_spans([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"


def test_a_track_that_continues_another_after_an_occlusion_is_stitched_to_it():
    red, blue = np.zeros(144, np.float32), np.zeros(144, np.float32)
    red[0], blue[100] = 1.0, 1.0  # colour histograms: nothing in common

    def track(identity: int, frames: range, x0: float, colours: np.ndarray) -> Track:
        box = Box(x0, 100, x0 + 50, 250)
        made = Track(identity, frames[0], box, None, colours, frames[-1],
                     velocity=np.array([2.0, 0.0]))
        made.frames, made.areas = list(frames), [box.area] * len(frames)
        return made

    walker = track(0, range(0, 20), 100, red)  # walks right at 2 px a frame, then is hidden
    back = track(1, range(30, 50), 100 + 2 * (30 - 19), red)  # where the walk leads, 10 frames on
    other = track(2, range(30, 50), 100 + 2 * (30 - 19), blue)  # the same place, another person
    stitched_tracks = stitched([walker, other, back], frame_rate=30.0)
    assert [t.parts for t in stitched_tracks] == [[0, 1], [2]]
    joined = stitched_tracks[0]
    assert joined.frames == list(range(0, 20)) + list(range(30, 50))
    assert walker.frames == list(range(0, 20))  # the tracker's own tracks are left as they were
    far = track(3, range(30, 50), 600, red)  # too far for the time between
    assert [t.parts for t in stitched([walker, far], frame_rate=30.0)] == [[0], [3]]
