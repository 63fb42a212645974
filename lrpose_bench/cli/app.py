"""The ``lrpose`` command: a Typer app assembled from the command modules of this package."""

from __future__ import annotations

import importlib

import typer

from lrpose_bench import __version__

app = typer.Typer(
    name="lrpose",
    help="Low-resolution human pose estimation benchmark: train, evaluate, compare, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

#: Command modules; each has ``register(app)``. Order = order in ``lrpose --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "lrpose_bench.cli.run_cmd",  # run, eval
    "lrpose_bench.cli.sweep_cmd",  # sweep
    "lrpose_bench.cli.report_cmd",  # report, plot
    "lrpose_bench.cli.oracle_cmd",  # oracle, methods
    "lrpose_bench.cli.data_cmd",  # data synth/info
    "lrpose_bench.cli.sr_cmd",  # sr train
    "lrpose_bench.cli.bench_cmd",  # bench codecs
    "lrpose_bench.cli.bench_train_cmd",  # bench train
    "lrpose_bench.cli.bench_eval_cmd",  # bench eval
    "lrpose_bench.cli.bench_data_cmd",  # bench data
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrpose-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Low-resolution human pose estimation benchmark: train, evaluate, compare, report."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)

from lrpose_bench.cli.common import bench_app  # noqa: E402  (filled by the modules above)

app.add_typer(bench_app, name="bench")


def main() -> None:
    """Console-script entry point (a run started by ``lrpose sweep`` first ties its life to the sweep's)."""
    from lrpose_bench.cli.common import die_with_parent

    die_with_parent()
    app()


if __name__ == "__main__":
    main()
