"""Licence-clean renders of two to four people with known joints (issue 20: people and tracks).

Built on tests/tools/anny_scene.py (one anny body, Blender as a Python module, Cycles on the
CPU): the same bodies, poses, camera and per-frame records, with several bodies in one scene,
each of its own shape (anny phenotype) and its own clothes, skin and hair colours so that
appearance alone can tell them apart.

Scenarios (each function renders what is missing into the cache and returns `Rendered`
items; the truth is one JSON per item):
- `crossing`: two people walk toward each other across the view, one passing behind the other
  (hidden for a few frames); a 2.5 s clip.
- `behind`: one person stands still, another walks behind them; a 2.4 s clip.
- `group`: a still of four people standing side by side at different depths, some partly
  overlapping.
- `closeup`: two stills of one person each: head and shoulders (cut at the chest) and a body
  cut at the waist.
Clips are MJPG .avi files (OpenCV; as bench/accuracy.py, for its quality) with the frames also
kept as PNG files beside them; stills are PNG files.

Frames and units (as anny_scene.py):
- world: Blender's, Z up, metres, the floor at z = 0; an actor's `x`, `y` angles are where its
  anny root (between the hips) stands in the world.
- camera frame: OpenCV, x right, y down, z forward, metres.
- pixels: continuous image coordinates, (0, 0) the top-left corner of the image.

Truth per frame and person (JSON `frames[k].people[p]`; `load_truth` turns it into arrays):
`joints_2d` (29, 2) pixels and `joints_cam` (29, 3) camera-frame metres, both in the order of
`joint_names` (the 24 SMPL joints, then the 5 leaf points, as the motion file's
`keypoints_2d`); `in_image` (29,) whether each point projects inside the image; `occluded`
(29,) whether another person, nearer (by the pelvis), is seen at the point's pixel; `pixels` (the person's pixels seen in
the image), `visible_share` (those over the pixels the person would cover alone, inside the
image); `visible` (visible_share >= VISIBLE_SHARE and pixels >= MIN_PIXELS); `box`
(u0, v0, u1, v1, the person's whole silhouette clipped to the image) and `visible_box` (the
box of the pixels seen), pixels, or null when there are none.

Occlusion is measured from an index render, not guessed: after the colour render of a frame
the same scene is rendered again by Cycles with one sample, no pixel filter and every body an
unlit flat colour that codes its number (the `ids` PNG beside each frame), so each pixel says
which person the camera sees first there (a true per-pixel depth test). A person's own
silhouette, as if alone, is their mesh's triangles filled in the image plane (OpenCV).

Renders are cached under ${IKOL_BENCH_CACHE:-~/.cache/ikol-for-blender}/people/v<VERSION>/
(one folder per item; its truth JSON is written last and marks it complete; frames already
rendered are kept when an interrupted render starts again).

    .venv/bin/python tests/tools/people_scene.py              # render every scenario
    .venv/bin/python tests/tools/people_scene.py crossing group --threads 1
    .venv/bin/python tests/tools/people_scene.py --solo crossing  # plus one render per person

`solo` renders (`render_scenario(..., solo=True)`) show each person of a scenario alone, with
the same camera, poses and frames: the single-person reference for bench/people.py.

Test and bench tooling only: the add-on never imports this.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anny_scene as base  # noqa: E402  (numpy only at import; anny and bpy load when rendering)

VERSION = "1"  # part of the cache folder: change it when the renders or the truth change
FPS = 30.0
SIZE = (640, 360)  # width, height in pixels
GROUP_SIZE = (960, 540)  # the group still
SAMPLES = 10  # Cycles samples per pixel, with OpenImageDenoise where the build has it
VISIBLE_SHARE = 0.5  # a person is visible when at least this share of them is not covered
MIN_PIXELS = 200  # ... and at least this many of their pixels are seen
VIDEO_FOURCC, VIDEO_SUFFIX = "MJPG", ".avi"
SCENARIOS = ("crossing", "behind", "group", "closeup")
JOINT_NAMES = list(base.SMPL_JOINT_NAMES)  # 24 SMPL joints, then 5 leaf points

# Four clearly different people: body (anny phenotype) and colours (sRGB).
LOOKS = (
    {"phenotype": {"gender": 0.1, "age": 0.65, "muscle": 0.65, "weight": 0.5, "height": 0.45,
                   "proportions": 0.3},
     "colours": {"shirt": base.SHIRTS[1], "trousers": base.TROUSERS[0], "skin": base.SKINS[0],
                 "hair": (0.10, 0.07, 0.05)}},  # tall man, red shirt, dark trousers
    {"phenotype": {"gender": 0.95, "age": 0.6, "muscle": 0.35, "weight": 0.35, "height": 0.42,
                   "proportions": 0.45},
     "colours": {"shirt": base.SHIRTS[2], "trousers": base.TROUSERS[1], "skin": base.SKINS[2],
                 "hair": (0.04, 0.03, 0.03)}},  # short woman, white top, blue jeans
    {"phenotype": {"gender": 0.3, "age": 0.85, "muscle": 0.4, "weight": 0.85, "height": 0.32,
                   "proportions": 0.6},
     "colours": {"shirt": base.SHIRTS[3], "trousers": base.TROUSERS[2], "skin": base.SKINS[1],
                 "hair": (0.55, 0.53, 0.50)}},  # heavy older man, green shirt, beige trousers
    {"phenotype": {"gender": 0.75, "age": 0.7, "muscle": 0.5, "weight": 0.3, "height": 0.47,
                   "proportions": 0.2},
     "colours": {"shirt": base.SHIRTS[4], "trousers": base.TROUSERS[3], "skin": base.SKINS[3],
                 "hair": (0.35, 0.20, 0.08)}},  # tall slim woman, yellow top, black trousers
)


def _log(*args) -> None:
    print("[people_scene]", *args, file=sys.stderr, flush=True)


def default_cache() -> Path:
    """${IKOL_BENCH_CACHE:-~/.cache/ikol-for-blender}/people/v<VERSION>."""
    root = os.environ.get("IKOL_BENCH_CACHE") or Path.home() / ".cache" / "ikol-for-blender"
    return Path(root) / "people" / f"v{VERSION}"


# --------------------------------------------------------------------------------------
# what is rendered


@dataclasses.dataclass
class Actor:
    """One person: a look (index into LOOKS) and joint angles per frame (degrees, see
    anny_scene.ANGLE_DOC; `x`, `y` are where the root stands in the world, metres)."""

    look: int
    angles: list[dict]


@dataclasses.dataclass
class Setup:
    """One item to render: its people, camera and frame rate (None for a still)."""

    name: str
    actors: list[Actor]
    camera: base.CameraSpec
    fps: float | None = FPS

    @property
    def frames(self) -> int:
        return len(self.actors[0].angles)


@dataclasses.dataclass
class Rendered:
    """A rendered item in the cache: its media (video or PNG), truth JSON and frame PNGs."""

    name: str
    media: Path
    truth: Path
    frame_paths: list[Path]


def _camera(location, target, lens_mm: float, size=SIZE) -> base.CameraSpec:
    return base.camera_looking(location, target, size[0], size[1], lens_mm)


def _standing(heading: float, x: float, y: float, seed: int, **extra) -> dict:
    """A relaxed standing pose (random but plausible arms and head, seeded) at (x, y)."""
    rng = np.random.default_rng(seed)
    a = base.random_angles(rng, "stand")
    a.update(heading=heading, x=x, y=y, **extra)
    return a


def _walking(frames: int, heading: float, start, speed: float, phase: float = 0.0) -> list:
    return [base.walk_angles(k / FPS + phase, heading, speed=speed,
                             start=_back_off(start, heading, speed, phase))
            for k in range(frames)]


def _back_off(start, heading: float, speed: float, phase: float):
    """The start point that puts the walker at `start` at clip time 0 despite `phase` (s)."""
    direction = base.about(base.UP, heading) @ base.FRONT
    return (start[0] - speed * phase * direction[0], start[1] - speed * phase * direction[1])


def crossing_setup() -> Setup:
    """Two people walking toward each other across the view, 2.5 s: the farther one (look 1,
    slim, about 8 m from the camera) passes behind the nearer one (look 2, broad, about
    5.5 m)."""
    frames = 75
    far = _walking(frames, heading=82.0, start=(-1.05, 1.0), speed=0.85)
    near = _walking(frames, heading=-98.0, start=(1.0, -2.4), speed=0.8, phase=0.4)
    camera = _camera((0.0, -7.0, 1.45), (0.0, 0.0, 0.85), 40.0)
    return Setup("crossing", [Actor(1, far), Actor(2, near)], camera)


def behind_setup() -> Setup:
    """One person (look 2) standing still about 5 m from the camera while another (look 3)
    walks behind them from left to right, about 8.5 m away, 2.4 s."""
    frames = 72
    stand = _standing(heading=18.0, x=0.15, y=-2.0, seed=3)
    still = [dict(stand, head_yaw=stand["head_yaw"] + 8 * math.sin(k / FPS * 2.0))
             for k in range(frames)]
    walker = _walking(frames, heading=90.0, start=(-1.5, 1.5), speed=1.25, phase=0.2)
    camera = _camera((0.0, -7.0, 1.45), (0.0, 0.0, 0.85), 40.0)
    return Setup("behind", [Actor(2, still), Actor(3, walker)], camera)


def group_setup() -> Setup:
    """Four people standing side by side at different depths (3.5 to 6 m from the camera),
    the farther ones partly behind the nearer ones; one still."""
    places = ((0, -25.0, -1.0, -0.6), (1, 10.0, -0.15, 1.0), (2, 15.0, 0.5, -0.2),
              (3, -10.0, 1.05, 0.7))
    actors = [Actor(look, [_standing(heading, x, y, seed=10 + look)])
              for look, heading, x, y in places]
    camera = _camera((0.25, -4.6, 1.5), (0.3, 0.0, 0.9), 30.0, GROUP_SIZE)
    return Setup("group", actors, camera, fps=None)


def closeup_setups() -> list[Setup]:
    """One person each, facing the camera: `closeup_chest` frames the head and shoulders
    (cut at the chest), `closeup_waist` the body down to the waist."""
    chest = _standing(heading=-12.0, x=0.0, y=0.0, seed=21, head_yaw=8.0)
    waist = _standing(heading=20.0, x=0.0, y=0.0, seed=22)
    return [
        Setup("closeup_chest", [Actor(1, [chest])],
              _camera((0.05, -1.45, 1.42), (0.0, 0.0, 1.39), 50.0), fps=None),
        Setup("closeup_waist", [Actor(0, [waist])],
              _camera((0.1, -1.65, 1.6), (0.0, 0.0, 1.525), 45.0), fps=None),
    ]


def setups(name: str) -> list[Setup]:
    """The items of one scenario (SCENARIOS)."""
    if name == "crossing":
        return [crossing_setup()]
    if name == "behind":
        return [behind_setup()]
    if name == "group":
        return [group_setup()]
    if name == "closeup":
        return closeup_setups()
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


def setups_named(name: str, solo: bool = False) -> list[Setup]:
    """The items of one scenario and, with `solo`, each of their people alone."""
    out = []
    for setup in setups(name):
        out.append(setup)
        if solo and len(setup.actors) > 1:
            out += [solo_setup(setup, i) for i in range(len(setup.actors))]
    return out


def solo_setup(setup: Setup, person: int) -> Setup:
    """`setup` with one person alone (same camera, poses and frames)."""
    return dataclasses.replace(setup, name=f"{setup.name}_solo{person}",
                               actors=[setup.actors[person]])


# --------------------------------------------------------------------------------------
# placing bodies


@dataclasses.dataclass
class Placed:
    """An actor's body and, per frame, its pose and anny -> world offset (metres)."""

    body: "base.Body"
    poses: list
    offsets: list


def place(actor: Actor) -> Placed:
    """Pose an actor's body frame by frame, its root over the angles' (x, y) and its lowest
    vertex on the floor in every frame."""
    look = LOOKS[actor.look]
    body = base.Body(look["phenotype"])
    poses = [base.pose_from_angles(body, a) for a in actor.angles]
    first = poses[0]
    root = body.root_of(first)
    shift_xy = np.array(first.root_translation[:2]) - root[:2]
    offsets = []
    for pose in poses:
        vertices, _ = body.evaluate(pose)
        offsets.append(np.array([shift_xy[0], shift_xy[1], -float(vertices[:, 2].min())]))
    return Placed(body, poses, offsets)


# --------------------------------------------------------------------------------------
# Blender: several bodies in one anny_scene.Scene, and the index render


def add_body(scene: "base.Scene", body: "base.Body", colours: dict, name: str):
    """A further body mesh in `scene` (anny_scene.Scene holds the first), with its own
    materials; returns the mesh (vertices set per frame)."""
    import bpy

    mesh = bpy.data.meshes.new(name)
    faces = body.faces
    mesh.vertices.add(len(body.rest_vertices))
    mesh.loops.add(faces.size)
    mesh.polygons.add(len(faces))
    mesh.vertices.foreach_set("co", body.rest_vertices.astype(np.float32).ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    for region, (colour, rough) in base.REGIONS.items():
        mesh.materials.append(base._principled(region, colours.get(region, colour), rough,
                                               subsurface=0.15 if region == "skin" else 0.0))
    mesh.polygons.foreach_set("material_index", body.face_regions.astype(np.int32))
    mesh.update()
    mesh.validate()
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    scene.scene.collection.objects.link(obj)
    return mesh


def id_colour(person: int) -> tuple[float, float, float]:
    """The index render's flat colour of person `person` (0..6): its number + 1 in binary,
    one bit per channel (red = 1, green = 2, blue = 4); black is nobody."""
    code = person + 1
    return (float(code & 1), float((code >> 1) & 1), float((code >> 2) & 1))


def decode_ids(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W) int: the person seen at each pixel of an index render, -1 for nobody."""
    bits = image_bgr > 127
    return (bits[..., 2] * 1 + bits[..., 1] * 2 + bits[..., 0] * 4).astype(int) - 1


def _flat(name: str, colour) -> "bpy.types.Material":
    import bpy

    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:  # Blender < 5.0
        mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Color"].default_value = (*colour, 1.0)
    emit.inputs["Strength"].default_value = 1.0
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def switch_to_index_render(scene: "base.Scene", meshes: list) -> None:
    """Turn the scene into the index render: each body one flat colour (id_colour), floor
    and world black, one sample, no pixel filter, denoiser, dither or tone mapping."""
    import bpy

    for person, mesh in enumerate(meshes):
        flat = _flat(f"id_{person}", id_colour(person))
        for slot in range(len(mesh.materials)):
            mesh.materials[slot] = flat
    floor = bpy.data.objects["floor"].data
    floor.materials[0] = _flat("id_none", (0.0, 0.0, 0.0))
    bg = scene.scene.world.node_tree.nodes.get("Background")
    bg.inputs["Strength"].default_value = 0.0
    s = scene.scene
    s.cycles.samples = 1
    s.cycles.use_denoising = False
    s.cycles.filter_width = 0.01
    s.render.dither_intensity = 0.0
    s.view_settings.view_transform = "Standard"
    s.view_settings.look = "None"
    s.view_settings.exposure = 0.0
    s.view_settings.gamma = 1.0


def silhouette(vertices_world: np.ndarray, faces: np.ndarray, camera: base.CameraSpec,
               ) -> np.ndarray:
    """(H, W) bool: the pixels the mesh's triangles cover in the image, as if alone (every
    vertex in front of the camera)."""
    uv = camera.project(vertices_world)
    mask = np.zeros((camera.height, camera.width), np.uint8)
    tris = np.round(uv[faces] * 16).astype(np.int32)  # 4 fractional bits
    x, y = tris[..., 0], tris[..., 1]
    w, h = camera.width * 16, camera.height * 16
    inside = ~(((x < 0).all(1)) | ((x >= w).all(1)) | ((y < 0).all(1)) | ((y >= h).all(1)))
    import cv2

    for tri in tris[inside]:
        cv2.fillConvexPoly(mask, tri, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _box(mask: np.ndarray):
    """(u0, v0, u1, v1) of a mask's pixels (pixel edges, continuous pixels), None if empty."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    v = np.flatnonzero(rows)
    u = np.flatnonzero(cols)
    return [int(u[0]), int(v[0]), int(u[-1]) + 1, int(v[-1]) + 1]


def person_truth(record: dict, ids: np.ndarray, own: np.ndarray, person: int,
                 camera: base.CameraSpec, depths: np.ndarray) -> dict:
    """One person's truth in one frame from anny_scene.frame_record's record, the frame's
    index render (decoded), the person's own silhouette and everyone's pelvis depth (metres,
    camera z): a point is occluded when the pixel shows another person whose pelvis is nearer
    than the point (a point on the edge of its body may show someone behind)."""
    uv = np.array([record["joints_2d"][n] for n in JOINT_NAMES])
    cam = np.array([record["joints_cam"][n] for n in JOINT_NAMES])
    w, h = camera.width, camera.height
    in_image = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h) & (cam[:, 2] > 0)
    occluded = np.zeros(len(uv), bool)
    for j in np.flatnonzero(in_image):
        seen = ids[int(uv[j, 1]), int(uv[j, 0])]
        occluded[j] = seen >= 0 and seen != person and depths[seen] < cam[j, 2]
    seen_mask = ids == person
    pixels = int(seen_mask.sum())
    alone = int(own.sum())
    share = pixels / alone if alone else 0.0
    return {
        "joints_2d": uv.round(3).tolist(),
        "joints_cam": cam.round(6).tolist(),
        "in_image": in_image.tolist(),
        "occluded": occluded.tolist(),
        "pixels": pixels,
        "pixels_alone": alone,
        "visible_share": round(min(share, 1.0), 4),
        "visible": bool(share >= VISIBLE_SHARE and pixels >= MIN_PIXELS),
        "box": _box(own),
        "visible_box": _box(seen_mask),
    }


# --------------------------------------------------------------------------------------
# rendering an item


def item_paths(cache: Path, name: str, still: bool) -> tuple[Path, Path, Path]:
    """(folder, media, truth JSON) of a cached item."""
    folder = cache / name
    media = folder / (f"{name}.png" if still else f"{name}{VIDEO_SUFFIX}")
    return folder, media, folder / f"{name}.json"


def _image_ok(path: Path) -> bool:
    from PIL import Image

    if not path.exists():
        return False
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except OSError:
        return False


def render_setup(setup: Setup, cache: Path, threads: int = 1, samples: int = SAMPLES,
                 seed: int = 0) -> Rendered:
    """Render `setup` into the cache (frames already there are kept) and write its truth.
    Needs anny and bpy. The colour render of every frame comes first, then the index render
    of every frame (the scene switched once)."""
    import cv2

    still = setup.fps is None
    folder, media, truth_path = item_paths(cache, setup.name, still)
    frames_dir = folder / "frames"
    ids_dir = folder / "ids"
    ids_dir.mkdir(parents=True, exist_ok=True)
    n = setup.frames
    colour_paths = [media] if still else [frames_dir / f"frame_{k:03d}.png" for k in range(n)]
    id_paths = [ids_dir / f"ids_{k:03d}.png" for k in range(n)]

    began = time.time()
    placed = [place(a) for a in setup.actors]
    looks = [LOOKS[a.look] for a in setup.actors]
    scene = base.Scene(placed[0].body, setup.camera, samples=samples, seed=seed,
                       threads=threads, colours=looks[0]["colours"])
    meshes = [scene.mesh] + [add_body(scene, p.body, look["colours"], f"person_{i}")
                             for i, (p, look) in enumerate(zip(placed[1:], looks[1:]), 1)]
    _log(f"{setup.name}: scene with {len(placed)} people built in {time.time() - began:.1f} s")

    # per frame and person: world vertices and anny_scene's record
    records, vertices = [], []
    for k in range(n):
        per_v, per_r = [], []
        for p in placed:
            v, r = base.frame_record(p.body, p.poses[k], setup.camera, p.offsets[k])
            per_v.append(v)
            per_r.append(r)
        vertices.append(per_v)
        records.append(per_r)

    def draw(paths: list[Path], kind: str) -> None:
        for k, path in enumerate(paths):
            if _image_ok(path):
                continue
            t0 = time.time()
            path.parent.mkdir(parents=True, exist_ok=True)
            for mesh, v in zip(meshes, vertices[k]):
                mesh.vertices.foreach_set("co", v.astype(np.float32).ravel())
                mesh.update()
            scene.render(path)
            _log(f"{setup.name}: {kind} {k + 1}/{n} in {time.time() - t0:.1f} s")

    draw(colour_paths, "frame")
    switch_to_index_render(scene, meshes)
    draw(id_paths, "index")

    frames = []
    for k in range(n):
        ids = decode_ids(cv2.imread(str(id_paths[k])))
        depths = np.array([r["joints_cam"]["pelvis"][2] for r in records[k]])
        people = []
        for i, p in enumerate(placed):
            own = silhouette(vertices[k][i], p.body.faces, setup.camera)
            people.append(person_truth(records[k][i], ids, own, i, setup.camera, depths))
        frames.append({"index": k, "image": colour_paths[k].name,
                       "ids": str(id_paths[k].relative_to(folder)), "people": people})

    if not still:
        _write_video(media, colour_paths, setup.fps)

    import bpy

    truth = {
        "scenario": setup.name,
        "generator": {"name": "tests/tools/people_scene.py", "version": VERSION,
                      "base": f"{base.GENERATOR_NAME} {base.GENERATOR_VERSION}",
                      "anny_version": placed[0].body.anny_version,
                      "blender_version": bpy.app.version_string,
                      "render_engine": "CYCLES (CPU)", "samples": samples,
                      "denoiser": scene.denoiser, "seed": seed, "threads": threads,
                      "render_s": round(time.time() - began, 1)},
        "media": media.name,
        "kind": "still" if still else "clip",
        "fps": setup.fps,
        "frame_count": n,
        "image_size": [setup.camera.width, setup.camera.height],
        "camera": setup.camera.to_json(),
        "joint_names": JOINT_NAMES,
        "frames_doc": {
            "joints_2d": "pixels, (0, 0) the image's top-left corner (anny_scene's convention)",
            "joints_cam": "OpenCV camera frame: x right, y down, z forward, metres",
            "box": "u0, v0, u1, v1 in pixels: the whole silhouette clipped to the image",
            "visible_box": "u0, v0, u1, v1 in pixels: the pixels where the person is seen",
            "visible": f"visible_share >= {VISIBLE_SHARE} and pixels >= {MIN_PIXELS}",
        },
        "occlusion_method": (
            "index render: Cycles, 1 sample, no pixel filter, each body a flat emission "
            "colour coding its number (ids/*.png); pixels = the person's pixels there; "
            "pixels_alone = their mesh's triangles filled in the image (OpenCV), others "
            "ignored; occluded point = another person, whose pelvis is nearer than the "
            "point, seen at its pixel"),
        "people": [{"person": i, "look": a.look, "phenotype": LOOKS[a.look]["phenotype"],
                    "colours": {k: list(v) for k, v in LOOKS[a.look]["colours"].items()},
                    "angles_deg_first_frame": {k: round(float(v), 3)
                                               for k, v in a.angles[0].items()}}
                   for i, a in enumerate(setup.actors)],
        "frames": frames,
    }
    base._write_json(truth_path, truth)
    _log(f"{setup.name}: {n} frame(s) in {time.time() - began:.1f} s -> {truth_path}")
    return Rendered(setup.name, media, truth_path, colour_paths)


def _write_video(path: Path, frames: list[Path], fps: float) -> None:
    import cv2

    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{VIDEO_SUFFIX}")
    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps,
                             (first.shape[1], first.shape[0]))
    try:
        for p in frames:
            writer.write(cv2.imread(str(p)))
    finally:
        writer.release()
    capture = cv2.VideoCapture(str(partial))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if count != len(frames):
        raise RuntimeError(f"{partial}: OpenCV reads {count} frames back, not {len(frames)}")
    os.replace(partial, path)


def cached(setup_name: str, cache: Path | None = None) -> Rendered | None:
    """The item if its truth is in the cache (complete), else None; needs no anny or bpy."""
    cache = cache or default_cache()
    for still in (False, True):
        folder, media, truth = item_paths(cache, setup_name, still)
        if truth.exists() and media.exists():
            meta = json.loads(truth.read_text())
            frames = [folder / ("frames" if meta["kind"] == "clip" else "") / f["image"]
                      for f in meta["frames"]]
            if meta["kind"] == "still":
                frames = [media]
            return Rendered(setup_name, media, truth, frames)
    return None


def render_scenario(name: str, cache: Path | None = None, threads: int = 1,
                    solo: bool = False) -> list[Rendered]:
    """The scenario's items from the cache, rendering what is missing (under a lock, so two
    processes never render into one cache at once). `solo`: also each person alone."""
    cache = cache or default_cache()
    wanted = setups_named(name, solo)
    if all(cached(s.name, cache) for s in wanted):
        return [cached(s.name, cache) for s in wanted]
    import fcntl  # POSIX only, and only to render: the truth of a cache reads anywhere

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".render.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"another process is rendering into {cache}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        out = []
        for setup in wanted:
            done = cached(setup.name, cache)
            out.append(done or render_setup(setup, cache, threads=threads))
        return out


def crossing(cache: Path | None = None, threads: int = 1, solo: bool = False) -> list[Rendered]:
    """Two people crossing, one passing behind the other (see crossing_setup)."""
    return render_scenario("crossing", cache, threads, solo)


def behind(cache: Path | None = None, threads: int = 1, solo: bool = False) -> list[Rendered]:
    """One person walking behind another who stands still (see behind_setup)."""
    return render_scenario("behind", cache, threads, solo)


def group(cache: Path | None = None, threads: int = 1, solo: bool = False) -> list[Rendered]:
    """A still of four people at different depths (see group_setup)."""
    return render_scenario("group", cache, threads, solo)


def closeup(cache: Path | None = None, threads: int = 1, solo: bool = False) -> list[Rendered]:
    """Two stills: head and shoulders, and cut at the waist (see closeup_setups)."""
    return render_scenario("closeup", cache, threads, solo)


# --------------------------------------------------------------------------------------
# reading the truth (numpy only)


@dataclasses.dataclass
class Truth:
    """An item's truth as arrays; N frames, P people, J = 29 points (joint_names)."""

    name: str
    kind: str  # "clip" or "still"
    media: Path
    fps: float | None
    width: int
    height: int
    fx: float
    joints_2d: np.ndarray  # (N, P, J, 2) pixels
    joints_cam: np.ndarray  # (N, P, J, 3) metres, camera frame
    in_image: np.ndarray  # (N, P, J) bool
    occluded: np.ndarray  # (N, P, J) bool
    visible: np.ndarray  # (N, P) bool
    visible_share: np.ndarray  # (N, P)
    boxes: np.ndarray  # (N, P, 4) pixels, NaN where the person is not in the image

    @property
    def frames(self) -> int:
        return self.joints_2d.shape[0]

    @property
    def people(self) -> int:
        return self.joints_2d.shape[1]


def load_truth(path: Path) -> Truth:
    """A truth JSON written by render_setup, as arrays."""
    meta = json.loads(Path(path).read_text())
    frames = meta["frames"]

    def stack(key, dtype=float):
        return np.array([[p[key] for p in f["people"]] for f in frames], dtype=dtype)

    boxes = np.array([[p["box"] if p["box"] is not None else [np.nan] * 4
                       for p in f["people"]] for f in frames], float)
    return Truth(meta["scenario"], meta["kind"], Path(path).parent / meta["media"], meta["fps"],
                 meta["image_size"][0], meta["image_size"][1], float(meta["camera"]["fx"]),
                 stack("joints_2d"), stack("joints_cam"), stack("in_image", bool),
                 stack("occluded", bool), stack("visible", bool), stack("visible_share"),
                 boxes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="*", default=list(SCENARIOS),
                   help=f"which (default all): {', '.join(SCENARIOS)}")
    p.add_argument("--cache", type=Path, default=None, help=f"default {default_cache()}")
    p.add_argument("--threads", type=int, default=1, help="Cycles threads (default 1)")
    p.add_argument("--solo", action="store_true", help="also render each person alone")
    args = p.parse_args(argv)
    for name in args.scenarios:
        t0 = time.time()
        for item in render_scenario(name, args.cache, args.threads, args.solo):
            print(f"{item.name}: {item.media} ({item.truth.name})")
        _log(f"{name}: {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
