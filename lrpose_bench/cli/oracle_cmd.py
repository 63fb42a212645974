"""``lrpose oracle`` (codec round trip on the ground truth) and ``lrpose methods`` (the method registry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, console, err_console, fail, parse_res, run_guarded


def register(app: typer.Typer) -> None:
    """Add ``oracle`` and ``methods`` to the ``lrpose`` app."""
    app.command("oracle")(oracle)
    app.command("methods")(methods)


def _parse_method_sets(values: list[str] | None) -> dict[str, dict[str, str]]:
    """``--set METHOD.OPTION=VALUE`` -> ``{method: {option: value}}`` (values stay text)."""
    out: dict[str, dict[str, str]] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        name, dot, option = key.strip().partition(".")
        if not sep or not dot or not name or not option:
            raise typer.BadParameter(f"--set {item!r} is not of the form METHOD.OPTION=VALUE, e.g. cal.target=disc")
        out.setdefault(name, {})[option] = value.strip()
    return out


def oracle(
    res: str = typer.Option("128x96", "--res", help="Input resolution HxW as the paper writes it, e.g. 128x96 or 64x48."),
    data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
    method: Optional[list[str]] = typer.Option(None, "--method", "-m", help="Only this method (repeatable). Default: every registered method."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Method option METHOD.OPTION=VALUE (repeatable), e.g. cal.target=disc."),
    as_json: bool = typer.Option(False, "--json", help="Print {method: {AP, AP50, AP75, APM, APL, AR, mean_px_error}} as JSON, nothing else."),
) -> None:
    """Oracle: encode the validation ground truth with each method and decode its ideal outputs.

    AP/AR are COCO OKS metrics of the decoded keypoints (ground-truth boxes); mean_px_error is the mean
    distance to the labelled joints in image px. It is the ceiling each output representation sets.
    """
    size = parse_res(res)
    options = _parse_method_sets(sets)

    def _run() -> dict[str, dict[str, float]]:
        from lrpose_bench.data import resolve_dataset
        from lrpose_bench.method import METHODS
        from lrpose_bench.oracle import check_oracle_request, run_oracle

        names = list(method) if method else list(METHODS)
        check_oracle_request(size, names, options)  # fail fast, before the dataset is resolved
        stray = [m for m in options if m not in names]
        if stray:
            raise ValueError(f"--set {stray[0]}.…: method {stray[0]!r} is not among the methods run ({', '.join(names)})")
        spec = resolve_dataset(data.expanduser() if data is not None else None)
        if as_json:
            return run_oracle(spec, size, names, options)
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("oracle", total=len(names))

            def step(name: str) -> None:
                progress.update(task, description=f"oracle {name} at {res}", completed=names.index(name))

            rows = run_oracle(spec, size, names, options, progress=step)
            progress.update(task, completed=len(names))
        return rows

    rows = run_guarded(_run)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _print_oracle_table(rows, res)


def _print_oracle_table(rows: dict[str, dict[str, float]], res: str) -> None:
    from rich.table import Table

    from lrpose_bench.oracle import ORACLE_KEYS

    table = Table(title=f"Oracle at {res} (ground truth encoded and decoded; AP/AR in %)")
    table.add_column("method", style="bold")
    for key in ORACLE_KEYS:
        table.add_column("error (px)" if key == "mean_px_error" else key, justify="right")
    for name, row in rows.items():
        cells = [f"{row[k]:.2f}" if k == "mean_px_error" else f"{100.0 * row[k]:.1f}" for k in ORACLE_KEYS]
        table.add_row(name, *cells)
    console.print(table)


def methods(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list every option with its default."),
    as_json: bool = typer.Option(False, "--json", help="Print {method: {description, options}} as JSON, nothing else."),
) -> None:
    """Every registered method with its one-line description (options with --verbose)."""
    from lrpose_bench.method import METHODS

    info: dict[str, dict[str, Any]] = {}
    for name in METHODS:
        info[name] = _method_info(name)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    from rich.table import Table

    table = Table(title="Registered methods (set options with --set name=value)")
    table.add_column("method", style="bold")
    table.add_column("description")
    if verbose:
        table.add_column("options (defaults)")
    for name, item in info.items():
        row = [name, item["description"]]
        if verbose:
            row.append("\n".join(f"{k}={v}" for k, v in item["options"].items()) or "(none)")
        table.add_row(*row)
    console.print(table)
    if any("error" in item for item in info.values()):
        bad = next(n for n, item in info.items() if "error" in item)
        fail(f"method {bad!r} could not be loaded: {info[bad]['error']}")


def _method_info(name: str) -> dict[str, Any]:
    """Description and option defaults of one registered method (an import error is reported, not raised)."""
    import dataclasses

    from lrpose_bench.method import method_class

    try:
        cls = method_class(name)
    except (ImportError, AttributeError) as exc:
        return {"description": f"(not loadable: {exc})", "options": {}, "error": str(exc)}
    options = {f.name: getattr(cls.Options(), f.name) for f in dataclasses.fields(cls.Options)}
    return {"description": cls.description, "options": options}


__all__ = ["register", "oracle", "methods"]
