"""Issue 23 on the backend: bounded input lists, `..` after a link, a full disk and an output
folder turned read-only (real tmpfs and read-only bind mounts: Linux, as root), bench-ik's exit
code. Real subprocesses and signals."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ikol_backend.batch.inputs import MAX_LIST_BYTES, expand, output_names
from ikol_backend.batch.manifest import Manifest
from ikol_backend.batch.runner import Runner
from ikol_backend.batch.worker import Outcome
from ikol_backend.errors import BackendError
from ikol_backend.events import Events

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
BACKEND = [sys.executable, "-m", "ikol_backend"]
AS_ROOT_ON_LINUX = sys.platform.startswith("linux") and os.geteuid() == 0
needs_mounts = pytest.mark.skipif(not AS_ROOT_ON_LINUX,
                                  reason="mounts a tmpfs or a read-only bind mount: Linux, as root")


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs of its own, unmounted after the test."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Fill the file system `folder` is on, with the file `filler`."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.strerror == "No space left on device"


# --- Input lists and paths ----------------------------------------------------------------------

def test_an_endless_or_binary_input_list_is_refused_quickly(tmp_path: Path):
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"a.mp4\n\0\n")
    big = tmp_path / "big.txt"
    big.write_text("a.mp4\n" * (MAX_LIST_BYTES // 6 + 1))
    for listed, message in ((Path("/dev/zero"), "is larger than 1 MB"),
                            (big, "is larger than 1 MB"), (nul, "holds NUL characters")):
        began = time.monotonic()
        result = subprocess.run([*BACKEND, "batch", f"@{listed}", "-o", tmp_path / "out",
                                 "--events"], capture_output=True, text=True, timeout=60)
        assert time.monotonic() - began < 10
        assert result.returncode == 2, result.stderr
        [error] = events_of(result.stdout)
        assert error["code"] == "bad_option" and message in error["message"]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="a named pipe (POSIX) that never ends")
def test_sigterm_ends_a_batch_reading_a_list_that_never_comes(tmp_path: Path):
    pipe = tmp_path / "list"
    os.mkfifo(pipe)
    process = subprocess.Popen([*BACKEND, "batch", f"@{pipe}", "-o", tmp_path / "out",
                                "--events"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # opening the pipe, which blocks: nothing writes to it
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    began = time.monotonic()
    stdout, _ = process.communicate(timeout=30)
    assert time.monotonic() - began < 2
    assert process.returncode == 130
    assert events_of(stdout)[-1]["code"] == "interrupted"


@pytest.mark.skipif(os.name == "nt", reason="Windows resolves `..` by the text (tested: none here)")
def test_dot_dot_after_a_link_names_the_file_the_os_opens(tmp_path: Path):
    (tmp_path / "takes" / "day1").mkdir(parents=True)
    (tmp_path / "takes" / "person.png").write_bytes(b"beside the link's target")
    (tmp_path / "person.png").write_bytes(b"beside the link")
    (tmp_path / "lnk").symlink_to(tmp_path / "takes" / "day1")
    for given in ("lnk/../person.png", str(tmp_path / "lnk" / ".." / "person.png")):
        [item] = expand([given], cwd=tmp_path).inputs
        assert os.path.samefile(item.path, tmp_path / given)
        assert item.path.read_bytes() == b"beside the link's target"
    # links are kept where no `..` follows them, and a `..` after a missing folder fails as
    # the OS fails it
    assert expand(["lnk/x.mp4"], cwd=tmp_path).inputs[0].path == tmp_path / "lnk" / "x.mp4"
    [missing] = expand(["gone/../person.png"], cwd=tmp_path).inputs
    assert not missing.path.exists()


# --- A full disk, a folder turned read-only -----------------------------------------------------

@needs_mounts
def test_a_full_disk_fails_estimate_with_exit_5_and_leaves_nothing(small_tmpfs: Path):
    fill(small_tmpfs)
    result = subprocess.run([*BACKEND, "estimate", SAMPLE, "-o", small_tmpfs / "person.npz",
                             "--events"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    error = events_of(result.stdout)[-1]
    assert error["code"] == "output_unwritable"
    assert error["message"] == f"Cannot write {small_tmpfs / 'person.npz'}: No space left on device"
    assert os.listdir(small_tmpfs) == ["filler"]


class _FinishingPool:
    """One worker, ready at once, that finishes each job as `outcomes` says, calling `before`
    with the job's key first."""

    runner, size = "local", 1

    def __init__(self, outcomes: list[Outcome], before=lambda key: None) -> None:
        self.outcomes = outcomes
        self.before = before
        self.messages: list[dict] = [{"kind": "ready", "worker": "here:1", "version": "0.1.0"}]
        self.free = ["here:1"]
        self.submitted: list[int] = []

    def idle(self) -> list[str]:
        return list(self.free)

    def submit(self, worker: str, job) -> None:
        self.free.remove(worker)
        self.submitted.append(job.key)
        self.messages.append({"kind": "end", "job": job.key, "worker": worker,
                              "outcome": self.outcomes[job.key]})

    def next_message(self, timeout: float) -> dict | None:
        if not self.messages:
            return None
        message = self.messages.pop(0)
        if message["kind"] == "end":
            self.before(message["job"])
            self.free.append("here:1")
        return message


def run_batch(outdir: Path, pool: _FinishingPool) -> BackendError:
    """The pool's jobs for inputs a, b, c into `outdir`; the error that ends the batch."""
    manifest = Manifest(outdir)
    try:
        runner = Runner(output_names([Path(f"/in/{name}.mp4") for name in "abc"]), outdir,
                        manifest, "s", 0, Events(json_lines=False))
        jobs, skipped = runner.pending()
        with pytest.raises(BackendError) as failure:
            runner.run(jobs, skipped, pool, "local")
    finally:
        manifest.close()
    return failure.value


DONE = Outcome(True, people=[{"poses": np.zeros((2, 72), np.float32),
                               "trans": np.zeros((2, 3), np.float32)}], frames=2, valid_frames=2)
FAILED = Outcome(False, code="input_unreadable", message="Cannot decode it.")


@needs_mounts
def test_a_full_disk_ends_a_batch_at_the_first_motion_file_it_cannot_write(small_tmpfs: Path):
    # a's file and line are written; then the disk fills: b's file fails (its line still fits
    # in the manifest's page), and c is never started
    pool = _FinishingPool([DONE, DONE, DONE], before=lambda key: key == 1 and fill(small_tmpfs))
    error = run_batch(small_tmpfs, pool)
    assert error.code == "output_unwritable"
    assert error.message == f"Cannot write {small_tmpfs / 'b.npz'}: No space left on device"
    assert pool.submitted == [0, 1]
    assert sorted(os.listdir(small_tmpfs)) == ["a.npz", "filler", "manifest.jsonl"]
    lines = [json.loads(line) for line in (small_tmpfs / "manifest.jsonl").read_text().splitlines()]
    assert [(line["output"], line["status"]) for line in lines] == [("a.npz", "done"),
                                                                   ("b.npz", "failed")]
    assert lines[1]["error"]["code"] == "output_unwritable"


@needs_mounts
def test_a_full_disk_ends_a_batch_at_the_first_manifest_line_it_cannot_write(small_tmpfs: Path):
    pool = _FinishingPool([FAILED, DONE, DONE])
    fill(small_tmpfs)
    error = run_batch(small_tmpfs, pool)
    assert error.code == "output_unwritable"
    assert error.message == (f"Cannot write the manifest {small_tmpfs / 'manifest.jsonl'}: "
                             "No space left on device")
    assert pool.submitted == [0]
    assert sorted(os.listdir(small_tmpfs)) == ["filler", "manifest.jsonl"]


@needs_mounts
def test_an_outdir_turned_read_only_mid_batch_stops_it_with_exit_5(tmp_path: Path):
    inputs = []
    for name in "abc":
        inputs.append(tmp_path / f"{name}.png")
        shutil.copyfile(SAMPLE, inputs[-1])
    outdir = tmp_path / "out"
    outdir.mkdir()
    process = subprocess.Popen([*BACKEND, "batch", *inputs, "-o", outdir, "--workers", "1",
                                "--events"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    seen, mounted = [], False
    try:
        for line in process.stdout:
            seen.append(json.loads(line))
            if seen[-1]["event"] == "input_start":  # a's worker is estimating it
                subprocess.run(["mount", "--bind", "-o", "ro", outdir, outdir], check=True)
                mounted = True
                break
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if mounted:
            subprocess.run(["umount", outdir], check=True)
    events = seen + events_of(stdout)
    assert process.returncode == 5, stderr
    assert "Traceback" not in stderr
    assert events[-1]["code"] == "output_unwritable"
    assert events[-1]["message"] == f"Cannot write to the output folder {outdir}: Read-only file system"
    assert [e["input"] for e in events if e["event"] == "input_start"] == [str(inputs[0])]
    assert os.listdir(outdir) == ["manifest.jsonl"]  # written before: the open file stays writable
    [line] = [json.loads(text) for text in (outdir / "manifest.jsonl").read_text().splitlines()]
    assert (line["output"], line["status"], line["error"]["code"]) == (
        "a.npz", "failed", "output_unwritable")


# --- bench-ik ------------------------------------------------------------------------------------

def test_bench_ik_exits_0_after_a_successful_run():
    result = subprocess.run([*BACKEND, "bench-ik", "--json", "--batches", "1", "--repeats", "1",
                             "--methods", "gn_closed_form", "--noise-mm", "0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)["rows"]
    assert row["method"] == "gn_closed_form" and row["batch"] == 1
