"""``lrpose bench train``: training throughput (images/s of forward + backward + step, targets included)
and data-loading throughput, on the embedded dataset or ``--data``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, bench_app, console, parse_res, parse_set, run_guarded


def register(app: typer.Typer) -> None:  # noqa: ARG001 - the command lives on the shared bench group
    """Add ``train`` to ``lrpose bench``."""

    @bench_app.command("train")
    def bench_train(
        res: str = typer.Option("128x96", "--res", help="Input resolution HxW."),
        backbone: str = typer.Option("tiny", "--backbone", help="Backbone to time."),
        method: str = typer.Option("heatmap", "--method", help="Method whose head, targets and loss are timed."),
        options: Optional[list[str]] = typer.Option(
            None, "--set", help="Method option key=value (repeatable), e.g. --set network=shared to time CAL's shared "
            "network against the released one."),
        steps: int = typer.Option(20, "--steps", min=1, help="Timed training steps (after 2 warm-up steps)."),
        batch_size: int = typer.Option(32, "--batch-size", min=1, help="Batch size."),
        workers: int = typer.Option(2, "--workers", min=0, help="DataLoader worker processes for the loading benchmark."),
        cache_images: bool = typer.Option(True, "--cache-images/--no-cache-images",
                                          help="Decode the images once into memory first (the quick profile's default)."),
        data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        amp: str = typer.Option("off", "--amp", help="off | bf16 | fp16."),
        channels_last: bool = typer.Option(False, "--channels-last", help="NHWC memory format (CUDA)."),
        cudnn_benchmark: bool = typer.Option(True, "--cudnn-benchmark/--no-cudnn-benchmark",
                                             help="Let cuDNN time its convolution algorithms (CUDA)."),
        profile: bool = typer.Option(False, "--profile", help="Also print torch.profiler's top operators over 5 steps."),
    ) -> None:
        """Print training images/s (on a fixed batch) and data-loading images/s (augmented crops)."""
        size = parse_res(res)
        run_guarded(_bench, size=size, res=res, backbone=backbone, method=method, options=parse_set(options),
                    steps=steps, batch_size=batch_size,
                    workers=workers, cache_images=cache_images, data=data, device=device, amp=amp,
                    channels_last=channels_last, cudnn_benchmark=cudnn_benchmark, profile=profile)  # fmt: skip


def _bench(*, size: tuple[int, int], res: str, backbone: str, method: str, steps: int, batch_size: int, workers: int,
           options: dict[str, str] | None = None,
           cache_images: bool, data: Path | None, device: str, amp: str, channels_last: bool = False,
           cudnn_benchmark: bool = True, profile: bool = False) -> None:  # fmt: skip
    import dataclasses

    import torch
    from torch.utils.data import DataLoader

    from lrpose_bench.data import resolve_dataset
    from lrpose_bench.engine.config import make_config
    from lrpose_bench.engine.env import configure_cpu_threads, device_description, resolve_device, usable_workers
    from lrpose_bench.engine.runner import build_model, make_dataset, seed_everything
    from lrpose_bench.engine.trainer import EpochBatchSampler, Trainer, batch_to_device
    from lrpose_bench.method import build_method

    dev = resolve_device(device)
    configure_cpu_threads(dev, workers)
    config = dataclasses.replace(make_config("quick"), batch_size=batch_size, workers=workers, amp=amp,
                                 cache_images=cache_images, channels_last=channels_last,
                                 cudnn_benchmark=cudnn_benchmark).validate()  # fmt: skip
    spec = resolve_dataset(data, need_train=True)
    m = build_method(method, options)
    geometry = m.geometry(size)
    train_geometry = m.train_geometry(size)  # what `lrpose run` trains on
    seed_everything(0)
    model = build_model(m, geometry, backbone, None)
    dataset = make_dataset(spec.train_ann, spec.train_images, m, train_geometry, train=True, config=config, seed=0,
                           lowres_protocol="direct")  # fmt: skip
    trainer = Trainer(model, m, train_geometry, config, dev)

    # Data loading: augmented crops per second through the real loader.
    sampler = EpochBatchSampler(len(dataset), batch_size, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=usable_workers(workers))
    n_batches = min(len(sampler), steps + 2)
    it = iter(loader)
    first = next(it)
    t0, images = time.perf_counter(), 0
    for _ in range(n_batches - 1):
        images += int(next(it)["image"].shape[0])
    load_rate = images / max(time.perf_counter() - t0, 1e-9)
    del it

    # Training: forward + backward + optimizer step on one fixed batch (targets encoded every step).
    batch = batch_to_device(first, dev)
    trainer.model.train()
    for _ in range(2):
        trainer.train_step(batch)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    train_rate = steps * int(batch["image"].shape[0]) / (time.perf_counter() - t0)
    if profile:
        _print_profile(trainer, batch, dev)
    from lrpose_bench.models import model_cost

    cost = model_cost(trainer.model, geometry.crop_size, device=dev, repeats=1)
    set_text = "".join(f", {k}={v}" for k, v in (options or {}).items())
    tails = list(getattr(trainer.model, "tails", {}))
    paths = f"decoupled: a private last stage for {', '.join(tails)}" if tails else "one shared feature map"
    console.print(
        f"{method}{set_text} + {backbone} at {res}, batch {batch_size}, amp {amp}, on {device_description(dev)}"
        f"{', channels-last' if trainer.channels_last else ''}"
        f"{', cudnn.benchmark' if dev.type == 'cuda' and cudnn_benchmark else ''}:\n"
        f"  model         {cost['params'] / 1e6:8.3f} M parameters, {cost['gflops']:.3f} GFLOPs per crop "
        f"({paths})\n"
        f"  training      {train_rate:8.1f} images/s (forward + backward + step, targets encoded on the device)\n"
        f"  data loading  {load_rate:8.1f} images/s ({workers} workers, augmented crops, "
        f"{'decoded images cached' if cache_images else 'images decoded per sample'})",
        highlight=False,
    )


def _print_profile(trainer: Any, batch: dict[str, Any], dev: Any) -> None:
    """torch.profiler over 5 training steps: the operators with the most self time (device, else CPU)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            trainer.train_step(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    typer.echo(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=48))
