"""The codec oracle: how well can each method *represent* the ground truth at a resolution?

For every validation person (ground-truth box, as in the GT-box evaluation), the crop affine of the
method (biased or unbiased, its crop size for ``--res``) takes the keypoints to crop px; the method
encodes them; its *ideal outputs* are decoded; the coordinates go back to image px and are scored with
COCO OKS AP (keypoint scores = decoded scores, box score 1, no OKS-NMS since boxes are ground truth)
and the mean distance to the labelled joints (image px). No network, no images: the numbers are the
ceiling the output representation itself puts on a method (quantisation of heatmaps, bins, offsets).

Ideal outputs come from the contract's ``PoseMethod.targets_as_outputs`` (the targets themselves for
regression heads; methods with logit heads, such as SimCC, override it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from lrpose_bench.evaluation import coco_keypoint_stats, make_coco_results, per_joint_errors
from lrpose_bench.geometry import BOX_PADDING, apply_affine, box_to_center_scale, crop_matrix, invert_affine
from lrpose_bench.method import METHODS, PoseMethod, build_method

#: Keys of each method's oracle row, in table order.
ORACLE_KEYS: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "mean_px_error")


@dataclass(frozen=True)
class GroundTruth:
    """Validation persons as arrays (image px): ``image_ids (N,)``, ``boxes (N, 4)`` xywh,
    ``keypoints (N, K, 3)`` (x, y, v), ``areas (N,)``, and the pycocotools ``coco`` index."""

    image_ids: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    areas: np.ndarray
    coco: Any


def load_ground_truth(annotations: str | Path) -> GroundTruth:
    """Non-crowd persons with labelled keypoints and a usable box, exactly as the GT-box evaluation uses them."""
    from lrpose_bench.data.coco import build_coco, gt_instances, load_annotation_file

    doc = load_annotation_file(Path(annotations))
    image_ids = np.array([im["id"] for im in doc["images"]], np.int64)
    inst = gt_instances(doc, {int(i): k for k, i in enumerate(image_ids)})
    return GroundTruth(
        image_ids=image_ids[inst.image_index],
        boxes=inst.box,
        keypoints=inst.keypoints,
        areas=inst.area.astype(np.float64),
        coco=build_coco(doc),
    )


def ideal_outputs(method: PoseMethod, targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The outputs a perfect network would produce for ``targets`` (the method's own hook)."""
    return method.targets_as_outputs(targets)


def oracle_predictions(
    method: PoseMethod,
    gt: GroundTruth,
    resolution: tuple[int, int],
    chunk_elements: int = 1 << 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded ideal outputs of every person: coords ``(N, K, 2)`` image px and scores ``(N, K)``.

    ``resolution = (width, height)`` of ``--res``. Persons are processed in chunks of about
    ``chunk_elements`` map values (``K * h * w`` per person) to bound memory at high resolution.
    """
    geometry = method.geometry(resolution)
    w, h = geometry.crop_size
    n, k = gt.keypoints.shape[:2]
    if n == 0:
        return np.zeros((0, k, 2)), np.zeros((0, k))
    center, scale = box_to_center_scale(gt.boxes, w / h, BOX_PADDING)
    matrix = crop_matrix(center, scale, (w, h), unbiased=method.unbiased)  # (N, 2, 3) image -> crop
    points = apply_affine(gt.keypoints[..., :2], matrix)  # (N, K, 2) crop px
    # Every labelled joint is encoded, also one just outside the crop: each method's own support rule
    # (patch/disc touching the map) decides what it can represent. Training zeroes joints outside the crop.
    visibility = (gt.keypoints[..., 2] > 0).astype(np.float32)
    hw = geometry.heatmap_size[0] * geometry.heatmap_size[1]
    step = max(1, chunk_elements // max(1, k * hw * 3))
    coords, scores = [], []
    for i in range(0, n, step):
        kp = torch.from_numpy(points[i : i + step].astype(np.float32))
        vis = torch.from_numpy(visibility[i : i + step])
        with torch.no_grad():
            targets = method.encode(kp, vis, geometry)
            c, s = method.decode(ideal_outputs(method, targets), geometry)
        coords.append(c.detach().double().cpu().numpy())
        scores.append(s.detach().double().cpu().numpy())
    crop_xy = np.concatenate(coords)
    return apply_affine(crop_xy, invert_affine(matrix)), np.concatenate(scores)


def oracle_scores(method: PoseMethod, gt: GroundTruth, resolution: tuple[int, int]) -> dict[str, float]:
    """One oracle row: COCO AP/AR (in [0, 1]) and ``mean_px_error`` (image px) of ``method``."""
    coords, scores = oracle_predictions(method, gt, resolution)
    n = coords.shape[0]
    results = make_coco_results(
        gt.image_ids, coords, scores, np.ones(n), gt.areas,
        keypoint_score_threshold=method.keypoint_score_threshold, oks_nms_threshold=None,
    )  # fmt: skip
    stats = coco_keypoint_stats(gt.coco, results)
    _, mean_error = per_joint_errors(coords, gt.keypoints) if n else (None, float("nan"))
    row = {key: stats[key] for key in ORACLE_KEYS if key in stats}
    row["mean_px_error"] = float(mean_error)
    return row


def _val_annotations(spec: Any) -> Path:
    """The validation annotation file of a ``DatasetSpec`` (or a path to the json itself)."""
    if isinstance(spec, (str, Path)):
        return Path(spec)
    ann = getattr(spec, "val_ann", None)
    if ann is None:
        raise ValueError(f"oracle: {spec!r} has no 'val_ann' (expected a DatasetSpec or an annotation path)")
    return Path(ann)


def run_oracle(
    spec: Any,
    resolution: tuple[int, int],
    methods: list[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Oracle rows ``{method: {AP, AP50, AP75, APM, APL, AR, mean_px_error}}`` on the validation split.

    ``spec``: a :class:`lrpose_bench.data.DatasetSpec` (its ``val_ann``) or an annotation json path;
    ``resolution = (width, height)``; ``methods`` default: every registered method; ``options``: per-method
    option overrides (``{"cal": {"target": "disc"}}``); ``progress(name)`` is called before each method.
    """
    names = list(methods) if methods else list(METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise KeyError(f"unknown method {unknown[0]!r}; valid methods: {', '.join(METHODS)}")
    built = {name: build_method(name, dict((options or {}).get(name, {}))) for name in names}
    for method in built.values():
        method.geometry(resolution)  # a resolution a method cannot take fails before any work
    gt = load_ground_truth(_val_annotations(spec))
    rows: dict[str, dict[str, float]] = {}
    for name, method in built.items():
        if progress is not None:
            progress(name)
        rows[name] = oracle_scores(method, gt, resolution)
    return rows


def check_oracle_request(resolution: tuple[int, int], methods: list[str] | None = None,
                         options: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Validate method names, options and the resolution without touching data; returns the names."""
    names = list(methods) if methods else list(METHODS)
    for name in names:
        build_method(name, dict((options or {}).get(name, {}))).geometry(resolution)
    return names


__all__ = ["ORACLE_KEYS", "GroundTruth", "load_ground_truth", "ideal_outputs", "oracle_predictions",
           "oracle_scores", "run_oracle", "check_oracle_request"]
