"""People on their own tracks, on renders of several people with known joints
(tests/tools/people_scene.py; rendered once per machine into its cache, in a child process,
when missing: about 10 minutes for the crossing clip on 2 busy cores, seconds for the stills).

Each person in a file is matched to the true person whose 2D joints lie nearest its keypoints
in each valid frame; a file must follow one person throughout."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import people_scene  # noqa: E402  (numpy only at import)

LIMBS = slice(1, 22)  # SMPL joints 1-21: hips to wrists


def rendered(item: str) -> people_scene.Truth:
    """The item's truth, rendering its scenario into the cache first if missing."""
    if people_scene.cached(item) is None:
        subprocess.run([sys.executable, str(ROOT / "tests" / "tools" / "people_scene.py"),
                        item.split("_")[0], "--threads", "1"], check=True, timeout=3600)
    return people_scene.load_truth(people_scene.cached(item).truth)


def estimate(truth: people_scene.Truth, output: Path, *options: str) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "ikol_backend", "estimate", str(truth.media),
                             "-o", str(output), "--events", *options],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def followed(truth: people_scene.Truth, motion: Path) -> list[int]:
    """For each valid frame of the motion file, the true person its 2D joints lie on."""
    with np.load(motion) as data:
        keypoints, valid = data["keypoints_2d"][:, LIMBS, :2], data["valid"]
    people = []
    for frame in np.flatnonzero(valid):
        distance = np.linalg.norm(truth.joints_2d[frame, :, LIMBS] - keypoints[frame], axis=-1)
        people.append(int(np.argmin(distance.mean(axis=1))))
    return people


@pytest.mark.parametrize("person", [0, 1])
def test_each_of_two_people_crossing_is_followed_alone_in_every_frame(person: int, tmp_path: Path):
    truth = rendered("crossing")
    estimate(truth, tmp_path / "m.npz", "--person", str(person))
    on = followed(truth, tmp_path / "m.npz")
    assert len(set(on)) == 1  # the same person in every valid frame: no switch
    visible = truth.visible[:, on[0]]
    assert len(on) >= 0.8 * visible.sum()  # and in most of the frames where they can be seen


def test_everyone_crossing_gets_one_file_each_without_a_switch(tmp_path: Path):
    truth = rendered("crossing")
    events = estimate(truth, tmp_path / "people", "--people", "all")
    files = sorted((tmp_path / "people").iterdir())
    assert [f.name for f in files] == ["person0.npz", "person1.npz"]
    on = [followed(truth, f) for f in files]
    assert [len(set(people)) for people in on] == [1, 1]
    assert sorted(people[0] for people in on) == [0, 1]
    assert next(e for e in events if e["event"] == "people")["found"] == 2


def test_a_group_photo_gives_one_file_per_person(tmp_path: Path):
    truth = rendered("group")
    estimate(truth, tmp_path / "people", "--people", "all")
    files = sorted((tmp_path / "people").iterdir())
    assert len(files) == truth.people
    assert sorted(followed(truth, f)[0] for f in files) == list(range(truth.people))


@pytest.mark.parametrize("item", ["closeup_chest", "closeup_waist"])
def test_a_body_cut_by_the_frame_is_found(item: str, tmp_path: Path):
    truth = rendered(item)
    estimate(truth, tmp_path / "m.npz")
    assert followed(truth, tmp_path / "m.npz") == [0]
