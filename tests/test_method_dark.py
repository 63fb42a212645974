"""DARK: sub-pixel Gaussian targets and blur/log/Taylor decoding."""

from __future__ import annotations

import math

import pytest
import torch

from lrpose_bench.geometry import flip_points
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import build_method


def _method(res=(48, 64), **opts):
    m = build_method("dark", opts)
    return m, m.geometry(res)


def _points(n: int, geo, margin: float, seed: int) -> torch.Tensor:
    """Random heatmap-px points at least ``margin`` px inside the map's pixel centres."""
    gen = torch.Generator().manual_seed(seed)
    w, h = geo.heatmap_size
    span = torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin], dtype=torch.float64)
    return torch.rand(n, 17, 2, generator=gen, dtype=torch.float64) * span + margin


def test_encode_subpixel_value():
    m, g = _method(sigma=1.0)
    t = m.encode(torch.tensor([[[10.0, 6.0]]]), torch.ones(1, 1), g)  # heatmap (2.5, 1.5), unrounded
    assert t["heatmaps"][0, 0, 2, 3].item() == pytest.approx(math.exp(-(0.25 + 0.25) / 2), rel=1e-6)
    assert t["heatmaps"][0, 0, 5, 7].item() == pytest.approx(math.exp(-(4.5**2 + 3.5**2) / 2), rel=1e-5)  # no window


def test_msra_target_option_equals_heatmap_method():
    m, g = _method(subpixel_target=False)
    h = build_method("heatmap")
    kp = torch.rand(3, 17, 2) * 40
    vis = torch.ones(3, 17)
    assert torch.equal(m.encode(kp, vis, g)["heatmaps"], h.encode(kp, vis, g)["heatmaps"])


def test_auto_kernel_and_bad_kernel():
    assert _method()[0].kernel_for(_method()[1]) == 3
    m, g = _method(res=(96, 128))
    assert m.kernel_for(g) == 5
    m, g = _method(kernel=4)
    with pytest.raises(ValueError, match="option kernel of method 'dark'"):
        m.kernel_for(g)


def test_round_trip_exact_without_blur():
    m, g = _method(kernel=1)
    pts = _points(100, g, 0.0, 0)
    kp = g.crop_to_heatmap.inverse(pts)
    t = m.encode(kp, torch.ones(100, 17, dtype=torch.float64), g)
    coords, _ = m.decode({"heatmaps": t["heatmaps"]}, g)
    assert (coords - kp).abs().max() < 1e-7  # crop px, joints anywhere on the map


def test_round_trip_with_auto_blur_bounds():
    # 128x96: heatmap 24x32, sigma 1, kernel 5. Measured bound (heatmap px): 0.07 at >= 1 px inside,
    # 0.01 at >= 2 px inside; the heatmap baseline's bound is 0.5.
    m, g = _method(res=(96, 128))
    for margin, bound in ((1.0, 0.07), (2.0, 0.01)):
        pts = _points(200, g, margin, 1)
        kp = g.crop_to_heatmap.inverse(pts)
        t = m.encode(kp, torch.ones(200, 17, dtype=torch.float64), g)
        coords, _ = m.decode({"heatmaps": t["heatmaps"]}, g)
        assert (g.crop_to_heatmap.forward(coords) - pts).abs().max() < bound


def test_decode_hand_map():
    m, g = _method(kernel=1)
    # log-map values f(x) = -(x - 5.3)^2 / 2 along x on row 7: Newton step gives 5.3 exactly
    xs = torch.arange(12, dtype=torch.float64)
    ys = torch.arange(16, dtype=torch.float64)
    hm = torch.exp(-((xs[None, :] - 5.3) ** 2 + (ys[:, None] - 7.0) ** 2) / 2)[None, None]
    coords, score = m.decode({"heatmaps": hm}, g)
    assert coords[0, 0].tolist() == pytest.approx([5.3 * 4, 7.0 * 4], abs=1e-9)
    assert score.item() == pytest.approx(math.exp(-0.09 / 2))


def test_unbiased_option_flip_exact():
    m, g = _method(unbiased=True, kernel=1)
    assert m.unbiased and g.crop_to_heatmap.scale == (11 / 47, 15 / 63)
    pts = _points(50, g, 0.0, 2)
    kp = g.crop_to_heatmap.inverse(pts)
    vis = torch.ones(50, 17, dtype=torch.float64)
    out = {"heatmaps": m.encode(kp, vis, g)["heatmaps"]}
    out_f = {"heatmaps": m.encode(flip_points(kp, g.crop_size[0])[:, list(FLIP_INDEX)], vis, g)["heatmaps"]}
    back = m.flip_back(out_f, FLIP_INDEX)
    assert torch.allclose(back["heatmaps"], out["heatmaps"], atol=1e-12)
    coords, _ = m.decode(m.merge_flip(out, back), g)
    assert (coords - kp).abs().max() < 1e-7


def test_loss_zero_at_perfect_and_weight():
    m, g = _method()
    t = m.encode(torch.rand(2, 17, 2) * 40, torch.ones(2, 17), g)
    assert m.loss({"heatmaps": t["heatmaps"]}, t)["total"].item() == 0.0
    pred = t["heatmaps"] + 0.1
    assert m.loss({"heatmaps": pred}, t)["total"].item() == pytest.approx(0.5 * 0.01, rel=1e-5)
    t0 = dict(t, weight=torch.zeros(2, 17))
    assert m.loss({"heatmaps": pred}, t0)["total"].item() == 0.0


@pytest.mark.parametrize(("x", "refined"), [(1.3, {"fit": 1.3, "skip": 1.0}), (5.3, {"fit": 5.3, "skip": 5.3})])
def test_border_option_skips_peaks_near_the_border_like_darkpose(x: float, refined: dict) -> None:
    # An exact log-quadratic (Gaussian) peak at heatmap x: 'fit' recovers it anywhere; 'skip' leaves peaks
    # within 2 px of the border (x = 1 here) on their integer pixel, as DarkPose and MMPose do.
    from lrpose_bench.codecs import dark_refine

    xs = torch.arange(12, dtype=torch.float64)
    ys = torch.arange(16, dtype=torch.float64)
    hm = torch.exp(-((xs[None, :] - x) ** 2 + (ys[:, None] - 8.0) ** 2) / 2.0)[None, None]
    coarse = torch.tensor([[[float(round(x)), 8.0]]], dtype=torch.float64)
    for border, expected in refined.items():
        out = dark_refine(hm, coarse, kernel=1, border=border)
        assert out[0, 0, 0].item() == pytest.approx(expected, abs=1e-9), border
        assert out[0, 0, 1].item() == pytest.approx(8.0, abs=1e-9)
    with pytest.raises(ValueError, match="border"):
        dark_refine(hm, coarse, border="edge")
