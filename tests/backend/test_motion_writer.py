"""Motion files are written whole or not at all."""

import json
from pathlib import Path

import numpy as np
import pytest

from ikol_backend.errors import BackendError
from ikol_backend.writers.motion import check_output, check_people_output, write_motion, write_people


def test_written_file_reads_back(tmp_path: Path):
    path = tmp_path / "m.npz"
    write_motion(path, {"poses": np.ones((2, 72), np.float32)})
    with np.load(path) as data:
        assert data["poses"].shape == (2, 72)
        assert int(data["format_version"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path: Path):
    path = tmp_path / "m.npz"
    write_motion(path, {"poses": np.zeros((1, 72), np.float32)})
    before = path.read_bytes()

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_motion(path, {"poses": Unsaveable()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(BackendError) as error:
        write_motion(tmp_path / "nope" / "m.npz", {})
    assert error.value.code == "output_unwritable"
    assert error.value.message == f"Output folder does not exist: {tmp_path / 'nope'}"


def test_an_existing_folder_as_the_output_is_refused_and_left_alone(tmp_path: Path):
    folder = tmp_path / "taken.npz"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    for call in (lambda: check_output(folder), lambda: write_motion(folder, {})):
        with pytest.raises(BackendError) as error:
            call()
        assert (error.value.code, error.value.message) == (
            "output_unwritable", f"The output is a folder, not a file name: {folder}")
    assert [p.name for p in tmp_path.iterdir()] == ["taken.npz"]
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_json_on_request_holds_the_same_keys_and_values(tmp_path: Path):
    arrays = {"poses": np.arange(144, dtype=np.float32).reshape(2, 72) / 7,
              "valid": np.array([True, False]), "gender": np.array("neutral")}
    write_motion(tmp_path / "m.json", arrays)
    write_motion(tmp_path / "m.npz", arrays)
    loaded = json.loads((tmp_path / "m.json").read_text())
    with np.load(tmp_path / "m.npz") as npz:
        assert sorted(loaded) == sorted(npz.files)
        for key in npz.files:
            assert np.array_equal(np.array(loaded[key], dtype=npz[key].dtype), npz[key]), key



def test_written_file_has_the_permissions_of_a_plainly_created_file(tmp_path: Path):
    write_motion(tmp_path / "m.npz", {"poses": np.zeros((1, 72), np.float32)})
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "m.npz").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_people_are_written_all_or_nothing_and_stale_people_go(tmp_path: Path):
    folder = tmp_path / "people"
    one = {"poses": np.zeros((1, 72), np.float32)}
    assert write_people(folder, [one, one, one]) == ["person0.npz", "person1.npz", "person2.npz"]
    (folder / "notes.txt").write_text("mine")
    assert write_people(folder, [one]) == ["person0.npz"]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "person0.npz"]  # only ours went

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("cannot save")

    with pytest.raises(RuntimeError):
        write_people(folder, [one, {"poses": Unsaveable()}])
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "person0.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["people"]  # no staging folder left
    with pytest.raises(BackendError) as caught:
        check_people_output(folder / "notes.txt")
    assert caught.value.code == "output_unwritable"
