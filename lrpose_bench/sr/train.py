"""Train an SR front end on (low-res, high-res) person-crop pairs cut from the pose dataset itself (L1).

Pairs (:class:`CropPairs`): for a person box, the low-res crop is the pose pipeline's crop at ``--res``
(biased crop affine ``M_lr``, :func:`lrpose_bench.geometry.crop_matrix`); the high-res target is cut
from the same image with ``M_hr = U o M_lr``, ``U`` the area-aligned upsampling map
``x_hr = (x_lr + 0.5) * s - 0.5`` (:func:`lrpose_bench.geometry.upsample_map`), so the target covers
exactly the low-res crop's pixels, as bicubic and the SR networks assume. The low-res crop follows the
pose pipeline's low-resolution protocol (:class:`lrpose_bench.data.coco.CocoPoseDataset`): ``direct``
(the released code: one bilinear warp straight to the small size, no anti-aliasing) or ``antialias``
(warp at 4x the crop size, then area-average down).

Augmentation (training only): box scale x exp(U(-0.25, 0.25)), rotation U(-30, 30) deg with p 0.4,
horizontal flip with p 0.5. Optimiser: Adam (betas 0.9, 0.99), cosine decay to 1% of ``lr``.
SPSR also learns its gradient branch: L1 between its predicted gradient map and the high-res crop's.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lrpose_bench.geometry import box_to_center_scale, crop_matrix, upsample_map
from lrpose_bench.sr.archs import BicubicUpsample, build_sr, gradient_map, sr_arch
from lrpose_bench.sr.weights import save_sr_weights

#: Weight of SPSR's gradient-branch L1 term.
GRADIENT_LOSS_WEIGHT: float = 0.5


def upsample_affine(matrix: np.ndarray, scale: int) -> np.ndarray:
    """``U o M``: compose image->low-res px matrices ``(..., 2, 3)`` with the area-aligned x``scale`` map."""
    up = upsample_map((0, 0), scale)
    out = np.array(matrix, dtype=np.float64, copy=True)
    out[..., 0, :] *= up.scale[0]
    out[..., 1, :] *= up.scale[1]
    out[..., 0, 2] += up.offset[0]
    out[..., 1, 2] += up.offset[1]
    return out


class CropPairs:
    """Person crops of one COCO annotation file as aligned ``(low-res, high-res)`` uint8 RGB pairs.

    ``low_size = (w, h)`` low-res crop px; high-res is ``(w * scale, h * scale)``. Persons are the pose
    pipeline's (:func:`lrpose_bench.data.coco.gt_instances`: non-crowd, labelled, usable box), padded by
    :data:`lrpose_bench.geometry.BOX_PADDING`.
    """

    def __init__(self, ann_file: Path, image_dir: Path, low_size: Sequence[int], scale: int,
                 protocol: str = "direct", cache_images: int = 128) -> None:
        from lrpose_bench.data.coco import (
            LOWRES_PROTOCOLS,
            gt_instances,
            load_annotation_file,
        )

        if protocol not in LOWRES_PROTOCOLS:
            raise ValueError(f"--lowres-protocol {protocol!r} is not one of {', '.join(LOWRES_PROTOCOLS)}")
        self.low_size = (int(low_size[0]), int(low_size[1]))
        self.high_size = (self.low_size[0] * scale, self.low_size[1] * scale)
        self.scale, self.protocol = int(scale), protocol
        doc = load_annotation_file(Path(ann_file))
        index = {int(im["id"]): k for k, im in enumerate(doc["images"])}
        self.image_files = [Path(image_dir) / str(im["file_name"]) for im in doc["images"]]
        inst = gt_instances(doc, index)
        self.image_index = inst.image_index
        self.centers, self.box_sizes = box_to_center_scale(inst.box, self.low_size[0] / self.low_size[1])
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cache_size = cache_images

    def __len__(self) -> int:
        return int(self.image_index.shape[0])

    def _image(self, path: Path) -> np.ndarray:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"image not found or unreadable: {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._cache[path] = rgb
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return rgb

    def pair(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(low (h, w, 3), high (h*s, w*s, 3))`` uint8 RGB; ``rng`` given = random augmentation."""
        size, rotation, flip = self.box_sizes[index], 0.0, False
        if rng is not None:
            size = size * math.exp(rng.uniform(-0.25, 0.25))
            rotation = rng.uniform(-30.0, 30.0) if rng.random() < 0.4 else 0.0
            flip = bool(rng.random() < 0.5)
        m_low = crop_matrix(self.centers[index], size, self.low_size, rotation, unbiased=False, flip=flip)
        image = self._image(self.image_files[int(self.image_index[index])])
        warp = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        high = cv2.warpAffine(image, upsample_affine(m_low, self.scale), self.high_size, **warp)
        if self.protocol == "direct":
            low = cv2.warpAffine(image, m_low, self.low_size, **warp)
        else:  # as CocoPoseDataset: warp at f x the crop size (area-aligned), then area-average f x f blocks
            from lrpose_bench.data.coco import ANTIALIAS_FACTOR as f

            big = cv2.warpAffine(image, upsample_affine(m_low, f), (self.low_size[0] * f, self.low_size[1] * f), **warp)
            low = cv2.resize(big, self.low_size, interpolation=cv2.INTER_AREA)
        return low, high

    def batch(self, indices: Sequence[int], rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Float RGB in [0, 1]: low ``(B, 3, h, w)`` and high ``(B, 3, h*s, w*s)``."""
        pairs = [self.pair(int(i), rng) for i in indices]
        low = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float().div_(255.0)
        high = torch.from_numpy(np.stack([p[1] for p in pairs])).permute(0, 3, 1, 2).float().div_(255.0)
        return low, high


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of RGB in [0, 1] ``(B, 3, H, W)`` (``pred`` clamped to [0, 1])."""
    mse = (pred.clamp(0.0, 1.0) - target).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _index_stream(n: int, rng: np.random.Generator) -> Iterator[int]:
    while True:
        yield from rng.permutation(n).tolist()


@dataclass(frozen=True)
class SRTrainConfig:
    """Settings of one SR training run (``lrpose sr train``); ``low_size`` is ``(w, h)`` low-res px."""

    model: str = "srresnet"
    scale: int = 2
    low_size: tuple[int, int] = (96, 128)
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 16
    lr: float = 2e-4
    seed: int = 0
    protocol: str = "direct"
    net_config: tuple[tuple[str, Any], ...] = ()
    val_size: int = 32


def train_sr(cfg: SRTrainConfig, data: Any, out: Path, device: str | torch.device = "cpu",
             progress: bool = True) -> dict[str, Any]:
    """Train front end ``cfg.model`` on crop pairs from ``data`` (a :class:`lrpose_bench.data.DatasetSpec`
    with a train split), save the weights atomically to ``out``.

    Returns ``{out, model, scale, steps, final_loss, psnr_sr, psnr_bicubic, val_pairs}`` (PSNR in dB on a
    fixed, unaugmented batch of up to ``val_size`` val-split pairs).
    """
    arch = sr_arch(cfg.model)
    if not arch.learned:
        raise ValueError(f"SR model {arch.name!r} has no weights to train")
    if cfg.scale not in arch.scales:
        raise ValueError(f"SR model {arch.name!r} supports --sr-scale {arch.scales}, got {cfg.scale}")
    if cfg.steps is not None and cfg.epochs is not None:
        raise ValueError("give --steps or --epochs, not both")
    if cfg.batch_size < 1 or cfg.lr <= 0:
        raise ValueError(f"--batch-size must be >= 1 and --lr > 0, got {cfg.batch_size} and {cfg.lr}")
    net_config = {**arch.defaults, **dict(cfg.net_config)}
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(device)
    if data.train_ann is None:
        raise FileNotFoundError(f"dataset {data.root} has no train split (annotations/person_keypoints_train2017.json)")
    train_set = CropPairs(data.train_ann, data.train_images, cfg.low_size, cfg.scale, cfg.protocol)
    val_set = CropPairs(data.val_ann, data.val_images, cfg.low_size, cfg.scale, cfg.protocol)
    for split, pairs in (("train", train_set), ("val", val_set)):
        if len(pairs) == 0:
            raise ValueError(f"no labelled persons in the {split} split of {data.root}")
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    steps = cfg.steps if cfg.steps is not None else (cfg.epochs or 1) * steps_per_epoch
    if steps < 1:
        raise ValueError(f"--steps/--epochs must give at least one step, got {steps}")

    net = build_sr(arch.name, cfg.scale, net_config).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=0.01 * cfg.lr)
    with_gradient = hasattr(net, "forward_with_gradient")
    stream = _index_stream(len(train_set), rng)
    net.train()
    loss_value = float("nan")
    bar = _progress(progress)
    with bar:
        task = bar.add_task(f"training {arch.name} x{cfg.scale}", total=steps, loss="")
        for _ in range(steps):
            low, high = (t.to(device) for t in train_set.batch([next(stream) for _ in range(cfg.batch_size)], rng))
            if with_gradient:
                sr, grad = net.forward_with_gradient(low)
                loss = F.l1_loss(sr, high) + GRADIENT_LOSS_WEIGHT * F.l1_loss(grad, gradient_map(high))
            else:
                loss = F.l1_loss(net(low), high)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = float(loss.detach())
            bar.update(task, advance=1, loss=f"L1 {loss_value:.4f}")

    net.eval()
    n_val = min(cfg.val_size, len(val_set))
    low, high = (t.to(device) for t in val_set.batch(range(n_val)))
    with torch.no_grad():
        psnr_sr = float(psnr(net(low), high).mean())
        psnr_bicubic = float(psnr(BicubicUpsample(cfg.scale)(low), high).mean())
    save_sr_weights(out, net, arch.name, cfg.scale, net_config)
    return {"out": str(out), "model": arch.name, "scale": cfg.scale, "steps": steps, "final_loss": loss_value,
            "psnr_sr": psnr_sr, "psnr_bicubic": psnr_bicubic, "val_pairs": n_val}


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[loss]}"), disable=not enabled, transient=False)


__all__ = ["CropPairs", "SRTrainConfig", "train_sr", "psnr", "upsample_affine"]
