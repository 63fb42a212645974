"""Output heads shared by the methods (they sit on the backbone's stride-4 feature map).

Each head maps features ``(B, C, h, w)`` to the method's ``outputs`` dict:
    ``"heatmaps"``  ``(B, K, h, w)``          one map per keypoint
    ``"offsets"``   ``(B, K, 2, h, w)``       x/y offset fields per keypoint (UDP, CAL)
    ``"simcc_x"``   ``(B, K, L_x)``, ``"simcc_y"`` ``(B, K, L_y)``   SimCC logits

A method with per-pixel outputs describes its head with a :class:`MapHeadSpec` (which outputs, how many
BasicBlocks before each final 1x1 convolution, which outputs read a private copy of the backbone's last
stage); the core builds it (:func:`lrpose_bench.models.pose_model.assemble_model`).

Initialisation follows HRNet's final layers: conv weights ~ N(0, 0.001), biases 0, BN weight 1, bias 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from lrpose_bench.models.hrnet import BasicBlock, hrnet_init

#: Where an output reads its features when the backbone's last stage is not copied for it.
SHARED = "shared"
#: How a private copy of the backbone's last stage starts: HRNet's init (as released) or the main copy's weights.
TAIL_INITS: tuple[str, ...] = ("fresh", "copy")


@dataclass(frozen=True)
class MapHeadSpec:
    """A per-pixel head: ``maps`` = ``((output name, channels per joint), ...)`` in output order.

    ``blocks``: BasicBlocks (stride 1, at the feature width) before each output's own 1x1 convolution;
    0 = HRNet's single 1x1 layer, 2 = the CAL release's ``final_block1`` + ``final_block_hm/om``.
    ``decoupled``: outputs that read a private copy of the backbone's last stage (the CAL release's
    ``transition3_om`` + ``stage4_om`` for the offsets) instead of the shared features, so that their loss
    reaches only the trunk. ``tail_init``: how such a copy starts, ``"fresh"`` (HRNet's init, as released:
    ImageNet weights load by name into the shared stage only) or ``"copy"`` (the shared stage's weights
    after any pretrained loading).
    """

    maps: tuple[tuple[str, int], ...]
    blocks: int = 0
    decoupled: tuple[str, ...] = ()
    tail_init: str = "fresh"

    def __post_init__(self) -> None:
        names = [name for name, _ in self.maps]
        if not names:
            raise ValueError("MapHeadSpec needs at least one output map")
        unknown = [d for d in self.decoupled if d not in names]
        if unknown:
            raise ValueError(f"MapHeadSpec: decoupled outputs {unknown} are not among the maps {names}")
        if self.blocks < 0:
            raise ValueError(f"MapHeadSpec: blocks must be >= 0, got {self.blocks}")
        if self.tail_init not in TAIL_INITS:
            raise ValueError(f"MapHeadSpec: tail_init {self.tail_init!r} is not one of {', '.join(TAIL_INITS)}")

    def source(self, name: str) -> str:
        """The feature path output ``name`` reads: its own name if decoupled, else :data:`SHARED`."""
        return name if name in self.decoupled else SHARED


#: ``network`` choices of the heatmap + offset methods (UDP, CAL).
NETWORKS: tuple[str, ...] = ("released", "shared")


def offset_head_spec(network: str, head_blocks: int = -1, tail_init: str = "fresh") -> MapHeadSpec:
    """``heatmaps`` (K) + ``offsets`` (2K) per-pixel outputs on the network named by ``network``.

    ``"released"``: the CAL release's network (lib/models/pose_hrnet.py): the offsets read a private copy
    of the backbone's last stage, each output has two BasicBlocks before its 1x1 convolution.
    ``"shared"``: both outputs on one feature map through 1x1 convolutions (HRNet's final layer, UDP's
    release). ``head_blocks`` >= 0 overrides the blocks (-1: 2 for released, 0 for shared).
    """
    if network not in NETWORKS:
        raise ValueError(f"network={network!r} is not one of {', '.join(NETWORKS)}")
    blocks = head_blocks if head_blocks >= 0 else (2 if network == "released" else 0)
    decoupled = ("offsets",) if network == "released" else ()
    return MapHeadSpec((("heatmaps", 1), ("offsets", 2)), blocks, decoupled, tail_init)


def check_network_options(method: str, options: object) -> None:
    """Validate the ``network``, ``head_blocks`` and ``tail_init`` options of a heatmap + offset method."""
    from lrpose_bench.errors import OptionValueError

    network, blocks, init = options.network, options.head_blocks, options.tail_init  # type: ignore[attr-defined]
    if network not in NETWORKS:
        raise OptionValueError(f"method {method!r}: option network={network!r} is not one of {', '.join(NETWORKS)}")
    if blocks < -1:
        raise OptionValueError(f"method {method!r}: option head_blocks={blocks!r} must be >= 0 (or -1 = as network implies)")
    if init not in TAIL_INITS:
        raise OptionValueError(f"method {method!r}: option tail_init={init!r} is not one of {', '.join(TAIL_INITS)}")


def conv1x1(in_channels: int, out_channels: int, std: float = 0.001) -> nn.Conv2d:
    """A 1x1 convolution initialised as HRNet's final layer (normal ``std``, zero bias)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.normal_(conv.weight, std=std)
    nn.init.zeros_(conv.bias)
    return conv


def head_blocks(channels: int, blocks: int) -> nn.Sequential:
    """``blocks`` BasicBlocks at ``channels`` (HRNet init: conv N(0, 0.001), BN 1/0); empty for 0."""
    seq = nn.Sequential(*(BasicBlock(channels, channels) for _ in range(blocks)))
    hrnet_init(seq)
    return seq


class MapHead(nn.Module):
    """Per-pixel outputs, each from its own (optional) BasicBlocks and 1x1 convolution.

    ``maps`` maps an output name to its channels *per keypoint*: ``{"heatmaps": 1}`` gives
    ``(B, K, h, w)``; ``{"heatmaps": 1, "offsets": 2}`` adds ``(B, K, 2, h, w)`` (channel 0 = x, 1 = y).
    ``in_channels`` is one width for all outputs, or a width per feature path (``sources`` maps an output
    to its path; default :data:`SHARED`). ``forward`` takes one feature map ``(B, C, h, w)`` (every output
    reads it) or a dict path -> feature map (from a model with decoupled tails).
    Parameter names: ``blocks.<output>.*`` (absent for 0 blocks) and ``convs.<output>.*``.
    """

    def __init__(self, in_channels: int | Mapping[str, int], num_keypoints: int, maps: Mapping[str, int],
                 blocks: int = 0, sources: Mapping[str, str] | None = None) -> None:
        super().__init__()
        if not maps:
            raise ValueError("MapHead needs at least one output map")
        self.num_keypoints = int(num_keypoints)
        self.per_joint = dict(maps)
        self.sources = {name: (sources or {}).get(name, SHARED) for name in maps}
        widths = {name: in_channels if isinstance(in_channels, int) else in_channels[self.sources[name]]
                  for name in maps}
        if blocks:
            self.blocks = nn.ModuleDict({name: head_blocks(widths[name], blocks) for name in maps})
        self.convs = nn.ModuleDict({name: conv1x1(widths[name], num_keypoints * c) for name, c in maps.items()})

    @classmethod
    def from_spec(cls, spec: MapHeadSpec, in_channels: int | Mapping[str, int], num_keypoints: int) -> "MapHead":
        """The head a :class:`MapHeadSpec` describes."""
        maps = dict(spec.maps)
        return cls(in_channels, num_keypoints, maps, spec.blocks, {name: spec.source(name) for name in maps})

    def forward(self, features: torch.Tensor | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        blocks = getattr(self, "blocks", None)
        for name, conv in self.convs.items():
            x = features if isinstance(features, torch.Tensor) else features[self.sources[name]]
            if blocks is not None:
                x = blocks[name](x)
            y = conv(x)
            c = self.per_joint[name]
            b, _, h, w = y.shape
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


__all__ = ["SHARED", "TAIL_INITS", "NETWORKS", "MapHeadSpec", "offset_head_spec", "check_network_options", "conv1x1", "head_blocks", "MapHead", "SimCCHead"]
