"""The full top-down pose network: optional front end -> backbone -> method head."""

from __future__ import annotations

import torch
from torch import nn


class PoseModel(nn.Module):
    """``images`` -> ``front`` (e.g. super-resolution; identity if none) -> ``backbone`` -> ``head``.

    ``images`` are ImageNet-normalised crops ``(B, 3, h, w)`` at the crop size; the front maps them to the
    backbone's input size; the backbone gives stride-4 features ``(B, C, H/4, W/4)``; the head (built by
    the method) returns the method's outputs ``dict[str, Tensor]``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, front: nn.Module | None = None) -> None:
        super().__init__()
        self.front = front if front is not None else nn.Identity()
        self.backbone = backbone
        self.head = head

    @property
    def has_front(self) -> bool:
        """Whether a (non-identity) front end runs before the backbone."""
        return not isinstance(self.front, nn.Identity)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, C, H/4, W/4)`` of normalised crops (front applied)."""
        return self.backbone(self.front(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.features(images))
