"""Exceptions for errors caused by the user's input (files, option values, disk space, busy run folders).

Every one of them reaches the CLI as one line, ``error: <message>``, and an exit code (``code``): 1 for
bad files and environments, 2 for bad option values. :func:`describe_os_error` turns an ``OSError`` (a
full disk, a read-only file system, a file where a folder should be) into such a line.
"""

from __future__ import annotations

import errno
import os


class UserInputError(ValueError):
    """A user error with a one-line message; ``code`` is the CLI exit code."""

    code: int = 1

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class OptionValueError(UserInputError):
    """A command-line option (or hyper-parameter / method option) with a value that cannot work: exit 2."""

    code = 2


class RunFolderBusy(UserInputError):
    """Another live process holds the run folder's lock."""


class DiskFullError(OSError):
    """Writing ``path`` failed for lack of space; ``needed`` / ``free`` bytes where known."""

    def __init__(self, path: str | os.PathLike, needed: int | None = None, free: int | None = None) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.path, self.needed, self.free = str(path), needed, free

    def __str__(self) -> str:
        sizes = []
        if self.needed is not None:
            sizes.append(f"needs about {_size(self.needed)}")
        if self.free is not None:
            sizes.append(f"{_size(self.free)} free")
        detail = f" ({', '.join(sizes)})" if sizes else ""
        return f"disk full writing {self.path}{detail}; free some space or write elsewhere (--out)"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes available to this user on the file system holding ``path`` (or its nearest existing parent)."""
    p = os.path.abspath(os.fspath(path))
    while p and not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return int(st.f_bavail * st.f_frsize)


#: What to do about an ``OSError``, by errno.
_OS_HINTS: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere (e.g. --out)",
    errno.EACCES: "permission denied: check the permissions or write elsewhere",
    errno.EPERM: "operation not permitted: check the permissions or write elsewhere",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a file of that name is in the way: choose another path",
    errno.EISDIR: "it is a folder, not a file: give a file",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENAMETOOLONG: "the file name is too long: choose a shorter one",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: the path(s), what went wrong, what to do."""
    if isinstance(exc, DiskFullError):
        return str(exc)
    where = exc.filename if exc.filename is not None else None
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    hint = _OS_HINTS.get(exc.errno or -1) or exc.strerror or str(exc)
    return f"{where}: {hint}" if where else hint


__all__ = [
    "UserInputError", "OptionValueError", "RunFolderBusy", "DiskFullError", "free_bytes", "describe_os_error",
]
