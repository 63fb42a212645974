"""Contiguous against channels-last training steps, interleaved in one process (compute only).

Both models are built from the same seed, trained on the same fixed batch, and timed in turn (``--steps``
steps each, ``--rounds`` rounds), so that machine noise hits both alike; prints the median images/s.

    python benchmarks/memory_format_ab.py --method cal --res 128x96 --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import default_collate

from lrpose_bench.data import resolve_dataset
from lrpose_bench.engine.config import make_config
from lrpose_bench.engine.runner import build_model, make_dataset, seed_everything
from lrpose_bench.engine.trainer import EpochBatchSampler, Trainer, batch_to_device
from lrpose_bench.method import build_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="cal")
    parser.add_argument("--res", default="128x96", help="input HxW")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.res.split("x"))
    size, dev = (w, h), torch.device("cpu")
    method = build_method(args.method, {})
    geometry = method.train_geometry(size)
    spec = resolve_dataset(None, need_train=True)

    def trainer(channels_last: bool) -> Trainer:
        config = make_config("quick", {"channels_last": channels_last})
        seed_everything(0)
        t = Trainer(build_model(method, method.geometry(size), args.backbone, None), method, geometry, config, dev)
        t.model.train()
        return t

    variants = {"contiguous": trainer(False), "channels-last": trainer(True)}
    config = make_config("quick")
    dataset = make_dataset(spec.train_ann, spec.train_images, method, geometry, train=True, config=config, seed=0,
                           lowres_protocol="direct")  # fmt: skip
    indices = next(iter(EpochBatchSampler(len(dataset), config.batch_size, seed=0)))
    batch = batch_to_device(default_collate([dataset[i] for i in indices]), dev)
    for t in variants.values():  # warm-up: oneDNN primitives, allocator
        for _ in range(2):
            t.train_step(batch)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, t in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                t.train_step(batch)
            rates[name].append(args.steps * len(indices) / (time.perf_counter() - start))
    print(f"{args.method} + {args.backbone} at {args.res}, batch {len(indices)}, {args.threads} thread(s), "
          f"{args.rounds} rounds of {args.steps} steps, compute only (images/s):")
    for name, values in rates.items():
        print(f"  {name:14s} median {statistics.median(values):7.1f}   all {' '.join(f'{v:.1f}' for v in sorted(values))}")
    ratio = statistics.median(rates["channels-last"]) / statistics.median(rates["contiguous"])
    print(f"  channels-last / contiguous: {ratio:.2f}x")


if __name__ == "__main__":
    main()
