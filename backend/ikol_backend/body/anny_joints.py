"""Where the 24 SMPL joints and the 5 leaf points sit on an `anny` body, and which SMPL joint
moves each anny bone. Plain numpy: no anny, no torch.

The open body (open_body.py) and the test-material tools (tests/tools/anny_scene.py) share
these rules, so the joints of a rendered test body and those of the body in Blender are
defined alike.

A joint is the head (start point) of one anny bone, the point that bone turns about, so the
anny skin weights bend the skin about the SMPL joint that takes them over:

| SMPL joint | anny bone head | | SMPL joint | anny bone head |
|---|---|---|---|---|
| pelvis | spine04 | | neck | neck01 |
| left/right_hip | upperleg01.L/R | | left/right_collar | shoulder01.L/R |
| spine1 | spine03 | | head | head |
| left/right_knee | lowerleg01.L/R | | left/right_shoulder | upperarm01.L/R |
| spine2 | spine02 | | left/right_elbow | lowerarm01.L/R |
| left/right_ankle | foot.L/R | | left/right_wrist | wrist.L/R |
| spine3 | spine01 | | left/right_hand | finger3-1.L/R (middle knuckle) |
| left/right_foot | toe3-1.L/R (ball of the foot) | | | |

Anny's own root sits between the hip joints; SMPL's pelvis joint sits several cm above them.
The pelvis joint turns the whole body, so it may sit anywhere without changing how the skin
bends; spine04's head is used, a few cm above the hips' midpoint, as in SMPL.

Leaf points are skin vertices, picked once on a body's rest mesh: head_top, the highest
vertex; the middle fingertips, the vertex moved mostly by finger3-3.L/R farthest along that
bone; the big toes, the vertex moved mostly by toe1-2.L/R farthest along that bone.

Every anny bone follows one SMPL joint: the bones named above follow their joint, finger
bones follow the hand, toe bones the foot, and any other bone the joint of its nearest named
ancestor (metacarpals the wrist, upperleg02 the hip, neck02 the neck, the eyes the head,
clavicle.L/R spine3, anny's root, spine05 and pelvis.L/R the pelvis).
"""

import numpy as np

from .tree import JOINT_NAMES, LEAF_NAMES

POINT_NAMES: tuple[str, ...] = JOINT_NAMES + LEAF_NAMES

# SMPL joint -> the anny bone whose head it is.
JOINT_BONES: dict[str, str] = {
    "pelvis": "spine04",
    "left_hip": "upperleg01.L", "right_hip": "upperleg01.R",
    "spine1": "spine03",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R",
    "spine2": "spine02",
    "left_ankle": "foot.L", "right_ankle": "foot.R",
    "spine3": "spine01",
    "left_foot": "toe3-1.L", "right_foot": "toe3-1.R",
    "neck": "neck01",
    "left_collar": "shoulder01.L", "right_collar": "shoulder01.R",
    "head": "head",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L", "right_wrist": "wrist.R",
    "left_hand": "finger3-1.L", "right_hand": "finger3-1.R",
}

# Leaf point -> (the bone whose vertices are searched, the bone before it), or None for the
# highest vertex.
LEAF_RULES: dict[str, tuple[str, str] | None] = {
    "head_top": None,
    "left_middle_tip": ("finger3-3.L", "finger3-2.L"),
    "right_middle_tip": ("finger3-3.R", "finger3-2.R"),
    "left_bigtoe": ("toe1-2.L", "toe1-1.L"),
    "right_bigtoe": ("toe1-2.R", "toe1-1.R"),
}

# How each point is placed, in words (written into test-material metadata).
POINT_SOURCES: dict[str, tuple[str, str]] = {
    **{name: ("head", bone) for name, bone in JOINT_BONES.items()},
    "head_top": ("vertex", "highest rest vertex"),
    **{name: ("vertex", f"rest vertex of {rule[0]} farthest along that bone")
       for name, rule in LEAF_RULES.items() if rule is not None},
}


def bone_joints(labels: list[str], parents: list[int]) -> np.ndarray:
    """The SMPL joint index that moves each anny bone (see the module's docstring).

    Args:
        labels: anny bone labels; parents: each bone's parent index (-1 for the root), parents
            listed before their children.
    """
    index = {bone: JOINT_NAMES.index(joint) for joint, bone in JOINT_BONES.items()}
    out = np.zeros(len(labels), dtype=np.int64)
    for bone, label in enumerate(labels):
        side = label.rsplit(".", 1)[1] if "." in label else ""
        whose = {"L": "left_", "R": "right_"}.get(side, "")
        if label.startswith("finger"):
            out[bone] = JOINT_NAMES.index(whose + "hand")
        elif label.startswith("toe"):
            out[bone] = JOINT_NAMES.index(whose + "foot")
        elif label in index:
            out[bone] = index[label]
        elif parents[bone] >= 0:
            out[bone] = out[parents[bone]]
        else:
            out[bone] = 0  # the root: the pelvis
    return out


def dominant_bones(weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """(V,) the bone with the largest skin weight of each vertex, from anny's sparse weights:
    (V, K) weights and (V, K) bone indices."""
    return indices[np.arange(len(indices)), np.argmax(weights, axis=1)]


def pick_leaf_vertices(vertices: np.ndarray, heads: np.ndarray, labels: list[str],
                       dominant: np.ndarray, up_axis: int) -> dict[str, int]:
    """The vertex index of each leaf point on a rest mesh (rules in the module's docstring).

    Args:
        vertices: (V, 3) rest vertices; heads: (B, 3) rest bone heads, same frame.
        dominant: (V,) each vertex's dominant bone (dominant_bones).
        up_axis: the frame's up axis (2 in anny's Z-up frame, 1 in the SMPL model frame).
    """
    index = {label: i for i, label in enumerate(labels)}
    picked = {}
    for name, rule in LEAF_RULES.items():
        if rule is None:
            picked[name] = int(np.argmax(vertices[:, up_axis]))
            continue
        bone, before = rule
        direction = heads[index[bone]] - heads[index[before]]
        candidates = np.flatnonzero(dominant == index[bone])
        along = (vertices[candidates] - heads[index[bone]]) @ direction
        picked[name] = int(candidates[np.argmax(along)])
    return picked


def smpl_points(heads: np.ndarray, vertices: np.ndarray, labels: list[str],
                leaf_vertices: dict[str, int]) -> np.ndarray:
    """(29, 3) the 24 joints and 5 leaf points of one anny body, in the frame of its bone
    heads (B, 3) and vertices (V, 3) (rest or posed alike)."""
    index = {label: i for i, label in enumerate(labels)}
    joints = [heads[index[JOINT_BONES[name]]] for name in JOINT_NAMES]
    leaves = [vertices[leaf_vertices[name]] for name in LEAF_NAMES]
    return np.array(joints + leaves, dtype=np.float64)
