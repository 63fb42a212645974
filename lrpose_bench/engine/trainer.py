"""The training loop: targets encoded on the device, AMP, DDP, stages, checkpoint/resume, clean stops.

Determinism: the data order of epoch ``e`` is a permutation drawn from a generator seeded with
``(seed, e)``, and each DataLoader gets its own generator, so the global RNGs are touched only by the
model and the method. Together with the RNG states stored in every checkpoint, a run resumed from
``checkpoints/last.pt`` reaches bit-identical weights on the CPU (given a dataset whose augmentation is a
function of ``(seed, epoch, index)``, as :class:`lrpose_bench.data.CocoPoseDataset`'s is).
"""

from __future__ import annotations

import csv
import io
import math
import signal
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from lrpose_bench.data.normalize import normalize
from lrpose_bench.engine import distributed as D
from lrpose_bench.engine.checkpoint import (
    checkpoint_path,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap_model,
)
from lrpose_bench.engine.config import TrainConfig
from lrpose_bench.engine.env import usable_workers
from lrpose_bench.io import write_text
from lrpose_bench.method import Geometry, PoseMethod, Stage


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch/step and the last good checkpoint."""


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C after writing a resumable checkpoint (``path``; ``epoch``, ``step``)."""

    def __init__(self, message: str, path: Path | None, epoch: int, step: int) -> None:
        super().__init__(message)
        self.path, self.epoch, self.step = path, epoch, step


# --------------------------------------------------------------------------------------------------
# Schedule helpers
# --------------------------------------------------------------------------------------------------
def stage_schedule(stages: list[Stage], epochs: int) -> list[tuple[Stage, int, int]]:
    """``(stage, first_epoch, end_epoch)`` for each stage: cumulative fractions of ``epochs``, rounded half up.

    Each stage gets at least one epoch when ``epochs >= len(stages)``; a stage that gets none (fewer
    epochs than stages) has ``first == end`` and is skipped.
    """
    if not stages:
        stages = [Stage("main", 1.0)]
    total = sum(s.fraction for s in stages)
    if total <= 0:
        raise ValueError(f"method stages {stages} have no positive fraction")
    out: list[tuple[Stage, int, int]] = []
    start, cum = 0, 0.0
    for i, stage in enumerate(stages):
        cum += stage.fraction / total
        remaining = len(stages) - i - 1
        end = epochs if remaining == 0 else math.floor(cum * epochs + 0.5)  # half up
        if epochs >= len(stages):
            end = min(max(end, start + 1), epochs - remaining)
        end = max(end, start)
        out.append((stage, start, end))
        start = end
    return out


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of one rank's share of a per-epoch permutation seeded with ``(seed, epoch)``.

    The permutation is padded (by wrapping) to a multiple of ``world_size`` so every rank gets the same
    number of batches; ``start_batch`` skips batches already done (mid-epoch resume).
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        per_rank = math.ceil(self.size / self.world_size)
        order = (order * (1 + per_rank * self.world_size // max(self.size, 1)))[: per_rank * self.world_size]
        return order[self.rank :: self.world_size]

    def num_batches(self) -> int:
        return math.ceil(math.ceil(self.size / self.world_size) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        idx = self._indices()
        for b in range(self.start_batch, self.num_batches()):
            yield idx[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        return self.num_batches() - self.start_batch


def loader_generator(seed: int, salt: int) -> torch.Generator:
    """A private generator for a DataLoader (worker seeds), so loaders never consume the global RNG."""
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a collated batch to ``device`` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def model_inputs(batch: Mapping[str, Any], channels_last: bool) -> torch.Tensor:
    """uint8 ``(B,3,h,w)`` crops on the device -> normalised float input."""
    x = normalize(batch["image"])
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def valid_visibility(batch: Mapping[str, Any]) -> torch.Tensor:
    """Visibility ``(B, K)`` with undecodable images (``ok == False``) zeroed so they carry no loss."""
    vis = batch["visibility"].float()
    if "ok" in batch:
        vis = vis * batch["ok"].to(vis.dtype)[:, None]
    return vis


def autocast_context(device: torch.device, amp: str):
    """``torch.autocast`` for ``amp`` = bf16/fp16 (fp16 needs CUDA); a no-op for ``off``."""
    if amp == "off":
        return nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 or off on the CPU")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _as_float(outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}


# --------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Progress that a checkpoint carries (see :mod:`lrpose_bench.engine.checkpoint`)."""

    epoch: int = 0  # epochs finished
    step: int = 0  # batches finished inside epoch ``epoch`` (mid-epoch checkpoint)
    global_step: int = 0
    stage_facts: list[dict[str, Any]] = field(default_factory=list)
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # partial-epoch sums
    skipped_images: int = 0
    train_images: int = 0
    train_seconds: float = 0.0


@dataclass
class TrainSummary:
    """What a finished :meth:`Trainer.fit` reports."""

    images_per_s: float
    seconds: float
    stage_facts: list[dict[str, Any]]
    skipped_images: int
    log_rows: list[dict[str, Any]]


class Trainer:
    """Trains ``model`` with ``method`` under ``config``; writes ``log.csv`` and checkpoints to ``run_dir``.

    Only rank 0 writes. ``run_meta`` (plain types) is stored in every checkpoint so that ``lrpose eval``
    can rebuild the model. ``on_step(epoch, step)`` is called after every optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        method: PoseMethod,
        geometry: Geometry,
        config: TrainConfig,
        device: torch.device,
        *,
        seed: int = 0,
        run_dir: Path | None = None,
        run_meta: Mapping[str, Any] | None = None,
        dist_info: D.DistInfo | None = None,
        console: Any = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        self.method, self.geometry, self.config, self.device = method, geometry, config, device
        self.seed, self.run_dir, self.run_meta = seed, run_dir, dict(run_meta or {})
        self.dist = dist_info or D.DistInfo()
        self.console, self.on_step = console, on_step
        self.channels_last = config.channels_last  # NHWC: on CUDA (tensor cores) and on the CPU (oneDNN)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        model = model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the plain module (weights, eval, checkpoints)
        train_model: nn.Module = model
        if self.dist.enabled:
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if config.compile:
            train_model = torch.compile(train_model, mode=config.compile_mode)
        self.train_model = train_model
        self.optimizer = self._make_optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16" and device.type == "cuda")
        self.state = TrainState()
        self._stop = False
        self._warned_skip = False
        self._tensorboard: Any = None  # TensorBoardLogger with --hp tensorboard=true (rank 0)

    # ---------------------------------------------------------------- construction
    def _make_optimizer(self) -> torch.optim.Optimizer:
        """The configured optimizer, fused (one kernel over all parameters) where torch has the kernel.

        Same update rule as the per-parameter loop torch otherwise runs on the CPU, to float rounding; the
        loop cost ~13 ms of a ~600 ms CAL step at 128x96 on 2 CPU cores (118 tensors), the fused kernel ~1.5 ms.
        """
        c = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        fused = {"fused": True} if _fusable(params) else {}
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, **fused)
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay, **fused)
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=True, **fused)

    # ---------------------------------------------------------------- checkpoints
    def load_state(self, ckpt: Mapping[str, Any]) -> None:
        """Restore model, optimizer, scaler, method state, progress and RNGs from a checkpoint dict."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        _keep_kernel_choice(self.optimizer)
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.method.load_state_dict(ckpt.get("method", {}))
        self.state = TrainState(
            epoch=int(ckpt["epoch"]),
            step=int(ckpt.get("step", 0)),
            global_step=int(ckpt["global_step"]),
            stage_facts=list(ckpt.get("stage_facts", [])),
            log_rows=list(ckpt.get("log_rows", [])),
            progress=dict(ckpt.get("progress", {})),
            skipped_images=int(ckpt.get("skipped_images", 0)),
            train_images=int(ckpt.get("train_images", 0)),
            train_seconds=float(ckpt.get("train_seconds", 0.0)),
        )
        set_rng_state(ckpt["rng"])

    def checkpoint_state(self) -> dict[str, Any]:
        """The checkpoint dict of the current state (tensors and plain types only)."""
        s = self.state
        return {
            "run": self.run_meta,
            "config": self.config.to_dict(),
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"kind": "multistep+warmup", "lr": self.config.lr_at(s.epoch, s.global_step)},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "method": self.method.state_dict(),
            "epoch": s.epoch,
            "step": s.step,
            "global_step": s.global_step,
            "stage_facts": s.stage_facts,
            "log_rows": s.log_rows,
            "progress": s.progress,
            "skipped_images": s.skipped_images,
            "train_images": s.train_images,
            "train_seconds": s.train_seconds,
            "rng": rng_state(),
        }

    def _save(self) -> Path | None:
        path = None
        if self.run_dir is not None and self.dist.is_main:
            path = save_checkpoint(checkpoint_path(self.run_dir), self.checkpoint_state())
        D.barrier()
        return path

    def _write_log(self) -> None:
        if self.run_dir is None or not self.dist.is_main or not self.state.log_rows:
            return
        columns: list[str] = []
        for row in self.state.log_rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.state.log_rows)
        write_text(Path(self.run_dir) / "log.csv", buf.getvalue())

    # ---------------------------------------------------------------- data
    def _train_loader(self, dataset: Dataset, sampler: EpochBatchSampler, epoch: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=usable_workers(self.config.workers),
            pin_memory=self.device.type == "cuda",
            generator=loader_generator(self.seed, epoch),
        )

    def predict_fn(self, dataset: Dataset) -> Callable[[], Iterator[tuple[dict, dict, dict]]]:
        """The ``predict`` a method's ``begin_stage`` receives: model in eval mode over ``dataset``
        (every process sees all of it, so every rank fits the same statistics), under ``no_grad``."""

        def predict() -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]]:
            loader = DataLoader(
                dataset,
                batch_size=self.config.eval_batch_size,
                shuffle=False,
                num_workers=usable_workers(self.config.workers),
                pin_memory=self.device.type == "cuda",
                generator=loader_generator(self.seed, -1),
            )
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    for batch in loader:
                        batch = batch_to_device(batch, self.device)
                        with autocast_context(self.device, self.config.amp):
                            outputs = self.model(model_inputs(batch, self.channels_last))
                        targets = self.method.encode(batch["keypoints"].float(), valid_visibility(batch), self.geometry)
                        yield _as_float(outputs), targets, batch
            finally:
                self.model.train(was_training)

        return predict

    # ---------------------------------------------------------------- signals
    def _on_sigint(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True
        if self.dist.is_main:
            print("\nCtrl-C: finishing this step, then saving a resumable checkpoint (Ctrl-C again to abort)", flush=True)

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step and save a mid-epoch checkpoint."""
        self._stop = True

    # ---------------------------------------------------------------- the loop
    def fit(self, train_set: Dataset, predict_set: Dataset | None = None) -> TrainSummary:
        """Train for ``config.epochs`` epochs from the current state (fresh or loaded)."""
        handler_installed = False
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_sigint)
            handler_installed = True
        try:
            return self._fit(train_set, predict_set if predict_set is not None else train_set)
        except KeyboardInterrupt:
            path = checkpoint_path(self.run_dir) if self.run_dir is not None else None
            done = self.state.epoch
            raise TrainingInterrupted(
                f"interrupted; the last checkpoint ({path}) holds {done} finished epoch(s)", path, done, 0
            ) from None
        finally:
            if handler_installed:
                signal.signal(signal.SIGINT, previous)

    def _fit(self, train_set: Dataset, predict_set: Dataset) -> TrainSummary:
        cfg, s = self.config, self.state
        schedule = stage_schedule(self.method.stages(), cfg.epochs)
        if cfg.tensorboard and self.dist.is_main and self.run_dir is not None and self._tensorboard is None:
            from lrpose_bench.engine.tensorboard import TensorBoardLogger

            self._tensorboard = TensorBoardLogger(self.run_dir, self.method, self.geometry, predict_set, self.device,
                                                  self.channels_last)  # fmt: skip
        sampler = EpochBatchSampler(len(train_set), cfg.batch_size, self.seed, self.dist.rank, self.dist.world_size)
        self.train_model.train()
        for stage, first, end in schedule:
            if end <= s.epoch or first == end:
                continue
            if stage.name not in {f["stage"] for f in s.stage_facts}:  # not begun yet (fresh, or resumed at its boundary)
                D.broadcast_buffers(self.model)  # every rank predicts with rank 0's BN statistics
                facts = self.method.begin_stage(stage, self.predict_fn(predict_set)) or {}
                s.stage_facts.append({"stage": stage.name, "first_epoch": first, "epochs": end - first, "facts": facts})
                self.train_model.train()
            for epoch in range(max(first, s.epoch), end):
                self._epoch(train_set, sampler, epoch, stage)
        D.broadcast_buffers(self.model)  # the evaluated (and saved) model is rank 0's on every rank
        seconds = s.train_seconds
        return TrainSummary(
            images_per_s=s.train_images / seconds if seconds > 0 else 0.0,
            seconds=seconds,
            stage_facts=s.stage_facts,
            skipped_images=s.skipped_images,
            log_rows=s.log_rows,
        )

    def _epoch(self, train_set: Dataset, sampler: EpochBatchSampler, epoch: int, stage: Stage) -> None:
        """Train one epoch (or its remainder after a mid-epoch resume); log and checkpoint at its end."""
        cfg, s = self.config, self.state
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        start_step = s.step if s.epoch == epoch else 0
        sampler.set_epoch(epoch, start_step)
        total_steps = sampler.num_batches()
        progress = s.progress if start_step else {}
        seconds = float(progress.get("seconds", 0.0))
        # Running loss sums (float64, summed step by step; a resumed epoch continues the same sums on rank 0,
        # so the logged epoch loss is bit-identical too).
        own = self.dist.is_main
        acc: dict[str, torch.Tensor] = {
            k: torch.tensor(v if own else 0.0, dtype=torch.float64, device=self.device)
            for k, v in progress.get("sums", {}).items()
        }
        acc_images = int(progress.get("images", 0)) if own else 0
        loader = self._train_loader(train_set, sampler, epoch)
        step = start_step
        session_images = 0
        bar = _ProgressBar(self.dist.is_main, epoch, cfg.epochs, total_steps, start_step)
        t0 = time.perf_counter()
        try:
            for batch in loader:
                batch = batch_to_device(batch, self.device)
                lr = cfg.lr_at(epoch, s.global_step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                losses, n, flags = self.train_step(batch)
                if flags[0] > 0:
                    last = checkpoint_path(self.run_dir) if self.run_dir else None
                    raise TrainingDiverged(
                        f"loss became {losses['total'].item()} at epoch {epoch + 1}/{cfg.epochs}, step {step + 1}/{total_steps} "
                        f"(lr {lr:g}); training stopped before that update. The last good checkpoint ({last}) holds "
                        f"{s.epoch} finished epoch(s). Lower the learning rate (--lr) or check the data."
                    )
                for k, v in losses.items():
                    acc[k] = acc.get(k, 0.0) + v.detach().double() * n
                acc_images += n
                session_images += n
                step += 1
                s.global_step += 1
                if self.on_step is not None:
                    self.on_step(epoch, step)
                if step % max(cfg.log_every, 1) == 0 or step == total_steps:
                    elapsed = seconds + time.perf_counter() - t0
                    bar.update(step, float(losses["total"].item()), lr, acc_images * self.dist.world_size / max(elapsed, 1e-9))
                if flags[1] > 0:
                    break
        except Exception as exc:  # a DataLoader worker killed by the same Ctrl-C: stop cleanly
            if not self._stop or isinstance(exc, TrainingDiverged):
                raise
        finally:
            bar.close()
        session = time.perf_counter() - t0
        seconds += session
        reduced = self._reduce(acc, acc_images)
        sums, images = reduced["sums"], reduced["images"]
        s.train_images += session_images * self.dist.world_size
        s.train_seconds += session
        if self._stop and step < total_steps:
            s.step, s.epoch = step, epoch
            s.progress = {"sums": sums, "images": images, "seconds": seconds}
            path = self._save()
            raise TrainingInterrupted(
                f"interrupted at epoch {epoch + 1}/{cfg.epochs}, step {step}/{total_steps}; "
                f"resumable checkpoint saved to {path}",
                path,
                epoch,
                step,
            )
        row: dict[str, Any] = {"epoch": epoch + 1, "stage": stage.name, "lr": cfg.lr_at(epoch, max(s.global_step - 1, 0))}
        for k, v in sums.items():
            row[f"loss_{k}" if k != "total" else "loss"] = v / max(images, 1)
        row["images_per_s"] = images / seconds if seconds > 0 else 0.0
        row["seconds"] = seconds
        s.log_rows.append(row)
        s.epoch, s.step, s.progress = epoch + 1, 0, {}
        self._write_log()
        if self._tensorboard is not None:
            self._tensorboard.log_epoch(row, self.model, epoch + 1)
        self._save()
        if self.dist.is_main and not bar.enabled and self.console is not None:
            terms = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k.startswith("loss"))
            self.console.print(
                f"epoch {epoch + 1}/{cfg.epochs} [{stage.name}] {terms} lr={row['lr']:.3g} "
                f"{row['images_per_s']:.0f} img/s {seconds:.1f}s",
                highlight=False,
                markup=False,
            )
        if self._stop:
            path = checkpoint_path(self.run_dir) if self.run_dir else None
            raise TrainingInterrupted(
                f"interrupted after epoch {epoch + 1}/{cfg.epochs}; resumable checkpoint saved to {path}", path, epoch + 1, 0
            )

    def train_step(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], int, list[float]]:
        """One optimizer step on a device batch.

        Returns the loss terms, the batch size and the flags ``[non-finite loss, stop requested]`` summed
        over processes. With a non-finite loss on any process no process updates its weights.
        """
        cfg = self.config
        vis = valid_visibility(batch)
        if "ok" in batch:
            bad = int((~batch["ok"].bool()).sum().item())
            if bad:
                self.state.skipped_images += bad
                if not self._warned_skip:
                    warnings.warn(f"{bad} undecodable image(s) in a training batch: they carry no loss (counted in the record)", stacklevel=2)
                    self._warned_skip = True
        targets = self.method.encode(batch["keypoints"].float(), vis, self.geometry)
        x = model_inputs(batch, self.channels_last)
        if cfg.compile:  # a new iteration: CUDA-graph replays may reuse the last step's output memory
            torch.compiler.cudagraph_mark_step_begin()
        with autocast_context(self.device, cfg.amp):
            outputs = self.train_model(x)
        losses = self.method.loss(_as_float(outputs), targets)
        total = losses["total"]
        flags = torch.stack([(~torch.isfinite(total.detach())).float(), total.new_tensor(1.0 if self._stop else 0.0)])
        flags = D.all_reduce_sum(flags).tolist()
        self.optimizer.zero_grad(set_to_none=True)
        if flags[0] == 0:
            self.scaler.scale(total).backward()
            if cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return losses, int(x.shape[0]), flags

    def _reduce(self, acc: dict[str, torch.Tensor], images: int) -> dict[str, Any]:
        """Sum the running loss sums and the image count over processes (float64)."""
        keys = sorted(acc)
        parts = [acc[k].to(torch.float64).reshape(1) for k in keys]
        vec = torch.cat(parts + [torch.tensor([float(images)], dtype=torch.float64, device=self.device)])
        values = D.all_reduce_sum(vec).tolist()
        return {"sums": dict(zip(keys, values[:-1])), "images": int(round(values[-1]))}


def _keep_kernel_choice(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``: use this process's kernel choice, not the checkpoint's.

    ``load_state_dict`` copies each saved parameter group whole, ``fused`` flag included, so a checkpoint
    written by the per-tensor loop would resume on the loop (and a fused one would force the fused kernel
    where :func:`_fusable` says no). Fused kernels want each ``step`` counter as a float32 tensor on its
    parameter's device.
    """
    fused = optimizer.defaults.get("fused")
    for group in optimizer.param_groups:
        if "fused" in group:
            group["fused"] = fused
        if not fused:
            continue
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                optimizer.state[p]["step"] = step.to(device=p.device, dtype=torch.float32)


def _fusable(params: list[torch.Tensor]) -> bool:
    """Can torch's fused optimizer kernels update ``params``: floating point, all on one CPU or CUDA device."""
    devices = {p.device for p in params}
    return (len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
            and all(torch.is_floating_point(p) for p in params))


class _ProgressBar:
    """A rich progress bar for one epoch (rank 0, interactive terminals only)."""

    def __init__(self, is_main: bool, epoch: int, epochs: int, total: int, start: int) -> None:
        from lrpose_bench.cli.common import console

        self.enabled = is_main and console.is_terminal
        self.progress = None
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, completed=start, info="")

    def update(self, step: int, loss: float, lr: float, images_per_s: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, info=f"loss {loss:.4g} lr {lr:.2g} {images_per_s:.0f} img/s")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
