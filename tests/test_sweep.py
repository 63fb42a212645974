"""``lrpose sweep``: plans, bad files, --print-commands, and a tiny real sweep end to end (CliRunner)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lrpose_bench.data.spec import embedded_dir
from lrpose_bench.cli.app import app
from lrpose_bench.experiments import expand, load_experiment

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT_FILES = sorted((REPO / "experiments").glob("*.toml"))
WIDE = {"COLUMNS": "200"}  # keep rich from folding run ids in the captured plan

runner = CliRunner()

TINY = """\
name = "tiny_sweep"
title = "two tiny runs"

[settings]
backbone = "tiny"
profile = "quick"
resolutions = ["64x48"]
seeds = 1
hparams = { epochs = 1, batch_size = 8, workers = 0, eval_batch_size = 16, warmup_steps = 0 }

[[runs]]
name = "heatmap"
method = "heatmap"

[[runs]]
name = "udp"
method = "udp"
"""


def sweep(*args: str) -> "typer.testing.Result":
    return runner.invoke(app, ["sweep", *args], env=WIDE)


def _run_command() -> "typer.core.TyperCommand":
    group = typer.main.get_command(app)
    assert "run" in group.commands, "lrpose run is not registered"
    return group.commands["run"]


# ---------------------------------------------------------------------------------------------- plans
@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.stem)
def test_dry_run_prints_plan_of_every_file(path: Path, tmp_path: Path) -> None:
    result = sweep(str(path), "--dry-run", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    runs = expand(load_experiment(path))
    assert f"{len(runs)} runs: 0 done, {len(runs)} to run" in result.output
    for run in runs:
        assert run.run_id in result.output
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_dry_run_by_name_with_filters() -> None:
    result = runner.invoke(app, ["sweep", "embedded", "--dry-run", "--only", "cal,udp_released", "--seeds", "1"], env=WIDE)
    assert result.exit_code == 0, result.output
    # "cal" names a run: only that run, not the other runs of method cal (cal_shared, cal_off01, ...)
    assert "4 runs: 0 done, 4 to run" in result.output
    for run_id in ("cal-tiny-64x48-s0", "cal-tiny-128x96-s0", "udp_released-tiny-64x48-s0", "udp_released-tiny-128x96-s0"):
        assert run_id in result.output
    assert "cal_shared-tiny" not in result.output and "udp-tiny" not in result.output and "-s1" not in result.output


def test_dry_run_shows_done_runs(tmp_path: Path) -> None:
    path = tmp_path / "tiny_sweep.toml"
    path.write_text(TINY)
    run_dir = tmp_path / "runs" / "tiny_sweep" / "udp-tiny-64x48-s0"
    run_dir.mkdir(parents=True)
    from test_report import make_record  # a record that follows the schema: only such a record counts as done

    record = make_record("udp-tiny-64x48-s0", method="udp", backbone="tiny", profile="quick", experiment="tiny_sweep")
    record["dataset"]["root"] = str(embedded_dir())
    (run_dir / "record.json").write_text(json.dumps(record))
    result = sweep(str(path), "--dry-run", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert "2 runs: 1 done, 1 to run" in result.output


# ---------------------------------------------------------------------------------------------- bad input
BAD = [
    ('method = "udp"', 'method = "udpp"', 17, "runs[udp].method", "unknown method 'udpp'"),
    ('title = "two tiny runs"', 'title = "two tiny runs"\ncolor = "red"', 3, "color", "unknown key"),
    ('resolutions = ["64x48"]', 'resolutions = ["64x4B"]', 7, "settings.resolutions", "'64x4B' is not of the form HxW"),
]


@pytest.mark.parametrize("old,new,line,key,fragment", BAD, ids=["unknown-method", "unknown-key", "bad-resolution"])
def test_bad_file_fails_before_any_run(tmp_path: Path, old: str, new: str, line: int, key: str, fragment: str) -> None:
    path = tmp_path / "tiny_sweep.toml"
    path.write_text(TINY.replace(old, new, 1))
    out = tmp_path / "runs"
    result = sweep(str(path), "--out", str(out))
    assert result.exit_code != 0
    text = " ".join(result.output.split())  # undo any wrapping
    assert f"{path}, line {line}, key {key!r}" in text, text
    assert fragment in text
    assert not out.exists()


def test_other_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "tiny_sweep.toml"
    path.write_text(TINY)
    result = sweep(str(path), "--only", "simcc", "--dry-run")
    assert result.exit_code == 1 and "--only 'simcc' matches no run" in result.output
    result = sweep(str(path), "--profile", "slow", "--dry-run")
    assert result.exit_code == 2 and "--profile 'slow'" in result.output
    result = sweep(str(tmp_path / "nope.toml"))
    assert result.exit_code == 1 and "experiment file not found" in result.output
    coco = REPO / "experiments" / "lowres_128x96.toml"
    result = sweep(str(coco), "--print-commands")
    assert result.exit_code == 1 and "pass --data PATH" in result.output


def test_existing_record_of_other_settings_stops_the_sweep(tmp_path: Path) -> None:
    path = tmp_path / "tiny_sweep.toml"
    path.write_text(TINY)
    run_dir = tmp_path / "runs" / "tiny_sweep" / "heatmap-tiny-64x48-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "record.json").write_text(json.dumps(
        {"method": {"name": "heatmap", "options": {}}, "resolution": "64x48", "seed": 0, "profile": "paper", "backbone": "tiny"}
    ))
    result = sweep(str(path), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1
    assert "its profile is 'paper', this sweep wants 'quick'" in " ".join(result.output.split())
    assert not (tmp_path / "runs" / "tiny_sweep" / "logs").exists()  # nothing ran


# ---------------------------------------------------------------------------------------------- commands
@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.stem)
def test_print_commands_parse_back_into_lrpose_run(path: Path, tmp_path: Path) -> None:
    command = _run_command()
    result = runner.invoke(app, ["sweep", str(path), "--print-commands", "--data", "/data/coco", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    runs = expand(load_experiment(path))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(runs)
    for line, run in zip(lines, runs):
        argv = shlex.split(line)
        assert argv[:2] == ["lrpose", run.command]
        if run.command == "eval":  # an eval-only run (a checkpoint tested at this resolution)
            assert argv[argv.index("--weights") + 1] == str(run.weights["file"])
            assert argv[argv.index("--method") + 1] == run.method and argv[argv.index("--res") + 1] == run.resolution
            continue
        params = command.make_context("run", argv[2:]).params  # the real option parser of `lrpose run`
        assert params["method"] == run.method
        assert params["res"] in (run.resolution, tuple(reversed([int(v) for v in run.resolution.split("x")])))
        assert params["seed"] == run.seed
        assert params["run_id"] == run.run_id
        assert params["experiment"] == path.stem
        assert Path(params["out"]) == tmp_path / path.stem
        assert str(params["data"]) == "/data/coco"
        assert params["resume"] is False
        assert (params["backbone"] or None) == run.backbone


def test_print_commands_skip_done_and_resume_from_checkpoints(tmp_path: Path) -> None:
    _run_command()
    path = tmp_path / "tiny_sweep.toml"
    path.write_text(TINY)
    exp_dir = tmp_path / "runs" / "tiny_sweep"
    (exp_dir / "heatmap-tiny-64x48-s0" / "checkpoints").mkdir(parents=True)
    (exp_dir / "heatmap-tiny-64x48-s0" / "checkpoints" / "last.pt").write_bytes(b"")
    (exp_dir / "udp-tiny-64x48-s0").mkdir()
    from test_report import make_record  # a record that follows the schema: only such a record counts as done

    record = make_record("udp-tiny-64x48-s0", method="udp", backbone="tiny", profile="quick", experiment="tiny_sweep")
    record["dataset"]["root"] = str(embedded_dir())
    (exp_dir / "udp-tiny-64x48-s0" / "record.json").write_text(json.dumps(record))
    result = runner.invoke(app, ["sweep", str(path), "--print-commands", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    argv = shlex.split(lines[0])
    assert argv[argv.index("--run-id") + 1] == "heatmap-tiny-64x48-s0"
    assert argv[-1] == "--resume"
    assert "--data" not in argv  # embedded dataset


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path: Path, tiny_embedded: Path) -> None:
    # One real run (a subprocess of the real CLI), chosen with --only; the other run of the file stays pending.
    path = tmp_path / "tiny_sweep.toml"
    path.write_text(TINY)
    out, tables = tmp_path / "runs", tmp_path / "tables"
    args = [str(path), "--only", "udp", "--data", str(tiny_embedded), "--out", str(out), "--report-dir", str(tables),
            "--report-format", "markdown"]  # fmt: skip
    result = sweep(*args)
    assert result.exit_code == 0, result.output
    run_id = "udp-tiny-64x48-s0"
    record_path = out / "tiny_sweep" / run_id / "record.json"
    assert record_path.is_file(), result.output
    mtime, record = record_path.stat().st_mtime_ns, json.loads(record_path.read_text())
    assert record["experiment"] == "tiny_sweep" and record["run_id"] == run_id and record["method"]["name"] == "udp"
    assert record["hparams"]["epochs"] == 1
    assert f"done {run_id}: AP" in result.output and "1/1" in result.output
    assert not (out / "tiny_sweep" / "heatmap-tiny-64x48-s0").exists()
    report = tables / "tiny_sweep.md"
    assert report.is_file() and "report for tiny_sweep written" in result.output
    assert "udp" in report.read_text()

    again = sweep(*args)
    assert again.exit_code == 0, again.output
    assert "Nothing to run: the run of tiny_sweep has a record." in again.output
    assert "1 run: 1 done, 0 to run" in again.output
    assert record_path.stat().st_mtime_ns == mtime
    everything = sweep(*args[:1], *args[3:], "--dry-run")
    assert "2 runs: 1 done, 1 to run" in everything.output, everything.output
