"""``lrpose report`` (tables from result records, beside the paper's numbers) and ``lrpose plot ...`` (figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, console, err_console, fail, run_guarded

#: Resolutions of ``lrpose plot oracle`` when no ``--res`` is given (HxW).
DEFAULT_ORACLE_RES: tuple[str, ...] = ("64x48", "96x72", "128x96", "192x144", "256x192", "384x288")

plot_app = typer.Typer(
    help="Figures (PNG + PDF): a run's predictions and training curves, coarse-error analysis, AP against resolution, oracle AP per codec.",
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the tables to the terminal (they are printed in --format; Markdown for all)."),
) -> None:
    """Tables of our results (mean ± std over seeds) beside the paper's numbers, one per experiment."""
    from lrpose_bench.report.tables import FORMATS, render, report_tables, write_tables

    if fmt not in (*FORMATS, "all"):
        fail(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}, all", 2)

    def _run() -> None:
        tables = report_tables(runs.expanduser(), experiment, paper.expanduser() if paper else None)
        written = write_tables(tables, fmt, out.expanduser())
        shown = fmt if fmt in FORMATS else "markdown"  # --format all: the Markdown is printed
        if not quiet:
            typer.echo("\n".join(render(t, shown) for t in tables))
        names = {"latex": "LaTeX", "markdown": "Markdown", "csv": "CSV"}
        printed = "" if quiet else f"; printed the {names[shown]} above"
        err_console.print(f"wrote {len(written)} file(s): " + ", ".join(str(p) for p in written) + printed, highlight=False)

    run_guarded(_run)


@plot_app.command("offsets")
def plot_offsets(
    run: Path = typer.Option(..., "--run", help="Run folder (or its record.json) holding coarse_errors.npz (and method.json for MGM runs)."),
    out: Path = typer.Option(Path("results/figures"), "--out", help="Folder the figure is written to (offsets_<run>.png/.pdf)."),
) -> None:
    """Coarse-prediction errors of a run: 2-D histogram with marginals, fitted Gaussian, MGM components, size bins.

    For CAL + MGM runs it also prints how much offset-loss weight a joint gets in each stage (summed over
    the heatmap), the stage-1 weighting against the disc times the fitted MGM.
    """
    from lrpose_bench.report.figures import plot_offsets as draw

    def _draw() -> list[Path]:
        import zipfile
        import zlib

        try:
            return draw(run.expanduser(), out.expanduser())
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # a truncated or damaged coarse_errors.npz
            from lrpose_bench.report.figures import resolve_run_dir

            npz = resolve_run_dir(run.expanduser()) / "coarse_errors.npz"
            raise ValueError(f"{npz}: not a readable .npz file, damaged or truncated ({exc})") from None

    paths = run_guarded(_draw)
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)
    series = getattr(paths, "series", {})
    if "offset_weight_summary" in series:
        console.print(str(series["offset_weight_summary"]), highlight=False, markup=False)


@plot_app.command("predictions")
def plot_predictions(
    run: Path = typer.Option(..., "--run", help="Run folder (or its record.json) with predictions.json, evaluated on ground-truth boxes."),
    n: int = typer.Option(24, "--n", min=1, help="Number of persons in the grid."),
    kind: str = typer.Option("worst", "--kind", help="Which persons: worst (lowest OKS first) | random | inversions (left/right swapped joints first)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset root the run was evaluated on (default: the record's; the embedded dataset for embedded runs)."),
    full: int = typer.Option(4, "--full", min=0, help="Also draw this many of them on the full-resolution image (<name>_full.png/.pdf); 0 = none."),
    seed: int = typer.Option(0, "--seed", help="Seed of --kind random."),
    out: Path = typer.Option(Path("results/figures"), "--out", help="Folder the figures are written to (predictions_<run>_<kind>.png/.pdf)."),
) -> None:
    """Validation persons as the network saw them, with ground truth and prediction, joints coloured by error type (from predictions.json; no re-inference)."""
    from lrpose_bench.report.predictions import plot_predictions as draw

    paths = run_guarded(draw, run.expanduser(), out.expanduser(), n=n, kind=kind,
                        data=data.expanduser() if data else None, full=full, seed=seed)  # fmt: skip
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


@plot_app.command("training")
def plot_training(
    run: list[Path] = typer.Option(..., "--run", help="Run folder (or its record.json) with log.csv; repeat to overlay runs."),
    name: Optional[str] = typer.Option(None, "--name", help="File name stem (default training_<run> for one run, training_<first run>_vs_<n> for several)."),
    out: Path = typer.Option(Path("results/figures"), "--out", help="Folder the figure is written to (.png/.pdf)."),
) -> None:
    """Loss terms, learning rate and (where recorded) validation AP per epoch, from log.csv; runs overlaid."""
    from lrpose_bench.report.figures import plot_training as draw

    paths = run_guarded(draw, [r.expanduser() for r in run], out.expanduser(), name=name)
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
