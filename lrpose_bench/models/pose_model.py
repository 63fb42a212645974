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
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, front: nn.Module | None = None,
                 tails: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.backbone = backbone
        self.head = head
        self.tails = nn.ModuleDict(dict(tails or {}))

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
        ``{"shared": ..., <tail name>: ...}`` of stride-4 feature maps."""
        x = self.front(images)
        if not self.tails:
            return self.backbone(x)
        state = self.backbone.forward_trunk(x)
        out = {"shared": self.backbone.forward_tail(state)}
        out.update({name: tail(state) for name, tail in self.tails.items()})
        return out

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.features(images))
