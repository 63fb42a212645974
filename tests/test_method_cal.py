"""CAL and CAL+MGM (methods/cal.py): targets by hand, round trips, flips, loss masking, GMM stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrpose_bench.geometry import flip_points
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import Stage, build_method
from lrpose_bench.mixture import render_mask

RES = (48, 64)  # --res 64x48 -> heatmap 12x16 (w x h); unbiased map: x * 11/47, y * 15/63


def _kp_from_hm(method, geometry, hm_xy) -> torch.Tensor:
    return geometry.crop_to_heatmap.inverse(torch.tensor(hm_xy, dtype=torch.float64))


def _one_joint(target: str):
    m = build_method("cal", {"target": target, "radius": 2.0, "sigma": 1.0})
    g = m.geometry(RES)
    assert g.heatmap_size == (12, 16)
    kp = _kp_from_hm(m, g, [[[5.3, 7.6]]])
    return m, g, m.encode(kp, torch.ones(1, 1), g)


@pytest.mark.parametrize(
    "target, expected",
    [
        # pixels (5,8): d^2 = 0.25; (7,7): d^2 = 3.25 (inside R=2); (7,9): d^2 = 4.85 (outside R, inside 3 sigma);
        # (9,7): |dx| = 3.7 > 3 sigma, d^2 = 3.7^2 + 0.6^2 = 14.05
        ("gaussian_disc", {(5, 8): math.exp(-0.125), (7, 7): math.exp(-3.25 / 2), (7, 9): 0.0, (9, 7): 0.0}),
        ("disc", {(5, 8): 1.0, (7, 7): 1.0, (7, 9): 0.0, (9, 7): 0.0}),
        # the release draws its Gaussian over the whole map (lib/utils/image.py draw_dense_reg)
        ("subpixel_gaussian", {(5, 8): math.exp(-0.125), (7, 7): math.exp(-3.25 / 2), (7, 9): math.exp(-4.85 / 2),
                               (9, 7): math.exp(-14.05 / 2)}),
    ],
)
def test_targets_by_hand(target: str, expected: dict) -> None:
    _, _, t = _one_joint(target)
    hm = t["heatmaps"][0, 0]
    for (x, y), value in expected.items():
        assert hm[y, x].item() == pytest.approx(value, abs=1e-9), (target, x, y)


def test_offsets_in_disc_and_zero_outside() -> None:
    _, _, t = _one_joint("gaussian_disc")
    off, mask = t["offsets"][0, 0], t["offset_mask"][0, 0]
    assert off[:, 8, 5].tolist() == pytest.approx([(5.3 - 5) / 1.5, (7.6 - 8) / 1.5], abs=1e-9)
    assert off[:, 7, 7].tolist() == pytest.approx([(5.3 - 7) / 1.5, (7.6 - 7) / 1.5], abs=1e-9)
    assert mask[8, 5] == 1 and mask[7, 7] == 1 and mask[9, 7] == 0
    assert off[:, 9, 7].tolist() == [0.0, 0.0]
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
    inside = ((xs - 5.3) ** 2 + (ys - 7.6) ** 2) <= 4.0
    assert torch.equal(mask.bool(), inside)
    assert (off[:, ~inside] == 0).all()
    assert t["centres"][0, 0].tolist() == pytest.approx([5.3, 7.6], abs=1e-12)


def test_weight_zero_for_invisible_and_far_off_map() -> None:
    m = build_method("cal")
    g = m.geometry(RES)
    kp = _kp_from_hm(m, g, [[[5.0, 5.0], [5.0, 5.0], [-4.5, 5.0], [-3.5, 5.0]]])
    t = m.encode(kp, torch.tensor([[1.0, 0.0, 1.0, 1.0]]), g)
    assert t["weight"].tolist() == [[1.0, 0.0, 0.0, 1.0]]  # radius 4: -4.5 misses the map, -3.5 touches it
    assert t["heatmaps"][0, 1].abs().sum() == 0 and t["offset_mask"][0, 2].sum() == 0


@pytest.mark.parametrize("target", ["gaussian_disc", "disc", "subpixel_gaussian"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_decode_round_trip(target: str, dtype: torch.dtype) -> None:
    m = build_method("cal", {"target": target})
    for res in [(48, 64), (96, 128)]:
        g = m.geometry(res)
        gen = torch.Generator().manual_seed(1)
        kp = (torch.rand(8, 17, 2, generator=gen, dtype=torch.float64) * torch.tensor(res, dtype=torch.float64)
              - 0.5).to(dtype)
        t = m.encode(kp, torch.ones(8, 17), g)
        coords, scores = m.decode(t, g)
        err_hm = (g.crop_to_heatmap.forward(coords.double()) - g.crop_to_heatmap.forward(kp.double())).abs().max()
        assert err_hm.item() < 1e-4
        assert coords.shape == (8, 17, 2) and scores.shape == (8, 17) and (scores > 0).all()
        assert torch.equal(m.coarse(t, g), torch.floor(t["centres"] + 0.5).to(t["centres"].dtype)) or target == "disc"


@pytest.mark.parametrize("target", ["gaussian_disc", "disc", "subpixel_gaussian"])
def test_flip_consistency(target: str) -> None:
    m = build_method("cal", {"target": target})
    g = m.geometry(RES)
    kp = torch.rand(3, 17, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 40 + 3
    vis = torch.ones(3, 17)
    t = m.encode(kp, vis, g)
    kp_f = flip_points(kp, RES[0])[:, list(FLIP_INDEX)]
    t_f = m.encode(kp_f, vis, g)
    back = m.flip_back(t_f, FLIP_INDEX)
    assert torch.allclose(back["heatmaps"], t["heatmaps"], atol=1e-9)
    assert torch.allclose(back["offsets"], t["offsets"], atol=1e-9)
    outputs = {k: t[k] for k in ("heatmaps", "offsets")}
    coords, _ = m.decode(m.merge_flip(outputs, back), g)
    assert torch.allclose(coords, kp, atol=1e-6)


def test_loss_is_masked_by_the_disc() -> None:
    m = build_method("cal", {"radius": 2.0, "sigma": 1.0, "offset_weighting": "disc"})
    g = m.geometry(RES)
    t = m.encode(_kp_from_hm(m, g, [[[5.3, 7.6], [2.0, 2.0]]]), torch.tensor([[1.0, 0.0]]), g)
    out = {k: v.clone() for k, v in t.items()}
    out["offsets"][0, 0, 0, 9, 7] += 5.0  # outside the disc
    out["offsets"][0, 1, 0, 2, 2] += 5.0  # a joint with weight 0
    loss = m.loss(out, t)
    assert loss["offset"].item() == 0.0 and loss["total"].item() == 0.0
    out["offsets"][0, 0, 0, 8, 5] += 0.3  # inside the disc
    n_active = t["offset_mask"][0, 0].sum().item()
    # default reduction: the mean over every (joint, x/y, pixel) entry: B=1, K=2, 2 channels, 16x12 px
    off_expected = 0.3 / (2 * 2 * 16 * 12)
    assert m.loss(out, t)["offset"].item() == pytest.approx(off_expected)
    masked = build_method("cal", {"radius": 2.0, "sigma": 1.0, "offset_reduction": "mask", "offset_weighting": "disc"})
    assert masked.loss(out, t)["offset"].item() == pytest.approx(0.3 / (2 * n_active))
    out["heatmaps"][0, 0, 0, 0] += 0.5
    loss = m.loss(out, t)
    hm_expected = 0.25 / (2 * 16 * 12)
    assert loss["heatmap"].item() == pytest.approx(hm_expected)
    assert loss["total"].item() == pytest.approx(0.5 * hm_expected + 0.7 * off_expected)


def test_target_offset_weighting_weighs_pixels_by_the_heatmap_target() -> None:
    m = build_method("cal", {"radius": 2.0, "sigma": 1.0, "offset_weighting": "target"})
    g = m.geometry(RES)
    t = m.encode(_kp_from_hm(m, g, [[[5.3, 7.6]]]), torch.ones(1, 1), g)
    out = {k: v.clone() for k, v in t.items()}
    out["offsets"][0, 0, 0, 9, 7] += 5.0  # outside the disc: no weight
    assert m.loss(out, t)["offset"].item() == 0.0
    out["offsets"][0, 0, 0, 8, 5] += 0.3  # pixel (5, 8): d^2 = 0.25 -> G = exp(-0.125)
    out["offsets"][0, 0, 1, 7, 7] += 0.3  # pixel (7, 7): d^2 = 3.25 -> G = exp(-1.625)
    expected = 0.3 * (math.exp(-0.125) + math.exp(-1.625)) / (2 * 16 * 12)
    assert m.loss(out, t)["offset"].item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="offset_weighting='ring'"):
        build_method("cal", {"offset_weighting": "ring"})


def test_bad_options_are_clear() -> None:
    with pytest.raises(ValueError, match="target='blob'"):
        build_method("cal", {"target": "blob"})
    with pytest.raises(ValueError, match="stage_split"):
        build_method("cal_mgm", {"stage_split": "1.0"})
    with pytest.raises(ValueError, match="mask_size"):
        build_method("cal_mgm", {"mask_size": "6"})


def test_auto_sigma_by_resolution() -> None:
    m = build_method("cal")
    assert m.sigma_for(m.geometry((96, 128)).heatmap_size) == pytest.approx(1.0)
    assert m.sigma_for(m.geometry((48, 64)).heatmap_size) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ MGM
def _shifted_batches(m, g, shifts: torch.Tensor, n_batches: int = 3):
    """Batches whose 'predicted' heatmaps are the targets of joints moved by ``shifts`` (heatmap px)."""
    gen = torch.Generator().manual_seed(5)
    batches = []
    for _ in range(n_batches):
        kp = torch.rand(4, 17, 2, generator=gen, dtype=torch.float64) * 30 + 8
        vis = torch.ones(4, 17)
        t = m.encode(kp, vis, g)
        moved = g.crop_to_heatmap.inverse(t["centres"] + shifts)
        out = m.encode(moved, vis, g)
        batches.append(({"heatmaps": out["heatmaps"], "offsets": out["offsets"]}, t,
                        {"keypoints": kp, "visibility": vis}))
    return batches


def test_mgm_stages_fit_and_loss() -> None:
    m = build_method("cal_mgm", {"n_components": 1, "stage_split": 0.25})
    assert [(s.name, s.fraction) for s in m.stages()] == [("coarse", 0.25), ("mgm", 0.75)]
    g = m.geometry(RES)
    shifts = torch.tensor([1.0, -0.6], dtype=torch.float64)
    batches = _shifted_batches(m, g, shifts)
    assert m.begin_stage(Stage("coarse", 0.25), lambda: iter(batches)) == {"mgm": "off"}
    out, t, _ = batches[0]
    assert torch.equal(m.offset_weighting(out, t), t["heatmaps"] * t["offset_mask"])  # stage 1: plain CAL's
    facts = m.begin_stage(Stage("mgm", 0.75), lambda: iter(batches))
    assert facts["mgm_fitted"] and facts["mgm_n_samples"] == 3 * 4 * 17
    # one component: the mean is the sample mean of argmax - joint
    errs = torch.cat([torch.floor(b[1]["centres"] + shifts + 0.5) - b[1]["centres"] for b in batches]).reshape(-1, 2)
    assert np.allclose(m.mixture.means[0], errs.mean(0).numpy(), atol=1e-9)
    assert np.allclose(m.mixture.covariances[0], np.cov(errs.numpy().T, bias=True) + 1e-6 * np.eye(2), atol=1e-9)
    # the loss now weighs the offset error by disc * MGM
    mgm = render_mask(m.mixture, t["centres"], g.heatmap_size, 7)
    weight = t["offset_mask"] * mgm
    assert torch.allclose(m.offset_weighting(out, t), weight)
    pred = {k: v.clone() for k, v in t.items()}
    pred["offsets"][0, 0, 0] += 0.3  # every pixel of one joint's x offsets
    expected = 0.3 * weight[0, 0].sum() / (2 * weight.numel())  # mean over every (joint, x/y, pixel)
    assert m.loss(pred, t)["offset"].item() == pytest.approx(expected.item(), rel=1e-9)
    art = m.artifacts()["mgm"]
    assert art["n_components"] == 1 and art["units"] == "heatmap px" and art["scope"] == "epoch"
    assert np.asarray(art["covariances"]).shape == (1, 2, 2) and art["n_samples"] == 204


def test_mgm_state_round_trip(tmp_path) -> None:
    m = build_method("cal_mgm", {"n_components": 2})
    g = m.geometry(RES)
    batches = _shifted_batches(m, g, torch.tensor([0.7, 0.2], dtype=torch.float64))
    m.begin_stage(Stage("mgm", 0.5), lambda: iter(batches))
    path = tmp_path / "state.pt"
    torch.save(m.state_dict(), path)
    fresh = build_method("cal_mgm", {"n_components": 2})
    assert fresh.artifacts() == {}
    fresh.load_state_dict(torch.load(path, weights_only=True))
    out, t, _ = batches[1]
    assert torch.equal(fresh.offset_weighting(out, t), m.offset_weighting(out, t))
    assert fresh.artifacts() == m.artifacts()
    assert "MGM(2-component full GMM" in fresh.describe()["summary"]


def test_mgm_batch_scope_refits_only_in_training() -> None:
    m = build_method("cal_mgm", {"fit_scope": "batch", "n_components": 1, "stage_split": 0.0})
    assert [s.name for s in m.stages()] == ["mgm"]
    assert m.begin_stage(Stage("mgm", 1.0), lambda: iter(())) == {"mgm": "on", "mgm_scope": "batch"}
    g = m.geometry(RES)
    (out_a, t_a, _), (out_b, t_b, _) = _shifted_batches(m, g, torch.tensor([1.0, 0.0], dtype=torch.float64), 2)
    m.loss(out_a, t_a)
    first = m.mixture
    assert first is not None and first.n_samples == 4 * 17
    with torch.no_grad():
        m.loss(out_b, t_b)
    assert m.mixture is first  # evaluation does not refit
    m.loss(out_b, t_b)
    assert m.mixture is not first and m.state_dict()["n_fits"] == 2


@pytest.mark.parametrize(
    ("weighting", "sigma", "expected"),
    [
        # pixel (5,8): d^2 = 0.25 from the joint (5.3, 7.6); (7,7): d^2 = 3.25; (7,9) is outside the R=2 disc
        ("target", 1.0, {(5, 8): math.exp(-0.125), (7, 7): math.exp(-3.25 / 2), (7, 9): 0.0}),
        ("disc", 1.0, {(5, 8): 1.0, (7, 7): 1.0, (7, 9): 0.0}),
        # the release's GT mask: disc * exp(-d^2 / 2 sigma^2) / sigma (lib/utils/image.py, MASK_SIGMA = SIGMA)
        ("released", 0.5, {(5, 8): math.exp(-0.25 / 0.5) / 0.5, (7, 7): math.exp(-3.25 / 0.5) / 0.5, (7, 9): 0.0}),
    ],
)
def test_offset_weighting_by_hand(weighting: str, sigma: float, expected: dict) -> None:
    m = build_method("cal", {"radius": 2.0, "sigma": sigma, "offset_weighting": weighting})
    g = m.geometry(RES)
    t = m.encode(_kp_from_hm(m, g, [[[5.3, 7.6]]]), torch.ones(1, 1), g)
    weight = m.offset_weighting({}, t)[0, 0]
    for (x, y), value in expected.items():
        assert weight[y, x].item() == pytest.approx(value, rel=1e-6, abs=1e-12), (weighting, x, y)
