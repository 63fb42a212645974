"""COCO keypoint AP/AR through pycocotools (``COCOeval(iouType="keypoints")``), with quiet loading.

The numbers are pycocotools' own: this module only loads files with clear errors, silences the library's
prints on request, and names the 10 stats (:data:`lrpose_bench.records.COCO_STAT_NAMES`).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lrpose_bench.io import read_json
from lrpose_bench.records import COCO_STAT_NAMES

#: Keys every COCO keypoint result must have.
RESULT_FIELDS: tuple[str, ...] = ("image_id", "category_id", "keypoints", "score")


@contextlib.contextmanager
def _maybe_quiet(quiet: bool):
    if not quiet:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_coco(annotations: Any, quiet: bool = True):
    """A ``pycocotools.coco.COCO`` from a path (or an already loaded ``COCO``/dataset dict), quietly."""
    from pycocotools.coco import COCO

    if isinstance(annotations, COCO):
        return annotations
    if isinstance(annotations, dict):
        coco = COCO()
        coco.dataset = annotations
        with _maybe_quiet(quiet):
            coco.createIndex()
        return coco
    path = Path(annotations)
    data = read_json(path, "annotation file")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"annotation file {path} lacks the field {key!r} (not a COCO annotation file)")
    return load_coco(data, quiet)


def check_results(results: Iterable[dict], source: str = "results") -> list[dict]:
    """Validate COCO keypoint results (fields, 3*K keypoint values); returns them as a list."""
    out = list(results)
    for i, r in enumerate(out):
        if not isinstance(r, dict):
            raise ValueError(f"{source}: entry {i} is a {type(r).__name__}, expected an object")
        missing = [f for f in RESULT_FIELDS if f not in r]
        if missing:
            raise ValueError(f"{source}: entry {i} lacks field {missing[0]!r}")
        kp = r["keypoints"]
        if not isinstance(kp, (list, tuple)) or len(kp) % 3 or not kp:
            raise ValueError(f"{source}: entry {i} field 'keypoints' must be a list of 3*K numbers, got {kp!r:.60}")
    return out


def zero_stats() -> dict[str, float]:
    """All 10 stats at 0 (what an empty result list scores)."""
    return {name: 0.0 for name in COCO_STAT_NAMES}


def coco_keypoint_stats(gt: Any, results: list[dict], quiet: bool = True) -> dict[str, float]:
    """The 10 COCO keypoint stats (AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL) in [0, 1].

    ``gt``: a ``COCO`` object, a dataset dict or an annotation json path; ``results``: COCO keypoint
    results (image px). No result -> zeros. ``quiet`` silences pycocotools' prints. Results for images
    absent from ``gt`` are an error naming the first such image id.
    """
    from pycocotools.cocoeval import COCOeval

    coco = load_coco(gt, quiet)
    results = check_results(results)
    if not results:
        return zero_stats()
    known = set(coco.getImgIds())
    stray = next((r["image_id"] for r in results if r["image_id"] not in known), None)
    if stray is not None:
        raise ValueError(f"results: image_id {stray!r} is not in the ground-truth annotations")
    with _maybe_quiet(quiet):
        dets = coco.loadRes([dict(r) for r in results])  # loadRes adds fields to the dicts it gets
        ev = COCOeval(coco, dets, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=np.float64)
    # pycocotools reports -1 where a category/area range has no ground truth; keep its value.
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, stats)}


def evaluate_results_file(predictions: Path, annotations: Path, quiet: bool = True) -> dict[str, float]:
    """Score a COCO keypoint results file (``predictions.json``) against an annotation file.

    Returns the 10 stats (:data:`COCO_STAT_NAMES` -> float). Errors name the file and the bad entry.
    """
    predictions = Path(predictions)
    results = read_json(predictions, "predictions file")
    if not isinstance(results, list):
        raise ValueError(f"predictions file {predictions} must hold a JSON list of COCO keypoint results")
    results = check_results(results, str(predictions))
    return coco_keypoint_stats(annotations, results, quiet=quiet)


__all__ = ["load_coco", "check_results", "zero_stats", "coco_keypoint_stats", "evaluate_results_file", "RESULT_FIELDS"]
