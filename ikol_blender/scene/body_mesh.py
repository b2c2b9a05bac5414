"""The capsule body (an option in place of the open body): a capsule along every bone,
skinned rigidly to its bone by vertex groups and an Armature modifier."""

import bmesh
import bpy
from mathutils import Matrix, Vector

from ..smpl import JOINT_NAMES

# Capsule radius of each bone in metres, by the joint the bone starts at.
_RADIUS = {
    "pelvis": 0.12, "hip": 0.075, "spine1": 0.12, "knee": 0.055, "spine2": 0.13,
    "ankle": 0.045, "spine3": 0.13, "foot": 0.04, "neck": 0.055, "collar": 0.05,
    "head": 0.1, "shoulder": 0.05, "elbow": 0.04, "wrist": 0.035, "hand": 0.028,
}


def _radius(joint_name: str) -> float:
    part = joint_name.split("_", 1)[1] if joint_name.startswith(("left_", "right_")) else joint_name
    return _RADIUS[part]


def build_body_mesh(armature: bpy.types.Object, name: str) -> bpy.types.Object:
    """A mesh object bound to `armature`, following its pose."""
    bm = bmesh.new()
    made: dict[str, list[bmesh.types.BMVert]] = {}
    for joint_name in JOINT_NAMES:
        bone = armature.data.bones[joint_name]
        head, tail = bone.head_local, bone.tail_local
        radius = _radius(joint_name)
        direction = tail - head
        placement = Matrix.Translation((head + tail) / 2) @ (
            Vector((0, 0, 1)).rotation_difference(direction).to_matrix().to_4x4()
        )
        verts = bmesh.ops.create_cone(bm, cap_ends=True, segments=16, radius1=radius,
                                      radius2=radius, depth=direction.length,
                                      matrix=placement)["verts"]
        for end in (head, tail):
            verts += bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=8, radius=radius,
                                               matrix=Matrix.Translation(end))["verts"]
        made[joint_name] = verts
    # Creation order is not storage order (bmesh reuses freed slots): index what was made.
    bm.verts.index_update()
    groups = {name: [v.index for v in verts] for name, verts in made.items()}
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    for joint_name, indices in groups.items():
        obj.vertex_groups.new(name=joint_name).add(indices, 1.0, "REPLACE")
    obj.modifiers.new("Armature", "ARMATURE").object = armature
    obj.parent = armature
    obj.data.materials.append(clay_material())
    return obj


def clay_material() -> bpy.types.Material:
    material = bpy.data.materials.get("IKOL body") or bpy.data.materials.new("IKOL body")
    material.diffuse_color = (0.85, 0.55, 0.35, 1.0)
    if material.node_tree is None:  # Blender 4.x; 5.0 materials always have nodes
        material.use_nodes = True
    shader = material.node_tree.nodes.get("Principled BSDF")
    if shader is not None:
        shader.inputs["Base Color"].default_value = (0.85, 0.55, 0.35, 1.0)
        shader.inputs["Roughness"].default_value = 0.6
    return material
