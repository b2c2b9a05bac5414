"""The batch manifest written safely: a cut last line loses nothing else, a symbolic link is
refused, hand-edited values are not trusted, and the lock works on Windows' terms too."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ikol_backend.batch import manifest as manifest_module
from ikol_backend.batch.manifest import Manifest, Record
from ikol_backend.errors import BackendError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"


def lines_of(path: Path) -> list[str]:
    return path.read_text().split("\n")


def test_a_cut_last_line_costs_only_itself(tmp_path: Path):
    first = Manifest(tmp_path)
    first.append(Record("/in/a.mp4", "a.npz", "done", 1, "s", frames=3, valid_frames=3))
    first.close()
    with open(tmp_path / "manifest.jsonl", "a") as handle:
        handle.write('{"input": "/in/b.mp4", "output": "b.n')  # a crash while writing
    second = Manifest(tmp_path)
    second.append(Record("/in/c.mp4", "c.npz", "done", 1, "s", frames=5, valid_frames=4))
    second.append(Record("/in/d.mp4", "d.npz", "done", 1, "s", frames=6, valid_frames=6))
    second.close()
    text = lines_of(tmp_path / "manifest.jsonl")
    assert text[1] == '{"input": "/in/b.mp4", "output": "b.n' and text[-1] == ""
    assert [json.loads(line)["output"] for line in text[2:-1]] == ["c.npz", "d.npz"]
    third = Manifest(tmp_path)
    try:
        assert third.finished_with("/in/a.mp4", "a.npz", "s")["frames"] == 3
        assert third.finished_with("/in/c.mp4", "c.npz", "s")["valid_frames"] == 4
        assert third.finished_with("/in/d.mp4", "d.npz", "s") is not None
        assert third.finished_with("/in/b.mp4", "b.npz", "s") is None
    finally:
        third.close()


@pytest.mark.parametrize("edit", [
    {"frames": "lots"}, {"frames": True}, {"frames": -1}, {"valid_frames": 1.5},
    {"frames": 3, "valid_frames": 4}, {"settings": 7}, {"input": None}, {"status": ["done"]}])
def test_a_hand_edited_line_is_not_trusted(tmp_path: Path, edit: dict):
    good = {"input": "/in/a.mp4", "output": "a.npz", "status": "done", "attempt": 1,
            "settings": "s", "frames": 3, "valid_frames": 2}
    with open(tmp_path / "manifest.jsonl", "w") as handle:
        handle.write(json.dumps(good) + "\n" + "[1, 2]\n" + json.dumps({**good, **edit}) + "\n")
    manifest = Manifest(tmp_path)
    try:
        # the edited line and the stray array are passed over: the good line is the latest
        assert manifest.finished_with("/in/a.mp4", "a.npz", "s") == good
    finally:
        manifest.close()


def test_a_hand_edited_value_never_reaches_a_new_line_or_event(tmp_path: Path):
    """The batch itself, on a photo whose earlier `done` line says `"frames": "lots"`: the
    photo is estimated again, and nothing says "lots"."""
    outdir = tmp_path / "out"
    first = subprocess.run([sys.executable, "-m", "ikol_backend", "batch", str(SAMPLE), "-o",
                            str(outdir), "--events"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest_path = outdir / "manifest.jsonl"
    line = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**line, "frames": "lots"}) + "\n")
    again = subprocess.run([sys.executable, "-m", "ikol_backend", "batch", str(SAMPLE), "-o",
                            str(outdir), "--events"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    ends = [json.loads(text) for text in again.stdout.splitlines()
            if json.loads(text)["event"] == "input_end"]
    assert [(end["status"], end["frames"]) for end in ends] == [("done", 1)]
    assert "lots" not in again.stdout and manifest_path.read_text().count("lots") == 1


def test_a_manifest_that_is_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path: Path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "manifest.jsonl").symlink_to(target)
    with pytest.raises(BackendError) as error:
        Manifest(outdir)
    assert error.value.code == "output_unwritable" and "not a regular file" in error.value.message
    result = subprocess.run([sys.executable, "-m", "ikol_backend", "batch", str(SAMPLE), "-o",
                             str(outdir), "--events"], capture_output=True, text=True, timeout=120)
    events = [json.loads(text) for text in result.stdout.splitlines()]
    assert result.returncode == 5 and [e["event"] for e in events] == ["error"]
    assert events[0]["code"] == "output_unwritable"
    assert target.read_text() == "keep me\n" and sorted(os.listdir(outdir)) == ["manifest.jsonl"]
    (outdir / "manifest.jsonl").unlink()
    (outdir / "manifest.jsonl").mkdir()  # a folder in its place: refused the same way
    with pytest.raises(BackendError) as error:
        Manifest(outdir)
    assert error.value.code == "output_unwritable"


class _Msvcrt(types.ModuleType):
    """Windows' msvcrt.locking as Windows does it: a lock on bytes from the file's current
    position, held by one handle; another handle's lock on them fails at once."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self) -> None:
        super().__init__("msvcrt")
        self.held: dict[tuple[int, int, int], int] = {}  # (device, inode, byte) -> fd

    def locking(self, fd: int, mode: int, count: int) -> None:
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino, os.lseek(fd, 0, os.SEEK_CUR))
        assert count == 1 and mode in (self.LK_UNLCK, self.LK_NBLCK)
        if mode == self.LK_UNLCK:
            assert self.held.pop(key) == fd
        elif key in self.held:
            raise PermissionError(13, "Permission denied")
        else:
            self.held[key] = fd


def test_on_windows_the_manifest_is_locked_with_msvcrt_and_no_fcntl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    msvcrt = _Msvcrt()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` fails, as on Windows
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    monkeypatch.setattr(manifest_module.sys, "platform", "win32")
    first = Manifest(tmp_path)
    first.append(Record("/in/a.mp4", "a.npz", "done", 1, "s", frames=3))
    with pytest.raises(BackendError) as error:
        Manifest(tmp_path)
    assert error.value.code == "output_busy"
    first.append(Record("/in/b.mp4", "b.npz", "done", 1, "s", frames=4))  # appends at the end
    first.close()
    assert msvcrt.held == {}
    again = Manifest(tmp_path)
    try:
        assert again.finished_with("/in/b.mp4", "b.npz", "s")["frames"] == 4
        assert len(msvcrt.held) == 1
    finally:
        again.close()
