"""``lrpose sweep``: run every run of an experiment file that has no record yet, then report it.

Each run is a subprocess of the real CLI (``python -m lrpose_bench.cli.app run ...``) writing its record to
``<out>/<experiment>/<run id>/record.json``; run ids are deterministic, so an interrupted sweep picks up
where it stopped. ``--print-commands`` prints the same runs as shell lines for a cluster scheduler.
``--parallel N`` runs N at a time and splits the cores between them: each gets ``--threads``
``max(1, cores // N)`` (``--threads T`` chooses), so that N runs do not oversubscribe the cores.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, console, err_console, fail

#: How a sweep starts one run: the real ``lrpose`` CLI in a fresh interpreter.
RUN_PREFIX: tuple[str, ...] = ("-m", "lrpose_bench.cli.app", "run")


def register(app: typer.Typer) -> None:
    """Add ``lrpose sweep`` to ``app``."""
    app.command("sweep", no_args_is_help=True)(sweep)


def sweep(
    experiment: str = typer.Argument(..., help="Experiment file (experiments/NAME.toml), or NAME to look in ./experiments/."),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Run seeds 0..N-1 for every run (overrides the file)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Training profile for every run: quick | paper (overrides the file)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only these runs: a run name selects that run, a method name every run of it (repeatable; commas allowed)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and what is already done; run nothing."),
    print_commands: bool = typer.Option(
        False,
        "--print-commands",
        help="Print one shell-quoted `lrpose run ...` line per run without a record (for a scheduler); run nothing.",
    ),
    out: Path = typer.Option(Path("results/runs"), "--out", help="Runs root: records go to OUT/<experiment>/<run id>/record.json."),
    data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
    device: Optional[str] = typer.Option(None, "--device", help="Device passed to every run (e.g. cpu, cuda, cuda:1)."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the experiment's report (lrpose report) at the end."),
    report_dir: Path = typer.Option(Path("results/tables"), "--report-dir", help="Folder the final report is written to."),
    report_format: str = typer.Option("latex", "--report-format", help="Report format: latex | markdown | csv."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failed run (default: go on, list failures at the end)."),
    parallel: int = typer.Option(1, "--parallel", min=1, help="Runs at a time; each gets --threads max(1, cores // N) unless --threads is given."),
    threads: int = typer.Option(0, "--threads", min=0, help="Torch CPU threads of every run (0 = with --parallel 1 each run's automatic rule, else cores // N)."),
) -> None:
    """Run an experiment file: every run without a record, then `lrpose report` for the experiment."""
    from lrpose_bench.data.spec import embedded_dir, embedded_variant
    from lrpose_bench.experiments import (
        PROFILES,
        ExperimentError,
        check_only,
        expand,
        find_experiment,
        load_experiment,
    )

    if profile is not None and profile not in PROFILES:
        fail(f"--profile {profile!r} is not one of: {', '.join(PROFILES)}", 2)
    only_list = [item.strip() for value in only or [] for item in value.split(",") if item.strip()]
    try:
        exp = load_experiment(find_experiment(experiment))
        if only_list:
            check_only(exp, only_list)
    except ExperimentError as exc:
        fail(str(exc))
    runs = expand(exp, seeds=seeds, profile=profile, only=only_list or None)
    if exp.dataset == "coco" and data is None and not dry_run:
        fail(f"{exp.path}: experiment {exp.name!r} uses dataset = 'coco': pass --data PATH (a COCO root)")
    data_arg = str(data.expanduser()) if data is not None else None
    exp_dir = out.expanduser() / exp.name
    statuses = _statuses(runs, exp_dir, None if data_arg else embedded_dir(variant=embedded_variant(exp.dataset)).name)

    run_threads = threads_per_run(parallel, threads)
    if print_commands:
        pending = [(r, s) for r, s in zip(runs, statuses) if s != "done"]
        for run, status in pending:
            args = child_args(run, exp_dir, data_arg, device, status == "resume", run_threads)
            typer.echo(shlex.join(["lrpose", getattr(run, "command", "run"), *args]))
        err_console.print(f"{len(pending)} of {len(runs)} runs of {exp.name} have no record yet.", highlight=False)
        stale = [r.run_id for r, s in pending if s == "retry"]
        if stale:
            err_console.print(
                f"warning: {len(stale)} run folder(s) hold neither a record nor a checkpoint ({', '.join(stale)}); "
                f"lrpose run would write beside them: remove them from {exp_dir} first.",
                highlight=False,
            )
        return

    _print_plan(exp, runs, statuses, exp_dir, data_arg)
    if dry_run:
        return
    try:
        _preflight(exp, runs, statuses, data_arg)
    except ExperimentError as exc:
        fail(str(exc))
    failures = _execute(exp, runs, statuses, exp_dir, data_arg, device, fail_fast, parallel, run_threads)
    if report and not _report(exp_dir, exp.name, report_format, report_dir) and not failures:
        raise typer.Exit(1)
    if failures:
        err_console.print(f"[bold red]{len(failures)} run(s) failed:[/]", highlight=False)
        for run_id, log in failures:
            err_console.print(f"  {run_id}: see {log}", highlight=False)
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------------
def threads_per_run(parallel: int, threads: int = 0) -> int:
    """Torch CPU threads to give every run: ``threads`` when given, else ``max(1, cores // parallel)`` for
    parallel runs, else 0 (each run's own automatic rule, see :func:`lrpose_bench.engine.env.auto_threads`)."""
    from lrpose_bench.engine.env import usable_cpus

    if threads > 0:
        return threads
    return max(1, usable_cpus() // parallel) if parallel > 1 else 0


def child_args(run: Any, exp_dir: Path, data: str | None, device: str | None, resume: bool, threads: int) -> list[str]:
    """Arguments of one run's ``lrpose run``/``lrpose eval`` command; ``--threads`` for a training run when
    ``threads`` > 0 and the experiment file does not set ``cpu_threads`` itself (an eval-only run gets
    ``$OMP_NUM_THREADS`` from :func:`_execute` instead)."""
    args = run.run_args(exp_dir, data=data, device=device, resume=resume)
    if threads > 0 and getattr(run, "command", "run") == "run" and "cpu_threads" not in getattr(run, "hparams", {}):
        args += ["--threads", str(threads)]
    return args


def _statuses(runs: list[Any], exp_dir: Path, dataset_folder: str | None) -> list[str]:
    """Status of each run's folder; an existing record made with other settings (or, for the embedded
    dataset, another generator version: ``dataset_folder``) stops the sweep."""
    from lrpose_bench.experiments import record_conflict, run_status
    from lrpose_bench.io import read_json
    from lrpose_bench.records import validate_record

    out: list[str] = []
    for run in runs:
        status = run_status(exp_dir / run.run_id)
        if status == "done":
            path = exp_dir / run.run_id / "record.json"
            try:  # other settings first, then the schema: a record that fails it is not a finished run
                record = read_json(path, "result record")
                why = record_conflict(run, record, dataset_folder)
                if why is None:
                    validate_record(record, str(path))
            except (ValueError, OSError, AttributeError) as exc:
                why = f"it is not a valid record ({exc})"
            if why:
                fail(f"{path} does not match run {run.run_id}: {why}; use another --out or remove that folder")
        out.append(status)
    return out


def _runs(n: int) -> str:
    """``"1 run"`` / ``"n runs"``."""
    return f"{n} run" if n == 1 else f"{n} runs"


def _print_plan(exp: Any, runs: list[Any], statuses: list[str], exp_dir: Path, data: str | None) -> None:
    """The plan: the runs as the file declares them (method + options), then one row per concrete run
    (id = name-backbone-HxW-seed) with the published AP for that setting and its status."""
    from rich.table import Table

    console.print(f"[bold]{exp.name}[/]: {exp.title}", highlight=False)
    if exp.paper_table:
        console.print(f"reproduces: {exp.paper_table}", highlight=False)
    specs = Table(title="runs", title_justify="left", expand=False)
    specs.add_column("name", no_wrap=True)
    specs.add_column("method", no_wrap=True)
    specs.add_column("options", overflow="fold", min_width=20)
    specs.add_column("backbone x res x seeds", overflow="fold", min_width=12)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for run in runs:
        groups.setdefault((run.name, run.method, run.describe_options()), []).append(run)
    for (name, method, options), members in groups.items():
        bbs = ",".join(dict.fromkeys(r.backbone or "(default)" for r in members))
        ress = ",".join(dict.fromkeys(r.resolution for r in members))
        nseeds = len(set(r.seed for r in members))
        specs.add_row(name, method, options or "-", f"{bbs} x {ress} x {nseeds}")
    console.print(specs)

    table = Table(title="plan", title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("run id", overflow="fold", min_width=20)
    table.add_column("paper AP", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    style = {"done": "green", "resume": "yellow", "retry": "red", "todo": ""}
    paper = _paper_ap(runs, exp.dataset)
    for i, (run, status) in enumerate(zip(runs, statuses), 1):
        ap = f"{paper[run.run_id]:.1f}" if run.run_id in paper else ""
        shown = f"[{style[status]}]{status}[/]" if style[status] else status
        table.add_row(str(i), run.run_id, ap, shown)
    console.print(table)
    done = statuses.count("done")
    profile = runs[0].profile if runs else exp.profile
    console.print(
        f"{_runs(len(runs))}: {done} done, {len(runs) - done} to run ({statuses.count('resume')} resume from a checkpoint, "
        f"{statuses.count('retry')} retry a failed start); "
        f"profile {profile or '(run default)'}; data {data or exp.dataset}; boxes {exp.boxes}; records in {exp_dir}",
        highlight=False,
    )


def _preflight(exp: Any, runs: list[Any], statuses: list[str], data: str | None) -> None:
    """Files every pending run needs (pretrained weights, detections, the data root) exist: else stop now."""
    from lrpose_bench.experiments import ExperimentError

    need: dict[str, str] = {}
    for run, status in zip(runs, statuses):
        if status == "done":
            continue
        args = run.run_args(".", data=data)
        for flag, what in (("--pretrained", "pretrained weights"), ("--det-boxes", "detection results"), ("--sr-weights", "SR weights"),
                           ("--weights", "checkpoint")):
            if flag in args:
                need.setdefault(args[args.index(flag) + 1], f"{what} of run {run.run_id}")
    if data is not None:
        need.setdefault(data, "--data root")
    for path, what in need.items():
        if not Path(path).expanduser().exists():
            raise ExperimentError(f"{exp.path}: {what} not found: {path} (see experiments/README.md)")


def _paper_ap(runs: list[Any], dataset: str) -> dict[str, float]:
    """Published AP (percent) per run id, from results/paper through the report's matcher (if present)."""
    try:
        from lrpose_bench.report.paper import load_paper, match_paper
    except ImportError:
        return {}
    try:
        table = load_paper()
    except ValueError:
        return {}
    name = "coco_val2017" if dataset == "coco" else dataset
    out: dict[str, float] = {}
    for run in runs:
        if getattr(run, "weights", None):  # an imported checkpoint is not the paper's model at that resolution
            continue
        row = match_paper(table, run.method, run.backbone or "", run.resolution, name)
        if row is not None:
            out[run.run_id] = float(row["AP"])
    return out


@dataclass
class _Started:
    """A run of the sweep whose process is going."""

    run: Any
    child: subprocess.Popen
    log_file: Any
    log: Path
    start: float


def _execute(
    exp: Any, runs: list[Any], statuses: list[str], exp_dir: Path, data: str | None, device: str | None, fail_fast: bool,
    parallel: int = 1, threads: int = 0,
) -> list[tuple[str, Path]]:
    """Run each pending run as a subprocess of the real CLI, ``parallel`` at a time (each with ``threads``
    torch threads when > 0); returns ``(run id, log)`` of failures. With ``fail_fast`` no run starts after
    a failure (the ones going finish)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from lrpose_bench.engine.env import usable_cpus

    pending = [(r, s) for r, s in zip(runs, statuses) if s != "done"]
    failures: list[tuple[str, Path]] = []
    if not pending:
        done_text = (f"the run of {exp.name} has a record" if len(runs) == 1
                     else f"all {len(runs)} runs of {exp.name} have records")  # fmt: skip
        console.print(f"Nothing to run: {done_text}.", highlight=False)
        return failures
    log_dir = exp_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads > 0:
        env["OMP_NUM_THREADS"] = str(threads)  # eval-only runs (no --threads option) and any OpenMP library
    if parallel > 1:
        cores = usable_cpus()
        over = f"; {parallel} x {threads} threads > {cores} cores: they will compete" if parallel * threads > cores else ""
        console.print(f"{min(parallel, len(pending))} runs at a time, {threads} torch thread(s) each ({cores} cores){over}",
                      highlight=False)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    queue = list(pending)
    going: list[_Started] = []
    stop = False
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(exp.name, total=len(runs), completed=len(runs) - len(pending))
        try:
            while going or (queue and not stop):
                while queue and not stop and len(going) < parallel:
                    run, status = queue.pop(0)
                    started = _start(run, status, exp_dir, log_dir, data, device, threads, env, progress, task)
                    if started is None:
                        failures.append((run.run_id, log_dir / f"{run.run_id}.log"))
                        stop = stop or fail_fast
                    else:
                        going.append(started)
                    progress.update(task, description=f"{exp.name}: {', '.join(g.run.run_id for g in going) or '-'}")
                if not going:
                    continue
                done = _wait_any(going)
                going.remove(done)
                if not _finish(done, exp, exp_dir, progress, task):
                    failures.append((done.run.run_id, done.log))
                    stop = stop or fail_fast
        except KeyboardInterrupt:
            progress.stop()
            _stop_runs([(g.child, g.run.run_id) for g in going])
            raise typer.Exit(130) from None
        finally:
            for g in going:
                g.log_file.close()
    return failures


def _start(run: Any, status: str, exp_dir: Path, log_dir: Path, data: str | None, device: str | None, threads: int,
           env: dict[str, str], progress: Any, task: Any) -> _Started | None:
    """Start one run (``None``: it could not start; already reported and counted)."""
    from lrpose_bench.engine.runlock import folder_is_locked
    from lrpose_bench.experiments import set_aside

    prefix = [*RUN_PREFIX[:-1], getattr(run, "command", "run")]  # eval-only runs (weights): lrpose eval
    cmd = [sys.executable, *prefix, *child_args(run, exp_dir, data, device, status == "resume", threads)]
    log = log_dir / f"{run.run_id}.log"
    holder = folder_is_locked(exp_dir / run.run_id)
    if holder is not None:  # a live run (e.g. of another sweep) owns the folder: never move it away
        busy = f"{exp_dir / run.run_id} is in use by another run ({holder})"
        log.write_text(busy + "\n", encoding="utf-8")
        progress.console.print(f"[red]failed[/] {run.run_id}: {busy}", highlight=False, markup=False)
        progress.advance(task)
        return None
    if status == "retry":
        moved = set_aside(exp_dir / run.run_id)
        progress.console.print(f"moved the folder of a failed attempt to {moved}", highlight=False)
    fh = open(log, "w", encoding="utf-8")
    fh.write("$ " + shlex.join(cmd) + "\n")
    fh.flush()
    try:
        child = start_run(cmd, fh, env)
    except BaseException:
        fh.close()
        raise
    return _Started(run, child, fh, log, time.monotonic())


#: Seconds between looks at the runs of a parallel sweep.
POLL_S: float = 0.5


def _wait_any(going: list[_Started]) -> _Started:
    """The first of ``going`` whose process has ended (waits for it)."""
    if len(going) == 1:
        going[0].child.wait()
        return going[0]
    while True:
        for g in going:
            if g.child.poll() is not None:
                return g
        time.sleep(POLL_S)


def _finish(done: _Started, exp: Any, exp_dir: Path, progress: Any, task: Any) -> bool:
    """Report an ended run: ``True`` when it wrote a valid record."""
    from lrpose_bench.records import read_record

    done.log_file.close()
    run, rc, seconds = done.run, done.child.returncode, time.monotonic() - done.start
    record_path = exp_dir / run.run_id / "record.json"
    progress.advance(task)
    if rc != 0 or not record_path.is_file():
        why = f"exit code {rc}" if rc != 0 else "no record written"
        progress.console.print(f"[red]failed[/] {run.run_id} ({why}, {seconds:.0f} s); log: {done.log}", highlight=False)
        progress.console.print(_tail(done.log), highlight=False, markup=False)
        return False
    try:
        record = read_record(record_path)
    except (ValueError, OSError) as exc:
        progress.console.print(f"[red]failed[/] {run.run_id} (its record is not valid: {exc})", highlight=False)
        return False
    tag = record.get("experiment")
    if tag != exp.name:
        progress.console.print(f"[yellow]warning[/]: {record_path} is tagged {tag!r}, not {exp.name!r}", highlight=False)
    ap = record.get("stats", {}).get("AP")
    ap_text = f"AP {100 * ap:.1f}" if isinstance(ap, (int, float)) else "AP ?"
    progress.console.print(f"[green]done[/] {run.run_id}: {ap_text} in {seconds:.0f} s", highlight=False)
    return True


def _tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log, indented."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join("    " + t for t in text)


def _report(runs_dir: Path, experiment: str, fmt: str, out_dir: Path) -> bool:
    """``lrpose report`` for the experiment through helper E's Python API (skipped with a note if absent);
    returns False when the report could not be written (the sweep then exits 1)."""
    try:
        from lrpose_bench.report import write_report  # type: ignore[attr-defined]
    except ImportError:
        console.print("note: lrpose report is not available (lrpose_bench.report.write_report); report skipped.", highlight=False)
        return True
    try:
        written = write_report(runs_dir, experiment, fmt, out_dir)
    except (ValueError, OSError, KeyError) as exc:
        from lrpose_bench.errors import describe_os_error

        why = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        err_console.print(f"[red]error[/]: report not written: {why}", highlight=False)
        return False
    where = ", ".join(str(p) for p in written) if isinstance(written, (list, tuple)) and written else str(written or out_dir)
    console.print(f"report for {experiment} written: {where}", highlight=False)
    return True


#: Seconds a sweep waits, after Ctrl-C, for its run to save a resumable checkpoint and stop.
STOP_GRACE_S: float = 300.0


def start_run(cmd: list[str], log: Any, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start one run of a sweep: output to ``log``; in its own process group (the sweep alone takes the
    terminal's Ctrl-C and passes it on once); told the sweep's pid, so that it stops, saving a resumable
    checkpoint, if the sweep dies (see :func:`lrpose_bench.cli.common.die_with_parent`)."""
    from lrpose_bench.cli.common import SWEEP_PARENT_ENV

    child_env = {**(env if env is not None else os.environ), SWEEP_PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)


def _stop_run(child: subprocess.Popen, run_id: str) -> None:
    """After Ctrl-C: pass it on to the run, wait for its checkpoint (Ctrl-C again: kill it now)."""
    _stop_runs([(child, run_id)])


def _stop_runs(children: list[tuple[subprocess.Popen, str]]) -> None:
    """After Ctrl-C: pass it on to every run going, wait for their checkpoints (Ctrl-C again: kill them now)."""
    import signal

    if not children:
        return
    err_console.print(
        f"interrupted during {', '.join(run_id for _, run_id in children)}: waiting for "
        f"{'it' if len(children) == 1 else 'them'} to save a resumable checkpoint (Ctrl-C again to kill "
        f"{'it' if len(children) == 1 else 'them'})",
        highlight=False,
    )
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        for child, _ in children:
            child.send_signal(signal.SIGINT)
        for child, _ in children:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        for child, _ in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    err_console.print("run the same command again to continue.", highlight=False)
