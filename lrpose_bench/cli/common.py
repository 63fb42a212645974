"""Shared pieces of the ``lrpose`` CLI: option parsers, error reporting, the console.

Command modules (``lrpose_bench/cli/*_cmd.py``) each expose ``register(app)``; they import heavy
libraries (torch, pycocotools, matplotlib) inside the command functions so that ``lrpose --help`` is fast.
"""

from __future__ import annotations

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
    "Default: the embedded synthetic dataset, generated once into the cache (LRPOSE_CACHE)."
)


def run_guarded(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``func``; turn expected user-facing errors into one-line messages instead of tracebacks."""
    try:
        return func(*args, **kwargs)
    except UserError as exc:
        fail(str(exc), exc.code)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        fail(str(message))


def resolve_path(p: Path | None) -> Path | None:
    return None if p is None else p.expanduser()


def is_tty() -> bool:
    return sys.stdout.isatty()


#: ``lrpose bench ...``: shared by several command modules (codecs, train, ...); app.py mounts it.
bench_app = typer.Typer(help="Benchmarks that print throughput figures (never asserted in tests).", no_args_is_help=True)
