"""backend/pyproject.toml declares every package the backend imports (a managed environment is
installed from it alone), each pinned in requirements.txt (the versions tested with)."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(package: Path) -> set[str]:
    """Top-level names of the modules the package's files import (relative imports left out)."""
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def declared() -> set[str]:
    """The backend's dependencies and its optional extras' (Ray: `cluster`, imported only by
    `batch --ray`)."""
    project = tomllib.loads((BACKEND / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [item for items in project.get("optional-dependencies", {}).values() for item in items]
    return {normalised(re.split(r"[<>=!~;\[ ]", item, maxsplit=1)[0])
            for item in project["dependencies"] + extras}


def test_every_third_party_import_of_the_backend_is_declared():
    third_party = imported_modules(BACKEND / "ikol_backend") - set(sys.stdlib_module_names) - {"ikol_backend"}
    providers = importlib.metadata.packages_distributions()
    needed = {module: {normalised(name) for name in providers[module]} for module in third_party}
    undeclared = {module: sorted(names) for module, names in needed.items() if not names & declared()}
    assert undeclared == {}
    assert {"cv2", "scipy", "PIL"} <= third_party


def test_every_declared_package_is_pinned_for_the_tests():
    pinned = {normalised(re.split(r"[=\[]", line, maxsplit=1)[0]) for line in
              (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
              if "==" in line.split("#")[0]}
    assert declared() <= pinned
