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
from ..body.tree import POINT_PARENTS

DEFAULT_RIDGE = 3e-4


def fit_betas(
    body: BodyModel,
    points: torch.Tensor,
    *,
    ridge: float = DEFAULT_RIDGE,
    iterations: int = 3,
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
