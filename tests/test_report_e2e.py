"""`lrpose report` and `lrpose plot offsets` on records written by real (tiny) `lrpose run`s."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lrpose_bench.cli.app import app

runner = CliRunner()
TINY = ["--res", "64x48", "--backbone", "tiny", "--epochs", "2", "--batch-size", "16", "--workers", "0",
        "--hp", "eval_batch_size=32", "--experiment", "e2e"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tiny_embedded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    for method, seed in (("heatmap", 0), ("heatmap", 1), ("cal_mgm", 0)):
        epochs = "2" if method == "cal_mgm" else "1"  # CAL + MGM needs an epoch per stage
        result = runner.invoke(app, ["run", "--method", method, "--data", str(tiny_embedded), "--seed", str(seed),
                                     "--out", str(out), *TINY, "--epochs", epochs])  # fmt: skip
        assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_report_tables_from_real_runs(runs: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--runs", str(runs), "--format", "all", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    tex = (tmp_path / "e2e.tex").read_text()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption", "\\label"):
        assert rule in tex
    md = (tmp_path / "e2e.md").read_text()
    assert "heatmap" in md and "cal_mgm" in md
    # heatmap has two seeds: its AP cell is "mean ± std (2)", and the mean is the records' mean
    import json

    aps = [json.loads(p.read_text())["stats"]["AP"] * 100 for p in sorted(runs.glob("heatmap*/record.json"))]
    assert len(aps) == 2
    row = next(line for line in md.splitlines() if line.startswith("|") and "heatmap" in line)
    assert re.search(rf"{np.mean(aps):.1f} ± {np.std(aps, ddof=1):.1f} \(2\)", row), row
    # the markdown form is printed to the terminal too
    assert "heatmap" in result.output


@pytest.mark.slow
def test_plot_offsets_of_a_real_mgm_run(runs: Path, tmp_path: Path) -> None:
    run = next(runs.glob("cal_mgm*"))
    assert (run / "coarse_errors.npz").is_file() and (run / "method.json").is_file()
    result = runner.invoke(app, ["plot", "offsets", "--run", str(run), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    png, pdf = sorted(tmp_path.glob("offsets_*.png")), sorted(tmp_path.glob("offsets_*.pdf"))
    assert len(png) == 1 and len(pdf) == 1 and pdf[0].stat().st_size > 5000
    import matplotlib.image as mpimg

    img = mpimg.imread(png[0])
    assert img.shape[0] > 300 and img.shape[1] > 600 and float(img[..., :3].std()) > 0.05
