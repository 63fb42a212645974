"""Evaluation engines: faster-coco-eval and hotcoco give pycocotools' 10 keypoint stats bit for bit (committed
COCO samples, a generated set with crowd regions, duplicates, misses and left/right swaps); the scoring path
never imports torch; the engine is chosen by `lrpose eval --engine` and `--hp eval_engine` and recorded.

Every engine test is a ``parity`` test (tests/conftest.py): an engine that is not installed fails here with
the pip package to install (the ``test`` extra installs them all); it never skips.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.errors import OptionValueError
from lrpose_bench.evaluation import engines
from lrpose_bench.evaluation.coco_eval import coco_keypoint_stats
from lrpose_bench.evaluation.stress import perturbed_results, synthetic_ground_truth, write_stress_set
from lrpose_bench.records import COCO_STAT_NAMES

runner = CliRunner()
#: The engines checked against pycocotools (all of them must be installed: `pip install -e '.[test]'`).
FAST_ENGINES = [e for e in engines.ENGINES if e != engines.DEFAULT_ENGINE]
#: Images of the generated set in the suite (`lrpose bench eval` checks 5,000).
GENERATED_IMAGES = 300


def _stats(gt: object, results: list[dict], engine: str) -> np.ndarray:
    """The 10 stats as an array, in COCO order."""
    stats = coco_keypoint_stats(gt, results, engine=engine)
    assert list(stats) == list(COCO_STAT_NAMES)
    return np.array([stats[n] for n in COCO_STAT_NAMES])


@pytest.fixture(scope="module")
def generated() -> tuple[dict, list[dict], np.ndarray]:
    """The generated set (ground truth, results) and pycocotools' stats on it."""
    gt = synthetic_ground_truth(GENERATED_IMAGES, seed=0)
    results = perturbed_results(gt, seed=0)
    return gt, results, _stats(copy.deepcopy(gt), results, "pycocotools")  # pycocotools marks gt annotations 'ignore'


def test_generated_set_has_every_case(generated: tuple[dict, list[dict], np.ndarray]) -> None:
    """Crowd regions, ignored persons, all area ranges, more results than persons (duplicates and false
    positives), an image past maxDets and score ties: the cases engines could disagree on."""
    gt, results, stats = generated
    anns = gt["annotations"]
    persons = [a for a in anns if not a["iscrowd"]]
    assert any(a["iscrowd"] for a in anns) and any(a["num_keypoints"] == 0 for a in persons)
    areas = np.array([a["area"] for a in persons])
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas < 96**2)).any() and (areas >= 96**2).any()
    per_image = np.bincount([r["image_id"] for r in results])
    assert len(results) > len(persons) and per_image.max() > 20
    scores = [r["score"] for r in results]
    assert len(set(scores)) < len(scores)
    assert 0.2 < stats[0] < 0.8 and (stats >= 0).all()  # non-trivial, every area range populated
    again = synthetic_ground_truth(GENERATED_IMAGES, seed=0)
    assert again == gt and perturbed_results(again, seed=0) == results  # deterministic in the seed


@pytest.mark.parity
@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_engine_equals_pycocotools_on_generated_set(engine: str, generated: tuple[dict, list[dict], np.ndarray]) -> None:
    gt, results, expected = generated
    before = copy.deepcopy(results)
    stats = _stats(copy.deepcopy(gt), results, engine)  # like pycocotools, faster-coco-eval marks gt 'ignore'
    assert np.array_equal(stats, expected), f"{engine}: {stats.tolist()} != pycocotools {expected.tolist()}"
    assert results == before  # the results are not modified


@pytest.mark.parametrize("which", ["coco_sample", "minicoco"])
@pytest.mark.parametrize("engine", FAST_ENGINES)
def test_engine_equals_pycocotools_on_committed_samples(
    engine: str, which: str, coco_sample_root: Path, minicoco_root: Path
) -> None:
    """Real COCO annotations (parity: the fixtures make this a test that may not skip), two seeds."""
    root = coco_sample_root if which == "coco_sample" else minicoco_root
    ann = root / "annotations" / "person_keypoints_val2017.json"
    gt = json.loads(ann.read_text())
    for seed in (0, 1):
        results = perturbed_results(gt, seed=seed)
        expected = _stats(ann, results, "pycocotools")
        assert np.array_equal(_stats(ann, results, engine), expected), f"{engine} on {which}, seed {seed}"
        assert np.array_equal(_stats(copy.deepcopy(gt), results, engine), expected)  # a dataset dict as well


@pytest.mark.parity
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_engine_edge_cases(engine: str, coco_sample_root: Path) -> None:
    """No results -> zeros; perfect results -> AP 1; a result on an unknown image -> a clear error."""
    ann = coco_sample_root / "annotations" / "person_keypoints_val2017.json"
    gt = json.loads(ann.read_text())
    assert coco_keypoint_stats(ann, [], engine=engine) == {n: 0.0 for n in COCO_STAT_NAMES}
    perfect = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"] if a["num_keypoints"] > 0]  # fmt: skip
    assert _stats(ann, perfect, engine)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="image_id 123456789 is not in the ground-truth"):
        coco_keypoint_stats(ann, [{"image_id": 123456789, "category_id": 1, "keypoints": [0, 0, 1] * 17, "score": 1}],
                            engine=engine)  # fmt: skip


def test_engine_names_and_missing_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OptionValueError, match="--engine 'nope': unknown evaluation engine; choose one of pycocotools"):
        engines.require_engine("nope")
    monkeypatch.setitem(engines.ENGINE_PACKAGES, "hotcoco", ("lrpose_no_such_module", "hotcoco"))
    assert not engines.engine_available("hotcoco") and "hotcoco" not in engines.installed_engines()
    with pytest.raises(engines.EngineUnavailable, match="pip install hotcoco"):
        coco_keypoint_stats({"images": [], "annotations": [], "categories": []}, [], engine="hotcoco")


def test_engine_is_passed_down_and_defaults_to_pycocotools(monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine given -> pycocotools; an engine given -> that engine (no hidden state between calls)."""
    used: list[str] = []
    for name in ("pycocotools", "hotcoco"):
        monkeypatch.setitem(engines._RUNNERS, name, lambda gt, results, name=name: used.append(name) or [0.5] * 10)
    gt = synthetic_ground_truth(3, seed=1)
    results = perturbed_results(gt, seed=1)
    assert coco_keypoint_stats(gt, results)["AP"] == 0.5
    assert coco_keypoint_stats(gt, results, engine="hotcoco")["AP"] == 0.5
    assert coco_keypoint_stats(gt, results)["AP"] == 0.5
    assert used == ["pycocotools", "hotcoco", "pycocotools"]


def test_eval_engine_hyper_parameter() -> None:
    from lrpose_bench.engine.config import TrainConfig, make_config, parse_hparam

    assert TrainConfig().eval_engine == "pycocotools"
    assert make_config("quick", {"eval_engine": parse_hparam("eval_engine", "hotcoco")}).eval_engine == "hotcoco"
    with pytest.raises(OptionValueError, match="eval_engine='bogus' \\(--hp eval_engine\\): choose one of pycocotools"):
        TrainConfig(eval_engine="bogus").validate()


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 50-image generated set written to files (annotations, predictions)."""
    return write_stress_set(tmp_path_factory.mktemp("stress"), 50, seed=3)


@pytest.mark.parity
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_eval_predictions_never_imports_torch(engine: str, small_files: tuple[Path, Path]) -> None:
    """`lrpose eval --predictions P --annotations A --engine E` in a fresh interpreter: torch stays unloaded."""
    ann, pred = small_files
    code = (
        "import sys\nfrom lrpose_bench.cli.app import app\n"
        f"app(['eval', '--predictions', {str(pred)!r}, '--annotations', {str(ann)!r}, '--engine', {engine!r}, '--json'],"
        " standalone_mode=False)\n"
        "print('TORCH-LOADED' if 'torch' in sys.modules else 'TORCH-FREE')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    body, marker = proc.stdout.rsplit("\n", 2)[0], proc.stdout.strip().splitlines()[-1]
    assert marker == "TORCH-FREE", proc.stdout
    assert json.loads(body)["engine"] == engine


@pytest.mark.parity
def test_eval_cli_engines_agree(small_files: tuple[Path, Path]) -> None:
    ann, pred = small_files
    outputs = {}
    for engine in engines.ENGINES:
        res = runner.invoke(app, ["eval", "--predictions", str(pred), "--annotations", str(ann), "--engine", engine, "--json"])
        assert res.exit_code == 0, res.output
        outputs[engine] = json.loads(res.output)
        assert outputs[engine]["engine"] == engine
    assert all(o["stats"] == outputs["pycocotools"]["stats"] for o in outputs.values())
    table = runner.invoke(app, ["eval", "--predictions", str(pred), "--annotations", str(ann), "--engine", "hotcoco"])
    assert table.exit_code == 0 and "(hotcoco)" in table.output
    bad = runner.invoke(app, ["eval", "--predictions", str(pred), "--annotations", str(ann), "--engine", "nope"])
    assert bad.exit_code == 2 and "unknown evaluation engine" in bad.output
    weights = runner.invoke(app, ["eval", "--weights", "w.pth", "--engine", "hotcoco"])
    assert weights.exit_code == 2 and "--engine do not apply" in " ".join(weights.output.split())


@pytest.mark.slow
@pytest.mark.parity
def test_bench_eval_end_to_end() -> None:
    """`lrpose bench eval --images 50`: every installed engine measured, all stats equal (no timing asserted)."""
    res = runner.invoke(app, ["bench", "eval", "--images", "50", "--repeat", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    rows = data["rows"]
    assert data["set"]["images"] == 50 and data["command"].startswith("lrpose bench eval --images 50")
    assert [(r["engine"], r["command"]) for r in rows] == [("pycocotools", "plain script"), ("pycocotools", "lrpose eval")] + [
        (e, c) for e in FAST_ENGINES for c in ("plain script", "lrpose eval")
    ]  # every engine is installed in CI
    assert all(r["stats_equal"] and r["seconds"] > 0 and r["peak_mib"] > 0 for r in rows)


@pytest.mark.slow
@pytest.mark.parity
def test_run_records_its_engine(tiny_embedded: Path, tmp_path: Path) -> None:
    """A run scored by hotcoco says so in its record; re-evaluated with --engine, the record says that."""
    res = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded), "--backbone",
                              "tiny", "--epochs", "1", "--batch-size", "16", "--workers", "0", "--hp",
                              "eval_engine=hotcoco", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "heatmap-64x48-tiny-s0"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["eval_engine"] == "hotcoco" and record["hparams"]["eval_engine"] == "hotcoco"
    again = runner.invoke(app, ["eval", "--checkpoint", str(run_dir), "--engine", "pycocotools", "--update-record",
                                "--json", "--workers", "0"])  # fmt: skip
    assert again.exit_code == 0, again.output
    out = again.output  # the JSON, and "updated <record>" on stderr
    assert json.loads(out[out.index("{") : out.rindex("}") + 1])["engine"] == "pycocotools"
    new = json.loads((run_dir / "record.json").read_text())
    assert new["eval_engine"] == "pycocotools" and new["stats"] == record["stats"]
