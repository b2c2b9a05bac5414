"""The `ikol` front end: person crops -> the IKOL24 network -> SMPL joints, twist, leaves, shape.

Steps, for a batch of person crops:
1. `person_crop` cuts a square around the person's box (1.25 times its longer side, as HybrIK
   and IKOL do at test time) and scales it to 256 x 256 pixels.
2. The crop is normalised as in the authors' code: RGB scaled to [0, 1], then channel minus
   (0.406, 0.457, 0.480) and divided by (0.225, 0.224, 0.229) for R, G, B. (These are ImageNet's
   statistics in BGR order; the authors apply them to RGB images, and the weights were trained
   that way, so they are kept.)
3. IKOL24 gives each joint's uvd in the crop, betas, twist and leaf quaternions. With the flip
   test, the mirrored crop runs in the same batch and its outputs, mirrored back, are averaged
   with the crop's (see `mirror_output`).
4. Each joint's (u, v) goes back to image pixels through the crop's affine map; its depth
   relative to the pelvis is d * 2 m (the authors' depth scale for IKOL).
5. The root (pelvis) depth Z is not predicted by the network. It is chosen so that the
   skeleton, back-projected through the camera, has the length of a reference skeleton:
   every joint i lies on its pixel's ray r_i = K^-1 (x_i, y_i, 1) at depth Z + delta_i
   (delta_i = its depth relative to the pelvis), and Z solves
       sum over the 23 bones (i, parent p) of |(Z + delta_i) r_i - (Z + delta_p) r_p| = L,
   L being the reference skeleton's total bone length: the default skeleton (an adult of
   about 1.72 m, L = 4.35 m) or, when an SMPL-format body is given, its rest skeleton under
   the predicted betas. The left side is convex in Z and grows without bound, so the root is
   found by bisection. This is exact under full perspective; the error in Z is the error in
   the assumed body size (a person 10 % smaller than assumed is placed 10 % too far away).
6. Joints in the camera frame minus the pelvis, turned into the model frame (a half turn about
   X, `camera.CAMERA_TO_MODEL`), are the IK targets.

Frames: image pixels are continuous (0, 0 at the image's top-left corner, pixel centres at
half-integers). Crop pixels follow the authors' convention, which the network was trained with:
integer pixel centres (OpenCV's), the box's centre at crop pixel (128, 128), and the network's
(u + 0.5) * 256 read as such a crop pixel. `person_crop` and its map back convert between the
two. The camera frame is OpenCV's (x right, y down, z forward); the model frame is SMPL's (Y
up, Z towards the camera here). Twist angles and leaf rotations are local (relative to the
parent in its rest frame), so the turn from camera to model frame leaves them unchanged.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import roma
import torch

from ..body.default_skeleton import default_skeleton
from ..body.model import NUM_BETAS, BodyModel
from ..body.tree import JOINT_NAMES, LEAF_PARENTS, NUM_JOINTS, PARENTS
from ..camera import CAMERA_TO_MODEL
from ..errors import BackendError
from ..network.checkpoint import open_checkpoint
from ..network.ikol24 import DEPTH_SCALE_M, INPUT_SIZE, IKOL24, LEAF_JOINTS, IkolOutput

CROP_SIZE = INPUT_SIZE  # pixels
BOX_SCALE = 1.25  # the crop's side over the box's longer side
IMAGE_MEAN = (0.406, 0.457, 0.480)  # subtracted from R, G, B in [0, 1]
IMAGE_STD = (0.225, 0.224, 0.229)  # then divided by these
MIN_ROOT_DEPTH_M = 0.1  # in front of the camera, and of every joint
_BISECTIONS = 60


def _mirror_index(names: list[str]) -> list[int]:
    """For each name, the index of its mirror image (left_ <-> right_; others map to themselves)."""
    def mirrored(name: str) -> str:
        side, _, part = name.partition("_")
        return {"left": f"right_{part}", "right": f"left_{part}"}.get(side, name)

    return [names.index(mirrored(name)) for name in names]


MIRROR_JOINTS: list[int] = _mirror_index(list(JOINT_NAMES))
MIRROR_TWIST: list[int] = [joint - 1 for joint in MIRROR_JOINTS[1:]]  # twist rows are joints 1-23
MIRROR_LEAVES: list[int] = _mirror_index([JOINT_NAMES[joint] for joint in LEAF_JOINTS])
# The network's leaf rows (LEAF_JOINTS) in the IK layer's order (tree.LEAF_PARENTS).
LEAVES_FOR_IK: list[int] = [LEAF_JOINTS.index(joint) for joint in LEAF_PARENTS]


@dataclass(frozen=True)
class NetworkEstimate:
    """What the front end gives for N crops (float32 numpy arrays).

    Attributes:
        joints: (N, 24, 3) SMPL joints, model frame, metres, pelvis at the origin.
        root_camera: (N, 3) the pelvis in the camera frame (OpenCV: x right, y down, z forward),
            metres; its z is the estimated root depth.
        twist: (N, 23, 2) (cos, sin) of the twist angles of joints 1-23, normalised.
        leaf_rotmats: (N, 5, 3, 3) local rotations of the leaf joints 15, 22, 23, 10, 11 (head,
            hands, feet: the IK layer's order, `tree.LEAF_PARENTS`).
        betas: (N, 10) SMPL shape.
        keypoints_2d: (N, 24, 2) the joints in image pixels (continuous, origin top-left).
    """

    joints: np.ndarray
    root_camera: np.ndarray
    twist: np.ndarray
    leaf_rotmats: np.ndarray
    betas: np.ndarray
    keypoints_2d: np.ndarray


def person_crop(rgb: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Cut the network's input out of an image.

    Args:
        rgb: (H, W, 3) uint8 image.
        box: (x0, y0, x1, y1) the person's box in image pixels.

    Returns:
        The (256, 256, 3) uint8 crop: a square of BOX_SCALE times the box's longer side about the
        box's centre (outside the image: black), and the (2, 3) affine map from crop pixels
        (integer centres: the box's centre is crop pixel (128, 128), as in the authors' crops)
        to image pixels (continuous): image = A @ (x, y, 1).
    """
    x0, y0, x1, y1 = (float(value) for value in box)
    if not (np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0):
        raise ValueError(f"a person box is (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    scale = CROP_SIZE / (BOX_SCALE * max(x1 - x0, y1 - y0))  # crop pixels per image pixel
    half = CROP_SIZE / 2
    # The authors' map, in integer-centred pixels on both sides: crop = scale * (image - c) +
    # half, c the box's centre in those pixels (the continuous centre less half a pixel).
    opencv_map = np.array([
        [scale, 0.0, scale * (0.5 - centre_x) + half],
        [0.0, scale, scale * (0.5 - centre_y) + half],
    ])
    crop = cv2.warpAffine(rgb, opencv_map, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    crop_to_image = np.array([
        [1 / scale, 0.0, centre_x - half / scale],
        [0.0, 1 / scale, centre_y - half / scale],
    ])
    return crop, crop_to_image


def normalise(crops: torch.Tensor) -> torch.Tensor:
    """(B, 256, 256, 3) uint8 RGB crops -> (B, 3, 256, 256) float32 network input."""
    mean = torch.tensor(IMAGE_MEAN, device=crops.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=crops.device).reshape(1, 3, 1, 1)
    return (crops.permute(0, 3, 1, 2).float() / 255 - mean) / std


def mirror_output(output: IkolOutput) -> IkolOutput:
    """The outputs for the left-right mirrored crop, from the outputs for a crop (and back).

    - uvd: u -> -u (the crop's centre line is u = 0), left and right joints swapped.
    - twist: a mirrored rotation turns the other way about the mirrored bone: sin -> -sin,
      left and right joints swapped.
    - leaf quaternions (w, x, y, z): mirroring across the model's YZ plane gives M R M with
      M = diag(-1, 1, 1), the quaternion (w, x, -y, -z); feet and hands swapped.
    - betas: kept (the shape is taken as symmetric).
    """
    uvd = output.uvd[:, MIRROR_JOINTS] * output.uvd.new_tensor([-1.0, 1.0, 1.0])
    twist = output.twist[:, MIRROR_TWIST] * output.twist.new_tensor([1.0, -1.0])
    leaf = output.leaf_quats[:, MIRROR_LEAVES] * output.leaf_quats.new_tensor([1.0, 1.0, -1.0, -1.0])
    return IkolOutput(uvd=uvd, betas=output.betas, twist=twist, leaf_quats=leaf)


def run_network(network: IKOL24, crops: torch.Tensor, half: bool = False,
                flip_test: bool = False) -> IkolOutput:
    """One batch through the network: (B, 256, 256, 3) uint8 crops on the network's device.

    `half` runs the convolutions in float16 under CUDA autocast. `flip_test` also runs the
    mirrored crops in the same batch and averages their mirrored outputs with the crops'.
    """
    images = normalise(crops)
    if flip_test:
        images = torch.cat([images, images.flip(dims=[3])])
    with torch.inference_mode(), torch.autocast(images.device.type, torch.float16, enabled=half):
        output = network(images)
    if not flip_test:
        return output
    count = crops.shape[0]
    direct = IkolOutput(*(value[:count] for value in _fields(output)))
    mirrored = mirror_output(IkolOutput(*(value[count:] for value in _fields(output))))
    return IkolOutput(*((a + b) / 2 for a, b in zip(_fields(direct), _fields(mirrored))))


def _fields(output: IkolOutput) -> tuple[torch.Tensor, ...]:
    return output.uvd, output.betas, output.twist, output.leaf_quats


def bone_length_total(rest_points: torch.Tensor) -> torch.Tensor:
    """(B, >=24, 3) rest points -> (B,) summed length of the 23 bones between the 24 joints."""
    bones = rest_points[:, 1:NUM_JOINTS] - rest_points[:, list(PARENTS[1:])]
    return bones.norm(dim=-1).sum(dim=-1)


def root_depth(rays: torch.Tensor, relative_depth: torch.Tensor, total_length: torch.Tensor) -> torch.Tensor:
    """The pelvis depth at which the back-projected skeleton has the given total bone length.

    Args:
        rays: (B, 24, 3) K^-1 (x, y, 1) of each joint's pixel (camera frame, z = 1).
        relative_depth: (B, 24) each joint's depth minus the pelvis's, metres.
        total_length: (B,) the summed length of the 23 bones, metres.

    Returns:
        (B,) Z in metres, solving sum_bones |(Z + dc) rc - (Z + dp) rp| = total_length
        (see the module docstring), at least MIN_ROOT_DEPTH_M in front of every joint.
    """
    parents = list(PARENTS[1:])
    slope = rays[:, 1:] - rays[:, parents]  # (B, 23, 3): d(bone)/dZ
    offset = relative_depth[:, 1:, None] * rays[:, 1:] - relative_depth[:, parents, None] * rays[:, parents]

    def total_at(depth: torch.Tensor) -> torch.Tensor:
        return (depth[:, None, None] * slope + offset).norm(dim=-1).sum(dim=-1)

    low = torch.zeros_like(total_length)
    # At this depth the total is at least the target: |Z a + c| >= Z |a| - |c|.
    high = (total_length + offset.norm(dim=-1).sum(-1)) / slope.norm(dim=-1).sum(-1).clamp_min(1e-12)
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        short = total_at(middle) < total_length
        low = torch.where(short, middle, low)
        high = torch.where(short, high, middle)
    nearest = (-relative_depth).amax(dim=-1).clamp_min(0) + MIN_ROOT_DEPTH_M
    return torch.maximum((low + high) / 2, nearest)


class IkolNetFrontEnd:
    """The IKOL network with its checkpoint, ready to turn person crops into IK inputs.

    Args:
        checkpoint: the authors' IKOL24 weights (`.pth`), see `network/checkpoint.py`.
        device: where the network runs.
        half: run the network in float16 (CUDA only: on another device it is refused with
            BackendError `bad_option`, since CPU float16 convolutions are slow or missing).
        flip_test: also run the mirrored crops and average (twice the network work).
        batch_size: crops per network batch (with the flip test, twice as many images).
        reference_body: gives the reference skeleton for the root depth. An SMPL-format body
            (one with a mesh) is taken under the predicted betas; any other body (and None:
            the default skeleton) at rest, since the predicted betas are SMPL's.
    """

    def __init__(self, checkpoint: Path, device: torch.device, half: bool = False,
                 flip_test: bool = False, batch_size: int = 64,
                 reference_body: BodyModel | None = None):
        if half and device.type != "cuda":
            raise BackendError("bad_option", f"half precision (--half) needs a CUDA device; "
                                             f"the network would run on {device.type}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        loaded = open_checkpoint(checkpoint, device)
        self.network = loaded.network
        self.checkpoint_note = loaded.note  # keys of the file the network ignored, for a warning
        self.device = device
        self.half = half
        self.flip_test = flip_test
        self.batch_size = batch_size
        body = reference_body or default_skeleton()
        self._body = body.to("cpu", torch.float64)
        self._use_betas = body.mesh is not None

    def estimate(self, crops: np.ndarray, crop_to_image: np.ndarray, camera: np.ndarray) -> NetworkEstimate:
        """Run the network on crops from `person_crop` and place the results in the camera.

        Args:
            crops: (N, 256, 256, 3) uint8 RGB crops.
            crop_to_image: (N, 2, 3) each crop's affine map to image pixels.
            camera: (3, 3) intrinsics of the images, pixels.
        """
        count = crops.shape[0]
        if crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (N, {CROP_SIZE}, {CROP_SIZE}, 3) uint8, "
                             f"got {crops.shape} {crops.dtype}")
        if crop_to_image.shape != (count, 2, 3) or camera.shape != (3, 3):
            raise ValueError("crop_to_image must be (N, 2, 3) and camera (3, 3)")
        outputs = [
            run_network(self.network,
                        torch.from_numpy(np.ascontiguousarray(crops[start:start + self.batch_size])).to(self.device),
                        self.half, self.flip_test)
            for start in range(0, max(count, 1), self.batch_size)  # an empty batch gives empty arrays
        ]
        uvd, betas, twist, leaf_quats = (
            torch.cat(parts).to("cpu", torch.float64) for parts in zip(*map(_fields, outputs))
        )
        zero_betas = torch.zeros(count, NUM_BETAS, dtype=torch.float64)
        lengths = bone_length_total(self._body.rest_points(betas if self._use_betas else zero_betas))
        joints, root, pixels = place(uvd, torch.from_numpy(crop_to_image).double(),
                                     torch.from_numpy(camera).double(), lengths)
        unit_twist = twist / twist.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        unit_quats = leaf_quats / leaf_quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        leaf_rotmats = roma.unitquat_to_rotmat(unit_quats[:, LEAVES_FOR_IK][..., [1, 2, 3, 0]])  # roma: x, y, z, w
        arrays = (joints, root, unit_twist, leaf_rotmats, betas, pixels)
        return NetworkEstimate(*(array.float().numpy() for array in arrays))


def place(uvd: torch.Tensor, crop_to_image: torch.Tensor, camera: torch.Tensor,
          total_length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network joints in the crop -> joints in the camera and model frames (module docstring, 4-6).

    Args:
        uvd: (B, 24, 3) the network's joints (`IkolOutput.uvd`).
        crop_to_image: (B, 2, 3) each crop's affine map to image pixels.
        camera: (3, 3) intrinsics, pixels.
        total_length: (B,) the reference skeleton's summed bone length, metres.

    Returns:
        (B, 24, 3) joints in the model frame relative to the pelvis, (B, 3) the pelvis in the
        camera frame (metres), and (B, 24, 2) the joints in image pixels.
    """
    crop_pixels = (uvd[..., :2] + 0.5) * CROP_SIZE  # integer-centred crop pixels (authors')
    pixels = crop_pixels @ crop_to_image[:, :, :2].transpose(1, 2) + crop_to_image[:, None, :, 2]
    rays = torch.cat([pixels, torch.ones_like(pixels[..., :1])], dim=-1) @ torch.linalg.inv(camera).T
    relative_depth = (uvd[..., 2] - uvd[:, :1, 2]) * DEPTH_SCALE_M
    depth = root_depth(rays, relative_depth, total_length)
    joints_camera = rays * (depth[:, None] + relative_depth)[..., None]
    root = joints_camera[:, 0]
    to_model = torch.from_numpy(CAMERA_TO_MODEL).to(joints_camera)
    return (joints_camera - root[:, None]) @ to_model.T, root, pixels
