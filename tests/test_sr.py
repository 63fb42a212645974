"""SR front ends: basicsr import, architectures, bicubic convention, weights layouts, crop pairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrpose_bench.data.normalize import normalize
from lrpose_bench.geometry import upsample_map
from lrpose_bench.sr.archs import BicubicUpsample, build_sr, gradient_map
from lrpose_bench.sr.basicsr_compat import LEGACY_MODULE, import_basicsr
from lrpose_bench.sr.front import SRFront, build_sr_front
from lrpose_bench.sr.train import CropPairs, psnr, upsample_affine
from lrpose_bench.sr.weights import load_sr_network, read_sr_weights, save_sr_weights

#: Tiny settings of every learned front end (fast on the CPU).
TINY = {
    "srresnet": {"num_feat": 8, "num_block": 2},
    "esrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "edsr": {"num_feat": 8, "num_block": 2},
    "spsr": {"num_feat": 8, "num_block": 2, "num_grow_ch": 4, "num_branch": 1},
}


@pytest.mark.slow
def test_plain_basicsr_import_line_works_through_the_alias() -> None:
    """In a fresh interpreter: our SR modules do not import basicsr; after the alias, basicsr 1.4.2's own
    failing line (`from torchvision.transforms.functional_tensor import rgb_to_grayscale`) works."""
    code = f"""
import importlib, sys, torch
import lrpose_bench.sr, lrpose_bench.sr.front, lrpose_bench.sr.train, lrpose_bench.methods.sr_heatmap
assert "basicsr" not in sys.modules, "basicsr imported eagerly"
try:
    importlib.import_module("{LEGACY_MODULE}")
    had_module = True
except ModuleNotFoundError:
    had_module = False
from lrpose_bench.sr.basicsr_compat import install_functional_tensor_alias
install_functional_tensor_alias()
from torchvision.transforms.functional_tensor import rgb_to_grayscale
from torchvision.transforms.functional import rgb_to_grayscale as reference
x = torch.rand(3, 4, 5)
assert torch.equal(rgb_to_grayscale(x, num_output_channels=1), reference(x, num_output_channels=1))
print("ok", had_module)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_import_basicsr_gives_its_archs() -> None:
    basicsr = import_basicsr()
    assert basicsr.__version__.startswith("1.4")
    from basicsr.archs.rrdbnet_arch import RRDBNet  # noqa: F401  (importable after import_basicsr)
    assert hasattr(sys.modules[LEGACY_MODULE], "rgb_to_grayscale")


@pytest.mark.parametrize("name", [*TINY, "bicubic"])
@pytest.mark.parametrize("scale", [2, 4])
def test_forward_shapes(name: str, scale: int) -> None:
    net = build_sr(name, scale, TINY.get(name))
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, 12 * scale, 10 * scale)
    assert torch.isfinite(y).all()


def test_spsr_gradient_branch_shapes_and_gradient_map() -> None:
    net = build_sr("spsr", 2, TINY["spsr"])
    sr, grad = net.forward_with_gradient(torch.rand(1, 3, 8, 6))
    assert sr.shape == grad.shape == (1, 3, 16, 12)
    # gradient map of a ramp x -> 3x: central difference 6 inside, sqrt(36 + 1e-6)
    ramp = torch.arange(6.0).mul(3).view(1, 1, 1, 6).expand(1, 1, 4, 6)
    g = gradient_map(ramp)
    assert torch.allclose(g[..., 1:-1, 1:-1], torch.full_like(g[..., 1:-1, 1:-1], 6.0))


def test_unsupported_scale_and_name_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"'spsr' supports scales \(2, 4\), got --sr-scale 3"):
        build_sr("spsr", 3)
    with pytest.raises(ValueError, match="unknown SR model 'swin'.*bicubic"):
        build_sr("swin", 2)


def test_bicubic_equals_torch_bicubic_align_corners_false() -> None:
    x = torch.rand(2, 3, 9, 7)
    for s in (2, 4):
        expected = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
        assert torch.equal(BicubicUpsample(s)(x), expected)


def test_bicubic_follows_the_upsample_map() -> None:
    """High-res pixel x_hr reads the low-res image at x_lr = (x_hr + 0.5) / s - 0.5 (the inverse of
    geometry.upsample_map). On a ramp f(x) = x, x_hr = 6 reads x_lr = 2.75: Keys' kernel (a = -0.75) at
    distances 1.75, 0.75, 0.25, 1.25 from x = 1..4 weighs -9/256, 67/256, 225/256, -27/256, giving
    (-9 + 134 + 675 - 108) / 256 = 2.703125 (a = -0.75 does not reproduce ramps exactly); x_hr = 7
    mirrors it: 3.296875. Pairs of high-res pixels average to the low-res pixel they cover."""
    ramp = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 6, 10)
    hr = BicubicUpsample(2)(ramp)[0, 0, 3]
    source = upsample_map((10, 6), 2).inverse(torch.tensor([[6.0, 0.0], [7.0, 0.0]]))[:, 0]
    assert source.tolist() == [2.75, 3.25]
    assert hr[6].item() == pytest.approx(2.703125, abs=1e-6)
    assert hr[7].item() == pytest.approx(3.296875, abs=1e-6)
    assert torch.allclose(0.5 * (hr[4:16:2] + hr[5:16:2]), torch.arange(2.0, 8.0), atol=1e-5)  # away from borders


def test_front_bicubic_is_denormalise_upsample_clamp_normalise() -> None:
    img = torch.randint(0, 256, (2, 3, 8, 6), dtype=torch.uint8)
    front, info = build_sr_front("bicubic", 2)
    assert info == {"model": "bicubic", "scale": 2}
    out = front(normalize(img))
    rgb = F.interpolate(img.float() / 255, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    expected = normalize((rgb * 255).round().to(torch.uint8))  # via uint8 round trip: within 0.5/255
    assert out.shape == (2, 3, 16, 12)
    assert (out - expected).abs().max() < 0.6 / 255 / 0.224
    assert sum(p.numel() for p in front.parameters()) == 0


def test_frozen_front_stays_in_eval_and_finetune_trains(tmp_path: Path) -> None:
    net = build_sr("srresnet", 2, TINY["srresnet"])
    frozen = SRFront(net, 2, frozen=True).train()
    assert not frozen.net.training and frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    x = torch.randn(1, 3, 8, 6, requires_grad=True)
    assert not frozen(x).requires_grad  # runs under no_grad: no graph through the frozen net
    tuned = SRFront(build_sr("srresnet", 2, TINY["srresnet"]), 2, frozen=False).train()
    assert tuned.net.training
    tuned(torch.randn(1, 3, 8, 6)).square().mean().backward()
    assert tuned.net.conv_first.weight.grad is not None


def _official(tmp_path: Path, name: str, scale: int, payload_key: str | None, rename=None) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(1)
    net = build_sr(name, scale, TINY[name])
    sd = net.state_dict()
    if rename:
        sd = {rename(k): v for k, v in sd.items()}
    path = tmp_path / f"{name}_x{scale}_{payload_key}.pth"
    torch.save(sd if payload_key is None else {payload_key: sd}, path)
    return path, net


@pytest.mark.parametrize("payload_key", ["params", "params_ema", None])
@pytest.mark.parametrize("name,scale", [("srresnet", 4), ("srresnet", 2), ("esrgan", 2), ("esrgan", 4), ("edsr", 2), ("spsr", 4)])
def test_official_layouts_load_with_sizes_read_from_shapes(tmp_path: Path, name: str, scale: int, payload_key: str | None) -> None:
    path, net = _official(tmp_path, name, scale, payload_key)
    loaded, info = load_sr_network(name, scale, path)
    x = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert info["param_key"] == (payload_key or "")
    assert {k: info["config"][k] for k in TINY[name]} == TINY[name]


def test_params_ema_preferred_and_param_key_selects(tmp_path: Path) -> None:
    a, b = build_sr("esrgan", 4, TINY["esrgan"]), build_sr("esrgan", 4, TINY["esrgan"])
    torch.nn.init.constant_(b.conv_last.bias, 0.5)
    path = tmp_path / "both.pth"
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, path)
    assert torch.equal(load_sr_network("esrgan", 4, path)[0].conv_last.bias, b.conv_last.bias)
    assert torch.equal(load_sr_network("esrgan", 4, path, param_key="params")[0].conv_last.bias, a.conv_last.bias)


def test_original_esrgan_names_and_module_prefix_convert(tmp_path: Path) -> None:
    def original(k: str) -> str:
        k = k.replace("body.", "RRDB_trunk.", 1) if k.startswith("body.") else k
        for new, old in (("rdb1", "RDB1"), ("rdb2", "RDB2"), ("rdb3", "RDB3")):
            k = k.replace(f".{new}.", f".{old}.")
        for new, old in (("conv_body", "trunk_conv"), ("conv_up1", "upconv1"), ("conv_up2", "upconv2"), ("conv_hr", "HRconv")):
            k = old + k[len(new):] if k.startswith(new + ".") else k
        return "module." + k

    path, net = _official(tmp_path, "esrgan", 4, None, rename=original)
    assert any(k.startswith("module.RRDB_trunk.0.RDB1.conv1") for k in torch.load(path, weights_only=True))
    loaded, _ = load_sr_network("esrgan", 4, path)
    x = torch.rand(1, 3, 8, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_round_trip_of_our_layout(tmp_path: Path) -> None:
    net = build_sr("srresnet", 2, {"num_feat": 12, "num_block": 3})
    path = save_sr_weights(tmp_path / "sub" / "w.pth", net, "msrresnet", 2, {"num_feat": 12, "num_block": 3})
    assert [p.name for p in path.parent.iterdir()] == ["w.pth"]  # atomic: no temporary left behind
    _, meta, used = read_sr_weights(path)
    assert used == "params" and meta == {"model": "srresnet", "scale": 2, "config": {"num_feat": 12, "num_block": 3}}
    loaded, info = load_sr_network("srresnet", 2, path)
    assert len(info["weights_sha256"]) == 64
    x = torch.rand(1, 3, 6, 4)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_weight_errors_are_one_line_and_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRPOSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"SR model 'srresnet' needs weights: train them with `lrpose sr train") as e:
        build_sr_front("srresnet", 2)
    assert str(tmp_path / "cache" / "weights" / "sr" / "srresnet_x2.pth") in str(e.value)
    path, _ = _official(tmp_path, "srresnet", 4, "params")
    with pytest.raises(ValueError, match=r"are a x4 'srresnet' network, but --sr-scale is 2"):
        load_sr_network("srresnet", 2, path)
    with pytest.raises(ValueError, match=r"do not (look like|fit) .*'esrgan'"):
        load_sr_network("esrgan", 4, path)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"SR weights {bad} could not be read"):
        load_sr_network("srresnet", 2, bad)
    # the default location is used when no path is given
    ours = save_sr_weights(tmp_path / "cache" / "weights" / "sr" / "srresnet_x2.pth", build_sr("srresnet", 2, TINY["srresnet"]),
                           "srresnet", 2, TINY["srresnet"])
    assert build_sr_front("srresnet", 2)[1]["weights"] == str(ours)


def test_upsample_affine_is_the_area_aligned_map() -> None:
    m = np.array([[0.5, 0.1, 3.0], [-0.2, 0.4, -1.0]])
    up = upsample_affine(m, 4)
    p = np.array([[10.0, 20.0], [0.0, 0.0]])
    q_low = p @ m[:, :2].T + m[:, 2]
    q_high = p @ up[:, :2].T + up[:, 2]
    np.testing.assert_allclose(q_high, (q_low + 0.5) * 4 - 0.5)


def _ramp_root(tmp_path: Path) -> tuple[Path, Path]:
    """A COCO file with one 256x400 image whose colour rises 1 per px along x, one person box."""
    images = tmp_path / "img"
    images.mkdir()
    img = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 400, 0), 3, 2)
    cv2.imwrite(str(images / "a.png"), img)
    kps = [128.0, 200.0, 2] + [0] * 48
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 256, "height": 400}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [28, 100, 200, 200],
                            "area": 40000.0, "num_keypoints": 1, "keypoints": kps}],
           "categories": [{"id": 1, "name": "person"}]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(doc))
    return ann, images


@pytest.mark.parametrize("protocol", ["direct", "antialias"])
def test_crop_pairs_are_area_aligned(tmp_path: Path, protocol: str) -> None:
    """On a ramp, bilinear sampling is exact: each low-res pixel equals the mean of the two high-res
    pixels it covers (x2). A pair cut with the high-res crop at s * (low-res coords) would be off by
    a quarter low-res px = 250/24/4 ~ 2.6 grey levels."""
    ann, images = _ramp_root(tmp_path)
    pairs = CropPairs(ann, images, (24, 32), 2, protocol)
    low, high = pairs.pair(0)
    assert low.shape == (32, 24, 3) and high.shape == (64, 48, 3)
    mean_hr = 0.5 * (high[:, 0::2, 0].astype(float) + high[:, 1::2, 0].astype(float))
    rows = slice(2, 30)
    np.testing.assert_allclose(low[rows, 1:-1, 0].astype(float), mean_hr[2 * rows.start:2 * rows.stop:2, 1:-1], atol=1.01)
    slope = np.diff(low[16, :, 0].astype(float)).mean()
    assert slope == pytest.approx(250 / 24, abs=0.2)  # box 200 px wide x 1.25 padding over 24 px


def test_psnr_hand_values() -> None:
    t = torch.zeros(1, 3, 2, 2)
    assert psnr(t + 0.1, t).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr(t + 2.0, t).item() == pytest.approx(0.0, abs=1e-4)  # clamped to 1 -> mse 1
