"""Selecting a variant of the embedded data: ``--data embedded:VARIANT``, its cache folder and hash, and the
experiment file that uses it (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrpose_bench.data import spec as S
from lrpose_bench.data import synth

REPO = Path(__file__).resolve().parents[1]


def test_data_values_select_a_variant_or_a_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert S.embedded_variant(None) == "marked" and S.embedded_variant("embedded") == "marked"
    assert S.embedded_variant("embedded:marked") == "marked"
    assert S.embedded_variant(Path("embedded:unmarked")) == "unmarked"
    assert S.embedded_variant("/data/coco") is None and not S.is_embedded("coco")
    with pytest.raises(ValueError, match="unknown embedded data variant 'dots'; valid: embedded:marked, embedded:unmarked"):
        S.embedded_variant("embedded:dots")
    (tmp_path / "embedded").mkdir()  # a folder of that name stays a folder, as before
    assert not S.is_embedded("embedded") and S.is_embedded("embedded:unmarked")


def test_cache_folders_and_names() -> None:
    cache = Path("/c")
    # the default's folder name is the one existing records carry
    assert S.embedded_dir(cache) == S.embedded_dir(cache, "marked") == cache / "embedded-v2-640x160-s0"
    assert S.embedded_dir(cache, "unmarked") == cache / "embedded-unmarked-v2-640x160-s0"
    assert S.embedded_name() == "embedded" and S.embedded_name("unmarked") == "embedded-unmarked"


def test_resolve_generates_each_variant_once_with_its_own_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "DEFAULT_TRAIN_IMAGES", 2)
    monkeypatch.setattr(synth, "DEFAULT_VAL_IMAGES", 2)
    default = S.resolve_dataset(None, tmp_path, need_train=True)
    unmarked = S.resolve_dataset(Path("embedded:unmarked"), tmp_path, need_train=True)
    assert default.name == "embedded" and default.root == tmp_path / "embedded-v2-2x2-s0"
    assert unmarked.name == "embedded-unmarked" and unmarked.root == tmp_path / "embedded-unmarked-v2-2x2-s0"
    assert unmarked.content_hash() != default.content_hash()
    doc = json.loads(unmarked.val_ann.read_text())
    assert doc["info"]["variant"] == "unmarked"
    assert S.resolve_dataset("embedded:marked", tmp_path).content_hash() == default.content_hash()
    mtime = unmarked.val_ann.stat().st_mtime_ns
    assert S.resolve_dataset("embedded:unmarked", tmp_path).val_ann.stat().st_mtime_ns == mtime  # reused


def test_the_quick_profile_is_the_default_on_every_embedded_variant() -> None:
    from lrpose_bench.engine.runner import RunSpec, resolve_profile

    for data in (None, "embedded:unmarked"):
        assert resolve_profile(RunSpec(method="heatmap", resolution="64x48", data=data)) == "quick"
    assert resolve_profile(RunSpec(method="heatmap", resolution="64x48", data="/data/coco")) == "paper"


def test_experiment_file_runs_on_the_unmarked_variant(tmp_path: Path) -> None:
    from lrpose_bench.experiments import expand, load_experiment

    exp = load_experiment(REPO / "experiments" / "embedded_unmarked.toml")
    assert exp.dataset == "embedded:unmarked"
    runs = expand(exp)
    assert {(r.method, r.resolution) for r in runs} == {
        (m, res) for m in ("heatmap", "udp", "cal") for res in ("64x48", "128x96")
    }
    for run in runs:
        args = run.run_args(tmp_path)
        assert args[args.index("--data") + 1] == "embedded:unmarked"
        assert args[args.index("--backbone") + 1] == "tiny" and args[args.index("--profile") + 1] == "quick"
        assert run.run_args(tmp_path, data="/elsewhere")[args.index("--data") + 1] == "/elsewhere"
    # the default embedded file passes no --data (its runs use the default variant)
    assert all("--data" not in r.run_args(tmp_path) for r in expand(load_experiment(REPO / "experiments" / "embedded.toml")))


def test_sweep_prints_the_variant_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lrpose_bench.cli.app import app

    res = CliRunner().invoke(
        app, ["sweep", str(REPO / "experiments" / "embedded_unmarked.toml"), "--print-commands", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("lrpose run")]
    assert len(lines) == 8 and all("--data embedded:unmarked" in ln for ln in lines)  # 4 runs x 2 sizes
