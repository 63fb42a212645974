"""``lrpose bench codecs``: throughput of every method's batched encode/decode vs a per-keypoint numpy loop."""

from __future__ import annotations

import time
from typing import Any, Callable

import typer

from lrpose_bench.cli.common import bench_app, console, fail, parse_res, run_guarded

#: Methods whose codecs are benchmarked (those with pure tensor codecs and no fitted state).
CODEC_METHODS: tuple[str, ...] = ("heatmap", "dark", "udp", "simcc")


def numpy_heatmap_targets(centres: Any, size: tuple[int, int], sigma: float) -> tuple[Any, Any]:
    """Reference MSRA targets with a plain per-sample, per-keypoint loop (numpy, heatmap px).

    Centre rounded to the nearest pixel, Gaussian drawn in a ``3 sigma`` square window, weight 0 when the
    window misses the map: what :class:`lrpose_bench.methods.heatmap.HeatmapMethod` encodes in one batch.
    """
    import numpy as np

    w, h = size
    b, k, _ = centres.shape
    out = np.zeros((b, k, h, w), dtype=np.float32)
    weight = np.ones((b, k), dtype=np.float32)
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    win = 3.0 * sigma
    for i in range(b):
        for j in range(k):
            mx, my = np.floor(centres[i, j] + 0.5)
            if mx + win < 0 or mx - win > w - 1 or my + win < 0 or my - win > h - 1:
                weight[i, j] = 0.0
                continue
            gx = np.exp(-((xs - mx) ** 2) / (2 * sigma**2)) * (np.abs(xs - mx) <= win + 1e-6)
            gy = np.exp(-((ys - my) ** 2) / (2 * sigma**2)) * (np.abs(ys - my) <= win + 1e-6)
            out[i, j] = gy[:, None] * gx[None, :]
    return out, weight


def _rate(fn: Callable[[], Any], samples: int, repeat: int, sync: Callable[[], None]) -> float:
    """Samples per second of ``fn`` (one warm-up call, then the median of ``repeat`` timed calls)."""
    fn()
    sync()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return samples / max(times[len(times) // 2], 1e-12)


def bench_codecs(resolution: tuple[int, int], batch: int, repeat: int, device: str, seed: int = 0) -> list[dict[str, Any]]:
    """Rows ``{method, encode, decode, check}`` (samples/s) for each method plus the numpy reference."""
    import numpy as np
    import torch

    from lrpose_bench.keypoints import FLIP_INDEX
    from lrpose_bench.method import build_method

    if batch < 1 or repeat < 1:
        raise ValueError(f"--batch and --repeat must be >= 1, got {batch} and {repeat}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(seed)
    k = len(FLIP_INDEX)
    rows: list[dict[str, Any]] = []
    for name in CODEC_METHODS:
        method = build_method(name)
        geo = method.geometry(resolution)
        w, h = geo.crop_size
        kp = (torch.rand(batch, k, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])).to(dev)
        vis = torch.ones(batch, k, device=dev)
        with torch.no_grad():
            targets = method.encode(kp, vis, geo)
            outputs = {key: v for key, v in targets.items() if key != "weight"}
            if name == "simcc":  # perfect logits: the log of the label distributions
                outputs = {key: torch.log(v.clamp_min(1e-12)) for key, v in outputs.items()}
            row = {
                "method": name,
                "encode": _rate(lambda: method.encode(kp, vis, geo), batch, repeat, sync),
                "decode": _rate(lambda: method.decode(outputs, geo), batch, repeat, sync),
                "check": "",
            }
        if name == "heatmap":
            centres = geo.crop_to_heatmap.forward(kp.cpu().double()).numpy()
            sigma = method.sigma_for(geo)
            ref, ref_w = numpy_heatmap_targets(centres, geo.heatmap_size, sigma)
            diff = float(np.abs(ref - targets["heatmaps"].cpu().numpy()).max())
            same_w = bool((ref_w == targets["weight"].cpu().numpy()).all())
            if diff > 1e-5 or not same_w:
                raise RuntimeError(f"numpy reference and batched heatmap targets differ (max |diff| {diff:.3g})")
            rows.append(row)
            rows.append({
                "method": "heatmap (numpy loop)",
                "encode": _rate(lambda: numpy_heatmap_targets(centres, geo.heatmap_size, sigma), batch,
                                max(1, min(repeat, 3)), lambda: None),
                "decode": float("nan"),
                "check": f"equal to batched (max |diff| {diff:.1e})",
            })
            continue
        rows.append(row)
    return rows


@bench_app.command("codecs")
def codecs_command(
    res: str = typer.Option("128x96", "--res", help="Input resolution HxW (height x width), e.g. 128x96 or 64x48."),
    batch: int = typer.Option(64, "--batch", min=1, help="Samples per batch (17 COCO keypoints each)."),
    repeat: int = typer.Option(5, "--repeat", min=1, help="Timed repetitions per measurement (median reported)."),
    device: str = typer.Option("cpu", "--device", help="Torch device to run the batched codecs on (cpu, cuda, cuda:1)."),
) -> None:
    """Print samples/s of each method's batched encode and decode, and of a per-keypoint numpy loop
    that builds the same heatmap targets (checked equal). Figures are informative, never asserted."""
    from rich.table import Table

    resolution = parse_res(res)
    if resolution is None:
        fail("--res is required")
    rows = run_guarded(bench_codecs, resolution, batch, repeat, device)
    table = Table(title=f"codec throughput at {res} (batch {batch}, {device}), samples/s")
    table.add_column("method")
    table.add_column("encode", justify="right")
    table.add_column("decode", justify="right")
    table.add_column("note")
    for r in rows:
        dec = "-" if r["decode"] != r["decode"] else f"{r['decode']:,.0f}"
        table.add_row(r["method"], f"{r['encode']:,.0f}", dec, r["check"])
    console.print(table)


def register(app: typer.Typer) -> None:
    """The command lives on the shared ``bench`` group (mounted by app.py); nothing to add at top level."""
    del app


__all__ = ["bench_codecs", "numpy_heatmap_targets", "codecs_command", "register"]
