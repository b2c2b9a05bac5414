"""Bone maps: which target bone follows which SMPL joint; JSON presets; detection. No bpy here.

A map is a list of (SMPL joint, target bone) pairs. One joint may drive several target bones
(Rigify's `torso` and `spine_fk` both follow the pelvis); each target bone follows one joint.
Preset file (docs/retargeting.md):

    {"name": "Mixamo", "description": "...",
     "root": "mixamorig:Hips",                     the bone that carries root motion (optional)
     "requires": ["spine_05"],                      bones needed to auto-detect it (optional)
     "axis_bones": ["spine_fk"],    bones whose own Y axis is their direction (optional; see
                                    transfer: control bones placed on a pivot, not on their joint)
     "properties": {"thigh_parent.L": {"IK_FK": 1.0}},  custom properties keyed constant (optional)
     "pairs": [["pelvis", "mixamorig:Hips"], ...]}

Target names with a namespace (`mixamorig:Hips`) also match the same name under another
namespace (`mixamorig1:Hips`, as Mixamo writes when several characters share a file).
"""

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..smpl import JOINT_NAMES

PRESET_DIR = Path(__file__).resolve().parent / "presets"
MIN_DETECTED_FRACTION = 0.6


class BoneMapError(ValueError):
    """A bone map or preset file is unusable; the message says why."""


@dataclass(frozen=True)
class BoneMap:
    """(SMPL joint, target bone) pairs and the preset's extras; see the module docstring."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    root: str | None = None
    description: str = ""
    requires: tuple[str, ...] = ()
    axis_bones: tuple[str, ...] = ()
    properties: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted({joint for joint, _ in self.pairs} - set(JOINT_NAMES))
        if unknown:
            raise BoneMapError(f"{self.name}: not SMPL joints: {', '.join(unknown)}")
        targets = [bone for _, bone in self.pairs]
        repeated = sorted({bone for bone in targets if targets.count(bone) > 1})
        if repeated:
            raise BoneMapError(f"{self.name}: target bones mapped twice: {', '.join(repeated)}")
        if self.root is not None and self.root not in targets:
            raise BoneMapError(f"{self.name}: root bone {self.root!r} is not a target of any pair")
        stray = sorted(set(self.axis_bones) - set(targets))
        if stray:
            raise BoneMapError(f"{self.name}: axis bones not mapped: {', '.join(stray)}")

    @property
    def root_bone(self) -> str | None:
        """The target bone keyed with root motion: `root`, or the first bone following the
        highest mapped joint in the SMPL tree (the pelvis in every preset)."""
        if self.root is not None or not self.pairs:
            return self.root
        return min(self.pairs, key=lambda pair: JOINT_NAMES.index(pair[0]))[1]

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.root is not None:
            out["root"] = self.root
        if self.requires:
            out["requires"] = list(self.requires)
        if self.axis_bones:
            out["axis_bones"] = list(self.axis_bones)
        if self.properties:
            out["properties"] = self.properties
        out["pairs"] = [list(pair) for pair in self.pairs]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "BoneMap":
        try:
            pairs = tuple((str(joint), str(bone)) for joint, bone in data["pairs"])
            properties = {str(bone): {str(k): float(v) for k, v in values.items()}
                          for bone, values in data.get("properties", {}).items()}
            return cls(name=str(data.get("name", "Custom")), pairs=pairs,
                       root=data.get("root"), description=str(data.get("description", "")),
                       requires=tuple(str(n) for n in data.get("requires", ())),
                       axis_bones=tuple(str(n) for n in data.get("axis_bones", ())),
                       properties=properties)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, BoneMapError):
                raise
            raise BoneMapError(f"not a bone map: {exc!r}") from exc


def load_map(path: Path) -> BoneMap:
    """Read a JSON preset; BoneMapError names what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoneMapError(f"cannot read bone map {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BoneMapError(f"{path}: a bone map is a JSON object")
    return BoneMap.from_dict(data)


def save_map(bone_map: BoneMap, path: Path) -> None:
    """Write a JSON preset, one pair a line; written beside and renamed, so never half a file."""
    path = Path(path)
    data = bone_map.to_dict()
    pairs = data.pop("pairs")
    head = json.dumps(data, indent=1)[:-2]  # without the closing brace
    lines = ",\n  ".join(json.dumps(pair) for pair in pairs)
    text = f'{head},\n "pairs": [\n  {lines}\n ]\n}}\n'
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@cache
def builtin_presets() -> dict[str, BoneMap]:
    """The presets shipped with the add-on, by id (file stem), in name order."""
    return {path.stem: load_map(path) for path in sorted(PRESET_DIR.glob("*.json"))}


def map_from_name(name: str) -> BoneMap | None:
    """A bone map named on a command line: "auto" (None: detect), a built-in preset id, or the
    path of a JSON preset."""
    if name == "auto":
        return None
    if name in builtin_presets():
        return builtin_presets()[name]
    if name.lower().endswith(".json"):
        return load_map(Path(name))
    raise BoneMapError(f"unknown bone map {name!r}: auto, {', '.join(builtin_presets())} "
                       "or a .json file")


def match_bone(name: str, bone_names: set[str]) -> str | None:
    """The armature's bone for a map's name: the same name, else (for a namespaced name) the
    only bone with the same part after the namespace."""
    if name in bone_names:
        return name
    if ":" not in name:
        return None
    suffix = name.rsplit(":", 1)[1]
    found = [bone for bone in bone_names if ":" in bone and bone.rsplit(":", 1)[1] == suffix]
    return found[0] if len(found) == 1 else None


def resolve(bone_map: BoneMap, bone_names: set[str] | list[str]) -> BoneMap:
    """The map restricted to pairs whose target bone exists, with the armature's own names."""
    names = set(bone_names)
    found = {bone: match_bone(bone, names) for _, bone in bone_map.pairs}
    pairs = tuple((joint, found[bone]) for joint, bone in bone_map.pairs if found[bone])
    root = found.get(bone_map.root) if bone_map.root else None
    properties = {found_name: values for bone, values in bone_map.properties.items()
                  if (found_name := match_bone(bone, names))}
    return BoneMap(name=bone_map.name, pairs=pairs, root=root, description=bone_map.description,
                   requires=bone_map.requires,
                   axis_bones=tuple(found[bone] for bone in bone_map.axis_bones if found[bone]),
                   properties=properties)


def detect(bone_names: set[str] | list[str]) -> tuple[str, float] | None:
    """The built-in preset that fits an armature best, and the fraction of its pairs found.

    Presets whose `requires` bones are missing are skipped; ties go to the more specific preset
    (longer `requires`), then to more pairs. None when no preset finds MIN_DETECTED_FRACTION.
    """
    names = set(bone_names)
    ranked = []
    for preset_id, preset in builtin_presets().items():
        if not all(match_bone(bone, names) for bone in preset.requires):
            continue
        fraction = len(resolve(preset, names).pairs) / len(preset.pairs)
        ranked.append(((fraction, len(preset.requires), len(preset.pairs)), preset_id, fraction))
    if not ranked:
        return None
    _, best, fraction = max(ranked)
    return (best, fraction) if fraction >= MIN_DETECTED_FRACTION else None
