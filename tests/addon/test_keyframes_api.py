"""ikol_blender/keyframes.py against Blender 4.2's API, which this machine cannot run (bpy 5.0.1 has no
`Action.fcurves`): the fake-bpy-module-4.2 stubs, read statically.

Every bpy attribute, method and keyword the 4.2-4.3 path uses (all functions but `_layered_*`)
must exist in the 4.2 stubs; the 4.4+ path's API (`_layered_*`) must be missing there, which is
why the fallback exists. Types are followed from annotations: parameters, assignments, and the
stubs' own property and return types.

The stubs are installed once with pip (package index needed) into .venv/, keyed by version.
"""

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

from ikol_blender import keyframes

ROOT = Path(__file__).resolve().parents[2]
STUBS_VERSION = "20260730"
STUBS = ROOT / ".venv" / f"fake-bpy-module-4.2-{STUBS_VERSION}"
BPY = "<module bpy>"
NOT_BPY = {"dict", "list", "tuple", "str", "int", "float", "bool", "ndarray"}  # not checked


@pytest.fixture(scope="module")
def api_42() -> "StubAPI":
    if not (STUBS / "bpy-stubs").is_dir():
        partial = STUBS.with_name(STUBS.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "--target", str(partial),
                        f"fake-bpy-module-4.2=={STUBS_VERSION}"], check=True, timeout=300)
        os.replace(partial, STUBS)
    return StubAPI(STUBS)


def _parse_stub(path: Path) -> ast.Module:
    """A .pyi file; PEP 695 type parameters (class X[T]) dropped, as Python 3.11 cannot parse them."""
    text = re.sub(r"^(\s*)(class|def) (\w+)\[[^\]]*\]", r"\1\2 \3", path.read_text(), flags=re.M)
    return ast.parse(text)


def _type_names(annotation: ast.expr | None) -> list[str]:
    """Class names in an annotation: `bpy.types.X | None` -> ["X"]; generics lose their
    arguments; strings are parsed."""
    if annotation is None:
        return []
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return _type_names(ast.parse(annotation.value, mode="eval").body)
    if isinstance(annotation, ast.BinOp):  # X | Y
        return _type_names(annotation.left) + _type_names(annotation.right)
    if isinstance(annotation, ast.Subscript):
        return _type_names(annotation.value)
    if isinstance(annotation, ast.Attribute):
        return [annotation.attr]
    if isinstance(annotation, ast.Name) and annotation.id != "None":
        return [annotation.id]
    return []


class StubAPI:
    """Classes of bpy.types (members with their types, methods with their keywords and return
    types), bpy's module attributes and bpy_extras.anim_utils' functions, from the stubs."""

    def __init__(self, root: Path):
        self.classes: dict[str, tuple[list[str], dict[str, ast.AST]]] = {}
        self.items: dict[str, list[str]] = {}  # collection class -> its item types
        for node in _parse_stub(root / "bpy-stubs" / "types" / "__init__.pyi").body:
            if isinstance(node, ast.ClassDef):
                bases = [name for base in node.bases for name in _type_names(base)]
                for base in node.bases:
                    if isinstance(base, ast.Subscript) and _type_names(base) == ["bpy_prop_collection"]:
                        self.items[node.name] = _type_names(base.slice)
                members = {item.target.id if isinstance(item, ast.AnnAssign) else item.name: item
                           for item in node.body
                           if isinstance(item, ast.FunctionDef)
                           or (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name))}
                self.classes[node.name] = (bases, members)
        self.bpy_module = {node.target.id: node for node in
                           _parse_stub(root / "bpy-stubs" / "__init__.pyi").body
                           if isinstance(node, ast.AnnAssign)}
        self.anim_utils = {node.name for node in
                           _parse_stub(root / "bpy_extras-stubs" / "anim_utils" / "__init__.pyi").body
                           if isinstance(node, ast.FunctionDef)}

    def member(self, cls: str, name: str) -> ast.AST | None:
        """The stub of `cls.name`, searched through the bases."""
        if cls not in self.classes:
            return None
        bases, members = self.classes[cls]
        if name in members:
            return members[name]
        return next((found for base in bases if (found := self.member(base, name))), None)

    @staticmethod
    def result(stub: ast.AST, called: bool) -> list[str]:
        """The types an attribute gives: a property's or method's return type, a field's type."""
        if isinstance(stub, ast.AnnAssign):
            return _type_names(stub.annotation)
        is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in stub.decorator_list)
        return _type_names(stub.returns) if called or is_property else []


class Checker(ast.NodeVisitor):
    """Walks one function of keyframes.py, following types, recording every bpy use."""

    def __init__(self, api: StubAPI, function: ast.FunctionDef, module_functions: dict,
                 aliases: dict[str, ast.expr]):
        self.api, self.functions = api, module_functions
        self.types: dict[str, list[str]] = {"bpy": [BPY]}
        for arg in function.args.args:
            names = _type_names(arg.annotation)
            self.types[arg.arg] = [t for name in names
                                   for t in (_type_names(aliases[name]) if name in aliases else [name])]
        self.used: list[str] = []     # "Class.name" found
        self.missing: list[str] = []  # "Class.name" (or "Class.method(keyword=)") not found
        for statement in function.body:
            self.visit(statement)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)
        found = self.type_of(node.value)
        if found and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self.types[node.targets[0].id] = found

    def visit_If(self, node: ast.If | ast.IfExp) -> None:
        """`if hasattr(x, "layers")`: the 4.4+ branch; only the other one is this path."""
        layered = (isinstance(node.test, ast.Call) and isinstance(node.test.func, ast.Name)
                   and node.test.func.id == "hasattr" and ast.literal_eval(node.test.args[1]) == "layers")
        branches = [node.orelse] if layered else [[node.test], node.body, node.orelse]
        for branch in branches:
            for child in branch if isinstance(branch, list) else [branch]:
                self.visit(child)

    visit_IfExp = visit_If

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        if isinstance(node.target, ast.Name):
            self.types[node.target.id] = [item for owner in self.type_of(node.iter)
                                          for item in self.api.items.get(owner, [])]
        for statement in node.body:
            self.visit(statement)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.type_of(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.type_of(node)
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            self.visit(argument)

    def type_of(self, node: ast.expr, called: bool = False) -> list[str]:
        if isinstance(node, ast.Name):
            return self.types.get(node.id, [])
        if isinstance(node, ast.BoolOp):  # `a or b`: the type of a
            return self.type_of(node.values[0])
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in self.functions:
                return _type_names(self.functions[node.func.id].returns)
            owners = self.type_of(node.func.value) if isinstance(node.func, ast.Attribute) else []
            result = self.type_of(node.func, called=True)
            for owner in owners:
                stub = self.api.member(owner, node.func.attr) if owner != BPY else None
                if isinstance(stub, ast.FunctionDef):
                    accepted = {a.arg for a in stub.args.args + stub.args.kwonlyargs}
                    for keyword in node.keywords:
                        if keyword.arg not in accepted:
                            self.missing.append(f"{owner}.{node.func.attr}({keyword.arg}=)")
            return result
        if isinstance(node, ast.Attribute):
            found = []
            for owner in self.type_of(node.value):
                if owner in NOT_BPY:
                    continue
                if owner == BPY:
                    stub = self.api.bpy_module.get(node.attr)
                else:
                    stub = self.api.member(owner, node.attr)
                (self.used if stub is not None else self.missing).append(f"{owner}.{node.attr}")
                if stub is not None:
                    found += self.api.result(stub, called)
            return found
        return []


def check(api: StubAPI, layered: bool) -> list[Checker]:
    module = ast.parse(inspect.getsource(keyframes))
    functions = {node.name: node for node in module.body if isinstance(node, ast.FunctionDef)}
    aliases = {node.targets[0].id: node.value for node in module.body
               if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    return [Checker(api, function, functions, aliases) for name, function in functions.items()
            if name.startswith("_layered_") == layered]


def test_the_fallback_path_uses_only_blender_42_api(api_42):
    checkers = check(api_42, layered=False)
    used = {use for checker in checkers for use in checker.used}
    missing = {use for checker in checkers for use in checker.missing}
    assert not missing, f"not in Blender 4.2: {sorted(missing)}"
    # The calls that matter were followed to their classes (the check is not vacuous).
    assert {"BlendData.actions", "BlendDataActions.new", "Action.fcurves", "ActionFCurves.new",
            "FCurve.keyframe_points", "FCurveKeyframePoints.add",
            "FCurveKeyframePoints.foreach_set", "FCurveKeyframePoints.foreach_get",
            "FCurve.data_path", "FCurve.update", "Object.animation_data",
            "Camera.animation_data_create", "Key.animation_data", "AnimData.action"} <= used


def test_the_layered_path_is_missing_from_blender_42(api_42):
    checkers = check(api_42, layered=True)
    missing = {use for checker in checkers for use in checker.missing}
    assert {"Action.slots", "AnimData.action_slot"} <= missing
    module = ast.parse(inspect.getsource(keyframes))
    imported = {alias.name for node in ast.walk(module) if isinstance(node, ast.ImportFrom)
                and node.module == "bpy_extras.anim_utils" for alias in node.names}
    assert imported == {"action_ensure_channelbag_for_slot", "action_get_channelbag_for_slot"}
    assert not imported & api_42.anim_utils
    for name in ("ActionChannelbag", "ActionSlot", "ActionLayer"):
        assert name not in api_42.classes
    assert api_42.member("Action", "fcurves") is not None


def test_the_fallback_cannot_run_in_this_blender():
    """bpy 5.0.1 removed Action.fcurves: the 4.2-4.3 path is checked above, not run."""
    assert "fcurves" not in bpy.types.Action.bl_rna.properties
    assert "slots" in bpy.types.Action.bl_rna.properties
