"""Super-resolution networks usable as a pose model's front end, by name.

Every network maps RGB in [0, 1] ``(B, 3, h, w)`` (low-res px) to RGB ``(B, 3, h*s, w*s)`` (high-res px),
with pixel areas aligned (``x_hr = (x_lr + 0.5) * s - 0.5``, :func:`lrpose_bench.geometry.upsample_map`),
as bicubic interpolation with ``align_corners=False`` and the pixel-shuffle/nearest upsamplers do.

Names (:data:`SR_MODELS`):
    bicubic   no network; ``F.interpolate(mode="bicubic", align_corners=False)``. The baseline.
    srresnet  basicsr ``MSRResNet`` (SRResNet without BN; x2/x3/x4). Alias ``msrresnet``.
    esrgan    basicsr ``RRDBNet`` (the ESRGAN generator; x1/x2/x4). Alias ``rrdbnet``.
    edsr      basicsr ``EDSR`` (x2/x3/x4).
    spsr      :class:`SPSRNet`: structure-preserving SR (Ma et al., CVPR 2020) built from basicsr's RRDB
              blocks: an RRDB SR branch plus a gradient branch fed by the LR gradient map and by the SR
              branch's intermediate features, fused before the last convolutions. It follows SPSR's
              generator layout but not its parameter names, so the released SPSR .pth does not load.

basicsr is imported (slowly) only when a learned network is built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lrpose_bench.sr.basicsr_compat import basicsr_module

StateDict = Mapping[str, torch.Tensor]


class BicubicUpsample(nn.Module):
    """The no-network baseline: bicubic ``x scale`` with ``align_corners=False`` (area-aligned pixels)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def gradient_map(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-channel gradient magnitude ``sqrt(dx^2 + dy^2 + eps)`` by central differences, zero padding.

    ``dx[i, j] = x[i, j+1] - x[i, j-1]`` (SPSR's ``Get_gradient_nopadding``); same shape as ``x``.
    """
    p = F.pad(x, (1, 1, 1, 1))
    dx = p[..., 1:-1, 2:] - p[..., 1:-1, :-2]
    dy = p[..., 2:, 1:-1] - p[..., :-2, 1:-1]
    return torch.sqrt(dx * dx + dy * dy + eps)


class _Upsampler(nn.Sequential):
    """``log2(scale)`` stages of nearest x2 -> 3x3 conv -> LeakyReLU(0.2) (ESRGAN/SPSR upsampling)."""

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(num_feat, num_feat, 3, 1, 1),
                       nn.LeakyReLU(0.2, inplace=True)]
        super().__init__(*layers)


class SPSRNet(nn.Module):
    """SPSR generator (x2 / x4) from basicsr's RRDB blocks; RGB [0, 1] in, RGB out.

    SR branch: conv -> ``num_block`` RRDBs (+ conv, global residual) -> upsampler -> conv feature.
    Gradient branch: conv of the LR gradient map, then ``num_branch`` stages that each concatenate the
    SR branch's features after every ``ceil(num_block / (num_branch + 1))`` RRDBs, run an RRDB of
    ``2 * num_feat`` channels and reduce back; upsampled to a gradient feature whose 1x1 projection
    (:meth:`forward_with_gradient`) predicts the SR image's gradient map. Fusion: RRDB(2 * num_feat) over
    both branches' high-res features -> two convs -> the SR image.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32, num_branch: int = 4) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"spsr supports x2 and x4, got x{scale}")
        every = math.ceil(num_block / (num_branch + 1))
        self.taps = tuple(every * (i + 1) for i in range(num_branch))
        if num_branch < 1 or self.taps[-1] > num_block:
            raise ValueError(f"spsr: num_block={num_block} is too small for num_branch={num_branch} stages")
        RRDB = basicsr_module("archs.rrdbnet_arch").RRDB
        self.scale = scale
        lrelu = nn.LeakyReLU(0.2, inplace=True)
        # SR branch
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.ModuleList(RRDB(num_feat, num_grow_ch) for _ in range(num_block))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.up = _Upsampler(scale, num_feat)
        self.conv_hr = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), lrelu, nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        # gradient branch
        self.b_conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.b_blocks = nn.ModuleList(RRDB(2 * num_feat, num_grow_ch) for _ in range(num_branch))
        self.b_reduce = nn.ModuleList(nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1) for _ in range(num_branch))
        self.b_conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.b_up = _Upsampler(scale, num_feat)
        self.b_conv_hr = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), lrelu, nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.b_conv_out = nn.Conv2d(num_feat, num_out_ch, 1)
        # fusion
        self.f_block = RRDB(2 * num_feat, num_grow_ch)
        self.f_reduce = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.f_conv_hr = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), lrelu)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward_with_gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sr_image, predicted gradient map of the SR image)``, both ``(B, C_out, h*s, w*s)``."""
        feat = self.conv_first(x)
        body, tapped = feat, []
        for i, block in enumerate(self.body, start=1):
            body = block(body)
            if i in self.taps:
                tapped.append(body)
        sr_feat = self.conv_hr(self.up(feat + self.conv_body(body)))

        b_first = self.b_conv_first(gradient_map(x))
        b = b_first
        for block, reduce, side in zip(self.b_blocks, self.b_reduce, tapped, strict=True):
            b = reduce(block(torch.cat([b, side], dim=1)))
        b_feat = self.b_conv_hr(self.b_up(b_first + self.b_conv_body(b)))
        grad = self.b_conv_out(b_feat)

        fused = self.f_reduce(self.f_block(torch.cat([b_feat, sr_feat], dim=1)))
        return self.conv_last(self.f_conv_hr(fused)), grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gradient(x)[0]


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SRArch:
    """One SR front end: how to build it and how to read its size settings back from a state dict."""

    name: str
    description: str
    scales: tuple[int, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    build: Callable[[int, Mapping[str, Any]], nn.Module] | None = None  # None: no network (bicubic)
    infer: Callable[[StateDict], tuple[dict[str, Any], int]] | None = None

    @property
    def learned(self) -> bool:
        """Whether the front end has weights (everything but bicubic)."""
        return self.build is not None


def _count_blocks(sd: StateDict, prefix: str) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    ids = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    return max(ids) + 1 if ids else 0


def _need(sd: StateDict, key: str) -> torch.Tensor:
    if key not in sd:
        raise KeyError(f"state dict has no {key!r} (first keys: {', '.join(list(sd)[:4])})")
    return sd[key]


def _build_srresnet(scale: int, cfg: Mapping[str, Any]) -> nn.Module:
    return basicsr_module("archs.srresnet_arch").MSRResNet(upscale=scale, **cfg)


def _infer_srresnet(sd: StateDict) -> tuple[dict[str, Any], int]:
    first = _need(sd, "conv_first.weight")
    nf = first.shape[0]
    scale = 4 if "upconv2.weight" in sd else math.isqrt(_need(sd, "upconv1.weight").shape[0] // nf)
    cfg = {"num_in_ch": first.shape[1], "num_out_ch": _need(sd, "conv_last.weight").shape[0], "num_feat": nf,
           "num_block": _count_blocks(sd, "body")}
    return cfg, scale


def _build_esrgan(scale: int, cfg: Mapping[str, Any]) -> nn.Module:
    cfg = dict(cfg)
    return basicsr_module("archs.rrdbnet_arch").RRDBNet(cfg.pop("num_in_ch", 3), cfg.pop("num_out_ch", 3), scale=scale, **cfg)


def _infer_esrgan(sd: StateDict) -> tuple[dict[str, Any], int]:
    first = _need(sd, "conv_first.weight")
    out_ch = _need(sd, "conv_last.weight").shape[0]
    ratio = first.shape[1] // out_ch  # RRDBNet pixel-unshuffles x2 input by 2 (4x channels), x1 by 4 (16x)
    scale = {1: 4, 4: 2, 16: 1}.get(ratio)
    if scale is None:
        raise KeyError(f"conv_first takes {first.shape[1]} channels for {out_ch} out: not an RRDBNet layout")
    cfg = {"num_in_ch": out_ch, "num_out_ch": out_ch, "num_feat": first.shape[0],
           "num_block": _count_blocks(sd, "body"), "num_grow_ch": _need(sd, "body.0.rdb1.conv1.weight").shape[0]}
    return cfg, scale


def _build_edsr(scale: int, cfg: Mapping[str, Any]) -> nn.Module:
    cfg = dict(cfg)
    return basicsr_module("archs.edsr_arch").EDSR(cfg.pop("num_in_ch", 3), cfg.pop("num_out_ch", 3), upscale=scale, **cfg)


def _infer_edsr(sd: StateDict) -> tuple[dict[str, Any], int]:
    first = _need(sd, "conv_first.weight")
    nf = first.shape[0]
    ups = sorted(int(m.group(1)) for k in sd if (m := re.match(r"^upsample\.(\d+)\.weight$", k)))
    if not ups:
        raise KeyError("state dict has no 'upsample.N.weight': not an EDSR layout")
    scale = 3 if sd[f"upsample.{ups[0]}.weight"].shape[0] == 9 * nf else 2 ** len(ups)
    # basicsr's EDSR-L (256 features) trains with res_scale 0.1, EDSR-M (64) with 1: not stored in weights.
    cfg = {"num_in_ch": first.shape[1], "num_out_ch": _need(sd, "conv_last.weight").shape[0], "num_feat": nf,
           "num_block": _count_blocks(sd, "body"), "res_scale": 0.1 if nf >= 256 else 1.0}
    return cfg, scale


def _build_spsr(scale: int, cfg: Mapping[str, Any]) -> nn.Module:
    return SPSRNet(scale=scale, **cfg)


def _infer_spsr(sd: StateDict) -> tuple[dict[str, Any], int]:
    first = _need(sd, "conv_first.weight")
    cfg = {"num_in_ch": first.shape[1], "num_out_ch": _need(sd, "conv_last.weight").shape[0],
           "num_feat": first.shape[0], "num_block": _count_blocks(sd, "body"),
           "num_grow_ch": _need(sd, "body.0.rdb1.conv1.weight").shape[0], "num_branch": _count_blocks(sd, "b_blocks")}
    return cfg, 2 ** sum(1 for k in sd if re.match(r"^up\.\d+\.weight$", k))  # one conv per x2 stage


SR_MODELS: dict[str, SRArch] = {
    "bicubic": SRArch("bicubic", "bicubic interpolation, no network (baseline)", (2, 3, 4, 8)),
    "srresnet": SRArch("srresnet", "basicsr MSRResNet (SRResNet without batch norm)", (2, 3, 4),
                       {"num_feat": 64, "num_block": 16}, _build_srresnet, _infer_srresnet),
    "esrgan": SRArch("esrgan", "basicsr RRDBNet (ESRGAN generator)", (1, 2, 4),
                     {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}, _build_esrgan, _infer_esrgan),
    "edsr": SRArch("edsr", "basicsr EDSR", (2, 3, 4), {"num_feat": 64, "num_block": 16}, _build_edsr, _infer_edsr),
    "spsr": SRArch("spsr", "structure-preserving SR (RRDB + gradient branch) from basicsr RRDB blocks", (2, 4),
                   {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "num_branch": 4}, _build_spsr, _infer_spsr),
}
ALIASES: dict[str, str] = {"msrresnet": "srresnet", "rrdbnet": "esrgan"}


def sr_arch(name: str) -> SRArch:
    """The registered front end ``name`` (aliases accepted); a clear error listing valid names."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in SR_MODELS:
        raise ValueError(f"unknown SR model {name!r}; valid: {', '.join([*SR_MODELS, *ALIASES])}")
    return SR_MODELS[key]


def build_sr(name: str, scale: int, config: Mapping[str, Any] | None = None) -> nn.Module:
    """Build front end ``name`` at ``x scale``, its size settings from ``config`` over the defaults.

    Learned networks start from their basicsr initialisation; load weights with
    :func:`lrpose_bench.sr.weights.load_sr_weights`.
    """
    arch = sr_arch(name)
    if scale not in arch.scales:
        raise ValueError(f"SR model {arch.name!r} supports scales {arch.scales}, got --sr-scale {scale}")
    if arch.build is None:
        if config:
            raise ValueError(f"SR model {arch.name!r} takes no settings, got {dict(config)}")
        return BicubicUpsample(scale)
    return arch.build(scale, {**arch.defaults, **(config or {})})


__all__ = ["SR_MODELS", "ALIASES", "SRArch", "sr_arch", "build_sr", "BicubicUpsample", "SPSRNet", "gradient_map"]
