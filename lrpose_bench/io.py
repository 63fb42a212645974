"""Small file helpers: atomic writes (temporary file in the same folder, then rename) and hashing.

Written files get the permissions a plain ``open`` would give them (``0666`` less the process umask),
although their temporary files start private; a full disk raises :class:`~lrpose_bench.errors.DiskFullError`
naming the target file and, where known, the bytes it needs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from lrpose_bench.errors import DiskFullError, free_bytes

#: Prefix and suffix of the temporary files of :func:`atomic_path` (``.<name>.<random>.tmp``).
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_UMASK: int | None = None


def process_umask() -> int:
    """The process umask (read from ``/proc/self/status`` where possible, so it is never changed)."""
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status", encoding="ascii") as f:
                line = next(ln for ln in f if ln.startswith("Umask:"))
            _UMASK = int(line.split()[1], 8)
        except (OSError, StopIteration, ValueError, IndexError):
            old = os.umask(0o022)
            os.umask(old)
            _UMASK = old
    return _UMASK


@contextmanager
def atomic_path(path: str | os.PathLike, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path`` (with the umask's
    permissions), on error removed. A full disk becomes :class:`DiskFullError` (``needed``: bytes, if known)."""
    target = Path(path)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~process_umask())
        os.replace(tmp_path, target)
    except BaseException as exc:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL and not isinstance(exc, DiskFullError):
            raise DiskFullError(target, needed, free_bytes(target.parent)) from None
        raise


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` leaves behind when its process is killed (only call
    this while no other process writes into ``folder``); returns what was removed."""
    removed = []
    d = Path(folder)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        if p.name.startswith(TEMP_PREFIX) and p.name.endswith(TEMP_SUFFIX) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None`` (and NumPy scalars/arrays made plain),
    so that it serialises as strict JSON."""
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays, torch tensors
        return finite_json(obj.tolist())
    return obj


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2, strict: bool = False) -> Path:
    """Write ``data`` as JSON atomically; ``strict``: NaN/infinity become ``null`` (valid JSON). Returns the path."""
    if strict:
        text = json.dumps(finite_json(data), indent=indent, sort_keys=False, allow_nan=False, default=_json_default)
    else:
        text = json.dumps(data, indent=indent, sort_keys=False, default=_json_default)
    payload = (text + "\n").encode("utf-8")
    with atomic_path(path, needed=len(payload)) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text atomically; returns the path."""
    payload = text.encode("utf-8")
    with atomic_path(path, needed=len(payload)) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON with an error that names the file and the position of a syntax error."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} {p} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
            "not a JSON file"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {p} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
