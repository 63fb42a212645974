"""`lrpose eval`: a results file scores exactly as pycocotools' COCOeval does (all 10 stats), and a saved
run re-evaluates from its checkpoint to the numbers in its record."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.records import COCO_STAT_NAMES

runner = CliRunner()


def _perturbed_results(gt_file: Path) -> list[dict]:
    """GT keypoints moved by a deterministic, instance-dependent amount; every third person dropped."""
    doc = json.loads(gt_file.read_text())
    rng = np.random.default_rng(3)
    out = []
    for i, ann in enumerate(a for a in doc["annotations"] if a.get("num_keypoints", 0) > 0):
        if i % 3 == 2:
            continue
        kp = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        xy = kp[:, :2] + rng.normal(0.0, 1.0 + i % 5, size=(kp.shape[0], 2))
        flat = np.concatenate([xy, np.full((kp.shape[0], 1), 0.9)], 1).reshape(-1)
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": flat.tolist(), "score": 1.0 - 0.01 * i})
    return out


def _cocoeval_stats(gt_file: Path, results: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return [float(v) for v in ev.stats]


def test_eval_predictions_equals_pycocotools(tiny_embedded: Path, tmp_path: Path) -> None:
    gt_file = tiny_embedded / "annotations" / "person_keypoints_val2017.json"
    results = _perturbed_results(gt_file)
    pred_file = tmp_path / "p.json"
    pred_file.write_text(json.dumps(results))
    res = runner.invoke(app, ["eval", "--predictions", str(pred_file), "--annotations", str(gt_file), "--json"])
    assert res.exit_code == 0, res.output
    ours = json.loads(res.output)["stats"]
    expected = _cocoeval_stats(gt_file, json.loads(pred_file.read_text()))
    assert [ours[k] for k in COCO_STAT_NAMES] == expected
    assert 0.0 < ours["AP"] < 1.0  # the perturbation makes it a non-trivial case
    table = runner.invoke(app, ["eval", "--predictions", str(pred_file), "--annotations", str(gt_file)])
    assert table.exit_code == 0 and "AP50" in table.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give either --checkpoint RUN, or --predictions"),
        (["--predictions", "x.json"], 2, "--predictions needs --annotations"),
        (["--checkpoint", "nowhere"], 1, "checkpoint not found: nowhere"),
    ],
)
def test_eval_argument_errors(args: list[str], code: int, message: str) -> None:
    res = runner.invoke(app, ["eval", *args])
    assert res.exit_code == code
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output


def test_eval_bad_predictions_file_is_one_line(tiny_embedded: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": 1}]')
    gt_file = tiny_embedded / "annotations" / "person_keypoints_val2017.json"
    res = runner.invoke(app, ["eval", "--predictions", str(bad), "--annotations", str(gt_file)])
    assert res.exit_code == 1 and "lacks field 'category_id'" in res.output


@pytest.mark.slow
def test_eval_checkpoint_reproduces_the_record(tiny_embedded: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "--method", "udp", "--res", "64x48", "--data", str(tiny_embedded), "--backbone",
                              "tiny", "--epochs", "1", "--batch-size", "16", "--workers", "0", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "udp-64x48-tiny-s0"
    record = json.loads((run_dir / "record.json").read_text())
    for target in (run_dir, run_dir / "checkpoints" / "last.pt"):
        again = runner.invoke(app, ["eval", "--checkpoint", str(target), "--json", "--workers", "0"])
        assert again.exit_code == 0, again.output
        data = json.loads(again.output)
        assert data["stats"] == record["stats"]
        assert data["mean_error_px"] == pytest.approx(record["mean_error_px"], rel=1e-12)
        assert data["boxes"] == "gt" and data["instances"] == record["dataset"]["val_instances"]


@pytest.mark.slow
def test_eval_checkpoint_refuses_other_data(tiny_embedded: Path, tmp_path: Path) -> None:
    """A checkpoint is evaluated only on the data it was trained on (annotation content hash)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_embedded, data)
    res = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(data), "--backbone", "tiny",
                              "--epochs", "1", "--batch-size", "16", "--workers", "0", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    ann = data / "annotations" / "person_keypoints_val2017.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["keypoints"][0] += 1.0  # one coordinate moved: other data
    ann.write_text(json.dumps(doc))
    again = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path / "heatmap-64x48-tiny-s0"), "--workers", "0"])
    assert again.exit_code == 1
    assert "was trained on a dataset with hash" in again.output and str(data) in again.output


@pytest.mark.slow
def test_update_record_adds_the_new_evaluation(tiny_embedded: Path, tmp_path: Path) -> None:
    """--update-record rewrites a record's evaluation (here: one made before error types existed)."""
    res = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded), "--backbone",
                              "tiny", "--epochs", "1", "--batch-size", "16", "--workers", "0", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "heatmap-64x48-tiny-s0"
    record = json.loads((run_dir / "record.json").read_text())
    old = dict(record)
    del record["error_types"]
    (run_dir / "record.json").write_text(json.dumps(record))
    refused = runner.invoke(app, ["eval", "--checkpoint", str(run_dir), "--no-flip", "--update-record", "--workers", "0"])
    assert refused.exit_code == 1 and "flip" in refused.output
    assert "error_types" not in json.loads((run_dir / "record.json").read_text())
    again = runner.invoke(app, ["eval", "--checkpoint", str(run_dir), "--update-record", "--workers", "0"])
    assert again.exit_code == 0, again.output
    new = json.loads((run_dir / "record.json").read_text())
    assert new["error_types"] == old["error_types"] and new["stats"] == old["stats"]
    assert new["reevaluated"]["AP_before"] == old["stats"]["AP"]
    assert runner.invoke(app, ["eval", "--predictions", "p.json", "--annotations", "a.json", "--update-record"]).exit_code == 2
