"""Integral pose regression (IPR; Sun, Xiao, Liang, Wei, ECCV 2018, "Integral Human Pose Regression"): one
heatmap per joint, normalised by a softmax, and the joint is its *expectation* (soft-argmax), a continuous
coordinate with no quantisation to the heatmap grid. This file also holds the family's shared base,
:class:`SoftArgmaxMethod`, which DSNT (``methods/dsnt.py``) and Debias-IPR (``methods/debias_ipr.py``)
extend.

Transform: UDP's unbiased crop and input -> heatmap map ``(w_hm-1)/(w_in-1)``. The soft-argmax can only
reach the hull of the pixel centres, ``[0, w_hm-1]`` heatmap px; under the unbiased map that hull is
exactly the crop's pixel centres ``[0, w_in-1]``, and a mirrored heatmap is exactly the heatmap of the
mirrored crop, so the flip test needs no shift. (MMPose's integral-regression configs keep the biased
``/stride`` map, under which the last ``stride - 1`` crop px lie beyond the last heatmap pixel centre.)

Coordinates: targets are *normalised heatmap coordinates* ``u = (x + 0.5) / w_hm``, ``v = (y + 0.5) /
h_hm`` (:func:`lrpose_bench.codecs.to_unit`; DSNT's ``[-1, 1]`` units are ``2u - 1``), so the loss needs
only the heatmap's shape. Head: one 1x1 convolution to ``K`` logit maps on the stride-4 features
(HRNet's final layer). ``softmax(beta * H)`` over each map's pixels (``beta``: inverse temperature).
Loss (IPR): L1 between predicted and target normalised coordinates, weighted per joint, averaged over
batch, joints and axes (Sun et al.'s choice). Decoding: soft-argmax -> crop px; score =
the softmax peak (a distribution spread over many pixels has a small peak, so the rescoring threshold
is SimCC's 0.01). Flip test: mirror the flipped crop's heatmaps and swap joints (exact under the
unbiased map), then *average the two distributions* (merged logits ``log(mean of probabilities) /
beta``): the expectation is linear, so the flip test averages the two coordinate estimates exactly.

Error bound of the codec alone: none inside the hull of pixel centres; :func:`exact_mean_distribution`
(mass split bilinearly over the four pixels around the joint) is a softmax output whose expectation is
the joint exactly (``lrpose oracle``). Outside the hull (joints beyond the crop) the error is the
distance to the hull.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping

import torch
from torch import nn

from lrpose_bench.codecs import (
    argmax_2d,
    check_keypoints,
    debiased_soft_argmax_2d,
    exact_mean_distribution,
    flat_softmax,
    flip_maps,
    gaussian_heatmaps,
    soft_argmax_2d,
    to_unit,
)
from lrpose_bench.heads import conv1x1
from lrpose_bench.method import Geometry, PoseMethod

#: The foreground mass (relative units) of Debias-IPR's ideal output ``exp(beta H) = 1 + M p``: large
#: against the ``h * w`` unit-mass background pixels so the debiasing division loses no precision.
IDEAL_FOREGROUND_MASS = 1.0e4
#: Floor of the probabilities turned into logits for a perfect plain soft-argmax (mass ~1e-30 per
#: pixel off the four support pixels: no visible effect on the expectation).
IDEAL_PROB_FLOOR = 1.0e-30


class SoftArgmaxHead(nn.Module):
    """One 1x1 convolution to ``K`` heatmap logits ``(B, K, h, w)`` (HRNet's init: weights N(0, 0.001)).

    ``bias`` is the initial value of every logit's bias (0 = HRNet's; Debias-IPR starts at
    ``ln 2 / beta``, see :class:`lrpose_bench.methods.debias_ipr.DebiasIPRMethod`).
    """

    def __init__(self, in_channels: int, num_keypoints: int, bias: float = 0.0) -> None:
        super().__init__()
        self.conv = conv1x1(in_channels, num_keypoints)
        nn.init.constant_(self.conv.bias, float(bias))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmaps": self.conv(features)}


def js_divergence(log_p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) between maps ``(..., h, w)``: ``p = exp(log_p)`` and ``q``.

    ``JS = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``, summed over pixels -> ``(...)``.
    ``log_p`` is a log-softmax (``p > 0`` everywhere); ``q`` is a distribution that may hold zeros
    (``0 log 0 = 0``). Bounded by ``ln 2``.
    """
    p = log_p.exp()
    m = 0.5 * (p + q)
    log_m = torch.log(m)
    kl_p = (p * (log_p - log_m)).sum(dim=(-2, -1))
    kl_q = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(dim=(-2, -1))
    return 0.5 * (kl_p + kl_q)


class SoftArgmaxMethod(PoseMethod):
    """Shared base of the soft-argmax family: heatmap logits -> expectation -> normalised coordinates.

    Subclasses choose the expectation (:attr:`debiased`), the coordinate loss
    (:meth:`coordinate_loss`), an optional Jensen-Shannon regulariser toward a Gaussian and the head's
    initial bias (:meth:`head_bias`). ``Options`` must have ``beta``; a regularised method adds
    ``js_weight`` (>= 0) and ``sigma`` (heatmap px, > 0), read by :meth:`js_weight` and :meth:`js_sigma`.
    """

    #: Softmax peaks are spread over many pixels, so rescoring uses SimCC's low threshold.
    keypoint_score_threshold: ClassVar[float] = 0.01
    #: Gu et al.'s debiased expectation (Debias-IPR) instead of the plain soft-argmax.
    debiased: ClassVar[bool] = False

    def __init__(self, options: Any = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        beta = self.options.beta
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            raise ValueError(f"method {self.name!r}: option beta={beta!r} must be a finite number > 0")
        sigma, weight = self.js_sigma(), self.js_weight()
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"method {self.name!r}: option sigma={sigma!r} must be > 0")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"method {self.name!r}: option js_weight={weight!r} must be >= 0")

    @property
    def unbiased(self) -> bool:
        """UDP's transform: the soft-argmax's reachable hull is the crop, and a flip is exact."""
        return True

    # ------------------------------------------------------------------ family hooks
    def js_weight(self) -> float:
        """Weight of the Jensen-Shannon regulariser: option ``js_weight`` (0 = none, also without the option)."""
        return float(getattr(self.options, "js_weight", 0.0))

    def js_sigma(self) -> float:
        """Sigma (heatmap px) of the regulariser's target Gaussian: option ``sigma`` (1 without the option)."""
        return float(getattr(self.options, "sigma", 1.0))

    def head_bias(self) -> float:
        """Initial bias of the heatmap logits."""
        return 0.0

    def expectation(self, logits: torch.Tensor) -> torch.Tensor:
        """Coordinates ``(B, K, 2)`` in heatmap px from logits ``(B, K, h, w)``."""
        if self.debiased:
            return debiased_soft_argmax_2d(logits, self.options.beta)
        return soft_argmax_2d(logits, self.options.beta)[0]

    def coordinate_loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """IPR's L1 on normalised coordinates ``(B, K, 2)``, weighted per joint ``(B, K)``, mean over B, K, axes."""
        return ((pred - target).abs() * weight[..., None]).mean()

    # ------------------------------------------------------------------ model
    def build_head(self, in_channels: int, num_keypoints: int, geometry: Geometry) -> nn.Module:
        """:class:`SoftArgmaxHead`: one 1x1 conv to ``K`` logit maps at the stride-4 feature size."""
        return SoftArgmaxHead(in_channels, num_keypoints, self.head_bias())

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """Targets from crop px: ``coords (B,K,2)`` normalised heatmap coordinates, ``weight (B,K)``
        (the visibility), ``probs (B,K,h,w)`` the exact-mean distribution (what a perfect network puts
        out; only :meth:`targets_as_outputs` reads it) and, with a regulariser, ``gaussian (B,K,h,w)``:
        a sub-pixel Gaussian of sigma :meth:`js_sigma` normalised to sum 1 on the map (DSNT's target)."""
        check_keypoints(keypoints, visibility, self.name)
        size = geometry.heatmap_size
        centres = geometry.crop_to_heatmap.forward(keypoints)
        out = {
            "coords": to_unit(centres, size),
            "probs": exact_mean_distribution(centres, size),
            "weight": visibility.to(keypoints.dtype),
        }
        if self.js_weight() > 0:
            g = gaussian_heatmaps(centres, size, self.js_sigma())
            out["gaussian"] = g / g.sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
        return out

    def targets_as_outputs(self, targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits whose (debiased) soft-argmax is the target exactly.

        Plain soft-argmax: ``log(p) / beta`` (``p`` floored at 1e-30), so ``softmax(beta H) = p``.
        Debiased: ``log(1 + M p) / beta`` (:data:`IDEAL_FOREGROUND_MASS`): a background of exactly 0, the
        debiasing's assumption, and foreground ``exp(beta H) - 1 = M p``.
        """
        p = targets["probs"]
        beta = float(self.options.beta)
        if self.debiased:
            return {"heatmaps": torch.log1p(IDEAL_FOREGROUND_MASS * p) / beta}
        return {"heatmaps": torch.log(p.clamp_min(IDEAL_PROB_FLOOR)) / beta}

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"coord", ["js"], "total"}``: the coordinate loss (+ ``js_weight`` x the weighted mean JS)."""
        logits = outputs["heatmaps"]
        h, w = logits.shape[-2:]
        weight = targets["weight"].to(logits.dtype)
        pred = to_unit(self.expectation(logits), (w, h))
        terms = {"coord": self.coordinate_loss(pred, targets["coords"].to(pred.dtype), weight)}
        lam = self.js_weight()
        if lam > 0:
            log_p = torch.log_softmax(self.options.beta * logits.reshape(*logits.shape[:-2], h * w), dim=-1)
            js = js_divergence(log_p.reshape(logits.shape), targets["gaussian"].to(logits.dtype))
            terms["js"] = lam * (js * weight).mean()
        terms["total"] = sum(terms.values())
        return terms

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft-argmax (debiased: clamped into the hull of pixel centres) -> crop px ``(B, K, 2)``;
        score = the softmax peak ``(B, K)``."""
        logits = outputs["heatmaps"]
        h, w = logits.shape[-2:]
        coords = self.expectation(logits)
        if self.debiased:
            hi = coords.new_tensor([float(w - 1), float(h - 1)])
            coords = torch.minimum(coords.clamp_min(0.0), hi)
        scores = flat_softmax(logits, self.options.beta).amax(dim=(-2, -1))
        return geometry.crop_to_heatmap.inverse(coords), scores

    def coarse(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> torch.Tensor | None:
        """Integer argmax of the logit maps (the heatmap's mode) in heatmap px."""
        return argmax_2d(outputs["heatmaps"])[0]

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Mirror the flipped crop's logit maps and swap left/right joints (exact: unbiased transform)."""
        return {"heatmaps": flip_maps(outputs["heatmaps"], list(flip_index))}

    def merge_flip(
        self, outputs: Mapping[str, torch.Tensor], flipped_back: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Mean of the two passes in probability space, as logits.

        Plain soft-argmax: ``log((p_1 + p_2) / 2) / beta``, whose softmax is the mean distribution, so the
        decoded coordinate is the mean of the two expectations. Debiased: ``log((exp(beta H_1) +
        exp(beta H_2)) / 2) / beta``, which keeps a zero background at zero and averages the two
        foregrounds (the debiased estimate is their mass-weighted mean).
        """
        beta = float(self.options.beta)
        a = beta * outputs["heatmaps"]
        b = beta * flipped_back["heatmaps"]
        if not self.debiased:
            a = a - torch.logsumexp(a.flatten(-2), dim=-1)[..., None, None]
            b = b - torch.logsumexp(b.flatten(-2), dim=-1)[..., None, None]
        return {"heatmaps": (torch.logaddexp(a, b) - math.log(2.0)) / beta}


class IPRMethod(SoftArgmaxMethod):
    """IPR: softmax heatmap, soft-argmax coordinates, L1 loss on the coordinates."""

    name = "ipr"
    description = "Integral pose regression (IPR): softmax heatmap -> soft-argmax coordinates, L1 loss (unbiased)"

    @dataclass(frozen=True)
    class Options:
        """Options of IPR.

        beta: inverse temperature of the softmax, ``softmax(beta * H)``; 1 = Sun et al.'s plain softmax
            (MMPose's ``IntegralRegressionHead`` has no temperature; its ``DSNTHead`` defaults to 1.0).
        """

        beta: float = 1.0


__all__ = ["SoftArgmaxMethod", "SoftArgmaxHead", "IPRMethod", "js_divergence", "IDEAL_FOREGROUND_MASS"]
