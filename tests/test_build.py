"""build.py: the manifest's checks agree with Blender's, and the zip holds what belongs, only.

Blender's own extension tooling comes with the bpy module (bl_pkg's blender_ext.py, the code
behind `blender --command extension`); these tests hold build.py to it.
"""

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BPY_SCRIPTS = Path(importlib.util.find_spec("bpy").origin).parent / "5.0" / "scripts"
BLENDER_EXT = BPY_SCRIPTS / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
BLENDER_TAGS = BPY_SCRIPTS / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # blender_ext's NamedTuples look their module up
    spec.loader.exec_module(module)
    return module


build = load_module("ikol_build_script", ROOT / "build.py")
blender_ext = load_module("ikol_test_blender_ext", BLENDER_EXT)
MANIFEST = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
ZIP_NAME = f"ikol_blender-{MANIFEST['version']}.zip"
WHEEL = f"wheels/ikol_backend-{MANIFEST['version']}-py3-none-any.whl"
CONSTRAINTS = "wheels/constraints.txt"


def run_build(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "build.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


def package_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]


def blender_errors(manifest: dict) -> list[str]:
    result = blender_ext.pkg_manifest_from_dict_and_validate_all_errros(
        manifest, from_repo=False, strict=True)
    return result if isinstance(result, list) else []


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = run_build("--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "built by Blender" not in done.stdout  # no blender binary here: our own writer
    return out / ZIP_NAME


def test_manifest_is_valid_for_blender_and_for_build_py():
    assert build.manifest_errors(MANIFEST) == []
    assert blender_errors(MANIFEST) == []
    assert MANIFEST["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(MANIFEST["permissions"]) == {"files", "network"}
    assert "wheels" not in MANIFEST  # nothing goes into Blender's own Python


@pytest.mark.parametrize("change", [
    {"tagline": "Ends with a period."},
    {"tagline": "x" * 65},
    {"id": "ikol__blender"},
    {"version": "1.0"},
    {"type": "script"},
    {"blender_version_min": "4.x"},
    {"permissions": {"files": "Reads and writes files."}},
    {"permissions": {"printer": "Print pages"}},
    {"license": []},
    {"tagline": None},
])
def test_broken_manifests_are_refused_like_blender_does(change):
    manifest = {**MANIFEST, **change}
    manifest = {key: value for key, value in manifest.items() if value is not None}
    assert blender_errors(manifest), "the case must be one Blender refuses"
    assert build.manifest_errors(manifest)


def test_rules_blender_leaves_to_the_extensions_platform():
    assert build.manifest_errors({**MANIFEST, "blender_version_min": "4.1.0"})
    assert build.manifest_errors({**MANIFEST, "tags": ["Animation", "Mocap"]})
    assert build.manifest_errors({**MANIFEST, "licence": ["SPDX:MIT"]})


def test_zip_holds_the_add_on_manifest_licence_and_backend_wheel(built_zip):
    assert built_zip.stat().st_size < 10_000_000
    addon = {path.relative_to(ROOT / "ikol_blender").as_posix() for path in build.addon_files()}
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
        assert archive.read("blender_manifest.toml") == (ROOT / "blender_manifest.toml").read_bytes()
        assert archive.getinfo(WHEEL).compress_type == zipfile.ZIP_STORED
        with archive.open(WHEEL) as handle, zipfile.ZipFile(handle) as wheel:
            inner = set(wheel.namelist())
            metadata = wheel.read(f"ikol_backend-{MANIFEST['version']}.dist-info/METADATA").decode()
        constraints = archive.read(CONSTRAINTS).decode().splitlines()
    assert names == addon | {"blender_manifest.toml", "LICENSE", WHEEL, CONSTRAINTS}
    assert {"__init__.py", "preferences.py", "backend_env.py", "backend_process.py"} <= names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names | inner)
    assert not [name for name in names | inner if name.endswith(build.WEIGHT_SUFFIXES)]
    assert {"ikol_backend/cli.py", "ikol_backend/doctor.py", "ikol_backend/estimate.py"} <= inner
    backend = tomllib.loads((ROOT / "backend" / "pyproject.toml").read_text())
    requires = {package_name(line.removeprefix("Requires-Dist: "))
                for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ") and "extra ==" not in line}  # not Ray's
    assert requires == {package_name(dep) for dep in backend["project"]["dependencies"]}
    # The managed environment gets the versions the project is tested with.
    pinned = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert {package_name(line) for line in constraints} == requires
    assert all(line in pinned and "==" in line for line in constraints)


def test_blender_validates_the_zip(built_zip):
    done = subprocess.run([sys.executable, str(BLENDER_EXT), "validate", str(built_zip),
                           "--valid-tags", str(BLENDER_TAGS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_backend_wheel_is_left_in_wheels(built_zip):
    assert [path.name for path in (ROOT / "wheels").glob("ikol_backend-*.whl")] == [Path(WHEEL).name]
    ignored = subprocess.run(["git", "check-ignore", "-q", WHEEL], cwd=ROOT)
    assert ignored.returncode == 0, "built wheels must stay out of git"


def test_check_writes_nothing(tmp_path):
    wheels_before = {path: path.stat().st_mtime_ns for path in (ROOT / "wheels").iterdir()}
    done = run_build("--check", "--out", str(tmp_path / "dist"))
    assert done.returncode == 0, done.stderr
    assert "manifest OK" in done.stdout and "preferences.py" in done.stdout
    assert not (tmp_path / "dist").exists()
    assert {path: path.stat().st_mtime_ns for path in (ROOT / "wheels").iterdir()} == wheels_before


def test_with_a_blender_binary_blender_validates_and_builds(tmp_path, built_zip):
    """A stand-in `blender` on PATH runs the same code as `blender --command extension`
    (bl_pkg's command-line handler, under the bpy module) and logs how it was called."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "blender"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:4]) + '\\n')\n"
        "assert sys.argv[1:3] == ['--command', 'extension'], sys.argv\n"
        "import bpy\n"
        "from bl_pkg.bl_extension_cli import cli_extension_handler\n"
        "sys.exit(cli_extension_handler(sys.argv[3:]))\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = run_build("--out", str(tmp_path / "dist"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "built by Blender" in done.stdout
    assert calls.read_text().splitlines() == ["--command extension validate",
                                              "--command extension build"]
    with zipfile.ZipFile(tmp_path / "dist" / ZIP_NAME) as by_blender, \
            zipfile.ZipFile(built_zip) as by_build_py:
        assert sorted(by_blender.namelist()) == sorted(by_build_py.namelist())
