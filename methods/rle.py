"""RLE (Li et al., ICCV 2021, "Human Pose Regression with Residual Log-likelihood Estimation"): direct
coordinate regression with a learned error density. No grid anywhere, so nothing to quantise.

Head (MMPose's ``RLEHead`` on a global-average-pooling neck): the deepest map of the backbone's trunk
is averaged over space (ResNet: C5, 2048 channels, as MMPose's ResNet-50 RLE; tiny: its stride-16
encoder output, 128 channels; the backbone's upsampling stage is removed), one linear layer gives per
joint ``(x, y, sigma_x, sigma_y)``; ``sigma = sigmoid(.)`` in ``(0, 1)``. Option ``pool="features"``
pools the backbone's stride-4 output instead (the upsampling stage kept; on tiny that is 32 numbers for
17 joints). HRNet has no single deepest trunk map: ``pool="trunk"`` refuses it with a clear error. On the
embedded data (1.2 k persons, no pretraining) both variants underfit, the trunk less (64x48: 13.0 against
10.5 AP; results/embedded_regression/README.md).

Coordinates are *normalised to the crop*: ``u = (x + 0.5) / w_crop``, ``v = (y + 0.5) / h_crop``
(:func:`lrpose_bench.codecs.to_unit`; the crop spans ``[0, 1]`` and a mirror is ``u -> 1 - u``), and
sigma is in the same units (a fraction of the crop's width / height).

Loss: the negative log-likelihood of the ground truth ``mu`` under the predicted density (paper, Sec. 3):
with the normalised residual ``r = (mu_hat - mu) / sigma_hat`` (2-D per joint),

    ``-log P(mu | I) = sum_d log sigma_d - log Q(r) - log G(r)``      (``residual=true``)
    ``-log P(mu | I) = sum_d log sigma_d - log G(r)``                 (``residual=false``)

``Q`` is a fixed density per axis (Laplace ``exp(-|r|)/2`` or standard Gaussian), ``G`` a RealNVP flow
(:class:`lrpose_bench.flows.RealNVP`) learned jointly with the network; the paper's normaliser ``log s``
is dropped (as the release does). The flow is part of the *loss*: it lives in the head module (so the
optimiser, checkpoints and DDP see its parameters) but the head's forward never runs it, and decoding
never uses it. The loss is summed over joints and axes, weighted per joint and divided by the batch
size (the release's ``size_average``). The release adds the flow's 2-D ``log G`` to *both* axes (a
broadcast), counting it twice; here it is counted once per joint, as in the paper's density.

Decoding: the predicted mean ``mu_hat`` (crop px); score ``1 - mean(sigma_x, sigma_y)`` (the release
and MMPose's ``RegressionLabel``). Flip test: ``u -> 1 - u`` for the flipped crop's x, left/right joints
swapped (sigma too), then the mean of the two passes.

Error bound of the codec alone: none (``mu_hat = mu`` decodes exactly, float rounding only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from lrpose_bench.codecs import check_keypoints, from_unit, to_unit
from lrpose_bench.flows import RealNVP
from lrpose_bench.method import Geometry, PoseMethod

#: Choices of the fixed base density ``Q`` of the residual formulation.
Q_DISTRIBUTIONS: tuple[str, ...] = ("laplace", "gaussian")
#: Choices of the map the pooling neck reads (option ``pool``; see :attr:`PoseMethod.head_input`).
POOL_INPUTS: tuple[str, ...] = ("trunk", "features")


class RLEHead(nn.Module):
    """Global average pooling (of the map the method's ``pool`` option names) -> one linear layer -> per
    joint ``coords (B,K,2)`` and ``sigma (B,K,2)``.

    ``coords`` are normalised crop coordinates, ``sigma = sigmoid(.)`` in the same units. The linear
    layer is initialised as MMPose's ``RLEHead`` (weights ~ N(0, 0.01)) with the coordinate biases at
    0.5 (the crop centre; the release regresses ``[-0.5, 0.5]`` coordinates from a zero bias, the same
    start) and the sigma biases at 0 (sigma 0.5). ``flow`` holds the loss's RealNVP; ``forward`` does
    not use it.
    """

    def __init__(self, in_channels: int, num_keypoints: int, flow: RealNVP) -> None:
        super().__init__()
        self.num_keypoints = int(num_keypoints)
        self.fc = nn.Linear(int(in_channels), self.num_keypoints * 4)
        nn.init.normal_(self.fc.weight, std=0.01)
        with torch.no_grad():
            bias = self.fc.bias.view(self.num_keypoints, 4)
            bias[:, :2] = 0.5
            bias[:, 2:] = 0.0
        self.flow = flow

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = features.mean(dim=(-2, -1))  # (B, C)
        out = self.fc(pooled).view(features.shape[0], self.num_keypoints, 4)
        return {"coords": out[..., :2], "sigma": torch.sigmoid(out[..., 2:])}


class RLEMethod(PoseMethod):
    """RLE: pooled-feature coordinate regression with a RealNVP residual log-likelihood loss."""

    name = "rle"
    description = "RLE: direct coordinate regression (pooled features), residual log-likelihood loss via RealNVP"
    fallback_backbone = "resnet50"  # MMPose's RLE; the paper profile's HRNet-W32 has no C5 to pool

    @dataclass(frozen=True)
    class Options:
        """Options of RLE (defaults: the paper and its release, which MMPose's RLELoss/RealNVP keep).

        residual: the residual formulation ``Q * G`` (paper Sec. 3.3, the release's and MMPose's default
            ``residual=True``); ``false`` uses the flow alone as the density.
        q_distribution: the fixed density ``Q``: ``"laplace"`` (the paper's choice, which its ablation
            prefers to a Gaussian; the release's default) or ``"gaussian"``.
        flow_layers: RealNVP affine coupling layers (release: 6, three alternating mask pairs).
        flow_hidden: width of the two hidden layers of each coupling's s and t nets (release: 64).
        pool: which map the global-average-pooling neck reads: ``"trunk"`` (the backbone's deepest
            trunk map, its upsampling stage removed: MMPose's RLE on ResNet pools C5) or ``"features"``
            (the backbone's stride-4 output).
        """

        residual: bool = True
        q_distribution: str = "laplace"
        flow_layers: int = 6
        flow_hidden: int = 64
        pool: str = "trunk"

    def __init__(self, options: "RLEMethod.Options | None" = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        if o.q_distribution not in Q_DISTRIBUTIONS:
            raise ValueError(f"method {self.name!r}: option q_distribution={o.q_distribution!r} is not one of "
                             f"{', '.join(Q_DISTRIBUTIONS)}")
        if o.pool not in POOL_INPUTS:
            raise ValueError(f"method {self.name!r}: option pool={o.pool!r} is not one of {', '.join(POOL_INPUTS)}")
        for key in ("flow_layers", "flow_hidden"):
            if getattr(o, key) < 1:
                raise ValueError(f"method {self.name!r}: option {key}={getattr(o, key)!r} must be >= 1")
        self.flow: RealNVP | None = None

    @property
    def head_input(self) -> str:  # type: ignore[override]
        """``"trunk"`` or ``"features"``: option ``pool``."""
        return self.options.pool

    # ------------------------------------------------------------------ model
    def build_head(self, in_channels: int, num_keypoints: int, geometry: Geometry) -> nn.Module:
        """:class:`RLEHead` with a fresh RealNVP; the method keeps a reference to that flow for :meth:`loss`."""
        flow = RealNVP(dim=2, layers=self.options.flow_layers, hidden=self.options.flow_hidden)
        self.flow = flow
        return RLEHead(in_channels, num_keypoints, flow)

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """``coords (B,K,2)`` normalised crop coordinates and ``weight (B,K)`` (the visibility)."""
        check_keypoints(keypoints, visibility, self.name)
        return {"coords": to_unit(keypoints, geometry.crop_size), "weight": visibility.to(keypoints.dtype)}

    def targets_as_outputs(self, targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A perfect regressor: the target coordinates with sigma 0 (score 1)."""
        return {"coords": targets["coords"], "sigma": torch.zeros_like(targets["coords"])}

    def negative_log_likelihood(
        self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Per-joint ``-log P(mu | I)`` ``(B, K)`` (nats; densities in normalised crop units)."""
        if self.flow is None:
            raise RuntimeError("method 'rle': the loss needs the flow that build_head creates; call build_head first")
        mu_hat, target = outputs["coords"], targets["coords"].to(outputs["coords"].dtype)
        sigma = outputs["sigma"].clamp_min(1e-9)
        r = (mu_hat - target) / sigma  # (B, K, 2) normalised residual
        log_g = self.flow.log_prob(r)  # (B, K)
        nll = torch.log(sigma).sum(dim=-1) - log_g
        if self.options.residual:
            if self.options.q_distribution == "laplace":
                nll = nll + (math.log(2.0) + r.abs()).sum(dim=-1)
            else:
                nll = nll + (0.5 * math.log(2.0 * math.pi) + 0.5 * r * r).sum(dim=-1)
        return nll

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"nll", "total"}``: weighted per-joint NLL summed over joints, divided by the batch size."""
        nll = self.negative_log_likelihood(outputs, targets)
        w = targets["weight"].to(nll.dtype)
        total = (nll * w).sum() / max(int(nll.shape[0]), 1)
        return {"nll": total, "total": total}

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean in crop px ``(B, K, 2)``; score ``1 - mean(sigma)`` ``(B, K)``."""
        coords = from_unit(outputs["coords"], geometry.crop_size)
        return coords, (1.0 - outputs["sigma"].mean(dim=-1)).clamp(0.0, 1.0)

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Mirror x (``u -> 1 - u``, exact in normalised crop coordinates) and swap left/right joints."""
        idx = torch.as_tensor(list(flip_index), dtype=torch.long, device=outputs["coords"].device)
        coords = outputs["coords"].index_select(1, idx)
        coords = torch.stack([1.0 - coords[..., 0], coords[..., 1]], dim=-1)
        return {"coords": coords, "sigma": outputs["sigma"].index_select(1, idx)}


__all__ = ["RLEMethod", "RLEHead", "Q_DISTRIBUTIONS", "POOL_INPUTS"]
