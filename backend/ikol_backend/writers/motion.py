"""The motion file: AMASS-style `.npz` (layout in docs/protocol.md), written atomically."""

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import BackendError

FORMAT_VERSION = 1


def write_motion(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an uncompressed .npz at `path`, all at once.

    The data go to a temporary file beside `path`, which is then renamed over it, so a reader
    never sees half a file and a failed write leaves any earlier file untouched.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BackendError("output_unwritable", f"Output folder does not exist: {folder}")
    try:
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=folder)
        os.close(handle)
    except OSError as exc:
        raise BackendError(
            "output_unwritable", f"Cannot write to the output folder {folder}: {exc.strerror}"
        ) from exc
    try:
        np.savez(tmp_name, format_version=np.int32(FORMAT_VERSION), **arrays)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
