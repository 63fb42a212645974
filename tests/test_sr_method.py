"""The sr_heatmap method: geometry, codec round trip in low-res crop px, front end, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.method import build_method
from lrpose_bench.methods.sr_heatmap import SRHeatmapMethod
from lrpose_bench.sr.archs import build_sr
from lrpose_bench.sr.weights import load_sr_network, save_sr_weights

TINY_SRRESNET = {"num_feat": 8, "num_block": 1}


def test_geometry_composes_upsampling_and_heatmap_maps() -> None:
    """128x96 crop, x2 -> 256x192 model input, 64x48 heatmap. Crop px x -> high-res (x + 0.5) * 2 - 0.5
    -> heatmap / 4: h = 0.5 x + 0.125 (both axes)."""
    m = SRHeatmapMethod()
    g = m.geometry((96, 128))
    assert (g.crop_size, g.model_input_size, g.heatmap_size) == ((96, 128), (192, 256), (48, 64))
    assert g.crop_to_heatmap.scale == (0.5, 0.5) and g.crop_to_heatmap.offset == (0.125, 0.125)
    assert m.sigma_for(g) == pytest.approx(2.0)  # HRNet's sigma at a 64x48 heatmap
    g4 = SRHeatmapMethod(sr_scale=4).geometry((48, 64))
    # x4: ((x + 0.5) * 4 - 0.5) / 4 = x + 0.375
    assert g4.model_input_size == (192, 256) and g4.heatmap_size == (48, 64)
    assert g4.crop_to_heatmap.scale == (1.0, 1.0) and g4.crop_to_heatmap.offset == (0.375, 0.375)


def test_encode_decode_round_trip_in_low_res_crop_px() -> None:
    """Keypoints at heatmap pixel centres (0.5 x + 0.125 integer: x = 2 k - 0.25) decode exactly; any
    keypoint decodes within the codec's 0.5 heatmap px = 1 low-res crop px per axis."""
    m = SRHeatmapMethod()
    g = m.geometry((96, 128))
    k = torch.arange(17.0)
    exact = torch.stack([2 * (k + 2) - 0.25, 2 * (3 * k + 1) - 0.25], -1)[None]  # x 3.75..35.75, y 1.75..97.75
    vis = torch.ones(1, 17)
    coords, scores = m.decode(m.encode(exact, vis, g), g)
    torch.testing.assert_close(coords, exact)
    assert torch.all(scores > 0.99)
    g_rand = torch.Generator().manual_seed(0)
    kps = torch.rand(4, 17, 2, generator=g_rand) * torch.tensor([90.0, 120.0]) + 3.0
    coords, _ = m.decode(m.encode(kps, torch.ones(4, 17), g), g)
    assert (coords - kps).abs().max() <= 1.0 + 1e-5


def test_bicubic_front_in_the_model_stays_frozen() -> None:
    m = build_method("sr_heatmap", {"sr": "bicubic", "sr_scale": "2"})
    g = m.geometry((24, 32))
    front = m.build_front(g)
    model = torch.nn.Sequential(front, torch.nn.Conv2d(3, 4, 1)).train()
    assert not front.net.training
    out = front(torch.randn(2, 3, 32, 24))
    assert out.shape == (2, 3, 64, 48)
    assert m.artifacts() == {"sr_front": {"model": "bicubic", "scale": 2, "frozen": True, "crop_size": [24, 32],
                                          "output_size": [48, 64]}}
    assert not any(p.requires_grad for p in front.parameters()) and model[1].weight.requires_grad


def test_options_are_checked_when_the_method_is_built() -> None:
    with pytest.raises(ValueError, match="unknown SR model 'sprs'"):
        build_method("sr_heatmap", {"sr": "sprs"})
    with pytest.raises(ValueError, match=r"'srresnet' supports sr_scale \(2, 3, 4\), got 8"):
        build_method("sr_heatmap", {"sr": "srresnet", "sr_scale": 8})
    with pytest.raises(ValueError, match="finetune=true needs a learned SR model"):
        build_method("sr_heatmap", {"finetune": "true"})
    with pytest.raises(ValueError, match="multiples of the output stride 4"):
        SRHeatmapMethod(sr_scale=3).geometry((10, 14))


def test_learned_front_needs_weights_and_loads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRPOSE_CACHE", str(tmp_path / "cache"))
    m = build_method("sr_heatmap", {"sr": "srresnet"})
    with pytest.raises(FileNotFoundError, match="SR model 'srresnet' needs weights: train them with `lrpose sr train"):
        m.build_front(m.geometry((24, 32)))
    path = save_sr_weights(tmp_path / "w.pth", build_sr("srresnet", 2, TINY_SRRESNET), "srresnet", 2, TINY_SRRESNET)
    for finetune in (False, True):
        m = build_method("sr_heatmap", {"sr": "srresnet", "sr_weights": str(path), "finetune": finetune, "train_on": "sr"})
        front = m.build_front(m.geometry((24, 32))).train()
        assert front.net.training is finetune
        assert all(p.requires_grad is finetune for p in front.parameters())
        info = m.artifacts()["sr_front"]
        assert info["weights"] == str(path) and info["frozen"] is not finetune and len(info["weights_sha256"]) == 64


@pytest.mark.slow
def test_sr_train_then_run_end_to_end(tiny_embedded: Path, tmp_path: Path) -> None:
    from lrpose_bench.cli.app import app

    runner = CliRunner()
    weights = tmp_path / "srresnet_x2.pth"
    result = runner.invoke(app, [
        "sr", "train", "--sr", "srresnet", "--sr-scale", "2", "--res", "32x24", "--data", str(tiny_embedded),
        "--steps", "2", "--batch-size", "2", "--net", "num_feat=8", "--net", "num_block=1", "--out", str(weights),
        "--val-size", "4", "--no-progress",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bicubic" in result.output and "PSNR on 4 val crops" in result.output
    net, info = load_sr_network("srresnet", 2, weights)
    assert info["config"] == TINY_SRRESNET

    bad = runner.invoke(app, ["sr", "train", "--sr", "bicubic", "--data", str(tiny_embedded), "--steps", "1"])
    assert bad.exit_code == 1 and "has no weights to train" in bad.output

    out = tmp_path / "runs"
    result = runner.invoke(app, [
        "run", "--method", "sr_heatmap", "--res", "128x96", "--sr", "srresnet", "--sr-weights", str(weights),
        "--epochs", "1", "--data", str(tiny_embedded), "--profile", "quick", "--backbone", "tiny", "--workers", "0",
        "--batch-size", "8", "--hp", "max_train_instances=8", "--hp", "max_val_instances=8", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = next(out.iterdir())
    record = json.loads((run_dir / "record.json").read_text())
    assert record["method"]["options"]["sr"] == "srresnet"
    assert record["input_size"] == [96, 128] and record["model_input_size"] == [192, 256]
    assert record["cost"]["front"]["params"] == sum(p.numel() for p in net.parameters())
    front = json.loads((run_dir / "method.json").read_text())["sr_front"]
    assert front["weights_sha256"] == info["weights_sha256"] and front["frozen"] is True


def test_train_on_highres_trains_on_real_crops_and_super_resolves_only_at_test() -> None:
    """The paper's baseline: training crops are real high-res crops; the front passes them through."""
    import torch

    from lrpose_bench.method import build_method

    method = build_method("sr_heatmap", {"sr_scale": "2"})
    low, high = method.geometry((48, 64)), method.train_geometry((48, 64))
    assert low.crop_size == (48, 64) and high.crop_size == (96, 128)
    assert high.model_input_size == low.model_input_size == (96, 128)
    assert high.heatmap_size == low.heatmap_size == (24, 32)
    # a keypoint at high-res crop px x maps to heatmap px x/4 (biased), and the same image point at
    # low-res crop px (x + 0.5)/2 - 0.5 lands on the same heatmap px
    x = torch.tensor([[[41.0, 17.0]]])
    assert torch.allclose(high.crop_to_heatmap.forward(x), low.crop_to_heatmap.forward((x + 0.5) / 2 - 0.5))
    front = method.build_front(low)
    real = torch.randn(2, 3, 128, 96)
    assert front(real) is real  # a real high-res crop passes through
    assert front(torch.randn(2, 3, 64, 48)).shape == (2, 3, 128, 96)  # low-res crops are super-resolved
    with pytest.raises(ValueError, match="train_on"):
        build_method("sr_heatmap", {"train_on": "lowres"})
