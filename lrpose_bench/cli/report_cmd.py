"""``lrpose report`` (tables from result records, beside the paper's numbers) and ``lrpose plot ...`` (figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, console, err_console, fail, run_guarded

#: Resolutions of ``lrpose plot oracle`` when no ``--res`` is given (HxW).
DEFAULT_ORACLE_RES: tuple[str, ...] = ("64x48", "96x72", "128x96", "192x144", "256x192", "384x288")

plot_app = typer.Typer(
    help="Figures (PNG + PDF): coarse-error analysis of a run, AP against resolution, oracle AP per codec.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``lrpose report`` and the ``lrpose plot`` group to ``app``."""
    app.command("report")(report)
    app.add_typer(plot_app, name="plot")


def report(
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment (default: one table per experiment found)."),
    fmt: str = typer.Option("latex", "--format", "-f", help="File format written: latex | markdown | csv | all."),
    out: Path = typer.Option(Path("results/tables"), "--out", help="Folder the tables are written to (<experiment>.tex/.md/.csv)."),
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="Folder searched (recursively) for record.json files."),
    paper: Optional[Path] = typer.Option(None, "--paper", help="Folder of the paper's tables (CSV). Default: results/paper."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the Markdown tables to the terminal."),
) -> None:
    """Tables of our results (mean ± std over seeds) beside the paper's numbers, one per experiment."""
    from lrpose_bench.report.tables import FORMATS, render, report_tables, write_tables

    if fmt not in (*FORMATS, "all"):
        fail(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}, all", 2)

    def _run() -> None:
        tables = report_tables(runs.expanduser(), experiment, paper.expanduser() if paper else None)
        written = write_tables(tables, fmt, out.expanduser())
        if not quiet:
            typer.echo("\n".join(render(t, "markdown") for t in tables))
        err_console.print(f"wrote {len(written)} file(s): " + ", ".join(str(p) for p in written), highlight=False)

    run_guarded(_run)


@plot_app.command("offsets")
def plot_offsets(
    run: Path = typer.Option(..., "--run", help="Run folder (or its record.json) holding coarse_errors.npz (and method.json for MGM runs)."),
    out: Path = typer.Option(Path("results/figures"), "--out", help="Folder the figure is written to (offsets_<run>.png/.pdf)."),
) -> None:
    """Coarse-prediction errors of a run: 2-D histogram with marginals, fitted Gaussian, MGM components, size bins."""
    from lrpose_bench.report.figures import plot_offsets as draw

    paths = run_guarded(draw, run.expanduser(), out.expanduser())
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


@plot_app.command("resolution")
def plot_resolution(
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="Folder searched (recursively) for record.json files."),
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Only this experiment (default: one figure per experiment)."),
    out: Path = typer.Option(Path("results/figures"), "--out", help="Folder the figures are written to (resolution_<experiment>.png/.pdf)."),
) -> None:
    """AP against input resolution, one line per method, error bars = std over seeds (from result records)."""
    from lrpose_bench.report.figures import plot_resolution as draw
    from lrpose_bench.report.registry import aggregate, load_records

    def _run() -> list[Path]:
        return draw(aggregate(load_records(runs.expanduser())), out.expanduser(), experiment)

    paths = run_guarded(_run)
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


@plot_app.command("oracle")
def plot_oracle(
    res: Optional[list[str]] = typer.Option(None, "--res", help=f"Input resolution HxW (repeatable). Default: {' '.join(DEFAULT_ORACLE_RES)}."),
    data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
    method: Optional[list[str]] = typer.Option(None, "--method", "-m", help="Only this codec (repeatable). Default: every method with an oracle."),
    from_json: Optional[Path] = typer.Option(None, "--from-json", help="Plot saved results {res: {method: {AP, ...}}} instead of computing them."),
    out: Path = typer.Option(Path("results/figures"), "--out", help="Folder for oracle.png/.pdf (and oracle.json when computed)."),
) -> None:
    """Oracle AP (ground truth encoded and decoded by each codec) against input resolution."""
    from lrpose_bench.report.figures import plot_oracle as draw

    def _run() -> list[Path]:
        if from_json is not None:
            if res or data or method:
                raise ValueError("--from-json plots saved results: --res, --data and --method do not apply")
            from lrpose_bench.io import read_json

            return draw(_checked_json(read_json(from_json.expanduser(), "oracle results"), from_json), out.expanduser())
        results = _compute_oracle(list(res or DEFAULT_ORACLE_RES), data, method or None)
        from lrpose_bench.io import write_json

        saved = write_json(out.expanduser() / "oracle.json", results)
        return [*draw(results, out.expanduser()), saved]

    paths = run_guarded(_run)
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


def _checked_json(results: object, path: Path) -> dict:
    from lrpose_bench.report.figures import check_oracle_results

    return check_oracle_results(results, str(path))  # type: ignore[arg-type]


def _compute_oracle(resolutions: list[str], data: Optional[Path], methods: Optional[list[str]]) -> dict:
    """``{res: run_oracle(spec, (w, h), methods)}`` over ``resolutions``, with a progress bar."""
    from rich.progress import Progress

    from lrpose_bench.geometry import parse_resolution

    try:
        from lrpose_bench.data import resolve_dataset
        from lrpose_bench.oracle import run_oracle
    except ImportError as exc:
        raise ValueError(f"the oracle is not available in this installation ({exc})") from None
    sizes = {}
    for r in resolutions:
        try:
            sizes[r] = parse_resolution(r)
        except ValueError as exc:
            raise ValueError(f"--res {r!r}: {exc}") from None
    spec = resolve_dataset(data.expanduser() if data is not None else None)
    results: dict[str, dict] = {}
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("oracle", total=len(sizes))
        for r, size in sizes.items():
            progress.update(task, description=f"oracle {r}")
            results[r] = run_oracle(
                spec, size, methods=methods, progress=lambda name, r=r: progress.update(task, description=f"oracle {r} {name}")
            )
            progress.advance(task)
    return results
