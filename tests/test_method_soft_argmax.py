"""The soft-argmax family (IPR, DSNT, Debias-IPR): hand-computed expectations, the debiasing's closed form,
exact-mean targets, losses by hand, round trips at 64x48 and 128x96, flip consistency."""

from __future__ import annotations

import math

import pytest
import torch

from lrpose_bench.codecs import (
    debiased_soft_argmax_2d,
    exact_mean_distribution,
    from_unit,
    soft_argmax_2d,
    to_unit,
)
from lrpose_bench.geometry import flip_points
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import build_method
from lrpose_bench.methods.ipr import SoftArgmaxHead, js_divergence

FAMILY = ("ipr", "dsnt", "debias_ipr")


# ---------------------------------------------------------------------------------------------- primitives
def test_unit_coordinates() -> None:
    p = torch.tensor([[-0.5, -0.5], [11.5, 15.5], [5.5, 7.5], [0.0, 0.0]])
    u = to_unit(p, (12, 16))
    assert torch.allclose(u, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [0.5 / 12, 0.5 / 16]]))
    assert torch.allclose(from_unit(u, (12, 16)), p)
    # a mirror x' = w - 1 - x is u' = 1 - u
    assert torch.allclose(to_unit(flip_points(p, 12), (12, 16))[:, 0], 1.0 - u[:, 0])


def test_soft_argmax_on_a_3x3_map_by_hand() -> None:
    # exp(H) = 7 at (x=2, y=1), 1 elsewhere: C = 15.
    # x: columns 0, 1, 2 hold masses 3, 3, 2 + 7 -> (0*3 + 1*3 + 2*9) / 15 = 21/15 = 1.4
    # y: rows 0, 1, 2 hold masses 3, 9, 3 -> (0*3 + 1*9 + 2*3) / 15 = 1.0
    h = torch.zeros(1, 1, 3, 3)
    h[0, 0, 1, 2] = math.log(7.0)
    coords, probs = soft_argmax_2d(h)
    assert coords[0, 0].tolist() == pytest.approx([1.4, 1.0])
    assert probs.sum().item() == pytest.approx(1.0) and probs[0, 0, 1, 2].item() == pytest.approx(7 / 15)
    # beta scales the logits: the same map at beta 2 with half the logits
    assert soft_argmax_2d(h / 2, beta=2.0)[0][0, 0].tolist() == pytest.approx([1.4, 1.0])
    # the debiased expectation drops the 8 unit-mass background pixels: exactly the peak
    assert debiased_soft_argmax_2d(h)[0, 0].tolist() == pytest.approx([2.0, 1.0])


def test_debias_against_the_closed_form() -> None:
    """A 16x12 map (w=12, h=16): background 0 (mass 1 per pixel under exp), a foreground blob of known
    mass; J = (C J_s - hw c) / (C - hw) must equal both the closed form and the foreground's own mean."""
    w, h = 12, 16
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    beta = 10.0
    # foreground exp(beta H) - 1 = F: a Gaussian blob of total mass 50 around (3.3, 9.6)
    blob = torch.exp(-((xs - 3.3) ** 2 + (ys - 9.6) ** 2) / (2 * 1.2**2))
    fg = 50.0 * blob / blob.sum()
    logits = (torch.log1p(fg) / beta)[None, None]
    c_total = (fg + 1.0).sum()  # C = hw + 50
    assert c_total.item() == pytest.approx(h * w + 50.0)
    j_soft, _ = soft_argmax_2d(logits, beta)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)
    closed = (c_total * j_soft[0, 0] - h * w * centre) / (c_total - h * w)
    fg_mean = torch.stack([(fg * xs).sum(), (fg * ys).sum()]) / fg.sum()
    got = debiased_soft_argmax_2d(logits, beta)[0, 0]
    assert torch.allclose(got, closed, atol=1e-9) and torch.allclose(got, fg_mean, atol=1e-9)
    # the plain soft-argmax is pulled toward the centre by the background's hw/C = 192/242 of the mass
    assert torch.allclose(j_soft[0, 0], (h * w * centre + 50.0 * fg_mean) / c_total, atol=1e-9)
    # large logits (exp(beta H) ~ e^200) do not overflow in float32
    big = torch.zeros(1, 1, h, w)
    big[0, 0, 4, 7] = 20.0
    assert debiased_soft_argmax_2d(big, beta)[0, 0].tolist() == pytest.approx([7.0, 4.0])
    # no foreground at all: bounded (the min-foreground guard), not inf/nan
    flat = debiased_soft_argmax_2d(torch.zeros(2, 3, h, w), beta)
    assert torch.isfinite(flat).all()


def test_exact_mean_distribution() -> None:
    gen = torch.Generator().manual_seed(0)
    c = torch.rand(4, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([11.0, 15.0], dtype=torch.float64)
    d = exact_mean_distribution(c, (12, 16))
    assert d.shape == (4, 17, 16, 12) and torch.allclose(d.sum(dim=(-2, -1)), torch.ones(4, 17, dtype=torch.float64))
    assert int((d > 0).sum(dim=(-2, -1)).max()) <= 4
    mean, _ = soft_argmax_2d(torch.log(d.clamp_min(1e-300)))
    assert torch.allclose(mean, c, atol=1e-9)
    # by hand: (1.25, 0) on a 3x3 map -> 0.75 at x=1, 0.25 at x=2, row 0
    one = exact_mean_distribution(torch.tensor([[[1.25, 0.0]]]), (3, 3))[0, 0]
    assert one.tolist() == [[0.0, 0.75, 0.25], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    # outside the hull of pixel centres: clamped onto it
    out = exact_mean_distribution(torch.tensor([[[-3.0, 7.5]]]), (3, 3))[0, 0]
    assert out.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]


def test_js_divergence_by_hand() -> None:
    # p = (0.5, 0.5 | 0, 0) (as a log-softmax: ~0 mass off its support), q = (0.5, 0 | 0.5, 0)
    q = torch.tensor([[[0.5, 0.0], [0.5, 0.0]]])
    log_p = torch.log(torch.tensor([[[0.5, 0.5], [1e-30, 1e-30]]]))
    # m = (0.5, 0.25, 0.25, 0): KL(p||m) = 0.5 ln(0.5/0.5) + 0.5 ln(0.5/0.25) = 0.5 ln 2, KL(q||m) the same
    assert js_divergence(log_p, q).item() == pytest.approx(0.5 * math.log(2.0), rel=1e-5)
    assert js_divergence(torch.log(q.clamp_min(1e-30)), q).item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------- methods
def test_options_defaults_and_errors() -> None:
    assert build_method("ipr").describe()["options"] == {"beta": 1.0}
    assert build_method("dsnt").describe()["options"] == {"beta": 1.0, "sigma": 1.0, "js_weight": 1.0}
    assert build_method("debias_ipr").describe()["options"] == {"beta": 10.0, "js_weight": 0.0, "sigma": 1.0}
    for name in FAMILY:
        m = build_method(name)
        assert m.unbiased and m.keypoint_score_threshold == 0.01
        with pytest.raises(ValueError, match="beta=0.0 must be a finite number > 0"):
            build_method(name, {"beta": "0"})
        with pytest.raises(ValueError, match="takes a number"):
            build_method(name, {"beta": "hot"})
    with pytest.raises(ValueError, match="sigma=-1.0 must be > 0"):
        build_method("dsnt", {"sigma": "-1"})
    with pytest.raises(ValueError, match="js_weight=-0.5 must be >= 0"):
        build_method("debias_ipr", {"js_weight": "-0.5"})


def test_head_and_debias_init() -> None:
    g = build_method("ipr").geometry((48, 64))
    head = build_method("ipr").build_head(8, 17, g)
    assert isinstance(head, SoftArgmaxHead)
    out = head(torch.randn(2, 8, 16, 12))
    assert out["heatmaps"].shape == (2, 17, 16, 12)
    m = build_method("debias_ipr")
    dh = m.build_head(8, 17, g)
    assert dh.conv.bias.detach() == pytest.approx(torch.full((17,), math.log(2.0) / 10.0), rel=1e-6)
    # exp(beta H) = 2 everywhere at the start: the debiased estimate sits at the map centre
    coords = m.expectation(dh(torch.zeros(1, 8, 16, 12))["heatmaps"])
    assert torch.allclose(coords, torch.tensor([5.5, 7.5]).expand(1, 17, 2), atol=1e-4)


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("res", [(48, 64), (96, 128)])
def test_encode_decode_round_trip(name: str, res: tuple[int, int]) -> None:
    m = build_method(name)
    g = m.geometry(res)
    assert g.heatmap_size == (res[0] // 4, res[1] // 4)
    gen = torch.Generator().manual_seed(0)
    # anywhere in the crop's pixel-centre hull [0, w-1] x [0, h-1] (the soft-argmax's reach, unbiased map)
    kp = torch.rand(64, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([res[0] - 1.0, res[1] - 1.0], dtype=torch.float64)
    t = m.encode(kp, torch.ones(64, 17, dtype=torch.float64), g)
    assert torch.allclose(t["coords"], to_unit(g.crop_to_heatmap.forward(kp), g.heatmap_size))
    coords, scores = m.decode(m.targets_as_outputs(t), g)
    assert (coords - kp).abs().max().item() < 1e-6
    assert torch.all(scores > 0.1)
    # float32, as in training and the oracle
    t32 = m.encode(kp.float(), torch.ones(64, 17), g)
    coords32, _ = m.decode(m.targets_as_outputs(t32), g)
    assert (coords32 - kp.float()).abs().max().item() < 1e-3
    # the perfect outputs cost no coordinate loss
    assert m.loss(m.targets_as_outputs(t), t)["coord"].item() == pytest.approx(0.0, abs=1e-5)


def test_losses_by_hand() -> None:
    # a 4x5 map whose expectation is known: H = log(p), p = 1/2 on two pixels
    m = build_method("ipr")
    h, w = 4, 5
    p = torch.zeros(1, 1, h, w, dtype=torch.float64)
    p[0, 0, 1, 1], p[0, 0, 1, 3] = 0.5, 0.5  # mean (2, 1)
    out = {"heatmaps": torch.log(p.clamp_min(1e-300))}
    target_px = torch.tensor([[[2.5, 2.0]]], dtype=torch.float64)
    tgt = {"coords": to_unit(target_px, (w, h)), "weight": torch.ones(1, 1, dtype=torch.float64)}
    # L1 in normalised units: |2.5 - 2| / 5 and |2 - 1| / 4, mean over the two axes
    assert m.loss(out, tgt)["total"].item() == pytest.approx(0.5 * (0.5 / 5 + 1.0 / 4))
    d = build_method("dsnt", {"js_weight": "0"})
    # DSNT: ||2 (u_hat - u)|| = sqrt((2 * 0.1)^2 + (2 * 0.25)^2)
    assert d.loss(out, tgt)["coord"].item() == pytest.approx(math.hypot(0.2, 0.5), rel=1e-6)
    assert set(d.loss(out, tgt)) == {"coord", "total"}
    # with the regulariser: the Gaussian target of the encoder, JS weighted by lambda
    dj = build_method("dsnt", {"js_weight": "2"})
    g = dj.geometry((48, 64))
    t = dj.encode(torch.tensor([[[20.0, 30.0]]]), torch.ones(1, 1), g)
    assert t["gaussian"].sum().item() == pytest.approx(1.0) and t["gaussian"].shape == (1, 1, 16, 12)
    logits = torch.randn(1, 1, 16, 12, generator=torch.Generator().manual_seed(0))
    terms = dj.loss({"heatmaps": logits}, t)
    js = js_divergence(torch.log_softmax(logits.flatten(-2), -1).view_as(logits), t["gaussian"]).item()
    assert terms["js"].item() == pytest.approx(2.0 * js, rel=1e-5)
    assert terms["total"].item() == pytest.approx(terms["coord"].item() + terms["js"].item(), rel=1e-6)
    # joint weights: a weight-0 joint adds nothing, the mean runs over all joints
    two = {"heatmaps": out["heatmaps"].expand(1, 2, h, w)}
    tgt2 = {"coords": tgt["coords"].expand(1, 2, 2), "weight": torch.tensor([[1.0, 0.0]], dtype=torch.float64)}
    assert m.loss(two, tgt2)["total"].item() == pytest.approx(0.25 * (0.5 / 5 + 1.0 / 4))


def test_loss_trains_the_heatmap() -> None:
    """A few Adam steps on free logits move every family member's decoded joint onto the target."""
    for name in FAMILY:
        m = build_method(name)
        g = m.geometry((48, 64))
        kp = torch.tensor([[[10.3, 40.7], [33.2, 5.9]]])
        t = m.encode(kp, torch.ones(1, 2), g)
        logits = torch.full((1, 2, 16, 12), m.head_bias(), requires_grad=True)
        opt = torch.optim.Adam([logits], lr=0.1)
        for _ in range(60):
            loss = m.loss({"heatmaps": logits}, t)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        coords, _ = m.decode({"heatmaps": logits.detach()}, g)
        assert (coords - kp).abs().max().item() < 1.0, name


@pytest.mark.parametrize("name", FAMILY)
def test_flip_consistency(name: str) -> None:
    m = build_method(name)
    g = m.geometry((48, 64))
    w = g.crop_size[0]
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 17, 16, 12, generator=gen, dtype=torch.float64) * 2.0
    out = {"heatmaps": logits}
    # the mirrored crop's output is the mirrored, joint-swapped map; flip_back undoes it exactly
    mirrored = m.flip_back(out, FLIP_INDEX)
    assert torch.equal(m.flip_back(mirrored, FLIP_INDEX)["heatmaps"], logits)
    # decoding a mirrored map gives the mirrored coordinates in crop px (exact under the unbiased map)
    c, s = m.decode(out, g)
    cm, sm = m.decode(mirrored, g)
    assert torch.allclose(cm, flip_points(c, w)[:, list(FLIP_INDEX)], atol=1e-9)
    assert torch.allclose(sm, s[:, list(FLIP_INDEX)])
    # merging a pass with its own exact flip changes nothing
    back = m.flip_back(mirrored, FLIP_INDEX)
    merged = m.merge_flip(out, back)
    assert torch.allclose(m.decode(merged, g)[0], c, atol=1e-9)
    # the perfect outputs of a crop and of its mirror agree after flip_back + merge
    kp = torch.rand(6, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor([47.0, 63.0], dtype=torch.float64)
    vis = torch.ones(6, 17, dtype=torch.float64)
    ideal = m.targets_as_outputs(m.encode(kp, vis, g))
    ideal_f = m.targets_as_outputs(m.encode(flip_points(kp, w)[:, list(FLIP_INDEX)], vis, g))
    merged = m.merge_flip(ideal, m.flip_back(ideal_f, FLIP_INDEX))
    assert (m.decode(merged, g)[0] - kp).abs().max().item() < 1e-6


def test_merge_averages_the_two_expectations() -> None:
    m = build_method("ipr", {"beta": "3"})
    g = m.geometry((48, 64))
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(2, 17, 16, 12, generator=gen, dtype=torch.float64)
    b = torch.randn(2, 17, 16, 12, generator=gen, dtype=torch.float64) * 3.0
    merged = m.merge_flip({"heatmaps": a}, {"heatmaps": b})
    expect = 0.5 * (m.decode({"heatmaps": a}, g)[0] + m.decode({"heatmaps": b}, g)[0])
    assert torch.allclose(m.decode(merged, g)[0], expect, atol=1e-9)


def test_coarse_is_the_integer_argmax() -> None:
    m = build_method("dsnt")
    g = m.geometry((48, 64))
    h = torch.zeros(1, 2, 16, 12)
    h[0, 0, 3, 7] = 5.0
    h[0, 1, 15, 0] = 1.0
    assert m.coarse({"heatmaps": h}, g).tolist() == [[[7.0, 3.0], [0.0, 15.0]]]
