"""The options of `ikol-backend estimate`: their command-line flags, and the EstimateOptions
made from them in one place (docs/protocol.md). Other commands that estimate (a batch, say)
add the same flags with `add_estimate_options` and read them with `estimate_options`.

Standard library only: the command line (and the doctor's, which must start even where numpy
or torch are broken) is built before anything heavy loads.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

FRONT_ENDS = ("default", "ikol")
DEVICES = ("auto", "cpu", "cuda", "mps")
FILL_MODES = ("none", "hold", "interpolate")
PEOPLE = ("one", "all")


@dataclass(frozen=True)
class EstimateOptions:
    """Everything `estimate` can be told besides its inputs and output.

    fov_deg / focal_px: the camera (degrees across the long side / pixels; focal wins); with
        neither, the focal length is fitted to the footage (prior: camera.DEFAULT_FOV_DEG).
    start, stop, stride: the source frames start, start + stride, ... before stop (None: the
        end); checked when read (readers.FrameRange).
    front_end: one of FRONT_ENDS: "default" (BlazePose) or "ikol" (the IKOL network, weights
        from `checkpoint`; `half`: float16 on CUDA; `flip_test`: also the mirrored crop).
    person: which person, 0 = the largest at the start, 1 = the next largest, ... (with
        people "one").
    people: one of PEOPLE: "one" (the `person`-th; the output is a motion file) or "all"
        (everyone who stays in view; the output is a folder of person0.npz, person1.npz, ...).
    fill: frames without the person, one of FILL_MODES: "none" (rest pose at the origin),
        "hold", "interpolate".
    smooth: video: 0 = raw (frames fitted independently), up to 1 = heavy; sets the fit's
        acceleration term and the One-Euro smoothing of the given rotations.
    smpl: an SMPL model file for the skeleton and shape space; None = the default skeleton.
    device: one of DEVICES: "auto" (CUDA, else Apple's GPU, else the CPU), "cpu", "cuda" or
        "mps" (Apple's GPU), for the network and the IK layer.
    """

    fov_deg: float | None = None
    focal_px: float | None = None
    start: int = 0
    stop: int | None = None
    stride: int = 1
    front_end: str = "default"
    checkpoint: Path | None = None
    half: bool = False
    flip_test: bool = False
    person: int = 0
    people: str = "one"
    fill: str = "interpolate"
    smooth: float = 0.25  # measured: docs/accuracy.md
    smpl: Path | None = None
    device: str = "auto"


DEFAULTS = EstimateOptions()


def add_estimate_options(parser: argparse.ArgumentParser) -> None:
    """The flags that make EstimateOptions (not the inputs, the output or --events)."""
    parser.add_argument("--fov", type=float,
                        help="camera field of view across the long side, degrees (default: "
                             "fitted to the footage)")
    parser.add_argument("--focal", type=float,
                        help="camera focal length in pixels (overrides --fov)")
    parser.add_argument("--start", type=int, default=DEFAULTS.start,
                        help=f"first frame (default {DEFAULTS.start})")
    parser.add_argument("--stop", type=int, help="frame to stop before (default: the end)")
    parser.add_argument("--stride", type=int, default=DEFAULTS.stride,
                        help="use every Nth frame")
    parser.add_argument("--front-end", default=DEFAULTS.front_end, choices=FRONT_ENDS,
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
    parser.add_argument("--device", default=DEFAULTS.device, choices=DEVICES,
                        help="where torch runs: mps is Apple's GPU (default auto: CUDA, else "
                             "MPS, else the CPU)")
    parser.add_argument("--person", type=int, default=DEFAULTS.person,
                        help="which person: 0 = the largest at the start, 1 = the next, ...")
    parser.add_argument("--people", default=DEFAULTS.people, choices=PEOPLE,
                        help="one: the --person-th person, written to OUTPUT (default); all: "
                             "everyone who stays in view for 0.5 s or more (in photos: "
                             "everyone), each to OUTPUT/personK.npz, K by first appearance")
    parser.add_argument("--fill", default=DEFAULTS.fill, choices=FILL_MODES,
                        help="frames without the person: rest pose (none), the last pose "
                             "(hold) or between the poses around them (interpolate, default); "
                             "they stay marked invalid")
    parser.add_argument("--smooth", type=float, default=DEFAULTS.smooth,
                        help="temporal smoothing of video, 0 (raw: frames fitted "
                             f"independently) to 1 (heavy); default {DEFAULTS.smooth:g}")


def estimate_options(args: argparse.Namespace) -> EstimateOptions:
    """EstimateOptions from arguments parsed with add_estimate_options' flags."""
    return EstimateOptions(
        fov_deg=args.fov, focal_px=args.focal, start=args.start, stop=args.stop,
        stride=args.stride, front_end=args.front_end, checkpoint=args.checkpoint, half=args.half,
        flip_test=args.flip_test, person=args.person, people=args.people, fill=args.fill,
        smooth=args.smooth, smpl=args.smpl, device=args.device,
    )
