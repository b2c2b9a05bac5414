"""Loading SMPL-format model files (.npz or .pkl, neutral, male or female) as a BodyModel.

Model files come from the SMPL website; the project never ships or downloads them. A `.pkl` is
a pickle, which can run code when loaded the ordinary way, so it is read with a restricted
unpickler that builds only numpy arrays, scipy sparse matrices (read back as their arrays) and
stand-ins for the chumpy objects found in the original SMPL files (chumpy itself does not run on
current Python and numpy; the stand-in keeps the array a plain chumpy `Ch` holds). Anything else
in the file stops the loading with an error naming it. A `.npz` is read without pickle, except
for an object array, which goes through the same restricted unpickler.

The arrays are checked against the SMPL layout (6890 vertices, 24 joints, the SMPL tree) and the
errors name what is wrong. Joints come from the mesh as in smplx (`vertices2joints` of the shaped
template), and the five leaf points of the 29-point convention are the mesh vertices HybrIK
uses: head top 411, left and right middle finger tips 2445 and 5905, left and right big toes
3216 and 6617.
"""

import codecs
import copyreg
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch
from smplx.lbs import vertices2joints

from ..errors import BackendError
from .model import NUM_BETAS, BodyModel, SmplMesh
from .tree import NUM_JOINTS, PARENTS

NUM_VERTICES = 6890
NUM_POSE_BLEND = 9 * (NUM_JOINTS - 1)  # 207
LEAF_VERTEX_IDS: tuple[int, ...] = (411, 2445, 5905, 3216, 6617)
REQUIRED_KEYS: tuple[str, ...] = (
    "v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
)
GENDERS = ("neutral", "male", "female")


class SmplFileError(BackendError, ValueError):
    """The file is missing, unreadable, or not an SMPL-format model; the message says why.

    Reported by the command line as error code `model_invalid` (exit code 3).
    """

    def __init__(self, message: str):
        super().__init__("model_invalid", message)


def load_smpl(path: str | Path, gender: str | None = None) -> BodyModel:
    """Load an SMPL-format model file the user pointed to.

    Args:
        path: a `.npz` or `.pkl` SMPL model file.
        gender: "neutral", "male" or "female"; None guesses it from the file name (neutral
            unless the name says otherwise). Only recorded: the file decides the body.

    Returns:
        A float32 CPU BodyModel with its mesh (`BodyModel.vertices` skins it).
    """
    path = Path(path)
    arrays = read_smpl_arrays(path)
    if gender is None:
        gender = _gender_from_name(path.name)
    elif gender not in GENDERS:
        raise SmplFileError(f"gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    mesh = SmplMesh(
        v_template=torch.tensor(arrays["v_template"], dtype=torch.float32),
        shapedirs=torch.tensor(arrays["shapedirs"][:, :, :NUM_BETAS], dtype=torch.float32),
        posedirs=torch.tensor(arrays["posedirs"].reshape(-1, NUM_POSE_BLEND).T, dtype=torch.float32),
        J_regressor=torch.tensor(arrays["J_regressor"], dtype=torch.float32),
        weights=torch.tensor(arrays["weights"], dtype=torch.float32),
        faces=torch.tensor(arrays["f"].astype(np.int64)),
    )
    leaves = list(LEAF_VERTEX_IDS)
    joints = vertices2joints(mesh.J_regressor, mesh.v_template.unsqueeze(0))[0]
    # Shape directions of the joints: the regressor applied to each beta's vertex offsets.
    joint_dirs = torch.einsum("jv,vcs->jcs", mesh.J_regressor, mesh.shapedirs)
    return BodyModel(
        name=path.stem,
        point_template=torch.cat([joints, mesh.v_template[leaves]]),
        point_shapedirs=torch.cat([joint_dirs, mesh.shapedirs[leaves]]),
        mesh=mesh,
        gender=gender,
    )


def read_smpl_arrays(path: Path) -> dict[str, np.ndarray]:
    """The checked arrays of an SMPL-format file: REQUIRED_KEYS, dense, float64 or int64."""
    if path.is_dir():
        raise SmplFileError(f"The SMPL model file given is a folder: {path} (choose the .npz or "
                            f".pkl file inside it)")
    if not path.is_file():
        raise SmplFileError(f"SMPL model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        raw = _read_npz(path)
    elif suffix == ".pkl":
        raw = _read_pkl(path)
    else:
        raise SmplFileError(f"{path.name}: an SMPL model file ends in .npz or .pkl")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise SmplFileError(f"{path.name} is not an SMPL model file: it has no {', '.join(missing)}")
    arrays = {key: _to_array(raw[key], key, path) for key in REQUIRED_KEYS}
    _check_layout(arrays, path)
    return arrays


def _gender_from_name(name: str) -> str:
    words = set(re.split(r"[^a-z]+", name.lower()))
    if "female" in words or "f" in words:
        return "female"
    if "male" in words or "m" in words:
        return "male"
    return "neutral"


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SmplFileError(f"{path.name} is not a readable .npz file ({exc})") from None
    with archive:
        out: dict[str, Any] = {}
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError:  # an object array, stored as a pickle
                with zipfile.ZipFile(path) as zipped, zipped.open(f"{key}.npy") as member:
                    out[key] = _unpickle_npy(member, path)
        return out


def _unpickle_npy(member: Any, path: Path) -> Any:
    """Read a .npy member holding an object array, with the restricted unpickler."""
    version = np.lib.format.read_magic(member)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    header(member)
    return _RestrictedUnpickler(member, path).load()


def _read_pkl(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        try:
            data = _RestrictedUnpickler(handle, path).load()
        except SmplFileError:
            raise
        except Exception as exc:  # a truncated or garbled pickle, or not a pickle at all
            raise SmplFileError(
                f"{path.name} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise SmplFileError(
            f"{path.name} is not an SMPL model file: it holds a {type(data).__name__}, not a dict")
    return data


class _ChumpyStandIn:
    """What a pickled chumpy object becomes: its saved attributes, nothing run."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def array(self) -> np.ndarray | None:
        value = self.state.get("x") if isinstance(self.state, dict) else None
        return value if isinstance(value, np.ndarray) else None


class _SparseStandIn:
    """What a pickled scipy sparse matrix becomes: its saved attributes, read back as an array."""

    format = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def array(self) -> np.ndarray | None:
        state = self.state if isinstance(self.state, dict) else {}
        shape = state.get("_shape", state.get("shape"))
        try:
            if self.format in ("csc", "csr"):
                make = scipy.sparse.csc_matrix if self.format == "csc" else scipy.sparse.csr_matrix
                matrix = make((state["data"], state["indices"], state["indptr"]), shape=shape)
            else:
                matrix = scipy.sparse.coo_matrix((state["data"], (state["row"], state["col"])), shape=shape)
        except (KeyError, TypeError, ValueError):
            return None
        return matrix.toarray()


def _sparse_class(fmt: str) -> type:
    return type(f"_{fmt}_matrix", (_SparseStandIn,), {"format": fmt})


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): np.core.numeric._frombuffer,
}
_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}
# Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
_OTHER_GLOBALS = {("_codecs", "encode"): codecs.encode}
_SPARSE = {f"{fmt}_matrix": _sparse_class(fmt) for fmt in ("csc", "csr", "coo")}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds numpy arrays, sparse matrices and chumpy stand-ins; refuses everything else."""

    def __init__(self, handle: Any, path: Path):
        super().__init__(handle, encoding="latin1")  # SMPL files were pickled by Python 2
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        numpy_module = module.replace("numpy._core", "numpy.core")  # pickles from numpy 2
        if (numpy_module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(numpy_module, name)]
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return copyreg._reconstructor
        if (module, name) in _OTHER_GLOBALS:
            return _OTHER_GLOBALS[(module, name)]
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _SPARSE[name]
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        raise SmplFileError(
            f"{self.path.name} is not an SMPL model file: it contains {module}.{name}, which an "
            "SMPL model never does, so it was not loaded"
        )


def _to_array(value: Any, key: str, path: Path) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()  # an object stored in a .npz
    if isinstance(value, (_ChumpyStandIn, _SparseStandIn)):
        array = value.array()
        if array is None:
            kind = "chumpy expression" if isinstance(value, _ChumpyStandIn) else "sparse matrix"
            raise SmplFileError(f"{path.name}: {key} is a {kind} this loader cannot read")
        value = array
    if scipy.sparse.issparse(value):
        value = value.toarray()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise SmplFileError(f"{path.name}: {key} is not a numeric array ({type(value).__name__})")
    return value.astype(np.int64 if key in ("f", "kintree_table") else np.float64)


def _check_layout(arrays: dict[str, np.ndarray], path: Path) -> None:
    v, j = NUM_VERTICES, NUM_JOINTS
    expected = {
        "v_template": (v, 3),
        "shapedirs": (v, 3, None),
        "posedirs": (v, 3, NUM_POSE_BLEND),
        "J_regressor": (j, v),
        "weights": (v, j),
        "kintree_table": (2, j),
        "f": (None, 3),
    }
    for key, shape in expected.items():
        got = arrays[key].shape
        if len(got) != len(shape) or any(s is not None and g != s for g, s in zip(got, shape)):
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise SmplFileError(f"{path.name}: {key} has shape {got}; an SMPL model has {want}")
        if not np.isfinite(arrays[key]).all():
            raise SmplFileError(f"{path.name}: {key} has values that are not finite numbers")
    if arrays["shapedirs"].shape[2] < NUM_BETAS:
        raise SmplFileError(f"{path.name}: shapedirs has {arrays['shapedirs'].shape[2]} shape "
                            f"components; at least {NUM_BETAS} are needed")
    if list(arrays["kintree_table"][0, 1:]) != list(PARENTS[1:]):
        raise SmplFileError(f"{path.name}: kintree_table is not the SMPL joint tree")
    faces = arrays["f"]
    if faces.size and (faces.min() < 0 or faces.max() >= v):
        raise SmplFileError(f"{path.name}: f refers to vertices outside 0..{v - 1}")

