"""Body models with one interface: rest joints linear in the shape `betas`, then forward kinematics.

All positions are in the SMPL model frame: Y up, X to the body's left, Z forward, metres.
"""

from dataclasses import dataclass

import roma
import torch

from .kinematics import forward_kinematics

NUM_BETAS = 10


@dataclass(frozen=True)
class BodyModel:
    """A skeleton whose rest points are `template + shapedirs · betas`.

    Attributes:
        name: shown to users and written to motion files.
        point_template: (29, 3) rest positions of the 24 joints and 5 leaf points at betas = 0.
        point_shapedirs: (29, 3, 10) change of each rest point per unit of each beta.
    """

    name: str
    point_template: torch.Tensor
    point_shapedirs: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "BodyModel":
        return BodyModel(
            self.name,
            self.point_template.to(device, dtype),
            self.point_shapedirs.to(device, dtype),
        )

    def rest_points(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 10) betas -> (B, 29, 3) rest points in metres."""
        return self.point_template + torch.einsum("pcs,bs->bpc", self.point_shapedirs, betas)

    def posed_points(self, poses: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """(B, 24, 3) axis-angle poses and (B, 10) betas -> (B, 29, 3) posed points.

        The root stays at its rest position; add the translation for world positions.
        """
        points, _ = forward_kinematics(roma.rotvec_to_rotmat(poses), self.rest_points(betas))
        return points
