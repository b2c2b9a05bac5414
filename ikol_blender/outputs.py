"""Output files of the headless CLI: checked before any work, published all together.

Every output is first made in a private staging folder. Publishing copies each one beside its
target under a hidden `.NAME.partial` name and, once every copy is complete, renames them over
their targets; a failure on the way removes the copies and the folders it made, so the targets
keep what they held. No bpy here.
"""

import os
import shutil
from pathlib import Path


class OutputError(OSError):
    """An output cannot be written; the message names it and says why."""


def unwritable_reason(path: Path, folder: bool = False) -> str | None:
    """Why `path` (a file, or with `folder` a folder to fill) cannot be written, or None.

    Missing parent folders are fine (they are made); the nearest existing one must be a
    folder this process may write in.
    """
    if path.is_dir() and not folder:
        return f"{path} is a folder, not a file name"
    if path.exists() and folder and not path.is_dir():
        return f"{path} is a file, not a folder"
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so {path} cannot be made"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot write in the folder {ancestor} (permission denied)"
    return None


def publish(pairs: list[tuple[Path, Path]]) -> None:
    """Move each finished (staged file, target) into place, all or none.

    Raises OutputError naming the target that failed; the targets are then as they were.
    """
    made_folders: list[Path] = []
    partials: list[Path] = []
    try:
        for staged, target in pairs:
            made_folders += _make_folders(target.parent)
            partial = target.with_name(f".{target.name}.partial")
            partials.append(partial)
            try:
                shutil.copyfile(staged, partial)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        for partial, (_, target) in zip(partials, pairs):
            os.replace(partial, target)
    except BaseException:
        for partial in partials:
            partial.unlink(missing_ok=True)
        for folder in reversed(made_folders):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def _make_folders(folder: Path) -> list[Path]:
    """Make `folder` and any missing parents; the ones made, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except OSError as exc:
            for done in reversed(made):
                done.rmdir()
            raise OutputError(f"cannot make the folder {path}: {exc.strerror or exc}") from exc
        made.append(path)
    return made
