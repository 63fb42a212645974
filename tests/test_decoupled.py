"""The decoupled network of the CAL release: parameter counts, gradient isolation, initialisation, every
backbone both ways, and the errors a user can hit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.engine.runner import build_model
from lrpose_bench.heads import MapHead, MapHeadSpec, offset_head_spec
from lrpose_bench.method import build_method
from lrpose_bench.models import build_backbone
from lrpose_bench.models.assemble import assemble_model, can_split, tail_state


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("backbone", "total", "stage4", "stage4_om", "transition3", "head_hm", "head_om"),
    [
        # Counted on the release's own model (lib/models/pose_hrnet.py + experiments/coco/hrnet/*_128x96_*.yaml).
        ("hrnet_w32", 49_314_131, 20_407_232, 20_407_232, 295_424, 37_681, 38_242),
        ("hrnet_w48", 117_211_683, 45_894_048, 52_115_712, 664_320, 84_161, 752_578),
    ],
)
def test_released_network_parameter_counts_at_128x96(
    backbone: str, total: int, stage4: int, stage4_om: int, transition3: int, head_hm: int, head_om: int
) -> None:
    method = build_method("cal")  # default network: released
    model = build_model(method, method.geometry((96, 128)), backbone, None)
    tail = model.tails["offsets"]
    assert _params(model) == total
    assert _params(model.backbone.stage4) == stage4
    assert _params(tail.stage4) == stage4_om
    assert _params(model.backbone.transition3) == _params(tail.transition3) == transition3
    assert _params(model.head.blocks["heatmaps"]) + _params(model.head.convs["heatmaps"]) == head_hm
    assert _params(model.head.blocks["offsets"]) + _params(model.head.convs["offsets"]) == head_om


def test_w48_offset_stage_is_144_wide_like_the_release() -> None:
    method = build_method("cal")
    model = build_model(method, method.geometry((48, 64)), "hrnet_w48", None)
    out = model(torch.randn(1, 3, 64, 48))
    assert model.tails["offsets"].out_channels == 144
    assert model.head.convs["offsets"].in_channels == 144 and model.head.convs["heatmaps"].in_channels == 48
    assert out["heatmaps"].shape == (1, 17, 16, 12) and out["offsets"].shape == (1, 17, 2, 16, 12)


def _grads_by_part(model: nn.Module, loss_key: str) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    out = model(torch.randn(2, 3, 64, 48))
    out[loss_key].square().mean().backward()
    parts = {
        "trunk": [p for n, p in model.backbone.named_parameters() if not n.startswith(model.backbone.tail_modules)],
        "shared_tail": [p for n, p in model.backbone.named_parameters() if n.startswith(model.backbone.tail_modules)],
        "offset_tail": list(model.tails["offsets"].parameters()),
        "heatmap_head": list(model.head.blocks["heatmaps"].parameters()) + list(model.head.convs["heatmaps"].parameters()),
        "offset_head": list(model.head.blocks["offsets"].parameters()) + list(model.head.convs["offsets"].parameters()),
    }
    return {k: sum(float(p.grad.abs().sum()) if p.grad is not None else 0.0 for p in ps) for k, ps in parts.items()}


@pytest.mark.parametrize("backbone", ["tiny", "hrnet_w32"])
def test_offset_loss_never_reaches_the_heatmap_path(backbone: str) -> None:
    torch.manual_seed(0)
    method = build_method("cal")
    model = build_model(method, method.geometry((48, 64)), backbone, None).train()
    # HRNet's N(0, 0.001) init makes gradients tiny; scale the weights up so "zero" is unambiguous.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.mul_(300.0 if backbone == "hrnet_w32" else 1.0)
    off = _grads_by_part(model, "offsets")
    assert off["shared_tail"] == 0.0 and off["heatmap_head"] == 0.0
    assert off["offset_tail"] > 0 and off["offset_head"] > 0 and off["trunk"] > 0
    hm = _grads_by_part(model, "heatmaps")
    assert hm["offset_tail"] == 0.0 and hm["offset_head"] == 0.0
    assert hm["shared_tail"] > 0 and hm["trunk"] > 0


def test_shared_network_is_two_1x1_heads_on_one_feature_map() -> None:
    method = build_method("cal", {"network": "shared"})
    model = build_model(method, method.geometry((48, 64)), "tiny", None)
    assert not model.decoupled and not hasattr(model.head, "blocks")
    assert set(model.head.convs) == {"heatmaps", "offsets"}
    assert all(conv.kernel_size == (1, 1) for conv in model.head.convs.values())


def _pretrained_file(tmp_path: Path, backbone: str, size: tuple[int, int]) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(123)
    donor = build_backbone(backbone, size)
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in donor.state_dict().items()}
    path = tmp_path / f"{backbone}.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("backbone", ["tiny", "hrnet_w32"])
def test_pretrained_weights_fill_the_heatmap_path_and_leave_the_offset_path_fresh(backbone: str, tmp_path: Path) -> None:
    size = (48, 64)
    path, state = _pretrained_file(tmp_path, backbone, size)
    method = build_method("cal")
    model = build_model(method, method.geometry(size), backbone, path)
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    shared = tail_state(model.backbone)
    fresh = model.tails["offsets"].state_dict()
    assert shared.keys() == fresh.keys()
    weights = [k for k in fresh if k.endswith("weight") and fresh[k].ndim == 4]
    assert weights and not any(torch.equal(fresh[k], shared[k]) for k in weights)
    if backbone == "hrnet_w32":  # the release's init: N(0, 0.001) convolutions
        assert all(float(fresh[k].std()) < 0.002 for k in weights)

    copied = build_model(build_method("cal", {"tail_init": "copy"}), method.geometry(size), backbone, path)
    copy_state = copied.tails["offsets"].state_dict()
    assert all(torch.equal(copy_state[k], shared[k]) for k in shared)


def test_tail_init_copy_refuses_the_wider_w48_offset_stage() -> None:
    method = build_method("cal", {"tail_init": "copy"})
    with pytest.raises(ValueError, match="hrnet_w48.*tail_init=fresh"):
        build_model(method, method.geometry((48, 64)), "hrnet_w48", None)


CASES = [
    ("tiny", (48, 64)), ("tiny", (96, 128)),
    ("hrnet_w32", (48, 64)), ("hrnet_w32", (96, 128)),
    ("resnet50", (96, 128)),  # ResNet needs sides that are multiples of 32: 64x48 is refused by the registry
]


@pytest.mark.parametrize(("backbone", "size"), CASES)
@pytest.mark.parametrize("network", ["released", "shared"])
def test_every_backbone_builds_and_runs_both_ways(backbone: str, size: tuple[int, int], network: str) -> None:
    method = build_method("udp", {"network": network})
    model = build_model(method, method.geometry(size), backbone, None).eval()
    w, h = size
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert out["heatmaps"].shape == (1, 17, h // 4, w // 4)
    assert out["offsets"].shape == (1, 17, 2, h // 4, w // 4)
    assert model.decoupled == (network == "released")


def test_a_backbone_that_cannot_split_is_a_clear_error() -> None:
    class Plain(nn.Module):
        out_channels = 8
        name = "plainnet"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1].repeat(1, 8, 1, 1)

    method = build_method("cal")
    assert not can_split(Plain())
    with pytest.raises(ValueError, match="backbone 'plainnet' cannot split.*network=shared"):
        assemble_model(method, method.geometry((48, 64)), Plain(), 17)
    shared = assemble_model(build_method("cal", {"network": "shared"}), method.geometry((48, 64)), Plain(), 17)
    assert shared(torch.randn(1, 3, 16, 12))["offsets"].shape == (1, 17, 2, 16, 12)


def test_heatmap_two_block_head_is_the_released_head_on_one_output() -> None:
    method = build_method("heatmap", {"head_blocks": 2})
    model = build_model(method, method.geometry((48, 64)), "tiny", None)
    assert len(model.head.blocks["heatmaps"]) == 2 and not model.decoupled
    assert model(torch.randn(1, 3, 64, 48))["heatmaps"].shape == (1, 17, 16, 12)


def test_map_head_spec_rules() -> None:
    assert offset_head_spec("released").decoupled == ("offsets",) and offset_head_spec("released").blocks == 2
    assert offset_head_spec("shared").decoupled == () and offset_head_spec("shared").blocks == 0
    assert offset_head_spec("shared", head_blocks=2).blocks == 2
    with pytest.raises(ValueError, match="not among the maps"):
        MapHeadSpec((("heatmaps", 1),), decoupled=("offsets",))
    with pytest.raises(ValueError, match="tail_init"):
        MapHeadSpec((("heatmaps", 1),), tail_init="warm")
    head = MapHead.from_spec(offset_head_spec("shared"), 8, 17)
    assert set(head.state_dict()) == {"convs.heatmaps.weight", "convs.heatmaps.bias",
                                      "convs.offsets.weight", "convs.offsets.bias"}  # names of older checkpoints


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "cal", "--set", "network=nosuch"], "option network='nosuch' is not one of released, shared"),
        (["--method", "udp", "--set", "network=nosuch"], "option network='nosuch' is not one of released, shared"),
        (["--method", "cal", "--set", "head_blocks=-2"], "option head_blocks=-2 must be >= 0"),
        (["--method", "cal_mgm", "--set", "tail_init=warm"], "option tail_init='warm' is not one of fresh, copy"),
    ],
)
def test_bad_network_options_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", *args, "--res", "64x48", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_methods_verbose_shows_the_network_option() -> None:
    result = CliRunner().invoke(app, ["methods", "--verbose"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "network" in text and "released" in text and "head_blocks" in text
