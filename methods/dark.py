"""DARK (Zhang et al., CVPR 2020, "Distribution-Aware coordinate Representation of Keypoints").

Encoding (DarkPose's unbiased encoding): the Gaussian is centred at the *sub-pixel* heatmap position
of the joint and drawn over the whole map. Decoding: integer argmax, then blur the heatmap (DarkPose's
"distribution modulation"), take its log and do one Newton (second-order Taylor) step from the argmax
(:func:`lrpose_bench.codecs.dark_refine`). Score = peak of the unblurred map.
DarkPose keeps HRNet's *biased* crop transform (heatmap px = crop px / stride) and HRNet's 1-px flip
shift; both are the defaults here, ``unbiased=True`` switches to UDP's transform (and drops the shift).

Error bound of the codec alone: on an exact sub-pixel Gaussian without blur the Newton step on the log
(a quadratic) is exact; the blur makes the log only nearly quadratic and zero padding biases joints
near the border. Measured with the auto settings: at 128x96 (sigma 1, kernel 5) <= 0.01 heatmap px
for joints >= 2 px inside the map, <= 0.07 at >= 1 px; at 64x48 (sigma 0.5, kernel 3) ~0.1-0.2 px,
because a sigma-0.5 Gaussian is barely sampled. Under the biased transform joints in the last
``1 - 1/stride`` heatmap px of the crop lie beyond the last pixel centre and decode worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from lrpose_bench.codecs import auto_blur_kernel, dark_refine
from lrpose_bench.method import Geometry
from lrpose_bench.methods.heatmap import HeatmapMethod


class DarkMethod(HeatmapMethod):
    """Sub-pixel Gaussian targets + DARK's blur/log/Taylor decoding."""

    name = "dark"
    description = "DARK: sub-pixel Gaussian targets, Taylor-expansion decoding on the blurred log-heatmap"

    @dataclass(frozen=True)
    class Options:
        """Options of DARK.

        sigma: Gaussian sigma in heatmap px; ``0`` = auto, ``2 * w_hm / 48`` (as the heatmap baseline).
        kernel: blur kernel (odd, heatmap px) of the distribution modulation; ``0`` = auto: DarkPose's 11
            at a 64x48 heatmap scaled with the heatmap width, at least 3 (DarkPose issue 22: 11 is far
            too wide for small heatmaps): 5 at 128x96 input, 3 at 64x48. ``1`` = no blur.
        subpixel_target: DarkPose's unbiased encoding (Gaussian at the exact sub-pixel centre over the
            whole map); ``False`` uses the MSRA target (rounded centre, 3-sigma window) to isolate the
            decoding's effect as in the DARK paper's ablation.
        unbiased: use UDP's unbiased crop and ``(n-1)`` input->heatmap scale; DarkPose itself uses
            HRNet's biased transform (default ``False``).
        flip_shift: HRNet's 1-px flip-test shift (DarkPose keeps it); only under the biased transform.
            See :class:`lrpose_bench.methods.heatmap.HeatmapMethod.Options` for the sub-pixel analysis.
        head_blocks: BasicBlocks before the final 1x1 convolution (0 = HRNet's head).
        border: peaks within 2 px of the heatmap border: ``"fit"`` (default) refines them from the
            3-pixel quadratic fit at the nearest interior pixel, ``"skip"`` leaves them unrefined
            (DarkPose, MMPose). ``lrpose oracle`` on the embedded validation set: 98.6 AP (mean error 1.54
            image px) with ``fit`` against 92.8 (1.94 px) with ``skip`` at 64x48, where a 16x12 map puts
            many joints within 2 px of the border; 99.7 AP both at 128x96 (0.101 against 0.105 px).
            Joints beyond the last pixel centre, where the blurred log-map is no longer a Gaussian, are
            refined inward by ``fit`` and left on the border pixel by ``skip``; over all joints ``fit``
            is better, so it stays the default.
        """

        sigma: float = 0.0
        kernel: int = 0
        subpixel_target: bool = True
        unbiased: bool = False
        flip_shift: bool = True
        head_blocks: int = 0
        border: str = "fit"

    @property
    def unbiased(self) -> bool:  # type: ignore[override]
        return bool(self.options.unbiased)

    @property
    def rounded_targets(self) -> bool:  # type: ignore[override]
        return not self.options.subpixel_target

    def window_for(self, geometry: Geometry) -> float | None:
        """Sub-pixel targets cover the whole map (DarkPose); MSRA targets keep HRNet's 3-sigma window."""
        return None if self.options.subpixel_target else 3.0 * self.sigma_for(geometry)

    def kernel_for(self, geometry: Geometry) -> int:
        """The blur kernel (heatmap px) used at this geometry."""
        if self.options.kernel < 0 or (self.options.kernel > 0 and self.options.kernel % 2 == 0):
            raise ValueError(f"option kernel of method 'dark' must be 0 (auto) or a positive odd integer, "
                             f"got {self.options.kernel}")
        return self.options.kernel if self.options.kernel > 0 else auto_blur_kernel(geometry.heatmap_size)

    def refine(self, heatmaps: torch.Tensor, coords: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """DARK's Taylor step on the blurred log-heatmap (heatmap px)."""
        return dark_refine(heatmaps, coords, kernel=self.kernel_for(geometry), border=self.options.border)

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Argmax, DARK refinement -> crop px ``(B, K, 2)``; score = peak of the unblurred map."""
        return super().decode(outputs, geometry)


__all__ = ["DarkMethod"]
