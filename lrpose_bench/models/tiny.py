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


class TinyPoseNet(nn.Module):
    """``(B,3,H,W)`` -> ``(B, channels[0], H/4, W/4)``; see the module docstring for the layout."""

    stride_multiple = 4

    def __init__(self, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.out_channels = c0
        self.stem = nn.Sequential(conv_bn_relu(3, c0 // 2, 2), conv_bn_relu(c0 // 2, c0, 2))
        self.enc4 = BasicBlock(c0, c0)
        self.enc8 = nn.Sequential(conv_bn_relu(c0, c1, 2), BasicBlock(c1, c1), BasicBlock(c1, c1))
        self.enc16 = nn.Sequential(conv_bn_relu(c1, c2, 2), BasicBlock(c2, c2), BasicBlock(c2, c2))
        self.up16 = up_proj(c2, c1)
        self.dec8 = BasicBlock(c1, c1)
        self.up8 = up_proj(c1, c0)
        self.dec4 = nn.Sequential(BasicBlock(c0, c0), BasicBlock(c0, c0))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.enc4(self.stem(x))
        f8 = self.enc8(f4)
        f16 = self.enc16(f8)
        d8 = self.dec8(f8 + upsample_to(self.up16(f16), f8))
        return self.dec4(f4 + upsample_to(self.up8(d8), f4))
