"""Small output heads shared by the methods (they sit on the backbone's stride-4 feature map).

Each head maps features ``(B, C, h, w)`` to the method's ``outputs`` dict:
    ``"heatmaps"``  ``(B, K, h, w)``          one map per keypoint
    ``"offsets"``   ``(B, K, 2, h, w)``       x/y offset fields per keypoint (UDP, CAL)
    ``"simcc_x"``   ``(B, K, L_x)``, ``"simcc_y"`` ``(B, K, L_y)``   SimCC logits

Initialisation follows HRNet's final layer: weights ~ N(0, 0.001), biases 0.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


def conv1x1(in_channels: int, out_channels: int, std: float = 0.001) -> nn.Conv2d:
    """A 1x1 convolution initialised as HRNet's final layer (normal ``std``, zero bias)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.normal_(conv.weight, std=std)
    nn.init.zeros_(conv.bias)
    return conv


class MapHead(nn.Module):
    """Per-pixel outputs from separate 1x1 convolutions, one per named output.

    ``maps`` maps an output name to its channels *per keypoint*: ``{"heatmaps": 1}`` gives
    ``(B, K, h, w)``; ``{"heatmaps": 1, "offsets": 2}`` adds ``(B, K, 2, h, w)`` (channel 0 = x, 1 = y)
    from its own convolution, as the CAL release keeps separate heatmap and offset heads. (A single
    ``3K``-channel 1x1 conv as in UDP's release is the same function with the same parameters.)
    """

    def __init__(self, in_channels: int, num_keypoints: int, maps: Mapping[str, int]) -> None:
        super().__init__()
        if not maps:
            raise ValueError("MapHead needs at least one output map")
        self.num_keypoints = int(num_keypoints)
        self.per_joint = dict(maps)
        self.convs = nn.ModuleDict({name: conv1x1(in_channels, num_keypoints * c) for name, c in maps.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = features.shape
        out: dict[str, torch.Tensor] = {}
        for name, conv in self.convs.items():
            y = conv(features)
            c = self.per_joint[name]
            out[name] = y if c == 1 else y.reshape(b, self.num_keypoints, c, h, w)
        return out


class SimCCHead(nn.Module):
    """SimCC's head: 1x1 conv to ``K`` maps, flatten each map, two linear layers to x and y bins.

    ``feature_size = (w, h)`` of the stride-4 feature map; ``bins = (L_x, L_y)``. Outputs logits
    ``simcc_x (B, K, L_x)`` and ``simcc_y (B, K, L_y)`` (softmax is applied by the loss / decoder).
    """

    def __init__(self, in_channels: int, num_keypoints: int, feature_size: tuple[int, int],
                 bins: tuple[int, int]) -> None:
        super().__init__()
        self.feature_size = (int(feature_size[0]), int(feature_size[1]))
        n = self.feature_size[0] * self.feature_size[1]
        self.conv = conv1x1(in_channels, num_keypoints)
        self.to_x = nn.Linear(n, int(bins[0]))
        self.to_y = nn.Linear(n, int(bins[1]))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = features.shape[-2:]
        if (w, h) != self.feature_size:
            raise ValueError(
                f"SimCC head built for a {self.feature_size[1]}x{self.feature_size[0]} feature map "
                f"got {h}x{w}: its linear layers depend on the resolution"
            )
        flat = self.conv(features).flatten(2)  # (B, K, h*w)
        return {"simcc_x": self.to_x(flat), "simcc_y": self.to_y(flat)}


__all__ = ["conv1x1", "MapHead", "SimCCHead"]
