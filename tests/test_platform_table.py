"""The README's platform table is what a resolver answers for each platform: the backend's
pinned dependencies resolved for it, wheels only, Python 3.11 (tests/tools/platforms.py)."""

from pathlib import Path

import pytest

from tests.tools import platforms

README = Path(__file__).resolve().parents[1] / "README.md"


def table_says_installs(name: str) -> bool:
    """The `installs` column of the README's row for `name`."""
    rows = [line for line in README.read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| {name} |")]
    assert len(rows) == 1, f"the README's platform table has no single row for {name}"
    answer = rows[0].split("|")[2].strip()
    assert answer in ("yes", "no"), rows[0]
    return answer == "yes"


def test_the_readme_platform_table_is_the_resolvers_answer():
    for platform in platforms.PLATFORMS:
        assert table_says_installs(platform.name) == platform.installs, platform.name
    if not platforms.index_reachable():
        pytest.skip(f"the package index ({platforms.INDEX}) is unreachable: the pins cannot be "
                    f"resolved for other platforms")
    for platform in platforms.PLATFORMS:
        installs, why = platforms.resolve(platform)
        assert installs == platform.installs, (platform.name, why)
