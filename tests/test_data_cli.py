"""``lrpose data synth`` and ``lrpose data info`` end to end (CliRunner on the real app)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lrpose_bench.cli.app import app

runner = CliRunner()


def test_synth_writes_refuses_and_forces(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    res = runner.invoke(app, ["data", "synth", "--out", str(out), "--train", "2", "--val", "1", "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "train2017").glob("*.png"))) == 2 and len(list((out / "val2017").glob("*.png"))) == 1
    assert (out / "annotations" / "person_keypoints_val2017.json").is_file()
    res = runner.invoke(app, ["data", "synth", "--out", str(out), "--train", "1", "--val", "1"])
    assert res.exit_code == 1 and "not empty" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["data", "synth", "--out", str(out), "--train", "1", "--val", "1", "--force"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "train2017").glob("*.png"))) == 1


def test_info_prints_counts_table_and_histogram(tiny_embedded: Path) -> None:
    res = runner.invoke(app, ["data", "info", "--data", str(tiny_embedded), "--split", "train"])
    assert res.exit_code == 0, res.output
    assert "images 24" in res.output and "left_shoulder" in res.output and "v=1 (occluded)" in res.output
    assert "persons per image" in res.output and "box size" in res.output


def test_info_errors_are_one_line(tmp_path: Path, coco_sample_root: Path) -> None:
    res = runner.invoke(app, ["data", "info", "--data", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "dataset root not found" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["data", "info", "--data", str(coco_sample_root), "--split", "train"])
    assert res.exit_code == 1 and "has no train split" in res.output
    res = runner.invoke(app, ["data", "info", "--data", str(coco_sample_root), "--split", "test"])
    assert res.exit_code == 1 and "--split 'test'" in res.output
    res = runner.invoke(app, ["data", "info", "--data", str(coco_sample_root)])
    assert res.exit_code == 0 and "images 4" in res.output


def test_help_texts() -> None:
    for args in (["data", "--help"], ["data", "synth", "--help"], ["data", "info", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output
    assert "byte-identical" in runner.invoke(app, ["data", "synth", "--help"]).output


def test_synth_defaults_are_the_embedded_sizes() -> None:
    import inspect

    from lrpose_bench.cli.data_cmd import synth
    from lrpose_bench.data.synth import DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES

    params = inspect.signature(synth).parameters
    assert (params["train"].default.default, params["val"].default.default) == (DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES)
