"""HRNet backbone (W32 / W48) for top-down pose, after ``pose_hrnet`` of the official HRNet code.

Architecture (Sun et al., CVPR 2019; "pose_hrnet" configs ``w32_*`` / ``w48_*``):
stem of two 3x3 stride-2 convs (input -> /4), stage 1 = four Bottlenecks (64 -> 256 ch), then stages
2, 3, 4 with 2, 3, 4 parallel branches of BasicBlocks (4 blocks per branch) at strides 4, 8, 16, 32 with
widths ``W, 2W, 4W, 8W``; 1, 4 and 3 exchange modules per stage; each module ends with fuse layers that
sum every branch into every other (1x1 conv + nearest upsampling from lower resolution, chains of 3x3
stride-2 convs from higher resolution). The last module keeps only the stride-4 branch, which is the
output: ``(B, W, H/4, W/4)``.

Module and parameter names follow the official code (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``,
``transition1``, ``stage2``, ..., ``branches``, ``fuse_layers``), so the ImageNet classification
checkpoints (``hrnet_w32-36af842e.pth``, ``hrnetv2_w32_imagenet_pretrained.pth``) load by name; only
their classification head (``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``) and
the parts this pose network drops (the last module's fuse layers into branches 1-3; branch 4 when
``num_branches=3``) stay unused. Transitions without parameters are ``nn.Identity`` where the official
code stores ``None``: parameter names are unchanged.

``num_branches`` (branches of stage 4): 4 as published; 3 as the released CAL code at 64x48, where the
stride-32 branch does not tile the input (48 / 32 is not an integer) and the fuse layers' shapes clash.
Stage 4 then keeps 3 branches (``W, 2W, 4W``) and its 3 modules.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample if downsample is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 expansion) conv-BN bottleneck with shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample if downsample is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _make_blocks(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    """``blocks`` residual blocks at stride 1; the first projects ``inplanes`` if the width changes."""
    out = planes * block.expansion
    downsample = None
    if inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, bias=False), nn.BatchNorm2d(out))
    layers: list[nn.Module] = [block(inplanes, planes, 1, downsample)]
    layers += [block(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all fusion (sum, then ReLU).

    ``multi_scale_output=False`` keeps only the fused stride-4 output (the official last pose module).
    ``in_channels`` (default: ``channels``) are the widths arriving at the branches; where one differs,
    the branch's first block projects it (the released CAL W48 offset stage: 48 -> 144 on branch 1).
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True,
                 in_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        n = len(channels)
        self.num_branches = n
        arriving = list(in_channels) if in_channels is not None else list(channels)
        self.branches = nn.ModuleList(_make_blocks(BasicBlock, c_in, c, num_blocks) for c_in, c in zip(arriving, channels))
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse(channels, src=j, dst=i) for j in range(n))
            for i in range(n if multi_scale_output else 1)
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(channels: Sequence[int], src: int, dst: int) -> nn.Module:
        """The map from branch ``src`` to branch ``dst`` (identity on the diagonal)."""
        if src == dst:
            return nn.Identity()
        if src > dst:  # lower resolution -> 1x1 conv, BN, nearest upsampling by 2^(src-dst)
            return nn.Sequential(
                nn.Conv2d(channels[src], channels[dst], 1, 1, 0, bias=False),
                nn.BatchNorm2d(channels[dst]),
                nn.Upsample(scale_factor=float(2 ** (src - dst)), mode="nearest"),
            )
        steps: list[nn.Module] = []  # higher resolution -> (dst-src) stride-2 3x3 convs, ReLU between
        for k in range(dst - src):
            last = k == dst - src - 1
            out = channels[dst] if last else channels[src]
            layer: list[nn.Module] = [nn.Conv2d(channels[src], out, 3, 2, 1, bias=False), nn.BatchNorm2d(out)]
            if not last:
                layer.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layer))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + row[j](xs[j])
            fused.append(self.relu(y))
        return fused


class Transition(nn.ModuleList):
    """Branch list ``channels_in`` -> ``channels_out``: 3x3 conv where a width changes, identity where
    not, and a new stride-2 chain from the lowest-resolution branch for each added branch."""

    def __init__(self, channels_in: Sequence[int], channels_out: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels_out):
            if i < len(channels_in):
                if channels_in[i] == c_out:
                    layers.append(nn.Identity())
                else:
                    layers.append(nn.Sequential(nn.Conv2d(channels_in[i], c_out, 3, 1, 1, bias=False),
                                                nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)))
                continue
            chain: list[nn.Module] = []
            for j in range(i + 1 - len(channels_in)):
                c_in = channels_in[-1]
                c = c_out if j == i - len(channels_in) else c_in
                chain.append(
                    nn.Sequential(nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                )
            layers.append(nn.Sequential(*chain))
        super().__init__(layers)
        self.num_in = len(channels_in)

    def apply_to(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Existing branches map one to one; new branches grow from the last (lowest-resolution) input."""
        return [layer(xs[i] if i < self.num_in else xs[-1]) for i, layer in enumerate(self)]


def hrnet_init(module: nn.Module) -> None:
    """Official pose_hrnet init: (transposed) conv weights N(0, 0.001), BN weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _stage4(channels: Sequence[int], blocks: int, n_modules: int, in_channels: Sequence[int] | None = None) -> nn.Sequential:
    """Stage 4: ``n_modules`` HR modules; the last keeps only the fused stride-4 branch."""
    return nn.Sequential(*(
        HighResolutionModule(channels, blocks, multi_scale_output=m < n_modules - 1,
                             in_channels=in_channels if m == 0 else None)
        for m in range(n_modules)
    ))


def _run_tail(transition: Transition, stage: nn.Sequential, xs: list[torch.Tensor]) -> torch.Tensor:
    xs = transition.apply_to(xs)
    for module in stage:
        xs = module(xs)
    return xs[0]


class HRNetTail(nn.Module):
    """A private copy of HRNet's last stage (``transition3`` + ``stage4``): stage 3's branches -> stride-4
    features. The CAL release builds one for the offsets (``transition3_om`` + ``stage4_om``); with
    ``first_width`` (144 for its W48) stage 4's stride-4 branch is wider than the shared one, its first
    block projecting the arriving width."""

    def __init__(self, stage3_channels: Sequence[int], channels: Sequence[int], blocks: int, n_modules: int,
                 first_width: int | None = None) -> None:
        super().__init__()
        widths = list(channels)
        if first_width:
            widths[0] = int(first_width)
        self.transition3 = Transition(stage3_channels, channels)
        self.stage4 = _stage4(widths, blocks, n_modules, in_channels=channels)
        self.out_channels = widths[0]
        hrnet_init(self)

    def forward(self, state: list[torch.Tensor]) -> torch.Tensor:
        return _run_tail(self.transition3, self.stage4, state)


class HRNet(nn.Module):
    """HRNet-W``width`` pose backbone: ``(B,3,H,W)`` -> ``(B,width,H/4,W/4)`` (stride-4 branch).

    Input sides must be multiples of ``2 ** (num_branches + 1)`` (32 for 4 branches, 16 for 3); the
    registry checks this before building. Split for decoupled heads: :meth:`forward_trunk` (stem to
    stage 3, the branch list) and :meth:`forward_tail` (``transition3`` + ``stage4``); :meth:`make_tail`
    builds a private copy of the tail.
    """

    #: Top-level modules of the last stage (the part :meth:`make_tail` copies).
    tail_modules: tuple[str, ...] = ("transition3", "stage4")
    #: First-branch width of the released CAL offset stage (config ``STAGE4OM``): 144 for W48, same as
    #: the shared stage otherwise (W32's ``STAGE4OM`` equals its ``STAGE4``).
    RELEASED_TAIL_WIDTH: dict[int, int] = {48: 144}

    def __init__(
        self, width: int = 32, num_branches: int = 4, blocks: int = 4, modules_per_stage: Sequence[int] = (1, 4, 3)
    ) -> None:
        super().__init__()
        if num_branches not in (2, 3, 4):
            raise ValueError(f"HRNet num_branches must be 2, 3 or 4, got {num_branches}")
        self.width = width
        self.num_branches = num_branches
        self.out_channels = width
        self.blocks = blocks
        self.modules_per_stage = tuple(modules_per_stage)
        widths = [width * 2**i for i in range(4)]
        stage_branches = [min(b, num_branches) for b in (2, 3, 4)]
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_blocks(Bottleneck, 64, 64, 4)
        prev = [64 * Bottleneck.expansion]
        for s, (n_branch, n_mod) in enumerate(zip(stage_branches, modules_per_stage), start=2):
            chans = widths[:n_branch]
            setattr(self, f"transition{s - 1}", Transition(prev, chans))
            if s == 4:
                self.stage3_channels = list(prev)
                self.stage4_channels = list(chans)
                self.stage4 = _stage4(chans, blocks, n_mod)
            else:
                setattr(self, f"stage{s}", nn.Sequential(*(HighResolutionModule(chans, blocks) for _ in range(n_mod))))
            prev = chans
        hrnet_init(self)

    def forward_trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem, stage 1 and stages 2-3: the branch outputs of stage 3 (strides 4, 8, 16)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for transition, stage in ((self.transition1, self.stage2), (self.transition2, self.stage3)):
            xs = transition.apply_to(xs)
            for module in stage:
                xs = module(xs)
        return xs

    def forward_tail(self, state: list[torch.Tensor]) -> torch.Tensor:
        """``transition3`` + ``stage4`` on stage 3's branches: the stride-4 features ``(B, W, H/4, W/4)``."""
        return _run_tail(self.transition3, self.stage4, state)

    def make_tail(self) -> HRNetTail:
        """A freshly initialised copy of the last stage, as the CAL release's offset path (W48: 144 wide)."""
        return HRNetTail(self.stage3_channels, self.stage4_channels, self.blocks, self.modules_per_stage[-1],
                         self.RELEASED_TAIL_WIDTH.get(self.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tail(self.forward_trunk(x))
