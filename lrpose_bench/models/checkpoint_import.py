"""Bring your own checkpoint: official HRNet pose checkpoints and MMPose 1.x top-down checkpoints loaded
into this suite's :class:`~lrpose_bench.models.PoseModel`, by a fixed, documented renaming of keys.

Key layouts read
----------------
``hrnet``  deep-high-resolution-net.pytorch (``pose_hrnet`` and its ``pose_resnet``): the backbone's
           parameters at the top level (``conv1.*``, ``bn1.*``, ``layer1.*``, ``transition1.*``,
           ``stage2.*`` ... ``stage4.*``; ResNet: ``layer1..4.*``, ``deconv_layers.*``) and the head
           ``final_layer.*`` (a 1x1 convolution). A training checkpoint ``{"state_dict": ...}`` and
           DataParallel's ``module.`` prefixes are accepted.
``mmpose`` MMPose 1.x ``TopdownPoseEstimator`` files ``{"meta": ..., "state_dict": ...}``: ``backbone.*``
           (the same names as above: MMPose's HRNet and ResNet name their norms ``bn1``, ``bn2``, ...),
           ``head.final_layer.*`` and, for SimpleBaseline, ``head.deconv_layers.*``.
           ``data_preprocessor.*`` entries (mean/std buffers) are ignored.

Renaming into ours (``backbone.*``, ``head.convs.<output>.*``)
-------------------------------------------------------------
===========================  ==================================================
``hrnet``: ``final_layer.X``   ``head.convs.heatmaps.X`` (see the UDP split below)
``hrnet``: any other ``X``     ``backbone.X``
``mmpose``: ``backbone.X``     ``backbone.X``
``mmpose``: ``head.final_layer.X``    as ``final_layer.X`` above
``mmpose``: ``head.deconv_layers.X``  ``backbone.deconv_layers.X`` (our SimpleBaseline keeps them)
===========================  ==================================================

A final layer with ``3K`` output channels is UDP's combined target (the UDP release and MMPose's
``CombinedTarget``): channels per joint ``[class map, x offset, y offset]`` (``3k``, ``3k+1``, ``3k+2``); it
is split into ``head.convs.heatmaps`` (``K``) and ``head.convs.offsets`` (``2K``, joint-major ``2k + c``,
our ``(K, 2)`` layout). Files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: ``--format`` choices.
FORMATS: tuple[str, ...] = ("hrnet", "mmpose")
#: How many unmatched keys an error lists.
SHOW_KEYS = 8
#: Keys of an MMPose file that hold no network weights.
_IGNORED_PREFIXES: tuple[str, ...] = ("data_preprocessor.",)
#: Entries of a BN layer that may be absent from checkpoints saved before PyTorch 0.4.1.
_OPTIONAL_SUFFIXES: tuple[str, ...] = (".num_batches_tracked",)


class CheckpointImportError(ValueError):
    """A checkpoint that cannot be read or mapped; the message names the file and the first bad keys."""


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``torch.load(weights_only=True)``, on the CPU).

    Accepts a plain state dict, ``{"state_dict": ...}`` (MMPose, HRNet training checkpoints) or
    ``{"model": ...}``; strips DataParallel's ``module.`` prefixes. Raises ``FileNotFoundError`` for a
    missing file and :class:`CheckpointImportError` for a file that is not a state dict.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"--weights: file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - retried with numpy arrays allowed, then reported
        obj = _load_with_numpy(p, first)
    state: Any = obj
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                state = obj[wrapper]
                break
        else:
            keys = ", ".join(sorted(str(k) for k in obj)[:SHOW_KEYS])
            raise CheckpointImportError(
                f"--weights {p}: not a state dict: a dict with keys [{keys}] that are not all tensors and no "
                "'state_dict' or 'model' entry"
            )
    if not isinstance(state, Mapping):
        raise CheckpointImportError(f"--weights {p}: not a state dict: the file holds a {type(obj).__name__}")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointImportError(f"--weights {p}: not a state dict: it holds no tensors")
    if len(tensors) != len(state):
        odd = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))[:SHOW_KEYS]
        raise CheckpointImportError(f"--weights {p}: not a state dict: entries {odd} are not tensors")
    return {re.sub(r"^(module\.)+", "", k): v for k, v in tensors.items()}


def _all_tensors(obj: Mapping[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load_with_numpy(path: Path, first: BaseException) -> Any:
    """Retry ``weights_only`` loading with numpy's array reconstruction allowed (MMPose files keep the
    dataset's metadata as numpy arrays beside the weights); any other failure is reported."""
    from lrpose_bench.engine.checkpoint import describe_load_error

    if isinstance(first, OSError):
        raise first
    try:
        import numpy as np

        allowed: list[Any] = [np.ndarray, np.dtype, np.core.multiarray._reconstruct]  # type: ignore[attr-defined]
        allowed += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        raise CheckpointImportError(f"--weights {path} could not be read: {describe_load_error(first)}") from None


# ------------------------------------------------------------------------------------------------
# Renaming
# ------------------------------------------------------------------------------------------------
def official_layout(state: Mapping[str, torch.Tensor], fmt: str) -> dict[str, torch.Tensor]:
    """``state`` in the ``hrnet`` layout (backbone at the top level, ``final_layer.*``), from either format."""
    if fmt not in FORMATS:
        raise CheckpointImportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "hrnet":
        return dict(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_IGNORED_PREFIXES):
            continue
        if key.startswith("backbone."):
            out[key.removeprefix("backbone.")] = value
        elif key.startswith("head."):
            out[key.removeprefix("head.")] = value  # final_layer.*, deconv_layers.*
        else:
            out["?" + key] = value  # maps nowhere; reported as unmatched
    return out


def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """``"mmpose"`` when the keys carry MMPose's ``backbone.`` / ``head.`` prefixes, else ``"hrnet"``."""
    return "mmpose" if any(k.startswith(("backbone.", "head.")) for k in state) else "hrnet"


def head_outputs(model_state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Output name -> output channels of the model's final 1x1 convolutions (``head.convs.<name>``)."""
    return {
        key.split(".")[2]: int(value.shape[0])
        for key, value in model_state.items()
        if key.startswith("head.convs.") and key.endswith(".weight")
    }


def to_ours(state: Mapping[str, torch.Tensor], fmt: str, outputs: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's ``state`` (layout ``fmt``) into our keys for a head with ``outputs`` (name ->
    channels, :func:`head_outputs`). Keys that map nowhere keep a ``?`` prefix (reported by :func:`load_into`)."""
    official = official_layout(state, fmt)
    out: dict[str, torch.Tensor] = {}
    final = {k.removeprefix("final_layer."): v for k, v in official.items() if k.startswith("final_layer.")}
    for key, value in official.items():
        if key.startswith("final_layer.") or key.startswith("?"):
            if key.startswith("?"):
                out[key] = value
            continue
        out[f"backbone.{key}"] = value
    if final:
        out.update(_split_final_layer(final, outputs))
    return out


def _split_final_layer(final: Mapping[str, torch.Tensor], outputs: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """``final_layer.{weight,bias}`` -> ``head.convs.<output>.*`` for our head's ``outputs``."""
    channels = int(final["weight"].shape[0]) if "weight" in final else -1
    if set(outputs) == {"heatmaps"}:
        return {f"head.convs.heatmaps.{k}": v for k, v in final.items()}
    k = outputs.get("heatmaps", 0)
    if set(outputs) == {"heatmaps", "offsets"} and outputs["offsets"] == 2 * k and channels == 3 * k:
        out: dict[str, torch.Tensor] = {}
        for name, value in final.items():
            per_joint = value.reshape(k, 3, *value.shape[1:])  # [class map, x offset, y offset] per joint
            out[f"head.convs.heatmaps.{name}"] = per_joint[:, 0].contiguous()
            out[f"head.convs.offsets.{name}"] = per_joint[:, 1:].reshape(2 * k, *value.shape[1:]).contiguous()
        return out
    wanted = ", ".join(f"{n} ({c})" for n, c in outputs.items())
    hint = ""
    if k and channels == k and "offsets" in outputs:
        hint = (
            f"; a {k}-channel final layer holds Gaussian heatmaps only (e.g. MMPose's UDP heatmap models, which "
            "decode with DARK-UDP): evaluate it with --method dark --set unbiased=true"
        )
    raise CheckpointImportError(
        f"final_layer has {channels} output channels; the method's head needs {wanted} "
        f"(a {k}-channel heatmap layer, or {3 * k} channels of UDP's combined target){hint}"
    )


def to_official(model_state: Mapping[str, torch.Tensor], fmt: str = "hrnet") -> dict[str, torch.Tensor]:
    """The inverse renaming: our ``model_state`` as a checkpoint in layout ``fmt`` (``backbone.X`` -> ``X``,
    ``head.convs.heatmaps.*`` -> ``final_layer.*``; heatmaps + offsets are interleaved into UDP's ``3K``
    channels). Used to write test checkpoints and to export our models to the official layout."""
    out: dict[str, torch.Tensor] = {}
    heads: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in model_state.items():
        if key.startswith("backbone."):
            name = key.removeprefix("backbone.")
            if fmt == "mmpose":
                out["head." + name if name.startswith("deconv_layers.") else "backbone." + name] = value
            else:
                out[name] = value
        elif key.startswith("head.convs."):
            _, _, output, param = key.split(".", 3)
            heads.setdefault(param, {})[output] = value
        else:
            raise CheckpointImportError(f"{key}: no counterpart in the {fmt} layout (only backbone.* and head.convs.*)")
    prefix = "head.final_layer." if fmt == "mmpose" else "final_layer."
    for param, per_output in heads.items():
        if set(per_output) == {"heatmaps"}:
            out[prefix + param] = per_output["heatmaps"]
        elif set(per_output) == {"heatmaps", "offsets"}:
            hm, off = per_output["heatmaps"], per_output["offsets"]
            k = hm.shape[0]
            out[prefix + param] = torch.cat([hm.reshape(k, 1, *hm.shape[1:]), off.reshape(k, 2, *off.shape[1:])], 1).reshape(
                3 * k, *hm.shape[1:]
            )
        else:
            raise CheckpointImportError(f"head outputs {sorted(per_output)} have no {fmt} final layer")
    return out


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------
def hrnet_branches_of(state: Mapping[str, torch.Tensor]) -> int:
    """Stage-4 branches of an HRNet state dict in the official layout (0 when it is no HRNet)."""
    if not any(k.startswith("stage4.") for k in state):
        return 0
    return 1 + max((int(k.split(".")[1]) for k in state if re.match(r"^transition3\.\d+\.", k)), default=2)


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], fmt: str, source: str = "--weights") -> dict[str, Any]:
    """Load checkpoint ``state`` (layout ``fmt``) into ``model`` strictly: every model tensor must be set
    and every checkpoint tensor used, with equal shapes. Returns ``{"tensors", "parameters"}`` loaded.

    Raises :class:`CheckpointImportError` listing the first unmatched keys on each side (in our names and
    the file's) and the first shape mismatches.
    """
    own = model.state_dict()
    mapped = to_ours(state, fmt, head_outputs(own))
    missing = [k for k in own if k not in mapped and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in mapped if k not in own]
    shapes = [f"{k} {tuple(mapped[k].shape)} vs ours {tuple(own[k].shape)}"
              for k in own if k in mapped and mapped[k].shape != own[k].shape]  # fmt: skip
    if missing or unexpected or shapes:
        parts = []
        if unexpected:
            shown = ", ".join(_file_name(k, fmt) for k in unexpected[:SHOW_KEYS])
            parts.append(f"{len(unexpected)} checkpoint keys map to nothing in the model (first: {shown})")
        if missing:
            parts.append(f"{len(missing)} model keys get no value (first: {', '.join(missing[:SHOW_KEYS])})")
        if shapes:
            parts.append(f"{len(shapes)} shapes differ (first: {'; '.join(shapes[:3])})")
        raise CheckpointImportError(f"{source} ({fmt} layout) does not fit the model: " + "; ".join(parts))
    filled = {k: mapped.get(k, own[k]) for k in own}
    model.load_state_dict(filled, strict=True)
    return {"tensors": len(mapped), "parameters": int(sum(p.numel() for p in model.parameters()))}


def _file_name(key: str, fmt: str) -> str:
    """A mapped key as the file spells it (for error messages)."""
    if key.startswith("?"):
        return key[1:]
    if key.startswith("backbone."):
        return key if fmt == "mmpose" else key.removeprefix("backbone.")
    return key


__all__ = [
    "FORMATS",
    "CheckpointImportError",
    "detect_format",
    "head_outputs",
    "official_layout",
    "hrnet_branches_of",
    "load_into",
    "read_state_dict",
    "to_official",
    "to_ours",
]
