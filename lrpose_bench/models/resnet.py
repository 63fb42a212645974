"""SimpleBaseline backbone (Xiao et al., ECCV 2018): a ResNet trunk and three deconvolutions.

``(B,3,H,W)`` -> ResNet conv1..layer4 (stride 32, 2048 ch) -> 3 x [ConvTranspose 4x4 stride 2 (256 ch),
BN, ReLU] -> ``(B,256,H/4,W/4)``. The trunk is torchvision's ResNet built with ``weights=None`` (never a
download); its modules sit at the top level under torchvision's names (``conv1``, ``bn1``,
``layer1``..``layer4``) so torchvision and timm ImageNet state dicts load by name (only ``fc.*`` is left
over). The deconvolutions are named ``deconv_layers`` as in the official SimpleBaseline code and
initialised like it (weights N(0, 0.001), BN 1/0).

Input sides must be multiples of 32: the trunk halves five times (with padding) and the deconvolutions
double exactly three times, so any other side would come back at the wrong size.
"""

from __future__ import annotations

import torch
from torch import nn

from lrpose_bench.models.hrnet import hrnet_init

#: ResNet depth -> torchvision builder name.
DEPTHS: dict[int, str] = {50: "resnet50", 101: "resnet101", 152: "resnet152"}


def deconv_stack(in_channels: int, channels: int = 256, num_deconv: int = 3) -> nn.Sequential:
    """SimpleBaseline's deconvolutions: ``num_deconv`` x [ConvTranspose 4x4 stride 2, BN, ReLU], its init."""
    layers: list[nn.Module] = []
    for _ in range(num_deconv):
        layers += [
            nn.ConvTranspose2d(in_channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = channels
    stack = nn.Sequential(*layers)
    hrnet_init(stack)
    return stack


class DeconvTail(nn.Module):
    """A private copy of SimpleBaseline's deconvolution stack (``deconv_layers``): stride-32 trunk
    features -> stride-4 features, for decoupled heads."""

    def __init__(self, in_channels: int, channels: int = 256, num_deconv: int = 3) -> None:
        super().__init__()
        self.deconv_layers = deconv_stack(in_channels, channels, num_deconv)
        self.out_channels = channels

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.deconv_layers(state)


class SimpleBaseline(nn.Module):
    """ResNet-``depth`` trunk + three 256-channel deconvolutions: features at stride 4.

    Split for decoupled heads: :meth:`forward_trunk` (the ResNet, stride 32), :meth:`forward_tail` (the
    deconvolutions) and :meth:`make_tail` (a fresh :class:`DeconvTail`).
    """

    stride_multiple = 32
    #: Top-level modules of the last stage (the part :meth:`make_tail` copies).
    tail_modules: tuple[str, ...] = ("deconv_layers",)

    def __init__(self, depth: int = 50, deconv_channels: int = 256, num_deconv: int = 3) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"SimpleBaseline depth must be one of {sorted(DEPTHS)}, got {depth}")
        import torchvision.models  # here, not at the top: it costs every process ~3 s (torch._dynamo)

        trunk = getattr(torchvision.models, DEPTHS[depth])(weights=None)
        self.depth = depth
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        self.trunk_channels = trunk.fc.in_features
        self.deconv_shape = (deconv_channels, num_deconv)
        self.deconv_layers = deconv_stack(self.trunk_channels, deconv_channels, num_deconv)
        self.out_channels = deconv_channels

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The ResNet: ``(B, 2048, H/32, W/32)`` (ResNet-50/101/152)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def trunk_output(self, state: torch.Tensor) -> torch.Tensor:
        """The trunk's deepest map: C5, ``(B, 2048, H/32, W/32)``."""
        return state

    def forward_tail(self, state: torch.Tensor) -> torch.Tensor:
        """The deconvolutions: ``(B, 256, H/4, W/4)``."""
        return self.deconv_layers(state)

    def make_tail(self) -> DeconvTail:
        """A freshly initialised copy of the deconvolution stack."""
        return DeconvTail(self.trunk_channels, *self.deconv_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tail(self.forward_trunk(x))
