"""Torch CPU threads: the automatic rule, ``--threads`` into the record, ``lrpose sweep --parallel`` splitting
the cores, and ``lrpose bench train`` on a training split smaller than the requested steps (no timings
are asserted)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.engine import env as E
from lrpose_bench.records import read_record

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture
def restore_threads() -> Any:
    """Put torch's thread count back after a test that sets it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    ("cores", "workers", "processes", "busy", "expected"),
    [
        (2, 0, 1, 0.0, 2),  # an idle 2-core machine: both cores
        (2, 0, 1, 0.1, 2),  # a shell, an editor: still idle
        (2, 0, 1, 1.0, 1),  # one other busy process: 1 (a team of 2 would run 3x slower)
        (2, 0, 1, 0.5, 1),
        (2, 2, 1, 0.0, 1),  # the workers take the cores
        (2, 4, 1, 0.0, 1),  # never below 1
        (16, 0, 1, 0.0, E.AUTO_THREADS_CAP),  # capped
        (16, 0, 1, 13.0, 3),  # 13 cores busy elsewhere: the 3 left
        (16, 2, 4, 0.0, 2),  # 4 processes share 16 cores, 2 workers each: 4 - 2
        (1, 0, 1, 0.0, 1),
        (2, 0, 1, None, 2),  # not watched (no /proc): the share of the cores
    ],
)
def test_auto_threads(cores: int, workers: int, processes: int, busy: float | None, expected: int) -> None:
    threads, why = E.auto_threads(cores, workers, processes, busy)
    assert threads == expected
    assert why.startswith(f"{cores} core") and ("busy elsewhere" in why) == (busy is not None)


def test_choice_order_threads_then_env_then_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "usable_cpus", lambda: 2)
    busy = [0.0]
    monkeypatch.setattr(E, "busy_cpus_elsewhere", lambda: busy[0])
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert E.choose_cpu_threads(0, requested=3) == E.ThreadChoice(3, "--threads")
    assert E.choose_cpu_threads(0) == E.ThreadChoice(5, "$OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert E.choose_cpu_threads(0) == E.ThreadChoice(2, "automatic", "2 cores, 0.0 busy elsewhere")
    assert E.choose_cpu_threads(1).threads == 1
    busy[0] = 1.0  # another busy process on the cores
    assert E.choose_cpu_threads(0) == E.ThreadChoice(1, "automatic", "2 cores, 1.0 busy elsewhere")
    busy[0] = None  # no /proc: the share of the cores
    assert E.choose_cpu_threads(0) == E.ThreadChoice(2, "automatic", "2 cores")
    busy[0] = 5.0
    assert E.choose_cpu_threads(2) == E.ThreadChoice(1, "automatic", "2 cores, 2 DataLoader workers")  # not watched
    busy[0] = 2.0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes: split, no watching (siblings are busy)
    assert E.choose_cpu_threads(0) == E.ThreadChoice(1, "automatic", "2 cores, 2 processes")
    with pytest.raises(ValueError, match="--threads"):
        E.choose_cpu_threads(0, requested=-1)


def test_busy_cpus_elsewhere_sees_a_busy_loop() -> None:
    idle_or_not = E.busy_cpus_elsewhere(0.05)
    assert idle_or_not is None or idle_or_not >= 0.0
    loop = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        seen = E.busy_cpus_elsewhere(0.5)
    finally:
        loop.kill()
        loop.wait()
    if seen is not None:  # Linux: the loop holds most of a core (the machine may be busier still)
        assert seen > 0.3


def test_configure_sets_torch_and_the_record_facts(monkeypatch: pytest.MonkeyPatch, restore_threads: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(E, "_ANNOUNCED", set())
    assert E.configure_cpu_threads(torch.device("cpu"), 0, requested=1, announce=True) == 1
    assert torch.get_num_threads() == 1
    facts = E.versions(torch.device("cpu"))
    assert facts["cpu_threads"] == 1 and facts["cpu_threads_source"] == "--threads"
    E.configure_cpu_threads(torch.device("cpu"), 0, requested=1, announce=True)
    assert capsys.readouterr().err.count("torch CPU threads: 1 (--threads)") == 1  # printed once


# ---------------------------------------------------------------------------------------------- lrpose run
@pytest.mark.slow
def test_run_threads_option_lands_in_the_record(tiny_embedded: Path, tmp_path: Path, restore_threads: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "_ANNOUNCED", set())  # announced once per process: forget earlier tests' runs
    result = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded),
                                 "--backbone", "tiny", "--profile", "quick", "--epochs", "1", "--batch-size", "8",
                                 "--workers", "0", "--hp", "eval_batch_size=16", "--hp", "max_val_instances=8",
                                 "--threads", "1", "--out", str(tmp_path), "--run-id", "t1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = read_record(tmp_path / "t1" / "record.json")
    assert record["hparams"]["cpu_threads"] == 1
    assert record["versions"]["cpu_threads"] == 1 and record["versions"]["cpu_threads_source"] == "--threads"
    assert "torch CPU threads: 1 (--threads)" in result.output


# ---------------------------------------------------------------------------------------------- sweep
TINY = """\
name = "tiny_threads"
title = "three tiny runs"

[settings]
backbone = "tiny"
profile = "quick"
resolutions = ["64x48"]
seeds = 1
hparams = { epochs = 1, batch_size = 8, workers = 0 }

[[runs]]
name = "heatmap"
method = "heatmap"

[[runs]]
name = "udp"
method = "udp"

[[runs]]
name = "dark"
method = "dark"
hparams = { cpu_threads = 1 }
"""


def _commands(tmp_path: Path, *extra: str) -> list[list[str]]:
    path = tmp_path / "tiny_threads.toml"
    path.write_text(TINY)
    result = runner.invoke(app, ["sweep", str(path), "--print-commands", "--out", str(tmp_path / "runs"), *extra])
    assert result.exit_code == 0, result.output
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def _threads_arg(argv: list[str]) -> str | None:
    return argv[argv.index("--threads") + 1] if "--threads" in argv else None


def test_sweep_parallel_splits_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "usable_cpus", lambda: 8)
    assert [_threads_arg(a) for a in _commands(tmp_path)] == [None, None, None]  # one at a time: each run's rule
    # the experiment file's own cpu_threads (the dark run) wins over the split
    assert [_threads_arg(a) for a in _commands(tmp_path, "--parallel", "2")] == ["4", "4", None]
    assert [_threads_arg(a) for a in _commands(tmp_path, "--parallel", "3")] == ["2", "2", None]
    assert [_threads_arg(a) for a in _commands(tmp_path, "--parallel", "16")] == ["1", "1", None]
    assert [_threads_arg(a) for a in _commands(tmp_path, "--parallel", "2", "--threads", "3")] == ["3", "3", None]
    dark = _commands(tmp_path)[2]
    assert "cpu_threads=1" in dark


def test_sweep_parallel_runs_n_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool with stand-in runs: each child writes a valid record for its run id."""
    from test_report import make_record

    from lrpose_bench.cli import sweep_cmd

    monkeypatch.setattr(E, "usable_cpus", lambda: 4)
    seen: list[tuple[list[str], str | None]] = []

    def fake_start(cmd: list[str], log: Any, env: dict[str, str] | None = None) -> subprocess.Popen:
        seen.append((cmd, (env or {}).get("OMP_NUM_THREADS")))
        run_id, out = cmd[cmd.index("--run-id") + 1], Path(cmd[cmd.index("--out") + 1])
        method = cmd[cmd.index("--method") + 1]
        record = make_record(run_id, method=method, backbone="tiny", profile="quick", experiment="tiny_threads")
        from lrpose_bench.data.spec import embedded_dir

        record["dataset"]["root"] = str(embedded_dir())
        target = out / run_id / "record.json"
        code = (f"import pathlib, time; time.sleep(0.3); p = pathlib.Path({str(target)!r}); "
                f"p.parent.mkdir(parents=True, exist_ok=True); p.write_text({json.dumps(record)!r})")
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)

    monkeypatch.setattr(sweep_cmd, "start_run", fake_start)
    path = tmp_path / "tiny_threads.toml"
    path.write_text(TINY)
    result = runner.invoke(app, ["sweep", str(path), "--parallel", "2", "--out", str(tmp_path / "runs"), "--no-report"],
                           env=WIDE)
    assert result.exit_code == 0, result.output
    assert "2 runs at a time, 2 torch thread(s) each (4 cores)" in result.output
    assert result.output.count("done ") == 3 and "3/3" in result.output
    assert len(seen) == 3 and all(env == "2" for _, env in seen)
    assert [_threads_arg(cmd) for cmd, _ in seen] == ["2", "2", None]


# ---------------------------------------------------------------------------------------------- bench train
@pytest.mark.slow
def test_bench_train_repeats_or_refuses_a_small_split(minicoco_root: Path) -> None:
    # minicoco's training split: 5 images, fewer than 32 crops: one batch per epoch
    args = ["bench", "train", "--data", str(minicoco_root), "--res", "64x48", "--steps", "2", "--warmup", "1",
            "--workers", "0"]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert re.search(r"the training split has 1 batch\(es\) of 32 \(\d+ crops\) per epoch", result.output)
    assert "re-iterated (training 3 passes, data loading 3)" in result.output
    for label in ("training", "compute only", "data loading"):
        assert any(line.strip().startswith(label) for line in result.output.splitlines()), label
    assert "profile paper, 0 workers" in result.output  # real data: `lrpose run`'s profile

    refused = runner.invoke(app, [*args, "--no-repeat"], env=WIDE)
    assert refused.exit_code == 1
    assert "fewer than the 1 warm-up + 2 timed steps" in refused.output


@pytest.mark.slow
def test_bench_train_defaults_are_those_of_lrpose_run(minicoco_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                      restore_threads: None) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(E, "busy_cpus_elsewhere", lambda: 0.0)  # what the machine is doing is not the point
    result = runner.invoke(app, ["bench", "train", "--data", str(minicoco_root), "--res", "64x48", "--steps", "1",
                                 "--warmup", "0"], env=WIDE)  # fmt: skip
    assert result.exit_code == 0, result.output
    workers = min(4, E.usable_cpus())  # the paper profile's 4 workers, capped to the usable CPUs
    expected = E.choose_cpu_threads(4)
    assert f"profile paper, {workers} worker" in result.output
    assert f"torch threads {expected.describe()}" in result.output
