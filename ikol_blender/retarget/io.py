"""A target armature from a .blend file, and the retargeted animation out as FBX or BVH (bpy)."""

from pathlib import Path

import bpy

EXPORT_SUFFIXES = (".fbx", ".bvh")


def append_armature(blend: Path, name: str | None = None) -> bpy.types.Object:
    """Append an armature object (with the objects parented to it, such as its meshes) from
    `blend` into the current scene's collection.

    Args:
        name: the armature object's name; None for the file's only armature.

    Raises:
        ValueError: the file has no such armature, or several and no name was given.
    """
    with bpy.data.libraries.load(str(blend), link=False) as (source, loaded):
        names = list(source.objects)
        loaded.objects = list(names)  # Blender fills this list with the objects
    # Appended objects may be renamed (name clashes); match them by their name in the file.
    objects = [obj for obj in loaded.objects if obj is not None]
    armatures = {file_name: obj for file_name, obj in zip(names, loaded.objects)
                 if obj is not None and obj.type == "ARMATURE"}
    if name is None:
        chosen = list(armatures.values())
    else:
        chosen = [armatures[name]] if name in armatures else []
    if len(chosen) != 1:
        for obj in objects:
            bpy.data.objects.remove(obj)
        wanted = f"armature {name!r}" if name else "a single armature"
        raise ValueError(f"{blend} has no {wanted} (armatures: {', '.join(armatures) or 'none'})")
    armature = chosen[0]
    keep = {armature, *armature.children_recursive}
    for obj in objects:
        if obj in keep:
            bpy.context.scene.collection.objects.link(obj)
        else:
            bpy.data.objects.remove(obj)
    return armature


def export_animation(armature: bpy.types.Object, path: Path) -> None:
    """Write the armature's current action over its frame range, by the path's suffix:
    FBX (the armature and its child meshes) or BVH (the armature alone)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise ValueError(f"export to {' or '.join(EXPORT_SUFFIXES)}, not {path.name}")
    action = armature.animation_data.action if armature.animation_data else None
    if action is None:
        raise ValueError(f"{armature.name} has no action to export")
    start, end = (round(frame) for frame in action.frame_range)
    view_layer = bpy.context.view_layer
    selected = [obj for obj in view_layer.objects if obj.select_get()]
    active = view_layer.objects.active
    chosen = [armature, *(c for c in armature.children_recursive if c.type == "MESH")]
    try:
        for obj in selected:
            obj.select_set(False)
        for obj in chosen if suffix == ".fbx" else [armature]:
            obj.select_set(True)
        view_layer.objects.active = armature
        if suffix == ".fbx":
            scene = bpy.context.scene
            frame_range = scene.frame_start, scene.frame_end
            scene.frame_start, scene.frame_end = start, end
            try:
                bpy.ops.export_scene.fbx(
                    filepath=str(path), use_selection=True, object_types={"ARMATURE", "MESH"},
                    add_leaf_bones=False, bake_anim=True, bake_anim_use_all_actions=False,
                    bake_anim_use_nla_strips=False)
            finally:
                scene.frame_start, scene.frame_end = frame_range
        else:
            bpy.ops.export_anim.bvh(filepath=str(path), frame_start=start, frame_end=end)
    finally:
        for obj in chosen:
            obj.select_set(False)
        for obj in selected:
            obj.select_set(True)
        view_layer.objects.active = active
