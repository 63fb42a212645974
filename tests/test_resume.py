"""Ctrl-C and --resume: a run interrupted (mid-epoch or at an epoch's end) and resumed with
`lrpose run --resume` ends with bit-identical weights, optimizer state, log and AP to an uninterrupted run
with the same seed (CPU). cal_mgm is used so the resume also crosses a stage boundary (MGM fit)."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.engine.runner import RunSpec, run
from lrpose_bench.engine.trainer import TrainingInterrupted

HP = {"epochs": 2, "batch_size": 8, "workers": 0, "eval_batch_size": 16}


def _spec(data: Path, out: Path, run_id: str) -> RunSpec:
    return RunSpec(method="cal_mgm", resolution="64x48", data=str(data), backbone="tiny", profile="quick",
                   hparams=dict(HP), out=str(out), run_id=run_id)  # fmt: skip


def _ctrl_c_after(epoch: int, step: int):
    def hook(e: int, s: int) -> None:
        if (e, s) == (epoch, step):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: the trainer's handler takes it

    return hook


def _resume_cli(data: Path, out: Path, run_id: str, workers: int) -> None:
    # Bit-identical needs the same torch thread count as the first run (float sums in another order
    # differ in the last bit): pin it, since the default is "cores - workers".
    threads = torch.get_num_threads()
    result = CliRunner().invoke(app, [
        "run", "--method", "cal_mgm", "--res", "64x48", "--data", str(data), "--backbone", "tiny", "--profile", "quick",
        "--epochs", "2", "--batch-size", "8", "--workers", str(workers), "--hp", "eval_batch_size=16",
        "--hp", f"cpu_threads={threads}", "--out", str(out), "--run-id", run_id, "--resume",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output


def _assert_same_run(a: Path, b: Path) -> None:
    ca = torch.load(a / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)
    assert ca["epoch"] == cb["epoch"] == 2 and ca["global_step"] == cb["global_step"]
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for pid, state in ca["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], cb["optimizer"]["state"][pid]["exp_avg"])
    assert ca["method"].keys() == cb["method"].keys()
    rows_a = list(csv.DictReader((a / "log.csv").open()))
    rows_b = list(csv.DictReader((b / "log.csv").open()))
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    ra = torch.load(a / "checkpoints" / "last.pt", weights_only=True)["stage_facts"]
    assert ra == cb["stage_facts"]


@pytest.fixture(scope="module")
def full_run(tiny_embedded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    result = run(_spec(tiny_embedded, out, "full"))
    assert result is not None
    return result.run_dir


@pytest.mark.slow
def test_ctrl_c_mid_epoch_then_resume_is_bit_identical(full_run: Path, tiny_embedded: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingInterrupted) as info:
        run(_spec(tiny_embedded, tmp_path, "cut"), on_step=_ctrl_c_after(0, 2))
    message = str(info.value)
    # the flag raised during step 2 is seen after step 3 (flags travel with the step, as under DDP)
    assert "interrupted at epoch 1/2, step 3/6" in message and "--resume --run-id cut" in message
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"], ckpt["global_step"]) == (0, 3, 3)
    assert not (tmp_path / "cut" / "record.json").exists()
    _resume_cli(tiny_embedded, tmp_path, "cut", workers=0)
    _assert_same_run(full_run, tmp_path / "cut")
    rec_a = (full_run / "record.json").read_text()
    rec_b = (tmp_path / "cut" / "record.json").read_text()
    import json

    assert json.loads(rec_a)["stats"] == json.loads(rec_b)["stats"]


@pytest.mark.slow
def test_ctrl_c_at_epoch_end_then_resume_with_workers_is_bit_identical(
    full_run: Path, tiny_embedded: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainingInterrupted, match="interrupted after epoch 1/2"):
        run(_spec(tiny_embedded, tmp_path, "cut"), on_step=_ctrl_c_after(0, 5))
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)
    assert [f["stage"] for f in ckpt["stage_facts"]] == ["coarse"]  # the MGM stage begins after the resume
    # augmentation is a function of (seed, epoch, index): worker processes do not change the batches
    _resume_cli(tiny_embedded, tmp_path, "cut", workers=2)
    _assert_same_run(full_run, tmp_path / "cut")


def test_resume_with_a_different_hyper_parameter_is_refused(full_run: Path, tiny_embedded: Path) -> None:
    result = CliRunner().invoke(app, [
        "run", "--method", "cal_mgm", "--res", "64x48", "--data", str(tiny_embedded), "--backbone", "tiny",
        "--profile", "quick", "--epochs", "3", "--batch-size", "8", "--workers", "0",
        "--out", str(full_run.parent), "--run-id", full_run.name, "--resume",
    ])  # fmt: skip
    assert result.exit_code == 1
    assert "--resume: hyper-parameter epochs=3 differs from the checkpoint's 2" in " ".join(result.output.split())
