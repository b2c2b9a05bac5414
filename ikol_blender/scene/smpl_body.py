"""The body mesh from a body file (the open body or the SMPL mesh): skinned to the armature,
shaped by shape keys, optionally (SMPL) with pose-corrective shape keys driven by the bones.

The armature's rest skeleton must be the rest joints for the values the shape keys are set to
(the body file's), so that Blender's Armature modifier (linear blend skinning) puts every vertex
where the body model does. The open body's mesh also carries its rest joints per shape key
(custom properties, see body_shape.py), so the skeleton can follow edited keys.
"""

import bpy
import numpy as np

from ..body_file import BodyMesh
from ..smpl import JOINT_NAMES, NUM_JOINTS, Y_UP_TO_Z_UP, to_z_up
from .body_mesh import clay_material
from ..keyframes import write_keys
from .body_shape import store_joint_shapes

SHAPE_KEY_RANGE = 5.0  # slider range of the beta shape keys, widened up to Blender's 10 if needed
SHAPE_KEY_LIMIT = 10.0  # Blender's limit for a shape key's slider

# Elements of R - I, row by row, times the squared length of the quaternion (w, x, y, z).
_ROTATION_MINUS_IDENTITY = (
    "-2*(y*y+z*z)", "2*(x*y-w*z)", "2*(x*z+w*y)",
    "2*(x*y+w*z)", "-2*(x*x+z*z)", "2*(y*z-w*x)",
    "2*(x*z-w*y)", "2*(y*z+w*x)", "-2*(x*x+y*y)",
)


def build_smpl_mesh(armature: bpy.types.Object, mesh: BodyMesh, name: str, betas: np.ndarray,
                    first_frame: int = 1) -> bpy.types.Object:
    """A mesh object bound to `armature`: the body file's template, a vertex group per joint
    with the skin weights, an Armature modifier, and one shape key per unit shape direction
    (SMPL: Shape000-Shape009, one unit of each beta; the open body: one per anny phenotype).

    Args:
        mesh: the body file's mesh (model frame); with posedirs, pose-corrective shape keys
            Pose_<bone>_<row><column> are added, driven by the bones' rotations.
        betas: SMPL: (10,) shape key values, or (N, 10) keyed from `first_frame` on. The open
            body's keys take its own fitted values (mesh.shape_values), sliders 0 to 1.
    """
    if mesh.shape_values is not None:
        betas = mesh.shape_values
    limit = float(np.abs(betas).max(initial=0.0))
    if limit > SHAPE_KEY_LIMIT:
        raise ValueError(f"A beta of {limit:.1f}: Blender's shape keys reach only "
                         f"±{SHAPE_KEY_LIMIT:g}, and an SMPL body needs far less")
    vertices = to_z_up(mesh.v_template)
    data = bpy.data.meshes.new(name)
    data.from_pydata(vertices.tolist(), [], mesh.faces.tolist())
    data.polygons.foreach_set("use_smooth", np.ones(len(data.polygons), dtype=bool))
    obj = bpy.data.objects.new(name, data)
    bpy.context.collection.objects.link(obj)
    obj.parent = armature
    _add_vertex_groups(obj, mesh.weights)
    obj.modifiers.new("Armature", "ARMATURE").object = armature
    obj.data.materials.append(clay_material())

    obj.shape_key_add(name="Basis", from_mix=False)
    low, high = ((0.0, 1.0) if mesh.shape_values is not None
                 else (-max(SHAPE_KEY_RANGE, np.ceil(limit)), max(SHAPE_KEY_RANGE, np.ceil(limit))))
    keys = []
    for index, key_name in enumerate(mesh.shape_names):
        key = _add_shape_key(obj, key_name, vertices + to_z_up(mesh.shapedirs[:, :, index]))
        key.slider_min, key.slider_max = low, high
        keys.append(key)
    if betas.ndim == 1:
        for key, value in zip(keys, betas):
            key.value = float(value)
    else:
        frames = first_frame + np.arange(betas.shape[0], dtype=np.float64)
        channels = {(f'key_blocks["{key.name}"].value', 0): betas[:, beta]
                    for beta, key in enumerate(keys)}
        write_keys(data.shape_keys, f"{name}_shape", frames, channels)
    if mesh.joint_template is not None:
        store_joint_shapes(obj, mesh.joint_template, mesh.joint_shapedirs, mesh.shape_names)
    if mesh.posedirs is not None:
        _add_pose_correctives(obj, armature, mesh.posedirs, vertices)
    return obj


def _add_shape_key(obj: bpy.types.Object, name: str, positions: np.ndarray) -> bpy.types.ShapeKey:
    key = obj.shape_key_add(name=name, from_mix=False)
    key.data.foreach_set("co", positions.astype(np.float32).ravel())
    return key


def _add_vertex_groups(obj: bpy.types.Object, weights: np.ndarray) -> None:
    """One group per SMPL joint, named after its bone, holding the joint's nonzero weights."""
    for joint, joint_name in enumerate(JOINT_NAMES):
        group = obj.vertex_groups.new(name=joint_name)
        column = weights[:, joint]
        for vertex in np.flatnonzero(column):
            group.add([int(vertex)], float(column[vertex]), "REPLACE")


def _add_pose_correctives(obj: bpy.types.Object, armature: bpy.types.Object,
                          posedirs: np.ndarray, vertices: np.ndarray) -> None:
    """SMPL's pose blend shapes as 207 shape keys, 9 per bone below the root, each driven by
    one element of (R - I), R being the bone's rotation in its own rest frame.

    SMPL's feature is R_model - I with R_model = M R M^T, M = C^T B (B the bone's rest
    orientation, C the Y-up to Z-up turn); row by row, vec(M X M^T) = (M kron M) vec(X), so each
    bone's nine model-frame blend shapes map to nine bone-frame ones.
    """
    turn = Y_UP_TO_Z_UP
    for joint in range(1, NUM_JOINTS):
        bone = JOINT_NAMES[joint]
        rest = np.array(armature.data.bones[bone].matrix_local.to_3x3(), dtype=np.float64)
        to_model = turn.T @ rest
        blend = posedirs[:, :, 9 * (joint - 1): 9 * joint] @ np.kron(to_model, to_model)  # (V, 3, 9)
        for element in range(9):
            name = f"Pose_{bone}_{element // 3}{element % 3}"
            key = _add_shape_key(obj, name, vertices + blend[:, :, element] @ turn.T)
            key.slider_min, key.slider_max = -2.0, 2.0  # R - I stays within [-2, 2]
            _drive_by_rotation(key, armature, bone, _ROTATION_MINUS_IDENTITY[element])


def _drive_by_rotation(key: bpy.types.ShapeKey, armature: bpy.types.Object, bone: str,
                       expression: str) -> None:
    """Drive `key`'s value by `expression` of the bone's local quaternion w, x, y, z, divided
    by its squared length. A simple expression: it runs without Python scripts being allowed."""
    driver = key.driver_add("value").driver
    driver.type = "SCRIPTED"
    for component in "wxyz":
        variable = driver.variables.new()
        variable.name = component
        variable.type = "TRANSFORMS"
        target = variable.targets[0]
        target.id = armature
        target.bone_target = bone
        target.transform_type = f"ROT_{component.upper()}"
        target.rotation_mode = "QUATERNION"
        target.transform_space = "LOCAL_SPACE"
    driver.expression = f"{expression}/(w*w+x*x+y*y+z*z)"
