"""Backbone registry: names, descriptions, input-size rules, and :func:`build_backbone`.

Every backbone maps ImageNet-normalised ``(B, 3, H, W)`` crops to stride-4 features
``(B, out_channels, H/4, W/4)`` and carries ``out_channels``, ``name`` and ``input_size`` attributes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from lrpose_bench.models.hrnet import HRNet
from lrpose_bench.models.resnet import SimpleBaseline
from lrpose_bench.models.tiny import TinyPoseNet
from lrpose_bench.models.weights import load_pretrained

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: ``check(name, size, trunk_only)`` raises ``ValueError`` when it cannot take an input
    ``(width, height)`` (without building anything; ``trunk_only``: only its trunk will run, for a head
    that pools the deepest map); ``build`` makes the module for a checked size."""

    description: str
    check: Callable[[str, tuple[int, int], bool], None]
    build: Callable[[str, tuple[int, int]], nn.Module]
    cls: type[nn.Module]


def _res(size: tuple[int, int]) -> str:
    """``(w, h)`` -> the CLI's ``--res HxW`` spelling."""
    return f"{size[1]}x{size[0]}"


def _divides(size: tuple[int, int], multiple: int) -> bool:
    return size[0] % multiple == 0 and size[1] % multiple == 0


def _require(name: str, size: tuple[int, int], multiple: int, why: str) -> None:
    if not _divides(size, multiple):
        raise ValueError(f"--res {_res(size)}: backbone {name} needs both sides to be multiples of {multiple} ({why})")


def _tiny_check(name: str, size: tuple[int, int], trunk_only: bool = False) -> None:
    _require(name, size, TinyPoseNet.stride_multiple, "output stride 4")


def _resnet_check(name: str, size: tuple[int, int], trunk_only: bool = False) -> None:
    if trunk_only:  # no deconvolutions to land on stride 4: any size the stride-32 trunk leaves a pixel of
        if min(size) < 32:
            raise ValueError(f"--res {_res(size)}: backbone {name} needs both sides >= 32 (its trunk has stride 32)")
        return
    why = "the ResNet trunk reaches stride 32 and three deconvolutions return to stride 4"
    _require(name, size, SimpleBaseline.stride_multiple, why)


def _resnet(depth: int) -> Callable[[str, tuple[int, int]], nn.Module]:
    return lambda name, size: SimpleBaseline(depth)


def hrnet_branches(size: tuple[int, int]) -> int:
    """Stage-4 branches HRNet can use at ``size = (w, h)``: 4 if the sides divide by 32, 3 if by 16, else 0."""
    return 4 if _divides(size, 32) else 3 if _divides(size, 16) else 0


def _hrnet_check(name: str, size: tuple[int, int], trunk_only: bool = False) -> None:
    if hrnet_branches(size) == 0:
        _require(name, size, 16, "16 with 3 branches, 32 for the standard 4; the stride-2 branches must tile the input")


def _hrnet(width: int) -> Callable[[str, tuple[int, int]], nn.Module]:
    def build(name: str, size: tuple[int, int]) -> nn.Module:
        branches = hrnet_branches(size)
        if branches == 3:
            logger.warning(
                "%s at --res %s: the sides are not multiples of 32, so stage 4 uses 3 branches instead of 4 "
                "(as the released CAL code does at 64x48)", name, _res(size),
            )
        return HRNet(width, num_branches=branches)

    return build


_SIDES_32 = "sides multiple of 32"
_SPECS: dict[str, BackboneSpec] = {
    "tiny": BackboneSpec("small U-shaped CPU net (0.98 M params, 32 ch; sides multiple of 16)", _tiny_check,
                         lambda name, size: TinyPoseNet(), TinyPoseNet),
    "resnet50": BackboneSpec(f"SimpleBaseline: ResNet-50 + 3 deconvs (256 ch; {_SIDES_32})", _resnet_check, _resnet(50),
                             SimpleBaseline),
    "resnet101": BackboneSpec(f"SimpleBaseline: ResNet-101 + 3 deconvs (256 ch; {_SIDES_32})", _resnet_check,
                              _resnet(101), SimpleBaseline),
    "resnet152": BackboneSpec(f"SimpleBaseline: ResNet-152 + 3 deconvs (256 ch; {_SIDES_32})", _resnet_check,
                              _resnet(152), SimpleBaseline),
    "hrnet_w32": BackboneSpec("HRNet-W32 (32 ch; 4 branches at sides multiple of 32, else 3 at 16)", _hrnet_check,
                              _hrnet(32), HRNet),
    "hrnet_w48": BackboneSpec("HRNet-W48 (48 ch; 4 branches at sides multiple of 32, else 3 at 16)", _hrnet_check,
                              _hrnet(48), HRNet),
}

#: Backbone name -> one-line description.
BACKBONES: dict[str, str] = {name: spec.description for name, spec in _SPECS.items()}


def _spec(name: str) -> BackboneSpec:
    """The registry entry of backbone ``name``; ``KeyError`` listing the valid names otherwise."""
    if name not in _SPECS:
        raise KeyError(f"unknown backbone {name!r}; valid backbones: {', '.join(_SPECS)}")
    return _SPECS[name]


def backbone_class(name: str) -> type[nn.Module]:
    """The class of backbone ``name`` (to ask which hooks it has without building it)."""
    return _spec(name).cls


def check_input_size(name: str, input_size: tuple[int, int], trunk_only: bool = False) -> tuple[int, int]:
    """``(width, height)`` as ints if backbone ``name`` can take crops of that size; builds nothing.
    ``trunk_only``: the head reads the trunk's deepest map (the last stage is dropped), which frees
    ResNet of its multiple-of-32 rule.

    Raises ``KeyError`` for an unknown name (listing the valid ones) and ``ValueError`` naming ``--res``
    and the required multiple when the sides do not suit the network (the errors of :func:`build_backbone`).
    """
    spec = _spec(name)
    w, h = (int(v) for v in input_size)
    if w <= 0 or h <= 0:
        raise ValueError(f"--res {h}x{w}: both sides must be positive")
    spec.check(name, (w, h), trunk_only)
    return w, h


def build_backbone(
    name: str, input_size: tuple[int, int], pretrained: Path | str | None = None, trunk_only: bool = False
) -> nn.Module:
    """Build backbone ``name`` for crops of ``input_size = (width, height)`` px, optionally loading
    ``pretrained`` weights from a local file (see :func:`lrpose_bench.models.weights.load_pretrained`).

    Raises ``KeyError`` for an unknown name (listing the valid ones) and ``ValueError`` naming ``--res``
    and the required multiple when the sides do not suit the network (``trunk_only``: the sizes rules of
    a model that runs only the trunk; see :func:`check_input_size`). The returned module has
    ``out_channels``, ``name``, ``input_size`` and, if weights were loaded, ``pretrained_report``.
    """
    w, h = check_input_size(name, input_size, trunk_only)
    model = _SPECS[name].build(name, (w, h))
    model.name = name
    model.input_size = (w, h)
    if pretrained is not None:
        model.pretrained_report = load_pretrained(model, Path(pretrained), name)
    return model
