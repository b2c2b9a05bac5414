"""The IKOL24 network (Zhang et al., AAAI 2023), laid out like the authors' checkpoints.

A ResNet-34 backbone (`preact`, torchvision layer names, no classifier), three 4x4 stride-2
deconvolutions of 256 channels (`deconv_layers`: deconv, batch norm, ReLU three times) and a 1x1
convolution (`final_layer`) to 24 x 64 channels, read as one 64 x 64 x 64 heatmap per joint
(depth, height, width). A softmax over each heatmap and its expectation (soft-argmax) give the
joint's uvd. A global head on the average-pooled backbone features: `fc1` 512 -> 1024, dropout,
`fc2` 1024 -> 1024, dropout (no activation between them, as in the authors' code), then
`decshape` (betas, added to the buffer `init_shape`, the mean shape), `decphi` (twist) and
`decleaf` (leaf rotations).

The network has no camera head: camera-space joints need a root depth from elsewhere (see
`frontends/ikol_net.py`). The authors' checkpoints also hold the buffers of their SMPL layer
under `smpl.`; this module has no SMPL layer (the IK runs in `ik/ikol_layer.py`).
"""

from dataclasses import dataclass

import torch
from torch import nn

NUM_JOINTS = 24
HEATMAP_SIZE = 64  # depth, height and width of each joint's heatmap
INPUT_SIZE = 256  # the crop is INPUT_SIZE x INPUT_SIZE pixels; heatmaps are a quarter of that
DEPTH_SCALE_M = 2.0  # d = 1 is this many metres (the authors' bbox_3d_shape for IKOL: 2 m)
# The joints `decleaf` rotates, in its order (the authors' SMPL layer sets them in index order):
# left and right foot, head, left and right hand.
LEAF_JOINTS: tuple[int, ...] = (10, 11, 15, 22, 23)
BACKBONE_CHANNELS = 512
DECONV_CHANNELS = 256
HEAD_WIDTH = 1024


@dataclass(frozen=True)
class IkolOutput:
    """The raw outputs of IKOL24 for a batch of B crops, all float32.

    Attributes:
        uvd: (B, 24, 3) SMPL joints 0-23 in the crop, each coordinate in [-0.5, 0.5]:
            u to the crop's right and v down as fractions of the crop side about its centre
            (crop pixel = (u + 0.5) * 256), d the depth away from the camera relative to the
            pelvis in units of DEPTH_SCALE_M (so the pelvis has d near 0).
        betas: (B, 10) SMPL shape (the mean shape `init_shape` plus the predicted change).
        twist: (B, 23, 2) (cos, sin) of the twist angle of joints 1-23 about their rest bone,
            not normalised.
        leaf_quats: (B, 5, 4) local rotations of the leaf joints LEAF_JOINTS (10, 11, 15, 22,
            23: feet, head, hands; not the IK layer's order) as quaternions (w, x, y, z), not
            normalised.
    """

    uvd: torch.Tensor
    betas: torch.Tensor
    twist: torch.Tensor
    leaf_quats: torch.Tensor


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (a 1x1 convolution where the shape changes)."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNet34(nn.Module):
    """ResNet-34 without pooling head and classifier: (B, 3, H, W) -> (B, 512, H/32, W/32)."""

    BLOCKS = (3, 4, 6, 3)
    CHANNELS = (64, 128, 256, 512)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = 64
        for index, (blocks, channels) in enumerate(zip(self.BLOCKS, self.CHANNELS)):
            first_stride = 1 if index == 0 else 2
            layer = nn.Sequential(*(
                BasicBlock(in_channels if block == 0 else channels, channels,
                           first_stride if block == 0 else 1)
                for block in range(blocks)
            ))
            setattr(self, f"layer{index + 1}", layer)
            in_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _deconv_layers() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = BACKBONE_CHANNELS
    for _ in range(3):
        layers += [
            nn.ConvTranspose2d(in_channels, DECONV_CHANNELS, 4, 2, 1, bias=False),
            nn.BatchNorm2d(DECONV_CHANNELS),
            nn.ReLU(inplace=True),
        ]
        in_channels = DECONV_CHANNELS
    return nn.Sequential(*layers)


class IKOL24(nn.Module):
    """The network: normalised (B, 3, 256, 256) crops in, `IkolOutput` out.

    Input: RGB crops scaled to [0, 1], then normalised per channel as the authors do (see
    `frontends/ikol_net.py`). Under CUDA autocast the convolutions run in float16; the heatmap
    softmax and the outputs are float32.
    """

    def __init__(self):
        super().__init__()
        self.preact = ResNet34()
        self.deconv_layers = _deconv_layers()
        self.final_layer = nn.Conv2d(DECONV_CHANNELS, NUM_JOINTS * HEATMAP_SIZE, 1)
        self.register_buffer("init_shape", torch.zeros(10))
        self.fc1 = nn.Linear(BACKBONE_CHANNELS, HEAD_WIDTH)
        self.drop1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(HEAD_WIDTH, HEAD_WIDTH)
        self.drop2 = nn.Dropout(0.5)
        self.decshape = nn.Linear(HEAD_WIDTH, 10)
        self.decphi = nn.Linear(HEAD_WIDTH, (NUM_JOINTS - 1) * 2)
        self.decleaf = nn.Linear(HEAD_WIDTH, len(LEAF_JOINTS) * 4)

    def forward(self, images: torch.Tensor) -> IkolOutput:
        batch = images.shape[0]
        features = self.preact(images)
        logits = self.final_layer(self.deconv_layers(features))
        uvd = soft_argmax(logits.reshape(batch, NUM_JOINTS, HEATMAP_SIZE**3).float())

        pooled = features.mean(dim=(2, 3))
        hidden = self.drop2(self.fc2(self.drop1(self.fc1(pooled))))
        return IkolOutput(
            uvd=uvd,
            betas=self.decshape(hidden).float() + self.init_shape,
            twist=self.decphi(hidden).float().reshape(batch, NUM_JOINTS - 1, 2),
            leaf_quats=self.decleaf(hidden).float().reshape(batch, len(LEAF_JOINTS), 4),
        )


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, J, 64^3) heatmap logits (depth, height, width) -> (B, J, 3) uvd in [-0.5, 0.5].

    Each coordinate is the expected heatmap index under the softmax, divided by 64, minus 0.5.
    """
    batch, joints, _ = logits.shape
    probability = logits.softmax(dim=-1).reshape(batch, joints, *(HEATMAP_SIZE,) * 3)
    marginals = (
        probability.sum(dim=(2, 3)),  # over depth and height: along the width (u)
        probability.sum(dim=(2, 4)),  # along the height (v)
        probability.sum(dim=(3, 4)),  # along the depth (d)
    )
    steps = torch.arange(HEATMAP_SIZE, device=logits.device, dtype=logits.dtype) / HEATMAP_SIZE - 0.5
    return torch.stack([(marginal * steps).sum(dim=-1) for marginal in marginals], dim=-1)
