"""End to end: `lrpose run` on the tiny embedded fixture with tiny settings, for every method that runs on
it without external weights; the record validates and the run folder holds what records.py promises.
Also the command's one-line errors and the non-finite-loss stop."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.keypoints import KEYPOINT_NAMES
from lrpose_bench.records import COCO_STAT_NAMES, read_record

runner = CliRunner()
TINY = ["--epochs", "2", "--batch-size", "8", "--workers", "0", "--hp", "eval_batch_size=16"]


def _run(args: list[str]) -> object:
    result = runner.invoke(app, ["run", *args])
    return result


@pytest.mark.slow
@pytest.mark.parametrize("method", ["heatmap", "cal_mgm", "udp", "simcc"])
def test_run_writes_a_valid_record(method: str, tiny_embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = _run(["--method", method, "--res", "64x48", "--data", str(tiny_embedded), "--backbone", "tiny",
                   "--profile", "quick", *TINY, "--out", str(out), "--experiment", "e2e"])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = out / f"{method}-64x48-tiny-s0"
    record = read_record(run_dir / "record.json")  # validates the schema
    assert record["method"]["name"] == method and record["experiment"] == "e2e"
    assert record["resolution"] == "64x48" and record["input_size"] == [48, 64]
    assert record["profile"] == "quick" and record["hparams"]["epochs"] == 2 and record["hparams"]["batch_size"] == 8
    assert record["boxes"] == "gt" and record["dataset"]["root"] == str(tiny_embedded)
    assert record["dataset"]["train_instances"] > 0 and record["dataset"]["val_instances"] > 0
    assert set(record["stats"]) >= set(COCO_STAT_NAMES)
    assert all(0.0 <= record["stats"][k] <= 1.0 for k in COCO_STAT_NAMES)
    assert list(record["per_joint_error_px"]) == list(KEYPOINT_NAMES)
    assert record["mean_error_px"] > 0 and record["train_images_per_s"] > 0 and record["eval_seconds"] > 0
    assert record["versions"]["torch"] == torch.__version__
    assert record["cost"]["model"]["params"] > 0 and record["skipped_images"] == 0
    assert sum(s["epochs"] for s in record["stages"]) == 2
    # predictions: one COCO result per val instance (GT boxes; OKS-NMS keeps distinct people)
    preds = json.loads((run_dir / "predictions.json").read_text())
    assert 0 < len(preds) <= record["dataset"]["val_instances"]
    assert len(preds[0]["keypoints"]) == 3 * len(KEYPOINT_NAMES)
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["loss"]) > 0 for r in rows)
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    types = record["error_types"]["overall"]  # good / jitter / inversion / swap / miss over labelled joints
    assert list(types) == ["good", "jitter", "inversion", "swap", "miss"] and sum(types.values()) == pytest.approx(1.0)
    assert "AP50" in result.output  # the table
    if method == "cal_mgm":
        assert [s["stage"] for s in record["stages"]] == ["coarse", "mgm"]
        assert record["stages"][1]["facts"]["mgm"] == "on"
        assert (run_dir / "method.json").is_file()
    if method in ("heatmap", "cal_mgm", "udp"):  # heatmap-based: coarse errors for the offset plot
        npz = np.load(run_dir / "coarse_errors.npz")
        assert npz["errors"].shape == (record["dataset"]["val_instances"], 17, 2)
        assert npz["valid"].shape == (record["dataset"]["val_instances"], 17) and npz["valid"].any()


@pytest.mark.slow
def test_second_run_gets_a_suffixed_folder(tiny_embedded: Path, tmp_path: Path) -> None:
    args = ["--method", "dark", "--res", "64x48", "--data", str(tiny_embedded), "--backbone", "tiny", "--epochs", "1",
            "--batch-size", "16", "--workers", "0", "--hp", "max_val_instances=4", "--no-flip", "--out", str(tmp_path)]  # fmt: skip
    for _ in range(2):
        result = _run(args)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dark-64x48-tiny-s0", "dark-64x48-tiny-s0-2"]
    record = read_record(tmp_path / "dark-64x48-tiny-s0-2" / "record.json")
    assert record["hparams"]["flip_test"] is False and record["dataset"]["val_instances"] == 4
    # an explicit --run-id names the folder: an existing one is an error, never a silent "-2"
    result = _run([*args, "--run-id", "dark-64x48-tiny-s0"])
    assert result.exit_code == 1
    assert "--run-id dark-64x48-tiny-s0:" in result.output and "exists; pass --resume" in result.output


@pytest.mark.slow
def test_nonfinite_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    tiny_embedded: Path, tmp_path: Path
) -> None:
    # epoch 1 trains normally; from epoch 2 the lr is multiplied by 1e30, so the weights blow up.
    result = _run(["--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded), "--backbone", "tiny",
                   "--epochs", "2", "--batch-size", "16", "--workers", "0", "--hp", "lr_steps=1",
                   "--hp", "lr_factor=1e30", "--out", str(tmp_path), "--run-id", "boom"])  # fmt: skip
    assert result.exit_code == 3, result.output
    flat = " ".join(result.output.split())
    assert "loss became" in flat and "at epoch 2/2, step 2/" in flat and "holds 1 finished epoch(s)" in flat
    assert "Traceback" not in result.output
    ckpt = torch.load(tmp_path / "boom" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (tmp_path / "boom" / "record.json").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--method", "nope", "--res", "64x48"], 1, "unknown method 'nope'; valid methods: heatmap, dark"),
        (["--method", "heatmap", "--res", "64by48"], 2, "HxW"),
        (["--method", "heatmap", "--res", "64x48", "--backbone", "resnet7"], 1, "unknown backbone 'resnet7'; valid backbones:"),
        (["--method", "heatmap", "--res", "64x48", "--hp", "lrr=1"], 1, "unknown hyper-parameter 'lrr' in --hp; valid keys: epochs"),
        (["--method", "heatmap", "--res", "64x48", "--sr", "srresnet"], 1, "--sr: method 'heatmap' has no option 'sr'"),
        (["--method", "heatmap", "--res", "64x48", "--set", "bogus=1"], 1, "method 'heatmap' has no option 'bogus'"),
        (["--method", "heatmap", "--res", "64x48", "--profile", "slow"], 1, "valid profiles: paper, quick"),
    ],
)
def test_run_errors_are_one_line(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    result = _run([*args, "--out", str(tmp_path)])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_resume_without_checkpoint_is_an_error(tiny_embedded: Path, tmp_path: Path) -> None:
    result = _run(["--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded), "--resume", "--run-id", "x",
                   "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 1
    assert "--resume: no checkpoint at" in " ".join(result.output.split())


@pytest.mark.slow
def test_bf16_autocast_runs_on_the_cpu(tiny_embedded: Path, tmp_path: Path) -> None:
    # the AMP code path without a GPU: bf16 autocast in training and evaluation, float32 decoding
    result = _run(["--method", "cal", "--set", "network=shared", "--res", "64x48", "--data", str(tiny_embedded),
                   "--backbone", "tiny", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--amp", "bf16",
                   "--hp", "max_train_instances=8", "--hp", "max_val_instances=8", "--out", str(tmp_path),
                   "--run-id", "bf16"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = read_record(tmp_path / "bf16" / "record.json")
    assert record["hparams"]["amp"] == "bf16" and np.isfinite(record["mean_error_px"])
    ckpt = torch.load(tmp_path / "bf16" / "checkpoints" / "last.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())  # master weights


@pytest.mark.slow
def test_bench_train_compiled_reduce_overhead_runs_on_cpu(tiny_embedded: Path) -> None:
    """The CUDA-graph setting (``torch.compile`` mode "reduce-overhead") trains end to end on the CPU, where
    inductor compiles without graphs: the option's plumbing and the step marking run here; the graphs
    themselves only on a GPU (benchmarks/cuda_check.sh, steps graphs-*)."""
    result = runner.invoke(app, ["bench", "train", "--data", str(tiny_embedded), "--method", "heatmap", "--res", "64x48",
                                 "--steps", "1", "--warmup", "1", "--batch-size", "4", "--workers", "0", "--threads", "1",
                                 "--train-profile", "quick", "--compile", "--compile-mode", "reduce-overhead"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "compiled (reduce-overhead)" in result.output
    rate = [ln for ln in result.output.splitlines() if ln.strip().startswith("compute only")][0]
    assert float(rate.split()[2]) > 0


@pytest.mark.slow
def test_bench_train_prints_throughput_and_profile(tiny_embedded: Path) -> None:
    result = runner.invoke(app, ["bench", "train", "--data", str(tiny_embedded), "--method", "cal", "--res", "64x48",
                                 "--steps", "1", "--warmup", "1", "--batch-size", "4", "--workers", "0", "--profile",
                                 "--train-profile", "quick"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cal + tiny at 64x48, batch 4, amp off" in result.output
    assert ", channels-last:" in result.output  # the quick profile's memory format, as `lrpose run` trains
    for line in ("training", "data loading"):
        rate = [ln for ln in result.output.splitlines() if ln.strip().startswith(line)][0]
        assert float(rate.split()[1 if line == "training" else 2]) > 0
    assert "Self CPU" in result.output  # the profiler table
