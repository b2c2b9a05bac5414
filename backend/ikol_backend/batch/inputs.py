"""The inputs of a batch and the name of each one's motion file.

What the command line names is expanded into inputs, each one `estimate` run:
- a video file or a photo: one input;
- a folder holding video files (a *folder of clips*): each video file directly in it (natural
  order, hidden files skipped, not recursive) is one input; images beside them are not used
  (a warning says how many);
- any other folder: one input, an image sequence, as `estimate` treats a folder;
- `@LIST`: the lines of the text file LIST (at most MAX_LIST_BYTES), each a path expanded by
  the rules above (blank lines and lines starting with `#` skipped; a relative path is
  relative to LIST's folder);
- anything else (a path that does not exist, a file of another kind) stays one input, and its
  worker reports `estimate`'s error for it.

Paths are made absolute (from the current folder), so every worker reads the same files, and
an input named twice is kept once. A `..` is resolved as the OS does when it opens the path
(after a link: from the link's target, but on Windows).

Output names: the input's name without its suffix (a folder: its name) plus `.npz` (or
`.json`). When several inputs would get the same name (compared ignoring case), each of them
gets `-` and the first 8 hex digits of the SHA-256 of its absolute path added, so names do not
depend on the order of the inputs and stay the same from run to run.
"""

import dataclasses
import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..errors import BackendError
from ..readers.image_files import IMAGE_SUFFIXES, natural_key
from ..readers.video import VIDEO_SUFFIXES

LIST_PREFIX = "@"
MAX_LIST_BYTES = 1_000_000  # an @LIST's size (about 10,000 paths)
HASH_DIGITS = 8


@dataclasses.dataclass(frozen=True)
class Input:
    """One input: `path` (absolute) is what `estimate` is given; `output` is the motion
    file's name in the output folder."""

    path: Path
    output: str


@dataclasses.dataclass(frozen=True)
class Expanded:
    """The inputs in order, and warnings about what was left out."""

    inputs: list[Input]
    warnings: list[str]


def expand(arguments: Sequence[str], suffix: str = ".npz", cwd: Path | None = None) -> Expanded:
    """The inputs the command-line `arguments` name, with their output names (`suffix`:
    ".npz" or ".json"). A missing or unreadable `@LIST` is a usage error (`bad_option`)."""
    cwd = Path.cwd() if cwd is None else cwd
    paths: list[Path] = []
    warnings: list[str] = []
    for argument in arguments:
        if argument.startswith(LIST_PREFIX) and len(argument) > 1:
            list_file = _absolute(Path(argument[1:]), cwd)
            for line in _read_list(list_file):
                paths.extend(_expand_path(_absolute(Path(line), list_file.parent), warnings))
        else:
            paths.extend(_expand_path(_absolute(Path(argument), cwd), warnings))
    unique = list(dict.fromkeys(paths))  # the first mention wins, order kept
    return Expanded(output_names(unique, suffix), warnings)


def output_names(paths: Sequence[Path], suffix: str = ".npz") -> list[Input]:
    """Each path with its motion file's name; colliding names get a hash of the path."""
    stems = [_stem(path) for path in paths]
    count: dict[str, int] = defaultdict(int)
    for stem in stems:
        count[stem.casefold()] += 1
    inputs = []
    for path, stem in zip(paths, stems):
        if count[stem.casefold()] > 1:
            digest = hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()
            stem = f"{stem}-{digest[:HASH_DIGITS]}"
        inputs.append(Input(path, stem + suffix))
    return inputs


def _stem(path: Path) -> str:
    """The name an input's motion file starts from: a file's name without its suffix, a
    folder's name."""
    name = path.name if path.is_dir() else path.stem
    return name or "input"  # "/" has no name


def _absolute(path: Path, base: Path) -> Path:
    """`path` made absolute from `base`, naming the file the OS opens for it; links are kept.

    A `..` goes up from where the path so far leads, through links, as POSIX systems do
    (`lnk/../x` is x beside lnk's target); after a missing folder or a file it is kept, to fail
    as it does in `estimate`. Windows resolves `..` by the text, and so does this there.
    """
    path = path.expanduser()
    joined = path if path.is_absolute() else base / path
    if os.name == "nt":
        return Path(os.path.abspath(joined))
    result = Path(joined.anchor)
    for part in joined.parts[1:]:
        if part == ".." and result.is_dir():
            result = result.resolve().parent
        else:
            result /= part
    return result


def _read_list(list_file: Path) -> list[str]:
    """The paths a list names; `bad_option` when it cannot be read, is over MAX_LIST_BYTES or
    holds a NUL character."""
    try:
        with open(list_file, "rb") as handle:
            data = handle.read(MAX_LIST_BYTES + 1)  # bounded: @/dev/zero must not fill memory
        if len(data) > MAX_LIST_BYTES:
            raise BackendError("bad_option", f"The input list {list_file} is larger than "
                                             f"{MAX_LIST_BYTES // 1_000_000} MB: split it.")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise BackendError("bad_option", f"Cannot read the input list {list_file}: {reason}") from exc
    if "\0" in text:
        raise BackendError("bad_option", f"The input list {list_file} is not a text file "
                                         f"(it holds NUL characters).")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _expand_path(path: Path, warnings: list[str]) -> list[Path]:
    """A folder of clips becomes its clips; anything else is one input."""
    if not path.is_dir():
        return [path]
    try:
        entries = [entry for entry in path.iterdir()
                   if not entry.name.startswith(".") and entry.is_file()]
    except OSError:
        return [path]  # the worker reports the folder as unreadable
    clips = [entry for entry in entries if entry.suffix.lower() in VIDEO_SUFFIXES]
    if not clips:
        return [path]  # an image sequence (or nothing usable, which estimate reports)
    images = sum(entry.suffix.lower() in IMAGE_SUFFIXES for entry in entries)
    if images:
        warnings.append(f"{path} holds video files, so it is taken as a folder of clips: its "
                        f"{images} image file(s) are not used (give an image sequence a "
                        f"folder of its own).")
    return sorted(clips, key=natural_key)
