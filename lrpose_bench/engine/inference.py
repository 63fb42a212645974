"""Batched inference and COCO evaluation of a trained model.

Per batch (on the device): crops -> model (+ the horizontally flipped crops, brought back with
``method.flip_back`` and merged with ``method.merge_flip``) -> ``method.decode`` (crop px) -> image px
through each sample's ``crop_to_image`` affine. Then, on the CPU over the whole set: rescoring with the
method's keypoint-score threshold, OKS-NMS, pycocotools AP. With ground-truth boxes also the per-joint
error (image px) and the coarse-prediction error (heatmap px, for ``lrpose plot offsets``).

Under DDP every process predicts a strided share of the set; rank 0 gathers and scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from lrpose_bench.engine import distributed as D
from lrpose_bench.engine.env import usable_workers
from lrpose_bench.engine.trainer import (
    _as_float,
    autocast_context,
    batch_to_device,
    loader_generator,
    model_inputs,
)
from lrpose_bench.geometry import apply_affine
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import Geometry, PoseMethod


@dataclass
class Predictions:
    """Predictions of a whole evaluation set (numpy, dataset order).

    ``coords (N,K,2)`` image px; ``scores (N,K)``; ``gt (N,K,3)`` image px with COCO visibility and
    ``gt_areas (N,)`` the annotated areas px^2 (GT boxes; the detection's area otherwise);
    ``coarse_errors (N,K,2)`` heatmap px (coarse prediction - ground truth) with ``coarse_valid (N,K)``,
    or ``None`` for methods without a coarse heatmap; ``ok (N,)`` False where the image was undecodable.
    """

    image_ids: np.ndarray
    coords: np.ndarray
    scores: np.ndarray
    box_scores: np.ndarray
    areas: np.ndarray
    gt: np.ndarray
    gt_areas: np.ndarray
    ok: np.ndarray
    coarse_errors: np.ndarray | None
    coarse_valid: np.ndarray | None

    @staticmethod
    def concat(parts: list["Predictions"]) -> "Predictions":
        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return Predictions(**{name: cat(name) for name in Predictions.__dataclass_fields__})  # type: ignore[arg-type]

    def take(self, order: np.ndarray) -> "Predictions":
        return Predictions(**{k: None if v is None else v[order] for k, v in self.__dict__.items()})


@torch.no_grad()
def predict_outputs(
    model: nn.Module, method: PoseMethod, x: torch.Tensor, flip: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Outputs for normalised crops ``x``: ``(single pass, merged with the flip test when flip)``."""
    outputs = _as_float(model(x))
    if not flip:
        return outputs, outputs
    flipped = _as_float(model(torch.flip(x, dims=[-1])))
    return outputs, method.merge_flip(outputs, method.flip_back(flipped, FLIP_INDEX))


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    method: PoseMethod,
    geometry: Geometry,
    dataset: Dataset,
    device: torch.device,
    *,
    batch_size: int = 64,
    workers: int = 0,
    flip: bool = True,
    amp: str = "off",
    channels_last: bool = False,
    progress: bool = False,
) -> Predictions:
    """Predict every sample of ``dataset`` (this process's share under DDP; rank 0 gets all of them)."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if D.active() else (0, 1)
    indices = np.arange(rank, len(dataset), world)
    loader = DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size=batch_size,
        shuffle=False,
        num_workers=usable_workers(workers),
        pin_memory=device.type == "cuda",
        generator=loader_generator(0, -2),
    )
    was_training = model.training
    model.eval()
    parts: list[Predictions] = []
    bar = _bar(progress and rank == 0, len(loader))
    try:
        for batch in loader:
            batch = batch_to_device(batch, device)
            with autocast_context(device, amp):
                single, outputs = predict_outputs(model, method, model_inputs(batch, channels_last), flip)
            outputs = _as_float(outputs)
            coords, scores = method.decode(outputs, geometry)
            image_xy = apply_affine(coords.double(), batch["crop_to_image"].double())
            # Coarse errors from the single (unflipped) pass: what the MGM is fitted on in training.
            coarse = method.coarse(_as_float(single), geometry)
            errors = valid = None
            if coarse is not None:
                gt_hm = geometry.crop_to_heatmap.forward(batch["keypoints"].double())
                errors = (coarse.double() - gt_hm).cpu().numpy()
                valid = ((batch["visibility"] > 0) & batch["ok"].bool()[:, None]).cpu().numpy()
            parts.append(
                Predictions(
                    image_ids=batch["image_id"].cpu().numpy().astype(np.int64),
                    coords=image_xy.cpu().numpy(),
                    scores=scores.float().cpu().numpy(),
                    box_scores=batch["box_score"].double().cpu().numpy(),
                    # OKS-NMS area: the padded crop box, HRNet's/MMPose's np.prod(s*200) (not the GT area)
                    areas=batch["scale"].double().prod(-1).cpu().numpy(),
                    gt=batch["gt_keypoints"].double().cpu().numpy(),
                    gt_areas=batch["area"].double().cpu().numpy(),
                    ok=batch["ok"].bool().cpu().numpy(),
                    coarse_errors=errors,
                    coarse_valid=valid,
                )
            )
            if bar is not None:
                bar[0].advance(bar[1])
    finally:
        if bar is not None:
            bar[0].stop()
        model.train(was_training)
    local = Predictions.concat(parts) if parts else None
    gathered = D.gather_objects((indices, local))
    pieces = [(idx, p) for idx, p in gathered if p is not None]
    if not pieces:
        raise ValueError("the evaluation set is empty: no person instance to evaluate")
    order = np.argsort(np.concatenate([idx for idx, _ in pieces]), kind="stable")
    return Predictions.concat([p for _, p in pieces]).take(order)


@dataclass
class EvalResult:
    """Scores of one evaluation; errors are ``None`` with detected boxes (no GT pairing)."""

    stats: dict[str, float]
    results: list[dict[str, Any]]
    per_joint_error: np.ndarray | None  # (K,) image px
    mean_error: float | None  # image px
    coarse_errors: np.ndarray | None  # (N, K, 2) heatmap px
    coarse_valid: np.ndarray | None  # (N, K)
    instances: int
    skipped_images: int
    seconds: float
    error_types: dict[str, Any] | None = None  # GT boxes: keypoint error types (evaluation.error_types)


def score_predictions(
    pred: Predictions,
    coco_gt: Any,
    method: PoseMethod,
    *,
    gt_boxes: bool,
    oks_nms_threshold: float = 0.9,
    engine: str | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]], np.ndarray | None, float | None, dict[str, Any] | None]:
    """COCO stats (scored by evaluation ``engine``, default pycocotools), result list and (GT boxes only)
    per-joint / mean errors and error types of ``pred``."""
    from lrpose_bench.evaluation import (
        coco_keypoint_stats,
        error_type_summary,
        keypoint_error_types,
        make_coco_results,
        per_joint_errors,
    )

    ok = pred.ok
    results = make_coco_results(
        pred.image_ids[ok],
        pred.coords[ok],
        pred.scores[ok],
        pred.box_scores[ok],
        pred.areas[ok],
        keypoint_score_threshold=method.keypoint_score_threshold,
        oks_nms_threshold=oks_nms_threshold,
    )
    stats = coco_keypoint_stats(coco_gt, results, engine=engine)
    per_joint, mean, types = (None, None, None)
    if gt_boxes:
        per_joint, mean = per_joint_errors(pred.coords[ok], pred.gt[ok])
        codes = keypoint_error_types(pred.coords[ok], pred.gt[ok], pred.gt_areas[ok], pred.image_ids[ok])
        types = error_type_summary(codes)
    return stats, results, per_joint, mean, types


def evaluate(
    model: nn.Module,
    method: PoseMethod,
    geometry: Geometry,
    dataset: Any,
    device: torch.device,
    *,
    batch_size: int = 64,
    workers: int = 0,
    flip: bool = True,
    amp: str = "off",
    channels_last: bool = False,
    oks_nms_threshold: float = 0.9,
    progress: bool = False,
    engine: str | None = None,
) -> EvalResult | None:
    """Predict and score ``dataset`` (a ``CocoPoseDataset``; its ``.coco`` is the ground truth).

    Returns the result on rank 0 and ``None`` on the other ranks.
    """
    t0 = time.perf_counter()
    pred = predict_dataset(
        model, method, geometry, dataset, device,
        batch_size=batch_size, workers=workers, flip=flip, amp=amp, channels_last=channels_last, progress=progress,
    )  # fmt: skip
    if D.active() and torch.distributed.get_rank() != 0:
        return None
    gt_boxes = str(getattr(dataset, "boxes", "gt")) == "gt"
    stats, results, per_joint, mean, types = score_predictions(
        pred, dataset.coco, method, gt_boxes=gt_boxes, oks_nms_threshold=oks_nms_threshold, engine=engine
    )
    return EvalResult(
        stats=stats,
        results=results,
        per_joint_error=per_joint,
        mean_error=mean,
        coarse_errors=pred.coarse_errors if gt_boxes else None,
        coarse_valid=pred.coarse_valid if gt_boxes else None,
        instances=int(len(pred.image_ids)),
        skipped_images=int((~pred.ok).sum()),
        seconds=time.perf_counter() - t0,
        error_types=types,
    )


def _bar(enabled: bool, total: int):
    from lrpose_bench.cli.common import console

    if not enabled or not console.is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    progress.start()
    return progress, progress.add_task("eval", total=total)
