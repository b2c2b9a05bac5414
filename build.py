"""Build the installable extension: dist/ikol_blender-<version>.zip.

    python build.py            build the backend wheel into wheels/, check, write the zip
    python build.py --check    check the manifest and list what would go in; write nothing
    python build.py --out DIR  write the zip into DIR instead of dist/

The zip holds, at its root, what Blender's extension system installs: blender_manifest.toml,
LICENSE, the files of the add-on package (ikol_blender/), and in wheels/ the backend
(ikol_backend-<version>-py3-none-any.whl) with constraints.txt, the versions of its dependencies
the project is tested with (requirements.txt). "Install backend" installs that wheel with those
pins into the managed environment (never into Blender's Python, so the manifest lists no
`wheels`).

With a `blender` binary on PATH, Blender itself validates the staged extension and builds the
zip (`blender --command extension validate` and `build`); without one, this script checks the
manifest against the schema's rules and writes the same layout. Either way the zip is then
checked: under 10 MB, no model weights, manifest and wheel inside.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "ikol_blender"
MANIFEST = ROOT / "blender_manifest.toml"
LICENSE = ROOT / "LICENSE"
BACKEND = ROOT / "backend"
REQUIREMENTS = ROOT / "requirements.txt"
WHEELS = ROOT / "wheels"
CONSTRAINTS = "wheels/constraints.txt"
MAX_ZIP_BYTES = 10_000_000
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".onnx", ".tflite", ".pkl", ".npz",
                   ".npy", ".h5", ".bin")

# The manifest schema 1.0.0, as Blender 4.2-5.0 check it (blender_ext.py in Blender's bl_pkg).
REQUIRED = {"schema_version": str, "id": str, "version": str, "name": str, "tagline": str,
            "maintainer": str, "type": str, "blender_version_min": str, "license": list}
OPTIONAL = {"blender_version_max": str, "website": str, "copyright": list, "permissions": dict,
            "tags": list, "platforms": list, "wheels": list, "build": dict}
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}
ADDON_TAGS = {
    "3D View", "Add Curve", "Add Mesh", "Animation", "Bake", "Camera", "Compositing",
    "Development", "Game Engine", "Geometry Nodes", "Grease Pencil", "Import-Export", "Lighting",
    "Material", "Mesh", "Modeling", "Node", "Object", "Paint", "Physics", "Pipeline", "Render",
    "Rigging", "Scene", "Sculpt", "Sequencer", "System", "Text Editor", "Tracking",
    "User Interface", "UV",
}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
VERSION_TRIPLE = re.compile(r"^\d+\.\d+\.\d+$")
TERSE_MAX = 64


def terse_error(text: str) -> str | None:
    """The rule for the tagline and permission reasons: one short phrase, no final period."""
    if not text or text != text.strip():
        return "must be non-empty, without leading or trailing spaces"
    if len(text) > TERSE_MAX:
        return f"must be at most {TERSE_MAX} characters, not {len(text)}"
    if not (text[-1].isalnum() or text[-1] in ")]}"):
        return "must not end with punctuation"
    return None


def manifest_errors(manifest: dict) -> list[str]:
    """Everything wrong with a manifest, by the schema's rules; empty when it is valid."""
    errors = [f"missing {key}" for key in REQUIRED if key not in manifest]
    errors += [f"unknown key {key}" for key in manifest if key not in REQUIRED | OPTIONAL]
    errors += [f"{key} must be a {kind.__name__}"
               for key, kind in (REQUIRED | OPTIONAL).items()
               if key in manifest and not isinstance(manifest[key], kind)]
    if errors:
        return errors
    if manifest["schema_version"] != "1.0.0":
        errors.append('schema_version must be "1.0.0"')
    package_id = manifest["id"]
    if not package_id.isidentifier() or "__" in package_id or package_id.strip("_") != package_id:
        errors.append("id must be a Python identifier without leading, trailing or double _")
    if not SEMVER.match(manifest["version"]):
        errors.append("version must be a semantic version such as 1.2.3")
    if manifest["type"] != "add-on":
        errors.append('type must be "add-on"')
    for key in ("name", "maintainer"):
        if not manifest[key].strip() or manifest[key] != manifest[key].strip():
            errors.append(f"{key} must be non-empty, without leading or trailing spaces")
    if error := terse_error(manifest["tagline"]):
        errors.append(f"tagline {error}")
    for key in ("blender_version_min", "blender_version_max"):
        if key in manifest and not VERSION_TRIPLE.match(manifest[key]):
            errors.append(f"{key} must be three numbers such as 4.2.0")
    if VERSION_TRIPLE.match(manifest["blender_version_min"]):
        if tuple(map(int, manifest["blender_version_min"].split("."))) < (4, 2, 0):
            errors.append("blender_version_min must be 4.2.0 or later (extensions began in 4.2)")
    if not manifest["license"] or not all(
            isinstance(item, str) and item.startswith("SPDX:") for item in manifest["license"]):
        errors.append('license must list SPDX identifiers such as "SPDX:GPL-3.0-or-later"')
    for permission, reason in manifest.get("permissions", {}).items():
        if permission not in PERMISSIONS:
            errors.append(f"permission {permission} is not one of {', '.join(sorted(PERMISSIONS))}")
        elif not isinstance(reason, str) or (error := terse_error(reason)):
            errors.append(f"the reason for permission {permission} {error or 'must be a string'}")
    errors += [f"tag {tag!r} is not one of Blender's add-on tags"
               for tag in manifest.get("tags", ()) if tag not in ADDON_TAGS]
    return errors


def load_manifest() -> dict:
    """The manifest, checked; exits with every error found."""
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    errors = manifest_errors(manifest)
    backend = tomllib.loads((BACKEND / "pyproject.toml").read_text(encoding="utf-8"))
    if backend["project"]["version"] != manifest.get("version"):
        errors.append(f"version {manifest.get('version')} differs from the backend's "
                      f"{backend['project']['version']} (backend/pyproject.toml): they ship together")
    if errors:
        raise SystemExit("blender_manifest.toml:\n  " + "\n  ".join(errors))
    return manifest


def wheel_name(manifest: dict) -> str:
    return f"ikol_backend-{manifest['version']}-py3-none-any.whl"


def package_name(requirement: str) -> str:
    """The normalised project name of a requirement such as `numpy>=1.26,<2`."""
    name = re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def backend_constraints() -> str:
    """Pins for the backend's own dependencies: the versions requirements.txt tests with."""
    backend = tomllib.loads((BACKEND / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#")[0].strip()
        if "==" in requirement:
            pins[package_name(requirement)] = requirement
    needed = [package_name(dependency) for dependency in backend["project"]["dependencies"]]
    missing = [name for name in needed if name not in pins]
    if missing:
        raise SystemExit(f"requirements.txt pins no version of {', '.join(missing)}")
    return "".join(f"{pins[name]}\n" for name in needed)


def addon_files() -> list[Path]:
    """The add-on package's files, without caches and hidden files."""
    return sorted(path for path in ADDON.rglob("*")
                  if path.is_file() and path.suffix != ".pyc"
                  and not any(part == "__pycache__" or part.startswith(".")
                              for part in path.relative_to(ADDON).parts))


def build_backend_wheel(manifest: dict) -> Path:
    """`pip wheel --no-deps` of backend/ into wheels/, replacing older backend wheels.

    The build runs on a copy, so no build/ or egg-info litter lands in backend/. Where this
    Python has setuptools the build is offline (--no-build-isolation); otherwise pip fetches
    setuptools for an isolated build.
    """
    with tempfile.TemporaryDirectory(prefix="ikol-wheel-") as scratch:
        source = Path(scratch) / "backend"
        source.mkdir()
        shutil.copy2(BACKEND / "pyproject.toml", source)
        shutil.copytree(BACKEND / "ikol_backend", source / "ikol_backend",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                   "--disable-pip-version-check", "--wheel-dir", scratch, str(source)]
        if find_spec("setuptools") is not None:
            command.insert(4, "--no-build-isolation")
        subprocess.run(command, check=True)
        built = Path(scratch) / wheel_name(manifest)
        if not built.is_file():
            raise SystemExit(f"pip did not build {built.name}")
        WHEELS.mkdir(exist_ok=True)
        target = WHEELS / built.name
        shutil.copy2(built, target.with_suffix(".partial"))
        target.with_suffix(".partial").replace(target)
    for stale in WHEELS.glob("ikol_backend-*.whl"):
        if stale != target:
            stale.unlink()
    return target


def stage(folder: Path, wheel: Path | None) -> list[str]:
    """Lay the extension out in `folder` as it will be installed; returns its relative paths."""
    shutil.copy2(MANIFEST, folder / MANIFEST.name)
    shutil.copy2(LICENSE, folder / LICENSE.name)
    for path in addon_files():
        target = folder / path.relative_to(ADDON)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (folder / CONSTRAINTS).parent.mkdir()
    (folder / CONSTRAINTS).write_text(backend_constraints(), encoding="utf-8")
    if wheel is not None:
        shutil.copy2(wheel, folder / "wheels" / wheel.name)
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def run_blender(blender: str, *args: str) -> None:
    """`blender --command extension ARGS`, failing the build when Blender does."""
    command = [blender, "--command", "extension", *args]
    print("$", " ".join(command))
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"Blender's extension {args[0]} failed")


def write_zip(folder: Path, target: Path) -> None:
    """The staged folder as a zip, files only, sorted; wheels stored as they are (as Blender
    does: they are compressed already)."""
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stored = zipfile.ZIP_STORED if path.suffix == ".whl" else zipfile.ZIP_DEFLATED
            archive.write(path, path.relative_to(folder).as_posix(), compress_type=stored)
    partial.replace(target)


def archive_errors(target: Path, manifest: dict) -> list[str]:
    """What is wrong with a built zip: size, model weights (also inside the wheel), and the
    manifest, add-on and backend wheel that must be at its root."""
    errors = []
    if target.stat().st_size > MAX_ZIP_BYTES:
        errors.append(f"{target.stat().st_size} bytes, over the {MAX_ZIP_BYTES} limit")
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        wheel = f"wheels/{wheel_name(manifest)}"
        for needed in (MANIFEST.name, LICENSE.name, "__init__.py", wheel, CONSTRAINTS):
            if needed not in names:
                errors.append(f"{needed} missing")
        inner = set()
        if wheel in names:
            with archive.open(wheel) as handle, zipfile.ZipFile(handle) as backend_wheel:
                inner = {f"{wheel}/{name}" for name in backend_wheel.namelist()}
    errors += [f"model weights do not belong in the extension: {name}"
               for name in sorted(names | inner) if name.lower().endswith(WEIGHT_SUFFIXES)]
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="validate only; write nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="folder for the zip (default dist/)")
    args = parser.parse_args()
    manifest = load_manifest()
    blender = shutil.which("blender")
    with tempfile.TemporaryDirectory(prefix="ikol-extension-") as scratch:
        staged = Path(scratch) / manifest["id"]
        staged.mkdir()
        if args.check:
            files = stage(staged, None) + [f"wheels/{wheel_name(manifest)} (built by build.py)"]
            if blender:
                run_blender(blender, "validate", str(staged))
            print(f"{manifest['id']} {manifest['version']}: manifest OK; the zip would hold:")
            print("\n".join(f"  {name}" for name in files))
            return 0
        files = stage(staged, build_backend_wheel(manifest))
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"{manifest['id']}-{manifest['version']}.zip"
        if blender:
            run_blender(blender, "validate", str(staged))
            run_blender(blender, "build", "--source-dir", str(staged),
                        "--output-filepath", str(target))
        else:
            write_zip(staged, target)
    if errors := archive_errors(target, manifest):
        target.unlink()
        raise SystemExit(f"{target.name}:\n  " + "\n  ".join(errors))
    print(f"wrote {target} ({target.stat().st_size / 1e3:.0f} kB, {len(files)} files"
          f"{', built by Blender' if blender else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
