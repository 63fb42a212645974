"""Optional TensorBoard logging of a training run (``--hp tensorboard=true``): events in ``<run>/tensorboard``.

Per epoch: every number of the epoch's ``log.csv`` row (loss terms, learning rate, images/s, seconds)
under ``train/<column>``, the same series ``lrpose plot training`` draws, and ``predictions``: a few fixed,
unaugmented training crops upsampled with nearest neighbour (pixels show), ground truth in white and the
current model's decoded prediction in orange. Only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from lrpose_bench.keypoints import SKELETON
from lrpose_bench.method import Geometry, PoseMethod

#: Crops shown per epoch, and the height (px) they are upsampled to.
NUM_IMAGES, IMAGE_HEIGHT = 4, 256
_GT, _PRED = (255, 255, 255), (230, 159, 0)  # white; Okabe-Ito orange


class TensorBoardLogger:
    """Writes a run's scalars and prediction images; ``samples`` is an unaugmented dataset (its first
    :data:`NUM_IMAGES` items are shown every epoch)."""

    def __init__(self, run_dir: Path, method: PoseMethod, geometry: Geometry, samples: Any, device: torch.device,
                 channels_last: bool = False) -> None:  # fmt: skip
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ValueError(f"--hp tensorboard=true needs the tensorboard package ({exc}); pip install tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.method, self.geometry, self.device, self.channels_last = method, geometry, device, channels_last
        count = min(NUM_IMAGES, len(samples))
        self.batch = torch.utils.data.default_collate([samples[i] for i in range(count)]) if count else None

    def log_epoch(self, row: Mapping[str, Any], model: nn.Module, epoch: int) -> None:
        """Scalars of ``row`` (numeric entries) and the prediction images, at step ``epoch`` (1-based)."""
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"train/{key}", float(value), epoch)
        if self.batch is not None:
            self.writer.add_images("predictions", self._images(model), epoch, dataformats="NHWC")
        self.writer.flush()

    @torch.no_grad()
    def _images(self, model: nn.Module) -> np.ndarray:
        """``(N, H, W, 3)`` uint8: the crops upsampled, ground truth and prediction drawn (crop px)."""
        from lrpose_bench.engine.trainer import _as_float, batch_to_device, model_inputs

        batch = batch_to_device(self.batch, self.device)
        was_training = model.training
        model.eval()
        try:
            outputs = _as_float(model(model_inputs(batch, self.channels_last)))
        finally:
            model.train(was_training)
        coords, _ = self.method.decode(outputs, self.geometry)
        crops = self.batch["image"].numpy().transpose(0, 2, 3, 1)
        gt, vis = self.batch["keypoints"].numpy(), self.batch["visibility"].numpy() > 0
        pred = coords.float().cpu().numpy()
        return np.stack([draw_pose(c, g, v, p) for c, g, v, p in zip(crops, gt, vis, pred)])


def draw_pose(crop: np.ndarray, gt: np.ndarray, visible: np.ndarray, pred: np.ndarray, height: int = IMAGE_HEIGHT) -> np.ndarray:
    """``crop (h, w, 3)`` uint8 upsampled x ``height // h`` (nearest), with the ground truth ``gt (K, 2)``
    (white; joints where ``visible``) and the prediction ``pred (K, 2)`` (orange), both in crop px."""
    import cv2

    s = max(1, height // crop.shape[0])
    image = np.ascontiguousarray(np.repeat(np.repeat(crop, s, 0), s, 1))

    def px(p: np.ndarray) -> tuple[int, int]:  # crop px (centres at integers) -> upsampled px
        return int(round((p[0] + 0.5) * s - 0.5)), int(round((p[1] + 0.5) * s - 0.5))

    for points, color in ((gt, _GT), (pred, _PRED)):
        for a, b in SKELETON:
            if visible[a] and visible[b]:
                cv2.line(image, px(points[a]), px(points[b]), color, 1, cv2.LINE_AA)
        for k in np.flatnonzero(visible):
            cv2.circle(image, px(points[k]), max(2, s // 2), color, -1 if color == _PRED else 1, cv2.LINE_AA)
    return image


__all__ = ["TensorBoardLogger", "draw_pose"]
