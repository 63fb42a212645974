"""``lrpose bench train``: training throughput with the clock around data + step (what `lrpose run`
sees), beside data-loading-only and compute-only figures, on the embedded dataset or ``--data``.

Each figure is ``--steps`` steps (batches) after ``--warmup`` untimed ones. The loader is the one `lrpose
run` builds, with the same workers, torch threads and profile defaults unless told otherwise; a training
split with fewer batches than warm-up + steps is re-iterated (a new epoch per pass, loader start-up
included, as in `lrpose run`) and the output says so, or, with ``--no-repeat``, refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, UserError, bench_app, console, parse_res, parse_set, run_guarded


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
        steps: int = typer.Option(20, "--steps", min=1, help="Timed steps (batches) per figure."),
        warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed steps before each figure's clock starts."),
        repeat: bool = typer.Option(True, "--repeat/--no-repeat",
                                    help="Re-iterate a training split with fewer batches than warm-up + steps (a new "
                                    "epoch per pass), or refuse it."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Batch size (default: the profile's)."),
        workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                              help="DataLoader workers (default: the profile's, as `lrpose run`)."),
        threads: int = typer.Option(0, "--threads", min=0,
                                    help="Torch CPU threads (0 = the automatic rule of `lrpose run`)."),
        train_profile: Optional[str] = typer.Option(
            None, "--train-profile", help="Hyper-parameter profile whose settings are timed: quick | paper (default: as "
            "`lrpose run`: quick on the embedded data, paper on real data)."),
        cache_images: Optional[bool] = typer.Option(
            None, "--cache-images/--no-cache-images", help="Decode the images once into memory first (default: the "
            "profile's: quick caches)."),
        data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        amp: Optional[str] = typer.Option(None, "--amp", help="off | bf16 | fp16 (default: the profile's)."),
        channels_last: Optional[bool] = typer.Option(
            None, "--channels-last/--no-channels-last", help="NHWC memory format, CPU and CUDA (default: the profile's: "
            "quick trains channels-last)."),
        compile_model: bool = typer.Option(False, "--compile", help="torch.compile the training model (as --hp compile=true)."),
        compile_mode: str = typer.Option("default", "--compile-mode",
                                         help="torch.compile mode with --compile (as --hp compile_mode=...): default | "
                                         "reduce-overhead (CUDA graphs on a GPU) | max-autotune | "
                                         "max-autotune-no-cudagraphs."),
        cudnn_benchmark: bool = typer.Option(True, "--cudnn-benchmark/--no-cudnn-benchmark",
                                             help="Let cuDNN time its convolution algorithms (CUDA)."),
        profile: bool = typer.Option(False, "--profile", help="Also print torch.profiler's top operators over min(--steps, 5) steps."),
    ) -> None:
        """Print training images/s (clock around data + step), compute-only and data-loading-only images/s."""
        size = parse_res(res)
        run_guarded(_bench, size=size, res=res, backbone=backbone, method=method, options=parse_set(options),
                    steps=steps, warmup=warmup, repeat=repeat, batch_size=batch_size, workers=workers,
                    threads=threads, train_profile=train_profile, cache_images=cache_images, data=data,
                    device=device, amp=amp, channels_last=channels_last, cudnn_benchmark=cudnn_benchmark,
                    profile=profile, compile_model=compile_model, compile_mode=compile_mode)  # fmt: skip


class _Batches:
    """Batches of the training loader `lrpose run` builds, re-iterated (next epoch) when a pass ends."""

    def __init__(self, trainer: Any, dataset: Any, sampler: Any) -> None:
        self.trainer, self.dataset, self.sampler = trainer, dataset, sampler
        self.passes = 0
        self._it: Iterator[Any] | None = None

    def next(self) -> dict[str, Any]:
        """The next batch; starts a new pass (a fresh loader, its workers included) after the last one."""
        while True:
            if self._it is None:
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(self.passes)
                self.sampler.set_epoch(self.passes)
                self._it = iter(self.trainer._train_loader(self.dataset, self.sampler, self.passes))
                self.passes += 1
            try:
                return next(self._it)
            except StopIteration:
                self._it = None

    def close(self) -> None:
        """Shut the current loader's workers down."""
        self._it = None


def _sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _bench(*, size: tuple[int, int], res: str, backbone: str, method: str, steps: int, batch_size: int | None,
           workers: int | None, options: dict[str, str] | None = None, warmup: int = 3, repeat: bool = True,
           threads: int = 0, train_profile: str | None = None, cache_images: bool | None = None,
           data: Path | None = None, device: str = "auto", amp: str | None = None, channels_last: bool | None = None,
           cudnn_benchmark: bool = True, profile: bool = False, compile_model: bool = False,
           compile_mode: str = "default") -> None:  # fmt: skip
    import torch

    from lrpose_bench.data import resolve_dataset
    from lrpose_bench.data.spec import is_embedded
    from lrpose_bench.engine.config import PROFILES, make_config
    from lrpose_bench.engine.env import configure_cpu_threads, device_description, last_thread_choice, resolve_device
    from lrpose_bench.engine.env import usable_workers
    from lrpose_bench.engine.runner import build_model, make_dataset, seed_everything
    from lrpose_bench.engine.trainer import EpochBatchSampler, Trainer, batch_to_device
    from lrpose_bench.method import build_method

    if train_profile is not None and train_profile not in PROFILES:
        raise UserError(f"--train-profile {train_profile!r}: valid profiles: {', '.join(PROFILES)}")
    profile_name = train_profile or ("quick" if is_embedded(data) else "paper")  # as `lrpose run`
    overrides: dict[str, Any] = {"cudnn_benchmark": cudnn_benchmark, "cpu_threads": threads, "compile": compile_model,
                                 "compile_mode": compile_mode}
    for key, value in (("batch_size", batch_size), ("workers", workers), ("amp", amp), ("cache_images", cache_images),
                       ("channels_last", channels_last)):
        if value is not None:
            overrides[key] = value
    config = make_config(profile_name, overrides)
    dev = resolve_device(device)
    if config.amp == "fp16" and dev.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 or off on the CPU")
    configure_cpu_threads(dev, config.workers, config.cpu_threads, announce=False)
    choice = last_thread_choice()
    spec = resolve_dataset(data, need_train=True)
    m = build_method(method, options)
    geometry = m.geometry(size)
    train_geometry = m.train_geometry(size)  # what `lrpose run` trains on
    seed_everything(0)
    model = build_model(m, geometry, backbone, None)
    dataset = make_dataset(spec.train_ann, spec.train_images, m, train_geometry, train=True, config=config, seed=0,
                           lowres_protocol="direct")  # fmt: skip
    if len(dataset) == 0:
        raise UserError(f"{spec.train_ann}: the training split has no person with a labelled keypoint")
    trainer = Trainer(model, m, train_geometry, config, dev)
    trainer.model.train()
    sampler = EpochBatchSampler(len(dataset), config.batch_size, seed=0)
    per_pass, needed = len(sampler), warmup + steps
    if per_pass < needed and not repeat:
        raise UserError(
            f"the training split has {per_pass} batch(es) of {config.batch_size} ({len(dataset)} crops), fewer than "
            f"the {warmup} warm-up + {steps} timed steps: lower --steps/--warmup/--batch-size, use more data, or "
            f"drop --no-repeat to re-iterate the loader (a new epoch per pass, as `lrpose run` does)")

    # 1. Training as `lrpose run` sees it: the clock around data fetch + transfer + step.
    source = _Batches(trainer, dataset, sampler)
    for _ in range(warmup):
        trainer.train_step(batch_to_device(source.next(), dev))
    _sync(dev)
    images, waited = 0, 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        t_data = time.perf_counter()
        batch = batch_to_device(source.next(), dev)
        waited += time.perf_counter() - t_data
        trainer.train_step(batch)
        images += int(batch["image"].shape[0])
    _sync(dev)
    train_seconds = time.perf_counter() - t0
    train_rate, train_passes = images / train_seconds, source.passes
    source.close()

    # 2. Data loading only: the same loader, nothing else.
    source = _Batches(trainer, dataset, sampler)
    first = source.next()
    for _ in range(max(warmup - 1, 0)):
        source.next()
    images = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        images += int(source.next()["image"].shape[0])
    load_rate, load_passes = images / (time.perf_counter() - t0), source.passes
    source.close()

    # 3. Compute only: forward + backward + step on one fixed batch (targets encoded every step).
    batch = batch_to_device(first, dev)
    for _ in range(warmup):
        trainer.train_step(batch)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    _sync(dev)
    compute_rate = steps * int(batch["image"].shape[0]) / (time.perf_counter() - t0)
    if profile:
        _print_profile(trainer, batch, dev, steps=min(steps, 5))
    from lrpose_bench.models import model_cost

    cost = model_cost(trainer.model, geometry.crop_size, device=dev, repeats=1)
    set_text = "".join(f", {k}={v}" for k, v in (options or {}).items())
    tails = list(getattr(trainer.model, "tails", {}))
    paths = f"decoupled: a private last stage for {', '.join(tails)}" if tails else "one shared feature map"
    n_workers = usable_workers(config.workers, quiet=True)
    worker_text = f"{n_workers} worker{'s' if n_workers != 1 else ''}"
    threads_text = f"torch threads {choice.describe()}" if choice is not None and dev.type == "cpu" else "CUDA"
    lines = [
        f"{method}{set_text} + {backbone} at {res}, batch {config.batch_size}, amp {config.amp}, on "
        f"{device_description(dev)}{', channels-last' if trainer.channels_last else ''}"
        f"{f', compiled ({config.compile_mode})' if config.compile else ''}"
        f"{', cudnn.benchmark' if dev.type == 'cuda' and config.cudnn_benchmark else ''}:",
        f"  model         {cost['params'] / 1e6:8.3f} M parameters, {cost['gflops']:.3f} GFLOPs per crop ({paths})",
        f"  training      {train_rate:8.1f} images/s (clock around data + forward + backward + step; "
        f"{100 * waited / train_seconds:.0f}% of it waiting for data)",
        f"  compute only  {compute_rate:8.1f} images/s (one batch repeated: forward + backward + step, targets "
        f"encoded on the device)",
        f"  data loading  {load_rate:8.1f} images/s ({worker_text}, augmented crops, "
        f"{'decoded images cached' if config.cache_images else 'images decoded per sample'})",
        f"  settings      profile {profile_name}, {worker_text}, {threads_text}; each figure {steps} steps after "
        f"{warmup} warm-up",
    ]
    if per_pass < needed:
        lines.append(
            f"  note          the training split has {per_pass} batch(es) of {config.batch_size} ({len(dataset)} "
            f"crops) per epoch: the loader was re-iterated (training {train_passes} passes, data loading "
            f"{load_passes}), a new epoch and loader start each, as in `lrpose run`")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


def _print_profile(trainer: Any, batch: dict[str, Any], dev: Any, steps: int = 5) -> None:
    """torch.profiler over ``steps`` training steps: the operators with the most self time (device, else CPU)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    typer.echo(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=48))
