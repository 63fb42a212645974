"""The codec oracle (lrpose_bench.oracle) and the `lrpose oracle` / `lrpose methods` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.data import resolve_dataset
from lrpose_bench.method import METHODS, build_method
from lrpose_bench.oracle import ORACLE_KEYS, load_ground_truth, oracle_predictions, run_oracle

runner = CliRunner()
CORE = ["heatmap", "udp", "cal"]  # sr_heatmap is deliberately not relied on here


def test_oracle_on_embedded(tiny_embedded: Path) -> None:
    rows = run_oracle(resolve_dataset(tiny_embedded), (48, 64), CORE)
    assert list(rows) == CORE
    for row in rows.values():
        assert list(row) == list(ORACLE_KEYS)
        assert all(0.0 <= row[k] <= 1.0 for k in ORACLE_KEYS if k != "mean_px_error")
    # at 64x48 the rounded heatmap codec loses accuracy that offsets keep
    assert rows["heatmap"]["AP"] < rows["udp"]["AP"]
    assert rows["heatmap"]["AP"] < rows["cal"]["AP"]
    assert rows["heatmap"]["mean_px_error"] > rows["cal"]["mean_px_error"]


def test_oracle_on_coco_sample(coco_sample_root: Path) -> None:
    rows = run_oracle(resolve_dataset(coco_sample_root), (48, 64), CORE)
    assert rows["heatmap"]["AP"] < rows["udp"]["AP"] and rows["heatmap"]["AP"] < rows["cal"]["AP"]
    assert rows["cal"]["AP"] == pytest.approx(1.0)


def test_cal_oracle_is_exact_for_joints_on_the_map(coco_sample_root: Path) -> None:
    """CAL's targets decode back to the labelled joints (image px) wherever its disc reaches the heatmap."""
    gt = load_ground_truth(coco_sample_root / "annotations" / "person_keypoints_val2017.json")
    method = build_method("cal")
    coords, scores = oracle_predictions(method, gt, (96, 128))
    labelled = gt.keypoints[..., 2] > 0
    assert coords.shape == gt.keypoints.shape[:2] + (2,) and scores.shape == gt.keypoints.shape[:2]
    err = np.linalg.norm(coords - gt.keypoints[..., :2], axis=-1)[labelled]
    assert err.max() < 1e-3  # float32 codec arithmetic, image px


def test_oracle_rejects_unknown_method(coco_sample_root: Path) -> None:
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        run_oracle(resolve_dataset(coco_sample_root), (48, 64), ["nope"])


def test_oracle_cli_json(coco_sample_root: Path) -> None:
    result = runner.invoke(app, ["oracle", "--res", "64x48", "--data", str(coco_sample_root),
                                 "-m", "heatmap", "-m", "cal", "--set", "cal.target=disc", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["heatmap", "cal"]
    assert all(list(row) == list(ORACLE_KEYS) for row in data.values())
    assert data["heatmap"]["AP"] < data["cal"]["AP"]


def test_oracle_cli_table_and_errors(coco_sample_root: Path) -> None:
    result = runner.invoke(app, ["oracle", "--res", "64x48", "--data", str(coco_sample_root), "-m", "udp"])
    assert result.exit_code == 0, result.output
    assert "udp" in result.stdout and "AP75" in result.stdout
    bad = runner.invoke(app, ["oracle", "--res", "64x47", "-m", "cal", "--data", str(coco_sample_root)])
    assert bad.exit_code == 1 and "multiples of the output stride" in bad.output
    bad = runner.invoke(app, ["oracle", "-m", "cal", "--set", "cal.target=blob", "--data", str(coco_sample_root)])
    assert bad.exit_code == 2 and "target='blob'" in bad.output  # a bad option value exits 2


def test_methods_command_lists_every_method() -> None:
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == list(METHODS)
    assert data["cal_mgm"]["options"]["stage_split"] == 0.5
    assert data["cal"]["description"].startswith("CAL")
    table = runner.invoke(app, ["methods", "--verbose"])
    assert "offset_normaliser=1.5" in table.stdout and "cal_mgm" in table.stdout
