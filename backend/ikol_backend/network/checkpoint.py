"""Loading an IKOL24 checkpoint (`.pth`) the user pointed to, with errors that say what is wrong.

The authors' checkpoints are the network's plain `state_dict` (`torch.save(model.state_dict())`),
including the buffers of their SMPL layer under `smpl.`, which are ignored here. Also accepted:
the state_dict wrapped in a dict under `state_dict` or `model`, and keys prefixed `module.`
(saved from a DataParallel / DistributedDataParallel wrapper).

Files are read with `torch.load(..., weights_only=True)`: only tensors and plain containers
load, no code runs. Every failure is a BackendError with code `checkpoint_invalid` (exit code 3,
bad input), whose message starts with the file's path: a missing file, a file that is not a
PyTorch checkpoint, one that would need code to load, or a state_dict that does not fit the
network (missing keys or shape mismatches; unexpected keys are then listed too).

Keys the network does not use are ignored, as the authors load their checkpoints
(`strict=False`): `open_checkpoint` says which (`Checkpoint.note`, for a warning).
"""

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BackendError
from .ikol24 import IKOL24

IGNORED_PREFIX = "smpl."  # the authors' SMPL layer buffers
WRAPPER_KEYS = ("state_dict", "model")
DATA_PARALLEL_PREFIX = "module."
LISTED = 10  # keys named per kind of mismatch; the rest are counted


def checkpoint_error(message: str) -> BackendError:
    """The error every checkpoint problem is reported with."""
    return BackendError("checkpoint_invalid", message)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint loaded into the network, and the keys of the file the network does not use."""

    path: Path
    network: IKOL24
    unused_keys: tuple[str, ...]

    @property
    def note(self) -> str | None:
        """A warning naming the keys that were ignored, or None when every key was used."""
        if not self.unused_keys:
            return None
        return (f"{self.path}: the IKOL24 network does not use every key of the checkpoint; "
                f"ignored {_listed(list(self.unused_keys), 'unused key')}")


def open_checkpoint(path: str | Path, device: torch.device | str) -> Checkpoint:
    """The IKOL24 network with the checkpoint's weights, on `device`, in eval mode; keys the
    network does not use are ignored (and named in the result); missing or mis-shaped keys
    are refused."""
    path = Path(path)
    state = read_state_dict(path)
    network = IKOL24()
    expected = network.state_dict()
    missing, unexpected, wrong_shape = _differences(expected, state)
    if missing or wrong_shape:
        raise checkpoint_error(
            f"{path}: does not fit the IKOL24 network (ResNet-34 backbone, 24 joints): "
            f"{mismatches(expected, state)}")
    network.load_state_dict({key: value for key, value in state.items() if key in expected})
    return Checkpoint(path, network.to(device).eval(), tuple(unexpected))


def load_checkpoint(path: str | Path, device: torch.device | str) -> IKOL24:
    """The IKOL24 network with the checkpoint's weights, on `device`, in eval mode (keys it
    does not use ignored: `open_checkpoint` names them)."""
    return open_checkpoint(path, device).network


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by key: unwrapped, `module.` stripped, `smpl.` keys dropped."""
    if path.is_dir():
        raise checkpoint_error(f"{path}: is a folder, not an IKOL checkpoint file")
    if not path.is_file():
        raise checkpoint_error(f"IKOL checkpoint file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))  # torch names the class it refused
        if found:
            raise checkpoint_error(
                f"{path}: does not load: it holds {found.group(1)}, which would need code to run; "
                "a checkpoint must be a plain state_dict of tensors") from None
        raise checkpoint_error(f"{path}: does not load: it is not a PyTorch checkpoint") from None
    except Exception as exc:
        raise checkpoint_error(
            f"{path}: does not load: it is not a PyTorch checkpoint, or it is damaged "
            f"({type(exc).__name__})") from None
    for key in WRAPPER_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict):
        raise checkpoint_error(f"{path}: holds a {type(loaded).__name__}, not a state_dict")
    if loaded and all(str(key).startswith(DATA_PARALLEL_PREFIX) for key in loaded):
        loaded = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in loaded.items()}
    return {str(key): value for key, value in loaded.items()
            if not str(key).startswith(IGNORED_PREFIX)}


def mismatches(expected: dict[str, torch.Tensor], found: dict[str, object]) -> str:
    """How `found` differs from `expected` in keys and shapes, for people; "" when it fits."""
    missing, unexpected, wrong_shape = _differences(expected, found)
    parts = [
        _listed(items, what)
        for items, what in ((missing, "missing key"), (unexpected, "unexpected key"),
                            (wrong_shape, "shape mismatch"))
        if items
    ]
    return "; ".join(parts)


def _differences(expected: dict[str, torch.Tensor],
                 found: dict[str, object]) -> tuple[list[str], list[str], list[str]]:
    """Missing keys, unexpected keys, and shape mismatches (described) of `found`."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    wrong_shape = [
        f"{key} is {_shape(found[key])} in the file, {tuple(value.shape)} in the network"
        for key, value in expected.items()
        if key in found and _shape(found[key]) != tuple(value.shape)
    ]
    return missing, unexpected, wrong_shape


def _shape(value: object) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else f"of type {type(value).__name__}"


def _listed(items: list[str], what: str) -> str:
    plural = "es" if what.endswith("mismatch") else "s"
    head = f"{len(items)} {what}{plural if len(items) != 1 else ''}: " + ", ".join(items[:LISTED])
    return head + (f", ... ({len(items) - LISTED} more)" if len(items) > LISTED else "")
