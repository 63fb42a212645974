"""The plain heatmap method: MSRA targets, JointsMSELoss, quarter-offset decoding, HRNet's flip shift."""

from __future__ import annotations

import math

import pytest
import torch

from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.geometry import flip_points
from lrpose_bench.method import build_method

RES = (48, 64)  # --res 64x48: crop 48x64, heatmap 12x16, stride 4, auto sigma 0.5


def _method(**opts):
    m = build_method("heatmap", opts)
    return m, m.geometry(RES)


def test_encode_hand_values():
    m, g = _method(sigma=1.0)
    assert g.heatmap_size == (12, 16) and m.sigma_for(g) == 1.0
    kp = torch.tensor([[[10.0, 6.0], [30.0, 30.0]]])  # heatmap (2.5, 1.5) -> rounded (3, 2)
    t = m.encode(kp, torch.tensor([[1.0, 0.0]]), g)
    hm = t["heatmaps"]
    assert hm.shape == (1, 2, 16, 12)
    assert hm[0, 0, 2, 3].item() == 1.0
    assert hm[0, 0, 2, 4].item() == pytest.approx(math.exp(-0.5))
    assert hm[0, 0, 3, 4].item() == pytest.approx(math.exp(-1.0))
    assert hm[0, 0, 2, 7].item() == 0.0  # outside the 3-sigma window
    assert t["weight"].tolist() == [[1.0, 0.0]] and hm[0, 1].abs().sum() == 0


def test_auto_sigma_and_offmap_weight():
    m, g = _method()
    assert m.sigma_for(g) == 0.5
    kp = torch.tensor([[[-8.0, 10.0], [-5.0, 10.0]]])  # heatmap x -2 (window 1.5 misses) / -1.25 -> -1 (hits)
    t = m.encode(kp, torch.ones(1, 2), g)
    assert t["weight"].tolist() == [[0.0, 1.0]]


def test_decode_hand_map():
    m, g = _method()
    hm = torch.zeros(1, 1, 16, 12)
    hm[0, 0, 7, 5], hm[0, 0, 7, 6], hm[0, 0, 7, 4] = 0.9, 0.5, 0.1  # right neighbour higher
    hm[0, 0, 6, 5] = hm[0, 0, 8, 5] = 0.2  # equal vertical neighbours
    coords, scores = m.decode({"heatmaps": hm}, g)
    assert coords.tolist() == [[[5.25 * 4, 7 * 4]]] and scores.tolist() == [[pytest.approx(0.9)]]
    assert m.coarse({"heatmaps": hm}, g).tolist() == [[[5.0, 7.0]]]


def test_round_trip_within_half_heatmap_pixel():
    m, g = _method()
    gen = torch.Generator().manual_seed(0)
    # heatmap coords whose nearest pixel lies on the map: [-0.49, w-0.51]
    hm_pts = torch.rand(200, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([11.0, 15.0], dtype=torch.float64)
    hm_pts = hm_pts - 0.49 + 0.98 * torch.rand(200, 17, 2, generator=gen, dtype=torch.float64)
    kp = g.crop_to_heatmap.inverse(hm_pts)
    t = m.encode(kp, torch.ones(200, 17, dtype=torch.float64), g)
    coords, scores = m.decode({"heatmaps": t["heatmaps"]}, g)
    err_hm = (g.crop_to_heatmap.forward(coords) - hm_pts).abs()
    assert err_hm.max() <= 0.5 + 1e-9  # quantisation bound; the quarter shift never fires on a perfect target
    assert err_hm.max() > 0.45  # and the bound is attained (the codec is genuinely coarse)
    assert torch.all(scores == 1.0)


def test_loss_values_and_weights():
    m, g = _method()
    kp = torch.tensor([[[10.0, 6.0], [20.0, 40.0]]])
    t = m.encode(kp, torch.ones(1, 2), g)
    assert m.loss({"heatmaps": t["heatmaps"].clone()}, t)["total"].item() == 0.0
    zero = m.loss({"heatmaps": torch.zeros_like(t["heatmaps"])}, t)["total"].item()
    expect = 0.5 * t["heatmaps"].pow(2).sum().item() / t["heatmaps"].numel()
    assert zero == pytest.approx(expect) and zero > 0
    t0 = dict(t, weight=torch.tensor([[1.0, 0.0]]))
    pred = t["heatmaps"].clone()
    pred[0, 1] += 3.0  # error only on the weight-0 joint
    assert m.loss({"heatmaps": pred}, t0)["total"].item() == 0.0


def test_flip_shift_bias():
    """Flipped-back decode under the biased transform: +1/stride px with HRNet's shift, -(1-1/stride) without."""
    gen = torch.Generator().manual_seed(3)
    n = 4000
    hm_pts = torch.rand(n, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([7.0, 11.0], dtype=torch.float64) + 2.0
    for shift, expect in ((True, 0.25), (False, -0.75)):
        m, g = _method(flip_shift=shift, quarter_offset=False)
        kp = g.crop_to_heatmap.inverse(hm_pts)
        flipped = flip_points(kp, g.crop_size[0])[:, list(FLIP_INDEX)]
        out_f = m.encode(flipped, torch.ones(n, 17, dtype=torch.float64), g)
        back = m.flip_back({"heatmaps": out_f["heatmaps"]}, FLIP_INDEX)
        coords, _ = m.decode(back, g)
        err = g.crop_to_heatmap.forward(coords) - hm_pts
        assert err[..., 0].mean().item() == pytest.approx(expect, abs=0.03)
        assert err[..., 1].abs().max() <= 0.5 + 1e-9  # y is untouched by the flip


def test_flip_merge_within_tolerance():
    """Merged flip test with HRNet's shift: within 0.5 + 1/stride heatmap px of the truth (see Options)."""
    m, g = _method()
    gen = torch.Generator().manual_seed(4)
    hm_pts = torch.rand(500, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([7.0, 11.0], dtype=torch.float64) + 2.0
    kp = g.crop_to_heatmap.inverse(hm_pts)
    vis = torch.ones(500, 17, dtype=torch.float64)
    out = {"heatmaps": m.encode(kp, vis, g)["heatmaps"]}
    out_f = {"heatmaps": m.encode(flip_points(kp, g.crop_size[0])[:, list(FLIP_INDEX)], vis, g)["heatmaps"]}
    merged = m.merge_flip(out, m.flip_back(out_f, FLIP_INDEX))
    coords, _ = m.decode(merged, g)
    err = g.crop_to_heatmap.forward(coords) - hm_pts
    assert err[..., 0].abs().max() <= 0.5 + 0.25 + 1e-9


def test_head_shapes():
    m, g = _method()
    head = m.build_head(8, 17, g)
    out = head(torch.randn(2, 8, 16, 12))
    assert set(out) == {"heatmaps"} and out["heatmaps"].shape == (2, 17, 16, 12)


def test_bad_input_message():
    m, g = _method()
    with pytest.raises(ValueError, match="method 'heatmap': keypoints must be"):
        m.encode(torch.zeros(2, 17), torch.ones(2, 17), g)
