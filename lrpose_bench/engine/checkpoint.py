"""Checkpoints: everything needed to resume a run bit-identically, stored as tensors and plain types.

A checkpoint is a dict (loaded with ``torch.load(..., weights_only=True)``, so it holds only tensors,
numbers, strings, lists, tuples and dicts):

    format        CHECKPOINT_FORMAT
    run           the run's spec (method, options, backbone, resolution, data, ...; see runner.RunSpec)
    config        TrainConfig.to_dict()
    model         model.state_dict() (unwrapped from DDP / torch.compile)
    optimizer, scheduler, scaler   their state_dicts (scaler: {} when unused)
    method        method.state_dict() (fitted, non-learned state, e.g. a GMM)
    epoch         epochs finished (the next epoch to run); ``step`` batches done inside it (mid-epoch save)
    global_step   optimizer steps so far
    stage_facts   what each begin_stage returned so far
    progress      running sums of the interrupted epoch (mid-epoch save only)
    log_rows      the rows of log.csv so far
    rng           Python, NumPy, torch CPU and CUDA generator states
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrpose_bench.errors import DiskFullError, free_bytes
from lrpose_bench.io import atomic_path

CHECKPOINT_FORMAT = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states as tensors / plain types (safe for ``weights_only`` loading)."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors inside ``obj`` (nested dicts / lists): about what ``torch.save`` writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (see module docstring) atomically to ``path``; a full disk raises
    :class:`~lrpose_bench.errors.DiskFullError` naming the file and the bytes it needs."""
    state = {"format": CHECKPOINT_FORMAT, **state}
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return Path(path)
    except DiskFullError:
        pass
    except RuntimeError:  # torch's writer reports a full disk as "[enforce fail at ...] unexpected pos"
        free = free_bytes(Path(path).parent)
        if free is None or free >= _tensor_bytes(state) + (1 << 20):
            raise
    # outside the handler: the failed writer (held by the traceback) is closed, its space freed
    raise DiskFullError(path, _tensor_bytes(state), free_bytes(Path(path).parent))


def describe_load_error(exc: BaseException) -> str:
    """A short reason for a failed ``torch.load(..., weights_only=True)``, without torch's advice to load
    the file unsafely."""
    text = str(exc)
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().split("\n", 1)[0]
        detail = detail.split(" was not an allowed global", 1)[0].split(". Please", 1)[0].strip()
        return f"it holds Python objects that are not tensors or plain types ({detail}); such files are never loaded"
    if isinstance(exc, KeyError) or "invalid load key" in text or isinstance(exc, pickle.UnpicklingError):
        return "it is not a file written by torch.save"
    if isinstance(exc, EOFError) or "unexpected EOF" in text or "failed finding central directory" in text:
        return "it is empty or truncated"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


def safe_torch_load(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; any failure is a one-line ``ValueError`` naming ``what`` and
    the file (``OSError`` such as a missing file passes through)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise ValueError(f"{what} {path} could not be read: {describe_load_error(exc)}") from None


def check_weights_file(path: str | Path, option: str) -> None:
    """Fail early, naming ``option``, when ``path`` is missing or not a safely loadable torch file (read
    without copying tensor data where the format allows)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{option}: file not found: {p}")
    try:
        torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        if "mmap" in str(exc) or "zipfile" in str(exc):  # a legacy (non-zip) file: load it fully
            safe_torch_load(p, f"{option}:")
            return
        raise ValueError(f"{option}: {p} could not be read: {describe_load_error(exc)}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; clear errors for a missing or foreign file."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt" if (p / "checkpoints").is_dir() else p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p} (give a run folder or its checkpoints/last.pt)")
    state = safe_torch_load(p, "checkpoint", map_location)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {p}: not an lrpose-bench checkpoint (field 'format' != {CHECKPOINT_FORMAT})")
    state["path"] = str(p)
    return state


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run keeps its resumable checkpoint."""
    return Path(run_dir) / "checkpoints" / "last.pt"
