"""Body shape (betas) from the bone lengths of target points.

Bone lengths do not depend on the pose, so they are what a shape can be fitted to before the
pose is known. The rest bones are linear in the betas, their lengths are not: each step
linearises the lengths at the current betas and solves the linear least-squares problem

    min_b  sum_bones (length(b) - target_length)^2 + ridge * |b|^2,

the ridge term being the prior that betas are small (they are standard-normal in SMPL). A few
such steps from b = 0 converge. Lengths in metres, so `ridge` is in m^2 per unit beta^2: about
the variance of a measured bone length. The default, 3e-4, is a compromise measured on
synthetic bodies (mean bone-length error, default skeleton): 1.9 mm without keypoint noise
(1e-6 would give 0.02 mm), 3.0 mm at 10 mm noise per coordinate, 5.5 mm at 20 mm (where 1e-3
gives 5.1 mm).
"""

import torch

from ..body.model import NUM_BETAS, BodyModel
from ..body.kinematics import forward_kinematics
from ..camera import between_frames
from ..body.tree import PARENTS, POINT_PARENTS

DEFAULT_RIDGE = 1e-4


def fit_betas(
    body: BodyModel,
    points: torch.Tensor,
    *,
    ridge: float = DEFAULT_RIDGE,
    iterations: int = 5,
    shared: bool = False,
) -> torch.Tensor:
    """Betas whose rest bone lengths best match those of `points`.

    Args:
        body: the skeleton whose shape space is fitted.
        points: (B, 24, 3) or (B, 29, 3) target joints (and leaf points), metres, any pose.
        ridge: weight of the |betas|^2 prior, m^2.
        iterations: linearise-and-solve steps.
        shared: fit one shape to all B samples (frames of one person) instead of one each.

    Returns:
        (B, 10) betas (the same row B times when `shared`).
    """
    num = points.shape[1]
    kids = list(range(1, num))
    parents = [POINT_PARENTS[c] for c in kids]
    template = body.point_template.to(points)
    shapedirs = body.point_shapedirs.to(points)
    rest_bone = template[kids] - template[parents]  # (N, 3)
    bone_dirs = shapedirs[kids] - shapedirs[parents]  # (N, 3, 10)
    target_length = (points[:, kids] - points[:, parents]).norm(dim=-1)  # (B, N)
    batch = 1 if shared else points.shape[0]
    betas = points.new_zeros(batch, NUM_BETAS)
    eye = torch.eye(NUM_BETAS, dtype=points.dtype, device=points.device)
    for _ in range(iterations):
        bone = rest_bone + torch.einsum("ncs,bs->bnc", bone_dirs, betas)
        length = bone.norm(dim=-1)
        jac = torch.einsum("bnc,ncs->bns", bone / length.unsqueeze(-1), bone_dirs)
        error = length - target_length  # (B, N), or broadcast to all frames when shared
        normal = jac.transpose(1, 2) @ jac
        gradient = (jac.transpose(1, 2) @ error.unsqueeze(-1)).squeeze(-1)
        if shared:
            frames = target_length.shape[0]
            normal, gradient = normal * frames, gradient.sum(0, keepdim=True)
        normal = normal + ridge * eye
        gradient = gradient + ridge * betas
        betas = betas - torch.linalg.solve(normal, gradient)
    return betas.expand(points.shape[0], NUM_BETAS) if shared else betas


def fit_betas_to_image(
    body: BodyModel,
    global_rotmats: torch.Tensor,
    targets: torch.Tensor,
    keypoints: torch.Tensor,
    confidence: torch.Tensor,
    camera: torch.Tensor,
    *,
    image_weight: float,
    points_weight: float,
    ridge: float = DEFAULT_RIDGE,
) -> torch.Tensor:
    """One shape for B posed frames, from their 2D keypoints and 3D targets together.

    With the joint rotations held, the posed points are linear in the betas and the pelvis
    position c: X_i = c + FK_i(rest(betas)). Both kinds of evidence are then linear too: a
    3D residual X_i - X_0 - T_i, and the reprojection error in metres at the point's depth,
    (x - (u - cx) / fx z, y - (v - cy) / fy z) in the camera frame (each times sqrt(weight
    confidence)). One linear least-squares solve over the shared betas and every frame's c
    (eliminated per frame), with the ridge prior `ridge |betas|^2`.

    Args:
        body: the skeleton whose shape space is fitted.
        global_rotmats: (B, 24, 3, 3) each joint's rotation in the scene frame (Y up, Z towards
            the camera, camera at the origin looking along -Z).
        targets: (B, P, 3) root-relative 3D targets in the scene frame, metres.
        keypoints: (B, P, 2) pixels; confidence: (B, P); camera: (3, 3) intrinsics.
        image_weight, points_weight: the weights of the two kinds of residual.

    Returns:
        (10,) betas.
    """
    batch, num = targets.shape[:2]
    dtype = torch.float64
    rot = global_rotmats.to(dtype)
    local = torch.cat([rot[:, :1], rot[:, list(PARENTS[1:])].transpose(-1, -2) @ rot[:, 1:]], 1)
    template = body.point_template.to(rot)
    shapedirs = body.point_shapedirs.to(rot)
    # Posed offsets from the pelvis: at betas 0, and per unit of each beta (linear in the rest).
    base, _ = forward_kinematics(local, template.expand(batch, -1, -1))
    per_beta = torch.stack([
        forward_kinematics(local, shapedirs[:, :, k].expand(batch, -1, -1))[0] for k in range(NUM_BETAS)
    ], -1)  # (B, 29, 3, 10)
    base = (base - base[:, :1])[:, :num]
    per_beta = (per_beta - per_beta[:, :1])[:, :num]
    k = camera.to(rot)
    ray = (keypoints[..., :num, :].to(rot) - k[:2, 2]) / k.diagonal()[:2]  # (B, P, 2)
    conf = confidence[:, :num].to(rot)
    eye = torch.eye(3, dtype=dtype, device=rot.device)

    # Reprojection rows: project [camera point] onto (x - rx z, y - ry z).
    pick = torch.zeros(batch, num, 2, 3, dtype=dtype, device=rot.device)
    pick[..., 0, 0] = 1.0
    pick[..., 1, 1] = 1.0
    pick[..., :, 2] = -ray
    pick = between_frames(pick)  # acting on scene-frame vectors
    image_w = (image_weight * conf).sqrt()[..., None, None]
    rows_beta = image_w * (pick @ per_beta)  # (B, P, 2, 10)
    rows_c = image_w * pick  # (B, P, 2, 3)
    rhs = -(image_w[..., 0] * (pick @ base.unsqueeze(-1)).squeeze(-1))  # (B, P, 2)
    # 3D rows: base + per_beta b = targets.
    body_w = points_weight ** 0.5
    rows3_beta = body_w * per_beta
    rows3_c = torch.zeros(batch, num, 3, 3, dtype=dtype, device=rot.device)
    rhs3 = body_w * (targets.to(rot) - base)

    a_beta = torch.cat([rows_beta.flatten(1, 2), rows3_beta.flatten(1, 2)], 1)  # (B, R, 10)
    a_c = torch.cat([rows_c.flatten(1, 2), rows3_c.flatten(1, 2)], 1)  # (B, R, 3)
    b = torch.cat([rhs.flatten(1), rhs3.flatten(1)], 1)  # (B, R)
    hcc = a_c.transpose(1, 2) @ a_c + 1e-12 * eye
    hcb = a_c.transpose(1, 2) @ a_beta
    gc = a_c.transpose(1, 2) @ b.unsqueeze(-1)
    hbb = (a_beta.transpose(1, 2) @ a_beta - hcb.transpose(1, 2) @ torch.linalg.solve(hcc, hcb)).sum(0)
    gb = (a_beta.transpose(1, 2) @ b.unsqueeze(-1) - hcb.transpose(1, 2) @ torch.linalg.solve(hcc, gc)).sum(0)
    normal = hbb + ridge * torch.eye(NUM_BETAS, dtype=dtype, device=rot.device)
    return torch.linalg.solve(normal, gb).squeeze(-1).to(targets.dtype)
