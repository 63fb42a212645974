"""UDP (Huang et al., CVPR 2020, "Unbiased Data Processing"), its "combined" classification+offset target.

Transform: UDP's unbiased crop and input->heatmap scale ``(w_hm-1)/(w_in-1)`` (so a flip is exact).
Encoding: per joint a binary disc of radius ``R`` heatmap px around the sub-pixel centre (class map)
and offset fields ``(joint - pixel) / R`` for x and y, written over the whole map (the loss only looks
inside the disc, as in MMPose; UDP's release zeroes them outside, which is the same to the loss).
Loss: UDP's released ``CombinedTargetMSELoss``: ``0.5 * MSE`` on the class map (with target weights) plus
``0.5 * MSE`` on each offset channel, both prediction and target multiplied by the ground-truth disc
(so the offsets are learned only inside it). The class map is regressed with MSE, not BCE, as released.
Decoding: blur the class map (kernel ``cls_kernel``) and the offset maps (``offset_kernel``), both with
OpenCV's default mirrored border as in the release, take the class map's argmax and add
``R * offset`` read there; score = the blurred class map's peak.

Error bound of the codec alone: with unblurred offsets (``offset_kernel=1``) a perfect target decodes
exactly (float rounding only); a symmetric blur keeps the linear offset ramp exact wherever the kernel
does not reach the map border.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch

from lrpose_bench.codecs import (
    argmax_2d,
    auto_blur_kernel,
    auto_udp_radius,
    check_keypoints,
    disc_offset_targets,
    flip_maps,
    gather_at,
    gaussian_blur,
    window_visible,
)
from lrpose_bench.heads import MapHeadSpec, check_network_options, offset_head_spec
from lrpose_bench.method import Geometry, PoseMethod


class UDPMethod(PoseMethod):
    """UDP's unbiased transform with the combined (disc classification + offset regression) codec."""

    name = "udp"
    description = "UDP: unbiased transform, binary-disc classification + offset regression (combined target)"

    @dataclass(frozen=True)
    class Options:
        """Options of UDP.

        radius: disc radius in heatmap px, also the offset normaliser; ``0`` = auto: UDP's 3.5 at a 64x48
            heatmap scaled with the heatmap's longer side (MMPose's ``radius_factor = 3.5/64``):
            1.75 at 128x96 input, 0.875 at 64x48.
        cls_kernel: blur kernel (odd, heatmap px) for the class map at decoding; ``0`` = auto: the
            release's 15 at a 64x48 heatmap scaled with the width, at least 3 (7 at 128x96, 3 at 64x48).
        offset_kernel: blur kernel for the offset maps at decoding; ``0`` = auto: the release's 7 at a
            64x48 heatmap scaled with the width, at least 1 = no blur (3 at 128x96, none at 64x48, where
            the disc holds only a few pixels and a blur would mix in untrained offsets). The blur costs
            the codec near the border (the mirrored border bends the offset ramp; MMPose 1.x dropped the
            offset blur): the mirrored class-map blur puts the argmax of a joint within ~1.7 heatmap px of
            an edge on the outermost row or column, where the blurred offset is off by 0.5 heatmap px
            (2.07 crop px at 128x96). That is a quarter of joints placed uniformly over the crop, but rare
            with ground-truth boxes, whose joints keep a margin: ``lrpose oracle`` on the embedded set at
            128x96 gives 100.0 AP either way (mean error 0.0019 image px with 3 against 3e-6 with 1);
            detected boxes may cut closer. On a trained model it pays: the
            embedded UDP run at 128x96 (tiny, seed 0) decodes to 61.9 AP with 3, 61.0 with 1 and 61.0
            with 5, so the release's value stays the default.
        network: ``"shared"`` (default; UDP's release: 1x1 class-map and offset convolutions on the
            backbone's output) or ``"released"`` (the CAL release's network: the offsets on a private copy
            of the backbone's last stage, two BasicBlocks before each 1x1 convolution) -- the control that
            separates CAL's target from its network.
        head_blocks: BasicBlocks before each final 1x1 convolution; ``-1`` = as ``network`` implies
            (0 shared, 2 released).
        tail_init: the private last stage of ``network="released"``: ``"fresh"`` (HRNet's init, as the
            CAL release) or ``"copy"`` (the shared stage's weights after pretrained loading).
        """

        radius: float = 0.0
        cls_kernel: int = 0
        offset_kernel: int = 0
        network: str = "shared"
        head_blocks: int = -1
        tail_init: str = "fresh"

    def __init__(self, options: "UDPMethod.Options | None" = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        check_network_options(self.name, self.options)

    @property
    def unbiased(self) -> bool:
        return True

    # ------------------------------------------------------------------ sizes
    def radius_for(self, geometry: Geometry) -> float:
        """Disc radius / offset normaliser (heatmap px) at this geometry."""
        return self.options.radius if self.options.radius > 0 else auto_udp_radius(geometry.heatmap_size)

    def kernels_for(self, geometry: Geometry) -> tuple[int, int]:
        """``(class-map kernel, offset kernel)`` in heatmap px at this geometry."""
        for key in ("cls_kernel", "offset_kernel"):
            value = getattr(self.options, key)
            if value < 0 or (value > 0 and value % 2 == 0):
                raise ValueError(f"option {key} of method 'udp' must be 0 (auto) or a positive odd integer, got {value}")
        size = geometry.heatmap_size
        kc = self.options.cls_kernel or auto_blur_kernel(size, 15, minimum=3)
        ko = self.options.offset_kernel or auto_blur_kernel(size, 7, minimum=1)
        return kc, ko

    # ------------------------------------------------------------------ model
    def head_spec(self, geometry: Geometry) -> MapHeadSpec:
        """``K`` class maps and ``K x 2`` offset maps on the network named by the ``network`` option."""
        o = self.options
        return offset_head_spec(o.network, o.head_blocks, o.tail_init)

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """Discs ``heatmaps (B,K,h,w)``, ``offsets (B,K,2,h,w)`` and ``weight (B,K)`` from crop px.

        A joint's weight is its visibility, zeroed when the square around its disc misses the map.
        """
        check_keypoints(keypoints, visibility, self.name)
        size = geometry.heatmap_size
        radius = self.radius_for(geometry)
        centres = geometry.crop_to_heatmap.forward(keypoints)
        weight = visibility.to(centres.dtype) * window_visible(centres, size, radius).to(centres.dtype)
        # one set of 1-D factors for both maps; weight-0 joints get all-zero discs (offsets everywhere)
        t = disc_offset_targets(centres, size, radius, normaliser=radius, keep=weight > 0)
        return {"heatmaps": t.disc, "offsets": t.offsets, "weight": weight}

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"heatmap", "offset", "total"}``: UDP's CombinedTargetMSELoss, averaged over joints."""
        w = targets["weight"].to(outputs["heatmaps"].dtype)[..., None, None]
        cls_gt = targets["heatmaps"] * w
        cls = 0.5 * (outputs["heatmaps"] * w - cls_gt).pow(2).mean()
        mask = cls_gt[:, :, None]  # (B,K,1,h,w): the weighted ground-truth disc
        # 0.5 * MSE per offset channel, summed over the two channels = 0.5 * 2 * mean over both.
        off = 0.5 * 2.0 * ((outputs["offsets"] - targets["offsets"]) * mask).pow(2).mean()
        return {"heatmap": cls, "offset": off, "total": cls + off}

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Blurred class-map argmax + ``R * offset`` -> crop px ``(B, K, 2)``; score = blurred peak."""
        kc, ko = self.kernels_for(geometry)
        cls = gaussian_blur(outputs["heatmaps"], kc, keep_max=False, padding="reflect")
        offsets = outputs["offsets"]
        if ko > 1:
            offsets = gaussian_blur(offsets, ko, keep_max=False, padding="reflect")
        coords, scores = argmax_2d(cls)
        coords = coords + self.radius_for(geometry) * gather_at(offsets, coords).to(coords.dtype)
        return geometry.crop_to_heatmap.inverse(coords), scores

    def coarse(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> torch.Tensor | None:
        """Integer argmax of the (unblurred) class map, heatmap px."""
        return argmax_2d(outputs["heatmaps"])[0]

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Mirror maps, swap joints, negate x-offsets (exact under the unbiased transform: no shift)."""
        idx = list(flip_index)
        offsets = flip_maps(outputs["offsets"], idx)
        sign = offsets.new_tensor([-1.0, 1.0]).view(1, 1, 2, 1, 1)
        return {"heatmaps": flip_maps(outputs["heatmaps"], idx), "offsets": offsets * sign}


__all__ = ["UDPMethod"]
