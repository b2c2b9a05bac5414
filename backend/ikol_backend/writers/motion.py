"""The motion file: AMASS-style `.npz` (layout in docs/protocol.md) or the same keys as JSON,
written atomically."""

import json
import os
import shutil
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


PERSON_FILE = "person{}.npz"  # `--people all`: one motion file per person in the output folder


def check_people_output(folder: Path) -> None:
    """Fail early, before any work, when `folder` (the output of `--people all`) is a file,
    or it is missing and cannot be made (its parent missing or not writable)."""
    if folder.exists() and not folder.is_dir():
        raise BackendError("output_unwritable", f"--people all writes a folder, but {folder} is a file")
    check_output(folder / PERSON_FILE.format(0)) if folder.is_dir() else check_output(folder)


def write_people(folder: Path, people: list[dict[str, np.ndarray]]) -> list[str]:
    """Write one motion file per person, `PERSON_FILE` numbered from 0, into `folder` (made if
    missing); returns their names. All or nothing: the files are first written to a temporary
    folder beside `folder`, then moved in; files of an earlier run numbered beyond these are
    removed, so the folder holds exactly this run's people."""
    check_people_output(folder)
    parent = _folder(folder)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise BackendError("output_unwritable",
                           f"Cannot write to the output folder {parent}: {exc.strerror}") from exc
    names = [PERSON_FILE.format(number) for number in range(len(people))]
    try:
        for name, arrays in zip(names, people):
            write_motion(staging / name, arrays)
        if not folder.exists():
            os.chmod(staging, 0o777 & ~_umask())  # as a plainly made folder; mkdtemp gives 0700
            os.replace(staging, folder)
            return names
        for name in names:
            os.replace(staging / name, folder / name)
        for stale in folder.glob(PERSON_FILE.format("*")):
            if stale.name not in names and stale.stem[len("person"):].isdigit():
                stale.unlink()
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return names
