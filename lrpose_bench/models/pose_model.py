"""The full top-down pose network: optional front end -> backbone (-> private tails) -> method head."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class PoseModel(nn.Module):
    """``images`` -> ``front`` (e.g. super-resolution; identity if none) -> ``backbone`` -> ``head``.

    ``images`` are ImageNet-normalised crops ``(B, 3, h, w)`` at the crop size; the front maps them to the
    backbone's input size; the backbone gives stride-4 features ``(B, C, H/4, W/4)``; the head (built by
    the method) returns the method's outputs ``dict[str, Tensor]``.

    With ``tails`` (decoupled heads, e.g. the CAL release's offset path): the backbone runs its trunk once
    (``forward_trunk``), its own last stage gives the ``"shared"`` features and each tail, a private copy
    of that stage, gives the features named by its key; the head receives the dict of all of them.

    With ``trunk_only`` (a method whose ``head_input`` is ``"trunk"``, e.g. RLE): the head reads the
    trunk's deepest map (``backbone.trunk_output(backbone.forward_trunk(x))``); the backbone's last stage
    has been removed (:func:`lrpose_bench.models.assemble.drop_tail`).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, front: nn.Module | None = None,
                 tails: Mapping[str, nn.Module] | None = None, trunk_only: bool = False) -> None:
        super().__init__()
        if trunk_only and tails:
            raise ValueError("a trunk-only model has no last stage to give decoupled outputs")
        self.front = front if front is not None else nn.Identity()
        self.backbone = backbone
        self.head = head
        self.tails = nn.ModuleDict(dict(tails or {}))
        self.trunk_only = bool(trunk_only)

    @property
    def has_front(self) -> bool:
        """Whether a (non-identity) front end runs before the backbone."""
        return not isinstance(self.front, nn.Identity)

    @property
    def decoupled(self) -> bool:
        """Whether some outputs read a private copy of the backbone's last stage."""
        return len(self.tails) > 0

    def features(self, images: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Backbone features ``(B, C, H/4, W/4)`` of normalised crops (front applied); with tails, a dict
        ``{"shared": ..., <tail name>: ...}`` of stride-4 feature maps; with ``trunk_only``, the trunk's
        deepest map (``(B, backbone.trunk_channels, H/s, W/s)``, ``s`` = 16 for tiny, 32 for ResNet)."""
        x = self.front(images)
        if self.trunk_only:
            return self.backbone.trunk_output(self.backbone.forward_trunk(x))
        if not self.tails:
            return self.backbone(x)
        state = self.backbone.forward_trunk(x)
        out = {"shared": self.backbone.forward_tail(state)}
        out.update({name: tail(state) for name, tail in self.tails.items()})
        return out

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.features(images))
