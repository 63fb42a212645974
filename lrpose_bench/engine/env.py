"""Facts about the software and hardware a run used: versions, git commit, device name."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """``HEAD``'s hash (with ``-dirty`` when tracked files changed), or ``None`` outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    """``"NVIDIA H100 80GB HBM3"`` for a CUDA device, ``"cpu: <model> (<n> threads)"`` otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {cpu_name()} ({torch.get_num_threads()} threads)"


def versions(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """Library versions and the hardware of a run, as stored in a record's ``versions`` field."""
    import numpy
    import torchvision

    from lrpose_bench import __version__

    out: dict[str, Any] = {
        "lrpose_bench": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "device": device_description(device),
        "world_size": world_size,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import pycocotools

        out["pycocotools"] = getattr(pycocotools, "__version__", None)
    except ImportError:  # pragma: no cover - a dependency
        pass
    return out


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in {"cpu", "cuda"} and not name.startswith("cuda:"):
        raise ValueError(f"--device {name!r}: choose auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available (torch {torch.__version__})")
    return torch.device(name)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_CAPPED_WORKERS: set[tuple[int, int]] = set()


def usable_workers(requested: int) -> int:
    """DataLoader workers capped to :func:`usable_cpus` (torch warns about more, twice per loader, and
    they only compete for the same cores); says so once per (requested, cap) on stderr."""
    cap = usable_cpus()
    if requested <= cap:
        return requested
    if (requested, cap) not in _CAPPED_WORKERS:
        _CAPPED_WORKERS.add((requested, cap))
        print(f"note: {requested} DataLoader workers requested, {cap} CPUs usable: using {cap} "
              f"(set --workers or --hp workers=N to choose)", file=sys.stderr, flush=True)
    return cap


def configure_cpu_threads(device: torch.device, workers: int, requested: int = 0) -> int:
    """Set torch's intra-op threads for a CPU run and return the number used.

    ``requested > 0`` is taken as is; ``0`` means ``$OMP_NUM_THREADS`` when set, else one thread per core
    not used by a DataLoader worker (at least 1), so that training and data loading do not oversubscribe
    the cores (OpenMP threads that compete for a core slow a step down several times). CUDA runs keep
    torch's default.
    """
    if device.type != "cpu":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if requested > 0:
        threads = requested
    elif env.isdigit() and int(env) > 0:
        threads = int(env)
    else:
        threads = max(1, cores - workers)
    torch.set_num_threads(threads)
    return threads
