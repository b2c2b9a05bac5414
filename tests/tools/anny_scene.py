"""Licence-clean test photos of a person with known 3D joints.

Builds an `anny` body (Apache-2.0 code, CC0 MakeHuman assets), poses it, renders it with
Blender as a Python module (`bpy`, Cycles on the CPU) and writes, beside each image, a JSON
file with the camera and the true 3D positions of the anny joints that stand in for the SMPL
joints.

Frames used throughout:
- anny frame = Blender world frame, up to a translation: Z up, X toward the body's left, the
  body facing -Y in its rest pose, metres. `world_offset` (in the JSON) moves the anny output
  into the Blender world so that the lowest vertex of the first pose touches the floor (z = 0).
- camera frame: OpenCV convention: x right, y down, z forward (along the viewing direction),
  metres. X_cam = R_world_to_cam @ X_world + t_world_to_cam.
- pixels: continuous image coordinates, (0, 0) at the top-left corner of the top-left pixel,
  pixel centres at half-integers; u = fx * x / z + cx, v = fy * y / z + cy. This is also what
  mediapipe's normalised landmarks times the image size give.

Command line (from the repository root):
    .venv/bin/python tests/tools/anny_scene.py render --out samples/person.png
    .venv/bin/python tests/tools/anny_scene.py check samples/person.png

As a library: `Body` (the posed anny body and its SMPL-like joints), `natural_pose`,
`CameraSpec`, `render_frames(body, poses, paths, ...)` (a list of poses in, one image and one
record per pose out; the scene is built once) and `render_image`. For bench/accuracy.py:
`pose_from_angles` (a pose from joint angles in degrees, see ANGLE_DOC), `random_still(index)`
(a random adult, plausible pose of one of POSE_KINDS, heading, camera, lens, image size and
off-centre framing, all drawn from (seed, index)), `clip_setup(name)` (the CLIPS: walking,
turning on the spot, moving the arms) and `preview` (a quick dot drawing, no Blender).

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

from ikol_backend.body.anny_joints import POINT_NAMES, POINT_SOURCES, pick_leaf_vertices

GENERATOR_NAME = "tests/tools/anny_scene.py"
GENERATOR_VERSION = "1.0"

# Adult man, about 1.78 m tall (anny phenotypes lie in [0, 1]; age 2/3 is "young adult",
# gender 0 is male, 1 female).
DEFAULT_PHENOTYPE = {
    "gender": 0.15,
    "age": 0.7,
    "muscle": 0.55,
    "weight": 0.5,
    "height": 0.4,
    "proportions": 0.3,
}

# Arguments given to anny.Anny (its defaults, stated so that the JSON records them).
ANNY_MODEL_ARGS = {
    "rig": "anny",
    "topology": "anny",
    "local_changes": "none",
    "pose_parameterization": "local-ref",
}

# The SMPL joints and leaf points on an anny body, and how each is placed: the backend's rules
# (ikol_backend/body/anny_joints.py), shared with the open body so that the true joints of a
# rendered test body and the joints of the body in Blender are defined alike. Renders are
# placed and framed by anny's own root (Body.root_of), which sits between the hip joints.
SMPL_JOINT_NAMES = list(POINT_NAMES)
ANNY_JOINT_SOURCES = POINT_SOURCES

# mediapipe BlazePose landmark index -> SMPL joint name (the person's own left/right).
BLAZEPOSE_TO_SMPL = {
    11: "left_shoulder", 12: "right_shoulder", 13: "left_elbow", 14: "right_elbow",
    15: "left_wrist", 16: "right_wrist", 23: "left_hip", 24: "right_hip",
    25: "left_knee", 26: "right_knee", 27: "left_ankle", 28: "right_ankle",
}

# Material slots and their base colours (sRGB) and roughness.
REGIONS = {
    "skin": ((0.74, 0.53, 0.41), 0.45),
    "shirt": ((0.20, 0.42, 0.55), 0.85),
    "trousers": ((0.16, 0.17, 0.22), 0.80),
    "shoes": ((0.09, 0.085, 0.08), 0.5),
    "hair": ((0.10, 0.07, 0.05), 0.60),
    "eye_white": ((0.85, 0.84, 0.80), 0.15),
    "iris": ((0.18, 0.11, 0.06), 0.15),
    "cavity": ((0.08, 0.03, 0.03), 0.90),
}
REGION_INDEX = {name: i for i, name in enumerate(REGIONS)}

SHIRT_BONES = ("spine", "clavicle", "shoulder01", "upperarm01", "upperarm02")
TROUSER_BONES = ("root", "pelvis", "upperleg", "lowerleg")
SHOE_BONES = ("foot", "toe")


def _log(*args):
    print("[anny_scene]", *args, file=sys.stderr, flush=True)


def _srgb_to_linear(c):
    c = np.asarray(c, dtype=float)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


# --------------------------------------------------------------------------------------
# rotations (numpy, no torch needed)


def rotvec_to_matrix(rotvec) -> np.ndarray:
    r = np.asarray(rotvec, dtype=float)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def matrix_to_rotvec(m) -> np.ndarray:
    m = np.asarray(m, dtype=float)
    cos = np.clip((np.trace(m) - 1) / 2, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-12:
        return np.zeros(3)
    if math.pi - angle < 1e-6:
        # half a turn: the axis is any non-zero column of M + I (the sign does not matter)
        b = m + np.eye(3)
        col = b[:, int(np.argmax(np.linalg.norm(b, axis=0)))]
        return col / np.linalg.norm(col) * angle
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    return axis / (2 * math.sin(angle)) * angle


def swing(direction, target, degrees) -> np.ndarray:
    """Rotation (3x3) turning `direction` toward `target` by `degrees`, about their normal."""
    d = np.asarray(direction, float)
    t = np.asarray(target, float)
    axis = np.cross(d, t)
    n = np.linalg.norm(axis)
    if n < 1e-9:
        return np.eye(3)
    return rotvec_to_matrix(axis / n * math.radians(degrees))


def about(axis, degrees) -> np.ndarray:
    a = np.asarray(axis, float)
    return rotvec_to_matrix(a / np.linalg.norm(a) * math.radians(degrees))


# --------------------------------------------------------------------------------------
# the body


@dataclasses.dataclass
class Pose:
    """An anny pose in its 'local-ref' parameterisation.

    bones: bone label -> rotation vector (radians). Each rotation turns the bone (and what
      hangs from it) about its head, in axes that equal the anny/world axes in the rest pose
      and are carried along by the parent bones (like SMPL's pose vectors). Missing bones keep
      their rest orientation. 'root' turns the whole body about the root (pelvis).
    root_translation: where the root lands, in the anny frame (metres).
    """

    bones: dict
    root_translation: tuple = (0.0, 0.0, 0.0)

    def to_json(self) -> dict:
        return {
            "parameterization": "local-ref",
            "root_translation": [float(x) for x in self.root_translation],
            "bone_rotvecs": {k: [float(x) for x in v] for k, v in self.bones.items()},
        }

    @staticmethod
    def from_json(d: dict) -> "Pose":
        return Pose(
            bones={k: np.asarray(v, float) for k, v in d["bone_rotvecs"].items()},
            root_translation=tuple(d.get("root_translation", (0.0, 0.0, 0.0))),
        )


class Body:
    """An anny body of a given phenotype: posing, mesh, regions and SMPL-like joints."""

    def __init__(self, phenotype: dict | None = None):
        import torch
        import anny

        torch.set_num_threads(min(2, os.cpu_count() or 1))
        self.phenotype = dict(DEFAULT_PHENOTYPE if phenotype is None else phenotype)
        self.anny_version = anny.__version__
        self.model = anny.Anny(**ANNY_MODEL_ARGS)
        self.labels = list(self.model.bone_labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.faces = self.model.faces.cpu().numpy().astype(np.int64)

        rest_vertices, rest_poses = self._forward(None)
        self.rest_vertices = rest_vertices
        self.rest_heads = {label: rest_poses[i, :3, 3] for i, label in enumerate(self.labels)}

        weights = self.model.vertex_bone_weights.cpu().numpy()
        indices = self.model.vertex_bone_indices.cpu().numpy()
        self.dominant_bone = indices[np.arange(len(indices)), np.argmax(weights, axis=1)]
        self.leaf_vertices = self._pick_leaf_vertices()
        self.face_regions = self._face_regions()

    # -- anny calls

    def _forward(self, pose: Pose | None):
        import torch

        dtype = self.model.template_vertices.dtype
        if pose is None:
            params = None
        else:
            params = torch.eye(4, dtype=dtype)[None, None].repeat(1, len(self.labels), 1, 1)
            for label, rotvec in pose.bones.items():
                if label not in self.index:
                    raise KeyError(f"unknown anny bone {label!r}")
                params[0, self.index[label], :3, :3] = torch.as_tensor(
                    rotvec_to_matrix(rotvec), dtype=dtype
                )
            params[0, 0, :3, 3] = torch.as_tensor(pose.root_translation, dtype=dtype)
        with torch.no_grad():
            out = self.model(
                pose_parameters=params,
                phenotype_kwargs={k: float(v) for k, v in self.phenotype.items()},
            )
        return out["vertices"][0].cpu().numpy(), out["bone_poses"][0].cpu().numpy()

    def evaluate(self, pose: Pose):
        """Posed vertices (V, 3) and SMPL-like joints {name: (3,)}, both in the anny frame."""
        vertices, poses = self._forward(pose)
        joints = {}
        for name in SMPL_JOINT_NAMES:
            kind, _ = ANNY_JOINT_SOURCES[name]
            if kind == "head":
                joints[name] = poses[self.index[ANNY_JOINT_SOURCES[name][1]], :3, 3].copy()
            else:
                joints[name] = vertices[self.leaf_vertices[name]].copy()
        return vertices, joints

    def root_of(self, pose: Pose) -> np.ndarray:
        """(3,) where anny's root bone (between the hip joints) turns, posed, anny frame."""
        return self._forward(pose)[1][self.index["root"], :3, 3].copy()

    # -- set-up helpers

    def _pick_leaf_vertices(self) -> dict:
        heads = np.array([self.rest_heads[label] for label in self.labels])
        return pick_leaf_vertices(self.rest_vertices, heads, self.labels, self.dominant_bone, up_axis=2)

    def _face_regions(self) -> np.ndarray:
        """Material slot of every face: clothes by the bone that moves it, plus hair and eyes."""
        from anny.face_segmentation import get_face_segmentation_mask

        vertex_region = np.full(len(self.rest_vertices), REGION_INDEX["skin"])
        for i, label in enumerate(self.labels):
            base = label.split(".")[0]
            sel = self.dominant_bone == i
            if base.startswith(SHIRT_BONES):
                vertex_region[sel] = REGION_INDEX["shirt"]
            elif base.startswith(TROUSER_BONES):
                vertex_region[sel] = REGION_INDEX["trousers"]
            elif base.startswith(SHOE_BONES):
                vertex_region[sel] = REGION_INDEX["shoes"]

        # Short hair: the skull above the brow and behind the ears.
        v = self.rest_vertices
        eye = 0.5 * (self.rest_heads["eye.L"] + self.rest_heads["eye.R"])
        head_like = np.isin(
            self.dominant_bone, [self.index[b] for b in ("head", "neck03", "eye.L", "eye.R")]
        )
        rel = v - eye
        hair = head_like & (
            (rel[:, 2] > 0.06)
            | ((rel[:, 1] > 0.05) & (rel[:, 2] > -0.04))
            | ((rel[:, 1] > 0.01) & (rel[:, 2] > 0.025))
        ) & ~((np.abs(rel[:, 0]) > 0.068) & (rel[:, 2] < 0.035))  # not the ears

        vertex_region[hair] = REGION_INDEX["hair"]

        # majority vote of a face's three vertices (first vertex on a three-way tie)
        fr = vertex_region[self.faces]
        region = fr[:, 0].copy()
        region[fr[:, 1] == fr[:, 2]] = fr[fr[:, 1] == fr[:, 2], 1]

        # Trousers up to the waist, shirt above, whatever bone moves the torso's skin
        # (a straight cut, by face centre height on the rest mesh).
        v_arm = np.isin(self.dominant_bone, [i for i, b in enumerate(self.labels)
                                             if b.startswith(("upperarm", "shoulder01"))])
        clothed = np.isin(region, [REGION_INDEX["shirt"], REGION_INDEX["trousers"]])
        torso = clothed & ~v_arm[self.faces].any(axis=1)
        centre_z = v[self.faces][:, :, 2].mean(axis=1)
        waist = self.rest_heads["spine03"][2] - 0.01
        region[torso & (centre_z < waist)] = REGION_INDEX["trousers"]
        region[torso & (centre_z >= waist)] = REGION_INDEX["shirt"]

        # eyes and inner cavities from anny's UV segmentation
        def mask(labels):
            return get_face_segmentation_mask(self.model, labels).cpu().numpy()

        region[mask(["eye_back.L", "eye_back.R"])] = REGION_INDEX["eye_white"]
        front = mask(["eye_front.L", "eye_front.R"])
        region[front] = REGION_INDEX["eye_white"]
        centres = v[self.faces].mean(axis=1)
        for side in ("L", "R"):
            c = self.rest_heads[f"eye.{side}"]
            near = front & (np.abs(centres[:, 0] - c[0]) < 0.03)
            pts = centres[near]
            # eyeball centre: mean of its front and back faces; iris: within 8 mm of its axis
            ball = v[self.faces[mask([f"eye_back.{side}", f"eye_front.{side}"])]].reshape(-1, 3)
            centre = ball.mean(axis=0)
            radial = np.hypot(pts[:, 0] - centre[0], pts[:, 2] - centre[2])
            idx = np.nonzero(near)[0]
            region[idx[radial < 0.0078]] = REGION_INDEX["iris"]
        region[mask(["eye_cavity.L", "eye_cavity.R", "mouth_cavity", "tongue"])] = (
            REGION_INDEX["cavity"]
        )
        return region


def natural_pose(body: Body, seed: int = 0, jitter_deg: float = 0.0) -> Pose:
    """Standing, turned a little to the camera's right, arms slightly raised and bent, right
    knee slightly bent, head turned back toward the camera. With jitter_deg > 0 each posed
    bone but the fingers and toes gets an extra random turn of up to that many degrees about
    a random axis (numpy generator seeded with `seed`)."""
    h = body.rest_heads
    up = np.array([0.0, 0, 1])
    fwd, back = np.array([0.0, -1, 0]), np.array([0.0, 1, 0])

    def dir_(a, b):
        d = h[b] - h[a]
        return d / np.linalg.norm(d)

    R = {}
    R["root"] = about(up, 22)  # turn toward the body's left (the image's right)
    R["spine04"] = about([0, 1, 0], 2.0)
    R["spine02"] = about([1, 0, 0], -3.0) @ about([0, 1, 0], 2.0)
    R["neck02"] = about(up, -10.0)
    R["head"] = about(up, -8.0) @ about([1, 0, 0], -4.0) @ about([0, 1, 0], -4.0)

    for side, s in (("L", 1.0), ("R", -1.0)):
        upper = dir_(f"upperarm01.{side}", f"lowerarm01.{side}")
        fore = dir_(f"lowerarm01.{side}", f"wrist.{side}")
        raise_deg = 2.0 if side == "L" else -6.0
        flex_deg = 10.0 if side == "L" else 6.0
        elbow_deg = 30.0 if side == "L" else 42.0
        R[f"upperarm01.{side}"] = swing(upper, fwd, flex_deg) @ swing(upper, up, raise_deg)
        R[f"lowerarm01.{side}"] = swing(fore, fwd + 0.3 * up, elbow_deg)
        R[f"wrist.{side}"] = swing(dir_(f"wrist.{side}", f"finger3-1.{side}"), up, 10.0)
        # relaxed fingers: curl toward the palm (roughly -z of the rest hand, turned inward)
        for f in (2, 3, 4, 5):
            for j in (1, 2, 3):
                a = f"finger{f}-{j}.{side}"
                nxt = f"finger{f}-{j + 1}.{side}" if j < 3 else None
                d = dir_(a, nxt) if nxt else dir_(f"finger{f}-{j - 1}.{side}", a)
                R[a] = swing(d, np.array([-s * 0.6, 0.2, -1.0]), 12.0 + 6.0 * j)
        R[f"finger1-2.{side}"] = swing(dir_(f"finger1-2.{side}", f"finger1-3.{side}"),
                                       np.array([-s, 0, 0]), 15.0)

    # weight on the left leg; right knee bent, right heel lifted
    thigh_r = dir_("upperleg01.R", "lowerleg01.R")
    shin_r = dir_("lowerleg01.R", "foot.R")
    R["upperleg01.R"] = swing(thigh_r, fwd, 16.0) @ swing(thigh_r, np.array([-1.0, 0, 0]), 3.0)
    R["lowerleg01.R"] = swing(shin_r, back, 30.0)
    R["foot.R"] = swing(dir_("foot.R", "toe3-1.R"), up, 6.0)
    thigh_l = dir_("upperleg01.L", "lowerleg01.L")
    R["upperleg01.L"] = swing(thigh_l, np.array([1.0, 0, 0]), 2.0)
    R["foot.L"] = swing(dir_("foot.L", "toe3-1.L"), np.array([-1.0, 0, 0]), 2.0)

    rng = np.random.default_rng(seed)
    bones = {}
    for label in body.labels:  # fixed order: deterministic draws
        if label not in R:
            continue
        m = R[label]
        if jitter_deg > 0 and not label.startswith(("finger", "metacarpal", "toe")):
            axis = rng.normal(size=3)
            m = about(axis, rng.uniform(-jitter_deg, jitter_deg)) @ m
        bones[label] = matrix_to_rotvec(m)
    return Pose(bones=bones, root_translation=(0.0, 0.0, 0.0))


# --------------------------------------------------------------------------------------
# camera


@dataclasses.dataclass
class CameraSpec:
    """A pinhole camera: Blender's camera with sensor fit 'HORIZONTAL', no shift."""

    width: int = 384
    height: int = 512
    lens_mm: float = 55.0
    sensor_width_mm: float = 36.0
    location: tuple = (0.3, -3.0, 1.1)  # Blender world, metres
    target: tuple = (0.0, 0.0, 0.88)  # the point the optical axis goes through

    def intrinsics(self) -> dict:
        f = self.lens_mm / self.sensor_width_mm * self.width
        return {
            "fx": f, "fy": f, "cx": self.width / 2.0, "cy": self.height / 2.0,
            "width": self.width, "height": self.height,
        }

    def K(self) -> np.ndarray:
        i = self.intrinsics()
        return np.array([[i["fx"], 0, i["cx"]], [0, i["fy"], i["cy"]], [0, 0, 1.0]])

    def blender_matrix_world(self) -> np.ndarray:
        """Camera-to-world 4x4 of the Blender camera (it looks down its local -Z, +Y up)."""
        loc = np.asarray(self.location, float)
        back = loc - np.asarray(self.target, float)
        z = back / np.linalg.norm(back)
        x = np.cross([0.0, 0.0, 1.0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, loc
        return m

    def world_to_cam(self):
        """(R, t) of the OpenCV camera: X_cam = R @ X_world + t."""
        m = self.blender_matrix_world()
        r = np.diag([1.0, -1.0, -1.0]) @ m[:3, :3].T
        return r, -r @ m[:3, 3]

    def project(self, points_world: np.ndarray) -> np.ndarray:
        r, t = self.world_to_cam()
        pc = np.asarray(points_world, float) @ r.T + t
        uv = pc @ self.K().T
        return uv[..., :2] / uv[..., 2:3]

    def to_json(self) -> dict:
        r, t = self.world_to_cam()
        d = self.intrinsics()
        d.update(
            {
                "lens_mm": self.lens_mm,
                "sensor_width_mm": self.sensor_width_mm,
                "sensor_fit": "HORIZONTAL",
                "pixel_convention": "continuous; (0,0) = top-left corner of the image, "
                "pixel centres at half-integers",
                "R_world_to_cam": r.tolist(),
                "t_world_to_cam": t.tolist(),
                "location_world": [float(x) for x in self.location],
                "target_world": [float(x) for x in self.target],
                "blender_matrix_world": self.blender_matrix_world().tolist(),
            }
        )
        return d


# --------------------------------------------------------------------------------------
# Blender scene


def _principled(name, colour_srgb, roughness, subsurface=0.0):
    import bpy

    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:  # Blender < 5.0; 5.0 gives new materials their nodes
        mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    rgb = _srgb_to_linear(colour_srgb)
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    if subsurface > 0:
        bsdf.inputs["Subsurface Weight"].default_value = subsurface
        bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
        bsdf.inputs["Subsurface Scale"].default_value = 0.01
    if name in ("shirt", "trousers") and "Sheen Weight" in bsdf.inputs:
        bsdf.inputs["Sheen Weight"].default_value = 0.3
    return mat


def _look_at(obj, location, target):
    from mathutils import Vector

    obj.location = location
    direction = Vector(target) - Vector(location)
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


class Scene:
    """The Blender scene: body mesh, floor, lights, camera, Cycles settings."""

    def __init__(self, body: Body, camera: CameraSpec, samples: int = 32, seed: int = 0,
                 threads: int = 2, colours: dict | None = None):
        """`colours`: region name -> sRGB base colour replacing REGIONS' (e.g. the shirt)."""
        import bpy

        self.body, self.camera = body, camera
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        self.scene = scene

        # render settings
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.seed = seed
        scene.cycles.max_bounces = 4
        scene.cycles.diffuse_bounces = 2
        scene.cycles.glossy_bounces = 2
        scene.cycles.transmission_bounces = 2
        scene.cycles.transparent_max_bounces = 2
        self.denoiser = None
        try:
            scene.cycles.use_denoising = True
            scene.cycles.denoiser = "OPENIMAGEDENOISE"
            self.denoiser = "OPENIMAGEDENOISE"
        except (TypeError, AttributeError):
            scene.cycles.use_denoising = False
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads
        scene.render.resolution_x = camera.width
        scene.render.resolution_y = camera.height
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = False
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGB"
        scene.render.image_settings.color_depth = "8"
        scene.render.image_settings.compression = 100
        scene.view_settings.view_transform = "AgX"
        scene.view_settings.look = "None"

        # world: neutral, slightly warm grey studio
        world = bpy.data.worlds.new("world")
        scene.world = world
        if world.node_tree is None:  # Blender < 5.0
            world.use_nodes = True
        bg = world.node_tree.nodes.get("Background")
        bg.inputs["Color"].default_value = (*_srgb_to_linear((0.62, 0.62, 0.60)), 1.0)
        bg.inputs["Strength"].default_value = 0.55

        # materials
        self.materials = []
        for name, (colour, rough) in REGIONS.items():
            colour = (colours or {}).get(name, colour)
            self.materials.append(
                _principled(name, colour, rough, subsurface=0.15 if name == "skin" else 0.0)
            )

        # body mesh (vertices are set per frame)
        faces = body.faces
        mesh = bpy.data.meshes.new("anny_body")
        mesh.vertices.add(len(body.rest_vertices))
        mesh.loops.add(faces.size)
        mesh.polygons.add(len(faces))
        mesh.vertices.foreach_set("co", body.rest_vertices.astype(np.float32).ravel())
        mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
        for m in self.materials:
            mesh.materials.append(m)
        mesh.polygons.foreach_set("material_index", body.face_regions.astype(np.int32))
        mesh.update()
        mesh.validate()
        mesh.shade_smooth()
        self.mesh = mesh
        self.body_obj = bpy.data.objects.new("anny_body", mesh)
        scene.collection.objects.link(self.body_obj)

        # floor
        fmesh = bpy.data.meshes.new("floor")
        s = 30.0
        fmesh.from_pydata([(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0)], [], [(0, 1, 2, 3)])
        fmesh.materials.append(_principled("floor", (0.55, 0.52, 0.48), 0.7))
        floor = bpy.data.objects.new("floor", fmesh)
        scene.collection.objects.link(floor)

        # lights: a warm sun from the front left, a soft area fill from the camera's right
        sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
        sun.data.energy = 3.0
        sun.data.angle = math.radians(8)
        sun.data.color = (1.0, 0.96, 0.9)
        sun.rotation_euler = (math.radians(50), 0, math.radians(-35))
        scene.collection.objects.link(sun)
        area = bpy.data.objects.new("fill", bpy.data.lights.new("fill", "AREA"))
        area.data.energy = 250.0
        area.data.size = 2.0
        area.data.color = (0.92, 0.95, 1.0)
        _look_at(area, (2.2, -2.5, 2.2), (0.0, 0.0, 1.0))
        scene.collection.objects.link(area)

        # camera
        cam_data = bpy.data.cameras.new("camera")
        cam_data.type = "PERSP"
        cam_data.lens = camera.lens_mm
        cam_data.sensor_width = camera.sensor_width_mm
        cam_data.sensor_fit = "HORIZONTAL"
        cam_data.shift_x = cam_data.shift_y = 0.0
        cam_data.clip_start, cam_data.clip_end = 0.1, 100.0
        cam = bpy.data.objects.new("camera", cam_data)
        from mathutils import Matrix

        cam.matrix_world = Matrix(camera.blender_matrix_world().tolist())
        scene.collection.objects.link(cam)
        scene.camera = cam
        self.camera_obj = cam

    def set_vertices(self, vertices_world: np.ndarray):
        self.mesh.vertices.foreach_set("co", vertices_world.astype(np.float32).ravel())
        self.mesh.update()

    def render(self, path: Path):
        import bpy

        settings = self.scene.render.image_settings
        jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
        settings.file_format = "JPEG" if jpeg else "PNG"
        if jpeg:
            settings.quality = 92
        self.scene.render.filepath = str(Path(path).resolve())
        bpy.ops.render.render(write_still=True)
        _strip_metadata(path)


def _strip_metadata(path):
    """Re-save without Blender's metadata (render date and time), so that the same inputs
    give the same bytes."""
    from PIL import Image

    with Image.open(path) as im:
        pixels = im.convert("RGB")
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        pixels.save(path, format="JPEG", quality=92)
    else:
        pixels.save(path, format="PNG", optimize=True)


# --------------------------------------------------------------------------------------
# frames


def ground_offset(body: Body, pose: Pose) -> np.ndarray:
    """Translation from the anny frame to the Blender world putting the lowest vertex of
    `pose` on the floor (z = 0) and the root above the world origin."""
    vertices, _ = body.evaluate(pose)
    root = body.root_of(pose)
    return np.array([-root[0], -root[1], -vertices[:, 2].min()])


def frame_record(body: Body, pose: Pose, camera: CameraSpec, offset: np.ndarray):
    """Vertices in the world and the JSON-ready record of one frame."""
    vertices, joints = body.evaluate(pose)
    vertices = vertices + offset
    names = list(joints)
    world = np.stack([joints[n] for n in names]) + offset
    r, t = camera.world_to_cam()
    cam = world @ r.T + t
    uv = camera.project(world)
    record = {
        "joints_world": {n: world[i].round(6).tolist() for i, n in enumerate(names)},
        "joints_cam": {n: cam[i].round(6).tolist() for i, n in enumerate(names)},
        "joints_2d": {n: uv[i].round(3).tolist() for i, n in enumerate(names)},
        "pose": pose.to_json(),
    }
    return vertices, record


def render_frames(body: Body, poses: list, paths: list, camera: CameraSpec | None = None,
                  samples: int = 32, seed: int = 0, offset=None, threads: int = 2,
                  colours: dict | None = None, skip=None) -> dict:
    """Render one image per pose (same scene, camera and world offset for all) and return
    the metadata: shared fields plus a list of per-frame records. `offset` (anny -> world
    translation) defaults to grounding the first pose. `colours`: see Scene. `skip(index)`:
    true for frames whose image is already there (their record is still made)."""
    camera = camera or CameraSpec()
    if len(poses) != len(paths):
        raise ValueError("one output path per pose")
    offset = ground_offset(body, poses[0]) if offset is None else np.asarray(offset, float)
    scene = Scene(body, camera, samples=samples, seed=seed, threads=threads, colours=colours)
    frames = []
    for index, (pose, path) in enumerate(zip(poses, paths)):
        t0 = time.time()
        vertices, record = frame_record(body, pose, camera, offset)
        if skip is None or not skip(index):
            scene.set_vertices(vertices)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            scene.render(path)
            _log(f"rendered {path} in {time.time() - t0:.1f} s")
        record = {"index": index, "image": Path(path).name, **record}
        frames.append(record)
    import bpy

    return {
        "generator": {
            "name": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "seed": seed,
            "anny_version": body.anny_version,
            "blender_version": bpy.app.version_string,
            "render_engine": "CYCLES (CPU)",
            "samples": samples,
            "denoiser": scene.denoiser,
            "view_transform": "AgX",
        },
        "frames_doc": {
            "world": "Blender world: Z up, metres; the floor is z = 0; equals the anny frame "
            "(X = body's left, body faces -Y at rest) moved by anny.world_offset",
            "cam": "OpenCV camera frame: x right, y down, z forward, metres; "
            "X_cam = R_world_to_cam @ X_world + t_world_to_cam",
            "2d": "pixels, u = fx*x/z + cx, v = fy*y/z + cy (see camera.pixel_convention)",
            "joints": "anny points standing in for the SMPL joints, see joint_sources",
        },
        "camera": camera.to_json(),
        "joint_names": SMPL_JOINT_NAMES,
        "joint_sources": {
            n: {"kind": k, "anny": s} for n, (k, s) in ANNY_JOINT_SOURCES.items()
        },
        "anny": {
            "model_args": ANNY_MODEL_ARGS,
            "phenotype": body.phenotype,
            "world_offset": (offset.round(6) + 0.0).tolist(),
            "leaf_vertex_indices": body.leaf_vertices,
        },
        "frames": frames,
    }


def render_image(body: Body, pose: Pose, out: Path, camera: CameraSpec | None = None,
                 samples: int = 32, seed: int = 0, threads: int = 2) -> dict:
    """One image plus the single-frame metadata, flattened (frame fields at the top)."""
    meta = render_frames(body, [pose], [out], camera=camera, samples=samples, seed=seed,
                         threads=threads)
    frame = meta.pop("frames")[0]
    meta.update(frame)
    return meta


def _write_json(path: Path, data: dict):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# poses from joint angles; random stills and short clips (bench/accuracy.py)
#
# A pose is given as a flat dict of joint angles in degrees (so that clips can interpolate
# them), turned into anny's local-ref rotations by `pose_from_angles`. Directions below are
# the anny rest frame's: up = +Z, the body's front = -Y, its left = +X.

SIDES = (("L", 1.0), ("R", -1.0))  # s: +1 for the body's left, -1 for its right
UP, FRONT, BACK = np.array([0.0, 0, 1]), np.array([0.0, -1, 0]), np.array([0.0, 1, 0])
X_AXIS, Y_AXIS = np.array([1.0, 0, 0]), np.array([0.0, 1, 0])

ANGLE_DOC = {
    "heading": "turn of the whole body about the vertical; + = toward the body's left",
    "pitch": "whole body leaning forward about the root (legs compensated by hip_flex)",
    "roll": "whole body leaning to its left about the root",
    "spine_flex": "torso bent forward (spread over spine04..spine01)",
    "spine_side": "torso bent to the body's left",
    "spine_twist": "torso twisted toward the body's left",
    "head_yaw": "head turned to the body's left (neck01 half, head half)",
    "head_pitch": "head bent forward", "head_roll": "head tilted to the body's left",
    "S.arm_az": "upper arm's azimuth: 0 = straight out sideways, 90 = forward, >90 across "
                "the body, <0 behind",
    "S.arm_el": "upper arm's elevation: -90 = down, 0 = horizontal, 90 = up (may pass -90 "
                "to swing behind within the azimuth's plane)",
    "S.arm_spread": "extra outward lean of the upper arm (unit vector sideways added)",
    "S.arm_twist": "internal (+) rotation of the upper arm about itself",
    "S.shrug": "shoulder girdle raised",
    "S.elbow": "elbow flexion (0 = straight)", "S.wrist": "wrist flexion",
    "S.hip_flex": "thigh forward, relative to the pelvis", "S.hip_abd": "thigh outward",
    "S.hip_rot": "internal (+) rotation of the thigh", "S.knee": "knee flexion",
    "S.ankle": "plantar flexion (+) on top of foot_flat's share",
    "S.foot_flat": "0..1: share of the turn that keeps the sole level with the floor",
    "x": "root translation, world metres", "y": "root translation, world metres",
}

RELAXED = {
    "heading": 0.0, "pitch": 0.0, "roll": 0.0,
    "spine_flex": 0.0, "spine_side": 0.0, "spine_twist": 0.0,
    "head_yaw": 0.0, "head_pitch": 0.0, "head_roll": 0.0, "x": 0.0, "y": 0.0,
}
for _side, _ in SIDES:
    RELAXED.update({
        f"{_side}.arm_az": 15.0, f"{_side}.arm_el": -72.0, f"{_side}.arm_spread": 0.0,
        f"{_side}.arm_twist": 0.0, f"{_side}.shrug": 0.0, f"{_side}.elbow": 15.0,
        f"{_side}.wrist": 5.0, f"{_side}.hip_flex": 0.0, f"{_side}.hip_abd": 0.0,
        f"{_side}.hip_rot": 0.0, f"{_side}.knee": 3.0, f"{_side}.ankle": 0.0,
        f"{_side}.foot_flat": 1.0,
    })


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def turn_onto(direction, target) -> np.ndarray:
    """The shortest rotation (3x3) taking `direction` onto `target`."""
    d, t = _unit(direction), _unit(target)
    angle = math.degrees(math.acos(float(np.clip(d @ t, -1.0, 1.0))))
    return swing(d, t, angle)


def arm_direction(side_sign: float, az: float, el: float, spread: float = 0.0) -> np.ndarray:
    """Upper arm direction (rest frame) for an azimuth/elevation in degrees, see ANGLE_DOC."""
    out = np.array([side_sign, 0.0, 0.0])
    a, e = math.radians(az), math.radians(el)
    d = math.cos(e) * (math.cos(a) * out + math.sin(a) * FRONT) + math.sin(e) * UP
    return _unit(d + spread * out)


def pose_from_angles(body: Body, angles: dict) -> Pose:
    """An anny Pose from joint angles in degrees (see ANGLE_DOC; missing keys: RELAXED)."""
    a = {**RELAXED, **angles}
    h = body.rest_heads

    def rest_dir(start, end):
        return _unit(h[end] - h[start])

    R = {}
    R["root"] = about(UP, a["heading"]) @ about(X_AXIS, a["pitch"]) @ about(Y_AXIS, a["roll"])
    spine = (about(UP, a["spine_twist"] / 4) @ about(Y_AXIS, a["spine_side"] / 4)
             @ about(X_AXIS, a["spine_flex"] / 4))
    for bone in ("spine04", "spine03", "spine02", "spine01"):
        R[bone] = spine
    head = (about(UP, a["head_yaw"] / 2) @ about(Y_AXIS, a["head_roll"] / 2)
            @ about(X_AXIS, a["head_pitch"] / 2))
    R["neck01"] = head
    R["head"] = head

    for side, s in SIDES:
        g = lambda key: a[f"{side}.{key}"]  # noqa: E731
        # shoulder girdle, then the upper arm aimed in the girdle's frame
        girdle = about(Y_AXIS, -s * g("shrug"))
        R[f"shoulder01.{side}"] = girdle
        upper = rest_dir(f"upperarm01.{side}", f"lowerarm01.{side}")
        target = girdle.T @ arm_direction(s, g("arm_az"), g("arm_el"), g("arm_spread"))
        R[f"upperarm01.{side}"] = about(target, s * g("arm_twist")) @ turn_onto(upper, target)
        fore = rest_dir(f"lowerarm01.{side}", f"wrist.{side}")
        hinge = _unit(np.cross(upper, fore))  # the rest forearm is already a little bent
        rest_bend = math.degrees(math.acos(float(np.clip(upper @ fore, -1, 1))))
        R[f"lowerarm01.{side}"] = about(hinge, g("elbow") - rest_bend)
        R[f"wrist.{side}"] = about(hinge, g("wrist"))
        # relaxed fingers, as in natural_pose
        for f in (2, 3, 4, 5):
            for j in (1, 2, 3):
                bone = f"finger{f}-{j}.{side}"
                d = (rest_dir(bone, f"finger{f}-{j + 1}.{side}") if j < 3
                     else rest_dir(f"finger{f}-{j - 1}.{side}", bone))
                R[bone] = swing(d, np.array([-s * 0.6, 0.2, -1.0]), 12.0 + 6.0 * j)
        R[f"finger1-2.{side}"] = swing(rest_dir(f"finger1-2.{side}", f"finger1-3.{side}"),
                                       np.array([-s, 0, 0]), 15.0)
        # leg: thigh (rotation, abduction, flexion), knee hinge, foot
        R[f"upperleg01.{side}"] = (about(X_AXIS, -g("hip_flex")) @ about(Y_AXIS, -s * g("hip_abd"))
                                   @ about(UP, -s * g("hip_rot")))
        R[f"lowerleg01.{side}"] = about(X_AXIS, g("knee"))
        shin_pitch = a["pitch"] - g("hip_flex") + g("knee")  # the shin's forward lean
        ankle = float(np.clip(g("ankle") - g("foot_flat") * shin_pitch, -35.0, 45.0))
        R[f"foot.{side}"] = about(X_AXIS, ankle)

    bones = {label: matrix_to_rotvec(R[label]) for label in body.labels if label in R}
    return Pose(bones=bones, root_translation=(a["x"], a["y"], 0.0))


# Adult phenotypes (anny: age 2/3 = young adult, 1 = old; gender 0 = male, 1 = female).
ADULT_PHENOTYPE_RANGES = {
    "gender": (0.0, 1.0), "age": (0.56, 0.95), "muscle": (0.2, 0.8),
    "weight": (0.15, 0.85), "height": (0.1, 0.9), "proportions": (0.1, 0.7),
}
STILL_SIZES = ((384, 512), (512, 384), (480, 640), (640, 480))
SHIRTS = ((0.20, 0.42, 0.55), (0.62, 0.18, 0.16), (0.85, 0.83, 0.78), (0.25, 0.45, 0.22),
          (0.80, 0.62, 0.20), (0.35, 0.30, 0.50), (0.12, 0.12, 0.13))
TROUSERS = ((0.16, 0.17, 0.22), (0.30, 0.38, 0.55), (0.45, 0.40, 0.32), (0.10, 0.10, 0.10),
            (0.55, 0.55, 0.52))
SKINS = ((0.74, 0.53, 0.41), (0.87, 0.69, 0.58), (0.55, 0.37, 0.26), (0.36, 0.23, 0.16))
POSE_KINDS = ("stand", "arms_up", "arms_forward", "arms_crossed", "point", "squat", "lunge",
              "leg_lift", "bend", "twist", "kick", "wide")


def random_phenotype(rng) -> dict:
    return {k: round(float(rng.uniform(lo, hi)), 3)
            for k, (lo, hi) in ADULT_PHENOTYPE_RANGES.items()}


def random_colours(rng) -> dict:
    return {"shirt": SHIRTS[rng.integers(len(SHIRTS))],
            "trousers": TROUSERS[rng.integers(len(TROUSERS))],
            "skin": SKINS[rng.integers(len(SKINS))]}


def random_angles(rng, kind: str) -> dict:
    """Joint angles (degrees) of a random but anatomically plausible pose of one kind
    (POSE_KINDS); the heading is left at 0 (the caller turns the body)."""
    u = rng.uniform
    a = dict(RELAXED)
    a.update(spine_flex=u(-5, 10), spine_side=u(-6, 6), spine_twist=u(-10, 10),
             head_yaw=u(-30, 30), head_pitch=u(-15, 20), head_roll=u(-8, 8))
    for side, _ in SIDES:
        a.update({f"{side}.arm_az": u(-20, 60), f"{side}.arm_el": u(-80, -40),
                  f"{side}.arm_twist": u(-30, 40), f"{side}.elbow": u(5, 70),
                  f"{side}.wrist": u(-20, 30), f"{side}.hip_flex": u(-8, 15),
                  f"{side}.hip_abd": u(-3, 10), f"{side}.hip_rot": u(-15, 15),
                  f"{side}.knee": u(0, 20), f"{side}.ankle": u(-5, 10)})
    one, other = ("L", "R") if rng.uniform() < 0.5 else ("R", "L")
    if kind == "arms_up":
        for side in ((one,) if rng.uniform() < 0.4 else (one, other)):
            a.update({f"{side}.arm_az": u(-10, 80), f"{side}.arm_el": u(30, 85),
                      f"{side}.elbow": u(0, 90), f"{side}.shrug": u(5, 20)})
    elif kind == "arms_forward":
        for side in (one, other):
            a.update({f"{side}.arm_az": u(60, 110), f"{side}.arm_el": u(-25, 35),
                      f"{side}.elbow": u(0, 60)})
    elif kind == "arms_crossed":
        for side in (one, other):
            a.update({f"{side}.arm_az": u(95, 125), f"{side}.arm_el": u(-60, -35),
                      f"{side}.arm_twist": u(10, 35), f"{side}.elbow": u(100, 125),
                      f"{side}.wrist": u(-10, 10), f"{side}.arm_spread": 0.25})
    elif kind == "point":  # an arm straight at the camera: foreshortened
        a.update({f"{one}.arm_az": u(75, 100), f"{one}.arm_el": u(-10, 20),
                  f"{one}.elbow": u(0, 15), f"{one}.arm_twist": u(-10, 10)})
    elif kind == "squat":
        p, flex = u(15, 40), u(75, 110)
        a.update(pitch=p, spine_flex=u(0, 20))
        for side in (one, other):
            a.update({f"{side}.hip_flex": flex + p + u(-5, 5), f"{side}.hip_abd": u(5, 20),
                      f"{side}.hip_rot": u(-15, 0), f"{side}.knee": flex + u(0, 25),
                      f"{side}.ankle": 0.0, f"{side}.foot_flat": 1.0})
        if rng.uniform() < 0.6:
            for side in (one, other):
                a.update({f"{side}.arm_az": u(60, 100), f"{side}.arm_el": u(-30, 10)})
    elif kind == "lunge":
        a.update(pitch=u(-5, 15))
        a.update({f"{one}.hip_flex": u(50, 85), f"{one}.knee": u(60, 100),
                  f"{other}.hip_flex": u(-30, -10), f"{other}.knee": u(10, 50),
                  f"{other}.foot_flat": 0.3, f"{other}.ankle": u(0, 20)})
    elif kind == "leg_lift":
        a.update({f"{one}.hip_flex": u(35, 100), f"{one}.knee": u(20, 110),
                  f"{one}.hip_abd": u(-5, 25), f"{one}.foot_flat": 0.0,
                  f"{one}.ankle": u(0, 30), f"{other}.knee": u(0, 10)})
        for side in (one, other):
            a[f"{side}.arm_el"] = u(-60, 0)
            a[f"{side}.arm_az"] = u(-10, 60)
    elif kind == "bend":
        p = u(20, 55)
        a.update(pitch=p, spine_flex=u(10, 35), head_pitch=u(-25, 10))
        for side in (one, other):
            a.update({f"{side}.hip_flex": p + u(-5, 10), f"{side}.knee": u(0, 25)})
            a[f"{side}.arm_az"] = u(40, 100)
            a[f"{side}.arm_el"] = u(-85, 0)
    elif kind == "twist":
        a.update(spine_twist=u(25, 45) * rng.choice([-1, 1]),
                 spine_side=u(-25, 25), head_yaw=u(-40, 40))
        for side in (one, other):
            a[f"{side}.arm_el"] = u(-60, 40)
            a[f"{side}.arm_az"] = u(-20, 100)
    elif kind == "kick":  # a leg forward, straight-ish: foreshortened when facing the camera
        a.update(pitch=u(-15, 0))
        a.update({f"{one}.hip_flex": u(40, 80), f"{one}.knee": u(0, 25),
                  f"{one}.foot_flat": 0.0, f"{one}.ankle": u(10, 40),
                  f"{other}.knee": u(5, 20)})
        for side in (one, other):
            a[f"{side}.arm_el"] = u(-50, 10)
            a[f"{side}.arm_az"] = u(-30, 40)
    elif kind == "wide":  # wide stance, arms out
        for side in (one, other):
            a.update({f"{side}.hip_abd": u(15, 30), f"{side}.knee": u(5, 40),
                      f"{side}.hip_flex": u(0, 30), f"{side}.hip_rot": u(-25, -5),
                      f"{side}.arm_el": u(-20, 30), f"{side}.arm_az": u(-20, 30),
                      f"{side}.elbow": u(0, 40)})
        a["pitch"] = u(0, 15)
    elif kind != "stand":
        raise ValueError(f"unknown pose kind {kind!r}")
    return a


def plausible(joints: dict) -> bool:
    """Crude self-intersection checks on posed joints: hands and elbows out of the torso,
    knees and ankles apart."""
    top, bottom = joints["neck"], joints["spine1"]
    axis = top - bottom
    length = float(np.linalg.norm(axis))
    axis = axis / length

    def torso_distance(p):
        t = float(np.clip((p - bottom) @ axis, 0.0, length))
        return float(np.linalg.norm(p - (bottom + t * axis)))

    for name in ("left_wrist", "right_wrist", "left_elbow", "right_elbow"):
        if torso_distance(joints[name]) < 0.13:
            return False
    for a, b, gap in (("left_knee", "right_knee", 0.12), ("left_ankle", "right_ankle", 0.12),
                      ("left_wrist", "right_wrist", 0.06)):
        if np.linalg.norm(joints[a] - joints[b]) < gap:
            return False
    return True


def random_still_pose(body: Body, rng, kind: str) -> tuple[Pose, dict]:
    """A plausible random pose of `kind`, turned to a random heading in +-120 degrees."""
    # pointing and kicking at the camera: facing it, so the limb is foreshortened
    spread = 35.0 if kind in ("point", "kick") else 120.0
    heading = float(rng.uniform(-spread, spread))
    for _ in range(40):
        angles = random_angles(rng, kind)
        angles["heading"] = heading
        pose = pose_from_angles(body, angles)
        _, joints = body.evaluate(pose)
        if plausible(joints):
            return pose, angles
    raise RuntimeError(f"no plausible {kind} pose in 40 draws")


def camera_looking(location, target, width, height, lens_mm) -> CameraSpec:
    return CameraSpec(width=int(width), height=int(height), lens_mm=float(lens_mm),
                      location=tuple(float(x) for x in location),
                      target=tuple(float(x) for x in target))


def _pitch_deg(camera: CameraSpec) -> float:
    d = np.asarray(camera.target, float) - np.asarray(camera.location, float)
    return math.degrees(math.atan2(d[2], math.hypot(d[0], d[1])))


def box_of(camera: CameraSpec, points_world: np.ndarray):
    """(u0, v0, u1, v1) of the projected points, or None if any is not in front."""
    r, t = camera.world_to_cam()
    if ((points_world @ r.T + t)[:, 2] < 0.2).any():
        return None
    uv = camera.project(points_world)
    return (*uv.min(axis=0), *uv.max(axis=0))


def aim_off_centre(camera: CameraSpec, points_world: np.ndarray, offset_px) -> CameraSpec:
    """The camera turned (no roll) so that the points' box centre lands `offset_px` (du, dv)
    from the image centre; a few fixed-point steps of the pixel -> ray relation."""
    cam = camera
    want = np.array([cam.width / 2 + offset_px[0], cam.height / 2 + offset_px[1]])
    for _ in range(4):
        box = box_of(cam, points_world)
        if box is None:
            return cam
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        shift = want - centre
        if np.abs(shift).max() < 0.5:
            break
        # the ray through the pixel that should become the image centre
        k_inv = np.linalg.inv(cam.K())
        pixel = np.array([cam.width / 2 - shift[0], cam.height / 2 - shift[1], 1.0])
        ray_cam = k_inv @ pixel
        r, _ = cam.world_to_cam()
        ray_world = r.T @ ray_cam
        loc = np.asarray(cam.location, float)
        cam = camera_looking(loc, loc + ray_world / np.linalg.norm(ray_world), cam.width,
                             cam.height, cam.lens_mm)
    return cam


def random_framing(rng, points_world: np.ndarray, pelvis_world: np.ndarray,
                   max_offset: float = 0.25, margin: float = 0.03):
    """A random camera (distance, height, pitch, lens, image size) seeing all the points with
    their box off the image centre by up to `max_offset` of the frame, and what was drawn."""
    lo_z, hi_z = float(points_world[:, 2].min()), float(points_world[:, 2].max())
    for _ in range(400):
        width, height = STILL_SIZES[rng.integers(len(STILL_SIZES))]
        lens = float(math.exp(rng.uniform(math.log(24), math.log(85))))
        distance = float(rng.uniform(2.5, 6.0))
        cam_height = float(rng.uniform(0.5, 2.0))
        azimuth = math.radians(rng.uniform(-12, 12))
        location = pelvis_world + np.array([distance * math.sin(azimuth),
                                            -distance * math.cos(azimuth), 0.0])
        location[2] = cam_height
        target = np.array([pelvis_world[0], pelvis_world[1],
                           (lo_z + hi_z) / 2 + rng.uniform(-0.15, 0.15)])
        cam = camera_looking(location, target, width, height, lens)
        if abs(_pitch_deg(cam)) > 20:
            continue
        box = box_of(cam, points_world)
        if box is None:
            continue
        bw, bh = box[2] - box[0], box[3] - box[1]
        if not (0.3 * height <= bh <= 0.9 * height and bw <= 0.9 * width):
            continue
        room = np.array([(width - bw) / 2 - margin * width, (height - bh) / 2 - margin * height])
        limit = np.minimum(max_offset * np.array([width, height]), room)
        if (limit < 0).any():
            continue
        offset = rng.uniform(-1, 1, size=2) * limit
        for _ in range(4):
            moved = aim_off_centre(cam, points_world, offset)
            box = box_of(moved, points_world)
            inside = box is not None and (
                box[0] >= margin * width and box[1] >= margin * height
                and box[2] <= (1 - margin) * width and box[3] <= (1 - margin) * height)
            if inside and abs(_pitch_deg(moved)) <= 20:
                centre = ((box[0] + box[2]) / 2 - width / 2, (box[1] + box[3]) / 2 - height / 2)
                return moved, {
                    "distance_m": round(distance, 3), "camera_height_m": round(cam_height, 3),
                    "pitch_deg": round(_pitch_deg(moved), 2),
                    "box_px": [round(float(x), 1) for x in box],
                    "box_offset_frac": [round(centre[0] / width, 3),
                                        round(centre[1] / height, 3)],
                }
            offset = offset * 0.6
    raise RuntimeError("no framing found in 400 draws")


def random_still(index: int, seed: int = 0):
    """Still number `index` of the accuracy set: (body, pose, camera, colours, world offset,
    info), drawn
    from a generator seeded by (seed, index) so that any prefix of the set is the same."""
    rng = np.random.default_rng([seed, index])
    kind = POSE_KINDS[index % len(POSE_KINDS)]
    body = Body(random_phenotype(rng))
    colours = random_colours(rng)
    pose, angles = random_still_pose(body, rng, kind)
    offset = ground_offset(body, pose)
    vertices, _ = body.evaluate(pose)
    camera, framing = random_framing(rng, vertices + offset, body.root_of(pose) + offset)
    info = {"kind": kind, "angles_deg": {k: round(float(v), 3) for k, v in angles.items()},
            "colours": {k: list(v) for k, v in colours.items()}, "framing": framing}
    return body, pose, camera, colours, offset, info


# -- clips: joint angles as smooth functions of time

CLIP_FPS = 30.0


def _smoothstep(x):
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _keyframed(keys: list, frame: float) -> dict:
    """Angles at `frame` between keyframes [(frame, angles), ...] (smoothstep easing)."""
    if frame <= keys[0][0]:
        return dict(keys[0][1])
    for (f0, a0), (f1, a1) in zip(keys, keys[1:]):
        if frame <= f1:
            w = _smoothstep((frame - f0) / (f1 - f0))
            return {k: (1 - w) * a0[k] + w * a1[k] for k in a0}
    return dict(keys[-1][1])


def walk_angles(t: float, heading: float, speed: float = 1.15, start=(0.0, 0.0),
                period: float = 1.1) -> dict:
    """Walking along the body's heading: hips, knees, counter-swinging arms, pelvis yaw."""
    phi = 2 * math.pi * t / period
    a = dict(RELAXED)
    direction = about(UP, heading) @ FRONT
    a.update(heading=heading + 4 * math.sin(phi), pitch=3.0, roll=2.0 * math.cos(phi),
             spine_twist=-7 * math.sin(phi), head_yaw=-3 * math.sin(phi),
             x=start[0] + speed * t * direction[0], y=start[1] + speed * t * direction[1])
    for side, s in SIDES:
        ph = phi if side == "L" else phi + math.pi
        swing_deg = -18 * math.sin(ph)  # the arm swings against the same side's leg
        a.update({f"{side}.hip_flex": 22 * math.sin(ph) + 4,
                  f"{side}.knee": 6 + 55 * max(0.0, math.cos(ph + 0.35)) ** 2,
                  f"{side}.ankle": 8 * max(0.0, -math.sin(ph + 0.6)),
                  f"{side}.foot_flat": 0.8,
                  f"{side}.arm_az": 90.0, f"{side}.arm_el": -90.0 + swing_deg,
                  f"{side}.arm_spread": 0.18,
                  f"{side}.elbow": 18 + 14 * max(0.0, math.sin(-ph)),
                  f"{side}.arm_twist": 10.0})
    return a


def turn_angles(t: float, duration: float) -> dict:
    """Turning on the spot from facing the camera's left to past facing it, stepping."""
    a = dict(RELAXED)
    w = _smoothstep(t / duration)
    a.update(heading=-80 + 170 * w, spine_twist=12 * math.sin(2 * math.pi * t / duration),
             head_yaw=15 * math.sin(2 * math.pi * t / duration + 0.5),
             x=0.15 * w, y=-0.1 * w)
    step = 2 * math.pi * t / 0.7
    for side, s in SIDES:
        ph = step if side == "L" else step + math.pi
        lift = max(0.0, math.sin(ph)) ** 2 * (1 - abs(2 * w - 1) ** 3)
        a.update({f"{side}.hip_flex": 25 * lift, f"{side}.knee": 3 + 45 * lift,
                  f"{side}.hip_rot": 10 * lift * s * (1 if w < 1 else 0),
                  f"{side}.arm_el": -60 + 15 * math.sin(ph), f"{side}.arm_az": 30.0,
                  f"{side}.elbow": 40 + 20 * math.sin(ph + 1), f"{side}.foot_flat": 1.0})
    return a


def arms_keys() -> list:
    """Keyframes (frame at 30 fps, angles): raise both arms, wave, reach forward, reach across."""
    rest = dict(RELAXED, heading=25.0)
    up = dict(rest, **{"L.arm_el": 75.0, "L.arm_az": 25.0, "L.elbow": 10.0, "L.shrug": 15.0,
                       "R.arm_el": 75.0, "R.arm_az": 25.0, "R.elbow": 10.0, "R.shrug": 15.0,
                       "head_pitch": -10.0, "x": 0.05})
    wave_base = dict(rest, **{"R.arm_el": 45.0, "R.arm_az": 15.0, "R.shrug": 8.0,
                              "R.arm_twist": -20.0, "head_yaw": -10.0, "x": 0.1})
    keys = [(0, rest), (12, up)]
    for i, f in enumerate(range(22, 43, 4)):  # waving: the forearm swings back and forth
        keys.append((f, dict(wave_base, **{"R.elbow": 40.0 if i % 2 == 0 else 95.0})))
    reach = dict(rest, **{"L.arm_az": 90.0, "L.arm_el": 5.0, "L.elbow": 5.0,
                          "spine_flex": 20.0, "pitch": 8.0, "L.hip_flex": 8.0,
                          "R.hip_flex": 8.0, "R.knee": 15.0, "L.knee": 15.0, "x": 0.05,
                          "y": -0.15})
    across = dict(rest, **{"R.arm_az": 130.0, "R.arm_el": 10.0, "R.elbow": 10.0,
                           "spine_twist": 25.0, "spine_flex": 10.0, "head_yaw": 20.0,
                           "L.arm_el": -50.0, "y": -0.1, "x": -0.05})
    keys += [(48, reach), (57, across), (63, dict(rest, x=0.0, y=-0.05))]
    return keys


CLIPS = {
    # name: frames, image size, lens, camera location and target (Blender world; the
    # first pose's root stands above the world origin: see ground_offset).
    "walk": {"frames": 64, "size": (640, 480), "lens_mm": 40.0,
             "location": (0.1, -6.2, 1.3), "target": (0.85, -0.85, 0.85)},
    "turn": {"frames": 64, "size": (384, 512), "lens_mm": 45.0,
             "location": (0.6, -3.6, 1.6), "target": (0.0, 0.0, 0.8)},
    "arms": {"frames": 64, "size": (512, 384), "lens_mm": 38.0,
             "location": (0.9, -4.2, 1.0), "target": (0.45, 0.0, 1.05)},
}


def clip_angles(name: str, frame: int) -> dict:
    t = frame / CLIP_FPS
    if name == "walk":  # across the view and toward the camera, at about 45 degrees
        return walk_angles(t, heading=45.0, start=(-1.0, 0.9))
    if name == "turn":
        return turn_angles(t, (CLIPS["turn"]["frames"] - 1) / CLIP_FPS)
    if name == "arms":
        return _keyframed(arms_keys(), frame)
    raise ValueError(f"unknown clip {name!r}")


def clip_poses(body: Body, name: str) -> list:
    """The clip's poses, each lifted or lowered so its lowest vertex stays on the first
    pose's floor level."""
    poses = [pose_from_angles(body, clip_angles(name, k)) for k in range(CLIPS[name]["frames"])]
    floor = None
    grounded = []
    for pose in poses:
        vertices, _ = body.evaluate(pose)
        low = float(vertices[:, 2].min())
        floor = low if floor is None else floor
        x, y, z = pose.root_translation
        grounded.append(Pose(pose.bones, (x, y, z - (low - floor))))
    return grounded


def clip_camera(body: Body, name: str, poses: list, offset: np.ndarray, margin: float = 0.03):
    """The clip's camera, moved back along its view until every frame's body is in frame."""
    spec = CLIPS[name]
    loc, target = np.asarray(spec["location"], float), np.asarray(spec["target"], float)
    points = np.concatenate([body.evaluate(p)[0][::7] + offset for p in poses])
    w, h = spec["size"]
    for _ in range(40):
        cam = camera_looking(loc, target, w, h, spec["lens_mm"])
        box = box_of(cam, points)
        if box is not None and box[0] >= margin * w and box[1] >= margin * h \
                and box[2] <= (1 - margin) * w and box[3] <= (1 - margin) * h:
            return cam, [round(float(x), 1) for x in box]
        loc = loc + 0.15 * _unit(loc - target)
    raise RuntimeError(f"clip {name}: the body does not fit the frame")


CLIP_PHENOTYPES = {
    "walk": {"gender": 0.8, "age": 0.7, "muscle": 0.45, "weight": 0.45, "height": 0.55,
             "proportions": 0.3},
    "turn": {"gender": 0.1, "age": 0.85, "muscle": 0.5, "weight": 0.7, "height": 0.35,
             "proportions": 0.5},
    "arms": {"gender": 0.35, "age": 0.62, "muscle": 0.7, "weight": 0.35, "height": 0.75,
             "proportions": 0.2},
}
CLIP_COLOURS = {
    "walk": {"shirt": SHIRTS[1], "trousers": TROUSERS[1], "skin": SKINS[1]},
    "turn": {"shirt": SHIRTS[3], "trousers": TROUSERS[0], "skin": SKINS[2]},
    "arms": {"shirt": SHIRTS[4], "trousers": TROUSERS[3], "skin": SKINS[0]},
}


def clip_setup(name: str):
    """(body, poses, camera, colours, offset, info) of one of CLIPS."""
    body = Body(CLIP_PHENOTYPES[name])
    poses = clip_poses(body, name)
    offset = ground_offset(body, poses[0])
    camera, box = clip_camera(body, name, poses, offset)
    info = {"fps": CLIP_FPS, "frames": len(poses), "box_px_all_frames": box,
            "colours": {k: list(v) for k, v in CLIP_COLOURS[name].items()}}
    return body, poses, camera, CLIP_COLOURS[name], offset, info


def preview(body: Body, pose: Pose, camera: CameraSpec, offset, path) -> None:
    """A quick look without Cycles: the posed vertices drawn as dots, nearer ones brighter,
    and the 12 limb joints as red dots."""
    import cv2

    vertices, joints = body.evaluate(pose)
    r, t = camera.world_to_cam()
    cam = (vertices + offset) @ r.T + t
    uv = camera.project(vertices + offset)
    image = np.full((camera.height, camera.width, 3), 60, np.uint8)
    order = np.argsort(-cam[:, 2])
    depth = (cam[:, 2] - cam[:, 2].min()) / max(np.ptp(cam[:, 2]), 1e-6)
    for i in order:
        g = int(230 - 150 * depth[i])
        u, v = int(uv[i, 0]), int(uv[i, 1])
        if 0 <= u < camera.width and 0 <= v < camera.height:
            image[v, u] = (g, g, g)
    for name in BLAZEPOSE_TO_SMPL.values():
        u, v = camera.project(joints[name][None] + offset)[0]
        colour = (0, 0, 255) if name.startswith("left") else (255, 0, 0)
        cv2.circle(image, (int(u), int(v)), 3, colour, -1)
    cv2.imwrite(str(path), image)


# --------------------------------------------------------------------------------------
# mediapipe check


def check_with_mediapipe(image_path: Path, json_path: Path | None = None) -> dict:
    """Run BlazePose (static image, complexity 1) and compare its 12 major landmarks with
    the projected true joints. Returns {joint: {visibility, error_px}} and a summary."""
    import cv2
    import mediapipe as mp

    json_path = json_path or Path(image_path).with_suffix(".json")
    meta = json.loads(Path(json_path).read_text())
    truth = meta["joints_2d"]
    image = cv2.imread(str(image_path))
    h, w = image.shape[:2]
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        res = pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if res.pose_landmarks is None:
        return {"detected": False}
    out = {"detected": True, "joints": {}}
    errors, vis = [], []
    for idx, name in BLAZEPOSE_TO_SMPL.items():
        lm = res.pose_landmarks.landmark[idx]
        uv = np.array([lm.x * w, lm.y * h])
        err = float(np.linalg.norm(uv - np.asarray(truth[name])))
        out["joints"][name] = {
            "visibility": round(float(lm.visibility), 3),
            "error_px": round(err, 1),
            "mediapipe_px": uv.round(1).tolist(),
            "true_px": truth[name],
        }
        errors.append(err)
        vis.append(lm.visibility)
    out["min_visibility"] = round(float(min(vis)), 3)
    out["mean_error_px"] = round(float(np.mean(errors)), 1)
    out["max_error_px"] = round(float(np.max(errors)), 1)
    xs = [v[0] for v in truth.values()]
    ys = [v[1] for v in truth.values()]
    out["person_height_px"] = round(float(max(ys) - min(ys)), 1)
    out["person_width_px"] = round(float(max(xs) - min(xs)), 1)
    return out


# --------------------------------------------------------------------------------------
# command line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render one posed body to an image plus its JSON")
    r.add_argument("--out", type=Path, default=Path("samples/person.png"))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--jitter-deg", type=float, default=0.0,
                   help="random extra turn per posed bone (0: the canonical pose)")
    r.add_argument("--samples", type=int, default=32)
    r.add_argument("--width", type=int, default=CameraSpec.width)
    r.add_argument("--height", type=int, default=CameraSpec.height)
    r.add_argument("--lens-mm", type=float, default=CameraSpec.lens_mm)
    r.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("check", help="mediapipe BlazePose against the true joints")
    c.add_argument("image", type=Path)
    c.add_argument("--json", type=Path, default=None,
                   help="the image's metadata (default: beside the image)")
    c.add_argument("--json-out", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)

    if args.cmd == "render":
        t0 = time.time()
        body = Body()
        pose = natural_pose(body, seed=args.seed, jitter_deg=args.jitter_deg)
        cam = CameraSpec(width=args.width, height=args.height, lens_mm=args.lens_mm)
        meta = render_image(body, pose, args.out, camera=cam, samples=args.samples,
                            seed=args.seed, threads=args.threads)
        meta["generator"]["jitter_deg"] = args.jitter_deg
        meta["generator"]["command"] = (
            f"python {GENERATOR_NAME} render --out {args.out} --seed {args.seed} "
            f"--jitter-deg {args.jitter_deg} --samples {args.samples} --width {args.width} "
            f"--height {args.height} --lens-mm {args.lens_mm}"
        )
        _write_json(args.out.with_suffix(".json"), meta)
        _log(f"wrote {args.out} and {args.out.with_suffix('.json')} "
             f"({time.time() - t0:.1f} s)")
    else:
        result = check_with_mediapipe(args.image, args.json)
        if not result["detected"]:
            print("mediapipe: no person detected")
            sys.exit(1)
        print(f"{'joint':16s} {'visibility':>10s} {'error_px':>9s}")
        for name, j in result["joints"].items():
            print(f"{name:16s} {j['visibility']:10.3f} {j['error_px']:9.1f}")
        print(f"min visibility {result['min_visibility']:.3f}, mean error "
              f"{result['mean_error_px']:.1f} px, max error {result['max_error_px']:.1f} px, "
              f"person (true joints) {result['person_width_px']:.0f} x "
              f"{result['person_height_px']:.0f} px")
        if args.json_out:
            _write_json(args.json_out, result)


if __name__ == "__main__":
    main()
