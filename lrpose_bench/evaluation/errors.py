"""Per-joint localisation errors in image px (Euclidean distance over labelled joints)."""

from __future__ import annotations

import numpy as np
import torch

from lrpose_bench.keypoints import KEYPOINT_NAMES


def per_joint_errors(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> tuple[np.ndarray, float]:
    """Mean distance per joint ``(K,)`` and over all labelled joints (float), image px.

    ``pred (N, K, 2)``; ``gt (N, K, 3)`` with the COCO visibility last (only ``v > 0`` counts). A joint
    labelled nowhere gets NaN; the overall mean is over every labelled (instance, joint), not a mean of
    the per-joint means. No labelled joint at all -> overall NaN.
    """
    p = pred.detach().cpu().double().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred, np.float64)
    g = gt.detach().cpu().double().numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt, np.float64)
    if p.ndim != 3 or p.shape[-1] != 2 or g.shape != p.shape[:2] + (3,):
        raise ValueError(f"per_joint_errors: pred must be (N, K, 2) and gt (N, K, 3); got {p.shape} and {g.shape}")
    labelled = g[..., 2] > 0
    dist = np.where(labelled, np.linalg.norm(p - g[..., :2], axis=-1), 0.0)
    count = labelled.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(count > 0, dist.sum(0) / np.maximum(count, 1), np.nan)
    total = int(labelled.sum())
    overall = float(dist.sum() / total) if total else float("nan")
    return per_joint, overall


def per_joint_dict(per_joint: np.ndarray, names: tuple[str, ...] = KEYPOINT_NAMES) -> dict[str, float]:
    """``(K,)`` errors -> ``{joint name: error}`` (as result records store them)."""
    return {name: float(v) for name, v in zip(names, per_joint)}


__all__ = ["per_joint_errors", "per_joint_dict"]
