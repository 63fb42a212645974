"""``lrpose plot offsets|resolution|oracle``: the figures exist, are non-blank, the right size, and bad input fails clearly."""

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
    size_fractions,
)
from lrpose_bench.report.registry import ReportError
from lrpose_bench.report.style import METHOD_STYLES, PNG_DPI, method_style

runner = CliRunner()

MGM = {
    "n_components": 2,
    "means": [[0.2, -0.1], [-0.6, 0.5]],
    "covariances": [[[0.09, 0.03], [0.03, 0.06]], [[0.5, -0.1], [-0.1, 0.3]]],
    "weights": [0.7, 0.3],
    "units": "heatmap px",
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


def test_plot_offsets_mgm_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "cal_mgm-128x96-s0")
    out = tmp_path / "figures"
    result = runner.invoke(app, ["plot", "offsets", "--run", str(run / "record.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    png, pdf = out / "offsets_cal_mgm-128x96-s0.png", out / "offsets_cal_mgm-128x96-s0.pdf"
    size, spread = png_stats(png)
    assert size == (round(OFFSETS_FIGSIZE[1] * PNG_DPI), round(OFFSETS_FIGSIZE[0] * PNG_DPI))
    assert spread > 0.05
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000

    # the same errors without an MGM: a different figure (the components and mixture are drawn only with one)
    plain = make_run(tmp_path / "runs" / "plain", mgm=None)
    result = runner.invoke(app, ["plot", "offsets", "--run", str(plain), "--out", str(out)])
    assert result.exit_code == 0, result.output
    a, b = mpimg.imread(png), mpimg.imread(out / "offsets_plain.png")
    assert a.shape == b.shape and np.abs(a - b).mean() > 1e-3


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
    assert "experiments found: exp" in _error_line(["plot", "resolution", "--runs", str(runs), "--experiment", "x", "--out", str(out)])


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
