"""A quick self-test of tests/tools/people_scene.py's truth (the renders of several people for
issue 20), on the renders in its cache (${IKOL_BENCH_CACHE:-~/.cache/ikol-for-blender}/
people/v<VERSION>): items missing there are rendered first, in a child process (Blender, one
thread: about 25 minutes for all of them on 2 busy cores, once per machine); with the cache
warm the tests read JSON and a few PNG files and take a few seconds."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import people_scene  # noqa: E402  (numpy only at import)


def truth_of(item: str) -> people_scene.Truth:
    """The item's truth from the cache, rendering its scenario there first if missing."""
    scenario = item.split("_")[0]
    if people_scene.cached(item) is None:
        subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "people_scene.py"),
                        scenario, "--threads", "1"], check=True, timeout=3600)
    rendered = people_scene.cached(item)
    assert rendered is not None, f"{item} is not in {people_scene.default_cache()}"
    return people_scene.load_truth(rendered.truth)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_index_colours_decode_back() -> None:
    image = np.zeros((1, 8, 3), np.uint8)
    for person in range(7):
        r, g, b = people_scene.id_colour(person)
        image[0, person] = (255 * b, 255 * g, 255 * r)  # BGR, as OpenCV reads it
    assert people_scene.decode_ids(image).tolist() == [[0, 1, 2, 3, 4, 5, 6, -1]]


def test_crossing_hides_the_far_person_in_the_middle_only() -> None:
    truth = truth_of("crossing")
    assert truth.kind == "clip" and truth.people == 2 and truth.frames == 75
    far, near = truth.visible[:, 0], truth.visible[:, 1]
    assert near.all()
    hidden = np.flatnonzero(~far)
    assert 2 <= len(hidden) <= 25
    assert hidden.min() > 10 and hidden.max() < 65  # around the crossing, not at the ends
    assert np.all(np.diff(hidden) == 1)  # one stretch
    # while hidden, most of the far person's joints in the image are covered by the other
    covered = truth.occluded[hidden, 0, :24].sum(-1) / truth.in_image[hidden, 0, :24].sum(-1)
    assert covered.mean() > 0.5
    assert not truth.occluded[:, 1].any()  # nobody covers the near person
    # the two walk past each other: their horizontal order swaps
    side = np.sign(truth.joints_2d[:, 0, 0, 0] - truth.joints_2d[:, 1, 0, 0])
    assert side[0] != side[-1]


def test_behind_walker_is_hidden_by_the_one_standing() -> None:
    truth = truth_of("behind")
    assert truth.people == 2
    assert truth.visible[:, 0].all()  # standing in front
    hidden = np.flatnonzero(~truth.visible[:, 1])
    assert len(hidden) >= 3 and 5 < hidden.min() and hidden.max() < truth.frames - 5
    still = truth.joints_cam[:, 0, 0]
    assert np.ptp(still, axis=0).max() < 0.01  # the pelvis stands still (metres)


def test_group_boxes_are_distinct_and_overlap_partly() -> None:
    truth = truth_of("group")
    assert truth.kind == "still" and truth.frames == 1 and truth.people == 4
    assert truth.visible.all()
    boxes = truth.boxes[0]
    pairs = [iou(boxes[i], boxes[j]) for i in range(4) for j in range(i + 1, 4)]
    assert max(pairs) < 0.5
    assert min(truth.visible_share[0]) < 0.95  # someone stands partly behind another
    depths = truth.joints_cam[0, :, 0, 2]  # pelvis depth, metres
    assert len(np.unique(depths.round(1))) == 4 and 3.0 < depths.min() < depths.max() < 7.0


def test_closeups_cut_at_chest_and_waist() -> None:
    names = people_scene.JOINT_NAMES
    chest, waist = truth_of("closeup_chest"), truth_of("closeup_waist")
    for truth in (chest, waist):
        assert truth.people == 1 and truth.visible.all()
    inside = dict(zip(names, chest.in_image[0, 0]))
    assert inside["head"] and inside["neck"] and inside["left_shoulder"]
    assert not inside["pelvis"] and not inside["left_hip"] and not inside["left_elbow"]
    inside = dict(zip(names, waist.in_image[0, 0]))
    assert inside["head"] and inside["left_shoulder"] and inside["spine2"]
    assert not inside["left_hip"] and not inside["left_knee"]


def test_truth_agrees_with_the_camera_and_the_index_render() -> None:
    truth = truth_of("group")
    rendered = people_scene.cached("group")
    meta = json.loads(rendered.truth.read_text())
    fx, fy, cx, cy = (meta["camera"][k] for k in ("fx", "fy", "cx", "cy"))
    cam = truth.joints_cam[0]
    uv = np.stack([fx * cam[..., 0] / cam[..., 2] + cx, fy * cam[..., 1] / cam[..., 2] + cy], -1)
    assert np.abs(uv - truth.joints_2d[0]).max() < 0.01
    ids = people_scene.decode_ids(cv2.imread(str(rendered.truth.parent / meta["frames"][0]["ids"])))
    for person, record in enumerate(meta["frames"][0]["people"]):
        assert (ids == person).sum() == record["pixels"]
        u0, v0, u1, v1 = record["visible_box"]
        assert (ids[v0:v1, u0:u1] == person).any() and not (ids[:, :u0] == person).any()


@pytest.mark.parametrize("scenario", people_scene.SCENARIOS)
def test_every_scenario_has_distinct_people(scenario: str) -> None:
    setups = people_scene.setups(scenario)
    for setup in setups:
        looks = [a.look for a in setup.actors]
        assert len(set(looks)) == len(looks)
        assert len({len(a.angles) for a in setup.actors}) == 1
