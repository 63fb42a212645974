"""UDP: unbiased transform, disc + offset targets, CombinedTargetMSELoss, blurred argmax + offset decoding."""

from __future__ import annotations

import pytest
import torch

from lrpose_bench.geometry import flip_points
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import build_method


def _method(res=(48, 64), **opts):
    m = build_method("udp", opts)
    return m, m.geometry(res)


def test_geometry_and_auto_values():
    m, g = _method()
    assert m.unbiased and g.crop_to_heatmap.scale == (11 / 47, 15 / 63)
    assert m.radius_for(g) == 0.875 and m.kernels_for(g) == (3, 1)
    m2, g2 = _method(res=(96, 128))
    assert m2.radius_for(g2) == 1.75 and m2.kernels_for(g2) == (7, 3)


def test_encode_hand_values():
    m, g = _method(radius=1.5)
    kp = g.crop_to_heatmap.inverse(torch.tensor([[[4.2, 6.7]]], dtype=torch.float64))
    t = m.encode(kp, torch.ones(1, 1, dtype=torch.float64), g)
    d, o = t["heatmaps"][0, 0], t["offsets"][0, 0]
    assert d[7, 4] == 1 and d[6, 5] == 1  # distances 0.36 and 1.06
    assert d[8, 5] == 0 and d[5, 4] == 0  # distances 1.56 and 1.71
    assert o[0, 7, 4].item() == pytest.approx(0.2 / 1.5) and o[1, 7, 4].item() == pytest.approx(-0.3 / 1.5)
    assert o[0, 0, 0].item() == pytest.approx(4.2 / 1.5)  # offsets cover the whole map
    assert t["weight"].item() == 1.0


def test_round_trip_exact():
    m, g = _method(offset_kernel=1)
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(200, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([47.0, 63.0], dtype=torch.float64)
    t = m.encode(kp, torch.ones(200, 17, dtype=torch.float64), g)
    coords, scores = m.decode({"heatmaps": t["heatmaps"], "offsets": t["offsets"]}, g)
    assert (coords - kp).abs().max() < 1e-9
    assert torch.all(scores > 0)


def test_round_trip_default_kernels_interior():
    # 128x96: heatmap 24x32, R 1.75, kernels 7 / 3: the offset ramp stays exact away from the border
    m, g = _method(res=(96, 128))
    gen = torch.Generator().manual_seed(1)
    pts = torch.rand(200, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([19.0, 27.0], dtype=torch.float64) + 2.0
    kp = g.crop_to_heatmap.inverse(pts)
    t = m.encode(kp, torch.ones(200, 17, dtype=torch.float64), g)
    coords, _ = m.decode({"heatmaps": t["heatmaps"], "offsets": t["offsets"]}, g)
    assert (coords - kp).abs().max() < 1e-9


def test_loss_masks_offsets_to_disc():
    m, g = _method(radius=1.5)
    kp = torch.tensor([[[20.0, 30.0], [10.0, 10.0]]])
    t = m.encode(kp, torch.ones(1, 2), g)
    perfect = {"heatmaps": t["heatmaps"].clone(), "offsets": t["offsets"].clone()}
    assert m.loss(perfect, t)["total"].item() == 0.0
    outside = perfect["offsets"].clone()
    outside[:, :, :, 0, 0] += 5.0  # far from both discs: ignored
    assert m.loss({"heatmaps": perfect["heatmaps"], "offsets": outside}, t)["total"].item() == 0.0
    inside = perfect["offsets"].clone()
    inside[0, 0, 0] += 1.0  # x offsets of joint 0 everywhere: counted on its disc pixels only
    n_disc = t["heatmaps"][0, 0].sum().item()
    got = m.loss({"heatmaps": perfect["heatmaps"], "offsets": inside}, t)
    expect = 0.5 * 2 * n_disc / t["offsets"].numel()
    assert got["offset"].item() == pytest.approx(expect) and got["heatmap"].item() == 0.0
    t0 = dict(t, weight=torch.tensor([[0.0, 1.0]]))
    assert m.loss({"heatmaps": perfect["heatmaps"] * 0 + t["heatmaps"] * torch.tensor([0.0, 1.0])[None, :, None, None],
                   "offsets": inside}, t0)["total"].item() == 0.0


def test_flip_exact():
    m, g = _method(offset_kernel=1)
    gen = torch.Generator().manual_seed(2)
    kp = torch.rand(100, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([47.0, 63.0], dtype=torch.float64)
    vis = torch.ones(100, 17, dtype=torch.float64)
    t = m.encode(kp, vis, g)
    out = {"heatmaps": t["heatmaps"], "offsets": t["offsets"]}
    tf = m.encode(flip_points(kp, g.crop_size[0])[:, list(FLIP_INDEX)], vis, g)
    back = m.flip_back({"heatmaps": tf["heatmaps"], "offsets": tf["offsets"]}, FLIP_INDEX)
    assert torch.allclose(back["heatmaps"], out["heatmaps"]) and torch.allclose(back["offsets"], out["offsets"], atol=1e-12)
    coords, _ = m.decode(m.merge_flip(out, back), g)
    assert (coords - kp).abs().max() < 1e-9


def test_head_and_coarse():
    m, g = _method()
    out = m.build_head(8, 17, g)(torch.randn(2, 8, 16, 12))
    assert out["heatmaps"].shape == (2, 17, 16, 12) and out["offsets"].shape == (2, 17, 2, 16, 12)
    assert m.coarse(out, g).shape == (2, 17, 2)


def test_bad_kernel_message():
    m, g = _method(cls_kernel=2)
    with pytest.raises(ValueError, match="option cls_kernel of method 'udp'"):
        m.decode({"heatmaps": torch.zeros(1, 1, 16, 12), "offsets": torch.zeros(1, 1, 2, 16, 12)}, g)
