"""CAL: Confidence-Aware Learning (Wang et al., "Low-resolution Human Pose Estimation", PR 2022).

Heatmap + x/y offset learning in UDP's unbiased coordinate system, with the paper's two fixes:

(a) *Gaussian-weighted binary heatmap* ``G(p) = B(p) * C(p)``: ``B`` the binary disc of radius ``R``
    around the sub-pixel joint, ``C`` a Gaussian centred on it, so pixels near the joint weigh more and
    training agrees with the argmax taken at test time.
(b) *Mixture Gaussian Mask* (MGM, :class:`CALMGMMethod`): a Gaussian mixture fitted to the coarse
    (argmax) errors weights the offset loss where the coarse prediction tends to land.

Choices (each a named option; see ``Options``), checked against the release (ilovepose/
Low-resolution-human-pose: lib/models/pose_hrnet.py, lib/core/loss.py, lib/utils/image.py,
experiments/coco/hrnet/*.yaml):

* ``network`` default ``"released"``: the release's network. Its stage 4 is built twice from stage 3's
  outputs (``transition3`` + ``stage4`` for the heatmaps, ``transition3_om`` + ``stage4_om`` for the
  offsets; W48's offset stage is 144 wide on its stride-4 branch), and each head is two BasicBlocks
  before its 1x1 convolution, so heatmaps and offsets share only the trunk (HRNet: stem to stage 3; the
  tiny backbone: stem and encoder; ResNet: the ResNet). ImageNet weights load into the heatmap path only
  and the offset stage starts from HRNet's init, as in the release (``tail_init="copy"`` copies the
  pretrained stage instead). Why the default: with ``"shared"`` (two 1x1 heads on one feature map, the
  suite's first network, kept as an ablation) the offset L1 term governs the shared features of a small
  network and puts about a quarter of the limb joints on their left/right partner; see
  results/embedded/README.md for the measured comparison at 64x48 and 128x96.
* ``target`` default ``"gaussian_disc"`` = the paper's ``G = B * C`` (what the paper claims). The
  released configs train a sub-pixel Gaussian (``"subpixel_gaussian"``, ``TARGET_TYPE: gaussian``),
  drawn over the whole map as the release does; ``"disc"`` is the plain binary disc of UDP.
* ``radius`` 4 heatmap px at every resolution (``KPD: 4.0``), for ``B`` and the offset mask.
* ``sigma`` 0 = auto: :func:`lrpose_bench.codecs.auto_sigma`, 2 px at a 64x48 heatmap scaled with its
  width -> 1.0 at 128x96 input (the released value), 0.5 at 64x48 (released W48; W32 used 0.3).
* offsets ``(joint - pixel) / offset_normaliser`` (``LOCREF_STDEV: 1.5``) inside the disc, loss L1
  (``SMOOTH_L1: false``).
* offset loss weighted per pixel by the Gaussian-weighted disc (``offset_weighting="target"``, default).
  The release (``GT_MASK: true``) uses ``B * C / MASK_SIGMA``: the same at 128x96 (sigma 1), twice ours
  at 64x48 with the auto sigma 0.5; ``"released"`` reproduces it exactly. ``"disc"`` weights every disc
  pixel the same (UDP-style); with a radius-4 disc on a 16x12 heatmap it puts most of the loss on far
  pixels, whose long offset ramps the argmax never reads (17.6 against 40.5 AP at 64x48 on the shared
  network, seed 0).
* loss ``heatmap_loss_weight * MSE(heatmaps) + offset_loss_weight * L1(offsets)`` (0.5 and 0.7, the
  released W32 values; W48 uses 1.0). As in the release, the heatmap MSE is the mean over all
  ``B*K*h*w`` pixels of weighted joints and the offset L1 the mean over all ``B*K*2*h*w`` values of
  ``|error| * weight`` (``offset_reduction="pixels"``; ``"mask"`` averages over the weight's sum
  instead). The release sums per-joint means and divides by ``K``, which is the same number.
* decode: argmax of the (flip-merged) heatmap + ``offset_normaliser * offset`` read at the argmax,
  mapped back with UDP's ``(n-1)`` scaling; no DARK, no quarter shift (released).

Spaces: ``encode`` takes crop px; targets/outputs live in heatmap px; ``decode`` returns crop px.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F

from lrpose_bench.codecs import (
    argmax_2d,
    auto_sigma,
    disc_offset_targets,
    flip_maps,
    gather_at,
    gaussian_heatmaps,
    round_half_up,
    window_visible,
)
from lrpose_bench.errors import OptionValueError
from lrpose_bench.heads import MapHeadSpec, check_network_options, offset_head_spec
from lrpose_bench.method import Geometry, PoseMethod, PredictFn, Stage
from lrpose_bench.mixture import COVARIANCE_TYPES, Mixture2D, fit_mixture, render_mask

TARGETS: tuple[str, ...] = ("gaussian_disc", "disc", "subpixel_gaussian")
OFFSET_LOSSES: tuple[str, ...] = ("l1", "smooth_l1", "l2")
FIT_SCOPES: tuple[str, ...] = ("epoch", "batch")
OFFSET_WEIGHTINGS: tuple[str, ...] = ("disc", "target", "released")


def _check_choice(method: str, option: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise OptionValueError(f"method {method!r}: option {option}={value!r} is not one of {', '.join(map(str, choices))}")


class CALMethod(PoseMethod):
    """CAL without the MGM: Gaussian-weighted disc heatmap + disc-masked L1 offsets (unbiased crops)."""

    name = "cal"
    description = "CAL: Gaussian-weighted disc heatmap (G=B*C) + x/y offsets, argmax + offset decoding (unbiased)"

    @dataclass(frozen=True)
    class Options:
        """CAL options (heatmap px unless noted); defaults: the paper's target, the released settings."""

        #: heatmap target: "gaussian_disc" (paper, G = B*C), "disc" (binary B), "subpixel_gaussian" (released C).
        target: str = "gaussian_disc"
        #: disc radius R (heatmap px) of B and of the offset mask; released: 4 at every resolution.
        radius: float = 4.0
        #: Gaussian sigma (heatmap px); 0 = auto (1.0 at 128x96 input, 0.5 at 64x48, 2.0 at 256x192).
        sigma: float = 0.0
        #: offsets are (joint - pixel) / offset_normaliser (heatmap px); released 1.5.
        offset_normaliser: float = 1.5
        #: weight of the heatmap MSE in the total loss (released 0.5).
        heatmap_loss_weight: float = 0.5
        #: weight of the offset loss (released 0.7 for W32, 1.0 for W48).
        offset_loss_weight: float = 0.7
        #: offset loss: "l1" (released), "smooth_l1" (beta 1, in normalised offset units) or "l2".
        offset_loss: str = "l1"
        #: how the offset loss is averaged: "pixels" (over every heatmap pixel and joint, the reduction of
        #: HRNet-style criteria and of UDP's combined loss, which keeps the heatmap and offset terms on
        #: one scale) or "mask" (over the masked pixels only, DEKR-style; makes the offset term ~100x the
        #: heatmap MSE, which starves the heatmap in short schedules).
        offset_reduction: str = "pixels"
        #: per-pixel weight of the offset loss (stage 1 of CAL + MGM): "target" (the Gaussian-weighted
        #: disc B*C with peak 1: the confidence-aware weighting, offsets learned where the argmax lands),
        #: "released" (the release's GT_MASK: B*C / sigma, i.e. "target" x 1/sigma: x1 at 128x96, x2 at
        #: 64x48 with the auto sigma 0.5) or "disc" (every pixel of the radius-R disc the same, UDP).
        offset_weighting: str = "target"
        #: the network: "released" (lib/models/pose_hrnet.py of the release: offsets on a private copy of
        #: the backbone's last stage, two BasicBlocks before each 1x1 convolution) or "shared" (both 1x1
        #: heads on one feature map; the suite's network before the release was read, kept as an ablation).
        network: str = "released"
        #: BasicBlocks before each final 1x1 convolution; -1 = as ``network`` implies (2 released, 0 shared).
        head_blocks: int = -1
        #: how the private last stage of ``network="released"`` starts: "fresh" (HRNet's init; the release
        #: loads ImageNet weights by name, so its stage4_om stays random) or "copy" (the shared stage's
        #: weights after pretrained loading).
        tail_init: str = "fresh"

    def __init__(self, options: "CALMethod.Options | None" = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        _check_choice(self.name, "target", o.target, TARGETS)
        _check_choice(self.name, "offset_weighting", o.offset_weighting, OFFSET_WEIGHTINGS)
        _check_choice(self.name, "offset_loss", o.offset_loss, OFFSET_LOSSES)
        _check_choice(self.name, "offset_reduction", o.offset_reduction, ("pixels", "mask"))
        check_network_options(self.name, o)
        for key in ("radius", "offset_normaliser"):
            if getattr(o, key) <= 0:
                raise OptionValueError(f"method {self.name!r}: option {key}={getattr(o, key)!r} must be > 0")
        if o.sigma < 0:
            raise OptionValueError(f"method {self.name!r}: option sigma={o.sigma!r} must be >= 0 (0 = auto)")

    # ------------------------------------------------------------------ data needs
    @property
    def unbiased(self) -> bool:
        """CAL builds on UDP's unbiased data processing."""
        return True

    def sigma_for(self, heatmap_size: tuple[int, int]) -> float:
        """The Gaussian sigma (heatmap px) used at ``heatmap_size``: the option, or the auto rule when 0."""
        return float(self.options.sigma) if self.options.sigma > 0 else auto_sigma(heatmap_size)

    # ------------------------------------------------------------------ model
    def head_spec(self, geometry: Geometry) -> MapHeadSpec:
        """Heatmaps (K) and offsets (2K) on the network named by ``network`` (released: decoupled)."""
        o = self.options
        return offset_head_spec(o.network, o.head_blocks, o.tail_init)

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """Targets for keypoints ``(B, K, 2)`` crop px.

        Returns ``heatmaps (B,K,h,w)``, ``offsets (B,K,2,h,w)`` (normalised; zero off the disc, as UDP's
        masked target), ``offset_mask (B,K,h,w)`` (the disc), ``offset_weight (B,K,h,w)`` (the per-pixel
        weight of the offset loss, option ``offset_weighting``), ``centres (B,K,2)`` (joints in heatmap
        px) and ``weight (B,K)``: the visibility, zeroed
        where the target's support (disc radius, or the ``3 sigma`` window) lies wholly off the map. The
        maps of weight-0 joints are zero. Keys with equal values share one tensor (``offset_weight`` is
        ``heatmaps`` with the default target and weighting, ``offset_mask`` with ``offset_weighting="disc"``
        or ``target="disc"``): targets are read-only, as everywhere in the suite.
        """
        o = self.options
        dtype = keypoints.dtype if keypoints.is_floating_point() else torch.float32
        size = geometry.heatmap_size
        c = geometry.crop_to_heatmap.forward(keypoints.to(dtype))
        sigma = self.sigma_for(size)
        support = 3.0 * sigma if o.target == "subpixel_gaussian" else o.radius
        keep = (visibility > 0) & window_visible(c, size, support)
        weight = keep.to(dtype)
        # The disc, its Gaussian-weighted copy B * C and the masked offsets from one set of 1-D factors;
        # weight-0 joints are zeroed through ``keep``, not by another pass over (B, K, h, w).
        need_weighted = o.target == "gaussian_disc" or o.offset_weighting != "disc"
        t = disc_offset_targets(c, size, o.radius, o.offset_normaliser, keep=keep, mask_offsets=True,
                                sigma=sigma if need_weighted else None)
        disc, weighted = t.disc, t.weighted
        if o.target == "subpixel_gaussian":  # the release's target: the sub-pixel Gaussian over the whole map
            heatmaps = gaussian_heatmaps(c, size, sigma, keep=keep)
        else:
            heatmaps = weighted if o.target == "gaussian_disc" else disc
        if o.offset_weighting == "disc":
            offset_weight = disc
        elif o.offset_weighting == "released":  # the release's GT mask divides it by sigma
            offset_weight = weighted / sigma
        else:
            offset_weight = weighted
        return {
            "heatmaps": heatmaps,
            "offsets": t.offsets,
            "offset_mask": disc,
            "offset_weight": offset_weight,
            "centres": c,
            "weight": weight,
        }

    @property
    def offset_loss_normalised(self) -> bool:
        """Whether the offset loss divides by its weights' sum (``offset_reduction="mask"``): then scaling the
        weights leaves the offset term's scale unchanged."""
        return self.options.offset_reduction == "mask"

    def offset_weighting(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-pixel weight ``(B, K, h, w)`` of the offset loss (MGM: see there): the disc, the
        Gaussian-weighted disc (peak 1), or the release's Gaussian mask (that divided by sigma)."""
        return targets["offset_weight"]

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``total = heatmap_loss_weight * heatmap + offset_loss_weight * offset`` (terms reported unweighted)."""
        o = self.options
        w = targets["weight"][..., None, None]
        pred_hm = outputs["heatmaps"]
        hm_loss = ((pred_hm - targets["heatmaps"]) ** 2 * w).mean()
        mask = self.offset_weighting(outputs, targets) * w  # (B, K, h, w)
        diff = outputs["offsets"] - targets["offsets"]  # (B, K, 2, h, w)
        if o.offset_loss == "l1":
            err = diff.abs()
        elif o.offset_loss == "smooth_l1":
            err = F.smooth_l1_loss(diff, torch.zeros_like(diff), reduction="none", beta=1.0)
        else:
            err = diff * diff
        weighted = err * mask[:, :, None]
        if o.offset_reduction == "mask":
            off_loss = weighted.sum() / (2.0 * mask.sum()).clamp_min(1e-6)
        else:
            off_loss = weighted.mean()
        total = o.heatmap_loss_weight * hm_loss + o.offset_loss_weight * off_loss
        return {"total": total, "heatmap": hm_loss.detach(), "offset": off_loss.detach()}

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Argmax + ``offset_normaliser * offset`` at the argmax (heatmap px) -> crop px; scores = peak values."""
        coarse, scores = argmax_2d(outputs["heatmaps"])
        coarse = coarse.to(torch.promote_types(coarse.dtype, torch.float32))  # no half-precision coordinates
        off = gather_at(outputs["offsets"], coarse).to(coarse.dtype)  # (B, K, 2)
        fine = coarse + self.options.offset_normaliser * off
        return geometry.crop_to_heatmap.inverse(fine), scores

    def targets_as_outputs(self, targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A perfect network's outputs: the heatmap and offset targets."""
        return {"heatmaps": targets["heatmaps"], "offsets": targets["offsets"]}

    def coarse(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> torch.Tensor | None:
        """Integer argmax of the heatmaps, heatmap px ``(B, K, 2)``."""
        return argmax_2d(outputs["heatmaps"])[0]

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Mirror both maps, swap left/right joints, negate the x offsets (unbiased: no pixel shift)."""
        idx = list(flip_index)
        offsets = flip_maps(outputs["offsets"], idx, joint_dim=1)
        offsets = torch.cat([-offsets[:, :, :1], offsets[:, :, 1:]], dim=2)
        return {"heatmaps": flip_maps(outputs["heatmaps"], idx, joint_dim=1), "offsets": offsets}

    # ------------------------------------------------------------------ records
    def summary(self) -> str:
        """One line naming the combination, as written into records."""
        o = self.options
        sigma = "auto" if o.sigma == 0 else f"{o.sigma:g}"
        return (f"CAL target={o.target} R={o.radius:g} sigma={sigma} offsets/{o.offset_normaliser:g} "
                f"{o.offset_loss} loss {o.heatmap_loss_weight:g}*hm+{o.offset_loss_weight:g}*off")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "summary": self.summary()}


class CALMGMMethod(CALMethod):
    """CAL with the Mixture Gaussian Mask on the offset loss, trained in two stages.

    Stage ``"coarse"`` (``stage_split`` of the epochs, default 0.5: the paper trains in two stages but the
    split is not known; half gives the heatmap time to converge and the MGM as long to act) trains plain
    CAL. At the start of stage ``"mgm"`` the coarse errors ``argmax - joint`` (heatmap px) of the current
    model are collected and a Gaussian mixture is fitted (scikit-learn, ``covariance`` type):

    * ``fit_scope="epoch"`` (default, the paper's description): one fit over the whole training set at the
      start of stage 2 (one pass of ``predict``). It is *not* refitted every epoch: the method contract
      has no per-epoch hook (``begin_stage`` runs once per stage).
    * ``fit_scope="batch"`` (released code): refit on every training mini-batch's detached argmax errors
      inside ``loss`` (only while gradients are enabled, so validation losses do not refit).

    ``n_components`` default 3: the paper models the errors with a *mixture*; the release uses 1 (set
    ``n_components=1`` to reproduce it). The mask is the density ``/`` its maximum (peak 1), drawn in a
    ``mask_size`` square (7, released) around each joint's integer peak, evaluated at each pixel's exact
    offset from the joint (``mask_subpixel``; false = integer offsets from the peak, as released), and
    multiplies the disc mask of the offset loss (the release uses the mask alone; inside the 7x7 patch
    the two differ only in the four corners, outside the radius-4 disc).

    How wide the mask is decides how much offset loss stage 2 keeps. With the default mixture the main
    component takes the correct argmaxes (sub-pixel spread, ~0.1 px^2) and the others the gross errors,
    so the mask is nearly one pixel wide: on the embedded data it keeps 0.13x of stage 1's weight per
    joint at 128x96 and 0.47x at 64x48. The release's single Gaussian over every error, gross ones
    included, is broad instead. ``lrpose plot offsets`` prints a run's figures (``stage_offset_weights``).
    """

    name = "cal_mgm"
    description = "CAL + MGM: two stages; stage 2 weights the offset loss by a GMM of coarse argmax errors"

    @dataclass(frozen=True)
    class Options(CALMethod.Options):
        """CAL options plus the MGM's."""

        #: fraction of the epochs in stage 1 ("coarse", plain CAL); 0 = MGM from the start.
        stage_split: float = 0.5
        #: Gaussian components of the mixture (paper: a mixture; released: 1).
        n_components: int = 3
        #: scikit-learn covariance type: full (released), diag, spherical or tied.
        covariance: str = "full"
        #: "epoch": fit once over the training set at the start of stage 2; "batch": refit every mini-batch.
        fit_scope: str = "epoch"
        #: side of the square mask patch (odd, heatmap px); released 7.
        mask_size: int = 7
        #: errors measured from the sub-pixel joint (true) or from its integer peak (false, released).
        mask_subpixel: bool = True
        #: covariance regulariser added to the diagonal (heatmap px^2); 1e-6 = scikit-learn's default, which
        #: the release uses (GaussianMixture with default arguments in lib/core/loss.py).
        reg_covar: float = 1e-6
        #: at most this many errors enter one fit (a seeded random subset).
        max_fit_samples: int = 200_000
        #: random seed of the EM initialisation and the subset.
        seed: int = 0

    def __init__(self, options: "CALMGMMethod.Options | None" = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        _check_choice(self.name, "fit_scope", o.fit_scope, FIT_SCOPES)
        _check_choice(self.name, "covariance", o.covariance, COVARIANCE_TYPES)
        if not 0.0 <= o.stage_split < 1.0:
            raise OptionValueError(f"method {self.name!r}: option stage_split={o.stage_split!r} must be in [0, 1)")
        if o.n_components < 1:
            raise OptionValueError(f"method {self.name!r}: option n_components={o.n_components!r} must be >= 1")
        if o.mask_size < 1 or o.mask_size % 2 == 0:
            raise OptionValueError(f"method {self.name!r}: option mask_size={o.mask_size!r} must be a positive odd integer")
        self._stage: str | None = None
        self._active = False
        self._mixture: Mixture2D | None = None
        self._n_fits = 0
        self._geometry: Geometry | None = None

    # ------------------------------------------------------------------ stages
    def stages(self) -> list[Stage]:
        """``[coarse (stage_split), mgm (1 - stage_split)]``, or only ``mgm`` when the split is 0."""
        split = float(self.options.stage_split)
        if split <= 0.0:
            return [Stage("mgm", 1.0)]
        return [Stage("coarse", split), Stage("mgm", 1.0 - split)]

    def begin_stage(self, stage: Stage, predict: PredictFn) -> dict[str, Any]:
        """Stage ``mgm`` switches the mask on; with ``fit_scope="epoch"`` it fits the mixture over ``predict()``."""
        self._stage = stage.name
        self._active = stage.name == "mgm"
        if not self._active:
            return {"mgm": "off"}
        if self.options.fit_scope == "batch":
            return {"mgm": "on", "mgm_scope": "batch"}
        chunks = [self._coarse_errors(outputs, targets, batch) for outputs, targets, batch in predict()]
        errors = torch.cat(chunks) if chunks else torch.zeros(0, 2, dtype=torch.float64)
        if errors.shape[0] < 2:
            warnings.warn(f"cal_mgm: only {errors.shape[0]} coarse errors collected; the MGM stays off", stacklevel=2)
            self._mixture = None
            return {"mgm": "on", "mgm_scope": "epoch", "mgm_fitted": False, "mgm_n_samples": int(errors.shape[0])}
        self._fit(errors)
        return {"mgm": "on", "mgm_scope": "epoch", "mgm_fitted": True, **self._fit_facts()}

    def _coarse_errors(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                       batch: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Coarse errors ``(M, 2)`` heatmap px (float64, CPU) of weighted joints whose centre is on the map."""
        hm = outputs["heatmaps"].detach()
        coarse = argmax_2d(hm)[0].to(torch.float64)
        if "centres" in targets:
            centres = targets["centres"].detach().to(torch.float64)
            valid = targets["weight"] > 0
        else:  # targets from elsewhere: rebuild the joints from the batch and the last geometry
            if self._geometry is None or batch is None:
                raise ValueError("cal_mgm: coarse errors need targets['centres'] or a batch after encode()")
            centres = self._geometry.crop_to_heatmap.forward(batch["keypoints"].to(torch.float64))
            valid = batch["visibility"] > 0
        h, w = hm.shape[-2:]
        inside = (centres[..., 0] >= -0.5) & (centres[..., 0] <= w - 0.5) & (centres[..., 1] >= -0.5) & (
            centres[..., 1] <= h - 0.5)
        ref = centres if self.options.mask_subpixel else round_half_up(centres)
        err = coarse - ref
        return err[valid & inside].cpu()

    def _fit(self, errors: torch.Tensor) -> None:
        o = self.options
        self._mixture = fit_mixture(errors, o.n_components, o.covariance, o.seed, o.reg_covar, o.max_fit_samples)
        self._n_fits += 1

    def _fit_facts(self) -> dict[str, Any]:
        m = self._mixture
        if m is None:
            return {}
        return {"mgm_n_samples": m.n_samples, "mgm_weights": m.weights.tolist(), "mgm_means": m.means.tolist()}

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        self._geometry = geometry
        return super().encode(keypoints, visibility, geometry)

    def offset_weighting(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Stage 1: CAL's weighting; stage 2: the disc times the MGM (refit first when ``fit_scope="batch"``
        and training)."""
        disc = targets["offset_mask"]
        if not self._active:
            return super().offset_weighting(outputs, targets)
        if self.options.fit_scope == "batch" and torch.is_grad_enabled():
            errors = self._coarse_errors(outputs, targets)
            if errors.shape[0] >= 2:
                self._fit(errors)
        if self._mixture is None:
            return disc
        return self._mgm_weight(targets, self._mixture)

    def _mgm_weight(self, targets: Mapping[str, torch.Tensor], mixture: Mixture2D) -> torch.Tensor:
        """Stage 2's weight ``(B, K, h, w)``: the disc times the MGM of ``mixture`` around each joint."""
        disc = targets["offset_mask"]
        h, w = disc.shape[-2:]
        mgm = render_mask(mixture, targets["centres"].detach(), (w, h), self.options.mask_size, self.options.mask_subpixel)
        return disc * mgm.to(disc.dtype)

    def stage_offset_weights(
        self, targets: Mapping[str, torch.Tensor], mixture: Mixture2D
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-pixel offset-loss weights ``(B, K, h, w)`` of both stages for the same ``targets``:
        stage 1's (CAL's ``offset_weighting``) and stage 2's with ``mixture`` (the disc times its MGM).

        A diagnostic (``lrpose plot offsets`` sums them per joint); training state is not touched.
        """
        return super().offset_weighting({}, targets), self._mgm_weight(targets, mixture)

    # ------------------------------------------------------------------ state
    @property
    def mixture(self) -> Mixture2D | None:
        """The fitted mixture (heatmap px), or ``None`` before stage 2."""
        return self._mixture

    def state_dict(self) -> dict[str, Any]:
        """Stage flags and the fitted mixture as plain lists (``torch.load(weights_only=True)`` safe)."""
        return {
            "stage": self._stage,
            "active": self._active,
            "n_fits": self._n_fits,
            "mixture": None if self._mixture is None else self._mixture.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._stage = state.get("stage")
        self._active = bool(state.get("active", False))
        self._n_fits = int(state.get("n_fits", 0))
        mix = state.get("mixture")
        self._mixture = None if mix is None else Mixture2D.from_dict(mix)

    def artifacts(self) -> dict[str, Any]:
        """``{"mgm": {...}}`` with the fitted mixture for ``lrpose plot offsets`` (empty before any fit)."""
        m = self._mixture
        if m is None:
            return {}
        return {
            "mgm": {
                "n_components": m.n_components,
                "means": m.means.tolist(),
                "covariances": m.covariances.tolist(),
                "weights": m.weights.tolist(),
                "scope": self.options.fit_scope,
                "n_samples": m.n_samples,
                "n_fits": self._n_fits,
                "peak_density": m.peak_density,
                "error_reference": "sub-pixel joint" if self.options.mask_subpixel else "integer peak",
                "units": "heatmap px",
            }
        }

    def summary(self) -> str:
        o = self.options
        return (f"{super().summary()} + MGM({o.n_components}-component {o.covariance} GMM, scope={o.fit_scope}, "
                f"patch {o.mask_size}, stage split {o.stage_split:g})")


__all__ = ["CALMethod", "CALMGMMethod", "TARGETS", "OFFSET_LOSSES", "FIT_SCOPES"]
