"""SimCC (Li et al., ECCV 2022): keypoint localisation as two 1-D classifications, over x and over y bins.

Bins: ``L_x = round(k * w_in)`` and ``L_y = round(k * h_in)`` for split ratio ``k``. Bin convention
(``aligned_bins``, default on): the bins tile the crop exactly in the pixel-centre convention, bin ``i``
covers crop ``[i/k - 0.5, (i+1)/k - 0.5]`` and stands for its centre ``(i + 0.5)/k - 0.5``; every point
of the crop has a bin and a horizontal flip is an exact reversal of the x vector. SimCC's release maps
``x -> x * k`` (bin ``i`` <-> crop ``i / k``), which leaves ``[-0.5, -0.5/k)`` without a bin and makes the
flipped x vector land ``k - 1`` bins off; ``aligned_bins=False`` reproduces it (the flip-back then shifts
the reversed vector by ``k - 1`` bins, exact for integer ``k``).
Labels: a Gaussian over bins (sigma in bins) around the joint's bin, normalised to sum 1 (SimCC divides by
``sigma * sqrt(2 pi)``, the same up to truncation at the ends; an exact distribution makes the KL zero at a
perfect prediction). Loss: SimCC's ``KLDiscretLoss``: KL(label || softmax(logits)) averaged over bins,
weighted per joint, averaged over joints and batch, x plus y. Decoding: argmax of each vector mapped back
to crop px; score = the smaller of the two softmax peaks (SimCC's release and MMPose take the minimum).

Error bound of the codec alone: the argmax bin is the joint's nearest bin, so ``<= 0.5 / k`` crop px per
axis (0.25 px at ``k = 2``, 1/6 px at ``k = 3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lrpose_bench.codecs import auto_simcc_ratio, check_keypoints, flip_maps, gaussian_vectors, round_half_up
from lrpose_bench.heads import SimCCHead
from lrpose_bench.method import Geometry, PoseMethod

#: SimCC's reference setting: sigma 6.0 bins at 256x192 input with split ratio 2 (384 x-bins).
REFERENCE_SIGMA = 6.0
REFERENCE_X_BINS = 384


class SimCCMethod(PoseMethod):
    """SimCC: 1-D x/y coordinate classification with Gaussian label smoothing and a KL loss."""

    name = "simcc"
    description = "SimCC: x/y coordinate classification over sub-pixel bins, Gaussian labels, KL loss"
    #: Softmax peaks are small (spread over many bins), so rescoring must use a low threshold (FACTS).
    keypoint_score_threshold: ClassVar[float] = 0.01

    @dataclass(frozen=True)
    class Options:
        """Options of SimCC.

        split_ratio: bins per crop pixel ``k``; ``0`` = auto: 2.0, or 3.0 when the crop's shorter side is
            <= 64 px (SimCC's low-resolution setting).
        sigma: Gaussian label sigma in *bins*; ``0`` = auto: SimCC's 6.0 at 384 x-bins (256x192, k=2)
            scaled with the number of x-bins, i.e. a fixed width relative to the person:
            3.0 at 128x96 (k=2), 2.25 at 64x48 (k=3).
        rounded_labels: centre each label on the joint's nearest bin, as MMPose's ``SimCCLabel`` does
            (``np.around(x * k)``); ``False`` centres it on the unrounded bin coordinate, as the SimCC
            release does (its labels are Gaussians around ``x * k``; with ``aligned_bins=False`` too this
            is the release's encoding). The argmax decoder cannot recover a sub-bin centre either way.
        aligned_bins: the bin convention of the module docstring (``True``) or SimCC's ``x * k``.
        """

        split_ratio: float = 0.0
        sigma: float = 0.0
        rounded_labels: bool = True
        aligned_bins: bool = True

    # ------------------------------------------------------------------ sizes
    def ratio_for(self, geometry: Geometry) -> float:
        """Split ratio ``k`` (bins per crop px) at this geometry."""
        k = self.options.split_ratio if self.options.split_ratio > 0 else auto_simcc_ratio(geometry.crop_size)
        self._ratio_seen = k  # for flip_back under SimCC's own bins, which has no geometry
        return k

    def bins_for(self, geometry: Geometry) -> tuple[int, int]:
        """``(L_x, L_y)``: number of x and y bins."""
        k = self.ratio_for(geometry)
        return int(round(k * geometry.crop_size[0])), int(round(k * geometry.crop_size[1]))

    def sigma_for(self, geometry: Geometry) -> float:
        """Label sigma in bins at this geometry."""
        if self.options.sigma > 0:
            return self.options.sigma
        return REFERENCE_SIGMA * self.bins_for(geometry)[0] / REFERENCE_X_BINS

    def to_bins(self, points: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Crop px ``(..., 2)`` -> continuous bin coordinates ``(..., 2)``."""
        k = self.ratio_for(geometry)
        return (points + 0.5) * k - 0.5 if self.options.aligned_bins else points * k

    def from_bins(self, bins: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Bin coordinates ``(..., 2)`` -> crop px ``(..., 2)``."""
        k = self.ratio_for(geometry)
        return (bins + 0.5) / k - 0.5 if self.options.aligned_bins else bins / k

    # ------------------------------------------------------------------ model
    def build_head(self, in_channels: int, num_keypoints: int, geometry: Geometry) -> nn.Module:
        """SimCC's head: 1x1 conv to ``K`` maps, flatten, linear layers to ``L_x`` and ``L_y`` logits."""
        return SimCCHead(in_channels, num_keypoints, geometry.heatmap_size, self.bins_for(geometry))

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """Label distributions ``simcc_x (B,K,L_x)``, ``simcc_y (B,K,L_y)`` and ``weight (B,K)``.

        A joint keeps its weight while any bin of its ``3 sigma`` label window lies on the vectors (MMPose's
        Gaussian mode: the window ``[c - 3 sigma, c + 3 sigma + 1)`` must overlap ``[0, L)`` on both axes),
        so an in-crop joint whose centre falls just off the bins (the first half bin of SimCC's ``x * k``
        convention) still trains on its truncated label; otherwise weight 0 and all-zero labels.
        """
        check_keypoints(keypoints, visibility, self.name)
        lx, ly = self.bins_for(geometry)
        b = self.to_bins(keypoints, geometry)
        if self.options.rounded_labels:
            b = round_half_up(b)
        sigma = self.sigma_for(geometry)
        radius = 3.0 * sigma
        lengths = b.new_tensor([lx, ly])
        inside = ((b - radius < lengths) & (b + radius + 1 >= 0)).all(-1)
        weight = visibility.to(keypoints.dtype) * inside.to(keypoints.dtype)
        keep = weight > 0  # weight-0 joints: all-zero labels (their Gaussians are zeroed before normalising)
        out = {}
        for key, axis, length in (("simcc_x", 0, lx), ("simcc_y", 1, ly)):
            g = gaussian_vectors(b[..., axis], length, sigma, keep=keep)
            out[key] = g.div_(g.sum(-1, keepdim=True).clamp_min_(torch.finfo(g.dtype).tiny))
        out["weight"] = weight
        return out

    def targets_as_outputs(self, targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Perfect logits: the log of the label distributions (softmax of them gives the labels back)."""
        tiny = torch.finfo(targets["simcc_x"].dtype).tiny
        return {k: targets[k].clamp_min(tiny).log() for k in ("simcc_x", "simcc_y")}

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"kl_x", "kl_y", "total"}``: SimCC's KLDiscretLoss (KL averaged over bins, weighted per joint)."""
        w = targets["weight"].to(outputs["simcc_x"].dtype)
        terms = {}
        for axis in ("x", "y"):
            logq = F.log_softmax(outputs[f"simcc_{axis}"], dim=-1)
            kl = F.kl_div(logq, targets[f"simcc_{axis}"].to(logq.dtype), reduction="none").mean(-1)  # (B, K)
            terms[f"kl_{axis}"] = (kl * w).mean()
        terms["total"] = terms["kl_x"] + terms["kl_y"]
        return terms

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Argmax bins -> crop px ``(B, K, 2)``; score = min of the x and y softmax peaks ``(B, K)``."""
        px = F.softmax(outputs["simcc_x"], dim=-1)
        py = F.softmax(outputs["simcc_y"], dim=-1)
        vx, ix = px.max(-1)
        vy, iy = py.max(-1)
        bins = torch.stack([ix, iy], dim=-1).to(px.dtype)
        return self.from_bins(bins, geometry), torch.minimum(vx, vy)

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Reverse the x vectors and swap joints (plus the ``k - 1``-bin shift for SimCC's bins)."""
        idx = list(flip_index)
        x = flip_maps(outputs["simcc_x"], idx)
        if not self.options.aligned_bins:
            x = _shift_left(x, self._release_flip_shift(outputs["simcc_x"].shape[-1]))
        y = outputs["simcc_y"].index_select(1, torch.as_tensor(idx, dtype=torch.long, device=x.device))
        return {"simcc_x": x, "simcc_y": y}

    def _release_flip_shift(self, length: int) -> int:
        """Bins to shift a reversed x vector by under SimCC's ``x * k`` bins: ``k - 1`` (rounded).

        With an auto ratio, ``k`` is the one last used by ``build_head``/``encode``/``decode``.
        """
        k = self.options.split_ratio if self.options.split_ratio > 0 else getattr(self, "_ratio_seen", 0.0)
        if k <= 0:
            raise ValueError("method 'simcc' with aligned_bins=false needs split_ratio set (or a geometry seen "
                             f"before flip_back) to flip x vectors of length {length}")
        return int(round(k - 1.0))


def _shift_left(v: torch.Tensor, n: int) -> torch.Tensor:
    """``out[..., i] = v[..., i + n]``, repeating the last bin at the end."""
    if n <= 0:
        return v
    return torch.cat([v[..., n:], v[..., -1:].expand(*v.shape[:-1], n)], dim=-1)


__all__ = ["SimCCMethod"]
