"""``lrpose eval --weights``: an imported checkpoint evaluated end to end, at other resolutions, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.engine.eval_weights import PaddedModel, WeightsSpec, build_imported_model, with_test_upsample
from lrpose_bench.engine.runner import build_model
from lrpose_bench.method import build_method
from lrpose_bench.models.checkpoint_import import CheckpointImportError, to_official

runner = CliRunner()


def _checkpoint(tmp_path: Path, fmt: str = "hrnet", method: str = "heatmap", size: tuple[int, int] = (48, 64)) -> Path:
    """A tiny-backbone model of ``method`` saved in the official (or MMPose) layout."""
    m = build_method(method)
    torch.manual_seed(0)
    model = build_model(m, m.geometry(size), "tiny", None)
    path = tmp_path / f"{method}_{fmt}.pth"
    state = to_official(model.state_dict(), fmt)
    torch.save({"meta": {}, "state_dict": state} if fmt == "mmpose" else state, path)
    return path


def _eval(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args, "--json", "--workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_eval_weights_end_to_end(tiny_embedded: Path, tmp_path: Path) -> None:
    hrnet_layout = _checkpoint(tmp_path)
    common = ["--method", "heatmap", "--backbone", "tiny", "--data", str(tiny_embedded)]
    out = tmp_path / "runs"
    a = _eval("--weights", str(hrnet_layout), "--format", "hrnet", "--res", "64x48", *common, "--out", str(out),
              "--experiment", "byo", "--run-id", "native")  # fmt: skip
    b = _eval("--weights", str(_checkpoint(tmp_path, "mmpose")), "--res", "64x48", *common)  # --format auto
    assert a["stats"] == b["stats"] and a["weights"]["format"] == "hrnet" and b["weights"]["format"] == "mmpose"
    assert a["instances"] > 0 and set(a["error_types"]["overall"]) == {"good", "jitter", "inversion", "swap", "miss"}
    record = json.loads((out / "native" / "record.json").read_text())
    assert record["experiment"] == "byo" and record["profile"] == "imported" and record["train_seconds"] == 0.0
    assert record["weights"]["sha256"] and record["weights"]["file"] == str(hrnet_layout)
    assert all(v is None or 0.0 <= v <= 1.0 for v in record["stats"].values())  # pycocotools' -1 -> null
    assert (out / "native" / "predictions.json").is_file()

    # fed upsampled to the training size: low-res crop, training-size heatmap
    c = _eval("--weights", str(hrnet_layout), "--res", "32x24", "--test-upsample", "64x48", *common, "--out", str(out),
              "--run-id", "up")  # fmt: skip
    up = json.loads((out / "up" / "record.json").read_text())
    assert up["profile"] == "imported-upsample64x48" and up["input_size"] == [24, 32] and up["heatmap_size"] == [12, 16]
    assert c["weights"]["test_upsample"] == "64x48"


def test_eval_weights_errors(tiny_embedded: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path)

    def error(*args: str) -> str:
        result = runner.invoke(app, ["eval", *args])
        assert result.exit_code in (1, 2), result.output
        assert "Traceback" not in result.output
        return result.output.replace("\n", " ")

    assert "--weights needs --method, --backbone" in error("--weights", str(ckpt), "--res", "64x48")
    assert "only with --weights" in error("--checkpoint", str(tmp_path), "--method", "heatmap")
    assert "--format 'onnx' is not one of" in error("--weights", str(ckpt), "--format", "onnx", "--method", "heatmap",
                                                     "--backbone", "tiny", "--res", "64x48")  # fmt: skip
    # a checkpoint of another backbone: the unmatched keys are listed
    message = error("--weights", str(ckpt), "--method", "heatmap", "--backbone", "resnet50", "--res", "64x64",
                    "--data", str(tiny_embedded))  # fmt: skip
    assert "does not fit the model" in message and "map to nothing" in message and "get no value" in message
    (tmp_path / "notes.pth").write_bytes(b"not a torch file")
    assert "could not be read" in error("--weights", str(tmp_path / "notes.pth"), "--method", "heatmap", "--backbone",
                                        "tiny", "--res", "64x48")  # fmt: skip


def test_test_upsample_geometry_and_padding() -> None:
    """Upsampled: low-res crop px -> training-size heatmap px through area-aligned upsampling; padded: the
    model runs on a padded crop and its outputs are cut back, coordinates unchanged."""
    method = with_test_upsample(build_method("heatmap"), (192, 256))
    g = method.geometry((48, 64))
    assert g.crop_size == (48, 64) and g.model_input_size == (192, 256) and g.heatmap_size == (48, 64)
    point = torch.tensor([[10.0, 20.0]])
    # x_big = (x + 0.5) * 4 - 0.5, then / stride 4 (biased)
    torch.testing.assert_close(g.crop_to_heatmap.forward(point), torch.tensor([[(10.5 * 4 - 0.5) / 4, (20.5 * 4 - 0.5) / 4]]))
    assert method.name == "heatmap" and method.build_front(g)(torch.zeros(1, 3, 64, 48)).shape == (1, 3, 256, 192)

    base = build_method("heatmap")
    model = build_model(base, base.geometry((64, 64)), "tiny", None).eval()
    padded = PaddedModel(model, (64, 64), (12, 16)).eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        full = model(torch.nn.functional.pad(x, (0, 16)))["heatmaps"]
        cut = padded(x)["heatmaps"]
    assert cut.shape == (1, 17, 16, 12) and torch.equal(cut, full[..., :12])


def test_four_branch_hrnet_needs_pad_at_64x48() -> None:
    """An official HRNet (four stage-4 branches) at 64x48: a clear error naming --pad, checked before building."""
    state = {"stage4.0.branches.3.0.conv1.weight": torch.zeros(1), "transition3.3.0.0.weight": torch.zeros(1)}
    spec = WeightsSpec(weights="x.pth", fmt="hrnet", method="heatmap", backbone="hrnet_w32", resolution=(48, 64))
    method = build_method("heatmap")
    with pytest.raises(CheckpointImportError, match=r"multiples of 32 \(its four stage-4 branches\); add --pad"):
        build_imported_model(spec, method, method.geometry((48, 64)), state)


def test_test_resolution_experiment_runs_eval_weights() -> None:
    """experiments/test_resolution.toml: weights runs expand to `lrpose eval --weights` commands, one seed each."""
    from lrpose_bench.experiments import expand, load_experiment

    exp = load_experiment(Path(__file__).parents[1] / "experiments" / "test_resolution.toml")
    runs = expand(exp, seeds=3)
    assert [r.run_id for r in runs][:2] == ["as_is-hrnet_w32-256x192-s0", "as_is-hrnet_w32-128x96-s0"]
    assert len(runs) == 7 and {r.seed for r in runs} == {0} and {r.command for r in runs} == {"eval"}
    args = runs[3].run_args("out", data="/data/coco")
    assert args[:2] == ["--weights", "weights/pose/pose_hrnet_w32_256x192.pth"] and "--pad" in args
    assert args[args.index("--res") + 1] == "64x48" and args[args.index("--run-id") + 1] == "as_is-hrnet_w32-64x48-s0"
    up = runs[-1].run_args("out")
    assert up[up.index("--test-upsample") + 1] == "256x192" and "--pad" not in up
