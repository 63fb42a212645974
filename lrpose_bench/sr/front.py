"""The SR front end as a pose model's first module: normalised low-res crop -> normalised high-res crop.

Batches reach the model ImageNet-normalised (:mod:`lrpose_bench.data.normalize`); SR networks work on RGB
in [0, 1]. :class:`SRFront` undoes the normalisation, super-resolves, clamps to [0, 1] and normalises
again, so the backbone sees what it would see for a real high-res crop. Frozen (the default), its
weights never change: ``requires_grad`` is off, it runs under ``no_grad`` and stays in eval mode even
when the pose model is put in train mode. ``finetune=True`` trains it end to end with the pose loss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lrpose_bench.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from lrpose_bench.sr.archs import build_sr, sr_arch
from lrpose_bench.sr.weights import load_sr_network, resolve_weights


class SRFront(nn.Module):
    """``(B, 3, h, w)`` normalised low-res crop (crop px) -> ``(B, 3, h*s, w*s)`` normalised SR crop."""

    def __init__(self, net: nn.Module, scale: int, frozen: bool = True, output_size: Sequence[int] | None = None) -> None:
        super().__init__()
        self.net = net
        self.scale = int(scale)
        self.frozen = bool(frozen)
        #: ``(w, h)`` of the model input; a crop already that large passes through unchanged (SR + heatmap's
        #: paper baseline trains on real high-res crops and super-resolves only low-res test crops).
        self.output_size = tuple(int(v) for v in output_size) if output_size is not None else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if self.frozen:
            for p in self.net.parameters():
                p.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> SRFront:
        """As ``nn.Module.train``, but a frozen front stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.net.eval()
        return self

    def super_resolve(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (low-res) -> RGB clamped to [0, 1] (high-res)."""
        if self.frozen:
            with torch.no_grad():
                return self.net(rgb).clamp(0.0, 1.0)
        return self.net(rgb).clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_size is not None and (x.shape[-1], x.shape[-2]) == self.output_size:
            return x  # already a high-res crop
        mean, std = self.mean.to(x.dtype), self.std.to(x.dtype)
        sr = self.super_resolve(x * std + mean)
        return (sr.to(x.dtype) - mean) / std

    def extra_repr(self) -> str:
        return f"scale={self.scale}, frozen={self.frozen}"


def build_sr_front(
    name: str, scale: int, weights: str | os.PathLike | None = None, finetune: bool = False, param_key: str | None = None
) -> tuple[SRFront, dict[str, Any]]:
    """The front end ``name`` at ``x scale`` with its weights, and its provenance for the record.

    A learned model without ``weights`` falls back to :func:`lrpose_bench.sr.weights.default_weights_path`;
    if that is absent too, ``FileNotFoundError`` says how to train or where to put weights.
    """
    arch = sr_arch(name)
    if not arch.learned:
        if weights:
            raise ValueError(f"SR model {arch.name!r} has no weights; drop --sr-weights {weights}")
        return SRFront(build_sr(arch.name, scale), scale, frozen=True), {"model": arch.name, "scale": scale}
    path = resolve_weights(arch.name, scale, weights)
    net, info = load_sr_network(arch.name, scale, path, param_key)
    return SRFront(net, scale, frozen=not finetune), info


def front_cost(front: nn.Module, crop_size: Sequence[int], device: torch.device | str = "cpu", repeats: int = 10) -> dict[str, float | int]:
    """``{params, gflops, gmacs, latency_ms}`` of ``front`` on one low-res ``(w, h)`` crop at batch 1.

    Measured by :func:`lrpose_bench.models.model_cost`, exactly as the pose model is (FLOPs of convs and
    matmuls only: bicubic interpolation counts 0). ``params`` counts all of the network's parameters,
    frozen or not.
    """
    from lrpose_bench.models.cost import model_cost

    return dict(model_cost(front, (int(crop_size[0]), int(crop_size[1])), device, repeats))


__all__ = ["SRFront", "build_sr_front", "front_cost"]
