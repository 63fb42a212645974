"""Hand-computed checks of the batched codec primitives (lrpose_bench.codecs)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from lrpose_bench import codecs as C


def _c(*xy: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor([[list(xy)]], dtype=dtype)  # (1, 1, 2)


def test_gaussian_subpixel_values():
    hm = C.gaussian_heatmaps(_c(2.3, 1.6), (6, 5), sigma=1.5)
    assert hm.shape == (1, 1, 5, 6) and hm.dtype == torch.float64
    expect = math.exp(-((3 - 2.3) ** 2 + (1 - 1.6) ** 2) / (2 * 1.5**2))
    assert hm[0, 0, 1, 3].item() == pytest.approx(expect, abs=1e-12)
    assert hm[0, 0, 4, 0].item() == pytest.approx(math.exp(-((0 - 2.3) ** 2 + (4 - 1.6) ** 2) / 4.5), abs=1e-12)


def test_gaussian_rounded_and_window():
    # centre (2.5, 1.49) rounds half up to (3, 1)
    hm = C.gaussian_heatmaps(_c(2.5, 1.49), (9, 5), sigma=1.0, rounded=True, window=3.0)
    assert hm[0, 0, 1, 3].item() == 1.0
    assert hm[0, 0, 1, 4].item() == pytest.approx(math.exp(-0.5))
    assert hm[0, 0, 1, 6].item() == pytest.approx(math.exp(-4.5))  # |dx| = 3 = window: kept
    assert hm[0, 0, 1, 7].item() == 0.0  # |dx| = 4 > window
    assert hm[0, 0, 4, 0].item() == pytest.approx(math.exp(-(9 + 9) / 2))  # corner of the window


def test_window_visible():
    c = torch.tensor([[[-2.0, 3.0], [-2.1, 3.0], [12.0, 3.0], [13.01, 3.0]]])
    vis = C.window_visible(c, (11, 8), window=2.0)  # last pixel x = 10
    assert vis.tolist() == [[True, False, True, False]]


def test_disc_and_offsets():
    d = C.disc_mask(_c(2.0, 2.0), (5, 5), radius=1.0)[0, 0]
    assert d[2, 3] == 1 and d[3, 2] == 1 and d[2, 2] == 1  # boundary counts as inside
    assert d[3, 3] == 0 and d.sum() == 5
    o = C.offset_maps(_c(2.3, 1.6), (6, 5), 2.0)
    assert o.shape == (1, 1, 2, 5, 6)
    assert o[0, 0, 0, 0, 0].item() == pytest.approx(1.15) and o[0, 0, 1, 0, 0].item() == pytest.approx(0.8)
    assert o[0, 0, 0, 4, 5].item() == pytest.approx((2.3 - 5) / 2) and o[0, 0, 1, 4, 5].item() == pytest.approx(-1.2)


def test_argmax_ties_and_gather():
    hm = torch.zeros(1, 2, 3, 4)
    hm[0, 0, 1, 2] = 5.0
    hm[0, 1, 0, 3] = 1.0
    hm[0, 1, 2, 0] = 1.0  # tie: first in row-major order wins
    coords, vals = C.argmax_2d(hm)
    assert coords.tolist() == [[[2.0, 1.0], [3.0, 0.0]]] and vals.tolist() == [[5.0, 1.0]]
    maps = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 2, 3, 4)
    got = C.gather_at(maps, coords)
    assert got.tolist() == [[[6.0, 18.0], [27.0, 39.0]]]


def test_quarter_offset_refine():
    hm = torch.zeros(1, 3, 4, 5)
    hm[0, 0, 1, 2], hm[0, 0, 1, 3], hm[0, 0, 1, 1] = 1.0, 0.5, 0.2  # right higher -> +x
    hm[0, 0, 0, 2], hm[0, 0, 2, 2] = 0.3, 0.3  # up == down -> no y shift
    hm[0, 1, 2, 0], hm[0, 1, 2, 1], hm[0, 1, 3, 0] = 1.0, 0.9, 0.5  # x at the border: no x shift
    hm[0, 2, 1, 4], hm[0, 2, 1, 3] = 1.0, 0.5  # x = w-1: no x shift; y neighbours 0 -> none
    coords, _ = C.argmax_2d(hm)
    out = C.quarter_offset_refine(hm, coords)
    assert out.tolist() == [[[2.25, 1.0], [0.0, 2.25], [4.0, 1.0]]]


def test_dark_refine_exact_on_gaussian_everywhere():
    g = torch.Generator().manual_seed(0)
    c = torch.rand(8, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([11.0, 15.0], dtype=torch.float64)
    hm = C.gaussian_heatmaps(c, (12, 16), sigma=1.0)
    coords, _ = C.argmax_2d(hm)
    assert (coords - c).abs().max() > 0.3  # the argmax alone is coarse
    assert torch.allclose(C.dark_refine(hm, coords), c, atol=1e-9)  # border pixels included


def test_dark_refine_cross_term():
    # log-quadratic with an xy term: f = -(a dx^2 + b dy^2 + c dx dy); Newton step recovers the centre
    cx, cy = 3.3, 2.8
    ys, xs = torch.meshgrid(torch.arange(7.0, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64), indexing="ij")
    dx, dy = xs - cx, ys - cy
    hm = torch.exp(-(0.5 * dx**2 + 0.3 * dy**2 + 0.4 * dx * dy))[None, None]
    out = C.dark_refine(hm, torch.tensor([[[3.0, 3.0]]], dtype=torch.float64))
    assert out[0, 0].tolist() == pytest.approx([cx, cy], abs=1e-9)


def test_dark_refine_no_step_on_flat_map():
    hm = torch.ones(1, 1, 5, 5)
    out = C.dark_refine(hm, torch.tensor([[[2.0, 2.0]]]))
    assert out.tolist() == [[[2.0, 2.0]]]


@pytest.mark.parametrize("k", [3, 5, 7, 11])
def test_gaussian_blur_matches_opencv(k: int):
    rng = np.random.default_rng(k)
    a = rng.random((16, 12)).astype(np.float32)
    pad = (k - 1) // 2
    big = np.zeros((16 + 2 * pad, 12 + 2 * pad), np.float32)
    big[pad:-pad, pad:-pad] = a
    ref = cv2.GaussianBlur(big, (k, k), 0)[pad:-pad, pad:-pad]  # DarkPose's zero-padded blur
    t = torch.from_numpy(a)[None, None]
    assert np.abs(C.gaussian_blur(t, k, keep_max=False)[0, 0].numpy() - ref).max() < 1e-6
    kept = C.gaussian_blur(t, k)[0, 0].numpy()
    assert kept.max() == pytest.approx(a.max(), rel=1e-6)
    assert np.abs(kept - ref * a.max() / ref.max()).max() < 1e-6
    refl = cv2.GaussianBlur(a, (k, k), 0)  # OpenCV's default border (UDP's in-place blur)
    assert np.abs(C.gaussian_blur(t, k, keep_max=False, padding="reflect")[0, 0].numpy() - refl).max() < 1e-6


def test_gaussian_kernel_tables():
    assert C.gaussian_kernel_1d(3).tolist() == [0.25, 0.5, 0.25]
    k11 = C.gaussian_kernel_1d(11, dtype=torch.float64)
    ref = cv2.getGaussianKernel(11, 0).ravel()
    assert np.abs(k11.numpy() - ref).max() < 1e-9
    with pytest.raises(ValueError, match="odd"):
        C.gaussian_kernel_1d(4)


def test_auto_rules():
    assert C.auto_sigma((48, 64)) == 2.0 and C.auto_sigma((24, 32)) == 1.0 and C.auto_sigma((12, 16)) == 0.5
    assert [C.auto_blur_kernel((w, 1)) for w in (12, 24, 48, 72)] == [3, 5, 11, 17]
    assert C.auto_udp_radius((48, 64)) == 3.5 and C.auto_udp_radius((12, 16)) == 0.875
    assert C.auto_simcc_ratio((48, 64)) == 3.0 and C.auto_simcc_ratio((96, 128)) == 2.0


def test_flip_maps_and_shift():
    m = torch.arange(6.0).reshape(1, 2, 1, 3)  # joint 0: [0,1,2], joint 1: [3,4,5]
    f = C.flip_maps(m, [1, 0])
    assert f.tolist() == [[[[5.0, 4.0, 3.0]], [[2.0, 1.0, 0.0]]]]
    assert C.shift_right(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [1.0, 1.0, 2.0, 3.0]


def test_batched_equals_per_sample_and_dtype():
    g = torch.Generator().manual_seed(1)
    c = torch.rand(4, 3, 2, generator=g) * 10
    full = C.gaussian_heatmaps(c, (12, 16), 1.0, rounded=True, window=3.0)
    assert full.dtype == torch.float32
    for b in range(4):
        for k in range(3):
            one = C.gaussian_heatmaps(c[b : b + 1, k : k + 1], (12, 16), 1.0, rounded=True, window=3.0)
            assert torch.equal(one[0, 0], full[b, k])
    coords, _ = C.argmax_2d(full)
    assert C.dark_refine(full, coords, kernel=3).dtype == torch.float32


def test_check_keypoints_messages():
    with pytest.raises(ValueError, match=r"method 'x': keypoints must be a float tensor \(B, K, 2\)"):
        C.check_keypoints(torch.zeros(2, 3), torch.zeros(2, 3), "x")
    with pytest.raises(ValueError, match="visibility must be"):
        C.check_keypoints(torch.zeros(2, 3, 2), torch.zeros(2, 4))


def test_numpy_reference_matches_batched_targets():
    from lrpose_bench.cli.bench_cmd import numpy_heatmap_targets
    from lrpose_bench.method import build_method

    m = build_method("heatmap")
    geo = m.geometry((48, 64))
    kp = torch.rand(3, 17, 2, dtype=torch.float64) * 60 - 6  # some joints off the map
    t = m.encode(kp, torch.ones(3, 17, dtype=torch.float64), geo)
    ref, w = numpy_heatmap_targets(geo.crop_to_heatmap.forward(kp).numpy(), geo.heatmap_size, m.sigma_for(geo))
    assert np.abs(ref - t["heatmaps"].numpy()).max() < 1e-6 and (w == t["weight"].numpy()).all()


def test_bench_codecs_cli():
    from typer.testing import CliRunner

    from lrpose_bench.cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["bench", "codecs", "--res", "32x32", "--batch", "2", "--repeat", "1"])
    assert res.exit_code == 0, res.output
    for word in ("heatmap (numpy loop)", "equal to batched", "udp", "simcc", "dark"):
        assert word in res.output
    bad = runner.invoke(app, ["bench", "codecs", "--res", "30x32"])
    assert bad.exit_code == 1 and "multiples of the output stride" in bad.output
