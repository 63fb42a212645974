"""The quantisation-free methods (RLE, IPR, DSNT, Debias-IPR) through the real commands: `lrpose methods`,
`lrpose run` on the tiny embedded fixture, one-line `--set` errors, `lrpose oracle`, the offset plot's
"not a grid method", and the experiment files that hold their rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.records import read_record

runner = CliRunner()
NEW = ("rle", "ipr", "dsnt", "debias_ipr")
REPO = Path(__file__).resolve().parents[1]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_methods_lists_them_with_options() -> None:
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(NEW) <= set(data)
    assert data["rle"]["options"] == {"residual": True, "q_distribution": "laplace", "flow_layers": 6, "flow_hidden": 64,
                                      "pool": "trunk"}  # fmt: skip
    assert data["ipr"]["options"] == {"beta": 1.0}
    assert data["dsnt"]["options"] == {"beta": 1.0, "sigma": 1.0, "js_weight": 1.0}
    assert data["debias_ipr"]["options"]["beta"] == 10.0
    assert data["rle"]["description"].startswith("RLE")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "rle", "--set", "q_distribution=cauchy"], "option q_distribution='cauchy' is not one of laplace, gaussian"),
        (["--method", "rle", "--set", "residual=maybe"], "takes true/false"),
        (["--method", "rle", "--set", "flow_layers=0"], "flow_layers=0 must be >= 1"),
        (["--method", "rle", "--set", "pool=c4"], "pool='c4' is not one of trunk, features"),
        (["--method", "rle", "--backbone", "hrnet_w32"], "backbone 'hrnet_w32' has no single deepest trunk map"),
        (["--method", "ipr", "--set", "beta=-1"], "beta=-1.0 must be a finite number > 0"),
        (["--method", "dsnt", "--set", "sigma=0"], "sigma=0.0 must be > 0"),
        (["--method", "debias_ipr", "--set", "beta=hot"], "beta"),
    ],
)
def test_bad_set_values_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", *args, "--res", "64x48", "--out", str(tmp_path)])
    assert result.exit_code in (1, 2), result.output
    assert message in _flat(result.output)
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    assert not any(tmp_path.iterdir())


def test_experiment_files_hold_the_rows() -> None:
    from lrpose_bench.experiments import expand, load_experiment

    runs = expand(load_experiment(REPO / "experiments" / "embedded_regression.toml"))
    assert {(r.method, r.resolution) for r in runs} == {(m, res) for m in NEW for res in ("64x48", "128x96")}
    assert {r.backbone for r in runs} == {"tiny"} and {r.seed for r in runs} == {0}
    assert sorted(r.resolution for r in runs if r.method == "rle" and r.options == {"pool": "features"}) == ["128x96", "64x48"]
    sweep = expand(load_experiment(REPO / "experiments" / "resolution_sweep.toml"))
    assert {r.resolution for r in sweep if r.method in NEW} == {"64x48", "128x96", "192x144", "256x192"}
    assert set(NEW) <= {r.method for r in sweep}
    assert {r.backbone for r in sweep if r.method == "rle"} == {"resnet50"}  # MMPose's RLE; HRNet has no C5 to pool


@pytest.mark.slow
def test_oracle_scores_them_near_100(coco_sample_root: Path) -> None:
    from lrpose_bench.oracle import run_oracle

    ann = coco_sample_root / "annotations" / "person_keypoints_val2017.json"
    for res in ((48, 64), (96, 128)):
        rows = run_oracle(ann, res, list(NEW))
        assert list(rows) == list(NEW)
        assert rows["rle"]["AP"] == pytest.approx(1.0) and rows["rle"]["mean_px_error"] < 1e-3
        for name in ("ipr", "dsnt", "debias_ipr"):  # joints beyond the crop are clamped onto its pixel hull
            assert rows[name]["AP"] > 0.98, (res, name, rows[name])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rle", "debias_ipr"])
def test_run_end_to_end(method: str, tiny_embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = runner.invoke(app, [
        "run", "--method", method, "--res", "64x48", "--data", str(tiny_embedded), "--backbone", "tiny",
        "--epochs", "1", "--batch-size", "8", "--workers", "0", "--hp", "eval_batch_size=16",
        "--hp", "max_val_instances=8", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = out / f"{method}-64x48-tiny-s0"
    record = read_record(run_dir / "record.json")
    assert record["method"]["name"] == method and 0.0 <= record["stats"]["AP"] <= 1.0
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    if method == "rle":
        # the flow is part of the model's parameters (trained, checkpointed), and there is no grid to plot
        import torch

        ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
        assert any(".flow." in k for k in ckpt["model"])
        assert not (run_dir / "coarse_errors.npz").exists()
        plot = runner.invoke(app, ["plot", "offsets", "--run", str(run_dir), "--out", str(tmp_path / "fig")])
        assert plot.exit_code == 1 and "method 'rle' is not a grid method" in _flat(plot.output)
    else:
        assert (run_dir / "coarse_errors.npz").is_file()  # the heatmap's integer argmax
