"""``lrpose plot offsets|resolution|oracle|training|predictions``: the series each figure draws (returned by
the plot functions), that the files exist, are non-blank and the right size, and that bad input fails clearly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from test_report import make_record, put
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.method import METHODS
from lrpose_bench.records import write_record
from lrpose_bench.report.figures import (
    OFFSETS_FIGSIZE,
    check_oracle_results,
    fit_gaussian,
    gaussian_size_fractions,
    load_coarse_errors,
    plot_offsets,
    plot_oracle,
    plot_resolution,
    plot_training,
    size_fractions,
)
from lrpose_bench.report.offset_weight import offset_weight_mass
from lrpose_bench.report.registry import aggregate, load_records
from lrpose_bench.report.registry import ReportError
from lrpose_bench.report.style import METHOD_STYLES, PNG_DPI, method_style

runner = CliRunner()

MGM = {
    "n_components": 2,
    "means": [[0.2, -0.1], [-0.6, 0.5]],
    "covariances": [[[0.09, 0.03], [0.03, 0.06]], [[0.5, -0.1], [-0.1, 0.3]]],
    "weights": [0.7, 0.3],
    "units": "heatmap px",
    "scope": "epoch",
    "n_samples": 1600,
}


def make_run(folder: Path, mgm: dict | None = MGM, n: int = 120, k: int = 17) -> Path:
    """A finished CAL+MGM run folder: record.json, coarse_errors.npz (heatmap px) and method.json."""
    rng = np.random.default_rng(0)
    errors = rng.multivariate_normal([0.1, -0.05], [[0.3, 0.05], [0.05, 0.2]], size=(n, k))
    valid = rng.random((n, k)) < 0.8
    folder.mkdir(parents=True)
    np.savez(folder / "coarse_errors.npz", errors=errors, valid=valid)
    if mgm is not None:
        (folder / "method.json").write_text(json.dumps({"mgm": mgm}))
    write_record(folder, make_record(folder.name, method="cal_mgm", resolution="128x96"))
    return folder


def png_stats(path: Path) -> tuple[tuple[int, int], float]:
    image = mpimg.imread(path)
    return image.shape[:2], float(image[..., :3].std())


def test_fit_gaussian_by_hand() -> None:
    mean, cov = fit_gaussian(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]))
    np.testing.assert_allclose(mean, [1.0, 1.0])
    np.testing.assert_allclose(cov, [[1.0, 0.0], [0.0, 1.0]])  # maximum likelihood: divide by N
    _, cov = fit_gaussian(np.array([[0.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(cov, [[0.25, 0.25], [0.25, 0.25]])


def test_size_bins_by_hand() -> None:
    # lengths 0, 0.5 (a 3-4-5 triangle scaled), 1.2 and 5 -> bins [0,.5) [.5,1) [1,1.5) [1.5,2) [2,3) [3,inf)
    fractions = size_fractions(np.array([[0.0, 0.0], [0.3, 0.4], [1.2, 0.0], [3.0, 4.0]]))
    np.testing.assert_allclose(fractions, [0.25, 0.25, 0.25, 0.0, 0.0, 0.25])
    # isotropic unit Gaussian: P(r < 0.5) = 1 - exp(-0.5^2 / 2) (Rayleigh)
    expected = gaussian_size_fractions(np.zeros(2), np.eye(2))
    assert expected[0] == pytest.approx(1 - math.exp(-0.125), abs=0.004)
    assert expected.sum() == pytest.approx(1.0)


@pytest.mark.slow
def test_plot_offsets_mgm_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "cal_mgm-128x96-s0")
    out = tmp_path / "figures"
    result = runner.invoke(app, ["plot", "offsets", "--run", str(run / "record.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "offset-loss weight per joint (sum over the heatmap, mean of 4096 sub-pixel positions): stage 1 6.2" in line
    assert "stage 2 (MGM)" in line and "on the nearest pixel" in line
    assert "[mixture: scope epoch, 1600 errors]" in line  # the whole summary, not a reassembly of its numbers
    png, pdf = out / "offsets_cal_mgm-128x96-s0.png", out / "offsets_cal_mgm-128x96-s0.pdf"
    size, spread = png_stats(png)
    assert size == (round(OFFSETS_FIGSIZE[1] * PNG_DPI), round(OFFSETS_FIGSIZE[0] * PNG_DPI))
    assert spread > 0.05
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000

    # the same errors without an MGM: a different figure (the components and mixture are drawn only with one)
    plain = make_run(tmp_path / "runs" / "plain", mgm=None)
    result = runner.invoke(app, ["plot", "offsets", "--run", str(plain), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "offset-loss weight" not in result.output
    a, b = mpimg.imread(png), mpimg.imread(out / "offsets_plain.png")
    assert a.shape == b.shape and np.abs(a - b).mean() > 1e-3

    # a record whose options this version cannot rebuild: the figure, without the per-stage weight
    old = make_run(tmp_path / "runs" / "old")
    record = json.loads((old / "record.json").read_text())
    record["method"]["options"]["removed_option"] = 1
    (old / "record.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match=r"offset-loss weight per stage left out: .*removed_option"):
        result = plot_offsets(old, tmp_path / "old_figures")
    assert len(result) == 2 and "offset_weight_stage1" not in result.series  # png and pdf


@pytest.mark.slow
def test_plot_offsets_series(tmp_path: Path) -> None:
    """The drawn series: the single Gaussian fitted to the run's errors, the size bins, the 2-D histogram."""
    run = make_run(tmp_path / "runs" / "mgm")
    errors = load_coarse_errors(run)
    series = plot_offsets(run, tmp_path / "figures").series
    mean, cov = fit_gaussian(errors)
    np.testing.assert_allclose(series["mean"], mean)
    np.testing.assert_allclose(series["cov"], cov)
    np.testing.assert_allclose(series["observed_pct"], 100.0 * size_fractions(errors))
    assert int(series["n"]) == len(errors) > 1000
    # the histogram spans at least the central 99 % of the errors; its edges are symmetric about 0
    assert 0.99 * len(errors) <= series["hist2d"].sum() <= len(errors)
    np.testing.assert_allclose(series["edges"], -series["edges"][::-1])
    np.testing.assert_allclose(series["mgm_weights"], MGM["weights"])
    np.testing.assert_allclose(series["mgm_means"], MGM["means"])
    mass = offset_weight_mass(run)  # the MGM diagnostic, for the run's method and resolution
    assert float(series["offset_weight_stage1"]) == pytest.approx(mass.stage1)
    assert float(series["offset_weight_stage2"]) == pytest.approx(mass.stage2)
    assert mass.stage2 < mass.stage1  # the fixture's mixture is narrow: sd 0.3-0.7 px
    assert 0 < float(series["nearest_share_stage1"]) < float(series["nearest_share_stage2"]) <= 1
    assert "mgm_weights" not in plot_offsets(make_run(tmp_path / "runs" / "plain", mgm=None), tmp_path / "f2").series


def _error_line(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.startswith("error:")
    return result.output.replace("\n", "")


def test_plot_offsets_bad_input(tmp_path: Path) -> None:
    out = str(tmp_path / "figures")
    assert "run not found" in _error_line(["plot", "offsets", "--run", str(tmp_path / "nope"), "--out", out])
    (tmp_path / "empty").mkdir()
    assert "coarse_errors.npz not found" in _error_line(["plot", "offsets", "--run", str(tmp_path / "empty"), "--out", out])
    bad = dict(MGM, means=[[0.0, 0.0]])
    run = make_run(tmp_path / "badmgm", mgm=bad)
    message = _error_line(["plot", "offsets", "--run", str(run), "--out", out])
    assert "method.json" in message and "'mgm'" in message and "(1, 2)" in message
    run = make_run(tmp_path / "units", mgm=dict(MGM, units="input px"))
    assert "mgm.units" in _error_line(["plot", "offsets", "--run", str(run), "--out", out])
    run = tmp_path / "arrays"
    run.mkdir()
    np.savez(run / "coarse_errors.npz", errors=np.zeros((3, 17)), valid=np.ones((3, 17), bool))
    assert "(N,K,2)" in _error_line(["plot", "offsets", "--run", str(run), "--out", out])


def test_plot_resolution_from_records(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for res, gain in (("64x48", 0.0), ("128x96", 0.2), ("256x192", 0.3)):
        for method, base in (("heatmap", 0.3), ("cal_mgm", 0.5)):
            for seed in range(2):
                put(runs, make_record(f"{method}-{res}-{seed}", method=method, resolution=res, seed=seed, ap=base + gain + 0.02 * seed))
    out = tmp_path / "figures"
    result = runner.invoke(app, ["plot", "resolution", "--runs", str(runs), "--out", str(out), "--experiment", "exp"])
    assert result.exit_code == 0, result.output
    _, spread = png_stats(out / "resolution_exp.png")
    assert spread > 0.05 and (out / "resolution_exp.pdf").stat().st_size > 0
    series = plot_resolution(aggregate(load_records(runs)), tmp_path / "again", "exp").series
    (key,) = [k for k in series if k.endswith("|Heatmap")]
    pixels, ap, std = series[key]
    np.testing.assert_allclose(pixels, [48 * 64, 96 * 128, 192 * 256])
    np.testing.assert_allclose(ap, [31.0, 51.0, 61.0])  # mean of the two seeds (+0 and +2 AP points)
    np.testing.assert_allclose(std, [math.sqrt(2.0)] * 3)
    assert len(series) == 2
    assert "experiments found: exp" in _error_line(["plot", "resolution", "--runs", str(runs), "--experiment", "x", "--out", str(out)])


@pytest.mark.slow
def test_plot_oracle_from_json(tmp_path: Path) -> None:
    results = {
        res: {m: {"AP": 0.5 + 0.1 * i + 0.02 * j, "mean_px_error": 1.0 / (i + 1)} for j, m in enumerate(("heatmap", "udp", "mystery"))}
        for i, res in enumerate(("128x96", "64x48", "256x192"))
    }
    saved = tmp_path / "oracle.json"
    saved.write_text(json.dumps(results))
    out = tmp_path / "figures"
    result = runner.invoke(app, ["plot", "oracle", "--from-json", str(saved), "--out", str(out)])
    assert result.exit_code == 0, result.output
    _, spread = png_stats(out / "oracle.png")
    assert spread > 0.05 and (out / "oracle.pdf").exists()
    series = plot_oracle(results, tmp_path / "again").series
    np.testing.assert_allclose(series["udp/pixels"], [48 * 64, 96 * 128, 192 * 256])
    np.testing.assert_allclose(series["udp/AP"], [100 * (0.6 + 0.02), 100 * (0.5 + 0.02), 100 * (0.7 + 0.02)])
    np.testing.assert_allclose(series["mystery/mean_px_error"], [1 / 2, 1 / 1, 1 / 3])

    results["64x48"]["udp"]["AP"] = 72.3  # percent where [0, 1] is expected
    saved.write_text(json.dumps(results))
    assert "'64x48.udp.AP' is 72.3" in _error_line(["plot", "oracle", "--from-json", str(saved), "--out", str(out)])
    assert "do not apply" in _error_line(["plot", "oracle", "--from-json", str(saved), "--res", "64x48", "--out", str(out)])
    with pytest.raises(ReportError, match="'96x' is not HxW|expected 'HxW'"):
        check_oracle_results({"96x": {"udp": {"AP": 0.5}}})


def test_method_styles_fixed_and_distinct() -> None:
    assert set(METHODS) <= set(METHOD_STYLES)
    colors = [s.color for s in METHOD_STYLES.values()]
    markers = [s.marker for s in METHOD_STYLES.values()]
    assert len(set(colors)) == len(colors) and len(set(markers)) == len(markers)
    extras = ["a_codec", "b_codec"]
    assert method_style("b_codec", extras) == method_style("b_codec", extras)
    assert method_style("a_codec", extras).color != method_style("b_codec", extras).color
    assert method_style("a_codec", extras).color not in colors


# ------------------------------------------------------------------------------------------------
# lrpose plot training
# ------------------------------------------------------------------------------------------------
LOG = """epoch,stage,lr,loss_heatmap,loss_offset,loss,images_per_s,seconds
1,coarse,0.002,0.004,0.002,0.0035,200,5
2,coarse,0.002,0.003,0.0015,0.0026,210,5
3,mgm,0.002,0.0025,0.0012,0.0021,205,5
4,mgm,0.0002,0.002,0.001,0.0017,190,6
"""


@pytest.mark.slow
def test_plot_training_series(tmp_path: Path) -> None:
    """Loss terms, lr and AP per epoch of two runs overlaid: the series are the log.csv columns."""
    a = tmp_path / "runs" / "cal_mgm-s0"
    a.mkdir(parents=True)
    (a / "log.csv").write_text(LOG)
    write_record(a, make_record(a.name, method="cal_mgm", ap=0.61))
    b = tmp_path / "runs" / "heatmap-s0"  # a run that recorded validation AP per epoch, and no record
    b.mkdir()
    (b / "log.csv").write_text("epoch,stage,lr,loss_heatmap,loss,AP\n1,main,0.001,0.01,0.01,0.20\n2,main,0.001,0.008,0.008,\n3,main,0.001,0.006,0.006,0.45\n")
    out = tmp_path / "figures"
    result = plot_training([a, b], out)
    series = result.series
    np.testing.assert_allclose(series["cal_mgm-s0/epoch"], [1, 2, 3, 4])
    np.testing.assert_allclose(series["cal_mgm-s0/loss"], [0.0035, 0.0026, 0.0021, 0.0017])
    np.testing.assert_allclose(series["cal_mgm-s0/loss_offset"], [0.002, 0.0015, 0.0012, 0.001])
    np.testing.assert_allclose(series["cal_mgm-s0/lr"], [0.002, 0.002, 0.002, 0.0002])
    assert float(series["cal_mgm-s0/final_AP"]) == pytest.approx(61.0)
    np.testing.assert_allclose(series["heatmap-s0/AP"], [20.0, np.nan, 45.0])
    assert "heatmap-s0/loss_offset" not in series and "heatmap-s0/final_AP" not in series
    assert [p.name for p in result] == ["training_cal_mgm-s0_vs_1.png", "training_cal_mgm-s0_vs_1.pdf"]
    _, spread = png_stats(out / "training_cal_mgm-s0_vs_1.png")
    assert spread > 0.05

    cli = runner.invoke(app, ["plot", "training", "--run", str(a), "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    assert (out / "training_cal_mgm-s0.png").is_file() and (out / "training_cal_mgm-s0.pdf").is_file()
    (tmp_path / "nolog").mkdir()
    assert "log.csv not found" in _error_line(["plot", "training", "--run", str(tmp_path / "nolog"), "--out", str(out)])
    (tmp_path / "nolog" / "log.csv").write_text("step,loss\n1,0.1\n")
    assert "needs an 'epoch' column" in _error_line(["plot", "training", "--run", str(tmp_path / "nolog"), "--out", str(out)])


# ------------------------------------------------------------------------------------------------
# lrpose plot predictions
# ------------------------------------------------------------------------------------------------
def _prediction_run(root: Path, data: Path) -> tuple[Path, dict[str, int]]:
    """A finished run on ``data`` (GT boxes) whose predictions.json holds the ground truth, except for one
    person with the left and right wrists swapped and one person predicted far away."""
    from lrpose_bench.data import resolve_dataset

    doc = json.loads((data / "annotations" / "person_keypoints_val2017.json").read_text())
    anns = [a for a in doc["annotations"] if not a.get("iscrowd") and max(a["keypoints"][2::3]) > 0 and a["area"] > 0]
    kps = {a["id"]: np.asarray(a["keypoints"], float).reshape(17, 3) for a in anns}
    both = [a for a in anns if kps[a["id"]][9, 2] > 0 and kps[a["id"]][10, 2] > 0]
    spread = {a["id"]: np.linalg.norm(kps[a["id"]][9, :2] - kps[a["id"]][10, :2]) / math.sqrt(a["area"]) for a in both}
    inverted = max(spread, key=spread.get)
    far = next(a["id"] for a in anns if a["id"] != inverted)
    results = []
    for a in anns:
        pred = kps[a["id"]].copy()
        pred[:, 2] = 0.9
        if a["id"] == inverted:
            pred[[9, 10], :2] = pred[[10, 9], :2]
        if a["id"] == far:
            pred[:, :2] = [[-500.0, -500.0]] * 17
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": pred.ravel().tolist(), "score": 0.9})
    run = root / "heatmap-64x48-s0"
    run.mkdir(parents=True)
    (run / "predictions.json").write_text(json.dumps(results))
    record = make_record(run.name, method="heatmap", resolution="64x48", dataset="tiny")
    record["dataset"] |= {"root": str(data), "hash": resolve_dataset(data).content_hash(), "val_instances": len(anns)}
    write_record(run, record)
    return run, {"inverted": inverted, "far": far, "persons": len(anns)}


@pytest.mark.slow
def test_plot_predictions_series(tiny_embedded: Path, tmp_path: Path) -> None:
    from lrpose_bench.evaluation.error_types import ERROR_TYPES
    from lrpose_bench.report.predictions import plot_predictions

    run, facts = _prediction_run(tmp_path / "runs", tiny_embedded)
    out = tmp_path / "figures"
    worst = plot_predictions(run, out, n=facts["persons"], kind="worst", data=tiny_embedded, full=1)
    s = worst.series
    assert int(s["paired"]) == facts["persons"] and int(s["unmatched"]) == 0
    assert s["ann_id"][0] == facts["far"] and s["oks"][0] < 0.01
    assert np.all(np.diff(s["oks"]) >= 0) and s["oks"][-1] == pytest.approx(1.0)
    inverted = int(np.flatnonzero(s["ann_id"] == facts["inverted"])[0])
    assert s["codes"][inverted][9] == s["codes"][inverted][10] == ERROR_TYPES.index("inversion")
    labelled = s["gt_crop"][..., 2] > 0
    assert s["type_counts"].sum() == labelled.sum()  # every labelled joint of every person has a type
    assert s["type_counts"][ERROR_TYPES.index("good")] == labelled.sum() - labelled[0].sum() - 2
    # exact predictions sit exactly on the ground truth in crop px, inside the 48x64 crop
    exact = np.isclose(s["oks"], 1.0)
    assert exact.sum() == facts["persons"] - 2
    np.testing.assert_allclose(s["pred_crop"][exact][labelled[exact]], s["gt_crop"][exact][labelled[exact]][:, :2], atol=1e-9)
    np.testing.assert_array_equal(s["crop_size"], [48, 64])
    inside = s["gt_crop"][exact][labelled[exact]][:, :2]
    assert inside.min() >= -0.5 and inside[:, 0].max() <= 47.5 and inside[:, 1].max() <= 63.5
    names = [p.name for p in worst]
    stem = "predictions_heatmap-64x48-s0_worst"
    assert names == [f"{stem}.png", f"{stem}.pdf", f"{stem}_full.png", f"{stem}_full.pdf"]
    _, spread = png_stats(out / f"{stem}.png")
    assert spread > 0.05

    inversions = plot_predictions(run, out, n=5, kind="inversions", data=tiny_embedded, full=0).series
    assert list(inversions["ann_id"]) == [facts["inverted"]]  # the only person with an inversion
    random = plot_predictions(run, out, n=3, kind="random", data=tiny_embedded, full=0, seed=1).series
    assert len(random["index"]) == 3 and np.all(np.diff(random["index"]) > 0)

    cli = runner.invoke(app, ["plot", "predictions", "--run", str(run), "--data", str(tiny_embedded), "--n", "4",
                              "--kind", "random", "--full", "0", "--out", str(out)])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert (out / "predictions_heatmap-64x48-s0_random.png").is_file()
    args = ["plot", "predictions", "--run", str(run), "--data", str(tiny_embedded), "--out", str(out)]
    assert "--kind 'best' is not one of worst, random, inversions" in _error_line([*args, "--kind", "best"])
    record = json.loads((run / "record.json").read_text())
    write_record(run, record | {"boxes": "det:dets.json"})
    assert "ground-truth boxes" in _error_line(args)
    write_record(run, record | {"dataset": record["dataset"] | {"hash": "0000"}})
    assert "hash 0000" in _error_line(args)
    write_record(run, record | {"dataset": record["dataset"] | {"root": str(tmp_path / "gone")}})
    assert "pass --data ROOT" in _error_line(["plot", "predictions", "--run", str(run), "--out", str(out)])
