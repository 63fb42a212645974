"""Generated COCO keypoint evaluation sets that exercise every branch of ``COCOeval(iouType="keypoints")``:
the data on which evaluation engines are proven equal (``tests/test_eval_engines.py``, ``lrpose bench eval``).

:func:`synthetic_ground_truth` makes persons of every area range (small ones are scored by no area-range
stat, medium and large by APM/APL) with partly labelled joints, persons with no labelled joint (ignored),
crowd regions and empty images. :func:`perturbed_results` makes predictions for any COCO ground truth:
noisy keypoints of three qualities, missed persons, duplicate detections, whole-body and single-pair
left/right swaps, false positives, detections inside crowd regions, images with more detections than
``maxDets`` (20), and scores rounded to 3 decimals so that ties occur. Everything is a function of the seed.
Pure numpy: no torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lrpose_bench.keypoints import FLIP_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS

#: A standing person's joints in its box, (x, y) as fractions of the box width and height (COCO order).
_TEMPLATE = np.array([
    [0.50, 0.08], [0.54, 0.06], [0.46, 0.06], [0.58, 0.08], [0.42, 0.08],  # nose, eyes, ears
    [0.66, 0.22], [0.34, 0.22], [0.73, 0.38], [0.27, 0.38], [0.76, 0.52], [0.24, 0.52],  # arms
    [0.60, 0.55], [0.40, 0.55], [0.62, 0.75], [0.38, 0.75], [0.62, 0.95], [0.38, 0.95],  # legs
])  # fmt: skip
#: Image size of the generated set (COCO's most common).
IMAGE_SIZE = (640, 480)
#: Mean persons per image: 5,000 images hold about 11,500 persons, as the issue's measurement.
PERSONS_PER_IMAGE = 2.3


def synthetic_ground_truth(num_images: int, seed: int = 0) -> dict[str, Any]:
    """A COCO person-keypoints dataset dict of ``num_images`` images (see the module docstring)."""
    rng = np.random.default_rng([seed, 1])
    width, height = IMAGE_SIZE
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height})
        for _ in range(int(rng.poisson(PERSONS_PER_IMAGE))):
            annotations.append(_person(rng, image_id, len(annotations) + 1))
        if rng.random() < 0.08:  # a crowd region: a large box, no keypoints
            w, h = float(rng.uniform(120, 400)), float(rng.uniform(100, 300))
            x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 1,
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(0.6 * w * h, 2),
                "keypoints": [0] * (3 * NUM_KEYPOINTS), "num_keypoints": 0,
            })  # fmt: skip
    return {
        "info": {"description": f"lrpose-bench evaluation stress set ({num_images} images, seed {seed})"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
                        "skeleton": []}],
    }  # fmt: skip


def _person(rng: np.random.Generator, image_id: int, ann_id: int) -> dict[str, Any]:
    """One annotated person: a box of a random size (sqrt(area) 12..400 px), jittered template joints,
    each labelled visible (2), occluded (1) or not at all (0; then x = y = 0 as COCO writes it)."""
    width, height = IMAGE_SIZE
    side = float(np.exp(rng.uniform(np.log(12.0), np.log(400.0))))
    aspect = rng.uniform(1.4, 2.6)  # height / width
    w = float(min(side / np.sqrt(aspect), width - 1.0))
    h = float(min(side * np.sqrt(aspect), height - 1.0))
    x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
    xy = _TEMPLATE * [w, h] + [x, y] + rng.normal(0.0, 0.03, size=(NUM_KEYPOINTS, 2)) * [w, h]
    xy = np.clip(np.round(xy), 0, [width - 1, height - 1])
    p_unlabelled = 0.15 if side > 40 else 0.45
    v = rng.choice([0, 1, 2], size=NUM_KEYPOINTS, p=[p_unlabelled, 0.1, 0.9 - p_unlabelled])
    if rng.random() < 0.05:
        v[:] = 0  # a person with no labelled joint: ignored by keypoint evaluation
    kp = np.concatenate([xy * (v[:, None] > 0), v[:, None]], axis=1).astype(int)
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
        "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h * float(rng.uniform(0.45, 0.7)), 2),
        "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((v > 0).sum()),
    }  # fmt: skip


def perturbed_results(gt: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """COCO keypoint results for the ground truth ``gt`` (a dataset dict) with misses, duplicates, swaps,
    false positives, detections in crowd regions and score ties (see the module docstring); shuffled."""
    rng = np.random.default_rng([seed, 2])
    sizes = {im["id"]: (float(im.get("width", 640)), float(im.get("height", 480))) for im in gt["images"]}
    out: list[dict[str, Any]] = []
    for ann in gt["annotations"]:
        x, y, w, h = (float(v) for v in ann["bbox"])
        if ann.get("iscrowd", 0):
            for _ in range(int(rng.integers(1, 5))):  # unannotated persons of the crowd
                cw, ch = w * rng.uniform(0.1, 0.3), h * rng.uniform(0.3, 0.6)
                cx, cy = x + rng.uniform(0, w - cw), y + rng.uniform(0, h - ch)
                out.append(_result(rng, ann["image_id"], _TEMPLATE * [cw, ch] + [cx, cy], rng.uniform(0.05, 0.9)))
            continue
        if rng.random() < 0.12:  # missed
            continue
        kp = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
        xy = np.where(kp[:, 2:] > 0, kp[:, :2], _TEMPLATE * [w, h] + [x, y])  # guess unlabelled joints
        scale = np.sqrt(max(float(ann["area"]), 1.0))
        quality = rng.choice([0.02, 0.06, 0.15], p=[0.5, 0.35, 0.15])
        xy = xy + rng.normal(0.0, quality * scale, size=xy.shape)
        roll = rng.random()
        if roll < 0.10:  # whole-body left/right inversion
            xy = xy[list(FLIP_INDEX)]
        elif roll < 0.15:  # one left/right pair swapped
            left = int(rng.choice([5, 7, 9, 11, 13, 15]))
            xy[[left, left + 1]] = xy[[left + 1, left]]
        score = float(np.clip(1.0 - 2.0 * quality + rng.normal(0.0, 0.1), 0.01, 1.0))
        out.append(_result(rng, ann["image_id"], xy, score))
        if rng.random() < 0.10:  # a duplicate detection of the same person, noisier and lower scored
            dup = xy + rng.normal(0.0, 0.05 * scale, size=xy.shape)
            out.append(_result(rng, ann["image_id"], dup, score * rng.uniform(0.5, 1.0)))
    for image_id, (iw, ih) in sizes.items():
        extra = int(rng.poisson(0.4))
        if rng.random() < 0.01:
            extra += 25  # more detections than maxDets: the cut by score (with ties) matters
        for _ in range(extra):  # false positives
            side = float(np.exp(rng.uniform(np.log(12.0), np.log(300.0))))
            fw, fh = min(side / 1.4, iw - 1), min(side * 1.4, ih - 1)
            fx, fy = rng.uniform(0, iw - fw), rng.uniform(0, ih - fh)
            out.append(_result(rng, image_id, _TEMPLATE * [fw, fh] + [fx, fy], rng.uniform(0.01, 0.6)))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _result(rng: np.random.Generator, image_id: int, xy: np.ndarray, score: float) -> dict[str, Any]:
    """One COCO keypoint result: coordinates with 2 decimals, keypoint scores and ``score`` with 3 (ties)."""
    kp = np.concatenate([np.round(xy, 2), np.round(rng.uniform(0.05, 1.0, size=(len(xy), 1)), 3)], axis=1)
    return {"image_id": int(image_id), "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
            "score": round(float(score), 3)}  # fmt: skip


def write_stress_set(folder: str | Path, num_images: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``annotations.json`` and ``predictions.json`` of a generated set into ``folder``; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gt = synthetic_ground_truth(num_images, seed)
    results = perturbed_results(gt, seed)
    ann_path, pred_path = folder / "annotations.json", folder / "predictions.json"
    ann_path.write_text(json.dumps(gt))
    pred_path.write_text(json.dumps(results))
    return ann_path, pred_path


__all__ = ["IMAGE_SIZE", "PERSONS_PER_IMAGE", "perturbed_results", "synthetic_ground_truth", "write_stress_set"]
