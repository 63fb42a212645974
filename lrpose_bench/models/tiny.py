"""A small, fast CPU backbone for the embedded default dataset.

A three-level U-shaped net that keeps a stride-4 stream (what a pose head needs) and adds context from
strides 8 and 16 through additive skips, in the spirit of a one-module HRNet:

    stem   2 x (3x3 conv stride 2, BN, ReLU)               -> /4,  c0
    enc4   BasicBlock(c0)                                  -> f4   (/4)
    enc8   3x3 conv stride 2 + 2 BasicBlocks(c1)           -> f8   (/8)
    enc16  3x3 conv stride 2 + 2 BasicBlocks(c2)           -> f16  (/16)
    dec8   f8 + up2(1x1 conv-BN(f16)), BasicBlock(c1)
    dec4   f4 + up2(1x1 conv-BN(dec8)), 2 BasicBlocks(c0)  -> (B, c0, H/4, W/4)

Defaults ``channels=(32, 64, 128)`` give 0.98 M parameters and 32 output channels; forward+backward
runs at about 120-140 crops/s at 128x96, batch 32, on 2 CPU threads (measured, torch 2.14).
Sides must be multiples of 4 (the output stride), so every resolution of the sweeps works (96x72
included): a coarser level is upsampled (nearest) to the exact size of the finer one it is added to,
which is an exact 2x when the sides are multiples of 16.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from lrpose_bench.models.hrnet import BasicBlock


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (padding 1) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def up_proj(c_in: int, c_out: int) -> nn.Sequential:
    """1x1 conv + BN; :func:`upsample_to` then brings the coarser level onto the next finer one."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to the spatial size of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def _kaiming(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class TinyDecoder(nn.Module):
    """The decoder ``up16, dec8, up8, dec4`` on its own: ``(f4, f8, f16)`` -> stride-4 features.

    A private copy of :class:`TinyPoseNet`'s last stage for decoupled heads (same names, fresh weights).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.out_channels = c0
        self.up16 = up_proj(c2, c1)
        self.dec8 = BasicBlock(c1, c1)
        self.up8 = up_proj(c1, c0)
        self.dec4 = nn.Sequential(BasicBlock(c0, c0), BasicBlock(c0, c0))
        _kaiming(self)

    def forward(self, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return decode(self, state)


def decode(m: nn.Module, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Run the decoder modules ``up16, dec8, up8, dec4`` of ``m`` on ``(f4, f8, f16)``."""
    f4, f8, f16 = state
    d8 = m.dec8(f8 + upsample_to(m.up16(f16), f8))
    return m.dec4(f4 + upsample_to(m.up8(d8), f4))


class TinyPoseNet(nn.Module):
    """``(B,3,H,W)`` -> ``(B, channels[0], H/4, W/4)``; see the module docstring for the layout.

    Split for decoupled heads: :meth:`forward_trunk` (stem and encoder: ``(f4, f8, f16)``),
    :meth:`forward_tail` (the decoder) and :meth:`make_tail` (a fresh :class:`TinyDecoder`).
    """

    stride_multiple = 4
    #: Top-level modules of the last stage (the part :meth:`make_tail` copies).
    tail_modules: tuple[str, ...] = ("up16", "dec8", "up8", "dec4")

    def __init__(self, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.channels = tuple(channels)
        self.out_channels = c0
        self.trunk_channels = c2
        self.stem = nn.Sequential(conv_bn_relu(3, c0 // 2, 2), conv_bn_relu(c0 // 2, c0, 2))
        self.enc4 = BasicBlock(c0, c0)
        self.enc8 = nn.Sequential(conv_bn_relu(c0, c1, 2), BasicBlock(c1, c1), BasicBlock(c1, c1))
        self.enc16 = nn.Sequential(conv_bn_relu(c1, c2, 2), BasicBlock(c2, c2), BasicBlock(c2, c2))
        self.up16 = up_proj(c2, c1)
        self.dec8 = BasicBlock(c1, c1)
        self.up8 = up_proj(c1, c0)
        self.dec4 = nn.Sequential(BasicBlock(c0, c0), BasicBlock(c0, c0))
        _kaiming(self)

    def forward_trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stem and encoder: features at strides 4, 8 and 16."""
        f4 = self.enc4(self.stem(x))
        f8 = self.enc8(f4)
        return f4, f8, self.enc16(f8)

    def trunk_output(self, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The trunk's deepest map: the encoder's ``(B, channels[2], H/16, W/16)``."""
        return state[-1]

    def forward_tail(self, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The decoder: ``(B, channels[0], H/4, W/4)``."""
        return decode(self, state)

    def make_tail(self) -> TinyDecoder:
        """A freshly initialised copy of the decoder."""
        return TinyDecoder(self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tail(self.forward_trunk(x))
