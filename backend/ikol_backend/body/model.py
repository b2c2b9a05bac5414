"""Body models with one interface: rest joints linear in the shape `betas`, then forward kinematics.

All positions are in the SMPL model frame: Y up, X to the body's left, Z forward, metres.
"""

from dataclasses import dataclass

import roma
import torch

from .kinematics import forward_kinematics
from .tree import NUM_BETAS, PARENTS  # noqa: F401  (NUM_BETAS: also imported from here)


@dataclass(frozen=True)
class SmplMesh:
    """The mesh of an SMPL-format model file, in the layout smplx's `lbs` takes.

    Attributes:
        v_template: (V, 3) rest vertices at betas = 0, metres.
        shapedirs: (V, 3, 10) vertex offset per unit of each beta.
        posedirs: (207, 3V) pose blend shapes (per element of the 23 rotations minus identity).
        J_regressor: (24, V) joints as weighted sums of vertices.
        weights: (V, 24) skinning weights.
        faces: (F, 3) vertex indices of each triangle (int64).
    """

    v_template: torch.Tensor
    shapedirs: torch.Tensor
    posedirs: torch.Tensor
    J_regressor: torch.Tensor
    weights: torch.Tensor
    faces: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "SmplMesh":
        return SmplMesh(
            self.v_template.to(device, dtype),
            self.shapedirs.to(device, dtype),
            self.posedirs.to(device, dtype),
            self.J_regressor.to(device, dtype),
            self.weights.to(device, dtype),
            self.faces.to(device),
        )


@dataclass(frozen=True)
class BodyModel:
    """A skeleton whose rest points are `template + shapedirs · betas`.

    Attributes:
        name: shown to users and written to motion files.
        point_template: (29, 3) rest positions of the 24 joints and 5 leaf points at betas = 0.
        point_shapedirs: (29, 3, 10) change of each rest point per unit of each beta.
        mesh: the skinned mesh, for models loaded from an SMPL-format file; None otherwise.
        gender: "neutral", "male" or "female".
    """

    name: str
    point_template: torch.Tensor
    point_shapedirs: torch.Tensor
    mesh: SmplMesh | None = None
    gender: str = "neutral"

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "BodyModel":
        return BodyModel(
            self.name,
            self.point_template.to(device, dtype),
            self.point_shapedirs.to(device, dtype),
            None if self.mesh is None else self.mesh.to(device, dtype),
            self.gender,
        )

    def rest_points(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 10) betas -> (B, 29, 3) rest points in metres, on the betas' device and dtype."""
        template, shapedirs = self.point_template.to(betas), self.point_shapedirs.to(betas)
        return template + torch.einsum("pcs,bs->bpc", shapedirs, betas)

    def posed_points(self, poses: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """(B, 24, 3) axis-angle poses and (B, 10) betas -> (B, 29, 3) posed points.

        The root stays at its rest position; add the translation for world positions.
        """
        points, _ = forward_kinematics(roma.rotvec_to_rotmat(poses), self.rest_points(betas))
        return points

    def vertices(self, poses: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """(B, 24, 3) axis-angle poses and (B, 10) betas -> (B, V, 3) skinned vertices.

        Linear blend skinning with pose blend shapes (smplx's `lbs`); the root joint stays at
        its rest position, as in `posed_points`. Needs a model with a mesh.
        """
        if self.mesh is None:
            raise ValueError(f"the body model {self.name!r} has no mesh; load an SMPL model file")
        from smplx.lbs import lbs  # the mesh is optional: import only when used

        mesh = self.mesh
        parents = torch.tensor(PARENTS, device=betas.device)
        verts, _ = lbs(
            betas, roma.rotvec_to_rotmat(poses), mesh.v_template, mesh.shapedirs,
            mesh.posedirs, mesh.J_regressor, parents, mesh.weights, pose2rot=False,
        )
        return verts
