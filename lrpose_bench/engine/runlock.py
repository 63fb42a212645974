"""Run-folder ownership: one process writes a run folder at a time.

The owner holds an exclusive ``flock`` on ``<run dir>/.lock`` (which holds its pid) for as long as it runs
and deletes the file when it is done; the operating system drops the lock when the process ends, however
it ends, so the file a killed run leaves is never an obstacle. A second writer fails at once with
:class:`~lrpose_bench.errors.RunFolderBusy` naming the holder's pid.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from lrpose_bench.errors import RunFolderBusy

#: The lock file inside a run folder.
LOCK_NAME = ".lock"


class RunLock:
    """An exclusive, non-blocking lock on a run folder (``acquire`` / ``release``, or a context manager)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, what: str = "run folder") -> "RunLock":
        """Take the lock (the folder must exist) or raise :class:`RunFolderBusy` naming the holder."""
        if self._fd is not None:
            return self
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunFolderBusy(
                    f"{what} {self.run_dir} is in use by another run ({holder}); wait for it to end (or stop it), "
                    "or choose another --run-id or --out"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The file may have been unlinked (folder removed) between open and flock: lock the live one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
                self._fd = fd
                return self
            os.close(fd)
            if not self.run_dir.is_dir():
                raise FileNotFoundError(f"run folder {self.run_dir} was removed while starting")
        raise RunFolderBusy(f"{self.run_dir}: could not lock {self.path} (it keeps changing)")

    def release(self) -> None:
        """Drop the lock and delete the lock file (a process that opened it meanwhile sees it was unlinked
        and starts over, see :meth:`acquire`)."""
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def folder_is_locked(run_dir: str | os.PathLike) -> str | None:
    """The holder (``"pid N on host since ..."``) when a live process owns ``run_dir``, else ``None``."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    finally:
        os.close(fd)
    return None


# --------------------------------------------------------------------------------------------------
# Claiming a run folder
# --------------------------------------------------------------------------------------------------
#: Longest run id (a folder name).
MAX_RUN_ID_LENGTH = 200


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    """A run id is one folder name: no path separator, not ``.``-hidden, printable, at most 200 characters;
    otherwise ``OptionValueError`` (exit 2). Returns it."""
    from lrpose_bench.errors import OptionValueError

    bad = (
        not run_id or run_id.startswith(".") or "/" in run_id or "\\" in run_id or len(run_id) > MAX_RUN_ID_LENGTH
        or not run_id.isprintable() or run_id != run_id.strip()
    )
    if bad:
        raise OptionValueError(
            f"{option} {run_id!r}: a run id names one folder under --out: no '/' or '\\', not starting with '.', "
            f"no surrounding spaces, at most {MAX_RUN_ID_LENGTH} characters"
        )
    return run_id


class RunClaim:
    """A run folder this process owns (created or resumed, locked); ``release`` when done, ``abandon`` to
    remove what a run that failed before its first checkpoint left behind."""

    def __init__(self, path: Path, lock: RunLock, created: bool, has_checkpoint: bool, removed: list[Path]) -> None:
        self.path, self.lock, self.created, self.has_checkpoint = path, lock, created, has_checkpoint
        self.removed_temps = removed

    def release(self) -> None:
        self.lock.release()

    def abandon(self) -> bool:
        """When the folder holds neither a checkpoint nor a record: delete the lock, temporary files and an
        empty ``checkpoints/``, then the folder if nothing else is in it. Returns whether it was removed."""
        from lrpose_bench.engine.checkpoint import checkpoint_path
        from lrpose_bench.io import remove_stale_temps

        if checkpoint_path(self.path).exists() or (self.path / "record.json").exists() or not self.lock.held:
            return False
        ckpt_dir = checkpoint_path(self.path).parent
        try:
            remove_stale_temps(self.path)
            if ckpt_dir.is_dir():
                remove_stale_temps(ckpt_dir)
                ckpt_dir.rmdir()
            if {p.name for p in self.path.iterdir()} != {LOCK_NAME}:
                return False
            self.lock.path.unlink()
            self.path.rmdir()
        except OSError:
            return False
        return True


def claim_run_dir(out: Path, run_id: str | None, default_id: str, resume: bool) -> RunClaim:
    """Create (or, with ``resume``, open) the run folder and lock it for this process.

    ``out/run_id``: with ``resume`` it must exist (a folder without a checkpoint starts from scratch);
    without, an explicit ``run_id`` must not exist (a sweep named that folder: writing elsewhere would lose
    the run); a default id whose folder exists gets ``-2``, ``-3``, ... (folders are claimed with an atomic
    ``mkdir``). A folder another live process holds raises ``RunFolderBusy`` naming its pid. Temporary files
    a killed run left are removed.
    """
    from lrpose_bench.engine.checkpoint import checkpoint_path
    from lrpose_bench.io import remove_stale_temps

    if run_id is not None:
        check_run_id(run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = run_id or default_id
    created = True
    if resume:
        path = out / base
        if not path.is_dir():
            raise FileNotFoundError(
                f"--resume: no checkpoint at {checkpoint_path(path)}: there is no run folder {path} (check --out/--run-id)"
            )
        created = False
    elif run_id is not None:
        path = out / run_id
        try:
            path.mkdir()
        except FileExistsError:
            RunLock(path).acquire().release()  # a live owner: RunFolderBusy naming it
            raise ValueError(
                f"--run-id {run_id}: {path} exists; pass --resume to continue it, or another --run-id"
            ) from None
    else:
        n = 1
        while True:
            path = out / (base if n == 1 else f"{base}-{n}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                n += 1
    lock = RunLock(path).acquire()
    try:
        removed = remove_stale_temps(path) + remove_stale_temps(checkpoint_path(path).parent)
        has_checkpoint = checkpoint_path(path).is_file()
    except BaseException:
        lock.release()
        raise
    return RunClaim(path, lock, created, has_checkpoint, removed)


__all__ = ["LOCK_NAME", "RunLock", "RunClaim", "check_run_id", "claim_run_dir", "folder_is_locked"]
