"""Loading ImageNet (or other) pretrained weights into a backbone from a local file; never downloads.

Accepted files (``torch.load(..., weights_only=True)``): a plain state dict in torchvision / timm ResNet
layout (``conv1.weight``, ``layer1.0.conv1.weight``, ``fc.*``) or in the official HRNet layout, optionally
wrapped as ``{"state_dict": ...}`` or ``{"model": ...}`` and with DDP's ``module.`` prefixes. Keys are
matched by name; classification-head keys (``fc`` / ``incre_modules``, ``downsamp_modules``,
``final_layer``, ``classifier``) are expected leftovers, and layers that never have ImageNet weights
(SimpleBaseline's ``deconv_layers``) are expected gaps.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Where the ImageNet weights for each backbone come from (file names as published).
DOWNLOAD_HINTS: dict[str, str] = {
    "resnet50": "resnet50-0676ba61.pth from torchvision (ResNet50_Weights.IMAGENET1K_V1; "
    "the HRNet/SimpleBaseline code names the same weights resnet50-19c8e357.pth)",
    "resnet101": "resnet101-63fe2227.pth from torchvision (ResNet101_Weights.IMAGENET1K_V1)",
    "resnet152": "resnet152-394f9c45.pth from torchvision (ResNet152_Weights.IMAGENET1K_V1)",
    "hrnet_w32": "hrnet_w32-36af842e.pth (HRNet ImageNet weights of the HRNet pose code's model zoo) "
    "or hrnetv2_w32_imagenet_pretrained.pth from HRNet-Image-Classification",
    "hrnet_w48": "hrnet_w48-8ef0771d.pth (HRNet ImageNet weights of the HRNet pose code's model zoo) "
    "or hrnetv2_w48_imagenet_pretrained.pth from HRNet-Image-Classification",
}

#: Key prefixes of each family's classification head: present in ImageNet files, unused here.
HEAD_PREFIXES: dict[str, tuple[str, ...]] = {
    "resnet": ("fc.",),
    "hrnet": ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier."),
    "tiny": (),
}
#: Key prefixes of layers that no ImageNet file holds (trained from scratch).
FRESH_PREFIXES: dict[str, tuple[str, ...]] = {"resnet": ("deconv_layers.",), "hrnet": (), "tiny": ()}

WRAPPERS = ("state_dict", "model")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did. Key lists are sorted; counts are over tensors."""

    path: str
    kind: str
    matched: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)

    @property
    def other_missing(self) -> list[str]:
        """Missing keys outside the never-pretrained layers (worth a warning)."""
        fresh = set(self.fresh)
        return [k for k in self.missing if k not in fresh]

    @property
    def other_unexpected(self) -> list[str]:
        """Unexpected keys outside the classification head (e.g. HRNet's dropped 4th branch)."""
        head = set(self.head)
        return [k for k in self.unexpected if k not in head]

    def summary(self) -> str:
        """One line: ``loaded N tensors from PATH; M missing (...); U unexpected (...)``."""
        return (
            f"{self.kind}: loaded {self.matched} tensors from {self.path}; "
            f"{len(self.missing)} missing ({len(self.fresh)} in never-pretrained layers); "
            f"{len(self.unexpected)} unexpected ({len(self.head)} classification head)"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able counts (for run records)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "matched": self.matched,
            "missing": len(self.missing),
            "unexpected": len(self.unexpected),
            "fresh": len(self.fresh),
            "head": len(self.head),
        }


def family(kind: str) -> str:
    """``"resnet50"`` -> ``"resnet"``, ``"hrnet_w32"`` -> ``"hrnet"``, ``"tiny"`` -> ``"tiny"``."""
    m = re.match(r"[a-z]+", kind)
    return m.group(0) if m else kind


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file: unwrapped from ``state_dict``/``model``, ``module.`` stripped."""
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a readable torch checkpoint ({first})") from exc
    for _ in range(2):  # at most {"model": {"state_dict": ...}}
        if isinstance(obj, Mapping):
            inner = next((obj[w] for w in WRAPPERS if isinstance(obj.get(w), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            name = str(key)
            while name.startswith("module."):
                name = name[len("module."):]
            tensors[name] = value
    if not tensors:
        raise ValueError(f"{path}: holds no tensors (expected a state dict, or one under 'state_dict' or 'model')")
    return tensors


def load_pretrained(module: nn.Module, path: Path | str, kind: str) -> LoadReport:
    """Copy matching tensors of the checkpoint at ``path`` into ``module`` (``strict=False``).

    ``kind`` is the backbone name (``"resnet50"``, ``"hrnet_w32"``, ...) or its family (``"resnet"``,
    ``"hrnet"``, ``"tiny"``). Raises ``FileNotFoundError`` (saying where to put which file) when the file
    is absent, ``ValueError`` naming the key on a shape mismatch and when no key matches at all.
    BatchNorm ``num_batches_tracked`` counters are neither required nor reported.
    """
    path = Path(path)
    fam = family(kind)
    if not path.is_file():
        hint = DOWNLOAD_HINTS.get(kind)
        where = (
            f"put the ImageNet weights there (download {hint} on a machine with internet)"
            if hint
            else f"{kind!r} has no published ImageNet weights: give a state dict saved from this project's "
            f"{kind} backbone"
        )
        raise FileNotFoundError(f"pretrained weights for {kind} not found at {path}: {where}")
    source = read_state_dict(path)
    target = module.state_dict()
    for key, value in source.items():
        if key in target and tuple(value.shape) != tuple(target[key].shape):
            raise ValueError(
                f"{path}: key {key!r} has shape {tuple(value.shape)} in the file but {tuple(target[key].shape)} in the "
                f"{kind} backbone (a checkpoint of another depth or width?)"
            )
    matched = {k: v for k, v in source.items() if k in target}
    learned = [k for k in target if not k.endswith("num_batches_tracked")]
    if not matched:
        raise ValueError(
            f"{path}: none of its {len(source)} tensors match the {kind} backbone "
            f"(file key e.g. {next(iter(source))!r}, backbone key e.g. {learned[0]!r}); "
            "is it a checkpoint of another network?"
        )
    module.load_state_dict(matched, strict=False)
    missing = sorted(k for k in learned if k not in matched)
    unexpected = sorted(k for k in source if k not in target)
    report = LoadReport(
        path=str(path),
        kind=kind,
        matched=len(matched),
        missing=missing,
        unexpected=unexpected,
        fresh=[k for k in missing if k.startswith(FRESH_PREFIXES.get(fam, ()))],
        head=[k for k in unexpected if k.startswith(HEAD_PREFIXES.get(fam, ()))],
    )
    logger.info(report.summary())
    if report.other_missing:
        logger.warning(
            "%s: %d backbone tensors were not in %s and keep their random init (e.g. %s)",
            kind, len(report.other_missing), path, report.other_missing[0],
        )
    return report
