"""What the add-on tells `ikol-backend estimate` besides its inputs and output: one table for the
panel, the headless CLI and the backend's command line (docs/protocol.md). No bpy here.

Each field of EstimateOptions is the backend flag of the same name (`flip_test` is
`--flip-test`); tests/test_estimate_contract.py checks both sides agree. The choice lists are
enum items (value, label, description) for the panel and the preferences, in their saved order.
"""

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args

FRONT_ENDS = (
    ("default", "BlazePose", "MediaPipe BlazePose landmarks: offline, nothing to set up"),
    ("ikol", "IKOL Network", "The IKOL network (needs the IKOL checkpoint in the add-on's "
     "preferences)"),
)
DEVICES = (
    ("auto", "Auto", "The GPU: CUDA, else Apple's GPU (MPS), else the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU through CUDA"),
    ("mps", "Apple GPU", "Apple silicon's GPU through Metal (MPS)"),
    ("cpu", "CPU", "The CPU"),
)
PEOPLE = (
    ("one", "One", "The chosen person (Person: 0 is the largest at the start)"),
    ("all", "All", "Everyone who stays in view, each with their own armature and body"),
)
FILLS = (
    ("interpolate", "Interpolate", "Frames without the person get the poses between the frames "
     "around them"),
    ("hold", "Hold", "Frames without the person keep the last pose"),
    ("none", "Rest Pose", "Frames without the person get the rest pose at the origin"),
)


def _option(default: Any, help: str, choices: tuple = (), network: bool = False) -> Any:
    """A field of EstimateOptions; `network`: an option of the IKOL network only."""
    return field(default=default, metadata={"help": help, "choices": choices, "network": network})


@dataclass(frozen=True)
class EstimateOptions:
    """The backend's options; None leaves one out (the backend's default)."""

    front_end: str = _option("default", "default: BlazePose; ikol: the IKOL network (needs "
                             "--checkpoint)", FRONT_ENDS)
    start: int = _option(0, "first source frame (from 0)")
    stop: int | None = _option(None, "source frame to stop before (default: the end)")
    stride: int = _option(1, "use every Nth frame")
    smooth: float = _option(0.25, "temporal smoothing of video, 0 (raw) to 1 (heavy); default "
                            "%(default)s (the backend's)")
    fov: float | None = _option(None, "camera field of view across the long side, degrees "
                                "(default: fitted to the footage)")
    device: str = _option("auto", "where torch runs: mps is Apple's GPU (default auto: CUDA, "
                          "else MPS, else the CPU)", DEVICES)
    smpl: Path | None = _option(None, "SMPL model file (.npz or .pkl) for the body")
    checkpoint: Path | None = _option(None, "IKOL network weights (.pth)", network=True)
    person: int = _option(0, "which person: 0 = the largest at the start (default), 1 = the next")
    people: str = _option("one", "one: the --person-th person (default); all: everyone who "
                          "stays in view, one armature and body each", PEOPLE)
    fill: str = _option("interpolate", "frames without the person: rest pose, last pose, or "
                        "interpolated", FILLS)
    flip_test: bool = _option(False, "IKOL network: also run the mirrored crop and average",
                              network=True)
    half: bool = _option(False, "IKOL network in float16 (CUDA)", network=True)


NETWORK_OPTIONS = tuple(option.name for option in fields(EstimateOptions)
                        if option.metadata["network"])


def flag(name: str) -> str:
    """The backend's flag for an option: `flip_test` -> `--flip-test`."""
    return "--" + name.replace("_", "-")


def estimate_command(python: str, inputs: list[Path], output: Path,
                     options: EstimateOptions = EstimateOptions()) -> list[str]:
    """The backend's command line for one run, reporting JSON-lines events. The network's
    options go only with the ikol front end (the backend refuses them otherwise)."""
    command = [python, "-m", "ikol_backend", "estimate", *map(str, inputs), "-o", str(output),
               "--events"]
    for option in fields(options):
        value = getattr(options, option.name)
        if value is None or value is False or (option.metadata["network"]
                                               and options.front_end != "ikol"):
            continue
        command += [flag(option.name)] if value is True else [flag(option.name), str(value)]
    return command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option on `parser` (or an argument group of it), named, typed and
    defaulted as EstimateOptions says."""
    for option in fields(EstimateOptions):
        details = option.metadata
        if option.type is bool:
            parser.add_argument(flag(option.name), action="store_true", help=details["help"])
            continue
        value_type = next(kind for kind in get_args(option.type) or (option.type,)
                          if kind is not type(None))  # int for `int | None`
        choices = [value for value, _label, _description in details["choices"]] or None
        parser.add_argument(flag(option.name), type=value_type, default=option.default,
                            choices=choices, help=details["help"])


def from_arguments(args: argparse.Namespace) -> EstimateOptions:
    """EstimateOptions from arguments parsed with add_arguments' flags."""
    return EstimateOptions(**{option.name: getattr(args, option.name)
                              for option in fields(EstimateOptions)})
