"""``lrpose report`` and the report API: records -> mean/std over seeds -> LaTeX/Markdown/CSV beside the paper."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.records import (
    COCO_STAT_NAMES,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    validate_record,
    write_record,
)
from lrpose_bench.report import aggregate, load_records, render_markdown, write_report
from lrpose_bench.report.registry import ReportError, has_budget, method_defaults, option_labels
from lrpose_bench.report.tables import ReportTable, error_caption

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "results" / "paper"
runner = CliRunner()


def make_record(
    run_id: str,
    *,
    method: str = "heatmap",
    options: dict[str, Any] | None = None,
    backbone: str = "hrnet_w32",
    resolution: str = "64x48",
    seed: int = 0,
    ap: float = 0.5,
    experiment: str | None = "exp",
    dataset: str = "coco",
    boxes: str = "gt",
    profile: str = "paper",
    stats: dict[str, float] | None = None,
    inversion: float | None = None,
) -> dict[str, Any]:
    """A valid record with every field of ``records.REQUIRED_FIELDS``; stats derive from ``ap`` unless given."""
    h, w = (int(v) for v in resolution.split("x"))
    all_stats = {name: round(min(1.0, ap + 0.01 * i), 6) for i, name in enumerate(COCO_STAT_NAMES)}
    all_stats["AP"] = ap
    all_stats.update(stats or {})
    record = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "experiment": experiment,
        "method": {"name": method, "options": dict(options or {})},
        "backbone": backbone,
        "resolution": resolution,
        "input_size": [w, h],
        "model_input_size": [w, h],
        "heatmap_size": [w // 4, h // 4],
        "dataset": {"name": dataset, "root": "/data/" + dataset, "hash": "abc123", "train_instances": 10, "val_instances": 5},
        "boxes": boxes,
        "profile": profile,
        "hparams": {"epochs": 1, "lr": 1e-3},
        "seed": seed,
        "stats": all_stats,
        "per_joint_error_px": {"nose": 1.0},
        "mean_error_px": 1.5,
        "train_images_per_s": 100.0,
        "train_seconds": 1.0,
        "eval_seconds": 0.5,
        "versions": {"torch": "x"},
        "git_commit": None,
        "created": "2025-01-01T00:00:00+00:00",
    }
    if inversion is not None:  # keypoint error types: good takes the rest
        overall = {"good": 0.5 - inversion, "jitter": 0.3, "inversion": inversion, "swap": 0.05, "miss": 0.15}
        record["error_types"] = {"overall": overall, "per_joint": {}}
    assert set(REQUIRED_FIELDS) <= set(record)
    return validate_record(record)


def put(runs: Path, record: dict[str, Any]) -> Path:
    return write_record(runs / str(record["experiment"]) / record["run_id"], record)


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    """Experiment ``exp``: heatmap (3 seeds) and cal_mgm (2 seeds) at 64x48, cal_mgm at 128x96 (1 seed) on COCO;
    experiment ``synth``: udp on the embedded dataset."""
    root = tmp_path / "runs"
    for seed, ap in enumerate((0.30, 0.32, 0.34)):
        put(root, make_record(f"hm-{seed}", seed=seed, ap=ap, inversion=0.10 + 0.02 * seed))
    for seed, ap in enumerate((0.60, 0.62)):
        put(root, make_record(f"cal-{seed}", method="cal_mgm", seed=seed, ap=ap))
    put(root, make_record("cal-128", method="cal_mgm", resolution="128x96", ap=0.70))
    put(root, make_record("udp-s", method="udp", experiment="synth", dataset="embedded", ap=0.9))
    return root


def test_make_record_fills_every_required_field() -> None:
    record = make_record("r")
    assert set(record) == set(REQUIRED_FIELDS)


def test_aggregate_mean_std_over_seeds(runs: Path) -> None:
    agg = aggregate(load_records(runs)).set_index(["experiment", "method", "resolution"])
    hm = agg.loc[("exp", "heatmap", "64x48")]
    assert hm["n"] == 3 and hm["seeds"] == "0,1,2"
    assert hm["AP_mean"] == pytest.approx(0.32)
    assert hm["AP_std"] == pytest.approx(0.02)  # sample std (ddof 1) of 0.30, 0.32, 0.34
    cal = agg.loc[("exp", "cal_mgm", "64x48")]
    assert cal["AP_std"] == pytest.approx(math.sqrt(2) / 100)
    single = agg.loc[("exp", "cal_mgm", "128x96")]
    assert single["n"] == 1 and math.isnan(single["AP_std"])
    # ordered by resolution (pixel count) within an experiment
    exp_rows = aggregate(load_records(runs)).query("experiment == 'exp'")
    assert list(exp_rows["resolution"]) == ["64x48", "64x48", "128x96"]
    assert list(exp_rows["method"]) == ["heatmap", "cal_mgm", "cal_mgm"]  # registry order: baselines first


def test_option_labels_name_options_that_vary(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    put(root, make_record("a", method="toy", options={"k": 1, "same": "x"}))
    put(root, make_record("b", method="toy", options={"k": 3, "same": "x"}, seed=1))
    put(root, make_record("c", method="toy", options={"k": 3, "same": "x"}, experiment="other"))
    frame = load_records(root).set_index("run_id")
    assert frame.loc["a", "label"] == "k=1"  # unknown method: no defaults to leave out
    assert frame.loc["b", "label"] == "k=3"
    assert frame.loc["c", "label"] == ""  # nothing varies within experiment "other"
    agg = aggregate(load_records(root))
    assert len(agg.query("experiment == 'exp'")) == 2


def test_budget_labels_keep_budgets_apart(tmp_path: Path) -> None:
    """Runs that differ only in their training budget are separate rows, never seeds of one row."""
    root = tmp_path / "runs"

    def rec(run_id: str, epochs: int | None, resolution: str = "64x48", seed: int = 0, **kw: object) -> dict:
        r = make_record(run_id, method="toy", resolution=resolution, seed=seed, **kw)
        if epochs is None:
            del r["hparams"]["epochs"]  # an older record: no budget to split on
        else:
            r["hparams"]["epochs"] = epochs
        return r

    put(root, rec("short", 6, ap=0.4))
    put(root, rec("short_s1", 6, seed=1, ap=0.42))
    put(root, rec("long", 25, ap=0.7))
    put(root, rec("other_res", 100, resolution="128x96"))  # another resolution's budget: no split
    put(root, rec("k_long", 25, options={"k": 2}, experiment="opt"))
    put(root, rec("k_short", 6, options={"k": 2}, experiment="opt"))
    put(root, rec("k_other", 6, options={"k": 3}, experiment="opt"))
    put(root, rec("old", None, experiment="old"))
    put(root, rec("new", 25, experiment="old", seed=1))
    frame = load_records(root).set_index("run_id")
    assert frame.loc["short", "label"] == frame.loc["short_s1", "label"] == "epochs=6"
    assert frame.loc["long", "label"] == "epochs=25"
    assert frame.loc["other_res", "label"] == ""
    assert frame.loc["k_long", "label"] == "k=2, epochs=25" and frame.loc["k_short", "label"] == "k=2, epochs=6"
    assert frame.loc["k_other", "label"] == "k=3"
    assert frame.loc["old", "label"] == frame.loc["new", "label"] == ""
    agg = aggregate(load_records(root)).query("experiment == 'exp' and resolution == '64x48'").set_index("label")
    assert agg.loc["epochs=6", "n"] == 2 and agg.loc["epochs=6", "AP_mean"] == pytest.approx(0.41)
    assert agg.loc["epochs=25", "n"] == 1
    # what the resolution plot reads to leave budget rows unjoined across resolutions
    assert has_budget("epochs=6") and has_budget("k=2, epochs=25") and has_budget("lr=0.001")
    assert not has_budget("k=2") and not has_budget("") and not has_budget("default") and not has_budget("k=epochs")


def test_option_labels_leave_out_defaults() -> None:
    from lrpose_bench.method import METHODS

    for name in METHODS:
        defaults = method_defaults(name)
        numeric = {k: v for k, v in (defaults or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            break
    else:
        pytest.fail("no registered method has a numeric option")
    key, value = next(iter(numeric.items()))
    other = value + 1
    frame = pd.DataFrame(
        {"experiment": ["e", "e"], "method": [name, name], "options": [{key: value}, {key: other}]}
    )
    assert list(option_labels(frame)) == ["default", f"{key}={other:g}" if isinstance(other, float) else f"{key}={other}"]


def test_report_latex_has_booktabs_values_and_paper(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    result = runner.invoke(
        app, ["report", "--runs", str(runs), "--out", str(out), "--format", "latex", "--experiment", "exp", "--paper", str(PAPER)]
    )
    assert result.exit_code == 0, result.output
    tex = (out / "exp.tex").read_text()
    for token in (r"\begin{table}", r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\label{tab:exp}"):
        assert token in tex
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    # ours: mean ± std (n), best AP in bold; the paper's CAL W32 64x48 number (58.4) and the difference
    assert r"\textbf{61.0 $\pm$ 1.4 (2)}" in tex
    assert r"32.0 $\pm$ 2.0 (3)" in tex
    assert "70.0 (1)" in tex and r"\textbf{70.0" not in tex  # one run: no std; alone at 128x96: no bold
    cal_line = next(line for line in tex.splitlines() if line.startswith(r"cal\_mgm") and "64x48" in line)
    assert "58.4" in cal_line and "$+2.6$" in cal_line and "CAL README" in cal_line
    hm_line = next(line for line in tex.splitlines() if line.startswith("heatmap"))
    assert "29.7" in hm_line and "$+2.3$" in hm_line
    # every body row has as many cells as the column format has columns
    ncols = len(re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex).group(1))
    body = tex[tex.index(r"\midrule") + len(r"\midrule") : tex.index(r"\bottomrule")].strip().splitlines()
    assert len(body) == 3 and all(line.count("&") == ncols - 1 for line in body)
    unescaped = tex.replace(r"\{", "").replace(r"\}", "")
    assert unescaped.count("{") == unescaped.count("}") and tex.count("$") % 2 == 0
    # the LaTeX that was written went to the terminal, and the message says so
    assert r"\textbf{61.0 $\pm$ 1.4 (2)}" in result.stdout and "| Method |" not in result.stdout
    assert "printed the LaTeX above" in result.output.replace("\n", "")
    # the error types caption reads "0.5 <= ks" as \leq (not "$<$=")
    caption = error_caption(ReportTable("exp", pd.DataFrame()), "latex")
    assert r"0.5 $\leq$ ks $<$ 0.85" in caption and "$<$=" not in caption
    assert not (out / "synth.tex").exists()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no LaTeX compiler installed")
def test_report_latex_compiles(runs: Path, tmp_path: Path) -> None:
    [tex] = write_report(runs, "exp", "latex", tmp_path, paper_dir=PAPER)
    doc = tmp_path / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\usepackage[margin=1cm,landscape]{geometry}\n\\begin{document}\n\\input{" + tex.name + "}\n\\end{document}\n"
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_markdown_and_csv(runs: Path, tmp_path: Path) -> None:
    paths = write_report(runs, None, "all", tmp_path, paper_dir=PAPER)
    assert sorted(p.name for p in paths) == ["exp.csv", "exp.md", "exp.tex", "synth.csv", "synth.md", "synth.tex"]
    table = pd.read_csv(tmp_path / "exp.csv")
    hm = table[table["method"] == "heatmap"].iloc[0]
    assert hm["AP_pct_mean"] == pytest.approx(32.0) and hm["AP_pct_std"] == pytest.approx(2.0) and hm["n"] == 3
    assert hm["paper_AP"] == pytest.approx(29.7) and hm["delta_AP"] == pytest.approx(2.3)
    md = (tmp_path / "synth.md").read_text()
    # the embedded dataset is not COCO: no paper columns; constant settings move to the caption
    assert "Paper AP" not in md and "dataset embedded" in md
    assert "| udp | hrnet_w32 | 64x48 | 90.0 (1) |" in md
    text = render_markdown(runs, paper_dir=PAPER)
    assert "### exp" in text and "### synth" in text
    # keypoint error types: a second table where records have them ("-" where they do not)
    md = (tmp_path / "exp.md").read_text()
    assert "| Method | Backbone | Input | Good | Jitter | Inversion | Swap | Miss |" in md
    assert "| heatmap | hrnet_w32 | 64x48 | 38.0 ± 2.0 | 30.0 ± 0.0 | 12.0 ± 2.0 | 5.0 ± 0.0 | 15.0 ± 0.0 |" in md
    assert "| cal_mgm | hrnet_w32 | 64x48 | - | - | - | - | - |" in md
    assert hm["err_inversion_pct_mean"] == pytest.approx(12.0)
    assert "Keypoint error types" not in (tmp_path / "synth.md").read_text()


def test_records_without_experiment(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    put(root, make_record("a", experiment=None, dataset="embedded"))
    paths = write_report(root, None, "markdown", tmp_path / "tables")
    assert [p.name for p in paths] == ["adhoc.md"]


def test_unavailable_stat_is_a_dash(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    put(root, make_record("a", dataset="embedded", stats={"APM": -1.0}))
    put(root, make_record("b", dataset="embedded", method="udp", ap=0.6, stats={"APM": 0.4}))
    md = render_markdown(root, paper_dir=PAPER)
    row = next(line for line in md.splitlines() if line.startswith("| heatmap"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[6] == "-"  # Method, Backbone, Input, AP, AP50, AP75, APM
    assert "**40.0 (1)**" not in row and "| **40.0** |" in md


def test_varying_settings_become_columns(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    put(root, make_record("a", boxes="gt"))
    put(root, make_record("b", boxes="det:dets.json", ap=0.25))
    md = render_markdown(root, paper_dir=PAPER)
    assert "| Boxes |" in md and "det:dets.json" in md and "boxes" not in md.split("Shared settings:")[-1]


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert "Traceback" not in message and message.startswith("error:")
    return message


def test_no_records_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = _one_line_error(runner.invoke(app, ["report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path)]))
    assert "no result records" in message and str(tmp_path / "empty") in message.replace("\n", "")


def test_malformed_records_name_file_and_field(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    bad = make_record("a")
    del bad["seed"]
    (root / "a").mkdir(parents=True)
    (root / "a" / "record.json").write_text(json.dumps(bad))
    message = _one_line_error(runner.invoke(app, ["report", "--runs", str(root), "--out", str(tmp_path)])).replace("\n", "")
    assert "record.json" in message and "'seed'" in message

    shutil.rmtree(root)
    bad = make_record("b")
    bad["stats"]["AP"] = 72.3  # percent where [0, 1] is expected
    (root / "b").mkdir(parents=True)
    (root / "b" / "record.json").write_text(json.dumps(bad))
    with pytest.raises(ReportError, match=r"record\.json: field 'stats\.AP' is 72\.3"):
        load_records(root)

    (root / "b" / "record.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_records(root)


def test_unknown_experiment_and_format(runs: Path, tmp_path: Path) -> None:
    message = _one_line_error(runner.invoke(app, ["report", "--runs", str(runs), "--experiment", "nope", "--out", str(tmp_path)]))
    assert "'nope'" in message and "exp, synth" in message
    result = runner.invoke(app, ["report", "--runs", str(runs), "--format", "html", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "html" in result.output
    with pytest.raises(ReportError, match="unknown format"):
        write_report(runs, None, "html", tmp_path)


def test_help_texts() -> None:
    for args in (["report", "--help"], ["plot", "--help"], ["plot", "offsets", "--help"], ["plot", "oracle", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output
