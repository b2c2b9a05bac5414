"""Finding people and following one (real BlazePose on generated pictures of two people)."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ikol_backend.frontends.blazepose import BlazePose
from ikol_backend.person import Box, PersonTracker, find_people, landmarks_box

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
