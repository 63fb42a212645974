"""The coordinate convention: crops, their inverse, the two flavours, input <-> heatmap maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lrpose_bench import geometry as g


def test_parse_resolution_is_height_by_width() -> None:
    assert g.parse_resolution("128x96") == (96, 128)
    assert g.parse_resolution(" 64X48 ") == (48, 64)
    assert g.format_resolution((96, 128)) == "128x96"


@pytest.mark.parametrize("bad", ["128x", "0x96", "128x0", "x96", "128", "12.5x9", "-8x8", "a x b", ""])
def test_parse_resolution_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad).strip("'") if bad else "resolution"):
        g.parse_resolution(bad)


def test_box_to_center_scale_hand_case() -> None:
    # Box 40 wide, 60 high at (10, 20); input aspect 3:4 -> 45 x 60, padded 1.25 -> 56.25 x 75.
    center, scale = g.box_to_center_scale(np.array([10.0, 20.0, 40.0, 60.0]), aspect_ratio=0.75)
    np.testing.assert_allclose(center, [30.0, 50.0])
    np.testing.assert_allclose(scale, [56.25, 75.0])
    # A wide box grows in height instead.
    _, scale = g.box_to_center_scale(np.array([0.0, 0.0, 90.0, 60.0]), aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(scale, [90.0, 120.0])


def test_biased_and_unbiased_centres_and_scales() -> None:
    center, scale, size = np.array([100.0, 50.0]), np.array([96.0, 128.0]), (48, 64)
    biased = g.crop_matrix(center, scale, size, unbiased=False)
    unbiased = g.crop_matrix(center, scale, size, unbiased=True)
    # Biased: the box centre lands on w/2 (half a pixel right of the crop's true centre (w-1)/2).
    np.testing.assert_allclose(g.apply_affine(center[None], biased)[0], [24.0, 32.0])
    np.testing.assert_allclose(g.apply_affine(center[None], unbiased)[0], [23.5, 31.5])
    # Scales: w/s for biased, (w-1)/s for unbiased, per axis.
    np.testing.assert_allclose(np.diag(biased[:, :2]), [48 / 96, 64 / 128])
    np.testing.assert_allclose(np.diag(unbiased[:, :2]), [47 / 96, 63 / 128])
    # Unbiased maps the box edges onto the outer pixel centres 0 and w-1 exactly.
    edges = np.array([[100.0 - 48.0, 50.0 - 64.0], [100.0 + 48.0, 50.0 + 64.0]])
    np.testing.assert_allclose(g.apply_affine(edges, unbiased), [[0.0, 0.0], [47.0, 63.0]], atol=1e-12)


def test_crop_then_inverse_returns_points() -> None:
    rng = np.random.default_rng(0)
    n = 64
    center = rng.uniform(50, 500, (n, 2))
    scale = rng.uniform(20, 300, (n, 2))
    rot = rng.uniform(-90, 90, n)
    flip = rng.random(n) < 0.5
    pts = rng.uniform(-100, 600, (n, 17, 2))
    for unbiased in (False, True):
        m = g.crop_matrix(center, scale, (48, 64), rotation=rot, unbiased=unbiased, flip=flip)
        back = g.apply_affine(g.apply_affine(pts, m), g.invert_affine(m))
        assert np.abs(back - pts).max() < 1e-4
        # torch path agrees
        mt = torch.from_numpy(m)
        back_t = g.apply_affine(g.apply_affine(torch.from_numpy(pts), mt), g.invert_affine(mt))
        assert (back_t - torch.from_numpy(pts)).abs().max().item() < 1e-4


def test_flip_is_mirror_in_crop_space() -> None:
    center, scale = np.array([60.0, 40.0]), np.array([30.0, 40.0])
    pts = np.array([[55.3, 33.1], [70.0, 41.0]])
    for unbiased in (False, True):
        plain = g.apply_affine(pts, g.crop_matrix(center, scale, (48, 64), unbiased=unbiased))
        mirrored = g.apply_affine(pts, g.crop_matrix(center, scale, (48, 64), unbiased=unbiased, flip=True))
        np.testing.assert_allclose(mirrored, g.flip_points(plain, 48), atol=1e-12)


def test_rotation_direction_is_counter_clockwise_on_screen() -> None:
    # A point right of the centre rotated +90 deg (counter-clockwise as displayed, y down) goes *up*.
    center, scale = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    m = g.crop_matrix(center, scale, (11, 11), rotation=90.0, unbiased=True)
    out = g.apply_affine(np.array([[5.0, 0.0]]), m)[0]
    np.testing.assert_allclose(out, [5.0, 0.0], atol=1e-9)


def test_two_flavours_differ_as_udp_predicts() -> None:
    """Biased minus unbiased, in input px: the UDP paper's systematic error of the biased transform."""
    center, scale, (w, h) = np.array([200.0, 150.0]), np.array([96.0, 128.0]), (48, 64)
    pts = np.array([[200.0, 150.0], [152.0, 86.0], [248.0, 214.0], [173.3, 97.7]])
    q_b = g.apply_affine(pts, g.crop_matrix(center, scale, (w, h), unbiased=False))
    q_u = g.apply_affine(pts, g.crop_matrix(center, scale, (w, h), unbiased=True))
    # q_b = (w/s)(p-c) + w/2 and q_u = ((w-1)/s)(p-c) + (w-1)/2  =>  q_b - q_u = (p-c)/s + 1/2 per axis.
    expected = (pts - center) / scale + 0.5
    np.testing.assert_allclose(q_b - q_u, expected, atol=1e-12)
    # Heatmap stage (stride 4): a joint found on the flipped crop's heatmap, mirrored back, lands
    # (1 - 1/stride) heatmap px left of where the unflipped heatmap has it (HRNet shifts by a whole pixel).
    hb = g.input_to_heatmap((w, h), (w // 4, h // 4), unbiased=False)
    x = torch.tensor([[10.0, 0.0]])
    found_on_flipped = hb.forward(g.flip_points(x, w))
    mirrored_back = g.flip_points(found_on_flipped, w // 4)
    assert torch.allclose(hb.forward(x) - mirrored_back, torch.tensor([[1 - 1 / 4, 0.0]]))
    hu = g.input_to_heatmap((w, h), (w // 4, h // 4), unbiased=True)
    assert torch.allclose(hu.forward(g.flip_points(x, w)), g.flip_points(hu.forward(x), w // 4))


def test_input_to_heatmap_maps() -> None:
    b = g.input_to_heatmap((96, 128), (24, 32), unbiased=False)
    u = g.input_to_heatmap((96, 128), (24, 32), unbiased=True)
    p = torch.tensor([[95.0, 127.0], [0.0, 0.0], [8.0, 12.0]])
    assert torch.allclose(b.forward(p), p / 4)
    assert torch.allclose(u.forward(p)[0], torch.tensor([23.0, 31.0]))  # last pixel centre -> last pixel centre
    assert torch.allclose(u.inverse(u.forward(p)), p)


def test_upsample_map_aligns_pixel_edges() -> None:
    m = g.upsample_map((48, 64), 4)
    edges = torch.tensor([[-0.5, -0.5], [47.5, 63.5]])
    assert torch.allclose(m.forward(edges), torch.tensor([[-0.5, -0.5], [191.5, 255.5]]))
    composed = m.then(g.input_to_heatmap((192, 256), (48, 64), unbiased=False))
    x = torch.tensor([[10.25, 3.5]])
    assert torch.allclose(composed.forward(x), (x * 4 + 1.5) / 4)


def test_warp_batch_equals_opencv() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (3, 70, 90)).astype(np.float32)
    m = g.crop_matrix(np.array([45.3, 33.7]), np.array([60.0, 80.0]), (48, 64), rotation=17.0, unbiased=True)
    ref = cv2.warpAffine(img.transpose(1, 2, 0), m, (48, 64), flags=cv2.INTER_LINEAR, borderValue=0)
    out = g.warp_batch(torch.from_numpy(img)[None], torch.from_numpy(m)[None], (48, 64))[0].numpy().transpose(1, 2, 0)
    # Interior pixels agree to OpenCV's fixed-point interpolation precision.
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(out[inner] - ref[inner]).max() < 1.0
    assert np.abs(out[inner] - ref[inner]).mean() < 0.1
