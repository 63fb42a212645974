"""From decoded keypoints to COCO keypoint results: OKS, rescoring, OKS-NMS (all image px).

The protocol is HRNet's (also SimpleBaseline, DARK, UDP, the CAL release):

* rescoring: ``score = box_score * mean(keypoint scores > threshold)`` (0 when none is above);
* OKS-NMS per image at OKS 0.9: instances sorted by score; one is dropped when its OKS with an already
  kept instance of the same image *exceeds* the threshold. The OKS between two predictions uses all K
  joints and the mean of their two areas, as HRNet's ``oks_nms`` does.

Everything is batched torch (float64); the greedy NMS runs over the within-image rank (at most the
largest number of instances in one image) for all images of a chunk at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lrpose_bench.keypoints import OKS_SIGMAS

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def _t(x: ArrayLike) -> torch.Tensor:
    """Any array -> float64 CPU torch tensor (a copy only when needed)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _ids(x: ArrayLike) -> np.ndarray:
    """Image ids -> int64 numpy ``(N,)``."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return arr.astype(np.int64).reshape(-1)


def oks(
    pred: ArrayLike,
    gt: ArrayLike,
    areas: ArrayLike,
    sigmas: ArrayLike = OKS_SIGMAS,
    pairwise: bool = True,
) -> torch.Tensor:
    """Object keypoint similarity (COCO's formula), batched, image px.

    ``pred (N, K, 2)``; ``gt (M, K, 2|3)`` (a third column is the COCO visibility: only joints with
    ``v > 0`` count; a ground truth with no labelled joint gets OKS 0). ``areas`` are the ground truths'
    areas (image px^2), broadcastable to the result. ``pairwise=True`` -> ``(N, M)`` matrix; ``False``
    -> ``(N,)`` for ``gt (N, K, ...)`` row by row. Per joint ``exp(-d^2 / (2 * area * (2 sigma)^2))``,
    averaged over counted joints.
    """
    p, g = _t(pred), _t(gt)
    s = _t(sigmas)
    if p.shape[-1] != 2 or g.shape[-1] not in (2, 3) or p.shape[-2] != g.shape[-2] or s.numel() != p.shape[-2]:
        raise ValueError(f"oks: incompatible shapes pred {tuple(p.shape)}, gt {tuple(g.shape)}, sigmas {tuple(s.shape)}")
    counted = g[..., 2] > 0 if g.shape[-1] == 3 else torch.ones(g.shape[:-1], dtype=torch.bool)
    if pairwise:
        d2 = ((p[:, None, :, :] - g[None, :, :, :2]) ** 2).sum(-1)  # (N, M, K)
        counted = counted[None].expand_as(d2)
    else:
        if p.shape[0] != g.shape[0]:
            raise ValueError(f"oks(pairwise=False): pred has {p.shape[0]} rows, gt {g.shape[0]}")
        d2 = ((p - g[..., :2]) ** 2).sum(-1)  # (N, K)
    a = _t(areas)
    e = d2 / (2.0 * (2.0 * s) ** 2) / (a[..., None] + np.spacing(1))
    sim = torch.exp(-e) * counted
    n = counted.sum(-1)
    return torch.where(n > 0, sim.sum(-1) / n.clamp(min=1), torch.zeros_like(sim[..., 0]))


def rescore(box_scores: ArrayLike, keypoint_scores: ArrayLike, threshold: float = 0.2) -> torch.Tensor:
    """HRNet rescoring ``(N,)``: box score times the mean keypoint score over keypoints above ``threshold``."""
    raw = keypoint_scores.detach().cpu() if isinstance(keypoint_scores, torch.Tensor) else torch.as_tensor(np.asarray(keypoint_scores))
    above = raw > threshold  # compared in the scores' own dtype (a float32 0.2 is not above 0.2)
    ks = _t(keypoint_scores)
    n = above.sum(-1)
    mean = torch.where(n > 0, (ks * above).sum(-1) / n.clamp(min=1), torch.zeros_like(ks[..., 0]))
    return _t(box_scores) * mean


def oks_nms(
    image_ids: ArrayLike,
    coords: ArrayLike,
    scores: ArrayLike,
    areas: ArrayLike,
    threshold: float = 0.9,
    sigmas: ArrayLike = OKS_SIGMAS,
    max_elements: int = 1 << 24,
) -> torch.Tensor:
    """Greedy OKS-NMS within each image; returns a keep mask ``(N,)`` (bool).

    ``coords (N, K, 2)`` image px, ``scores (N,)``, ``areas (N,)`` image px^2. Instances are padded into
    ``(images, rank, ...)`` blocks; chunks of images bound memory to about ``max_elements`` OKS terms.
    """
    ids = torch.from_numpy(_ids(image_ids))
    xy, sc, ar = _t(coords), _t(scores), _t(areas)
    n = ids.numel()
    keep = torch.zeros(n, dtype=torch.bool)
    if n == 0:
        return keep
    # Sort by image, then by descending score (stable: ties keep input order).
    order = torch.from_numpy(np.lexsort((-sc.numpy(), ids.numpy())))
    uniq, counts = torch.unique_consecutive(ids[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(uniq.numel()), counts)
    rank = torch.arange(n) - starts[group]
    m = int(counts.max())
    k = xy.shape[1]
    pad_xy = torch.zeros(uniq.numel(), m, k, 2, dtype=torch.float64)
    pad_area = torch.ones(uniq.numel(), m, dtype=torch.float64)
    valid = torch.zeros(uniq.numel(), m, dtype=torch.bool)
    pad_xy[group, rank] = xy[order]
    pad_area[group, rank] = ar[order]
    valid[group, rank] = True
    kept = torch.zeros_like(valid)
    s = _t(sigmas)
    var2 = 2.0 * (2.0 * s) ** 2
    chunk = max(1, max_elements // max(1, m * m * k))
    for g0 in range(0, uniq.numel(), chunk):
        p = pad_xy[g0 : g0 + chunk]
        a = 0.5 * (pad_area[g0 : g0 + chunk, :, None] + pad_area[g0 : g0 + chunk, None, :])
        d2 = ((p[:, :, None] - p[:, None, :]) ** 2).sum(-1)  # (G, M, M, K)
        sim = torch.exp(-d2 / var2 / (a[..., None] + np.spacing(1))).mean(-1)  # (G, M, M)
        v = valid[g0 : g0 + chunk]
        suppressed = torch.zeros_like(v)
        for t in range(m):  # greedy over within-image rank, all images of the chunk at once
            take = v[:, t] & ~suppressed[:, t]
            kept[g0 : g0 + chunk, t] = take
            suppressed |= take[:, None] & (sim[:, t, :] > threshold)
    keep[order] = kept[group, rank]
    return keep


def make_coco_results(
    image_ids: ArrayLike,
    coords: ArrayLike,
    keypoint_scores: ArrayLike,
    box_scores: ArrayLike,
    areas: ArrayLike,
    keypoint_score_threshold: float = 0.2,
    oks_nms_threshold: float | None = 0.9,
    category_id: int = 1,
) -> list[dict]:
    """COCO keypoint results ``[{"image_id", "category_id", "keypoints": [x, y, s] * K, "score"}]``.

    ``coords (N, K, 2)`` image px, ``keypoint_scores (N, K)``, ``box_scores (N,)``, ``areas (N,)`` (image
    px^2, used by OKS-NMS only). Scores are rescored (:func:`rescore`); ``oks_nms_threshold=None`` skips NMS.
    """
    xy, ks = _t(coords), _t(keypoint_scores)
    ids = _ids(image_ids)
    n = ids.shape[0]
    if xy.shape[0] != n or ks.shape[0] != n or xy.ndim != 3 or xy.shape[-1] != 2 or ks.shape != xy.shape[:2]:
        raise ValueError(
            f"make_coco_results: shapes disagree: image_ids {n}, coords {tuple(xy.shape)}, "
            f"keypoint_scores {tuple(ks.shape)}"
        )
    if n == 0:
        return []
    score = rescore(box_scores, ks, keypoint_score_threshold)
    if oks_nms_threshold is not None:
        keep = oks_nms(ids, xy, score, areas, oks_nms_threshold)
    else:
        keep = torch.ones(n, dtype=torch.bool)
    flat = torch.cat([xy, ks[..., None]], -1).reshape(n, -1)
    idx = torch.nonzero(keep).flatten().tolist()
    flat_l, score_l = flat.tolist(), score.tolist()
    return [
        {"image_id": int(ids[i]), "category_id": category_id, "keypoints": flat_l[i], "score": float(score_l[i])}
        for i in idx
    ]


__all__ = ["oks", "rescore", "oks_nms", "make_coco_results"]
