"""`ikol-backend batch`: real clips, real worker processes, a real Ray cluster started here on
127.0.0.1 (one for the module, stopped after), real signals and a real killed worker."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from ikol_backend.batch.inputs import expand, output_names
from ikol_backend.batch.manifest import Manifest, Record, settings_hash
from ikol_backend.errors import BackendError
from tests.tools.sample_clip import write_frames

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
SHIFT_PX = 3  # the person moves right by this much per frame
NOISE = {"stderr": subprocess.DEVNULL}


def clip_frames(count: int) -> list[np.ndarray]:
    photo = cv2.imread(str(SAMPLE))
    return [np.roll(photo, SHIFT_PX * (i - count // 2), axis=1) for i in range(count)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of clips: two good ones (8 and 30 frames) and a broken one."""
    folder = tmp_path_factory.mktemp("batch") / "clips"
    folder.mkdir()
    write_frames(folder / "short.mp4", clip_frames(8))
    write_frames(folder / "long.mp4", clip_frames(30))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 100)
    return folder


@pytest.fixture(scope="module")
def references(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`estimate`'s motion file for each good clip (the clip given by its absolute path)."""
    folder = tmp_path_factory.mktemp("references")
    made = {}
    for name in ("short", "long"):
        output = folder / f"{name}.npz"
        result = subprocess.run([sys.executable, "-m", "ikol_backend", "estimate",
                                 str(clips / f"{name}.mp4"), "-o", str(output)], **NOISE, timeout=300)
        assert result.returncode == 0
        made[name] = output
    return made


def batch(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ikol_backend", "batch", *map(str, args),
                             "--events"], stdout=subprocess.PIPE, text=True, env=env, **NOISE)


def finish(process: subprocess.Popen) -> tuple[int, list[dict]]:
    stdout, _ = process.communicate(timeout=300)
    return process.returncode, [json.loads(line) for line in stdout.splitlines()]


def manifest_lines(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / "manifest.jsonl").read_text().splitlines()]


def assert_same_motion(made: Path, reference: Path) -> None:
    """The same keys and values as `estimate`'s file: exactly, but for float32 rounding where
    the worker's torch uses another number of threads (a few 1e-6)."""
    with np.load(made) as ours, np.load(reference) as theirs:
        assert sorted(ours.files) == sorted(theirs.files)
        for key in theirs.files:
            if theirs[key].dtype.kind == "f":
                np.testing.assert_allclose(ours[key], theirs[key], rtol=0, atol=1e-4, err_msg=key)
            else:
                assert np.array_equal(ours[key], theirs[key]), key


# --- Inputs, names and the manifest -------------------------------------------------------

def test_a_folder_with_videos_is_a_folder_of_clips_and_one_without_is_a_sequence(tmp_path: Path):
    clips_folder, shots = tmp_path / "clips", tmp_path / "shots"
    clips_folder.mkdir(), shots.mkdir()
    for name in ("walk10.mp4", "walk2.MOV", "thumb.jpg", ".hidden.mp4", "notes.txt"):
        (clips_folder / name).write_bytes(b"x")
    (shots / "0001.png").write_bytes(b"x")
    expanded = expand([str(clips_folder), str(shots)])
    assert [(i.path, i.output) for i in expanded.inputs] == [
        (clips_folder / "walk2.MOV", "walk2.npz"), (clips_folder / "walk10.mp4", "walk10.npz"),
        (shots, "shots.npz")]
    assert len(expanded.warnings) == 1 and "1 image file(s) are not used" in expanded.warnings[0]


def test_a_list_file_names_inputs_relative_to_itself_and_a_repeat_counts_once(tmp_path: Path):
    (tmp_path / "lists").mkdir()
    listed = tmp_path / "lists" / "inputs.txt"
    listed.write_text("# my clips\n\n../a.mp4\n  /elsewhere/b.mp4  \n../a.mp4\n")
    expanded = expand([f"@{listed}", str(tmp_path / "a.mp4"), "c.mp4"], ".json", cwd=tmp_path)
    assert [(str(i.path), i.output) for i in expanded.inputs] == [
        (str(tmp_path / "a.mp4"), "a.json"), ("/elsewhere/b.mp4", "b.json"),
        (str(tmp_path / "c.mp4"), "c.json")]
    with pytest.raises(BackendError) as error:
        expand(["@missing.txt"], cwd=tmp_path)
    assert error.value.code == "bad_option" and error.value.exit_code == 2


def test_colliding_names_get_a_hash_of_their_path_whatever_the_order():
    paths = [Path("/a/walk.mp4"), Path("/b/Walk.avi"), Path("/c/run.mp4")]
    names = [i.output for i in output_names(paths)]
    assert names[2] == "run.npz"
    assert names[0].startswith("walk-") and names[1].startswith("Walk-") and len(set(names)) == 3
    assert [i.output for i in output_names(paths[::-1])] == names[::-1]


def test_the_settings_hash_follows_the_options_and_the_manifest_is_locked(tmp_path: Path):
    options = {"smooth": 0.25, "device": "auto", "smpl": None}
    same = settings_hash(dict(options), ".npz")
    assert same == settings_hash(dict(reversed(options.items())), ".npz")
    assert same != settings_hash({**options, "smooth": 0.5}, ".npz")
    assert same != settings_hash(options, ".json")
    manifest = Manifest(tmp_path)
    try:
        manifest.append(Record("/in/a.mp4", "a.npz", "done", 1, same, frames=3))
        with open(manifest.path, "a") as handle:
            handle.write('{"input": "/in/b.mp4", "output": "b.n')  # a line cut short by a crash
        with pytest.raises(BackendError) as error:
            Manifest(tmp_path)
        assert error.value.code == "output_busy" and error.value.exit_code == 5
    finally:
        manifest.close()
    again = Manifest(tmp_path)
    try:
        assert again.finished_with("/in/a.mp4", "a.npz", same)["frames"] == 3
        assert again.finished_with("/in/a.mp4", "a.npz", "other") is None
        assert again.finished_with("/in/b.mp4", "b.npz", same) is None
    finally:
        again.close()


# --- Local workers ------------------------------------------------------------------------

def test_a_folder_with_a_broken_clip_then_the_rerun_skips_the_good_ones(
        clips: Path, references: dict[str, Path], tmp_path: Path):
    outdir = tmp_path / "out"
    began = time.perf_counter()
    code, events = finish(batch(clips, "-o", outdir, "--workers", "2"))
    first_s = time.perf_counter() - began
    assert code == 6
    assert sorted(p.name for p in outdir.iterdir()) == ["long.npz", "manifest.jsonl", "short.npz"]
    for name, reference in references.items():
        assert_same_motion(outdir / f"{name}.npz", reference)
    lines = manifest_lines(outdir)
    assert sorted((line["output"], line["status"]) for line in lines) == [
        ("broken.npz", "failed"), ("long.npz", "done"), ("short.npz", "done")]
    by_output = {line["output"]: line for line in lines}
    assert by_output["broken.npz"]["error"]["code"] == "input_unreadable"
    assert by_output["long.npz"]["frames"] == 30 and by_output["short.npz"]["frames"] == 8
    assert len({line["settings"] for line in lines}) == 1
    assert events[0]["event"] == "batch_start" and events[0]["workers"] == 2
    assert events[-1] == {"event": "result", "path": str(outdir / "manifest.jsonl"),
                          "summary": {**events[-1]["summary"], "inputs": 3, "done": 2,
                                      "failed": 1, "skipped": 0, "frames": 38}}
    progress = [e for e in events if e["event"] == "batch_progress"]
    assert progress[-1]["inputs_done"] == 3 and progress[-1]["frames_done"] == 38

    began = time.perf_counter()
    code, events = finish(batch(clips, "-o", outdir, "--workers", "2"))
    again_s = time.perf_counter() - began
    assert code == 6
    rerun = manifest_lines(outdir)[len(lines):]
    assert sorted((line["output"], line["status"]) for line in rerun) == [
        ("broken.npz", "failed"), ("long.npz", "skipped"), ("short.npz", "skipped")]
    assert again_s < 0.5 * first_s, (again_s, first_s)


def test_sigterm_mid_batch_keeps_finished_outputs_leaves_no_partial_file_and_resumes(
        clips: Path, tmp_path: Path):
    outdir = tmp_path / "out"
    process = batch(clips / "short.mp4", clips / "long.mp4", "-o", outdir, "--workers", "1")
    seen = []
    for line in process.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == "input_start" and seen[-1]["input"].endswith("long.mp4"):
            process.send_signal(signal.SIGTERM)  # the worker has just opened the clip
            break
    code, events = finish(process)
    assert code == 130 and events[-1]["code"] == "interrupted"
    assert [e["output"] for e in seen + events if e["event"] == "input_end"] == ["short.npz"]
    assert sorted(p.name for p in outdir.iterdir()) == ["manifest.jsonl", "short.npz"]
    assert [line["status"] for line in manifest_lines(outdir)] == ["done"]

    code, events = finish(batch(clips / "short.mp4", clips / "long.mp4", "-o", outdir))
    assert code == 0
    assert [(e["output"], e["status"]) for e in events if e["event"] == "input_end"] == [
        ("short.npz", "skipped"), ("long.npz", "done")]


def test_usage_errors_exit_2_before_any_work(tmp_path: Path):
    for args, message in (
            (["--workers", "0"], "--workers must be 1 or more"),
            (["--gpu-share", "0.5"], "--gpu-share is for Ray workers on GPUs"),
            (["--stride", "0"], "stride must be 1 or more"),
            ([f"@{tmp_path / 'none.txt'}"], "Cannot read the input list")):
        code, events = finish(batch(*args, SAMPLE, "-o", tmp_path / "out"))
        assert code == 2 and [e["event"] for e in events] == ["error"], (args, events)
        assert message in events[0]["message"]
    assert not (tmp_path / "out").exists()


# --- Ray ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head node on 127.0.0.1 (2 CPUs) for this module: its address and the environment
    that reaches it (Ray's token authentication with a token of its own). Started with Ray's
    own `ray start`, in a session of its own, and ended by signalling that session."""
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
         f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)
    started = threading.Event()

    def watch() -> None:
        for line in head.stdout:
            if "Ray runtime started" in line:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert started.wait(120), "ray start did not start"
        yield f"127.0.0.1:{port}", env
    finally:
        for number, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
            try:
                os.killpg(head.pid, number)
                head.wait(timeout=wait_s)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        subprocess.run(["rm", "-rf", temp])


def test_on_ray_a_worker_killed_mid_clip_is_retried_and_the_outputs_match_estimate(
        ray_cluster: tuple[str, dict[str, str]], clips: Path, references: dict[str, Path],
        tmp_path: Path):
    address, env = ray_cluster
    outdir = tmp_path / "out"
    process = batch(clips, "-o", outdir, "--ray", address, env=env)
    seen, killed = [], None
    for line in process.stdout:
        seen.append(json.loads(line))
        event = seen[-1]
        if killed is None and event["event"] == "input_start" and event["input"].endswith("long.mp4"):
            killed = int(event["worker"].rsplit(":", 1)[1])
            os.kill(killed, signal.SIGKILL)
            break
    code, events = finish(process)
    events = seen + events
    assert killed is not None and code == 6
    assert events[0]["event"] == "batch_start" and events[0]["runner"] == "ray"
    lines = manifest_lines(outdir)
    long_lines = [line for line in lines if line["output"] == "long.npz"]
    assert [(line["status"], line["attempt"]) for line in long_lines] == [("failed", 1), ("done", 2)]
    assert long_lines[0]["error"]["code"] == "worker_lost" and long_lines[0]["retry"] is True
    assert long_lines[0]["worker"].endswith(f":{killed}")
    assert {line["output"]: line["status"] for line in lines if line["output"] != "long.npz"} == {
        "short.npz": "done", "broken.npz": "failed"}
    for name, reference in references.items():
        assert_same_motion(outdir / f"{name}.npz", reference)
    assert sorted(p.name for p in outdir.iterdir()) == ["long.npz", "manifest.jsonl", "short.npz"]


# --- Retries, with a stand-in pool whose worker always dies ---------------------------------

class _DyingPool:
    """One worker that is ready at once and dies on every job."""

    runner, size = "local", 1

    def __init__(self) -> None:
        self.messages = [{"kind": "ready", "worker": "here:1", "version": "0.1.0"}]
        self.free = ["here:1"]

    def idle(self) -> list[str]:
        return list(self.free)

    def submit(self, worker: str, job) -> None:
        self.free.remove(worker)
        self.messages.append({"kind": "lost", "job": job.key, "worker": worker,
                              "message": "The worker process here:1 died (killed by signal 9)."})

    def next_message(self, timeout: float) -> dict | None:
        if not self.messages:
            return None
        message = self.messages.pop(0)
        if message["kind"] == "lost":
            self.free.append("here:1")  # replaced
        return message


def test_a_clip_whose_worker_always_dies_is_tried_retries_plus_one_times(tmp_path: Path):
    from ikol_backend.batch.runner import Runner
    from ikol_backend.events import Events

    manifest = Manifest(tmp_path)
    try:
        runner = Runner(output_names([Path("/in/a.mp4")]), tmp_path, manifest, "s", 2,
                        Events(json_lines=False))
        jobs, skipped = runner.pending()
        totals = runner.run(jobs, skipped, _DyingPool(), "local")
    finally:
        manifest.close()
    lines = manifest_lines(tmp_path)
    assert [(line["attempt"], line["status"], line["error"]["code"], line["retry"])
            for line in lines] == [(1, "failed", "worker_lost", True),
                                   (2, "failed", "worker_lost", True),
                                   (3, "failed", "worker_lost", False)]
    assert "Trying again (attempt 2 of 3)" in lines[0]["error"]["message"]
    assert (totals.done, totals.failed) == (0, 1)


def test_for_people_a_line_per_input_and_a_bar_over_inputs_and_frames():
    import io

    from ikol_backend.events import Events

    stream = io.StringIO()
    events = Events(json_lines=False, stream=stream)
    events.emit("batch_start", inputs=3, pending=2, skipped=1, workers=2, runner="local",
                settings="abc", manifest="/o/manifest.jsonl")
    events.emit("input_end", input="/in/b.mp4", output="b.npz", status="failed", attempt=1,
                error={"code": "input_unreadable", "message": "Cannot open video: /in/b.mp4"})
    events.emit("batch_progress", inputs_done=2, inputs=3, frames_done=40, frames_total=80,
                frames_per_s=20.0)
    events.emit("result", path="/o/manifest.jsonl", summary={
        "inputs": 3, "done": 1, "failed": 1, "skipped": 1, "frames": 80, "seconds": 4.0})
    assert stream.getvalue().splitlines() == [
        "ikol-backend batch: 3 input(s), 1 up to date, 2 to do on 2 local worker(s); settings abc",
        "failed: /in/b.mp4: Cannot open video: /in/b.mp4",
        "[####################..........] 2/3 inputs, 40/80 frames, 20.0 frames/s",
        "Batch: 1 done, 1 failed, 1 skipped of 3 input(s), 80 frame(s) in 4.0 s. "
        "Manifest: /o/manifest.jsonl"]


def test_everyone_in_each_input_gets_a_folder_of_person_files_and_a_rerun_skips_them(tmp_path: Path):
    photo = cv2.imread(str(SAMPLE))
    pair = np.concatenate([photo, cv2.flip(photo, 1)], axis=1)  # two people side by side
    cv2.imwrite(str(tmp_path / "pair.png"), pair)
    outdir = tmp_path / "motion"
    code, events = finish(batch(tmp_path / "pair.png", SAMPLE, "-o", outdir, "--people", "all",
                                "--workers", "1"))
    assert code == 0, events
    assert sorted(p.name for p in (outdir / "pair").iterdir()) == ["person0.npz", "person1.npz"]
    assert sorted(p.name for p in (outdir / "person").iterdir()) == ["person0.npz"]
    sides = []
    for name in ("person0.npz", "person1.npz"):
        with np.load(outdir / "pair" / name) as motion:
            sides.append(bool(motion["keypoints_2d"][0, :24, 0].mean() > photo.shape[1]))
    assert sorted(sides) == [False, True]  # one file for each of the two
    assert [line["status"] for line in manifest_lines(outdir)] == ["done", "done"]
    code, _ = finish(batch(tmp_path / "pair.png", SAMPLE, "-o", outdir, "--people", "all",
                           "--workers", "1"))
    assert code == 0 and [line["status"] for line in manifest_lines(outdir)][2:] == ["skipped"] * 2
    code, events = finish(batch(SAMPLE, "-o", tmp_path / "json", "--people", "all", "--format", "json"))
    assert code == 2 and "leave out --format json" in events[-1]["message"]
