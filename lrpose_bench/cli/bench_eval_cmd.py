"""``lrpose bench eval``: whole-process time and peak memory of scoring a COCO keypoint results file, per
evaluation engine, ``lrpose eval --predictions`` against a plain script of the same library, with the 10
stats checked equal to pycocotools' (the reference) in the same run.

The set is generated (:mod:`lrpose_bench.evaluation.stress`: crowd regions, duplicates, misses, left/right
swaps; deterministic in ``--seed``) into a temporary folder. Every measurement is a fresh child process,
so import cost counts; its peak memory is the child's own ``ru_maxrss`` (``os.wait4``). Figures are
informative, never asserted in tests.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from lrpose_bench.cli.common import UserError, bench_app, console, run_guarded

#: Plain scripts, one per engine: load the annotation file (argv[1]) and the results file (argv[2]) with the
#: library's own API, evaluate keypoints, print ``COCOeval.stats`` as a JSON list (library prints hidden).
PLAIN_SCRIPTS: dict[str, str] = {
    "pycocotools": (
        "from pycocotools.coco import COCO\n"
        "from pycocotools.cocoeval import COCOeval\n"
        "gt = COCO(sys.argv[1]); ev = COCOeval(gt, gt.loadRes(sys.argv[2]), iouType='keypoints')\n"
    ),
    "faster-coco-eval": (
        "from faster_coco_eval import COCO, COCOeval_faster\n"
        "gt = COCO(sys.argv[1]); ev = COCOeval_faster(gt, gt.loadRes(sys.argv[2]), iouType='keypoints')\n"
    ),
    "hotcoco": (
        "from hotcoco import COCO, COCOeval\n"
        "gt = COCO(sys.argv[1]); ev = COCOeval(gt, gt.loadRes(sys.argv[2]), 'keypoints')\n"
    ),
}
_PLAIN_HEAD = "import contextlib, io, json, sys\nwith contextlib.redirect_stdout(io.StringIO()):\n"
_PLAIN_TAIL = "    ev.evaluate(); ev.accumulate(); ev.summarize()\nprint(json.dumps([float(v) for v in ev.stats]))\n"


def plain_script(engine: str) -> str:
    """The plain Python script that scores with ``engine``'s own API (see :data:`PLAIN_SCRIPTS`)."""
    body = "".join("    " + line + "\n" for line in PLAIN_SCRIPTS[engine].splitlines())
    return _PLAIN_HEAD + body + _PLAIN_TAIL


@dataclass
class Row:
    """One measured command: ``kind`` is ``plain`` (the library's own API) or ``lrpose`` (``lrpose eval``)."""

    engine: str
    kind: str
    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)
    stats: list[float | None] | None = None


def run_measured(argv: list[str], workdir: Path) -> tuple[float, float, str]:
    """Run ``argv`` as a fresh process; returns (wall seconds, peak RSS MiB of that process, its stdout).
    A failure is a :class:`UserError` with the end of its stderr."""
    out_path, err_path = workdir / "child.out", workdir / "child.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise UserError(f"benchmark command failed (exit {proc.returncode}): {' '.join(argv[:6])} ...: {' | '.join(tail)}")
    return seconds, usage.ru_maxrss / 1024.0, out_path.read_text()  # ru_maxrss is KiB on Linux


def _plain_stats(stdout: str) -> list[float | None]:
    """A plain script's stats with pycocotools' -1 (no ground truth in that area range) as ``None``, as
    ``lrpose eval --json`` writes them."""
    return [None if v < 0 else float(v) for v in json.loads(stdout)]


def _lrpose_stats(stdout: str) -> list[float | None]:
    from lrpose_bench.records import COCO_STAT_NAMES

    stats = json.loads(stdout)["stats"]
    return [stats[n] for n in COCO_STAT_NAMES]


def bench_eval(
    images: int, seed: int = 0, engines: list[str] | None = None, repeat: int = 3, folder: Path | None = None,
    progress: Any = None,
) -> tuple[list[Row], dict[str, Any]]:
    """Generate the set, then measure the plain pycocotools script (the reference) and, per engine, its plain
    script and ``lrpose eval --predictions --engine E``; ``repeat`` rounds, rows interleaved. Returns the rows
    and facts about the set (persons, results, files)."""
    from lrpose_bench.evaluation.engines import DEFAULT_ENGINE, installed_engines, require_engine
    from lrpose_bench.evaluation.stress import write_stress_set

    chosen = [require_engine(e) for e in engines] if engines else installed_engines()
    with tempfile.TemporaryDirectory(prefix="lrpose-bench-eval-") as tmp:
        work = Path(folder) if folder is not None else Path(tmp)
        ann, pred = write_stress_set(work, images, seed)
        doc = json.loads(ann.read_text())
        facts = {
            "images": len(doc["images"]),
            "persons": sum(1 for a in doc["annotations"] if not a["iscrowd"]),
            "crowd_regions": sum(1 for a in doc["annotations"] if a["iscrowd"]),
            "results": len(json.loads(pred.read_text())),
        }
        rows = [Row(DEFAULT_ENGINE, "plain", [sys.executable, "-c", plain_script(DEFAULT_ENGINE), str(ann), str(pred)])]
        for engine in chosen:
            if engine != DEFAULT_ENGINE:
                rows.append(Row(engine, "plain", [sys.executable, "-c", plain_script(engine), str(ann), str(pred)]))
            rows.append(Row(engine, "lrpose", [sys.executable, "-m", "lrpose_bench.cli.app", "eval", "--predictions",
                                               str(pred), "--annotations", str(ann), "--engine", engine, "--json"]))  # fmt: skip
        for round_ in range(repeat):
            for row in rows:
                if progress is not None:
                    progress(f"round {round_ + 1}/{repeat}: {row.kind} {row.engine}")
                seconds, peak, stdout = run_measured(row.argv, Path(tmp))
                row.seconds.append(seconds)
                row.peak_mib.append(peak)
                stats = _plain_stats(stdout) if row.kind == "plain" else _lrpose_stats(stdout)
                if row.stats is not None and stats != row.stats:
                    raise UserError(f"{row.kind} {row.engine}: the stats changed between rounds ({row.stats} vs {stats})")
                row.stats = stats
    return rows, facts


def rows_as_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    """Median seconds and peak MiB per row, the time relative to the plain pycocotools script, and whether
    all 10 stats equal that script's exactly."""
    ref = rows[0]
    ref_s = statistics.median(ref.seconds)
    out = []
    for row in rows:
        seconds = statistics.median(row.seconds)
        out.append({
            "engine": row.engine, "command": "plain script" if row.kind == "plain" else "lrpose eval",
            "seconds": seconds, "peak_mib": statistics.median(row.peak_mib), "vs_pycocotools": ref_s / seconds,
            "stats_equal": row.stats == ref.stats, "AP": row.stats[0] if row.stats else None,
        })  # fmt: skip
    return out


def register(app: typer.Typer) -> None:  # noqa: ARG001 - the command lives on the shared bench group
    """Add ``eval`` to ``lrpose bench``."""

    @bench_app.command("eval")
    def bench_eval_command(
        images: int = typer.Option(5000, "--images", min=1, help="Images in the generated set (about 2.3 persons each)."),
        seed: int = typer.Option(0, "--seed", min=0, help="Seed of the generated set."),
        engine: Optional[list[str]] = typer.Option(
            None, "--engine", help="Engine to measure (repeatable): pycocotools | faster-coco-eval | hotcoco. Default: "
            "every installed one. The plain pycocotools script is always measured (the reference)."),
        repeat: int = typer.Option(3, "--repeat", min=1, help="Rounds; the table shows medians."),
        keep: Optional[Path] = typer.Option(None, "--keep", help="Write the generated annotations.json and "
                                            "predictions.json into this folder (kept) instead of a temporary one."),
        as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of a table."),
    ) -> None:
        """Time and peak memory of scoring a generated COCO keypoint set, per engine: its plain script and
        `lrpose eval --predictions --engine E`, each a fresh process; all 10 stats checked equal to pycocotools'."""
        from rich.table import Table

        say = None if as_json else (lambda text: console.print(f"[dim]{text}[/dim]", highlight=False))
        rows, facts = run_guarded(bench_eval, images, seed, engine, repeat, keep, say)
        table_rows = rows_as_dicts(rows)
        command = f"lrpose bench eval --images {images} --seed {seed} --repeat {repeat}" + "".join(
            f" --engine {e}" for e in engine or [])
        if as_json:
            typer.echo(json.dumps({"command": command, "set": facts, "rows": table_rows}, indent=2))
            return
        table = Table(title=f"COCO keypoint evaluation, {facts['images']:,} images / {facts['persons']:,} persons "
                            f"({facts['crowd_regions']} crowd regions, {facts['results']:,} results), median of "
                            f"{repeat}")  # fmt: skip
        for name, justify in (("engine", "left"), ("command", "left"), ("seconds", "right"), ("peak MiB", "right"),
                              ("speed-up", "right"), ("equal", "left")):  # fmt: skip
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for r in table_rows:
            table.add_row(r["engine"], r["command"], f"{r['seconds']:.2f}", f"{r['peak_mib']:.0f}",
                          f"{r['vs_pycocotools']:.1f}x", "yes" if r["stats_equal"] else "NO")  # fmt: skip
        console.print(table)
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        console.print(f"speed-up: against the plain pycocotools script; equal: all 10 stats equal to its own (AP "
                      f"{table_rows[0]['AP']:.4f}). Whole processes; peak MiB: the child's peak RSS. "
                      f"{os.cpu_count()} CPUs, load average {load}; python {sys.version.split()[0]}; "
                      f"{_versions(rows)}", highlight=False)  # fmt: skip
        console.print(f"reproduce: {command}", highlight=False, markup=False)
        if not all(r["stats_equal"] for r in table_rows):
            raise typer.Exit(1)


def _versions(rows: list[Row]) -> str:
    """``package version`` of every measured engine."""
    from importlib.metadata import PackageNotFoundError, version

    from lrpose_bench.evaluation.engines import ENGINE_PACKAGES

    out = []
    for engine in dict.fromkeys(r.engine for r in rows):
        package = ENGINE_PACKAGES[engine][1]
        try:
            out.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            out.append(f"{package} (version unknown)")
    return ", ".join(out)


__all__ = ["PLAIN_SCRIPTS", "Row", "bench_eval", "plain_script", "register", "rows_as_dicts", "run_measured"]
