"""``lrpose data synth`` and ``lrpose data info`` end to end (CliRunner on the real app)."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    for args in (["data", "--help"], ["data", "synth", "--help"], ["data", "info", "--help"], ["data", "show", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output
    assert "byte-identical" in runner.invoke(app, ["data", "synth", "--help"]).output


def test_synth_defaults_are_the_embedded_sizes() -> None:
    import inspect

    from lrpose_bench.cli.data_cmd import synth
    from lrpose_bench.data.synth import DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES

    params = inspect.signature(synth).parameters
    assert (params["train"].default.default, params["val"].default.default) == (DEFAULT_TRAIN_IMAGES, DEFAULT_VAL_IMAGES)


def _png_size(path: Path) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img.shape[1], img.shape[0]


@pytest.mark.slow
def test_show_draws_both_embedded_variants(tmp_path: Path, tiny_embedded: Path, monkeypatch) -> None:
    unmarked = tmp_path / "unmarked"
    res = runner.invoke(app, ["data", "synth", "--out", str(unmarked), "--train", "1", "--val", "4", "--variant", "unmarked"])
    assert res.exit_code == 0 and "(unmarked)" in res.output, res.output
    for root, n in ((tiny_embedded, "4"), (unmarked, "3")):
        out = tmp_path / f"{root.name}.png"
        res = runner.invoke(app, ["data", "show", "--data", str(root), "--n", n, "--res", "64x48", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert f"wrote {out}" in res.output and "crops at 64x48" in res.output
        w, h = _png_size(out)
        assert w >= 800 and h >= 500
    # train split, no crops, default output name in the current folder
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["data", "show", "--data", str(tiny_embedded), "--split", "train", "--n", "2", "--crops", "0"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "data_show_tiny_train_64x48.png").is_file()


@pytest.mark.slow
def test_show_on_a_coco_root(tmp_path: Path, coco_sample_root: Path) -> None:
    out = tmp_path / "coco.png"
    res = runner.invoke(app, ["data", "show", "--data", str(coco_sample_root), "--res", "128x96", "--out", str(out),
                              "--lowres-protocol", "antialias"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "images with persons" in res.output and _png_size(out)[0] > 800


@pytest.mark.slow
def test_show_picks_the_same_images_for_a_seed(tiny_embedded: Path, tmp_path: Path) -> None:
    from lrpose_bench.data.show import show_dataset
    from lrpose_bench.data.spec import resolve_dataset

    spec = resolve_dataset(tiny_embedded)
    a = show_dataset(spec, tmp_path / "a.png", n=2, seed=1, crops_per_image=1)
    b = show_dataset(spec, tmp_path / "b.png", n=2, seed=1, crops_per_image=1)
    c = show_dataset(spec, tmp_path / "c.png", n=2, seed=2, crops_per_image=1)
    assert a.image_ids == b.image_ids and len(a.image_ids) == 2 and a.crops == 2
    assert c.image_ids != a.image_ids or c.available_images <= 2


def test_show_errors_are_one_line(tmp_path: Path, coco_sample_root: Path) -> None:
    cases = [
        (["--data", str(coco_sample_root), "--split", "test"], 2, "--split 'test'"),
        (["--data", str(coco_sample_root), "--split", "train"], 1, "has no train split"),
        (["--data", str(coco_sample_root), "--out", str(tmp_path / "x.jpg")], 1, "ending in .png"),
        (["--data", str(coco_sample_root), "--res", "64"], 2, "64"),
        (["--data", "embedded:dots"], 1, "unknown embedded data variant 'dots'"),
        (["--data", str(tmp_path / "nope")], 1, "dataset root not found"),
    ]
    for args, code, text in cases:
        res = runner.invoke(app, ["data", "show", *args])
        assert res.exit_code == code and text in res.output and "Traceback" not in res.output, (args, res.output)
    res = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "v"), "--variant", "dots"])
    assert res.exit_code == 2 and "--variant 'dots'" in res.output
