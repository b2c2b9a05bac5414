"""`ikol-backend batch INPUT... -o OUTDIR [--workers N] [--ray ADDRESS] [estimate options]`.

Every estimate option applies to every input. Exit codes: 0 when every input is done (or
skipped as up to date), 6 when some failed (each recorded in the manifest), 2 for usage errors
(and for an option that fails every worker the same way, e.g. --device cuda without CUDA, with
`estimate`'s error and exit code: 3 for an unusable checkpoint or SMPL file), 5 when OUTDIR
cannot be written or another batch is using it, 130 when interrupted.
"""

import argparse
import glob
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import EXIT_SOME_FAILED, BackendError
from ..events import Events
from ..interrupts import ignore_signals
from .inputs import expand
from .local import LocalPool, cpu_count, visible_gpus
from .manifest import Manifest, settings_hash
from .runner import Pool, Probe, Runner

DEFAULT_RETRIES = 2  # more attempts for a clip whose worker died
CORES_PER_WORKER = 1  # local default: one worker per core (measured: docs/batch.md)
WORKER_MEMORY = 1 << 30  # bytes a local worker may take (about 0.85 GiB measured at 1080p)
# torch's CPU threads per local worker (Ray gives its 1-CPU actors one too). Measured on 2
# busy cores: with 2 threads the fit of a 6-frame clip took 3.2 s instead of 0.17 s.
WORKER_THREADS = 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `batch` on the `ikol-backend` command line (run(args, events) protocol)."""
    from ..options import add_estimate_options

    parser = subparsers.add_parser(
        "batch", help="estimate many inputs, one motion file each, on local workers or Ray",
        description="Estimate SMPL motion for many inputs at once: one motion file per input "
                    "in OUTDIR, OUTDIR/manifest.jsonl recording each attempt; a re-run skips "
                    "inputs whose motion file is up to date (docs/batch.md).")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a video, a photo, a folder of clips (each video in it), an image "
                             "folder (one sequence) or @LIST (a text file, one path a line)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR",
                        help="folder for the motion files and manifest.jsonl (made if missing)")
    parser.add_argument("--workers", type=int,
                        help="worker processes, each loading the models once (default: one "
                             "per core, or one per GPU; with --ray: what the cluster holds)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the workers on Ray: auto, HOST:PORT, ray://HOST:PORT, or "
                             "local (a private single-machine Ray)")
    parser.add_argument("--gpu-share", type=float,
                        help="with --ray and --device cuda: the GPU fraction each worker asks "
                             "Ray for (default 1)")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                        help=f"more attempts for an input whose worker died (default "
                             f"{DEFAULT_RETRIES})")
    parser.add_argument("--format", choices=("npz", "json"), default="npz",
                        help="motion file format (default npz)")
    add_estimate_options(parser)
    parser.add_argument("--events", action="store_true",
                        help="report progress as JSON lines on stdout")
    parser.set_defaults(run=run)
    return parser


def option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The estimate options the command line gave, by name, paths made absolute (workers may
    run elsewhere, in another folder)."""
    from ..options import add_estimate_options

    probe = argparse.ArgumentParser(add_help=False)
    add_estimate_options(probe)
    values = {name: getattr(args, name) for name in vars(probe.parse_args([]))}
    return {name: value.absolute() if isinstance(value, Path) else value
            for name, value in values.items()}


def run(args: argparse.Namespace, events: Events) -> int:
    """The batch; returns the exit code (0 or 6; errors are raised)."""
    _check(args)
    probe = _probe(args)
    everyone = args.people == "all"
    suffix = "" if everyone else f".{args.format}"  # --people all: a folder per input
    expanded = expand(args.inputs, suffix)
    for warning in expanded.warnings:
        events.emit("warning", code="inputs_not_used", message=warning)
    if not expanded.inputs:
        raise BackendError("bad_option", "No inputs: the lists given are empty.")
    outdir = _output_folder(args.output)
    options = option_values(args)
    settings = settings_hash(options, suffix)
    manifest = Manifest(outdir)
    pool: Pool | None = None
    events.out, sys.stdout = sys.stdout, sys.stderr  # stdout: our events only (Ray prints too)
    try:
        _remove_stale_temporaries(outdir, [item.output for item in expanded.inputs])
        runner = Runner(expanded.inputs, outdir, manifest, settings, args.retries, events,
                        everyone)
        jobs, skipped = runner.pending()
        if jobs:
            pool = _pool(args, options, len(jobs))
            pool.start()
        totals = runner.run(jobs, skipped, pool, "local" if args.ray is None else "ray", probe)
        if pool is not None:
            pool.close()
    except BaseException:
        ignore_signals()  # a second signal must not cut the clean-up short
        if pool is not None:
            pool.close(interrupted=True)
        raise
    finally:
        manifest.close()
        sys.stdout, events.out = events.out, None
    events.emit("result", path=str(manifest.path), summary={
        "inputs": len(expanded.inputs), "done": totals.done, "failed": totals.failed,
        "skipped": totals.skipped, "frames": totals.frames, "seconds": round(runner.seconds(), 3)})
    return EXIT_SOME_FAILED if totals.failed else 0


def _check(args: argparse.Namespace) -> None:
    """Usage errors of the batch's own options, before any work."""
    if args.workers is not None and args.workers < 1:
        raise BackendError("bad_option", f"--workers must be 1 or more, not {args.workers}")
    if args.people == "all" and args.format != "npz":
        raise BackendError("bad_option", "--people all writes a folder of .npz files per input: "
                                         "leave out --format json.")
    if args.retries < 0:
        raise BackendError("bad_option", f"--retries must be 0 or more, not {args.retries}")
    if args.gpu_share is not None:
        if args.ray is None or args.device != "cuda":
            raise BackendError("bad_option", "--gpu-share is for Ray workers on GPUs: use it "
                                             "with --ray and --device cuda.")
        if not 0.0 < args.gpu_share <= 1.0:
            raise BackendError("bad_option", f"--gpu-share must be above 0 and at most 1, "
                                             f"not {args.gpu_share:g}")


def _output_folder(folder: Path) -> Path:
    """OUTDIR, made if missing."""
    folder = folder.absolute()
    if folder.exists() and not folder.is_dir():
        raise BackendError("output_unwritable", f"The output must be a folder, not a file: {folder}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError("output_unwritable",
                           f"Cannot make the output folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK):
        raise BackendError("output_unwritable", f"Cannot write to the output folder {folder}: "
                                                "Permission denied")
    return folder


def _remove_stale_temporaries(outdir: Path, outputs: list[str]) -> None:
    """Temporary files (and, with --people all, folders) a killed batch left while writing a
    motion file (the manifest's lock says no other batch is writing here)."""
    for name in outputs:
        for stale in outdir.glob(f".{glob.escape(name)}.*.tmp"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _probe(args: argparse.Namespace) -> Probe:
    """Opening an input here as `estimate` does first (every path checked, the first frame
    decoded), for the runner to fail a broken or missing input before a worker is ready. A path
    this machine does not see is left to the workers (on Ray it may exist only there)."""
    from ..readers import FrameRange, open_source

    frame_range = FrameRange(args.start, args.stop, args.stride)  # a bad one: a usage error

    def probe(path: Path) -> None:
        if path.exists():
            open_source([path], frame_range)

    return probe


def _pool(args: argparse.Namespace, options: dict[str, Any], jobs: int) -> Pool:
    if args.ray is not None:
        from .cluster import RayPool

        size = None if args.workers is None else min(args.workers, jobs)
        return RayPool(args.ray, size, options, args.gpu_share or 1.0, most=jobs)
    gpus = visible_gpus() if args.device in ("auto", "cuda") else []
    size = args.workers or default_workers(len(gpus))
    return LocalPool(min(size, jobs), options, WORKER_THREADS, gpus)


def default_workers(gpus: int) -> int:
    """Local workers by default: one per GPU; else one per CORES_PER_WORKER cores, no more
    than the memory holds (WORKER_MEMORY each)."""
    if gpus:
        return gpus
    fitting = max(1, cpu_count() // CORES_PER_WORKER)
    available = _available_memory()
    if available is not None:
        fitting = min(fitting, max(1, available // WORKER_MEMORY))
    return fitting


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes; None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
