"""Shared pieces of the ``lrpose`` CLI: option parsers, error reporting, the console.

Command modules (``lrpose_bench/cli/*_cmd.py``) each expose ``register(app)``; they import heavy
libraries (torch, pycocotools, matplotlib) inside the command functions so that ``lrpose --help`` is fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_res(value: str | None) -> tuple[int, int] | None:
    """Typer callback for ``--res HxW``: ``(width, height)``; bad values exit 2 with a clear message."""
    if value is None:
        return None
    from lrpose_bench.geometry import parse_resolution

    try:
        return parse_resolution(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_set(values: list[str] | None) -> dict[str, str]:
    """``--set key=value`` pairs -> dict (values stay text; the receiver types them)."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--set {item!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


DATA_HELP = (
    "COCO-style root (train2017/, val2017/, annotations/person_keypoints_*.json). "
    "Default: the embedded synthetic dataset, generated once into the cache (LRPOSE_CACHE); "
    "embedded:unmarked selects its variant without joint markers."
)


def run_guarded(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``func``; turn user-facing errors into one line (``error: ...``) and an exit code instead of a
    traceback: bad files and environments exit 1, bad option values 2 (``OptionValueError``), Ctrl-C 130;
    an ``OSError`` (disk full, read-only, a file in the way) names the path and what to do."""
    from lrpose_bench.errors import UserInputError, describe_os_error

    try:
        return func(*args, **kwargs)
    except typer.Exit:
        raise
    except (UserError, UserInputError) as exc:
        fail(str(exc), exc.code)
    except KeyboardInterrupt:
        fail("interrupted (Ctrl-C); nothing more was written", 130)
    except OSError as exc:
        fail(describe_os_error(exc))
    except KeyError as exc:
        fail(describe_key_error(exc))
    except ValueError as exc:
        fail(str(exc))


def describe_key_error(exc: KeyError) -> str:
    """A ``KeyError`` as one line: its message when it is a sentence, else the missing key named as such."""
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, str) and " " in arg.strip():
        return arg
    return (
        f"missing field {arg!r} (KeyError): an input file lacks a field this command needs; "
        "check the files given on the command line"
    )


#: ``lrpose sweep`` sets this (to its pid) for the runs it starts: they stop when the sweep dies.
SWEEP_PARENT_ENV = "LRPOSE_SWEEP_PARENT"


def die_with_parent() -> None:
    """In a run started by ``lrpose sweep``: ask the kernel for a SIGINT when the sweep dies (Linux), so that
    the run saves a resumable checkpoint and stops instead of training on as an orphan; exit at once when
    the sweep is already gone. A no-op for runs started otherwise."""
    parent = os.environ.pop(SWEEP_PARENT_ENV, None)
    if not parent or not parent.isdigit():
        return
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGINT), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != int(parent):
        err_console.print(f"error: the lrpose sweep (pid {parent}) that started this run has ended; run the sweep "
                          "again", highlight=False, soft_wrap=True)  # fmt: skip
        raise SystemExit(130)


def seed_value(text: str) -> int:
    """Typer parser of ``--seed``: an integer in [0, 2**32 - 1] (what every generator takes); anything else
    exits 2 naming the option and the value."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise typer.BadParameter(f"{text!r} is not an integer in [0, {2**32 - 1}]")
    return value


def resolve_path(p: Path | None) -> Path | None:
    return None if p is None else p.expanduser()


def is_tty() -> bool:
    return sys.stdout.isatty()


#: ``lrpose bench ...``: shared by several command modules (codecs, train, ...); app.py mounts it.
bench_app = typer.Typer(help="Benchmarks that print throughput figures (never asserted in tests).", no_args_is_help=True)
