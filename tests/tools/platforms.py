"""Resolve the backend's pinned dependencies for each platform of the README's platform table.

The pins are what the managed install uses (build.backend_constraints: the versions
requirements.txt tests with); each platform is resolved by uv, which evaluates markers and
wheel tags for a platform other than this one: `uv pip compile --python-platform P
--python-version 3.11 --only-binary :all:` (wheels only, as the add-on's install needs), macOS
versions through MACOSX_DEPLOYMENT_TARGET. Needs the package index.

    .venv/bin/python tests/tools/platforms.py    the answers; exit 1 when one is not the table's
"""

import os
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from build import backend_constraints  # noqa: E402  (the repository root's build.py)

INDEX = "https://pypi.org/simple/"
RESOLVE_S = 600  # one platform's resolution must end within this long


@dataclass(frozen=True)
class Platform:
    """A row of the README's platform table: its name there, uv's `--python-platform`, the
    macOS version resolved for (None: not macOS) and whether the table says it installs."""

    name: str
    target: str
    macos: str | None
    installs: bool


PLATFORMS = (
    Platform("Windows x86-64", "x86_64-pc-windows-msvc", None, True),
    Platform("macOS 14+ on Apple silicon", "aarch64-apple-darwin", "14.0", True),
    Platform("Linux x86-64", "x86_64-manylinux_2_28", None, True),
    Platform("macOS 13 on Apple silicon", "aarch64-apple-darwin", "13.0", False),
    Platform("macOS on Intel", "x86_64-apple-darwin", "14.0", False),
    Platform("Linux ARM64", "aarch64-manylinux_2_28", None, False),
)


def index_reachable(timeout_s: float = 15.0) -> bool:
    """Whether the package index answers."""
    try:
        with urllib.request.urlopen(INDEX, timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve(platform: Platform) -> tuple[bool, str]:
    """Whether every pinned package has a wheel for `platform`; the resolver's reason if not."""
    with tempfile.TemporaryDirectory() as folder:
        pins = Path(folder) / "pins.txt"
        pins.write_text(backend_constraints(), encoding="utf-8")
        env = {**os.environ, **({"MACOSX_DEPLOYMENT_TARGET": platform.macos} if platform.macos
                                else {})}
        result = subprocess.run(
            [find_uv_bin(), "pip", "compile", str(pins), "--python-platform", platform.target,
             "--python-version", "3.11", "--only-binary", ":all:", "--no-header", "--quiet",
             "--index-url", INDEX],
            capture_output=True, text=True, env=env, timeout=RESOLVE_S)
    causes = [line.strip() for line in result.stderr.splitlines() if "cause:" in line]
    return result.returncode == 0, causes[0] if causes else result.stderr.strip()[-300:]


def main() -> int:
    wrong = 0
    for platform in PLATFORMS:
        installs, why = resolve(platform)
        wrong += installs != platform.installs
        print(f"{platform.name}: {'installs' if installs else 'does not install'}"
              f"{'' if installs == platform.installs else ' (the table says otherwise)'}"
              f"{'' if installs else ': ' + why}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
