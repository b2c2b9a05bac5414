"""The `ikol-backend` command line (documented in docs/protocol.md)."""

import argparse
import os
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, BackendError
from .events import Events
from .interrupts import end_on_signals, ignore_signals
from .options import add_estimate_options, estimate_options


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


def _run_estimate(args: argparse.Namespace, events: Events) -> None:
    options = estimate_options(args)
    from .estimate import estimate  # torch and mediapipe load only when needed

    estimate(args.inputs, args.output, events, options)


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
