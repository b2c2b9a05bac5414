"""`batch --ray local`: the private Ray listens on loopback only, and ends with the batch,
exactly its own processes, when the batch ends and when it is SIGKILLed. Real Ray, real
processes; the sockets are read from /proc (Linux)."""

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.tools.sample_clip import write_frames

pytest.importorskip("ray")  # the backend's `cluster` extra, in the project's environment

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "person.png"
GONE_S = 20.0  # the private Ray must be gone within this long of the batch's end


def children() -> dict[int, list[int]]:
    """Parent pid -> its children's pids, now."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def with_descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        found.add(todo[-1])
        todo.extend(tree.get(todo.pop(), []))
    return found


def alive(pid: int) -> bool:
    """Runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/{tcp,udp}[6]: hex, in 32-bit words of the host's byte order."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening(pids: set[int]) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every listening TCP and bound UDP socket of `pids`."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        for row in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and (state == "0A" or protocol.startswith("udp")):
                address, port = local.split(":")
                found.append((protocol, str(_address(address)), int(port, 16)))
    return found


def is_loopback(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    return parsed.is_loopback or (parsed.version == 6 and parsed.ipv4_mapped is not None
                                  and parsed.ipv4_mapped.is_loopback)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip long enough to be running while the test looks (60 frames)."""
    photo = cv2.imread(str(SAMPLE))
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    write_frames(path, [np.roll(photo, 3 * (i - 30), axis=1) for i in range(60)])
    return path


def start_batch(clip: Path, outdir: Path) -> tuple[subprocess.Popen, list[dict]]:
    """The batch on a private Ray, read until its worker has opened the clip."""
    process = subprocess.Popen([sys.executable, "-m", "ikol_backend", "batch", str(clip), "-o",
                                str(outdir), "--ray", "local", "--events"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events = []
    for line in process.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] in ("input_start", "error", "result"):
            break
    assert events[-1]["event"] == "input_start", events
    return process, events


def private_ray(batch_pid: int) -> tuple[set[int], Path]:
    """The batch's child processes (its keeper, Ray's processes, the actors) and Ray's folder."""
    pids = with_descendants(batch_pid) - {batch_pid}
    keeper = [pid for pid in pids
              if b"ikol_backend.batch.ray_head" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(keeper) == 1
    folder = Path(Path(f"/proc/{keeper[0]}/cmdline").read_bytes().split(b"\0")[3].decode())
    assert folder.is_dir()
    return pids, folder


def assert_gone(pids: set[int], ports: set[int], folder: Path) -> None:
    deadline = time.monotonic() + GONE_S
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in pids if alive(pid)]
    assert not left, left
    everyone = {int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat")}
    assert not {port for _, _, port in listening(everyone)} & ports
    assert not folder.exists()


@pytest.fixture
def bystander(tmp_path: Path):
    """A process named like one of Ray's (`raylet`) that is not ours: it must survive."""
    name = tmp_path / "raylet"
    name.symlink_to("/bin/sleep")
    process = subprocess.Popen([str(name), "600"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_a_private_ray_listens_on_loopback_only_and_ends_with_the_batch(
        clip: Path, tmp_path: Path, bystander: subprocess.Popen):
    process, events = start_batch(clip, tmp_path / "out")
    try:
        pids, folder = private_ray(process.pid)
        sockets = listening(pids | {process.pid})
        assert len({port for _, _, port in sockets}) >= 4, sockets  # GCS, raylet, client, actors
        assert all(is_loopback(address) for _, address, _ in sockets), sockets
        stdout, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0 and json.loads(stdout.splitlines()[-1])["event"] == "result"
    assert_gone(pids, {port for _, _, port in sockets}, folder)
    assert bystander.poll() is None


def test_a_sigkilled_batch_leaves_no_ray_process_socket_or_folder(
        clip: Path, tmp_path: Path, bystander: subprocess.Popen):
    process, _ = start_batch(clip, tmp_path / "out")
    try:
        pids, folder = private_ray(process.pid)
        ports = {port for _, _, port in listening(pids)}
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    assert_gone(pids, ports, folder)
    assert bystander.poll() is None
