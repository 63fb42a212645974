"""Bring your own checkpoint: official HRNet / MMPose key layouts load into our models with identical outputs.

The official key names of pose_hrnet_w32 below are written from the published model definition
(deep-high-resolution-net.pytorch, lib/models/pose_hrnet.py with experiments/coco/hrnet/w32_256x192*.yaml:
stage 2/3/4 with 1/4/3 modules of 2/3/4 branches of 4 BasicBlocks, widths 32/64/128/256; the last module
keeps only the fused stride-4 output; ``final_layer`` a 1x1 conv to 17 joints), not from our code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from lrpose_bench.engine.runner import build_model
from lrpose_bench.method import build_method
from lrpose_bench.models.checkpoint_import import (
    CheckpointImportError,
    hrnet_branches_of,
    load_into,
    read_state_dict,
    to_official,
)

CONV = ("weight",)
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _block(prefix: str, convs: int) -> list[tuple[str, tuple[str, ...]]]:
    """A BasicBlock (2 conv + BN) or Bottleneck (3): ``conv1, bn1, conv2, bn2[, conv3, bn3]``."""
    out = []
    for i in range(1, convs + 1):
        out += [(f"{prefix}.conv{i}", CONV), (f"{prefix}.bn{i}", BN)]
    return out


def _conv_bn(prefix: str) -> list[tuple[str, tuple[str, ...]]]:
    """``Sequential(Conv2d, BatchNorm2d[, ReLU | Upsample])``: entries ``.0`` and ``.1``."""
    return [(f"{prefix}.0", CONV), (f"{prefix}.1", BN)]


# Fuse layers of one HighResolutionModule, as in pose_hrnet's _make_fuse_layers: fuse_layers[i][j] for
# j > i is Sequential(conv1x1, BN, Upsample); for j < i a Sequential of (i - j) Sequential(conv3x3 s2, BN[, ReLU]).
FUSE_3 = ["0.1", "0.2", "1.0.0", "1.2", "2.0.0", "2.0.1", "2.1.0"]
FUSE_4 = [
    "0.1", "0.2", "0.3",
    "1.0.0", "1.2", "1.3",
    "2.0.0", "2.0.1", "2.1.0", "2.3",
    "3.0.0", "3.0.1", "3.0.2", "3.1.0", "3.1.1", "3.2.0",
]  # fmt: skip
FUSE_4_LAST = ["0.1", "0.2", "0.3"]  # the last module: multi_scale_output=False


def official_hrnet_w32_keys() -> set[str]:
    """Every key of pose_hrnet_w32's state dict (17 joints), by hand from the published definition."""
    modules: list[tuple[str, tuple[str, ...]]] = [("conv1", CONV), ("bn1", BN), ("conv2", CONV), ("bn2", BN)]
    for b in range(4):  # layer1: 4 Bottlenecks 64 -> 256, the first with a projection
        modules += _block(f"layer1.{b}", 3)
    modules += _conv_bn("layer1.0.downsample")
    modules += _conv_bn("transition1.0") + _conv_bn("transition1.1.0")  # 256 -> 32; 256 -> 64 (s2)
    modules += _conv_bn("transition2.2.0")  # transition2.0/.1 are None: 64 -> 128 (s2)
    modules += _conv_bn("transition3.3.0")  # 128 -> 256 (s2)
    stages = {2: (1, 2, [["0.1", "1.0.0"]]), 3: (4, 3, [FUSE_3] * 4), 4: (3, 4, [FUSE_4, FUSE_4, FUSE_4_LAST])}
    for s, (n_modules, n_branches, fuses) in stages.items():
        for m in range(n_modules):
            for br in range(n_branches):
                for b in range(4):
                    modules += _block(f"stage{s}.{m}.branches.{br}.{b}", 2)
            for f in fuses[m]:
                modules += _conv_bn(f"stage{s}.{m}.fuse_layers.{f}")
    keys = {f"{name}.{p}" for name, params in modules for p in params}
    return keys | {"final_layer.weight", "final_layer.bias"}


def _randomise_bn(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and weights, so that a wrong mapping changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            elif isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)


def _model(method: str, backbone: str, size: tuple[int, int], seed: int, **options: str) -> torch.nn.Module:
    m = build_method(method, options)
    torch.manual_seed(seed)
    model = build_model(m, m.geometry(size), backbone, None).eval()
    _randomise_bn(model, seed)
    return model


@pytest.fixture(scope="module")
def hrnet_pair() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Our HRNet-W32 heatmap model and its state dict written in the official layout."""
    model = _model("heatmap", "hrnet_w32", (64, 64), seed=1)
    return model, to_official(model.state_dict(), "hrnet")


def test_official_hrnet_w32_key_names(hrnet_pair) -> None:
    model, official = hrnet_pair
    expected = official_hrnet_w32_keys()
    assert set(official) == expected, (sorted(set(official) - expected)[:5], sorted(expected - set(official))[:5])
    assert official["final_layer.weight"].shape == (17, 32, 1, 1)
    assert hrnet_branches_of(official) == 4
    # 28.5 M parameters, as published for pose_hrnet_w32
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 28.5


@pytest.mark.parametrize("fmt", ["hrnet", "mmpose"])
def test_official_layout_loads_with_identical_outputs(hrnet_pair, tmp_path: Path, fmt: str) -> None:
    source, _ = hrnet_pair
    state = to_official(source.state_dict(), fmt)
    path = tmp_path / f"{fmt}.pth"
    if fmt == "mmpose":
        assert "head.final_layer.weight" in state and "backbone.stage4.2.fuse_layers.0.3.1.running_var" in state
        torch.save({"meta": {"dataset_meta": {"num_keypoints": 17}}, "state_dict": state}, path)
    else:
        torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DataParallel prefixes are stripped
    target = _model("heatmap", "hrnet_w32", (64, 64), seed=2)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = target(x)["heatmaps"]
        facts = load_into(target, read_state_dict(path), fmt)
        want, got = source(x)["heatmaps"], target(x)["heatmaps"]
    assert facts["tensors"] == len(state)
    assert not torch.equal(before, want)
    assert torch.equal(got, want)


def test_udp_combined_final_layer_is_split_per_joint() -> None:
    """A 3K-channel final layer ([class map, x offset, y offset] per joint) -> heatmaps K + offsets (K, 2)."""
    source = _model("udp", "tiny", (48, 64), seed=3, network="shared")
    official = to_official(source.state_dict(), "hrnet")
    w = official["final_layer.weight"]
    assert w.shape[0] == 51
    hm = source.state_dict()["head.convs.heatmaps.weight"]
    off = source.state_dict()["head.convs.offsets.weight"]
    assert torch.equal(w[3 * 5], hm[5]) and torch.equal(w[3 * 5 + 1], off[2 * 5]) and torch.equal(w[3 * 5 + 2], off[2 * 5 + 1])
    target = _model("udp", "tiny", (48, 64), seed=4, network="shared")
    load_into(target, official, "hrnet")
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        a, b = source(x), target(x)
    assert torch.equal(a["heatmaps"], b["heatmaps"]) and torch.equal(a["offsets"], b["offsets"])
    # a 17-channel final layer cannot feed UDP's offsets: the error says what to do instead
    heatmap_only = to_official(_model("heatmap", "tiny", (48, 64), seed=5).state_dict(), "hrnet")
    with pytest.raises(CheckpointImportError, match="17 output channels.*--method dark --set unbiased=true"):
        load_into(target, heatmap_only, "hrnet")


def test_unmatched_keys_are_listed(hrnet_pair) -> None:
    _, official = hrnet_pair
    target = _model("heatmap", "hrnet_w32", (64, 64), seed=6)
    broken = dict(official)
    broken["stage5.0.conv.weight"] = torch.zeros(1)
    del broken["stage2.0.branches.0.0.conv1.weight"]
    with pytest.raises(CheckpointImportError) as info:
        load_into(target, broken, "hrnet")
    message = str(info.value)
    assert "1 checkpoint keys map to nothing in the model (first: stage5.0.conv.weight)" in message
    assert "1 model keys get no value (first: backbone.stage2.0.branches.0.0.conv1.weight)" in message
    # the wrong layout: MMPose keys read as the HRNet layout map to nothing
    with pytest.raises(CheckpointImportError, match=r"first: backbone\.conv1\.weight"):
        load_into(target, to_official(target.state_dict(), "mmpose"), "hrnet")


class _NotTensors:
    pass


def test_files_that_are_not_state_dicts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--weights: file not found"):
        read_state_dict(tmp_path / "missing.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointImportError, match="not a state dict: the file holds a list"):
        read_state_dict(tmp_path / "list.pth")
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointImportError, match=r"not a state dict: a dict with keys \[epoch, optimizer\]"):
        read_state_dict(tmp_path / "meta.pth")
    (tmp_path / "pickle.pth").write_bytes(pickle.dumps({"w": _NotTensors()}))
    with pytest.raises(CheckpointImportError, match="could not be read"):
        read_state_dict(tmp_path / "pickle.pth")
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1), "note": "x"}}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointImportError, match=r"entries \['note'\] are not tensors"):
        read_state_dict(tmp_path / "mixed.pth")
