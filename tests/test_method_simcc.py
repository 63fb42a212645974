"""SimCC: bins, Gaussian labels, KL loss, argmax decoding, flip of x vectors."""

from __future__ import annotations

import math

import pytest
import torch

from lrpose_bench.geometry import flip_points
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import build_method


def _method(res=(96, 128), **opts):
    m = build_method("simcc", opts)
    return m, m.geometry(res)


def test_auto_values_and_threshold():
    m, g = _method()
    assert m.ratio_for(g) == 2.0 and m.bins_for(g) == (192, 256) and m.sigma_for(g) == 3.0
    m, g = _method(res=(48, 64))
    assert m.ratio_for(g) == 3.0 and m.bins_for(g) == (144, 192) and m.sigma_for(g) == pytest.approx(2.25)
    assert m.keypoint_score_threshold == 0.01


def test_labels_hand_values():
    m, g = _method(sigma=2.0)
    t = m.encode(torch.tensor([[[3.2, 10.0]]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), g)
    lx = t["simcc_x"][0, 0]  # aligned bins: (3.2 + 0.5) * 2 - 0.5 = 6.9 -> rounded to bin 7
    assert lx.sum().item() == pytest.approx(1.0)
    assert int(lx.argmax()) == 7
    assert (lx[8] / lx[7]).item() == pytest.approx(math.exp(-1 / 8))
    assert (lx[4] / lx[7]).item() == pytest.approx(math.exp(-9 / 8))
    m2, g2 = _method(sigma=2.0, aligned_bins=False)
    t2 = m2.encode(torch.tensor([[[3.2, 10.0]]]), torch.ones(1, 1), g2)
    assert int(t2["simcc_x"][0, 0].argmax()) == 6  # SimCC's bins: 3.2 * 2 = 6.4 -> 6


def test_decode_hand_logits():
    m, g = _method()
    x = torch.zeros(1, 1, 192)
    y = torch.zeros(1, 1, 256)
    x[0, 0, 7], y[0, 0, 20] = 5.0, 3.0
    coords, scores = m.decode({"simcc_x": x, "simcc_y": y}, g)
    assert coords.tolist() == [[[7.5 / 2 - 0.5, 20.5 / 2 - 0.5]]]
    py = math.exp(3) / (math.exp(3) + 255)  # the smaller softmax peak
    assert scores.item() == pytest.approx(py, rel=1e-5)


@pytest.mark.parametrize("res,aligned", [((96, 128), True), ((48, 64), True), ((48, 64), False)])
def test_round_trip_bound(res, aligned):
    m, g = _method(res=res, aligned_bins=aligned)
    k = m.ratio_for(g)
    gen = torch.Generator().manual_seed(0)
    w, h = g.crop_size
    kp = torch.rand(200, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64)
    t = m.encode(kp, torch.ones(200, 17, dtype=torch.float64), g)
    assert torch.all(t["weight"] == 1)
    logits = {key: torch.log(v.clamp_min(1e-300)) for key, v in t.items() if key != "weight"}
    coords, _ = m.decode(logits, g)
    err = (coords - kp).abs()
    assert err.max() <= 0.5 / k + 1e-9 and err.max() > 0.4 / k


def test_edge_of_crop_has_a_bin_only_when_aligned():
    kp = torch.tensor([[[-0.45, 5.0]]], dtype=torch.float64)
    vis = torch.ones(1, 1, dtype=torch.float64)
    m, g = _method()
    t = m.encode(kp, vis, g)
    assert t["weight"].item() == 1.0
    assert abs(m.decode(m.targets_as_outputs(t), g)[0][0, 0, 0].item() + 0.45) <= 0.5 / m.ratio_for(g) + 1e-9
    # SimCC's x * k bins: the joint keeps its weight (MMPose keeps a window that overlaps the bins) but its
    # centre (bin -0.9 -> -1) has no bin, so the label is truncated and decodes to bin 0 = crop x 0.
    m2, g2 = _method(aligned_bins=False)
    t2 = m2.encode(kp, vis, g2)
    assert t2["weight"].item() == 1.0 and int(t2["simcc_x"][0, 0].argmax()) == 0


def test_loss():
    m, g = _method()
    t = m.encode(torch.rand(2, 17, 2) * 90, torch.ones(2, 17), g)
    perfect = {k: torch.log(v.double().clamp_min(1e-300)) for k, v in t.items() if k != "weight"}
    td = {k: v.double() for k, v in t.items()}
    assert abs(m.loss(perfect, td)["total"].item()) < 1e-9
    flat = {k: torch.zeros_like(v) for k, v in perfect.items()}
    assert m.loss(flat, td)["total"].item() > 0
    assert m.loss(flat, dict(td, weight=torch.zeros(2, 17, dtype=torch.float64)))["total"].item() == 0.0


@pytest.mark.parametrize("res,aligned", [((96, 128), True), ((48, 64), False)])
def test_flip_back_exact(res, aligned):
    m, g = _method(res=res, aligned_bins=aligned)
    gen = torch.Generator().manual_seed(1)
    w, h = g.crop_size
    kp = torch.rand(50, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64)
    vis = torch.ones(50, 17, dtype=torch.float64)
    t = m.encode(kp, vis, g)
    tf = m.encode(flip_points(kp, w)[:, list(FLIP_INDEX)], vis, g)
    back = m.flip_back({"simcc_x": tf["simcc_x"], "simcc_y": tf["simcc_y"]}, FLIP_INDEX)
    assert torch.allclose(back["simcc_y"], t["simcc_y"])
    # aligned bins: exact reversal; SimCC's bins: exact except the k-1 bins replicated at the end
    end = None if aligned else -int(m.ratio_for(g) - 1)
    a, b = back["simcc_x"][..., :end], t["simcc_x"][..., :end]
    if not aligned:  # the two labels are truncated at different ends: compare shapes relative to the peak
        a, b = a / a.amax(-1, keepdim=True), b / b.amax(-1, keepdim=True)
    assert torch.allclose(a, b, atol=1e-12)
    assert torch.equal(back["simcc_x"].argmax(-1), t["simcc_x"].argmax(-1))


def test_head_shapes():
    m, g = _method(res=(48, 64))
    out = m.build_head(8, 17, g)(torch.randn(2, 8, 16, 12))
    assert out["simcc_x"].shape == (2, 17, 144) and out["simcc_y"].shape == (2, 17, 192)
    assert m.coarse(out, g) is None
    with pytest.raises(ValueError, match="SimCC head built for a 16x12 feature map"):
        m.build_head(8, 17, g)(torch.randn(1, 8, 8, 6))


def test_joint_in_the_first_half_bin_of_the_release_bins_keeps_its_label():
    # SimCC's x * k bins (aligned_bins=False), k = 3: crop x = -0.4 is inside the crop (pixel 0 spans
    # [-0.5, 0.5]) but its bin coordinate -1.2 rounds to -1, off the vector. MMPose's Gaussian mode keeps
    # the joint (its 3-sigma window overlaps the bins); dropping it would lose an in-crop joint.
    m, g = _method(res=(48, 64), aligned_bins=False, sigma=2.0)
    kp = torch.tensor([[[-0.4, 20.0], [500.0, 20.0]]], dtype=torch.float64)
    t = m.encode(kp, torch.ones(1, 2, dtype=torch.float64), g)
    assert t["weight"].tolist() == [[1.0, 0.0]]  # the far joint's window misses the 144 x-bins
    label = t["simcc_x"][0, 0]
    assert float(label.sum()) == pytest.approx(1.0)
    assert int(label.argmax()) == 0  # the truncated Gaussian around -1 peaks at bin 0
    assert float(t["simcc_x"][0, 1].abs().sum()) == 0.0


def test_release_label_centre_is_one_option_away():
    # rounded_labels=False centres the label at the unrounded x * k (SimCC release), True at round(x * k) (MMPose)
    for rounded, centre in ((True, 31.0), (False, 30.6)):
        m, g = _method(res=(48, 64), aligned_bins=False, rounded_labels=rounded, sigma=2.0)
        t = m.encode(torch.tensor([[[10.2, 20.0]]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), g)
        bins = torch.arange(t["simcc_x"].shape[-1], dtype=torch.float64)
        mean = float((t["simcc_x"][0, 0] * bins).sum())
        assert mean == pytest.approx(centre, abs=1e-6)
