"""The window/outer-product target builders (issue 14) against frozen copies of the previous ones.

The reference functions below are the target code as it stood before issue 14 (dense
``(B, K, h, w)`` passes: masks, ``torch.where``, ``torch.stack``), kept verbatim in behaviour so that
every method's full ``encode`` output can be compared with what it produced before: same keys, shapes
and dtypes, values within 1e-6, and binary maps (discs, masks) exactly equal. Joints are drawn inside
and outside the crop, on pixel centres, half pixels and the map border, with zero, fractional and
non-binary visibility, in float32 and float64. No timings are asserted here (``lrpose bench codecs``
prints them).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import pytest
import torch

from lrpose_bench import codecs as C
from lrpose_bench.geometry import parse_resolution
from lrpose_bench.method import build_method

# --------------------------------------------------------------------------------------------------
# Frozen reference: the target primitives as they were before issue 14 (heatmap px, (w, h) sizes)
# --------------------------------------------------------------------------------------------------
_EXP_FLOOR = -60.0


def _ref_axes(size: Sequence[int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    w, h = int(size[0]), int(size[1])
    return torch.arange(w, dtype=dtype, device=like.device), torch.arange(h, dtype=dtype, device=like.device)


def _ref_flushed_exp(arg: torch.Tensor, floor: float = _EXP_FLOOR) -> torch.Tensor:
    zero = torch.zeros((), dtype=arg.dtype, device=arg.device)
    return torch.where(arg > floor, torch.exp(arg.clamp_min(floor)), zero)


def ref_gaussian_heatmaps(centres: torch.Tensor, size: Sequence[int], sigma: float, rounded: bool = False,
                          window: float | None = None) -> torch.Tensor:
    c = C.round_half_up(centres) if rounded else centres
    xs, ys = _ref_axes(size, c)
    dx = xs.view(1, 1, 1, -1) - c[..., 0, None, None]
    dy = ys.view(1, 1, -1, 1) - c[..., 1, None, None]
    gx = _ref_flushed_exp(-(dx * dx) / (2.0 * sigma * sigma), _EXP_FLOOR / 2)
    gy = _ref_flushed_exp(-(dy * dy) / (2.0 * sigma * sigma), _EXP_FLOOR / 2)
    if window is not None:
        gx = gx * (dx.abs() <= window + 1e-6).to(gx.dtype)
        gy = gy * (dy.abs() <= window + 1e-6).to(gy.dtype)
    out = gx * gy
    return torch.where(out >= math.exp(_EXP_FLOOR), out, torch.zeros((), dtype=out.dtype, device=out.device))


def ref_disc_mask(centres: torch.Tensor, size: Sequence[int], radius: float) -> torch.Tensor:
    xs, ys = _ref_axes(size, centres)
    dx = xs.view(1, 1, 1, -1) - centres[..., 0, None, None]
    dy = ys.view(1, 1, -1, 1) - centres[..., 1, None, None]
    return ((dx * dx + dy * dy) <= radius * radius * (1.0 + 1e-6)).to(centres.dtype)


def ref_offset_maps(centres: torch.Tensor, size: Sequence[int], normaliser: Any = 1.0) -> torch.Tensor:
    xs, ys = _ref_axes(size, centres)
    nx, ny = (normaliser, normaliser) if isinstance(normaliser, (int, float)) else tuple(normaliser)
    w, h = xs.numel(), ys.numel()
    ox = (centres[..., 0, None, None] - xs.view(1, 1, 1, -1)) / nx
    oy = (centres[..., 1, None, None] - ys.view(1, 1, -1, 1)) / ny
    b, k = centres.shape[:2]
    return torch.stack([ox.expand(b, k, h, w), oy.expand(b, k, h, w)], dim=2)


def ref_gaussian_vectors(centres: torch.Tensor, length: int, sigma: float) -> torch.Tensor:
    dtype = centres.dtype if centres.is_floating_point() else torch.get_default_dtype()
    bins = torch.arange(int(length), dtype=dtype, device=centres.device)
    d = bins - centres[..., None]
    return _ref_flushed_exp(-(d * d) / (2.0 * sigma * sigma))


# --------------------------------------------------------------------------------------------------
# Frozen reference: each method's encode as it was before issue 14
# --------------------------------------------------------------------------------------------------
def ref_encode_heatmap(m: Any, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Any) -> dict:
    """HeatmapMethod.encode (also DARK and SR + heatmap, which inherit it)."""
    size = geometry.heatmap_size
    centres = geometry.crop_to_heatmap.forward(keypoints)
    sigma = m.sigma_for(geometry)
    maps = ref_gaussian_heatmaps(centres, size, sigma, rounded=m.rounded_targets, window=m.window_for(geometry))
    inside = C.window_visible(centres, size, 3.0 * sigma, rounded=m.rounded_targets)
    weight = visibility.to(maps.dtype) * inside.to(maps.dtype)
    return {"heatmaps": maps * (weight > 0).to(maps.dtype)[..., None, None], "weight": weight}


def ref_encode_udp(m: Any, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Any) -> dict:
    size = geometry.heatmap_size
    radius = m.radius_for(geometry)
    centres = geometry.crop_to_heatmap.forward(keypoints)
    weight = visibility.to(centres.dtype) * C.window_visible(centres, size, radius).to(centres.dtype)
    discs = ref_disc_mask(centres, size, radius) * (weight > 0).to(centres.dtype)[..., None, None]
    return {"heatmaps": discs, "offsets": ref_offset_maps(centres, size, radius), "weight": weight}


def ref_encode_cal(m: Any, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Any) -> dict:
    o = m.options
    dtype = keypoints.dtype if keypoints.is_floating_point() else torch.float32
    size = geometry.heatmap_size
    c = geometry.crop_to_heatmap.forward(keypoints.to(dtype))
    sigma = m.sigma_for(size)
    disc = ref_disc_mask(c, size, o.radius)
    gaussian = ref_gaussian_heatmaps(c, size, sigma)
    if o.target == "gaussian_disc":
        heatmaps, support = disc * gaussian, o.radius
    elif o.target == "disc":
        heatmaps, support = disc, o.radius
    else:
        heatmaps, support = gaussian, 3.0 * sigma
    weight = (visibility > 0).to(dtype) * C.window_visible(c, size, support).to(dtype)
    w4 = weight[..., None, None]
    if o.offset_weighting == "disc":
        offset_weight = disc
    else:
        offset_weight = disc * gaussian / (sigma if o.offset_weighting == "released" else 1.0)
    return {
        "heatmaps": heatmaps * w4,
        # zero off the disc; a non-finite joint's masked offsets are 0 too (they were NaN, NaN * 0, before
        # the disc-masked offsets were computed from joints moved off the map)
        "offsets": torch.where((disc * w4)[:, :, None] > 0, ref_offset_maps(c, size, o.offset_normaliser), 0.0),
        "offset_mask": disc * w4,
        "offset_weight": offset_weight * w4,
        "centres": c,
        "weight": weight,
    }


def ref_encode_simcc(m: Any, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Any) -> dict:
    lx, ly = m.bins_for(geometry)
    b = m.to_bins(keypoints, geometry)
    if m.options.rounded_labels:
        b = C.round_half_up(b)
    sigma = m.sigma_for(geometry)
    radius = 3.0 * sigma
    lengths = b.new_tensor([lx, ly])
    inside = ((b - radius < lengths) & (b + radius + 1 >= 0)).all(-1)
    weight = visibility.to(keypoints.dtype) * inside.to(keypoints.dtype)
    keep = (weight > 0).to(keypoints.dtype)[..., None]
    out = {}
    for key, axis, length in (("simcc_x", 0, lx), ("simcc_y", 1, ly)):
        g = ref_gaussian_vectors(b[..., axis], length, sigma)
        out[key] = g / g.sum(-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny) * keep
    out["weight"] = weight
    return out


def ref_encode_soft_argmax(m: Any, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Any) -> dict:
    """SoftArgmaxMethod.encode (IPR, DSNT, Debias-IPR)."""
    size = geometry.heatmap_size
    centres = geometry.crop_to_heatmap.forward(keypoints)
    out = {
        "coords": C.to_unit(centres, size),
        "probs": C.exact_mean_distribution(centres, size),
        "weight": visibility.to(keypoints.dtype),
    }
    if m.js_weight() > 0:
        g = ref_gaussian_heatmaps(centres, size, m.js_sigma())
        out["gaussian"] = g / g.sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
    return out


REFERENCES = {
    "heatmap": ref_encode_heatmap,
    "dark": ref_encode_heatmap,
    "sr_heatmap": ref_encode_heatmap,
    "udp": ref_encode_udp,
    "cal": ref_encode_cal,
    "cal_mgm": ref_encode_cal,
    "simcc": ref_encode_simcc,
    "ipr": ref_encode_soft_argmax,
    "dsnt": ref_encode_soft_argmax,
    "debias_ipr": ref_encode_soft_argmax,
}

#: Method variants whose encode differs (option combinations that take another target path).
CASES: list[tuple[str, dict[str, Any]]] = [
    ("heatmap", {}),
    ("heatmap", {"sigma": 1.3}),
    ("dark", {}),
    ("dark", {"subpixel_target": False}),
    ("dark", {"unbiased": True}),
    ("sr_heatmap", {}),
    ("udp", {}),
    ("udp", {"radius": 2.0}),
    ("cal", {}),
    ("cal", {"target": "disc"}),
    ("cal", {"target": "subpixel_gaussian"}),
    ("cal", {"offset_weighting": "released"}),
    ("cal", {"offset_weighting": "disc"}),
    ("cal", {"target": "disc", "offset_weighting": "disc", "radius": 1.0}),
    ("cal", {"sigma": 0.3, "offset_weighting": "released", "offset_normaliser": 2.0}),
    ("cal_mgm", {}),
    ("simcc", {}),
    ("simcc", {"rounded_labels": False}),
    ("simcc", {"aligned_bins": False, "rounded_labels": False}),
    ("simcc", {"sigma": 1.0}),
    ("ipr", {}),
    ("dsnt", {}),
    ("debias_ipr", {"js_weight": 1.0}),
]

#: Keys whose values are binary (compared exactly: one pixel in or out of a disc is a difference of 1).
BINARY_KEYS = {"offset_mask"}


def _keypoints(geometry: Any, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, K, 2)`` crop px: random points in and around the crop, plus heatmap-grid and border points."""
    gen = torch.Generator().manual_seed(seed)
    w, h = geometry.crop_size
    hw, hh = geometry.heatmap_size
    span = torch.tensor([w, h], dtype=torch.float64)
    n_random = 48 if w * h <= 128 * 96 else 16  # the paper's sizes get more random joints than 256x192
    rand = (torch.rand(n_random, 17, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.3) * span  # 30 % beyond each side
    # heatmap-px points on the grid, half pixels, the border and just beyond it, mapped back to crop px
    xs = torch.tensor([-4.0, -1.5, -0.5, 0.0, 0.5, 1.0, 2.5, hw / 2, hw - 1.5, hw - 1, hw - 0.5, hw, hw + 3.0])
    ys = torch.tensor([-4.0, -0.5, 0.0, 1.0, 3.5, hh / 2, hh - 1, hh - 0.5, hh + 0.5, hh + 4.0])
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), dim=-1).reshape(-1, 2).to(torch.float64)
    n = grid.shape[0]
    grid = torch.cat([grid, grid[: (-n) % 17]]).reshape(-1, 17, 2)
    grid = geometry.crop_to_heatmap.inverse(grid)
    kp = torch.cat([rand, grid]).to(dtype)
    vis = torch.randint(0, 3, kp.shape[:2], generator=gen).to(dtype)  # 0, 1, 2 (COCO labels)
    vis[::5, 3] = 0.5  # a fractional visibility
    return kp, vis


def _compare(new: dict, ref: dict, where: str) -> None:
    assert set(new) == set(ref), f"{where}: keys {sorted(new)} != {sorted(ref)}"
    for key, r in ref.items():
        n = new[key]
        assert n.shape == r.shape and n.dtype == r.dtype, f"{where}/{key}: {n.shape} {n.dtype} != {r.shape} {r.dtype}"
        assert n.is_contiguous(), f"{where}/{key}: not contiguous"
        if key in BINARY_KEYS or key == "weight" or (key == "heatmaps" and set(r.unique().tolist()) <= {0.0, 1.0}):
            assert torch.equal(n, r), f"{where}/{key}: {int((n != r).sum())} values differ"
        else:
            assert torch.allclose(n, r, rtol=0.0, atol=1e-6, equal_nan=True), \
                f"{where}/{key}: max |diff| {float((n - r).abs().nan_to_num().max()):.3g}"


#: The paper's two sizes for every case; 256x192 (bigger maps, the SR front end's scale) for the defaults.
SIZED_CASES = [(n, o, r) for n, o in CASES for r in ("128x96", "64x48")] + [
    (n, o, "256x192") for n, o in CASES if not o
]


@pytest.mark.parametrize("name,opts,res", SIZED_CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}-{r}"
                              for n, o, r in SIZED_CASES])  # fmt: skip
def test_encode_equals_reference(name: str, opts: dict[str, Any], res: str) -> None:
    m = build_method(name, opts)
    geo = m.geometry(parse_resolution(res))
    ref = REFERENCES[name]
    for dtype, seed in ((torch.float32, 0), (torch.float64, 1)):
        kp, vis = _keypoints(geo, dtype, seed)
        with torch.no_grad():
            _compare(m.encode(kp, vis, geo), ref(m, kp, vis, geo), f"{name}{opts} {res} {dtype}")


@pytest.mark.parametrize("name", ["heatmap", "dark", "udp", "cal", "simcc", "dsnt"])
def test_encode_non_finite_keypoints(name: str) -> None:
    """NaN and infinite joints give what they gave before (zero targets, weight 0 where the method tests it)."""
    m = build_method(name, {"js_weight": 1.0} if name == "dsnt" else {})
    geo = m.geometry(parse_resolution("64x48"))
    kp, vis = _keypoints(geo, torch.float32, 2)
    kp[0, 0, 0] = float("nan")
    kp[0, 1, 1] = float("nan")
    kp[1, 2] = float("inf")
    kp[1, 3, 0] = -float("inf")
    with torch.no_grad():
        _compare(m.encode(kp, vis, geo), REFERENCES[name](m, kp, vis, geo), f"{name} non-finite")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_factors_floor_is_exact_zero(dtype: torch.dtype) -> None:
    """Far, dropped and non-finite joints give factors of exactly 0 (a non-finite coordinate: along its axis,
    which zeroes the map), in the vectorised body and the scalar tail of the ``exp`` kernel alike (37 + 29
    entries per joint: not a multiple of any vector width), and a factor is 0 exactly where its exponent is
    at or below ``EXP_FLOOR / 2``."""
    c = torch.tensor([[[18.0, 14.0], [-40.0, 3.0], [float("nan"), 2.0], [5.0, float("inf")], [5.0, 6.0]]], dtype=dtype)
    keep = torch.tensor([[True, True, True, True, False]])
    f = C.gaussian_factors(c, (37, 29), 1.0, keep=keep)
    assert torch.equal(f[0, 4], torch.zeros_like(f[0, 4]))  # keep=False: all zero
    assert torch.equal(f[0, 2, :37], torch.zeros(37, dtype=dtype))  # NaN x: no x factor
    assert torch.equal(f[0, 3, 37:], torch.zeros(29, dtype=dtype))  # inf y: no y factor
    maps = C.gaussian_heatmaps(c, (37, 29), 1.0, keep=keep)
    assert torch.equal(maps[0, 2:], torch.zeros_like(maps[0, 2:]))
    assert torch.equal(f[0, 1, :37], torch.zeros(37, dtype=dtype))  # 40+ px away along x: e^-800
    d = torch.arange(37, dtype=dtype) - 18.0
    exponent = -(d * d) / 2.0
    assert torch.equal(f[0, 0, :37] > 0, exponent > C.EXP_FLOOR / 2)
    assert float(f[f > 0].min()) >= math.exp(C.EXP_FLOOR / 2)


def test_window_edge_is_the_distance_test() -> None:
    """A sub-pixel centre exactly ``window + 1e-6`` (in float32) from a column keeps that column, as the
    distance test ``|d| <= window + 1e-6`` does (a test on the exponent dropped it)."""
    c = torch.tensor([[[9.999999046325684, 3.0]]])  # column 12: d = float32(2 + 1e-6)
    new = C.gaussian_heatmaps(c, (13, 6), 0.5, window=2.0)
    ref = ref_gaussian_heatmaps(c, (13, 6), 0.5, window=2.0)
    assert torch.equal(new > 0, ref > 0) and bool((new[0, 0, :, 12] > 0).any())
    assert torch.allclose(new, ref, rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_dropped_joints_are_zero(dtype: torch.dtype) -> None:
    """In half precision too a dropped joint's maps are exactly 0 (no NaN offsets, no e^-60 Gaussian)."""
    c = torch.tensor([[[2.3, 1.7], [3.0, 2.0], [float("nan"), 2.0]]], dtype=dtype)
    keep = torch.tensor([[True, False, True]])
    t = C.disc_offset_targets(c, (6, 5), 1.5, 1.5, keep=keep, mask_offsets=True, sigma=1.0)
    for maps in (t.disc[0, 1:], t.offsets[0, 1:], t.weighted[0, 1:]):
        assert torch.equal(maps, torch.zeros_like(maps))
    assert bool((t.disc[0, 0] > 0).any()) and bool(torch.isfinite(t.offsets).all())
    g = C.gaussian_heatmaps(c, (6, 5), 1.0, keep=keep)
    assert torch.equal(g[0, 1:], torch.zeros_like(g[0, 1:])) and bool((g[0, 0] > 0).any())


@pytest.mark.parametrize("rounded,window", [(False, None), (True, 3.0), (False, 1.5), (True, None)])
def test_gaussian_heatmaps_equals_reference(rounded: bool, window: float | None) -> None:
    gen = torch.Generator().manual_seed(3)
    c = torch.rand(6, 5, 2, generator=gen) * torch.tensor([30.0, 40.0]) - 5.0
    c[0, 0] = torch.tensor([0.0, 0.0])
    c[0, 1] = torch.tensor([23.0, 31.0])
    c[0, 2] = torch.tensor([-3.0, 12.5])
    for sigma in (0.5, 1.0, 2.0):
        new = C.gaussian_heatmaps(c, (24, 32), sigma, rounded=rounded, window=window)
        ref = ref_gaussian_heatmaps(c, (24, 32), sigma, rounded=rounded, window=window)
        assert new.is_contiguous() and torch.allclose(new, ref, rtol=0.0, atol=1e-6)
        assert float(new[(new > 0)].min()) >= 0.99 * math.exp(_EXP_FLOOR)  # flushed: no denormals
    keep = torch.rand(6, 5, generator=gen) > 0.4
    new = C.gaussian_heatmaps(c, (24, 32), 1.0, keep=keep)
    ref = ref_gaussian_heatmaps(c, (24, 32), 1.0) * keep[..., None, None]
    assert torch.allclose(new, ref, rtol=0.0, atol=1e-6)


def test_disc_offsets_vectors_equal_reference() -> None:
    gen = torch.Generator().manual_seed(4)
    c = torch.rand(8, 5, 2, generator=gen, dtype=torch.float64) * 30 - 5
    c[0, 0] = torch.tensor([2.0, 2.0], dtype=torch.float64)  # integer centre: boundary pixels at exactly R
    keep = torch.rand(8, 5, generator=gen) > 0.3
    for radius in (1.0, 1.75, 4.0):
        assert torch.equal(C.disc_mask(c, (24, 32), radius), ref_disc_mask(c, (24, 32), radius))
        assert torch.equal(C.disc_mask(c, (24, 32), radius, keep=keep),
                           ref_disc_mask(c, (24, 32), radius) * keep[..., None, None])
    disc = ref_disc_mask(c, (24, 32), 4.0)
    for norm in (1.5, (2.0, 3.0)):
        assert torch.equal(C.offset_maps(c, (24, 32), norm), ref_offset_maps(c, (24, 32), norm))
        masked = ref_offset_maps(c, (24, 32), norm) * disc[:, :, None]
        assert torch.equal(C.offset_maps(c, (24, 32), norm, mask=disc), masked)
    v = c[..., 0] * 7
    for sigma in (1.0, 3.0):
        ref = ref_gaussian_vectors(v, 200, sigma)
        assert torch.allclose(C.gaussian_vectors(v, 200, sigma), ref, rtol=0, atol=1e-12)
        assert torch.allclose(C.gaussian_vectors(v, 200, sigma, keep=keep),
                              ref_gaussian_vectors(v, 200, sigma) * keep[..., None], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# The per-keypoint numpy loops of ``lrpose bench codecs`` (the speed references) build the same targets
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("res", ["128x96", "64x48"])
@pytest.mark.parametrize("name", ["heatmap", "dark", "udp", "cal", "cal_mgm"])
def test_numpy_loops_equal_batched(name: str, res: str) -> None:
    from lrpose_bench.cli.bench_cmd import CHECK_TOL, _check_equal, _loop_reference

    m = build_method(name)
    geo = m.geometry(parse_resolution(res))
    w, h = geo.crop_size
    gen = torch.Generator().manual_seed(5)
    kp = (torch.rand(3, 17, 2, generator=gen) * 1.4 - 0.2) * torch.tensor([float(w), float(h)])  # some off the crop
    kp[0, :3] = torch.tensor([[-3.0 * w, h / 2], [w / 2, 3.0 * h], [2.0 * w, -2.0 * h]])  # targets off the map
    with torch.no_grad():
        targets = m.encode(kp, torch.ones(3, 17), geo)
    ref = _loop_reference(name, m, geo, kp)
    assert ref is not None
    loop_targets = ref[1]()
    assert _check_equal(name, loop_targets, targets) <= CHECK_TOL
    assert float(targets["weight"].min()) == 0.0  # the draw includes joints whose target misses the map
    binary = {"udp": "heatmaps", "cal": "offset_mask", "cal_mgm": "offset_mask"}.get(name)
    if binary is not None:  # discs: exactly equal
        assert (loop_targets[binary] == targets[binary].numpy()).all()


def test_no_loop_for_other_targets() -> None:
    from lrpose_bench.cli.bench_cmd import _loop_reference

    m = build_method("cal", {"target": "disc"})
    geo = m.geometry(parse_resolution("64x48"))
    assert _loop_reference("cal", m, geo, torch.zeros(1, 17, 2)) is None
    assert _loop_reference("simcc", build_method("simcc"), geo, torch.zeros(1, 17, 2)) is None


def test_parse_threads() -> None:
    from lrpose_bench.cli.bench_cmd import parse_threads

    assert parse_threads("1,default") == [1, None]
    assert parse_threads(" 2 , 1 ") == [2, 1]
    for bad in ("0", "x", "1,,2", ""):
        with pytest.raises(ValueError, match="--threads"):
            parse_threads(bad)


def test_bench_codecs_rows() -> None:
    """Every requested method gets one row per thread count; methods with a loop also a loop row and a speedup."""
    from lrpose_bench.cli.bench_cmd import bench_codecs

    threads = torch.get_num_threads()
    rows = bench_codecs((48, 64), batch=2, repeat=1, device="cpu", threads=[1, None],
                        methods=["heatmap", "udp", "cal", "cal_mgm", "rle", "dsnt"])
    assert torch.get_num_threads() == threads  # restored
    by_method: dict[str, list[dict]] = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    for name in ("heatmap", "udp", "cal", "cal_mgm"):
        assert [r["threads"] for r in by_method[name]] == ["1", f"{threads} (default)"]
        assert all(r["speedup"] > 0 for r in by_method[name])
        (loop,) = by_method[f"{name} (numpy loop)"]
        assert loop["encode"] > 0 and "equal to batched" in loop["check"]
    # what CAL's encode writes, each storage once (heatmaps and offset_weight are one tensor): the disc, the
    # weighted disc, two offset channels on 16x12 maps, and the centres and weights, all float32
    maps = 2 * 17 * 16 * 12 * 4
    assert by_method["cal"][0]["megabytes"] * 1e6 == pytest.approx(4 * maps + 2 * 17 * 2 * 4 + 2 * 17 * 4)
    for name in ("rle", "dsnt"):
        assert len(by_method[name]) == 2
        assert all(r["encode"] > 0 and r["speedup"] != r["speedup"] for r in by_method[name])  # no loop: NaN


def test_interleaved_times_rounds_call_every_entry_in_turn() -> None:
    """Each round calls every entry once, in order, right after its ``prepare`` and one untimed call; the
    warm-up comes first, and every entry gets one time per round."""
    from lrpose_bench.cli.bench_cmd import _interleaved_times

    log: list[str] = []
    calls = {name: ((lambda name=name: log.append(name)), (lambda name=name: log.append(f"prep {name}")))
             for name in ("loop", "encode")}
    times = _interleaved_times(calls, rounds=3, sync=lambda: None, warmup=2)
    assert {k: len(v) for k, v in times.items()} == {"loop": 3, "encode": 3}
    assert all(t > 0 for v in times.values() for t in v)
    warm = ["prep loop", "loop", "loop", "prep encode", "encode", "encode"]
    one_round = ["prep loop", "loop", "loop", "prep encode", "encode", "encode"]
    assert log == warm + one_round * 3
