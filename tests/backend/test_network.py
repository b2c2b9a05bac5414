"""The IKOL24 network, its checkpoint loader and the `ikol` front end (CPU, random weights)."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import roma
import torch

from ikol_backend.body.default_skeleton import default_skeleton
from ikol_backend.body.tree import JOINT_NAMES
from ikol_backend.camera import CAMERA_TO_MODEL
from ikol_backend.errors import BackendError
from ikol_backend.frontends.ikol_net import (
    CROP_SIZE, MIN_ROOT_DEPTH_M, IkolNetFrontEnd, bone_length_total, mirror_output, person_crop, place, root_depth,
    run_network,
)
from ikol_backend.ik.ikol_layer import twist_from_rotmats
from ikol_backend.network.checkpoint import load_checkpoint, open_checkpoint
from ikol_backend.network.ikol24 import DEPTH_SCALE_M, IKOL24, LEAF_JOINTS, IkolOutput
from tests.tools.random_ikol import random_network, write_random_checkpoint

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MIRROR = np.diag([-1.0, 1.0, 1.0])


class NotATensor:
    """A class a checkpoint must not contain: loading it would need to run code."""


class MakesFolder:
    """Unpickling this runs code: it creates a folder."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (str(self.path),)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("ikol") / "ikol24.pth")


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """The sample photo (RGB), a box around the person (from its true 2D joints) and its camera."""
    truth = json.loads((SAMPLES / "person.json").read_text())
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / "person.png")), cv2.COLOR_BGR2RGB)
    points = np.array(list(truth["joints_2d"].values()), dtype=float)
    box = (*(points.min(0) - 15), *(points.max(0) + 15))
    cam = truth["camera"]
    camera = np.array([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]])
    return rgb, box, camera


def expected_keys() -> list[str]:
    """The authors' IKOL24 (ResNet-34) state_dict keys, written out from their layer names."""
    def batch_norm(prefix: str) -> list[str]:
        return [f"{prefix}.{name}" for name in
                ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["preact.conv1.weight", *batch_norm("preact.bn1")]
    for layer, blocks in enumerate((3, 4, 6, 3), start=1):
        for block in range(blocks):
            prefix = f"preact.layer{layer}.{block}"
            keys += [f"{prefix}.conv1.weight", *batch_norm(f"{prefix}.bn1"),
                     f"{prefix}.conv2.weight", *batch_norm(f"{prefix}.bn2")]
            if block == 0 and layer > 1:
                keys += [f"{prefix}.downsample.0.weight", *batch_norm(f"{prefix}.downsample.1")]
    for conv, norm in ((0, 1), (3, 4), (6, 7)):
        keys += [f"deconv_layers.{conv}.weight", *batch_norm(f"deconv_layers.{norm}")]
    keys += ["final_layer.weight", "final_layer.bias", "init_shape"]
    for name in ("fc1", "fc2", "decshape", "decphi", "decleaf"):
        keys += [f"{name}.weight", f"{name}.bias"]
    return keys


def test_keys_and_shapes_are_the_authors() -> None:
    state = IKOL24().state_dict()
    assert sorted(state) == sorted(expected_keys())
    assert len(state) == 247
    shapes = {
        "preact.conv1.weight": (64, 3, 7, 7),
        "preact.bn1.running_mean": (64,),
        "preact.layer1.0.conv1.weight": (64, 64, 3, 3),
        "preact.layer2.0.conv1.weight": (128, 64, 3, 3),
        "preact.layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "preact.layer3.5.conv2.weight": (256, 256, 3, 3),
        "preact.layer4.0.downsample.1.running_var": (512,),
        "preact.layer4.2.bn2.running_var": (512,),
        "preact.layer4.2.bn2.num_batches_tracked": (),
        "deconv_layers.0.weight": (512, 256, 4, 4),
        "deconv_layers.1.weight": (256,),
        "deconv_layers.3.weight": (256, 256, 4, 4),
        "deconv_layers.6.weight": (256, 256, 4, 4),
        "deconv_layers.7.running_mean": (256,),
        "final_layer.weight": (1536, 256, 1, 1),
        "final_layer.bias": (1536,),
        "init_shape": (10,),
        "fc1.weight": (1024, 512),
        "fc2.weight": (1024, 1024),
        "decshape.weight": (10, 1024),
        "decphi.weight": (46, 1024),
        "decphi.bias": (46,),
        "decleaf.weight": (20, 1024),
        "decleaf.bias": (20,),
    }
    assert {key: tuple(state[key].shape) for key in shapes} == shapes
    # torchvision's ResNet-34 has 21,797,672 parameters, 513,000 of them in its classifier; its
    # batch norms hold 2 x 8,512 running statistics. Heads: 4,197,376 + 394,752 + 10 + 1,652,812.
    numbers = sum(value.numel() for key, value in state.items() if "num_batches" not in key)
    assert numbers == 21_797_672 - 513_000 + 2 * 8_512 + 4_197_376 + 394_752 + 10 + 1_652_812


def test_loads_the_authors_format_and_wrapped_forms(checkpoint: Path, tmp_path: Path) -> None:
    saved = torch.load(checkpoint, weights_only=True)
    network = load_checkpoint(checkpoint, "cpu")
    assert not network.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, saved[key]), key

    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in saved.items()}}, wrapped)
    torch.testing.assert_close(load_checkpoint(wrapped, "cpu").state_dict(), network.state_dict())
    under_model = tmp_path / "model.pth"
    torch.save({"model": saved}, under_model)
    torch.testing.assert_close(load_checkpoint(under_model, "cpu").state_dict(), network.state_dict())


def test_keys_the_network_does_not_use_are_ignored_with_a_note(checkpoint: Path, tmp_path: Path) -> None:
    """As the authors load their checkpoints (strict=False): extra keys load, named in a note;
    the `smpl.` buffers are the authors' own and pass silently."""
    saved = torch.load(checkpoint, weights_only=True)
    extra = tmp_path / "extra.pth"
    torch.save({**saved, "init_cam": torch.zeros(3), "deccam.weight": torch.zeros(1, 1024)}, extra)
    loaded = open_checkpoint(extra, "cpu")
    assert loaded.unused_keys == ("init_cam", "deccam.weight")
    assert loaded.note == (f"{extra}: the IKOL24 network does not use every key of the "
                           "checkpoint; ignored 2 unused keys: init_cam, deccam.weight")
    for key, value in loaded.network.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert open_checkpoint(checkpoint, "cpu").note is None
    assert IkolNetFrontEnd(extra, torch.device("cpu")).checkpoint_note == loaded.note
    from ikol_backend import doctor

    check = doctor.check_checkpoint(extra)
    assert check.ok and check.message.endswith("million numbers; 2 unused keys ignored")


def test_front_end_on_the_sample_photo(checkpoint: Path, sample) -> None:
    rgb, box, camera = sample
    crop, crop_to_image = person_crop(rgb, box)
    front_end = IkolNetFrontEnd(checkpoint, torch.device("cpu"), flip_test=True, batch_size=2)
    crops = np.stack([crop, crop[:, ::-1], crop])  # three crops: two network batches
    maps = np.stack([crop_to_image] * 3)
    estimate = front_end.estimate(crops, maps, camera)

    shapes = {"joints": (3, 24, 3), "root_camera": (3, 3), "twist": (3, 23, 2),
              "leaf_rotmats": (3, 5, 3, 3), "betas": (3, 10), "keypoints_2d": (3, 24, 2)}
    assert {name: getattr(estimate, name).shape for name in shapes} == shapes
    assert all(np.isfinite(getattr(estimate, name)).all() for name in shapes)
    assert all(getattr(estimate, name).dtype == np.float32 for name in shapes)
    np.testing.assert_allclose(estimate.joints[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(estimate.twist, axis=-1), 1.0, atol=1e-6)
    rotmats = estimate.leaf_rotmats.astype(np.float64)
    np.testing.assert_allclose(rotmats @ rotmats.transpose(0, 1, 3, 2), np.broadcast_to(np.eye(3), rotmats.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rotmats), 1.0, atol=1e-5)
    assert (estimate.root_camera[:, 2] > 0).all()

    # Leaf rotations come in the IK layer's order (joints 15, 22, 23, 10, 11); the network gives
    # joints 10, 11, 15, 22, 23.
    raw = run_network(front_end.network, torch.from_numpy(crops[:1]), flip_test=True).leaf_quats[0]
    raw = raw / raw.norm(dim=-1, keepdim=True)
    expected = roma.unitquat_to_rotmat(raw[[2, 3, 4, 0, 1]][:, [1, 2, 3, 0]])
    np.testing.assert_allclose(estimate.leaf_rotmats[0], expected.numpy(), atol=1e-5)
    # The first and last crop are the same: batching changes nothing.
    for name in shapes:
        np.testing.assert_allclose(getattr(estimate, name)[0], getattr(estimate, name)[2], atol=1e-5)
    # Key points lie in the crop's square in the image; uvd was in [-0.5, 0.5].
    corners = crop_to_image @ np.array([[0, 0, 1], [CROP_SIZE, CROP_SIZE, 1]], dtype=float).T
    assert (estimate.keypoints_2d >= corners[:, 0]).all() and (estimate.keypoints_2d <= corners[:, 1]).all()
    # The random network's joints are spread out (not all at the crop's centre).
    assert estimate.keypoints_2d[0].std(axis=0).min() > 3.0
    # The skeleton has the default skeleton's total bone length (the root depth is chosen so).
    total = bone_length_total(torch.from_numpy(estimate.joints).double())
    reference = bone_length_total(default_skeleton().rest_points(torch.zeros(1, 10)))
    torch.testing.assert_close(total, reference.double().expand(3), atol=1e-4, rtol=0)


def test_network_uvd_is_in_range(sample) -> None:
    rgb, box, _ = sample
    crop, _ = person_crop(rgb, box)
    output = run_network(random_network(1), torch.from_numpy(crop[None]))
    assert output.uvd.shape == (1, 24, 3) and output.uvd.dtype == torch.float32
    assert output.uvd.abs().max() <= 0.5
    spread = output.uvd.std(dim=1)[0]  # peaked heatmaps: joints in different places
    assert spread[0] > 0.05 and spread[1] > 0.05 and spread[2] > 0.002


def test_a_hybrik_checkpoint_is_refused_with_its_differences(tmp_path: Path) -> None:
    state = dict(IKOL24().state_dict())
    del state["decleaf.weight"], state["decleaf.bias"]
    state["final_layer.weight"] = torch.zeros(29 * 64, 256, 1, 1)
    state["final_layer.bias"] = torch.zeros(29 * 64)
    state["init_cam"] = torch.zeros(3)
    state["deccam.weight"] = torch.zeros(1, 1024)
    state["deccam.bias"] = torch.zeros(1)
    path = tmp_path / "hybrik.pth"
    torch.save(state, path)
    with pytest.raises(BackendError) as caught:
        load_checkpoint(path, "cpu")
    assert caught.value.code == "checkpoint_invalid" and caught.value.exit_code == 3
    assert caught.value.message == (
        f"{path}: does not fit the IKOL24 network (ResNet-34 backbone, 24 joints): "
        "2 missing keys: decleaf.weight, decleaf.bias; "
        "3 unexpected keys: init_cam, deccam.weight, deccam.bias; "
        "2 shape mismatches: final_layer.weight is (1856, 256, 1, 1) in the file, "
        "(1536, 256, 1, 1) in the network, final_layer.bias is (1856,) in the file, "
        "(1536,) in the network"
    )


def test_a_resnet50_checkpoint_is_refused_with_its_differences(tmp_path: Path) -> None:
    state = {"preact.conv1.weight": torch.zeros(64, 3, 7, 7)}
    in_channels = 64
    for layer, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for block in range(blocks):
            prefix = f"preact.layer{layer}.{block}"
            state[f"{prefix}.conv1.weight"] = torch.zeros(width, in_channels, 1, 1)
            state[f"{prefix}.conv2.weight"] = torch.zeros(width, width, 3, 3)
            state[f"{prefix}.conv3.weight"] = torch.zeros(4 * width, width, 1, 1)
            if block == 0:
                state[f"{prefix}.downsample.0.weight"] = torch.zeros(4 * width, in_channels, 1, 1)
            in_channels = 4 * width
    state["fc1.weight"] = torch.zeros(1024, 2048)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    with pytest.raises(BackendError) as caught:
        load_checkpoint(path, "cpu")
    assert caught.value.code == "checkpoint_invalid"
    # Shared keys: conv1, each block's conv1 and conv2, three downsample convs, fc1 (37 of 247).
    # Mismatched: every block's conv1 (1x1 here, 3x3 in ResNet-34), the downsamples, fc1.
    assert caught.value.message == (
        f"{path}: does not fit the IKOL24 network (ResNet-34 backbone, 24 joints): "
        "210 missing keys: init_shape, preact.bn1.weight, preact.bn1.bias, preact.bn1.running_mean, "
        "preact.bn1.running_var, preact.bn1.num_batches_tracked, preact.layer1.0.bn1.weight, "
        "preact.layer1.0.bn1.bias, preact.layer1.0.bn1.running_mean, preact.layer1.0.bn1.running_var, "
        "... (200 more); "
        "17 unexpected keys: preact.layer1.0.conv3.weight, preact.layer1.0.downsample.0.weight, "
        "preact.layer1.1.conv3.weight, preact.layer1.2.conv3.weight, preact.layer2.0.conv3.weight, "
        "preact.layer2.1.conv3.weight, preact.layer2.2.conv3.weight, preact.layer2.3.conv3.weight, "
        "preact.layer3.0.conv3.weight, preact.layer3.1.conv3.weight, ... (7 more); "
        "20 shape mismatches: "
        "preact.layer1.0.conv1.weight is (64, 64, 1, 1) in the file, (64, 64, 3, 3) in the network, "
        "preact.layer1.1.conv1.weight is (64, 256, 1, 1) in the file, (64, 64, 3, 3) in the network, "
        "preact.layer1.2.conv1.weight is (64, 256, 1, 1) in the file, (64, 64, 3, 3) in the network, "
        "preact.layer2.0.conv1.weight is (128, 256, 1, 1) in the file, (128, 64, 3, 3) in the network, "
        "preact.layer2.0.downsample.0.weight is (512, 256, 1, 1) in the file, "
        "(128, 64, 1, 1) in the network, "
        "preact.layer2.1.conv1.weight is (128, 512, 1, 1) in the file, (128, 128, 3, 3) in the network, "
        "preact.layer2.2.conv1.weight is (128, 512, 1, 1) in the file, (128, 128, 3, 3) in the network, "
        "preact.layer2.3.conv1.weight is (128, 512, 1, 1) in the file, (128, 128, 3, 3) in the network, "
        "preact.layer3.0.conv1.weight is (256, 512, 1, 1) in the file, (256, 128, 3, 3) in the network, "
        "preact.layer3.0.downsample.0.weight is (1024, 512, 1, 1) in the file, "
        "(256, 128, 1, 1) in the network, ... (10 more)"
    )


def test_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    def refusal(path: Path) -> str:
        with pytest.raises(BackendError) as caught:
            load_checkpoint(path, "cpu")
        assert caught.value.code == "checkpoint_invalid"
        return caught.value.message

    missing = tmp_path / "nowhere.pth"
    assert refusal(missing) == f"IKOL checkpoint file not found: {missing}"
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(256))
    assert refusal(garbage) == f"{garbage}: does not load: it is not a PyTorch checkpoint"
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert refusal(empty) == f"{empty}: does not load: it is not a PyTorch checkpoint, or it is damaged (EOFError)"
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    assert refusal(tensor) == f"{tensor}: holds a Tensor, not a state_dict"
    with_object = tmp_path / "object.pth"
    torch.save({"fc1.weight": torch.zeros(1), "extra": NotATensor()}, with_object)
    assert refusal(with_object) == (
        f"{with_object}: does not load: it holds {__name__}.NotATensor, which would need code to "
        "run; a checkpoint must be a plain state_dict of tensors")


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    made = tmp_path / "made_by_unpickling"
    path = tmp_path / "runs_code.pth"
    torch.save({"fc1.weight": torch.zeros(1), "payload": MakesFolder(made)}, path)
    with pytest.raises(BackendError) as caught:
        load_checkpoint(path, "cpu")
    assert "it holds os.makedirs, which would need code to run" in caught.value.message
    assert not made.exists()
    # The same file loaded without weights_only does run the code: the refusal is what stops it.
    torch.load(path, weights_only=False)
    assert made.is_dir()


def _mirror_name(name: str) -> str:
    side, _, part = name.partition("_")
    return {"left": "right_", "right": "left_"}[side] + part if side in ("left", "right") else name


def test_mirror_matches_the_mirrored_body() -> None:
    """Mirroring outputs equals mirroring a posed body (uvd, twist, leaf rotations)."""
    generator = torch.Generator().manual_seed(3)
    local = roma.rotvec_to_rotmat(0.8 * torch.randn(1, 24, 3, generator=generator, dtype=torch.float64))
    mirror = torch.from_numpy(MIRROR)
    swap = [JOINT_NAMES.index(_mirror_name(name)) for name in JOINT_NAMES]
    mirrored_local = mirror @ local[:, swap] @ mirror  # the mirrored body's local rotations
    rest = default_skeleton().rest_points(torch.zeros(1, 10)).double()  # symmetric about x = 0
    uvd = 0.4 * torch.rand(1, 24, 3, generator=generator, dtype=torch.float64) - 0.2
    quats = roma.rotmat_to_unitquat(local[:, list(LEAF_JOINTS)])[..., [3, 0, 1, 2]]  # (w, x, y, z)
    output = IkolOutput(uvd=uvd, betas=torch.zeros(1, 10, dtype=torch.float64),
                        twist=twist_from_rotmats(local, rest), leaf_quats=quats)
    mirrored = mirror_output(output)

    # A joint at crop pixel x is, in the mirrored crop, its mirror joint at 256 - x.
    pixels = (uvd[..., 0] + 0.5) * CROP_SIZE
    torch.testing.assert_close((mirrored.uvd[..., 0] + 0.5) * CROP_SIZE, CROP_SIZE - pixels[:, swap])
    torch.testing.assert_close(mirrored.uvd[..., 1:], uvd[:, swap, 1:])
    torch.testing.assert_close(mirrored.twist, twist_from_rotmats(mirrored_local, rest))
    leaf_rotmats = roma.unitquat_to_rotmat(mirrored.leaf_quats[..., [1, 2, 3, 0]])
    torch.testing.assert_close(leaf_rotmats, mirrored_local[:, list(LEAF_JOINTS)])
    # Mirroring twice gives the outputs back.
    again = mirror_output(mirrored)
    for before, after in zip((output.uvd, output.twist, output.leaf_quats), (again.uvd, again.twist, again.leaf_quats)):
        torch.testing.assert_close(after, before)


def test_flip_test_of_a_mirrored_crop_is_the_mirrored_flip_test(sample) -> None:
    rgb, box, _ = sample
    crop, _ = person_crop(rgb, box)
    network = random_network(2)
    crops = torch.from_numpy(np.stack([crop, np.ascontiguousarray(crop[:, ::-1])]))
    flipped = run_network(network, crops, flip_test=True)
    plain = run_network(network, crops)
    mirrored_back = mirror_output(IkolOutput(*(value[1:] for value in (
        flipped.uvd, flipped.betas, flipped.twist, flipped.leaf_quats))))
    for name in ("uvd", "betas", "twist", "leaf_quats"):
        torch.testing.assert_close(getattr(mirrored_back, name), getattr(flipped, name)[:1],
                                   atol=1e-5, rtol=1e-4)
    # The flip test averages the crop's own outputs with the mirrored crop's, mirrored back.
    expected_uvd = (plain.uvd[:1] + mirror_output(IkolOutput(plain.uvd[1:], plain.betas[1:],
                                                             plain.twist[1:], plain.leaf_quats[1:])).uvd) / 2
    torch.testing.assert_close(flipped.uvd[:1], expected_uvd, atol=1e-6, rtol=1e-5)
    assert (flipped.uvd[:1] - plain.uvd[:1]).abs().max() > 1e-3  # the flip test changed something


def test_the_crop_is_the_authors_pixel_grid_computed_by_hand() -> None:
    """The authors' crop (HybrIK's get_affine_transform and cv2.warpAffine): the box's centre,
    in integer-centred pixels, lands on crop pixel (128, 128). Worked by hand for two boxes."""
    image = np.random.default_rng(5).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    # Box sides 204.8 -> crop side 256: one crop pixel per image pixel. Centre (100.5, 90.5),
    # in integer-centred pixels (100, 90): image pixel (r, c) is crop pixel (r + 38, c + 28).
    crop, crop_to_image = person_crop(image, (100.5 - 102.4, 90.5 - 60.0, 100.5 + 102.4, 90.5 + 60.0))
    np.testing.assert_array_equal(crop[38:38 + 120, 28:28 + 160], image)
    assert not crop[:38].any() and not crop[38 + 120:].any() and not crop[:, :28].any()
    np.testing.assert_allclose(crop_to_image @ [28.0, 38.0, 1.0], (0.5, 0.5))  # pixel (0, 0)'s centre
    # Box sides 102.4 -> two crop pixels per image pixel. Centre (64.5, 64.5), integer-centred
    # (64, 64): crop = 2 * image + 0, so image pixel (r, c) is crop pixel (2r, 2c) and crop
    # pixel (2r, 2c + 1) lies halfway between image pixels (r, c) and (r, c + 1).
    crop, crop_to_image = person_crop(image, (64.5 - 51.2, 64.5 - 20.0, 64.5 + 51.2, 64.5 + 20.0))
    np.testing.assert_array_equal(crop[0:240:2, 0:256:2], image[:, :128])
    halfway = (image[:, :127].astype(int) + image[:, 1:128]) / 2
    assert np.abs(crop[0:240:2, 1:254:2] - halfway).max() <= 1  # bilinear, rounded
    np.testing.assert_allclose(crop_to_image @ [128.0, 128.0, 1.0], (64.5, 64.5))


def test_crop_and_its_map_back_agree_with_the_pixels() -> None:
    """A bright spot in the image is found in the crop where the map says, at any scale."""
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    spot = (151.5, 102.5)  # the centre of pixel (151, 102), continuous coordinates
    image[102, 151] = 255
    # Box sides 204.8 -> crop side 256: one crop pixel per image pixel; centre on a pixel centre.
    crop, crop_to_image = person_crop(image, (100.1, 40.5, 304.9, 160.5))
    (row, column), = np.argwhere(crop[..., 0] > 250)
    np.testing.assert_allclose(crop_to_image @ [column, row, 1.0], spot, atol=1e-9)

    blob = np.zeros((300, 400, 3), dtype=np.uint8)
    cv2.circle(blob, (160, 110), 6, (255, 255, 255), -1)  # centre (160.5, 110.5) continuous
    for box in ((90.0, 30.0, 170.3, 250.0), (130.2, 95.7, 190.0, 120.1)):  # scale 0.93 and 3.41
        crop, crop_to_image = person_crop(blob, box)
        weights = crop[..., 0].astype(float)
        rows, columns = np.indices(weights.shape)
        centroid = [(weights * columns).sum() / weights.sum(), (weights * rows).sum() / weights.sum()]
        np.testing.assert_allclose(crop_to_image @ [*centroid, 1.0], (160.5, 110.5), atol=0.05)

    points = np.array([[3.0, 7.0], [250.0, 100.0], [128.0, 128.0]])
    crop, crop_to_image = person_crop(blob, (90.0, 30.0, 170.3, 250.0))
    image_to_crop = cv2.invertAffineTransform(crop_to_image)
    in_image = points @ crop_to_image[:, :2].T + crop_to_image[:, 2]
    np.testing.assert_allclose(in_image @ image_to_crop[:, :2].T + image_to_crop[:, 2], points, atol=1e-9)
    with pytest.raises(ValueError, match="x1 > x0"):
        person_crop(blob, (10.0, 10.0, 10.0, 40.0))


def _synthetic_view(root: tuple[float, float, float]) -> tuple[torch.Tensor, ...]:
    """A posed default skeleton at `root` (camera frame) seen through a camera and a crop."""
    rest = default_skeleton().rest_points(torch.zeros(1, 10)).double()[:, :24]
    turn = roma.rotvec_to_rotmat(torch.tensor([0.3, 2.6, -0.2], dtype=torch.float64))
    body_model = (rest - rest[:, :1]) @ turn.T  # pelvis at the origin, model frame
    joints_camera = body_model @ torch.from_numpy(CAMERA_TO_MODEL).T + torch.tensor(root, dtype=torch.float64)
    camera = torch.tensor([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]], dtype=torch.float64)
    projected = joints_camera @ camera.T
    pixels = projected[..., :2] / projected[..., 2:]
    low, high = pixels.amin(dim=1)[0], pixels.amax(dim=1)[0]
    _, crop_to_image = person_crop(np.zeros((720, 1280, 3), np.uint8), (*low.tolist(), *high.tolist()))
    crop_to_image = torch.from_numpy(crop_to_image)[None]
    to_crop = torch.linalg.inv(torch.cat([crop_to_image[0], torch.tensor([[0.0, 0, 1]], dtype=torch.float64)]))
    crop_pixels = torch.cat([pixels, torch.ones_like(pixels[..., :1])], dim=-1) @ to_crop.T
    depth = (joints_camera[..., 2] - root[2]) / DEPTH_SCALE_M
    uvd = torch.cat([crop_pixels[..., :2] / CROP_SIZE - 0.5, depth[..., None]], dim=-1)
    return uvd, crop_to_image, camera, joints_camera, body_model, bone_length_total(rest), pixels


def test_root_depth_recovers_a_known_depth() -> None:
    for root in ((0.3, -0.2, 4.2), (-1.5, 0.4, 9.0), (0.0, 0.0, 1.6)):
        uvd, crop_to_image, camera, joints_camera, body_model, total, pixels = _synthetic_view(root)
        rays = joints_camera / joints_camera[..., 2:]
        depth = root_depth(rays, joints_camera[..., 2] - root[2], total)
        torch.testing.assert_close(depth, torch.tensor([root[2]], dtype=torch.float64), atol=1e-9, rtol=0)

        joints, root_camera, keypoints = place(uvd, crop_to_image, camera, total)
        torch.testing.assert_close(root_camera, torch.tensor([root], dtype=torch.float64), atol=1e-9, rtol=0)
        torch.testing.assert_close(joints, body_model, atol=1e-9, rtol=0)
        torch.testing.assert_close(keypoints, pixels, atol=1e-9, rtol=0)

    # A body 10 % smaller than the reference is placed 10 % further away, same shape.
    uvd, crop_to_image, camera, joints_camera, body_model, total, _ = _synthetic_view((0.3, -0.2, 4.2))
    _, root_camera, _ = place(uvd, crop_to_image, camera, total / 0.9)
    assert abs(root_camera[0, 2].item() / 4.2 - 1 / 0.9) < 0.02
    # Depth differences longer than the whole skeleton: no depth fits; the pelvis goes as near
    # as allowed, MIN_ROOT_DEPTH_M in front of the nearest joint.
    rays = joints_camera / joints_camera[..., 2:]
    relative = torch.linspace(-3.0, 3.0, 24, dtype=torch.float64)[None]
    torch.testing.assert_close(root_depth(rays, relative, total), torch.tensor([3.0 + MIN_ROOT_DEPTH_M],
                                                                                 dtype=torch.float64))


def test_half_precision_is_refused_off_cuda(checkpoint: Path) -> None:
    with pytest.raises(BackendError) as caught:
        IkolNetFrontEnd(checkpoint, torch.device("cpu"), half=True)
    assert caught.value.code == "bad_option" and caught.value.exit_code == 2
    assert caught.value.message == "half precision (--half) needs a CUDA device; the network would run on cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_float32_and_half_agree_with_the_cpu(checkpoint: Path, sample) -> None:
    rgb, box, camera = sample
    crop, crop_to_image = person_crop(rgb, box)
    crops, maps = np.stack([crop] * 4), np.stack([crop_to_image] * 4)
    on_cpu = IkolNetFrontEnd(checkpoint, torch.device("cpu"), flip_test=True).estimate(crops, maps, camera)
    for half, tolerance in ((False, 1e-3), (True, 2e-2)):
        on_cuda = IkolNetFrontEnd(checkpoint, torch.device("cuda"), half=half,
                                  flip_test=True).estimate(crops, maps, camera)
        np.testing.assert_allclose(on_cuda.keypoints_2d, on_cpu.keypoints_2d, atol=tolerance * 100)
        np.testing.assert_allclose(on_cuda.joints, on_cpu.joints, atol=tolerance)
        np.testing.assert_allclose(on_cuda.twist, on_cpu.twist, atol=tolerance)
        np.testing.assert_allclose(on_cuda.betas, on_cpu.betas, atol=tolerance * 10)
