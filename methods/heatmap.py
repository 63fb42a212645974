"""Plain heatmap regression (HRNet / SimpleBaseline, "MSRA" heatmaps): the paper's baseline.

Encoding: a Gaussian per joint centred on the *nearest heatmap pixel* (HRNet's ``int(x/stride + 0.5)``),
drawn in a ``3 sigma`` square window, peak value 1. Biased transform: heatmap px = crop px / stride.
Loss: HRNet's ``JointsMSELoss``: ``0.5 * mean((w * (pred - target))^2)`` over batch, joints and pixels.
Decoding: integer argmax, moved 0.25 px toward the higher neighbour on each axis; score = peak value.

Error bound of the codec alone (perfect target in, decode out): the rounded peak is decoded exactly
(its neighbours are equal, so the quarter shift does nothing), hence ``<= 0.5`` heatmap px per axis
(``0.5 * stride`` crop px) -- the quantisation error that dominates at low resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from lrpose_bench.codecs import (
    argmax_2d,
    auto_sigma,
    check_keypoints,
    flip_maps,
    gaussian_heatmaps,
    quarter_offset_refine,
    round_half_up,
    shift_right,
    window_visible,
)
from lrpose_bench.errors import OptionValueError
from lrpose_bench.heads import MapHeadSpec
from lrpose_bench.method import Geometry, PoseMethod


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """HRNet's ``JointsMSELoss`` with target weights: ``0.5 * mean((w (pred - target))^2)``.

    ``pred``/``target`` ``(B, K, ...)``, ``weight`` ``(B, K)``; the mean runs over every element, which
    equals HRNet's per-joint MSE averaged over joints.
    """
    w = weight.reshape(*weight.shape, *([1] * (pred.ndim - weight.ndim))).to(pred.dtype)
    return 0.5 * ((pred - target) * w).pow(2).mean()


class HeatmapMethod(PoseMethod):
    """MSRA Gaussian heatmaps with HRNet's rounded centre, quarter-pixel decoding and flip shift."""

    name = "heatmap"
    description = "Gaussian heatmap regression (HRNet/SimpleBaseline): rounded centre, argmax + 1/4 px shift"

    @dataclass(frozen=True)
    class Options:
        """Options of the plain heatmap baseline.

        sigma: Gaussian sigma in heatmap px; ``0`` = auto, ``2 * w_hm / 48`` (HRNet's 2 at a 64x48 heatmap,
            scaled so the blob keeps its size relative to the person: 1.0 at 128x96 input, 0.5 at 64x48).
        quarter_offset: HRNet's post-processing (0.25 px toward the higher neighbour); on by default as
            in every released baseline (the DARK paper's baseline numbers include it).
        flip_shift: flip test under the biased transform: shift the flipped-back heatmaps 1 px right as
            HRNet does (72.0 -> 74.0 AP, HRNet issue 22). With heatmap px = crop px / stride and the crop
            mirrored as ``x' = w_in - 1 - x``, the mirrored heatmap's column ``j`` lands at
            ``w_hm - 1 - j``, which puts a joint ``1 - 1/stride`` px (0.75 at stride 4) left of where it
            belongs. HRNet's integer shift over-corrects by ``1/stride`` (0.25 px right); no shift leaves
            0.75 px left. Ignored under the unbiased transform, where the mirror is exact.
        head_blocks: BasicBlocks before the final 1x1 convolution (0 = HRNet's head; 2 = the CAL
            release's two-block head, the capacity control of the CAL experiment).
        """

        sigma: float = 0.0
        quarter_offset: bool = True
        flip_shift: bool = True
        head_blocks: int = 0

    #: Target centres rounded to the nearest pixel (MSRA) or kept sub-pixel (DarkPose's encoding).
    rounded_targets: bool = True

    # ------------------------------------------------------------------ sizes
    def sigma_for(self, geometry: Geometry) -> float:
        """The Gaussian sigma (heatmap px) used at this geometry."""
        return self.options.sigma if self.options.sigma > 0 else auto_sigma(geometry.heatmap_size)

    def window_for(self, geometry: Geometry) -> float | None:
        """Half-size of the square the Gaussian is drawn in (heatmap px); ``None`` = the whole map."""
        return 3.0 * self.sigma_for(geometry)

    # ------------------------------------------------------------------ model
    def head_spec(self, geometry: Geometry) -> MapHeadSpec:
        """``head_blocks`` BasicBlocks, then one 1x1 conv to ``K`` heatmaps (HRNet's final layer)."""
        blocks = int(getattr(self.options, "head_blocks", 0))
        if blocks < 0:
            raise OptionValueError(f"method {self.name!r}: option head_blocks={blocks} must be >= 0")
        return MapHeadSpec((("heatmaps", 1),), blocks)

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """Heatmaps ``(B, K, h, w)`` and weights ``(B, K)`` for keypoints in crop px.

        A joint's weight is its visibility, zeroed when its Gaussian window lies wholly off the map
        (HRNet); such joints get an all-zero map.
        """
        check_keypoints(keypoints, visibility, self.name)
        size = geometry.heatmap_size
        centres = geometry.crop_to_heatmap.forward(keypoints)
        if self.rounded_targets:
            centres = round_half_up(centres)  # once, for the weight and the map
        sigma = self.sigma_for(geometry)
        inside = window_visible(centres, size, 3.0 * sigma)
        weight = visibility.to(centres.dtype) * inside.to(centres.dtype)
        # one pass over the maps: the outer product of 1-D factors, weight-0 joints zeroed in the factors
        maps = gaussian_heatmaps(centres, size, sigma, window=self.window_for(geometry), keep=weight > 0)
        return {"heatmaps": maps, "weight": weight}

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"heatmap": mse, "total": mse}`` (HRNet's JointsMSELoss with target weights)."""
        mse = weighted_mse(outputs["heatmaps"], targets["heatmaps"], targets["weight"])
        return {"heatmap": mse, "total": mse}

    def refine(self, heatmaps: torch.Tensor, coords: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Sub-pixel refinement of integer peaks (heatmap px): here HRNet's quarter offset."""
        return quarter_offset_refine(heatmaps, coords) if self.options.quarter_offset else coords

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Argmax + refinement -> crop px ``(B, K, 2)``; score = the map's peak value ``(B, K)``."""
        heatmaps = outputs["heatmaps"]
        coords, maxvals = argmax_2d(heatmaps)
        coords = self.refine(heatmaps, coords, geometry)
        return geometry.crop_to_heatmap.inverse(coords), maxvals

    def coarse(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> torch.Tensor | None:
        """Integer argmax in heatmap px."""
        return argmax_2d(outputs["heatmaps"])[0]

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Mirror the flipped crop's heatmaps, swap left/right joints, and (biased only) shift 1 px right."""
        maps = flip_maps(outputs["heatmaps"], list(flip_index))
        if self.options.flip_shift and not self.unbiased:
            maps = shift_right(maps, 1)
        return {"heatmaps": maps}


__all__ = ["HeatmapMethod", "weighted_mse"]
