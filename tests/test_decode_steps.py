"""Each decoding step pinned on hand-built outputs (not round trips from perfect targets).

A round trip from a method's own perfect targets cannot see a step that a perfect target makes
irrelevant: UDP's class-map blur (a disc's raw and blurred argmax agree) or the border padding of its
offset blur (a linear offset ramp blurs to itself away from the border). Here the outputs are built by
hand or at random, and the expected values come from their definitions: OpenCV's ``GaussianBlur`` with
its default border (``BORDER_REFLECT_101``) for UDP, the raw peak and HRNet's quarter shift for the
heatmap, the raw argmax plus the scaled offset for CAL. Options are always passed explicitly, so a change
of a method's defaults does not change what these tests check.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lrpose_bench.method import Geometry, PoseMethod, build_method

RES = (48, 64)  # (width, height) of the crop: a 12 x 16 heatmap at stride 4
HM_W, HM_H = 12, 16


def _method(name: str, res: tuple[int, int] = RES, **options: object) -> tuple[PoseMethod, Geometry]:
    method = build_method(name, options)
    return method, method.geometry(res)


def _unbiased_crop_px(hm: np.ndarray, res: tuple[int, int] = RES) -> np.ndarray:
    """Heatmap px -> crop px under UDP's unbiased map: ``x * (w_in - 1) / (w_hm - 1)`` per axis."""
    w_in, h_in = res
    scale = np.array([(w_in - 1) / (w_in // 4 - 1), (h_in - 1) / (h_in // 4 - 1)])
    return np.asarray(hm, dtype=np.float64) * scale


def cv2_blur(maps: np.ndarray, kernel: int) -> np.ndarray:
    """Every ``(h, w)`` map of ``maps (..., h, w)`` through ``cv2.GaussianBlur((k, k), 0)``, mirrored border."""
    flat = np.ascontiguousarray(maps, dtype=np.float64).reshape(-1, *maps.shape[-2:])
    out = [cv2.GaussianBlur(m, (kernel, kernel), 0, borderType=cv2.BORDER_REFLECT_101) for m in flat]
    return np.stack(out).reshape(maps.shape)


def _argmax_xy(maps: np.ndarray) -> np.ndarray:
    """Integer ``(x, y)`` of each map's maximum, ``(..., h, w) -> (..., 2)`` (numpy's first maximum)."""
    h, w = maps.shape[-2:]
    idx = maps.reshape(*maps.shape[:-2], h * w).argmax(-1)
    return np.stack([idx % w, idx // w], axis=-1).astype(np.float64)


# ------------------------------------------------------------------------------------------ UDP
@pytest.mark.parametrize("cls_kernel,blurred_plateau", [(3, 1.0), (5, 0.875**2)])
def test_udp_blurred_argmax_ignores_a_one_pixel_spike(cls_kernel: int, blurred_plateau: float) -> None:
    """A 3x3 plateau of 1 beats a lone 1.9 after the blur; the score is the blurred plateau centre.

    Blurred values (OpenCV's kernels (1,2,1)/4 and (1,4,6,4,1)/16): the plateau centre keeps the
    square of the kernel's three middle taps (1 for k=3, 0.875^2 for k=5), the spike 1.9 x the centre
    tap squared (0.475, 0.267). The raw argmax is the spike, 4 rows and 4 columns away.
    """
    method, geo = _method("udp", radius=1.0, cls_kernel=cls_kernel, offset_kernel=1)
    assert geo.heatmap_size == (HM_W, HM_H)
    cls = torch.zeros(1, 1, HM_H, HM_W, dtype=torch.float64)
    cls[0, 0, 8:11, 4:7] = 1.0  # plateau centred on (x 5, y 9)
    cls[0, 0, 3, 9] = 1.9  # the spike at (x 9, y 3)
    assert _argmax_xy(cls.numpy())[0, 0].tolist() == [9.0, 3.0]
    offsets = torch.zeros(1, 1, 2, HM_H, HM_W, dtype=torch.float64)
    coords, scores = method.decode({"heatmaps": cls, "offsets": offsets}, geo)
    np.testing.assert_allclose(coords[0, 0].numpy(), _unbiased_crop_px([5.0, 9.0]), atol=1e-9)
    assert scores.item() == pytest.approx(blurred_plateau, abs=1e-12)


# Peaks on every corner and edge of the 12 x 16 map, and two inside it.
BORDER_PEAKS: list[tuple[int, int]] = [(0, 0), (11, 0), (0, 15), (11, 15), (0, 7), (11, 4), (5, 0), (6, 15), (1, 1), (6, 8)]


def _peaked_maps(rng: np.random.Generator, batch: int, noise: float, size: tuple[int, int] = (HM_W, HM_H),
                 peaks: list[tuple[int, int]] = BORDER_PEAKS) -> np.ndarray:
    """Class maps ``(batch, len(peaks), h, w)``: uniform noise in ``[0, noise)`` plus 1 at each joint's peak."""
    w, h = size
    maps = rng.uniform(0.0, noise, size=(batch, len(peaks), h, w))
    for j, (x, y) in enumerate(peaks):
        maps[:, j, y, x] += 1.0
    return maps


@pytest.mark.parametrize("cls_kernel", [3, 5])
def test_udp_class_map_blur_matches_opencv_at_the_border(cls_kernel: int) -> None:
    """Argmax and score = argmax and maximum of ``cv2.GaussianBlur`` (mirrored border) of noisy maps."""
    method, geo = _method("udp", radius=1.0, cls_kernel=cls_kernel, offset_kernel=1)
    maps = _peaked_maps(np.random.default_rng(0), batch=4, noise=0.6)
    blurred = cv2_blur(maps, cls_kernel)
    zeros = torch.zeros(*maps.shape[:2], 2, HM_H, HM_W, dtype=torch.float64)
    coords, scores = method.decode({"heatmaps": torch.from_numpy(maps), "offsets": zeros}, geo)
    np.testing.assert_allclose(coords.numpy(), _unbiased_crop_px(_argmax_xy(blurred)), atol=1e-9)
    np.testing.assert_allclose(scores.numpy(), blurred.max(axis=(-2, -1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("res,offset_kernel", [((48, 64), 3), ((48, 64), 5), ((96, 128), 7)])
def test_udp_offsets_are_read_from_an_opencv_blur_at_the_border(res: tuple[int, int], offset_kernel: int) -> None:
    """Decoded = peak + R * (cv2-blurred random offsets at the peak), for joints on the map's edges.

    Near the border the blur reads mirrored pixels (``BORDER_REFLECT_101``, UDP's release blurs in place
    with OpenCV's default); zero padding there would shrink the offsets by up to half.
    """
    radius = 1.25
    method, geo = _method("udp", res=res, radius=radius, cls_kernel=3, offset_kernel=offset_kernel)
    w, h = geo.heatmap_size
    peaks = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (0, h // 2), (w - 1, 3), (w // 2, 0), (2, h - 1), (2, 2)]
    rng = np.random.default_rng(offset_kernel)
    cls = _peaked_maps(rng, batch=3, noise=0.01, size=(w, h), peaks=peaks)
    # (a peak one pixel from the border would tie with the border pixel: the mirror doubles its weight there)
    assert _argmax_xy(cv2_blur(cls, 3)).tolist() == [[[float(x), float(y)] for x, y in peaks]] * 3
    offsets = rng.uniform(-1.0, 1.0, size=(3, len(peaks), 2, h, w))
    blurred = cv2_blur(offsets, offset_kernel)
    px = np.array(peaks)
    read = blurred[:, np.arange(len(peaks)), :, px[:, 1], px[:, 0]]  # (len(peaks), 3, 2): peaks first
    expected_hm = px[None].astype(np.float64) + radius * read.transpose(1, 0, 2)
    coords, _ = method.decode({"heatmaps": torch.from_numpy(cls), "offsets": torch.from_numpy(offsets)}, geo)
    np.testing.assert_allclose(coords.numpy(), _unbiased_crop_px(expected_hm, res), atol=1e-9)


# ------------------------------------------------------------------------------------------ heatmap
def test_heatmap_decode_quarter_shift_and_raw_peak_score() -> None:
    """Integer peak + 0.25 px toward the higher neighbour per axis (none on a tie); score = raw peak.

    Biased transform: crop px = heatmap px x stride 4.
    """
    method, geo = _method("heatmap", sigma=0.5, quarter_offset=True, flip_shift=True)
    hm = torch.zeros(1, 2, HM_H, HM_W, dtype=torch.float64)
    hm[0, 0, 6, 4], hm[0, 0, 6, 5], hm[0, 0, 6, 3] = 0.73, 0.5, 0.2  # right higher: x + 0.25
    hm[0, 0, 5, 4] = hm[0, 0, 7, 4] = 0.3  # tie above/below: y unchanged
    hm[0, 1, 10, 7], hm[0, 1, 10, 6], hm[0, 1, 10, 8] = 0.41, 0.2, 0.1  # left higher: x - 0.25
    hm[0, 1, 9, 7], hm[0, 1, 11, 7] = 0.35, 0.1  # above higher: y - 0.25
    coords, scores = method.decode({"heatmaps": hm}, geo)
    assert coords[0].tolist() == [[4.25 * 4, 6.0 * 4], [6.75 * 4, 9.75 * 4]]
    assert scores[0].tolist() == [0.73, 0.41]


# ------------------------------------------------------------------------------------------ CAL
def test_cal_decode_raw_argmax_plus_scaled_offset() -> None:
    """CAL reads the *raw* argmax (no blur: a lone spike wins), adds ``offset_normaliser * offset`` there;
    score = the raw peak."""
    method, geo = _method("cal", radius=2.0, sigma=1.0, offset_normaliser=2.0)
    hm = torch.zeros(1, 1, HM_H, HM_W, dtype=torch.float64)
    hm[0, 0, 8:11, 4:7] = 0.6  # a plateau that a blur would prefer
    hm[0, 0, 3, 9] = 0.9  # the raw maximum at (x 9, y 3)
    offsets = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, size=(1, 1, 2, HM_H, HM_W)))
    offsets[0, 0, :, 3, 9] = torch.tensor([0.1, -0.2], dtype=torch.float64)
    coords, scores = method.decode({"heatmaps": hm, "offsets": offsets}, geo)
    np.testing.assert_allclose(coords[0, 0].numpy(), _unbiased_crop_px([9.0 + 2.0 * 0.1, 3.0 - 2.0 * 0.2]), atol=1e-9)
    assert scores.item() == 0.9
