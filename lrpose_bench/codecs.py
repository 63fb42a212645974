"""Batched codec primitives shared by the methods: targets, peak finding and sub-pixel refinement.

Every function is pure tensor code on whatever device/dtype its inputs use: no ``.numpy()``, no Python
loops over batch (B) or keypoints (K). Coordinates follow :mod:`lrpose_bench.geometry`: ``(x, y)``
with pixel centres at integers, here in *heatmap* px unless a docstring says otherwise; sizes are
``(width, height)``. Maps are ``(B, K, h, w)`` (one channel per keypoint) unless noted.

Resolution rules ("auto" options) live here too, so that every method scales the same way:
:func:`auto_sigma`, :func:`auto_blur_kernel`, :func:`auto_udp_radius`, :func:`auto_simcc_ratio`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

import torch

Size = Sequence[int]  # (width, height)

# --------------------------------------------------------------------------------------------------
# Resolution rules for "auto" options
# --------------------------------------------------------------------------------------------------
#: Reference heatmap width of the baselines' settings (256x192 input -> 64x48 heatmap).
REFERENCE_HEATMAP_WIDTH = 48


def auto_sigma(heatmap_size: Size, reference_sigma: float = 2.0) -> float:
    """Gaussian sigma (heatmap px) scaled with the heatmap: ``reference_sigma * w_hm / 48``.

    HRNet/SimpleBaseline use sigma 2 at a 64x48 heatmap; keeping the Gaussian the same size *relative to
    the person* gives 1.0 at 32x24 (128x96 input) and 0.5 at 16x12 (64x48 input).
    """
    return reference_sigma * float(heatmap_size[0]) / REFERENCE_HEATMAP_WIDTH


def auto_blur_kernel(heatmap_size: Size, reference_kernel: int = 11, minimum: int = 3) -> int:
    """Odd blur kernel (heatmap px) scaled with the heatmap width, at least 3.

    DarkPose blurs with 11 at a 64x48 heatmap and advises a smaller kernel at low resolution (DarkPose
    issue 22: 3 for small heatmaps). Rule: the odd integer nearest ``reference_kernel * w_hm / 48``,
    clamped to >= ``minimum``: 11 at w=48, 5 at w=24 (128x96 input), 3 at w=12 (64x48 input), 17 at
    w=72. The same rule scales UDP's kernels (15 for the class map, 7 for offsets at w=48).
    """
    k = reference_kernel * float(heatmap_size[0]) / REFERENCE_HEATMAP_WIDTH
    return max(int(minimum), 2 * int(math.floor((k - 1.0) / 2.0 + 0.5)) + 1)


def auto_udp_radius(heatmap_size: Size, reference_radius: float = 3.5, reference_side: int = 64) -> float:
    """UDP disc radius (heatmap px) scaled with the heatmap's longer side.

    UDP uses radius 3.5 at a 64x48 heatmap (MMPose expresses it as ``radius_factor = 3.5/64`` of
    ``max(w_hm, h_hm)``): 1.75 at 32x24, 0.875 at 16x12.
    """
    return reference_radius * float(max(heatmap_size)) / reference_side


def auto_simcc_ratio(input_size: Size) -> float:
    """SimCC split ratio: 2.0, or 3.0 when the input's shorter side is <= 64 px (SimCC's low-res setting)."""
    return 3.0 if min(input_size) <= 64 else 2.0


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def check_keypoints(keypoints: torch.Tensor, visibility: torch.Tensor, method: str = "") -> None:
    """Raise a one-line ``ValueError`` unless ``keypoints`` is float ``(B, K, 2)`` and ``visibility`` ``(B, K)``."""
    who = f"method {method!r}: " if method else ""
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or not keypoints.is_floating_point():
        raise ValueError(f"{who}keypoints must be a float tensor (B, K, 2), got {tuple(keypoints.shape)} "
                         f"{keypoints.dtype}")
    if tuple(visibility.shape) != tuple(keypoints.shape[:2]):
        raise ValueError(f"{who}visibility must be (B, K) = {tuple(keypoints.shape[:2])}, "
                         f"got {tuple(visibility.shape)}")


# --------------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------------
def _axes(size: Size, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``xs (w,)``, ``ys (h,)`` in the dtype/device of ``like`` (float)."""
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    w, h = int(size[0]), int(size[1])
    return (
        torch.arange(w, dtype=dtype, device=like.device),
        torch.arange(h, dtype=dtype, device=like.device),
    )


#: Exponents below this give exactly 0 (e^-60 ~ 1e-26): keeps results out of the denormal range, where
#: CPU arithmetic is ~10x slower, at no visible cost to any target.
EXP_FLOOR = -60.0


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 0.5)``: HRNet's ``int(x + 0.5)`` for x >= 0, without banker's rounding."""
    return torch.floor(x + 0.5)


class _JointAxes(NamedTuple):
    """Constant tensors of a ``(w, h)`` map for the target builders (see :func:`_joint_axes`)."""

    pos: torch.Tensor  # (w + h,) pixel centres along x (0..w-1), then along y (0..h-1)
    grid: torch.Tensor  # (2, h, w) the x and the y coordinate of every pixel centre
    last: torch.Tensor  # (2,) the last pixel centre plus 1e-6, (w - 1, h - 1)


@functools.lru_cache(maxsize=64)
def _joint_axes(w: int, h: int, dtype: torch.dtype, device: torch.device) -> _JointAxes:
    """:class:`_JointAxes` of a ``(w, h)`` map, cached per size, dtype and device (callers never write to them)."""
    with torch.inference_mode(False):  # plain tensors even when first built under inference mode
        pos = torch.cat([torch.arange(w, dtype=dtype), torch.arange(h, dtype=dtype)])
        grid = torch.stack(torch.meshgrid(pos[:w], pos[w:], indexing="xy"))
        last = torch.tensor([float(w) - 1 + 1e-6, float(h) - 1 + 1e-6], dtype=dtype)
        return _JointAxes(pos.to(device), grid.to(device), last.to(device))


def _axes_of(size: Size, like: torch.Tensor) -> _JointAxes:
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    return _joint_axes(int(size[0]), int(size[1]), dtype, like.device)


def _axis_deltas(centres: torch.Tensor, size: Size) -> torch.Tensor:
    """``(B, K, w + h)``: ``pixel - centre`` in heatmap px, along x for the first ``w`` entries (pixel
    columns ``0..w-1``), along y for the last ``h`` (rows). One tensor, so each 1-D factor of a separable
    target costs one op for both axes (written by two broadcast subtractions: cheaper than gathering the
    centre coordinate of each entry)."""
    c = centres if centres.is_floating_point() else centres.to(torch.get_default_dtype())
    w = int(size[0])
    pos = _axes_of(size, c).pos
    out = torch.empty((*c.shape[:-1], pos.numel()), dtype=torch.promote_types(c.dtype, pos.dtype), device=c.device)
    torch.sub(pos[:w], c[..., 0:1], out=out[..., :w])
    torch.sub(pos[w:], c[..., 1:2], out=out[..., w:])
    return out


def _keep_bool(keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``keep`` (bool, or a number true where > 0) as bool ``(..., 1)`` on the device of ``like``."""
    k = keep if keep.dtype == torch.bool else keep > 0
    return k.to(like.device)[..., None]


def _far_if_dropped(centres: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """``centres`` (float ``(B, K, 2)``) with non-finite coordinates moved to +inf, and both coordinates of
    joints where ``keep`` ``(B, K)`` is false: either way the joint's disc and Gaussian are all zero (one
    infinite coordinate suffices), in any float dtype, in two ops. Offsets from such centres are infinite:
    :func:`_finite_offsets_` zeroes them before they are masked."""
    c = centres if centres.is_floating_point() else centres.to(torch.get_default_dtype())
    c = torch.nan_to_num(c, nan=math.inf, posinf=math.inf, neginf=math.inf)
    return c if keep is None else torch.where(_keep_bool(keep, c), c, math.inf)


def _outer(factors: torch.Tensor, w: int) -> torch.Tensor:
    """``(..., w + h)`` x/y factors -> their outer product ``(..., h, w)`` (one pass over the maps)."""
    return factors[..., :w].unsqueeze(-2) * factors[..., w:].unsqueeze(-1)


def _floored_exp_(arg: torch.Tensor, floor: float = EXP_FLOOR / 2) -> torch.Tensor:
    """``exp(arg)`` in place, 0 where ``arg <= floor`` (to ``2 eps`` of the dtype in the exponent, 2.4e-7 in
    float32; -inf included). ``arg`` must not hold NaN.

    ``exp`` only sees arguments ``>= floor``: on CPU, arguments whose exponential underflows (or -inf) take a
    slow path of the vectorised ``exp`` (~10x slower per element), so they are clamped first and the clamped
    values zeroed after, three passes. The zeroing threshold is ``e^floor`` raised by ``2 eps``, so a clamped
    value gives 0 whichever ``exp`` kernel computed it (the vectorised one and the scalar tail may differ in
    the last bit, and a low-precision dtype rounds ``e^floor`` up by up to ``eps``). With the default floor
    the 1-D factors of a Gaussian are 0 or above ``e^-30``, so their products stay above ``e^-60`` ~ 1e-26,
    far from the denormal range, where CPU arithmetic is ~10x slower.
    """
    threshold = math.exp(floor) * (1.0 + 2.0 * torch.finfo(arg.dtype).eps)
    return torch.threshold_(arg.clamp_min_(floor).exp_(), threshold, 0.0)


# --------------------------------------------------------------------------------------------------
# Targets
#
# Every map is built from per-joint 1-D factors along x and y (one ``(B, K, w + h)`` tensor) and then
# written in one or two broadcast passes over ``(B, K, h, w)``: an outer product (Gaussians), a broadcast
# comparison written as 0/1 in the float dtype (discs), a product with the disc (masked offsets); unmasked
# offsets are the centre minus a cached pixel grid.
# Joints that a method zeroes (``keep`` false, or a non-finite centre) are moved infinitely far before
# anything is computed, not zeroed by another pass over the maps. No bool map is ever converted to float
# (slow on CPU), and ``exp`` never sees an argument that underflows (a slow path of the vectorised CPU
# ``exp``). Every op costs ~10 us of dispatch on a small CPU, so the 1-D work is kept to a few ops.
# --------------------------------------------------------------------------------------------------
def gaussian_factors(
    centres: torch.Tensor,
    size: Size,
    sigma: float,
    rounded: bool = False,
    window: float | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The separable factors of :func:`gaussian_heatmaps`: ``(B, K, w + h)``, x factors then y factors.

    Each is ``exp(-d^2 / (2 sigma^2))`` (``d`` the distance in heatmap px from the centre along its
    axis), 0 where the exponent is ``<= EXP_FLOOR / 2`` (:func:`_floored_exp_`), outside ``window``
    (``|d| <= window + 1e-6``), along the axis of a non-finite coordinate, and
    wherever ``keep`` ``(B, K)`` is false. The heatmap is ``factors[..., None, :w] * factors[..., w:, None]``.
    """
    c = _far_if_dropped(round_half_up(centres) if rounded else centres, keep)  # dropped: every factor 0
    d = _axis_deltas(c, size)
    if window is not None:  # -|d|, and -inf where |d| > window + 1e-6: the factor is 0 there
        torch.threshold_(d.abs_().neg_(), _below_negated(window + 1e-6, d.dtype), -math.inf)
    return _floored_exp_(d.mul_(d).div_(-2.0 * sigma * sigma))  # exponent -(d^2) / (2 sigma^2), exactly


@functools.lru_cache(maxsize=64)
def _below_negated(bound: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value below ``-bound`` (as ``dtype`` rounds it): ``-|d| <= it`` exactly when
    ``|d| > bound`` compared in ``dtype``, so ``torch.threshold_`` (which replaces values ``<=`` its threshold)
    does the strict test in one in-place op."""
    negated = torch.tensor(-bound, dtype=dtype)
    return float(torch.nextafter(negated, torch.tensor(-math.inf, dtype=dtype)))


def gaussian_heatmaps(
    centres: torch.Tensor,
    size: Size,
    sigma: float,
    rounded: bool = False,
    window: float | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian heatmaps ``(B, K, h, w)``: ``exp(-((x-cx)^2 + (y-cy)^2) / (2 sigma^2))``.

    ``centres`` ``(B, K, 2)`` heatmap px; ``size`` ``(w, h)``; ``sigma`` heatmap px.
    ``rounded`` puts the peak at the nearest pixel, ``floor(c + 0.5)`` (the MSRA/HRNet target, peak value
    exactly 1); otherwise at the sub-pixel centre (DarkPose's unbiased encoding, UDP/MMPose).
    ``window`` (heatmap px) zeroes pixels with ``max(|x-cx|, |y-cy|) > window``: HRNet draws the Gaussian
    only in a ``(2*3sigma+1)^2`` square patch, i.e. ``window = 3*sigma`` (identical to HRNet when
    ``3*sigma`` is an integer). ``None`` draws it over the whole map. ``keep`` ``(B, K)``: joints where it
    is false get an all-zero map, as do non-finite centres. Each 1-D factor is 0 or above
    ``e^-30`` (:func:`_floored_exp_`), so every value is 0 or above ``e^-60``: no denormals.

    One pass over the maps: the outer product of :func:`gaussian_factors`.
    """
    return _outer(gaussian_factors(centres, size, sigma, rounded, window, keep), int(size[0]))


def window_visible(centres: torch.Tensor, size: Size, window: float, rounded: bool = False) -> torch.Tensor:
    """Bool ``(B, K)``: does the square ``|x-cx|, |y-cy| <= window`` around a centre touch the map?

    HRNet zeroes a joint's target weight when its Gaussian patch lies wholly outside the heatmap; this is
    that test (symmetric, in heatmap px, with a 1e-6 px tolerance; ``rounded`` as in
    :func:`gaussian_heatmaps`).
    """
    c = round_half_up(centres) if rounded else centres
    return ((c + window >= -1e-6) & (c - window <= _axes_of(size, c).last)).all(-1)


def disc_mask(centres: torch.Tensor, size: Size, radius: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Binary discs ``(B, K, h, w)`` (dtype of ``centres``): 1 where ``|pixel - centre| <= radius``.

    UDP's classification target (centres at sub-pixel positions, heatmap px; the boundary is inside, with
    a relative slack of 1e-6 on ``radius^2``). ``keep`` ``(B, K)``: joints where it is false get an
    all-zero map, as do non-finite centres. See :func:`disc_offset_targets`.
    """
    return disc_offset_targets(centres, size, radius, keep=keep, offsets=False).disc


def offset_maps(
    centres: torch.Tensor,
    size: Size,
    normaliser: float | Sequence[float] = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Offset fields ``(B, K, 2, h, w)``: ``(centre - pixel) / normaliser`` for x (channel 0) and y (1).

    ``normaliser`` is a scalar or an ``(x, y)`` pair (UDP: the disc radius; CAL: 1.5). Reading the map at
    pixel ``p`` and adding ``normaliser * value`` to ``p`` recovers the centre exactly. ``mask``
    ``(B, K, h, w)`` (any map): the fields are multiplied by it as they are written
    (:func:`disc_offset_targets` writes disc-masked offsets without a dense mask).
    """
    if mask is None:
        return _full_offsets(centres, size, normaliser)
    return _masked_offsets(_offset_factors(_axis_deltas(centres, size), size, normaliser), size, mask)


def _normalisers(normaliser: float | Sequence[float]) -> tuple[float, float]:
    """A scalar or ``(x, y)`` offset normaliser as ``(nx, ny)``."""
    if isinstance(normaliser, (int, float)):
        return normaliser, normaliser
    nx, ny = normaliser
    return nx, ny


def _offset_factors(deltas: torch.Tensor, size: Size, normaliser: float | Sequence[float]) -> torch.Tensor:
    """``(..., w + h)`` ``pixel - centre`` (overwritten) -> ``(centre - pixel) / normaliser`` per axis.

    ``d / -n`` is bit for bit ``(c - p) / n``: IEEE subtraction and division are exact under negation.
    """
    nx, ny = _normalisers(normaliser)
    if nx == ny:
        return deltas.div_(-nx)
    w = int(size[0])
    deltas[..., :w].div_(-nx)
    deltas[..., w:].div_(-ny)
    return deltas


def _finite_offsets_(o: torch.Tensor) -> torch.Tensor:
    """Per-axis offsets with the infinite ones (joints moved away by :func:`_far_if_dropped`) set to 0, in place,
    so that masking them by their all-zero discs gives 0, not NaN."""
    return o.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def _masked_offsets(o: torch.Tensor, size: Size, mask: torch.Tensor) -> torch.Tensor:
    """``(B, K, w + h)`` per-axis offsets times ``mask`` ``(B, K, h, w)`` -> ``(B, K, 2, h, w)``: one
    broadcast product per channel, written in place."""
    w, h = int(size[0]), int(size[1])
    b, k = o.shape[:2]
    out = torch.empty((b, k, 2, h, w), dtype=torch.promote_types(o.dtype, mask.dtype), device=o.device)
    torch.mul(o[..., :w].unsqueeze(-2), mask, out=out[:, :, 0])
    torch.mul(o[..., w:].unsqueeze(-1), mask, out=out[:, :, 1])
    return out


def _full_offsets(centres: torch.Tensor, size: Size, normaliser: float | Sequence[float]) -> torch.Tensor:
    """:func:`offset_maps` without a mask: ``centre - pixel`` against the cached pixel grid, then divided in
    place. Two passes over the maps, but their inner loop runs over whole maps: measured faster than one
    broadcast copy per channel, whose inner loop is one row (w px)."""
    c = centres if centres.is_floating_point() else centres.to(torch.get_default_dtype())
    out = c[..., None, None] - _axes_of(size, c).grid  # (B, K, 2, h, w)
    nx, ny = _normalisers(normaliser)
    if nx == ny:
        return out.div_(nx)
    out[:, :, 0].div_(nx)
    out[:, :, 1].div_(ny)
    return out


class DiscTargets(NamedTuple):
    """What :func:`disc_offset_targets` builds (heatmap px)."""

    disc: torch.Tensor  # (B, K, h, w) 0/1, all zero where keep is false
    offsets: torch.Tensor | None  # (B, K, 2, h, w) (centre - pixel) / normaliser, times the disc if masked
    weighted: torch.Tensor | None  # (B, K, h, w) the disc times the sub-pixel Gaussian of ``sigma`` (CAL's B * C)


def disc_offset_targets(
    centres: torch.Tensor,
    size: Size,
    radius: float,
    normaliser: float | Sequence[float] = 1.0,
    keep: torch.Tensor | None = None,
    offsets: bool = True,
    mask_offsets: bool = False,
    sigma: float | None = None,
) -> DiscTargets:
    """UDP's and CAL's maps from one set of 1-D factors: the disc, the offset fields, the weighted disc.

    ``centres`` ``(B, K, 2)`` heatmap px; ``radius`` of the disc (:func:`disc_mask`); ``normaliser`` of the
    offsets (:func:`offset_maps`), which are left out with ``offsets=False`` and multiplied by the disc
    with ``mask_offsets`` (CAL; UDP writes them over the whole map, for every joint); ``sigma``: also the
    disc times the sub-pixel Gaussian (:func:`gaussian_heatmaps`), CAL's Gaussian-weighted binary heatmap.
    ``keep`` ``(B, K)``: joints where it is false, or whose centre is not finite, get an all-zero disc and
    weighted disc (so, masked, all-zero offsets). Each map equals the single-purpose function's.

    The disc is ``dx^2 <= r^2 (1 + 1e-6) - dy^2`` in the float dtype: the test ``dx^2 + dy^2 <= r^2 (1 + 1e-6)``
    but for a pixel within float rounding of the slackened boundary. Passes over ``(B, K, h, w)``: one for
    the disc, two for the weighted disc, one per masked offset channel (two over both channels unmasked).
    """
    w = int(size[0])
    c = _far_if_dropped(centres, keep)
    d = _axis_deltas(c, size)  # pixel - centre, (B, K, w + h)
    sq = d * d
    # dx^2 <= R - dy^2, compared into the float dtype: one pass writing 0/1 (a bool map converted to float,
    # or the sum dx^2 + dy^2 compared in place, costs two)
    room = sq[..., w:].neg().add_(radius * radius * (1.0 + 1e-6))  # R - dy^2, (B, K, h)
    disc = torch.empty((*sq.shape[:-1], room.shape[-1], w), dtype=sq.dtype, device=sq.device)
    torch.le(sq[..., :w].unsqueeze(-2), room.unsqueeze(-1), out=disc)
    weighted = None
    if sigma is not None:
        weighted = _outer(_floored_exp_(sq.div_(-2.0 * sigma * sigma)), w).mul_(disc)
    off = None
    if offsets and mask_offsets:  # a dropped joint's (infinite) offsets are zeroed, then masked
        off = _masked_offsets(_finite_offsets_(_offset_factors(d, size, normaliser)), size, disc)
    elif offsets:  # over the whole map, from the joints' own centres (also where keep is false)
        off = _full_offsets(centres, size, normaliser)
    return DiscTargets(disc, off, weighted)


def gaussian_vectors(
    centres: torch.Tensor, length: int, sigma: float, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """1-D Gaussians ``(..., length)`` over bins ``0..length-1`` centred at ``centres`` (``(...)``, bins).

    SimCC's smoothed labels (one call per axis), unnormalised (peak 1 at an integer centre), 0 below
    ``e^EXP_FLOOR``. ``keep`` (shape of ``centres``): vectors where it is false are all zero, as are those
    of NaN centres. A few passes over ``(..., length)``, mostly in place.
    """
    dtype = centres.dtype if centres.is_floating_point() else torch.get_default_dtype()
    # NaN and dropped centres infinitely distant: all bins 0 (cheaper than masking the vectors)
    c = torch.nan_to_num(centres.to(dtype), nan=math.inf, posinf=math.inf, neginf=math.inf)
    if keep is not None:
        c = c.masked_fill(~_keep_bool(keep, c)[..., 0], math.inf)
    bins = torch.arange(int(length), dtype=dtype, device=centres.device)
    d = bins - c[..., None]
    return _floored_exp_(d.mul_(d).div_(-2.0 * sigma * sigma), EXP_FLOOR)  # exponent -(d^2) / (2 sigma^2) exactly


# --------------------------------------------------------------------------------------------------
# Peaks
# --------------------------------------------------------------------------------------------------
def argmax_2d(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer peak of each map: ``coords`` ``(..., 2)`` heatmap px (float, (x, y)) and ``maxvals`` ``(...)``.

    ``heatmaps`` is ``(..., h, w)``. Ties go to the first pixel in row-major order (as numpy's argmax).
    No masking of non-positive peaks is done here (HRNet zeroes coords where maxval <= 0; callers that
    want this can do it with ``maxvals``).
    """
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], h * w)
    maxvals, idx = flat.max(dim=-1)
    dtype = heatmaps.dtype if heatmaps.is_floating_point() else torch.get_default_dtype()
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(dtype)
    return coords, maxvals


def _pixel_index(coords: torch.Tensor, size: Size) -> torch.Tensor:
    """Nearest pixel of ``coords`` ``(..., 2)`` clamped into the map, as int64."""
    w, h = int(size[0]), int(size[1])
    p = round_half_up(coords).long()
    return torch.stack([p[..., 0].clamp(0, w - 1), p[..., 1].clamp(0, h - 1)], dim=-1)


def sample_maps(maps: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Values of ``maps`` ``(B, K, h, w)`` at integer pixels ``px, py`` ``(B, K, ...)`` clamped into the map.

    Out-of-map positions read the nearest border pixel (replicate padding).
    """
    b, k, h, w = maps.shape
    px = px.clamp(0, w - 1)
    py = py.clamp(0, h - 1)
    flat = maps.reshape(b, k, h * w)
    idx = (py * w + px).reshape(b, k, -1)
    return torch.gather(flat, 2, idx).reshape(px.shape)


def gather_at(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Read ``maps`` ``(B, K, C, h, w)`` at integer pixels ``coords`` ``(B, K, 2)`` (x, y) -> ``(B, K, C)``.

    ``coords`` may be float holding integers (e.g. from :func:`argmax_2d`); they are rounded and clamped.
    """
    b, k, c, h, w = maps.shape
    p = _pixel_index(coords, (w, h))
    idx = (p[..., 1] * w + p[..., 0]).reshape(b, k, 1, 1).expand(b, k, c, 1)
    return torch.gather(maps.reshape(b, k, c, h * w), 3, idx).squeeze(-1)


def quarter_offset_refine(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """HRNet's post-processing: move each integer peak 0.25 px toward the higher neighbour, per axis.

    ``heatmaps`` ``(B, K, h, w)``, ``coords`` ``(B, K, 2)`` integer peaks (heatmap px) -> refined coords.
    An axis is shifted only where both neighbours exist (``0 < x < w-1``); HRNet's stricter test
    (``1 < x < w-1`` and the same on the other axis) skips more border peaks for no reason. Equal
    neighbours give no shift (``sign(0) = 0``).
    """
    h, w = heatmaps.shape[-2:]
    p = _pixel_index(coords, (w, h))
    x, y = p[..., 0], p[..., 1]
    dx = sample_maps(heatmaps, x + 1, y) - sample_maps(heatmaps, x - 1, y)
    dy = sample_maps(heatmaps, x, y + 1) - sample_maps(heatmaps, x, y - 1)
    ok_x = (x > 0) & (x < w - 1)
    ok_y = (y > 0) & (y < h - 1)
    shift = torch.stack([torch.sign(dx) * ok_x, torch.sign(dy) * ok_y], dim=-1).to(coords.dtype)
    return coords + 0.25 * shift


# --------------------------------------------------------------------------------------------------
# Blur (DarkPose's modulation) and the DARK Taylor step
# --------------------------------------------------------------------------------------------------
# OpenCV's fixed kernels for sigma <= 0 and ksize <= 7 (cv::getGaussianKernel's small_gaussian_tab).
_CV_SMALL_KERNELS = {
    1: (1.0,),
    3: (0.25, 0.5, 0.25),
    5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
}


def gaussian_kernel_1d(kernel: int, sigma: float = 0.0, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """The 1-D kernel ``cv2.getGaussianKernel(kernel, sigma)`` uses (sums to 1).

    ``sigma <= 0`` means OpenCV's default ``0.3 * ((kernel - 1) * 0.5 - 1) + 0.8``, and OpenCV's fixed
    binomial tables for kernel sizes 1, 3, 5, 7 (so ``cv2.GaussianBlur(hm, (k, k), 0)`` is reproduced).
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel must be a positive odd integer, got {kernel}")
    if sigma <= 0 and kernel in _CV_SMALL_KERNELS:
        return torch.tensor(_CV_SMALL_KERNELS[kernel], dtype=dtype, device=device)
    s = sigma if sigma > 0 else 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    x = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    g = torch.exp(-(x * x) / (2 * s * s))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur_matrix(n: int, g: torch.Tensor, padding: str) -> torch.Tensor:
    """``(n, n)`` matrix ``M`` with ``(M @ v)[i] = sum_t g[t] * v[i + t - pad]`` along one axis of length ``n``.

    Out-of-range taps read zero (``"zeros"``) or the mirrored index without repeating the border
    (``"reflect"``, OpenCV's ``BORDER_REFLECT_101``).
    """
    k = g.numel()
    pad = (k - 1) // 2
    i = torch.arange(n, device=g.device)[:, None]
    j = i + torch.arange(k, device=g.device)[None, :] - pad  # (n, k) source index of each tap
    if padding == "reflect":
        j = j.abs()
        j = torch.where(j > n - 1, 2 * (n - 1) - j, j)
        valid = torch.ones_like(j, dtype=torch.bool)
    else:
        valid = (j >= 0) & (j < n)
    m = torch.zeros(n, n, dtype=g.dtype, device=g.device)
    taps = g.expand(n, k) * valid.to(g.dtype)
    m.scatter_add_(1, j.clamp(0, n - 1), taps)
    return m


def gaussian_blur(heatmaps: torch.Tensor, kernel: int, keep_max: bool = True, padding: str = "zeros") -> torch.Tensor:
    """DarkPose's distribution modulation: blur each map, zero padding, optionally restore its maximum.

    ``heatmaps`` ``(..., h, w)``; ``kernel`` odd size in heatmap px (OpenCV's default sigma for it).
    DarkPose pads with zeros by ``(kernel-1)/2``, blurs with ``cv2.GaussianBlur(.., (k,k), 0)``, crops back,
    and rescales each map so that its maximum equals the maximum before blurring (``keep_max``).
    ``padding="reflect"`` instead mirrors the border without repeating it, OpenCV's default
    ``BORDER_REFLECT_101`` (what UDP/MMPose get when blurring offset maps in place); it needs
    ``kernel // 2 < min(h, w)``. ``kernel`` 1 returns the input unchanged.
    """
    if kernel == 1:
        return heatmaps
    if padding not in ("zeros", "reflect"):
        raise ValueError(f"blur padding must be 'zeros' or 'reflect', got {padding!r}")
    shape = heatmaps.shape
    h, w = shape[-2:]
    pad = (kernel - 1) // 2
    if padding == "reflect" and pad >= min(h, w):
        raise ValueError(f"blur kernel {kernel} is too large for reflect padding of a {h}x{w} map")
    g = gaussian_kernel_1d(kernel, dtype=heatmaps.dtype, device=heatmaps.device)
    # The separable blur as two small matrix products (padding folded into the matrices): far faster
    # than a 1-channel convolution over B*K maps, and exact for both paddings.
    x = heatmaps.reshape(-1, h, w)
    x = _blur_matrix(h, g, padding) @ x @ _blur_matrix(w, g, padding).T
    out = x.reshape(shape)
    if keep_max:
        before = heatmaps.amax(dim=(-2, -1), keepdim=True)
        after = out.amax(dim=(-2, -1), keepdim=True)
        out = out * torch.where(after.abs() > 0, before / after.where(after.abs() > 0, torch.ones_like(after)),
                                torch.ones_like(after))
    return out


def dark_refine(
    heatmaps: torch.Tensor,
    coords: torch.Tensor,
    kernel: int = 1,
    eps: float = 1e-10,
    max_step: float = 1.0,
    border: str = "fit",
) -> torch.Tensor:
    """DARK: one Newton step on the log of the (blurred) heatmap around each integer peak.

    ``heatmaps`` ``(B, K, h, w)``, ``coords`` ``(B, K, 2)`` integer peaks (heatmap px, e.g. from
    :func:`argmax_2d` on the *unblurred* map) -> refined coords (heatmap px).

    Steps (DarkPose): blur with ``kernel`` (:func:`gaussian_blur`, 1 = none), ``f = log(max(hm, eps))``,
    then ``c - H^{-1} g``. Away from the border the stencils are DarkPose's:
    ``g_x = (f(x+1) - f(x-1)) / 2``, ``f_xx = (f(x+2) - 2 f(x) + f(x-2)) / 4``,
    ``f_xy = (f(x+1,y+1) - f(x+1,y-1) - f(x-1,y+1) + f(x-1,y-1)) / 4``.
    Where they would leave the map (DarkPose then skips the peak) the same derivatives come from the
    3-pixel quadratic fit centred at the nearest interior pixel ``s = clamp(x, 1, w-2)``:
    ``f_xx = f(s+1) - 2 f(s) + f(s-1)``, ``g_x = (f(s+1) - f(s-1)) / 2 + f_xx (x - s)``.
    Every stencil is exact for a quadratic, so an exact sub-pixel Gaussian is recovered exactly anywhere
    on the map. The step is applied only where the Hessian is negative definite (a true maximum;
    DarkPose only asks det != 0) and each axis is clamped to ``±max_step`` px, so a flat or saddle-shaped
    neighbourhood never throws a point across the map. Maps narrower than 3 px are returned unrefined.
    ``border="skip"`` leaves peaks within 2 px of the border unrefined instead, as DarkPose and MMPose do
    (their 5-point stencils need ``2 <= x <= w - 3``).
    """
    if border not in ("fit", "skip"):
        raise ValueError(f"dark_refine: border must be 'fit' or 'skip', got {border!r}")
    h, w = heatmaps.shape[-2:]
    if h < 3 or w < 3:
        return coords
    hm = gaussian_blur(heatmaps, kernel) if kernel > 1 else heatmaps
    f = torch.log(hm.clamp_min(eps))
    p = _pixel_index(coords, (w, h))
    x, y = p[..., 0], p[..., 1]
    sx, sy = x.clamp(1, w - 2), y.clamp(1, h - 2)

    def at(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
        return sample_maps(f, px, py)

    f0 = at(x, y)
    # second derivatives along each axis
    wide_x = (x >= 2) & (x <= w - 3)
    wide_y = (y >= 2) & (y <= h - 3)
    hxx_narrow = at(sx + 1, y) - 2 * at(sx, y) + at(sx - 1, y)
    hyy_narrow = at(x, sy + 1) - 2 * at(x, sy) + at(x, sy - 1)
    hxx = torch.where(wide_x, 0.25 * (at(x + 2, y) - 2 * f0 + at(x - 2, y)), hxx_narrow)
    hyy = torch.where(wide_y, 0.25 * (at(x, y + 2) - 2 * f0 + at(x, y - 2)), hyy_narrow)
    hxy = 0.25 * (at(sx + 1, sy + 1) - at(sx + 1, sy - 1) - at(sx - 1, sy + 1) + at(sx - 1, sy - 1))
    # first derivatives at the peak itself
    gx = 0.5 * (at(sx + 1, y) - at(sx - 1, y)) + hxx_narrow * (x - sx).to(f.dtype)
    gy = 0.5 * (at(x, sy + 1) - at(x, sy - 1)) + hyy_narrow * (y - sy).to(f.dtype)
    det = hxx * hyy - hxy * hxy
    ok = (hxx < 0) & (det > 0)
    if border == "skip":
        ok = ok & wide_x & wide_y
    safe_det = torch.where(ok, det, torch.ones_like(det))
    # -H^{-1} g with H^{-1} = [[hyy, -hxy], [-hxy, hxx]] / det
    sx_step = -(hyy * gx - hxy * gy) / safe_det
    sy_step = -(-hxy * gx + hxx * gy) / safe_det
    step = torch.stack([sx_step, sy_step], dim=-1) * ok[..., None].to(f.dtype)
    step = step.clamp(-max_step, max_step).to(coords.dtype)
    return coords + step


# --------------------------------------------------------------------------------------------------
# Flip helpers
# --------------------------------------------------------------------------------------------------
def flip_maps(maps: torch.Tensor, flip_index: Sequence[int] | torch.Tensor, joint_dim: int = 1) -> torch.Tensor:
    """Mirror maps ``(..., w)`` along their last axis and reorder joints along ``joint_dim`` by ``flip_index``.

    Works for heatmaps ``(B, K, h, w)``, offset fields ``(B, K, 2, h, w)`` and SimCC x-vectors ``(B, K, L)``
    alike (a mirror of pixel/bin ``i`` is ``w-1-i``, exact in the pixel-centre convention). Offsets' x
    channel must additionally be negated by the caller.
    """
    idx = torch.as_tensor(list(flip_index) if not isinstance(flip_index, torch.Tensor) else flip_index,
                          dtype=torch.long, device=maps.device)
    return maps.flip(-1).index_select(joint_dim, idx)


def shift_right(maps: torch.Tensor, pixels: int = 1) -> torch.Tensor:
    """Shift maps ``(..., w)`` right by ``pixels`` along the last axis; the first columns keep their values.

    HRNet's flip-test correction for the biased transform: ``out[..., 1:] = in[..., :-1]`` in place, so
    column 0 keeps its own value.
    """
    if pixels <= 0:
        return maps
    return torch.cat([maps[..., :pixels], maps[..., :-pixels]], dim=-1)


__all__ = [
    "check_keypoints",
    "auto_sigma",
    "auto_blur_kernel",
    "auto_udp_radius",
    "auto_simcc_ratio",
    "round_half_up",
    "gaussian_factors",
    "gaussian_heatmaps",
    "window_visible",
    "disc_mask",
    "offset_maps",
    "DiscTargets",
    "disc_offset_targets",
    "gaussian_vectors",
    "argmax_2d",
    "sample_maps",
    "gather_at",
    "quarter_offset_refine",
    "gaussian_kernel_1d",
    "gaussian_blur",
    "dark_refine",
    "flip_maps",
    "shift_right",
]


# --------------------------------------------------------------------------------------------------
# Quantisation-free codecs: normalised coordinates and the soft-argmax family (IPR, DSNT, Debias-IPR)
# --------------------------------------------------------------------------------------------------
def to_unit(points: torch.Tensor, size: Size) -> torch.Tensor:
    """Pixel coordinates ``(..., 2)`` -> *normalised* coordinates of a ``size = (w, h)`` px extent.

    ``u = (x + 0.5) / w``, ``v = (y + 0.5) / h``: in the pixel-centre convention a map or crop of width
    ``w`` spans ``[-0.5, w - 0.5]``, which becomes ``[0, 1]``, and a horizontal mirror ``x' = w - 1 - x``
    becomes exactly ``u' = 1 - u``. (DSNT's ``[-1, 1]`` units are ``2 u - 1``; MMPose's
    ``RegressionLabel`` divides by ``w`` without the half-pixel shift.)
    """
    s = points.new_tensor([float(size[0]), float(size[1])])
    return (points + 0.5) / s


def from_unit(unit: torch.Tensor, size: Size) -> torch.Tensor:
    """Normalised coordinates ``(..., 2)`` -> pixel coordinates of a ``(w, h)`` extent (inverse of :func:`to_unit`)."""
    s = unit.new_tensor([float(size[0]), float(size[1])])
    return unit * s - 0.5


def flat_softmax(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """``softmax(beta * logits)`` over each map's pixels: ``(..., h, w)`` -> probabilities summing to 1 per map.

    ``beta`` is the inverse temperature (IPR and DSNT: 1; MMPose's Debias-IPR config: 10).
    """
    h, w = logits.shape[-2:]
    flat = torch.softmax(beta * logits.reshape(*logits.shape[:-2], h * w), dim=-1)
    return flat.reshape(logits.shape)


def soft_argmax_2d(logits: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Integral regression's soft-argmax: the expectation of ``softmax(beta * logits)`` over pixel centres.

    ``logits`` ``(..., h, w)`` -> ``coords (..., 2)`` (x, y) in *map* px and the probabilities
    ``(..., h, w)``. ``x = sum_ij p_ij * j``, ``y = sum_ij p_ij * i`` (Sun et al. 2018, Eq. 2; DSNT's
    transform in pixel units). A result always lies in the hull of the pixel centres, ``[0, w-1] x [0, h-1]``.
    """
    probs = flat_softmax(logits, beta)
    xs, ys = _axes((logits.shape[-1], logits.shape[-2]), probs)
    x = (probs.sum(dim=-2) * xs).sum(dim=-1)  # marginal over rows, then the x expectation
    y = (probs.sum(dim=-1) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1), probs


#: Smallest foreground fraction ``(C - hw) / C`` the debiased soft-argmax divides by (a numerical guard:
#: a trained map has a fraction near 1; a map with no foreground would otherwise divide by ~0).
DEBIAS_MIN_FOREGROUND = 1e-2


def debiased_soft_argmax_2d(
    logits: torch.Tensor, beta: float = 1.0, min_foreground: float = DEBIAS_MIN_FOREGROUND
) -> torch.Tensor:
    """Gu et al.'s debiased soft-argmax (ICCV 2021): the expectation of the foreground of ``exp(beta * logits)``.

    ``logits`` ``(..., h, w)`` -> coords ``(..., 2)`` in *map* px. With ``C = sum exp(beta H)`` and
    ``hw`` pixels, a background at ``H = 0`` puts mass ``hw / C`` of the softmax uniformly on the map and
    pulls the plain soft-argmax ``J_s`` toward the map's centre ``c = ((w-1)/2, (h-1)/2)``. Removing it:

        ``J = (C J_s - hw c) / (C - hw) = sum (exp(beta H) - 1) p / sum (exp(beta H) - 1)``

    (pixel positions ``p``), exact for any map whose background is 0. Computed with ``exp(beta H - m)``,
    ``m = max(0, max beta H)``, so large logits do not overflow. The denominator is held at
    ``>= min_foreground * C`` (:data:`DEBIAS_MIN_FOREGROUND`), so a map without foreground (an untrained
    network) gives a bounded answer and gradient; the result is not clamped into the map.
    """
    h, w = logits.shape[-2:]
    z = beta * logits.reshape(*logits.shape[:-2], h * w)
    m = z.detach().amax(dim=-1, keepdim=True).clamp_min(0.0)
    e = torch.exp(z - m).reshape(logits.shape)  # exp(beta H) / exp(m)
    bg = torch.exp(-m)[..., 0]  # exp(0) / exp(m): one background pixel's share, (...)
    xs, ys = _axes((w, h), e)
    total = e.sum(dim=(-2, -1))  # C / exp(m)
    num_x = (e.sum(dim=-2) * xs).sum(dim=-1) - bg * (h * xs.sum())  # sum over every pixel of (e - bg) x
    num_y = (e.sum(dim=-1) * ys).sum(dim=-1) - bg * (w * ys.sum())
    den = torch.maximum(total - bg * (h * w), min_foreground * total)
    return torch.stack([num_x / den, num_y / den], dim=-1)


def exact_mean_distribution(centres: torch.Tensor, size: Size) -> torch.Tensor:
    """A distribution ``(B, K, h, w)`` on the map whose expectation is exactly ``centres`` (map px).

    Per axis the mass is split linearly between the two pixel centres around the coordinate
    (``1 - f`` at ``floor(c)``, ``f`` at ``floor(c) + 1``), and the 2-D map is the product of the two
    axes: the output of a perfect soft-argmax network (``lrpose oracle``). A centre outside the hull of
    pixel centres ``[0, w-1] x [0, h-1]`` is clamped into it: the soft-argmax cannot reach beyond.
    """
    w, h = int(size[0]), int(size[1])
    dtype = centres.dtype if centres.is_floating_point() else torch.get_default_dtype()
    c = centres.to(dtype)

    def axis(values: torch.Tensor, n: int) -> torch.Tensor:
        bins = torch.arange(n, dtype=dtype, device=values.device)
        v = values.clamp(0.0, float(n - 1))
        lo = torch.floor(v).clamp(max=float(max(n - 2, 0)))
        frac = v - lo
        return (1.0 - frac)[..., None] * (bins == lo[..., None]).to(dtype) + frac[..., None] * (
            bins == (lo + 1.0)[..., None]
        ).to(dtype)

    px = axis(c[..., 0], w)  # (B, K, w)
    py = axis(c[..., 1], h)  # (B, K, h)
    return py[..., :, None] * px[..., None, :]


__all__ += [
    "to_unit",
    "from_unit",
    "flat_softmax",
    "soft_argmax_2d",
    "DEBIAS_MIN_FOREGROUND",
    "debiased_soft_argmax_2d",
    "exact_mean_distribution",
]
