"""Model cost: parameter count, FLOPs per crop and batch-1 latency."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_cost(
    model: nn.Module, input_size: tuple[int, int], device: str | torch.device = "cpu", repeats: int = 10
) -> dict[str, float | int]:
    """Cost of one forward pass on one ``input_size = (width, height)`` crop.

    Returns ``{"params", "gflops", "gmacs", "latency_ms"}``:

    - ``params``: number of parameter elements (``sum(p.numel())``; buffers such as BN statistics excluded).
    - ``gflops``: FLOPs / 1e9 of one forward pass at batch 1, counted by
      ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as **2 FLOPs** and counts
      only convolutions and matrix products (BN, ReLU, additions and upsampling are not counted).
      Papers that quote "GFLOPs" for pose networks (e.g. 7.1 for HRNet-W32 at 256x192) count
      multiply-adds, so compare them with ``gmacs`` (= ``gflops / 2``).
    - ``latency_ms``: median wall time of ``repeats`` forward passes at batch 1 in eval mode under
      ``torch.no_grad()`` on ``device`` after two warm-up passes (CUDA synchronised).

    The model runs on ``device`` for the measurement and is returned to its original device and
    train/eval mode afterwards. The input is a standard-normal crop, i.e. ImageNet-normalised scale.
    """
    if repeats < 1:
        raise ValueError(f"model_cost: repeats must be >= 1, got {repeats}")
    w, h = input_size
    dev = torch.device(device)
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    params = sum(p.numel() for p in model.parameters())
    model.to(dev).eval()
    try:
        x = torch.randn(1, 3, h, w, device=dev)
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                model(x)
            flops = counter.get_total_flops()
            for _ in range(2):
                model(x)
            times = []
            for _ in range(repeats):
                _sync(dev)
                t0 = time.perf_counter()
                model(x)
                _sync(dev)
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.to(home).train(was_training)
    return {
        "params": int(params),
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,
        "latency_ms": float(statistics.median(times)),
    }
