"""Finding people and following one (real BlazePose on generated pictures of two people)."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ikol_backend.frontends.blazepose import MIRRORED, BlazePose, MirroredPass, PoseLandmarks
from ikol_backend.frontends.blazepose_to_smpl import LANDMARK_NAMES
from ikol_backend.person import Box, PersonTracker, find_everyone, find_people, landmarks_box

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
def test_the_chosen_one_of_five_is_followed_from_the_first_frame_of_a_clip(person: int):
    scales = [1.0, 0.8, 0.6, 0.45, 0.35]
    with BlazePose() as detector, BlazePose(video=True) as follower:
        tracker = PersonTracker(detector, person, video=follower)
        held = []
        for shift in (0, 4, 8):
            picture, boxes = crowd(scales)
            marks = tracker.track(np.roll(picture, shift, axis=1))
            assert marks is not None
            held.append(holder(marks, [Box(b.x0 + shift, b.y0, b.x1 + shift, b.y1) for b in boxes]))
    assert tracker.people_at_start == 5 and held == [person] * 3


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
                "error: Person 5 was asked for (0 is the largest), but only 5 people were found.")


def test_box_overlap_and_growth():
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30)) == 0.0
    assert a.grown(0.5, 12, 100) == Box(0, 0, 12, 15)


def test_everyone_is_found_largest_first():
    with BlazePose() as detector:
        people = find_people(detector, two_people())
    assert len(people) == 2
    big, small = (landmarks_box(marks) for marks in people)
    assert big.area > small.area
    assert big.x1 < SMALL_LEFT <= small.x0


@pytest.mark.parametrize("video", [False, True], ids=["stills", "clip"])
@pytest.mark.parametrize("person, left_of_split", [(0, True), (1, False)])
def test_the_chosen_person_is_followed_while_both_move(person: int, left_of_split: bool, video: bool):
    with BlazePose() as detector, BlazePose(video=True) as follower:
        tracker = PersonTracker(detector, person, video=follower if video else None)
        centres = []
        for shift in range(0, 60, 12):
            marks = tracker.track(two_people(shift))
            assert marks is not None
            box = landmarks_box(marks)
            centres.append((box.x0 + box.x1) / 2 - shift)
    split = SMALL_LEFT - 20
    assert all((c < split) == left_of_split for c in centres)
    assert np.ptp(centres) < 15  # px: the same person every frame, not a jump


def test_person_beyond_those_visible_is_a_clear_error(tmp_path: Path):
    picture = tmp_path / "two.png"
    cv2.imwrite(str(picture), cv2.cvtColor(two_people(), cv2.COLOR_RGB2BGR))
    result = subprocess.run(
        [sys.executable, "-m", "ikol_backend", "estimate", str(picture), "-o", str(tmp_path / "m.npz"),
         "--person", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 4
    assert result.stderr.splitlines()[-1] == (
        "error: Person 2 was asked for (0 is the largest), but only 2 people were found.")
    assert not (tmp_path / "m.npz").exists()


def test_video_mode_showing_someone_else_is_not_asked_again():
    """Video mode latched onto the small person while the big one is followed."""
    with BlazePose() as detector, BlazePose(video=True) as follower:
        small_only = two_people()
        small_only[:, :SMALL_LEFT - 20] = small_only[0, -1]  # paint the big person out
        follower.detect(small_only)  # now it follows the small person
        tracker = PersonTracker(detector, 0, video=follower)
        first = tracker.track(two_people())  # the start: a search, the big person
        second = tracker.track(two_people(6))
    assert tracker.video is None
    assert landmarks_box(first).x1 < SMALL_LEFT and landmarks_box(second).x1 < SMALL_LEFT


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
        mirror._pose.detect = lambda image: elsewhere  # as if the mirror showed another person
        assert mirror.averaged(rgb, marks) is marks
