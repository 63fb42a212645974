"""SR weights on disk: read the official basicsr / ESRGAN ``.pth`` layouts, write basicsr's layout.

Layouts read (``torch.load(..., weights_only=True)``):
    * basicsr: ``{"params": state_dict}`` and/or ``{"params_ema": state_dict}`` (``params_ema`` preferred,
      as basicsr's test configs do; choose with ``param_key``);
    * a bare state dict; keys prefixed ``module.`` (DataParallel) are unwrapped;
    * the original ESRGAN repository's RRDBNet names (``RRDB_trunk.N.RDB1.conv1``, ``trunk_conv``,
      ``upconv1/2``, ``HRconv``), renamed to basicsr's RRDBNet names.
Written by ``lrpose sr train``: ``{"params": state_dict, "lrpose_sr": {"model", "scale", "config"}}``, so
the network's size settings travel with the file. For files without that entry they are read back from
the tensor shapes (:attr:`lrpose_bench.sr.archs.SRArch.infer`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrpose_bench.io import atomic_path, file_sha256
from lrpose_bench.sr.archs import build_sr, sr_arch

#: Entry of a weights file written by lrpose-bench describing the network.
META_KEY = "lrpose_sr"
#: Keys of the state dict inside a basicsr checkpoint, in order of preference.
PARAM_KEYS: tuple[str, ...] = ("params_ema", "params")

_ESRGAN_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^RRDB_trunk\.", "body."), (r"\.RDB(\d)\.", r".rdb\1."), (r"^trunk_conv\.", "conv_body."),
    (r"^upconv1\.", "conv_up1."), (r"^upconv2\.", "conv_up2."), (r"^HRconv\.", "conv_hr."),
)


def weights_dir() -> Path:
    """Where SR weights are looked up when ``--sr-weights`` is not given: ``<cache>/weights/sr``, the cache
    being :func:`lrpose_bench.data.default_cache_dir` (``$LRPOSE_CACHE``, else ``~/.cache/lrpose-bench``)."""
    from lrpose_bench.data.spec import default_cache_dir

    return default_cache_dir() / "weights" / "sr"


def default_weights_path(name: str, scale: int) -> Path:
    """The default file of front end ``name`` at ``x scale``: ``weights_dir()/<name>_x<scale>.pth``."""
    return weights_dir() / f"{sr_arch(name).name}_x{scale}.pth"


def missing_weights_message(name: str, scale: int) -> str:
    """The one-line error for a learned front end without weights: how to get them and where to put them."""
    arch = sr_arch(name).name
    return (
        f"SR model {arch!r} needs weights: train them with `lrpose sr train --sr {arch} --sr-scale {scale} "
        f"--out W.pth` and pass --sr-weights W.pth, or put the official basicsr .pth (x{scale}) at "
        f"{default_weights_path(arch, scale)} (or anywhere, and pass --sr-weights PATH)"
    )


def resolve_weights(name: str, scale: int, weights: str | os.PathLike | None) -> Path:
    """The weights file to load: ``weights`` if given (it must exist), else the default path if present.

    Raises ``FileNotFoundError`` with :func:`missing_weights_message` when there is none.
    """
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--sr-weights {path}: file not found. {missing_weights_message(name, scale)}")
        return path
    path = default_weights_path(name, scale)
    if path.is_file():
        return path
    raise FileNotFoundError(missing_weights_message(name, scale))


def convert_esrgan_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the original ESRGAN repository's RRDBNet keys to basicsr's (other layouts pass through)."""
    if not any(k.startswith("RRDB_trunk.") for k in state):
        return dict(state)
    out = {}
    for key, value in state.items():
        for pattern, repl in _ESRGAN_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def read_sr_weights(path: str | os.PathLike, param_key: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """``(state_dict, lrpose metadata or {}, key used)`` from a weights file in any layout listed above."""
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"SR weights not found: {p}") from None
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"SR weights {p} could not be read as a torch weights file: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"SR weights {p}: expected a dict, got {type(obj).__name__}")
    meta = obj.get(META_KEY) or {}
    keys = (param_key,) if param_key else PARAM_KEYS
    used = next((k for k in keys if isinstance(obj.get(k), dict)), None)
    if used is not None:
        state = obj[used]
    elif param_key:
        raise ValueError(f"SR weights {p} has no {param_key!r} entry; top-level keys: {', '.join(map(str, obj))}")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, used = obj, ""
    else:
        raise ValueError(
            f"SR weights {p} holds no state dict under {' or '.join(PARAM_KEYS)}; top-level keys: {', '.join(map(str, obj))}"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return convert_esrgan_keys(state), dict(meta), used


def load_sr_network(name: str, scale: int, path: str | os.PathLike, param_key: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build front end ``name`` at ``x scale`` sized as the weights in ``path`` say, and load them (strict).

    Returns the network and provenance for the record: model, scale, config, weights path and SHA-256,
    and the key the state dict was read from.
    """
    arch = sr_arch(name)
    if not arch.learned:
        raise ValueError(f"SR model {arch.name!r} has no weights; drop --sr-weights {path}")
    state, meta, used = read_sr_weights(path, param_key)
    if meta and meta.get("model") != arch.name:
        raise ValueError(f"SR weights {path} hold a {meta.get('model')!r} front end, not {arch.name!r} (--sr)")
    if meta:
        config, file_scale = dict(meta.get("config") or {}), int(meta.get("scale", scale))
    else:
        try:
            config, file_scale = arch.infer(state)  # type: ignore[misc]
        except KeyError as exc:
            raise ValueError(f"SR weights {path} do not look like a {arch.name!r} network: {exc.args[0]}") from None
    if file_scale != scale:
        raise ValueError(f"SR weights {path} are a x{file_scale} {arch.name!r} network, but --sr-scale is {scale}")
    net = build_sr(arch.name, scale, config)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()
        raise ValueError(f"SR weights {path} do not fit {arch.name!r} x{scale} {config}: {first[-1].strip()}") from None
    if missing or unexpected:
        raise ValueError(
            f"SR weights {path} do not fit {arch.name!r} x{scale}: missing keys {list(missing)[:4]}, "
            f"unexpected keys {list(unexpected)[:4]}"
        )
    info = {"model": arch.name, "scale": scale, "config": config, "weights": str(path),
            "weights_sha256": file_sha256(path), "param_key": used}
    return net, info


def save_sr_weights(path: str | os.PathLike, net: nn.Module, name: str, scale: int, config: Mapping[str, Any]) -> Path:
    """Write ``{"params": state_dict, "lrpose_sr": {...}}`` atomically (basicsr's layout, loadable there)."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    payload = {"params": state, META_KEY: {"model": sr_arch(name).name, "scale": int(scale), "config": dict(config)}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


__all__ = [
    "META_KEY", "PARAM_KEYS", "weights_dir", "default_weights_path", "missing_weights_message", "resolve_weights",
    "convert_esrgan_keys", "read_sr_weights", "load_sr_network", "save_sr_weights",
]
