"""Backbones, the pose model wrapper, pretrained loading and cost measurement."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from lrpose_bench.models import BACKBONES, PoseModel, build_backbone, hrnet_branches, load_pretrained, model_cost


EXPECTED_CHANNELS = {"tiny": 32, "resnet50": 256, "resnet101": 256, "resnet152": 256, "hrnet_w32": 32, "hrnet_w48": 48}


def test_registry_lists_every_backbone() -> None:
    assert set(BACKBONES) == set(EXPECTED_CHANNELS)
    assert all(isinstance(d, str) and d for d in BACKBONES.values())


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("tiny", (96, 128)),
        ("tiny", (72, 96)),
        ("tiny", (48, 64)),
        ("resnet50", (96, 128)),
        ("resnet50", (64, 64)),
        ("resnet101", (96, 128)),
        ("resnet152", (96, 128)),
        ("hrnet_w32", (96, 128)),
        ("hrnet_w32", (48, 64)),
        ("hrnet_w48", (48, 64)),
    ],
)
def test_output_is_stride_4(name: str, size: tuple[int, int]) -> None:
    model = build_backbone(name, size).eval()
    w, h = size
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert out.shape == (1, EXPECTED_CHANNELS[name], h // 4, w // 4)
    assert model.out_channels == EXPECTED_CHANNELS[name]
    assert model.name == name and model.input_size == size
    assert torch.isfinite(out).all()


def test_hrnet_branch_choice(caplog: pytest.LogCaptureFixture) -> None:
    assert hrnet_branches((96, 128)) == 4
    assert hrnet_branches((48, 64)) == 3  # 48 / 32 is not an integer
    assert hrnet_branches((40, 64)) == 0
    with caplog.at_level(logging.WARNING):
        small = build_backbone("hrnet_w32", (48, 64))
    assert small.num_branches == 3
    assert "3 branches" in caplog.text and "64x48" in caplog.text
    assert build_backbone("hrnet_w32", (96, 128)).num_branches == 4
    # 3-branch stage 4 keeps widths 32, 64, 128 and has no 4th branch
    names = {k for k, _ in small.named_parameters()}
    assert "stage4.0.branches.2.0.conv1.weight" in names
    assert not any(k.startswith("stage4.0.branches.3.") for k in names)


def test_official_hrnet_names_and_shapes() -> None:
    """Spot-check names and shapes against the official pose_hrnet W32 layout."""
    sd = build_backbone("hrnet_w32", (96, 128)).state_dict()
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "conv2.weight": (64, 64, 3, 3),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.3.conv3.weight": (256, 64, 1, 1),
        "transition1.0.0.weight": (32, 256, 3, 3),
        "transition1.1.0.0.weight": (64, 256, 3, 3),
        "transition2.2.0.0.weight": (128, 64, 3, 3),
        "transition3.3.0.0.weight": (256, 128, 3, 3),
        "stage2.0.branches.1.3.conv2.weight": (64, 64, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
        "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),
        "stage3.3.fuse_layers.2.0.0.0.weight": (32, 32, 3, 3),
        "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
        "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert len([k for k in sd if k.startswith("stage3.") and k.endswith("fuse_layers.0.1.0.weight")]) == 4
    # the last stage-4 module fuses only into the stride-4 branch (pose output), as in pose_hrnet
    assert "stage4.2.fuse_layers.1.0.0.0.weight" not in sd
    assert "stage4.1.fuse_layers.1.0.0.0.weight" in sd
    assert not any(k.startswith(("final_layer", "classifier")) for k in sd)


@pytest.mark.parametrize(
    ("name", "size", "multiple"),
    [("resnet50", (48, 64), 32), ("hrnet_w32", (40, 64), 16), ("tiny", (42, 64), 4), ("resnet152", (96, 120), 32)],
)
def test_unsuitable_sizes_name_res_and_multiple(name: str, size: tuple[int, int], multiple: int) -> None:
    with pytest.raises(ValueError) as err:
        build_backbone(name, size)
    msg = str(err.value)
    assert f"--res {size[1]}x{size[0]}" in msg
    assert f"multiples of {multiple}" in msg
    assert name in msg


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(KeyError) as err:
        build_backbone("resnet18", (96, 128))
    msg = str(err.value)
    assert "unknown backbone 'resnet18'" in msg
    for name in BACKBONES:
        assert name in msg


def test_torchvision_resnet_state_dict_loads(tmp_path: Path) -> None:
    import torchvision.models

    reference = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        reference.layer3[2].conv2.weight.fill_(0.125)
        reference.bn1.running_mean.fill_(0.5)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)

    model = build_backbone("resnet50", (96, 128), pretrained=path)
    report = model.pretrained_report
    trunk = [k for k in reference.state_dict() if not k.startswith("fc.")]
    assert report.matched == len(trunk)
    assert report.unexpected == ["fc.bias", "fc.weight"] and report.head == report.unexpected
    # only the three deconvolutions (3 x [conv weight, BN weight/bias/mean/var]) are not pretrained
    assert len(report.missing) == 3 * 5 and report.fresh == report.missing and report.other_missing == []
    assert torch.equal(model.layer3[2].conv2.weight, reference.layer3[2].conv2.weight)
    assert torch.equal(model.bn1.running_mean, torch.full((64,), 0.5))
    assert report.as_dict()["matched"] == len(trunk)


def test_wrapped_hrnet_checkpoint_loads(tmp_path: Path) -> None:
    source = build_backbone("hrnet_w32", (96, 128))
    with torch.no_grad():
        for i, p in enumerate(source.parameters()):
            p.fill_(0.01 * (i % 7))
    state = {"module." + k: v for k, v in source.state_dict().items()}
    state["module.classifier.weight"] = torch.zeros(1000, 2048)
    state["module.incre_modules.0.0.conv1.weight"] = torch.zeros(32, 32, 1, 1)
    path = tmp_path / "hrnet_w32-36af842e.pth"
    torch.save({"state_dict": state, "epoch": 100}, path)

    target = build_backbone("hrnet_w32", (96, 128), pretrained=path)
    report = target.pretrained_report
    assert report.missing == []
    assert report.unexpected == ["classifier.weight", "incre_modules.0.0.conv1.weight"]
    assert report.other_unexpected == []
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k

    # the 3-branch variant (64x48) takes the same file; the 4th branch is reported as unused
    small = build_backbone("hrnet_w32", (48, 64), pretrained=path)
    rep = small.pretrained_report
    assert rep.missing == []
    assert rep.other_unexpected and all(
        k.startswith("transition3.3.") or ".branches.3." in k or ".fuse_layers." in k for k in rep.other_unexpected
    )
    assert torch.equal(small.stage4[0].branches[2][0].conv1.weight, source.stage4[0].branches[2][0].conv1.weight)


def test_model_checkpoint_wrapper_and_shape_mismatch(tmp_path: Path) -> None:
    model = build_backbone("tiny", (48, 64))
    state = dict(model.state_dict())
    path = tmp_path / "tiny.pth"
    torch.save({"model": state}, path)
    assert load_pretrained(build_backbone("tiny", (48, 64)), path, "tiny").matched == len(state)

    state["enc8.0.0.weight"] = torch.zeros(64, 32, 5, 5)
    torch.save(state, path)
    shapes = r"'enc8\.0\.0\.weight' has shape \(64, 32, 5, 5\) in the file but \(64, 32, 3, 3\)"
    with pytest.raises(ValueError, match=shapes):
        load_pretrained(model, path, "tiny")

    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="none of its 1 tensors match"):
        load_pretrained(model, path, "tiny")


def test_missing_weights_file_says_where_to_put_it(tmp_path: Path) -> None:
    path = tmp_path / "weights" / "resnet50.pth"
    with pytest.raises(FileNotFoundError) as err:
        build_backbone("resnet50", (96, 128), pretrained=path)
    msg = str(err.value)
    assert str(path) in msg and "resnet50-0676ba61.pth" in msg and "put the ImageNet weights" in msg
    with pytest.raises(FileNotFoundError, match="hrnet_w48-8ef0771d.pth"):
        load_pretrained(nn.Linear(1, 1), path, "hrnet_w48")


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_pretrained(nn.Linear(1, 1), path, "tiny")


def test_model_cost_counts_params_and_flops() -> None:
    # one 3x3 conv, 3 -> 4 channels, no bias, on an 8x6 (w x h) input: 4*3*9 MACs at each of 48 pixels
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    cost = model_cost(conv, (8, 6), repeats=2)
    assert cost["params"] == 108
    assert cost["gflops"] == pytest.approx(2 * 108 * 48 / 1e9)
    assert cost["gmacs"] == pytest.approx(108 * 48 / 1e9)
    assert cost["latency_ms"] > 0

    model = build_backbone("tiny", (48, 64)).train()
    cost = model_cost(model, (48, 64), repeats=1)
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["gflops"] > 0
    assert model.training  # mode restored


class _DictHead(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 17, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmaps": self.conv(x)}


class _Upsample2(nn.Module):
    """A stand-in super-resolution front: 2x bilinear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def test_pose_model_with_head_and_front() -> None:
    backbone = build_backbone("tiny", (96, 128))
    plain = PoseModel(backbone, _DictHead(backbone.out_channels)).eval()
    assert not plain.has_front
    with torch.no_grad():
        out = plain(torch.randn(2, 3, 128, 96))
    assert set(out) == {"heatmaps"} and out["heatmaps"].shape == (2, 17, 32, 24)

    # low-res 64x48 crop -> x2 front -> 128x96 backbone input -> 32x24 heatmaps
    sr = PoseModel(backbone, _DictHead(backbone.out_channels), front=_Upsample2()).eval()
    assert sr.has_front
    with torch.no_grad():
        out = sr(torch.randn(2, 3, 64, 48).contiguous(memory_format=torch.channels_last))
    assert out["heatmaps"].shape == (2, 17, 32, 24)


def test_channels_last_matches_contiguous() -> None:
    model = build_backbone("tiny", (48, 64)).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
