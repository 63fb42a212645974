"""``lrpose sr ...``: super-resolution front ends (train one on the pose data; list them)."""

from __future__ import annotations

from pathlib import Path

import typer

from lrpose_bench.cli.common import (
    DATA_HELP,
    UserError,
    console,
    parse_res,
    parse_set,
    run_guarded,
)

sr_app = typer.Typer(help="Super-resolution front ends for SR + heatmap (method sr_heatmap).", no_args_is_help=True)


@sr_app.command("models")
def models_cmd() -> None:
    """List the SR front ends, their scales and default sizes."""
    from rich.table import Table

    from lrpose_bench.sr.archs import ALIASES, SR_MODELS

    table = Table("name", "scales", "defaults", "description")
    for arch in SR_MODELS.values():
        aliases = [a for a, n in ALIASES.items() if n == arch.name]
        name = arch.name + (f" ({', '.join(aliases)})" if aliases else "")
        table.add_row(name, ",".join(map(str, arch.scales)), " ".join(f"{k}={v}" for k, v in arch.defaults.items()),
                      arch.description)
    console.print(table)


@sr_app.command("train")
def train_cmd(
    sr: str = typer.Option("srresnet", "--sr", help="SR front end to train: srresnet, esrgan, edsr, spsr (see `lrpose sr models`)."),
    sr_scale: int = typer.Option(2, "--sr-scale", help="Upscaling factor: high-res crop = low-res crop x this."),
    res: str = typer.Option("128x96", "--res", help="Low-res crop size HxW (height x width), as `lrpose run --res`."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache folder for the embedded dataset (default $LRPOSE_CACHE or ~/.cache/lrpose-bench)."),
    steps: int | None = typer.Option(None, "--steps", help="Optimiser steps (default: --epochs 1 when neither is given)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the training persons (alternative to --steps)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Crop pairs per step."),
    lr: float = typer.Option(2e-4, "--lr", help="Adam learning rate (cosine decay to 1% of it)."),
    out: Path | None = typer.Option(
        None, "--out", help="Weights file to write (basicsr layout {'params': ...}). Default: the path "
        "`sr_heatmap` looks in when --sr-weights is not given ($LRPOSE_CACHE/weights/sr/<sr>_x<scale>.pth, "
        "LRPOSE_CACHE defaulting to ~/.cache/lrpose-bench)."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation, sampling and augmentation."),
    lowres_protocol: str = typer.Option(
        "direct", "--lowres-protocol", help="How low-res crops are made: direct (one bilinear warp to the small "
        "size, no anti-aliasing: the released code) or antialias (area-average of the high-res crop)."),
    net: list[str] | None = typer.Option(
        None, "--net", help="Network size setting KEY=VALUE, repeatable (e.g. --net num_feat=32 --net num_block=4)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N, or auto (cuda when available)."),
    val_size: int = typer.Option(32, "--val-size", help="Val-split pairs for the final PSNR (SR vs bicubic)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train an SR front end (L1) on low/high-res person-crop pairs cut from the dataset; print PSNR vs bicubic."""
    low_size = parse_res(res)
    run_guarded(_train, sr, sr_scale, low_size, data, cache_dir, steps, epochs, batch_size, lr, out, seed, lowres_protocol,
                net, device, val_size, progress)


def _train(sr: str, sr_scale: int, low_size: tuple[int, int], data: Path | None, cache_dir: Path | None, steps: int | None,
           epochs: int | None, batch_size: int, lr: float, out: Path | None, seed: int, protocol: str,
           net: list[str] | None, device: str, val_size: int, progress: bool) -> None:
    import torch

    from lrpose_bench.sr.archs import sr_arch
    from lrpose_bench.sr.train import SRTrainConfig, train_sr
    from lrpose_bench.sr.weights import default_weights_path

    arch = sr_arch(sr)
    net_config = _typed_net_config(arch.name, arch.defaults, parse_set(net))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    from lrpose_bench.data import resolve_dataset

    dataset = resolve_dataset(data.expanduser() if data else None, cache_dir, need_train=True)
    target = (out or default_weights_path(arch.name, sr_scale)).expanduser()
    cfg = SRTrainConfig(model=arch.name, scale=sr_scale, low_size=low_size, steps=steps, epochs=epochs,
                        batch_size=batch_size, lr=lr, seed=seed, protocol=protocol,
                        net_config=tuple(net_config.items()), val_size=val_size)
    result = train_sr(cfg, dataset, target, device=device, progress=progress)
    console.print(
        f"PSNR on {result['val_pairs']} val crops: {arch.name} x{sr_scale} {result['psnr_sr']:.2f} dB, "
        f"bicubic {result['psnr_bicubic']:.2f} dB ({result['psnr_sr'] - result['psnr_bicubic']:+.2f} dB)"
    )
    console.print(f"wrote {result['out']} ({result['steps']} steps, final L1 {result['final_loss']:.4f}); "
                  f"use it with --sr {arch.name} --sr-scale {sr_scale} --sr-weights {result['out']}", soft_wrap=True)


def _typed_net_config(model: str, defaults: dict, values: dict[str, str]) -> dict:
    out = {}
    for key, text in values.items():
        if key not in defaults:
            raise UserError(f"--net {key}={text}: {model!r} has no setting {key!r}; settings: {', '.join(defaults)}")
        kind = type(defaults[key])
        try:
            out[key] = kind(text)
        except ValueError:
            raise UserError(f"--net {key}={text}: expected a {kind.__name__}") from None
    return out


def register(app: typer.Typer) -> None:
    """Mount ``lrpose sr`` on the main app."""
    app.add_typer(sr_app, name="sr")


__all__ = ["sr_app", "register"]
