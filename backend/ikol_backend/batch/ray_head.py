"""`python -m ikol_backend.batch.ray_head FOLDER PORT CLIENT_PORT CPUS`: the private Ray head
of `--ray local`, ended with the batch that started it however that batch ends.

cluster.PrivateRay runs it in a process group of its own. It starts Ray's own `ray start
--head --block` (GCS on 127.0.0.1:PORT, the Ray Client server on CLIENT_PORT, CPUS CPUs, Ray's
files in FOLDER/ray) in another group of its own, its output in FOLDER/ray-start.log, and
prints one line: `started` once Ray says it runs, or `failed: ` and Ray's last line. Meanwhile
it reads its standard input. When that closes (the batch is done, or its process was killed,
SIGKILL included), when it gets SIGTERM or when Ray's head ends by itself, it ends that
group: exactly this head's processes and workers, no other Ray on the machine. Then it
removes FOLDER. SIGINT (a Ctrl-C at the terminal) is left to the batch.

Loopback only: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray's single-machine mode, its default on
Windows and macOS) stops `ray start` from replacing 127.0.0.1 by the machine's external
address; with its node on 127.0.0.1, each Ray server listens on 127.0.0.1 only. Standard
library only.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..process_group import end_group, group_options

HEAD_STOP_S = 2.0  # after the stop request, Ray's group gets this long before it is killed
LOG_NAME = "ray-start.log"
STARTED = b"Ray runtime started"  # what `ray start` prints once the head runs
SINGLE_MACHINE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def head_command(folder: Path, port: int, client_port: int, cpus: int) -> list[str]:
    """Ray's `ray start` for a head on 127.0.0.1 that blocks until it is ended."""
    return [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            "--node-ip-address=127.0.0.1", f"--port={port}",
            f"--ray-client-server-port={client_port}", f"--num-cpus={cpus}",
            f"--temp-dir={folder / 'ray'}", "--include-dashboard=false",
            "--disable-usage-stats"]


def _say(line: str) -> None:
    """Tell the batch (standard output)."""
    try:
        print(line, flush=True)
    except OSError:  # the batch is gone: nobody to tell
        pass


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> None:
    folder, port, client_port, cpus = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    head = None
    try:
        with open(folder / LOG_NAME, "ab") as log:
            head = subprocess.Popen(head_command(folder, port, client_port, cpus),
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env={**os.environ, **SINGLE_MACHINE},
                                    **group_options())
        closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), closed.set()),
                         daemon=True).start()
        started = False
        while not closed.wait(0.1) and head.poll() is None:
            if not started and STARTED in (folder / LOG_NAME).read_bytes():
                _say("started")
                started = True
        if not started:
            lines = (folder / LOG_NAME).read_text(errors="replace").strip().splitlines()
            _say("failed: " + (lines[-1] if lines else f"exit code {head.poll()}"))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up runs to its end
        if head is not None:
            end_group(head, HEAD_STOP_S)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
