"""Keypoint error types after Ronchi & Perona, "Benchmarking and Error Diagnosis in Multi-Instance Pose
Estimation" (ICCV 2017), for predictions paired with their ground-truth person (ground-truth boxes).

Each labelled joint's prediction is scored by COCO's keypoint similarity
``ks = exp(-d^2 / (2 * area * (2 sigma_k)^2))`` (``d`` image px, ``area`` the person's annotated area px^2,
``sigma_k`` :data:`lrpose_bench.keypoints.OKS_SIGMAS`) and given the first type that applies:

* ``good``      ``ks >= 0.85`` to its own joint;
* ``jitter``    ``0.5 <= ks < 0.85`` to its own joint (a small localisation error);
* ``inversion`` ``ks >= 0.5`` to the left/right partner joint of the same person (e.g. the left wrist
  predicted on the right wrist; the nose has no partner);
* ``swap``      ``ks >= 0.5`` to the same joint or its partner on another person of the same image;
* ``miss``      anything else.

Ronchi & Perona's inversion counts any other joint of the same person; this one counts the left/right
partner only, the confusion that flip handling and left/right cues decide.
"""

from __future__ import annotations

import numpy as np

from lrpose_bench.keypoints import FLIP_INDEX, KEYPOINT_NAMES, OKS_SIGMAS

#: Error types in precedence order (codes 0..4; -1 marks an unlabelled joint).
ERROR_TYPES: tuple[str, ...] = ("good", "jitter", "inversion", "swap", "miss")
GOOD_KS, HIT_KS = 0.85, 0.5


def _ks(pred: np.ndarray, target: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Keypoint similarity of ``pred (..., K, 2)`` to ``target (..., K, 2)``; ``area (...)`` px^2."""
    d2 = ((pred - target) ** 2).sum(-1)
    var = (2.0 * OKS_SIGMAS) ** 2 * 2.0 * np.maximum(area, 1e-9)[..., None]
    return np.exp(-d2 / var)


def _same_image_pairs(image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i != j``, of instances in the same image (vectorised, any order)."""
    _, group, sizes = np.unique(image_ids, return_inverse=True, return_counts=True)
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    reps = sizes[group]  # each instance pairs with every member of its group
    rows = np.repeat(np.arange(len(image_ids)), reps)
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(reps) - reps, reps)
    cols = order[starts[group[rows]] + offsets]
    keep = rows != cols
    return rows[keep], cols[keep]


def keypoint_error_types(coords: np.ndarray, gt: np.ndarray, areas: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Error type code ``(N, K)`` (index into :data:`ERROR_TYPES`, -1 for unlabelled joints).

    ``coords (N, K, 2)`` predictions, ``gt (N, K, 3)`` the paired ground truth with COCO visibility, both
    image px; ``areas (N,)`` the ground-truth areas px^2; ``image_ids (N,)``.
    """
    coords, gt = np.asarray(coords, np.float64), np.asarray(gt, np.float64)
    areas, image_ids = np.asarray(areas, np.float64), np.asarray(image_ids)
    n, k = coords.shape[:2]
    if gt.shape != (n, k, 3) or areas.shape != (n,) or image_ids.shape != (n,):
        raise ValueError(f"keypoint_error_types: shapes {coords.shape}, {gt.shape}, {areas.shape}, {image_ids.shape}")
    labelled = gt[..., 2] > 0
    partner = np.asarray(FLIP_INDEX)
    own = _ks(coords, gt[..., :2], areas)
    has_partner = (partner != np.arange(k))[None, :] & labelled[:, partner]
    inverted = has_partner & (_ks(coords, gt[:, partner, :2], areas) >= HIT_KS)
    swapped = np.zeros((n, k), bool)
    rows, cols = _same_image_pairs(image_ids)
    if len(rows):
        other = gt[cols]
        same = (_ks(coords[rows], other[..., :2], areas[cols]) >= HIT_KS) & (other[..., 2] > 0)
        mirror = (_ks(coords[rows], other[:, partner, :2], areas[cols]) >= HIT_KS) & (other[:, partner, 2] > 0)
        np.logical_or.at(swapped, rows, same | mirror)
    codes = np.full((n, k), 4, np.int64)
    codes[swapped] = 3
    codes[inverted] = 2
    codes[own >= HIT_KS] = 1
    codes[own >= GOOD_KS] = 0
    codes[~labelled] = -1
    return codes


def error_type_summary(codes: np.ndarray) -> dict[str, object]:
    """Fractions of labelled joints per type, overall and per joint (``{"overall": {type: f}, "per_joint":
    {joint: {type: f}}}``; a joint labelled nowhere gets ``None``)."""
    labelled = codes >= 0
    counts = np.stack([(codes == t).sum(0) for t in range(len(ERROR_TYPES))], -1)  # (K, T)
    total = labelled.sum()
    overall = {t: float(counts[:, i].sum() / total) if total else None for i, t in enumerate(ERROR_TYPES)}
    per_joint = {
        name: ({t: float(counts[j, i] / labelled[:, j].sum()) for i, t in enumerate(ERROR_TYPES)}
               if labelled[:, j].any() else None)
        for j, name in enumerate(KEYPOINT_NAMES)
    }  # fmt: skip
    return {"overall": overall, "per_joint": per_joint}


def format_error_types(summary: dict[str, object]) -> str:
    """One line: ``keypoints: good 61.2 %, jitter 20.1 %, ...`` (percent of labelled joints)."""
    overall = summary["overall"]
    assert isinstance(overall, dict)
    parts = [f"{t} {100 * v:.1f} %" for t, v in overall.items() if v is not None]
    return "keypoints: " + ", ".join(parts) + " (error types of labelled joints)"


__all__ = ["ERROR_TYPES", "keypoint_error_types", "error_type_summary", "format_error_types"]
