"""Stand-in programs for tests: real executables on PATH that run a little Python."""

import os
import sys
from pathlib import Path

# What the add-on must ask nvidia-smi (written out here, not taken from the add-on).
GPU_QUERY = ["--query-gpu=compute_cap,driver_version", "--format=csv,noheader"]


def program(folder: Path, name: str, source: str) -> Path:
    """A real program `name` in `folder` that runs the Python `source` with this Python."""
    script = folder / f"{name}.py"
    script.write_text(source, encoding="utf-8")
    if os.name == "nt":
        program = folder / f"{name}.bat"
        program.write_text(f'@"{sys.executable}" "{script}" %*\n', encoding="utf-8")
    else:
        program = folder / name
        program.write_text(f"#!{sys.executable}\n{source}", encoding="utf-8")
        program.chmod(0o755)
    return program


def fake_nvidia_smi(folder: Path, output: str, code: int = 0) -> Path:
    """nvidia-smi in `folder`: answers the GPU query with `output` (exit `code`) and writes
    `folder/asked` when run; anything else it is asked is an error."""
    return program(folder, "nvidia-smi", (
        "import pathlib, sys\n"
        f"pathlib.Path({str(folder / 'asked')!r}).touch()\n"
        f"if sys.argv[1:] != {GPU_QUERY!r}:\n"
        "    sys.exit('unexpected arguments')\n"
        f"print({output!r})\n"
        f"sys.exit({code})\n"))
