"""The `ikol-backend` command line (documented in docs/protocol.md)."""

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .camera import DEFAULT_FOV_DEG
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, BackendError
from .events import Events
from .interrupts import end_on_signals, ignore_signals
from .temporal import DEFAULT_SMOOTH

if TYPE_CHECKING:
    from .estimate import EstimateOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ikol-backend", description="Photos of a person in, SMPL motion out."
    )
    parser.add_argument("--version", action="version", version=f"ikol-backend {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    estimate = commands.add_parser("estimate", help="estimate SMPL motion from photos")
    estimate.add_argument("inputs", nargs="+", type=Path,
                          help="image file(s) (one frame each, in order), an image folder "
                               "(natural order) or a video file")
    estimate.add_argument("-o", "--output", type=Path, required=True, help="motion file: .npz, or .json for JSON")
    add_estimate_options(estimate)
    estimate.add_argument("--events", action="store_true",
                          help="report progress as JSON lines on stdout")
    estimate.set_defaults(run=_run_estimate)

    from .batch.command import add_parser as add_batch
    from .body.export import add_parser as add_body
    from .doctor import add_parser as add_doctor
    from .ik.benchmark import add_parser as add_bench_ik

    add_batch(commands)
    add_body(commands)
    add_doctor(commands)
    add_bench_ik(commands)
    return parser


def add_estimate_options(parser: argparse.ArgumentParser) -> None:
    """The options of `estimate` that say how to estimate (camera, frames, front end, body,
    device, person, fill, smoothing): shared by `estimate` and `batch`."""
    parser.add_argument("--fov", type=float,
                        help="camera field of view across the long side, degrees (default: "
                             f"fitted to the footage, near {DEFAULT_FOV_DEG:g})")
    parser.add_argument("--focal", type=float,
                        help="camera focal length in pixels (overrides --fov)")
    parser.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    parser.add_argument("--stop", type=int, help="frame to stop before (default: the end)")
    parser.add_argument("--stride", type=int, default=1, help="use every Nth frame")
    parser.add_argument("--front-end", default="default", choices=("default", "ikol"),
                        help="default: BlazePose landmarks (offline, always there); "
                             "ikol: the IKOL network (needs --checkpoint)")
    parser.add_argument("--checkpoint", type=Path, help="IKOL network weights (.pth)")
    parser.add_argument("--half", action="store_true",
                        help="run the IKOL network in half precision (CUDA only)")
    parser.add_argument("--flip-test", action="store_true",
                        help="IKOL network: also run the mirrored crop and average")
    parser.add_argument("--smpl", type=Path,
                        help="SMPL model file (.npz or .pkl) for the skeleton and body shape "
                             "(default: the built-in default skeleton)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where torch runs (default auto: CUDA when there is one)")
    parser.add_argument("--person", type=int, default=0,
                        help="which person: 0 = the largest at the start, 1 = the next, ...")
    parser.add_argument("--fill", default="interpolate", choices=("none", "hold", "interpolate"),
                        help="frames without the person: rest pose (none), the last pose "
                             "(hold) or between the poses around them (interpolate, default); "
                             "they stay marked invalid")
    parser.add_argument("--smooth", type=float, default=DEFAULT_SMOOTH,
                        help="temporal smoothing of video, 0 (raw: frames fitted "
                             f"independently) to 1 (heavy); default {DEFAULT_SMOOTH:g}")


def estimate_options(args: argparse.Namespace) -> "EstimateOptions":
    """The EstimateOptions that the options of add_estimate_options gave."""
    from .estimate import EstimateOptions  # torch and mediapipe load only when needed
    from .readers import FrameRange

    return EstimateOptions(
        fov_deg=args.fov, focal_px=args.focal,
        frame_range=FrameRange(args.start, args.stop, args.stride),
        front_end=args.front_end, checkpoint=args.checkpoint, half=args.half,
        flip_test=args.flip_test, person=args.person, fill=args.fill, smooth=args.smooth,
        smpl=args.smpl, device=args.device,
    )


def _run_estimate(args: argparse.Namespace, events: Events) -> None:
    from .estimate import estimate

    estimate(args.inputs, args.output, events, estimate_options(args))


def main(argv: list[str] | None = None) -> int:
    # SIGINT and SIGTERM (the add-on's Cancel) unwind like Ctrl-C from here on, while torch
    # loads for the parser too, so partial files are removed and the exit is 130.
    end_on_signals()
    argv = sys.argv[1:] if argv is None else argv
    events = Events(json_lines="--events" in argv)
    try:
        args = build_parser().parse_args(argv)
        events = Events(json_lines=getattr(args, "events", False))
        code = args.run(args, events)  # a command may return its own exit code (batch: 6)
    except BackendError as exc:
        events.emit("error", code=exc.code, message=exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        ignore_signals()  # a second signal must not cut the report short
        events.emit("error", code="interrupted", message="Interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: the message goes to the caller, the trace to stderr
        traceback.print_exc()
        events.emit("error", code="internal", message=f"{type(exc).__name__}: {exc}")
        return EXIT_INTERNAL
    return code or 0


def console_main() -> None:
    """The `ikol-backend` / `python -m ikol_backend` entry: main(), then exit with its code.

    An interrupted run ends at once: its error event is out and nothing is left to write or
    remove, so the slow tear-down of torch and MediaPipe (about a second) is skipped, keeping
    Cancel within a second.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
