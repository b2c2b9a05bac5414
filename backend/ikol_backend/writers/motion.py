"""The motion file: AMASS-style `.npz` (layout in docs/protocol.md) or the same keys as JSON,
written atomically."""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import BackendError

FORMAT_VERSION = 1


def check_output(path: Path) -> None:
    """Fail early, before any work, when `path` is a folder, or its folder is missing or not
    writable."""
    _check_not_folder(path)
    folder = _folder(path)
    if not folder.is_dir():
        raise BackendError("output_unwritable", f"Output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise BackendError("output_unwritable", f"Cannot write to the output folder {folder}: "
                                                "Permission denied")


def write_motion(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` at `path`, all at once: JSON when the name ends in `.json`, else an
    uncompressed `.npz`.

    The data go to a temporary file beside `path`, which is then renamed over it, so a reader
    never sees half a file and a failed write leaves any earlier file untouched. A write that
    fails (a full disk, say) is `output_unwritable`.
    """
    _check_not_folder(path)
    folder = _folder(path)
    if not folder.is_dir():
        raise BackendError("output_unwritable", f"Output folder does not exist: {folder}")
    try:
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(handle)
    except OSError as exc:
        raise BackendError(
            "output_unwritable", f"Cannot write to the output folder {folder}: {exc.strerror}"
        ) from exc
    try:
        everything = {key: np.asarray(value)
                      for key, value in {"format_version": np.int32(FORMAT_VERSION), **arrays}.items()}
        if path.suffix.lower() == ".json":
            with open(tmp_name, "w", encoding="utf-8") as handle:
                json.dump({key: value.tolist() for key, value in everything.items()},
                          handle, separators=(",", ":"))
        else:  # np.savez's layout, but its zip closed even when a write fails (a full disk)
            with open(tmp_name, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
                for key, value in everything.items():
                    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, value, allow_pickle=False)
        os.chmod(tmp_name, 0o666 & ~_umask())  # as a plainly created file; mkstemp gives 0600
        os.replace(tmp_name, path)
    except OSError as exc:  # a full disk, a folder turned read-only
        Path(tmp_name).unlink(missing_ok=True)
        raise BackendError("output_unwritable",
                           f"Cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_not_folder(path: Path) -> None:
    if path.is_dir():
        raise BackendError("output_unwritable",
                           f"The output is a folder, not a file name: {path}")


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")
