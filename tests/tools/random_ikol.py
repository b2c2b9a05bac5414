"""IKOL24 with random weights, saved in the authors' checkpoint layout: for tests and benchmarks
(no pretrained weights may be committed or downloaded)."""

from pathlib import Path

import torch

from ikol_backend.body.tree import PARENTS
from ikol_backend.network.ikol24 import IKOL24


def random_network(seed: int = 0) -> IKOL24:
    """IKOL24 with random weights, its last layer drawn so that the heatmaps are peaked.

    Each joint's 64 depth channels share most of their weights: the joints spread over the crop
    (a fifth of its side) and over a few centimetres of depth, as a trained network's would.
    """
    torch.manual_seed(seed)
    network = IKOL24().eval()
    with torch.no_grad():
        shared = 1000.0 * torch.randn(24, 1, 256)
        network.final_layer.weight.copy_((shared + 30.0 * torch.randn(24, 64, 256)).reshape(1536, 256, 1, 1))
        network.init_shape.normal_()
    return network


def authors_layout(network: IKOL24) -> dict[str, torch.Tensor]:
    """The state_dict as the authors save it: the network's keys plus their SMPL layer's buffers."""
    state = dict(network.state_dict())
    state["smpl.v_template"] = torch.zeros(6890, 3)
    state["smpl.J_regressor_h36m"] = torch.zeros(17, 6890)
    state["smpl.parents"] = torch.tensor((-1,) + PARENTS[1:])
    state["smpl.children_map"] = torch.zeros(24, dtype=torch.long)
    return state


def write_random_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a random IKOL24 at `path` (.pth) in the authors' layout."""
    torch.save(authors_layout(random_network(seed)), path)
    return path
