"""A generated stand-in body model in the SMPL file format, for tests.

Same keys and array shapes as an SMPL model file (v_template (6890, 3), shapedirs (6890, 3, 10),
posedirs (6890, 3, 207), J_regressor (24, 6890), weights (6890, 24), kintree_table (2, 24),
f (13776, 3)), but built here from the project's default skeleton: it is not SMPL and carries
none of its data. Each bone is a closed tube of rings of vertices (a capsule with flat caps);
the first ring of a joint's first bone is centred on the joint, and the joint regressor
averages it, so the regressed joints are exactly the skeleton's. The far cap centres of the
five leaf bones sit at the vertex ids SMPL-based code reads leaf points from (411, 2445, 5905,
3216, 6617). Shape: betas 0-3 as in the default skeleton, 4 thickens the limbs (joints do not
move), 5-9 stretch the torso, neck, hips, feet and hands. Skinning is rigid to the bone's joint
with a blend over the last third of each bone; pose blend shapes are small and seeded.

`write_standin(folder)` writes `standin_neutral.npz` (dense arrays) and `standin_neutral.pkl`
(a pickle like the original files, the regressor as a scipy sparse matrix); both load with
`ikol_backend.body.smpl_file.load_smpl` and with `smplx.SMPL`. With `chumpy=True` the pickle's
shapedirs is a pickled object of a class named chumpy.ch.Ch (as in the original files), which
only a loader with a chumpy stand-in can read.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.tree import NUM_JOINTS, NUM_POINTS, POINT_PARENTS, PARENTS, children

NUM_VERTICES = 6890
NUM_FACES = 13776
LEAF_VERTEX_IDS = (411, 2445, 5905, 3216, 6617)  # head top, middle finger tips, big toes
RING = 16  # vertices per ring

# Radius of the tube of each bone, by the name of its child point's part.
_RADIUS = {
    "hip": 0.08, "spine1": 0.12, "spine2": 0.13, "spine3": 0.13, "knee": 0.07, "ankle": 0.05,
    "foot": 0.04, "bigtoe": 0.03, "neck": 0.07, "collar": 0.06, "head": 0.06, "head_top": 0.09,
    "shoulder": 0.05, "elbow": 0.045, "wrist": 0.035, "hand": 0.03, "middle_tip": 0.02,
}


def standin_arrays() -> dict[str, np.ndarray]:
    """The stand-in model as SMPL-format arrays (J_regressor dense)."""
    skeleton = default_skeleton()
    joints = skeleton.point_template.double().numpy()  # (29, 3)
    joint_dirs = _joint_shapedirs(skeleton.point_shapedirs.double().numpy(), joints)
    names = _point_names()

    positions, dirs, girth, weights, faces = [], [], [], [], []
    regressor = np.zeros((NUM_JOINTS, NUM_VERTICES))
    leaf_slot: dict[int, int] = {}
    first_bone = {parent: kids[0] for parent, kids in enumerate(children()) if kids}
    count = 0
    for child, rings in zip(range(1, NUM_POINTS), _rings_per_bone(joints)):
        parent = POINT_PARENTS[child]
        start, end = joints[parent], joints[child]
        length = np.linalg.norm(end - start)
        axis = (end - start) / length
        side = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
        side /= np.linalg.norm(side)
        up = np.cross(axis, side)
        radius = _RADIUS[names[child]]
        base = count
        # Cap centre, rings, cap centre.
        for s, offsets in [(0.0, [np.zeros(3)])] + [
            (i / (rings - 1), [radius * (np.cos(a) * side + np.sin(a) * up)
                               for a in 2 * np.pi * np.arange(RING) / RING])
            for i in range(rings)
        ] + [(1.0, [np.zeros(3)])]:
            for offset in offsets:
                positions.append(start + s * (end - start) + offset)
                dirs.append((1 - s) * joint_dirs[parent] + s * joint_dirs[child])
                girth.append(offset)
                w = np.zeros(NUM_JOINTS)
                blend = 0.5 * max(0.0, (s - 2 / 3) * 3) if child < NUM_JOINTS else 0.0
                w[parent] += 1 - blend
                if blend:
                    w[child] += blend
                weights.append(w)
                count += 1
        if first_bone.get(parent) == child and parent < NUM_JOINTS:
            regressor[parent, base + 1:base + 1 + RING] = 1.0 / RING  # the ring at the joint
        if child >= NUM_JOINTS:
            leaf_slot[child - NUM_JOINTS] = count - 1  # the far cap centre is the leaf point
        faces.extend(_capsule_faces(base, rings))
    if count > NUM_VERTICES or len(faces) > NUM_FACES:
        raise AssertionError(f"stand-in too large: {count} vertices, {len(faces)} faces")
    for _ in range(NUM_VERTICES - count):  # spare vertices at the pelvis, in no face
        positions.append(joints[0].copy())
        dirs.append(joint_dirs[0])
        girth.append(np.zeros(3))
        w = np.zeros(NUM_JOINTS)
        w[0] = 1.0
        weights.append(w)
    faces.extend(faces[: NUM_FACES - len(faces)])  # repeat a few triangles to reach the count

    # Give the leaf points their SMPL vertex ids: new vertex i is old vertex order[i].
    order = np.arange(NUM_VERTICES)
    for leaf, vertex_id in enumerate(LEAF_VERTEX_IDS):
        here = int(np.flatnonzero(order == leaf_slot[leaf])[0])
        order[here], order[vertex_id] = order[vertex_id], order[here]
    new_index = np.empty(NUM_VERTICES, dtype=np.int64)
    new_index[order] = np.arange(NUM_VERTICES)

    positions, dirs = np.array(positions)[order], np.array(dirs)[order]
    girth, weights = np.array(girth)[order], np.array(weights)[order]
    dirs[:, :, 4] = 0.1 * girth  # beta 4: 10 % thicker per unit
    rng = np.random.default_rng(7)
    return {
        "v_template": positions,
        "shapedirs": dirs,
        "posedirs": rng.normal(0.0, 2e-4, (NUM_VERTICES, 3, 9 * (NUM_JOINTS - 1))),
        "J_regressor": regressor[:, order],
        "weights": weights,
        "kintree_table": np.array([[2**32 - 1] + list(PARENTS[1:]), list(range(NUM_JOINTS))],
                                  dtype=np.int64),
        "f": new_index[np.array(faces)].astype(np.uint32),
    }


def write_standin(folder: Path, chumpy: bool = False) -> tuple[Path, Path]:
    """Write the stand-in as `standin_neutral.npz` and `standin_neutral.pkl` in `folder`."""
    arrays = standin_arrays()
    npz = folder / "standin_neutral.npz"
    pkl = folder / "standin_neutral.pkl"
    np.savez(npz, **arrays)
    data: dict[str, object] = dict(arrays)
    data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    data["bs_style"], data["bs_type"] = "lbs", "lrotmin"
    if chumpy:
        data["shapedirs"] = _chumpy_like(arrays["shapedirs"])
    with pkl.open("wb") as handle:
        _dump_with_fake_chumpy(data, handle) if chumpy else pickle.dump(data, handle, protocol=2)
    return npz, pkl


def _rings_per_bone(joints: np.ndarray) -> list[int]:
    """Rings of each bone's tube, in proportion to its length, using up the vertex budget."""
    lengths = np.array([np.linalg.norm(joints[c] - joints[POINT_PARENTS[c]]) for c in range(1, NUM_POINTS)])
    total = (NUM_VERTICES - 2 * len(lengths)) // RING  # two cap centres per tube
    share = 3 + (total - 3 * len(lengths)) * lengths / lengths.sum()
    rings = np.floor(share).astype(int)
    rings[np.argsort(rings - share)[: total - rings.sum()]] += 1  # largest remainders
    return rings.tolist()


def _point_names() -> list[str]:
    from ikol_backend.body.tree import JOINT_NAMES, LEAF_NAMES

    return [n.split("_", 1)[1] if n.startswith(("left_", "right_")) else n
            for n in JOINT_NAMES + LEAF_NAMES]


def _joint_shapedirs(dirs: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """The default skeleton's betas 0-3, plus stretches of body parts for betas 5-9."""
    dirs = dirs.copy()
    names = _point_names()
    kids = children()

    def stretch(beta: int, root: int, scale: float) -> None:
        """Move everything below `root` along with its bone lengths growing by `scale`."""
        stack = [(c, np.zeros(3)) for c in kids[root]]
        while stack:
            point, carried = stack.pop()
            carried = carried + scale * (joints[point] - joints[POINT_PARENTS[point]])
            dirs[point, :, beta] += carried
            stack.extend((c, carried) for c in kids[point])

    stretch(5, 3, 0.04)  # torso: everything above spine1
    stretch(6, 12, 0.06)  # neck and head
    for hip in (1, 2):  # hip width
        dirs[hip, 0, 7] = 0.006 * np.sign(joints[hip, 0])
        stack = list(kids[hip])
        while stack:
            point = stack.pop()
            dirs[point, 0, 7] = dirs[hip, 0, 7]
            stack.extend(kids[point])
    for i, name in enumerate(names):  # feet and hands
        if name in ("foot", "bigtoe"):
            dirs[i, :, 8] = 0.05 * (joints[i] - joints[7 if joints[i, 0] > 0 else 8])
        if name in ("hand", "middle_tip"):
            dirs[i, :, 9] = 0.05 * (joints[i] - joints[20 if joints[i, 0] > 0 else 21])
    return dirs


def _capsule_faces(base: int, rings: int) -> list[tuple[int, int, int]]:
    """Triangles of a capsule: cap centre `base`, rings of RING after it, then the far centre."""
    faces = []
    first, last = base + 1, base + 1 + (rings - 1) * RING
    far = base + 1 + rings * RING
    for k in range(RING):
        nxt = (k + 1) % RING
        faces.append((base, first + nxt, first + k))
        faces.append((far, last + k, last + nxt))
        for r in range(rings - 1):
            a, b = base + 1 + r * RING, base + 1 + (r + 1) * RING
            faces.append((a + k, a + nxt, b + nxt))
            faces.append((a + k, b + nxt, b + k))
    return faces


class _Ch:
    """Pickled under the name chumpy.ch.Ch: a value in `x`, as chumpy's objects keep it."""


def _chumpy_like(array: np.ndarray) -> _Ch:
    obj = _Ch()
    obj.__dict__.update({"x": array, "_dirty_vars": set(), "_itr": None, "_depends_on_deps": {}})
    return obj


def _dump_with_fake_chumpy(data: dict[str, object], handle: object) -> None:
    """Pickle with `_Ch` registered as chumpy.ch.Ch for the duration of the dump."""
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch = _Ch
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    _Ch.__module__, _Ch.__qualname__ = "chumpy.ch", "Ch"
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        pickle.dump(data, handle, protocol=2)
    finally:
        _Ch.__module__, _Ch.__qualname__ = __name__, "_Ch"
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
