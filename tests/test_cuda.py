"""CUDA paths, run where a GPU is present (skipped elsewhere, e.g. in CI): every codec gives the CPU's
targets and decodings on the GPU, channels-last and fp16/bf16 autocast give the float32 predictions within
quantisation, and `lrpose run --device cuda --amp fp16 --hp channels_last=true` trains (gradient scaler),
evaluates and records the GPU. `benchmarks/cuda_check.sh` runs this file plus torchrun/NCCL, HRNet and
torch.compile runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.cli.app import app
from lrpose_bench.keypoints import NUM_KEYPOINTS
from lrpose_bench.method import METHODS as REGISTERED
from lrpose_bench.method import build_method
from lrpose_bench.records import read_record

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
#: every registered method but SR + heatmap (its front end is a separate module with its own weights).
METHODS = [name for name in REGISTERED if name != "sr_heatmap"]


def _keypoints(batch: int, size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sub-pixel keypoints inside a crop of ``size = (w, h)`` px, some invisible."""
    g = torch.Generator().manual_seed(seed)
    w, h = size
    kp = torch.rand(batch, NUM_KEYPOINTS, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
    vis = (torch.rand(batch, NUM_KEYPOINTS, generator=g) > 0.2).float()
    return kp.float(), vis


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("res", [(96, 128), (48, 64)])
def test_targets_and_decoding_on_cuda_match_the_cpu(method_name: str, res: tuple[int, int]) -> None:
    method = build_method(method_name)
    geometry = method.geometry(res)
    kp, vis = _keypoints(8, geometry.crop_size)
    cpu = method.encode(kp, vis, geometry)
    gpu = method.encode(kp.to(CUDA), vis.to(CUDA), geometry)
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], atol=1e-5, rtol=1e-5, msg=f"{method_name} target {key}")
    outputs = method.targets_as_outputs(cpu)
    xy_cpu, score_cpu = method.decode(outputs, geometry)
    xy_gpu, score_gpu = method.decode({k: v.to(CUDA) for k, v in outputs.items()}, geometry)
    torch.testing.assert_close(xy_gpu.cpu(), xy_cpu, atol=1e-3, rtol=0, msg=f"{method_name} decode")
    torch.testing.assert_close(score_gpu.cpu(), score_cpu, atol=1e-4, rtol=1e-4)


def _close(got: torch.Tensor, want: torch.Tensor, rel: float) -> tuple[bool, str]:
    """Max |got - want| within ``rel`` of max |want| (outputs near zero make element-wise rtol meaningless)."""
    err = (got.float() - want).abs().max().item()
    scale = want.abs().max().item() + 1e-6
    return err <= rel * scale, f"max |err| {err:.3g} vs max |ref| {scale:.3g}"


@pytest.mark.parametrize(("backbone", "res"), [("tiny", (96, 128)), ("tiny", (48, 64)), ("resnet50", (96, 128)),
                                               ("hrnet_w32", (96, 128)), ("hrnet_w32", (48, 64))])  # fmt: skip
def test_channels_last_and_autocast_match_float32(backbone: str, res: tuple[int, int]) -> None:
    from lrpose_bench.engine.runner import build_model, seed_everything

    method = build_method("cal")
    geometry = method.geometry(res)
    seed_everything(0)
    model = build_model(method, geometry, backbone, None).to(CUDA).eval()
    x = torch.randn(4, 3, res[1], res[0], device=CUDA)
    with torch.no_grad():
        ref = model(x)
        nhwc = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        for key in ref:  # float32 convolutions may run in TF32 on Ampere+: ~1e-3 relative
            ok, why = _close(nhwc[key], ref[key], 1e-2)
            assert ok, f"{backbone} channels-last {key}: {why}"
        for dtype in (torch.float16, torch.bfloat16):
            with torch.autocast("cuda", dtype=dtype):
                low = model(x)
            for key in ref:
                ok, why = _close(low[key], ref[key], 0.05)
                assert ok, f"{backbone} {dtype} {key}: {why}"


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_run_on_cuda_with_amp_and_channels_last(amp: str, tiny_embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, [
        "run", "--method", "cal_mgm", "--res", "64x48", "--data", str(tiny_embedded), "--backbone", "tiny",
        "--profile", "quick", "--epochs", "2", "--batch-size", "8", "--workers", "0", "--device", "cuda",
        "--amp", amp, "--hp", "channels_last=true", "--hp", "eval_batch_size=16", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = read_record(out / "cal_mgm-64x48-tiny-s0" / "record.json")
    assert record["hparams"]["amp"] == amp and record["hparams"]["channels_last"] is True
    assert record["versions"]["cuda"] == torch.version.cuda
    assert torch.cuda.get_device_name(0) in record["versions"]["device"]
    assert all(0.0 <= v <= 1.0 for v in record["stats"].values() if isinstance(v, float))
    assert record["stages"][1]["facts"]["mgm_fitted"]
    # the checkpoint re-evaluates on the GPU to the same numbers
    again = CliRunner().invoke(app, ["eval", "--checkpoint", str(out / "cal_mgm-64x48-tiny-s0"), "--device", "cuda",
                                     "--workers", "0", "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    stats = json.loads(again.output)
    stats = stats.get("stats", stats)
    assert abs(stats["AP"] - record["stats"]["AP"]) < 1e-6
