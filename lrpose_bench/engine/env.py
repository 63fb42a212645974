"""Facts about the software and hardware a run used: versions, git commit, device name."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
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
    n = torch.get_num_threads()
    return f"cpu: {cpu_name()} ({n} thread{'' if n == 1 else 's'})"


def versions(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """Library versions and the hardware of a run, as stored in a record's ``versions`` field."""
    from importlib.metadata import version as package_version

    import numpy

    from lrpose_bench import __version__

    out: dict[str, Any] = {
        "lrpose_bench": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),  # not imported: it costs ~3 s
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "device": device_description(device),
        "world_size": world_size,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        **thread_facts(),
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


def usable_workers(requested: int, quiet: bool = False) -> int:
    """DataLoader workers capped to :func:`usable_cpus` (torch warns about more, twice per loader, and
    they only compete for the same cores); says so once per (requested, cap) on stderr unless ``quiet``."""
    cap = usable_cpus()
    if requested <= cap:
        return requested
    if not quiet and (requested, cap) not in _CAPPED_WORKERS:
        _CAPPED_WORKERS.add((requested, cap))
        print(f"note: {requested} DataLoader workers requested, {cap} CPUs usable: using {cap} "
              f"(set --workers or --hp workers=N to choose)", file=sys.stderr, flush=True)
    return cap


#: Torch threads per process the automatic rule never exceeds: the tiny CPU network gains little beyond
#: this, and a smaller team is hurt less when other processes come to share the cores.
AUTO_THREADS_CAP: int = 4
#: Seconds the automatic rule watches the CPUs before it decides (once per process).
BUSY_SAMPLE_S: float = 0.5
#: Other processes take a core from this fraction of one on: ``floor(busy + 1 - BUSY_CORE_FRACTION)`` cores.
BUSY_CORE_FRACTION: float = 0.3


@dataclass(frozen=True)
class ThreadChoice:
    """Torch intra-op threads of a process and where the number came from."""

    threads: int
    source: str  # "--threads", "$OMP_NUM_THREADS", "automatic" or "cuda" (torch's default)
    detail: str = ""

    def describe(self) -> str:
        """``"1 (automatic: 2 cores, 1.0 busy elsewhere)"``."""
        return f"{self.threads} ({self.source}{': ' + self.detail if self.detail else ''})"


_LAST_CHOICE: ThreadChoice | None = None
_ANNOUNCED: set[ThreadChoice] = set()


def _cpu_jiffies(cpus: set[int]) -> tuple[int, int, int] | None:
    """``(busy at normal or higher priority, busy niced, total)`` jiffies of ``cpus`` from /proc/stat."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = niced = total = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy += user + system + irq + softirq + steal
        niced += nice
        total += user + nice + system + idle + iowait + irq + softirq + steal
    return (busy, niced, total) if total else None


def busy_cpus_elsewhere(sample_s: float = BUSY_SAMPLE_S) -> float | None:
    """Cores of this process's CPUs that other processes kept busy during ``sample_s`` seconds, counting
    only processes of at least this process's priority (niced ones yield to it); ``None`` without /proc."""
    import time

    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    own0, t0, first = os.times(), time.monotonic(), _cpu_jiffies(cpus)
    if first is None:
        return None
    time.sleep(sample_s)
    own1, t1, second = os.times(), time.monotonic(), _cpu_jiffies(cpus)
    if second is None or second[2] <= first[2]:
        return None
    busy, niced, total = (b - a for a, b in zip(first, second))
    if (os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0) > 0:
        busy += niced  # a niced process competes with niced ones as equals
    cores = busy / total * len(cpus)
    own = (own1.user + own1.system - own0.user - own0.system) / max(t1 - t0, 1e-9)
    return max(0.0, cores - own)


def auto_threads(cores: int, workers: int, processes: int = 1, busy: float | None = 0.0) -> tuple[int, str]:
    """The automatic thread rule: ``(threads, why)``.

    Each of ``processes`` training processes on ``cores`` CPUs gets its share of the cores, less its
    ``workers`` DataLoader workers and the cores that other busy processes (``busy``, see
    :func:`busy_cpus_elsewhere`; ``None``: not watched) hold, at least 1 and at most :data:`AUTO_THREADS_CAP`. A team of 2+
    OpenMP threads that has to share its cores with another busy process runs 3x slower than 1 thread
    (measured: README "Threads"), so anything that shares the cores at the start brings it down to 1.
    """
    import math

    share = max(1, cores // max(1, processes))
    taken = max(0, math.floor(busy + 1 - BUSY_CORE_FRACTION)) if busy is not None else 0
    parts = [f"{cores} core{'s' if cores != 1 else ''}"]
    if processes > 1:
        parts.append(f"{processes} processes")
    if workers:
        parts.append(f"{workers} DataLoader worker{'s' if workers != 1 else ''}")
    if busy is not None:
        parts.append(f"{busy:.1f} busy elsewhere")
    free = share - workers - taken
    if free > AUTO_THREADS_CAP:
        parts.append(f"capped at {AUTO_THREADS_CAP}")
    return max(1, min(free, AUTO_THREADS_CAP)), ", ".join(parts)


def choose_cpu_threads(workers: int, requested: int = 0) -> ThreadChoice:
    """The thread count a CPU process should use (see :func:`configure_cpu_threads`); sets nothing."""
    if requested < 0:
        raise ValueError(f"--threads {requested}: must be >= 0 (0 = automatic)")
    if requested > 0:
        return ThreadChoice(requested, "--threads")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "$OMP_NUM_THREADS")
    local = os.environ.get("LOCAL_WORLD_SIZE", "")  # torchrun: training processes on this machine
    processes = int(local) if local.isdigit() and int(local) > 0 else 1
    cores, workers = usable_cpus(), usable_workers(workers, quiet=True)
    # Watch the CPUs only where it can change the answer; torchrun's sibling processes would count as
    # busy elsewhere, and their share of the cores is already split.
    busy = busy_cpus_elsewhere() if processes == 1 and cores - workers > 1 else None
    threads, why = auto_threads(cores, workers, processes, busy)
    return ThreadChoice(threads, "automatic", why)


def configure_cpu_threads(device: torch.device, workers: int, requested: int = 0, announce: bool = False) -> int:
    """Set torch's intra-op threads for a CPU run and return the number used.

    ``requested > 0`` is taken as is (``--threads``); ``0`` means ``$OMP_NUM_THREADS`` when set, else the
    automatic rule (:func:`auto_threads`, after watching the CPUs for :data:`BUSY_SAMPLE_S`). The choice is
    kept for the record (:func:`versions`) and, with ``announce``, printed once per process on stderr. CUDA
    runs keep torch's default.
    """
    global _LAST_CHOICE
    if device.type != "cpu":
        _LAST_CHOICE = ThreadChoice(torch.get_num_threads(), "cuda", "torch's default")
        return _LAST_CHOICE.threads
    choice = choose_cpu_threads(workers, requested)
    torch.set_num_threads(choice.threads)
    _LAST_CHOICE = choice
    if announce and choice not in _ANNOUNCED:
        _ANNOUNCED.add(choice)
        hint = "; --threads 1 if other busy processes will share the cores" if choice.threads > 1 else ""
        print(f"torch CPU threads: {choice.describe()}{hint} (--threads N chooses; AP depends on it, README "
              f"\"Threads\")", file=sys.stderr, flush=True)
    return choice.threads


def last_thread_choice() -> ThreadChoice | None:
    """The choice :func:`configure_cpu_threads` made last in this process (``None`` before it ran)."""
    return _LAST_CHOICE


def thread_facts() -> dict[str, Any]:
    """The process's torch threads and how they were chosen, for a record's ``versions``: ``cpu_threads``,
    ``cpu_threads_source`` (``--threads``, ``$OMP_NUM_THREADS``, ``automatic``, ``cuda``) and
    ``cpu_threads_rule`` (what the automatic rule saw)."""
    choice = _LAST_CHOICE or ThreadChoice(torch.get_num_threads(), "torch default")
    return {"cpu_threads": choice.threads, "cpu_threads_source": choice.source, "cpu_threads_rule": choice.detail or None}
