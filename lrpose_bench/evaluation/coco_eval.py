"""COCO keypoint AP/AR through pycocotools (``COCOeval(iouType="keypoints")``) or an engine proven equal to it
(:mod:`lrpose_bench.evaluation.engines`), with quiet loading.

The numbers are the engine's own: this module only loads files with clear errors, silences the library's
prints on request, and names the 10 stats (:data:`lrpose_bench.records.COCO_STAT_NAMES`). Nothing here
imports torch: scoring a results file stays a small process.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

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
    """A ``pycocotools.coco.COCO`` from a path (or an already loaded ``COCO``/dataset dict), quietly; a file
    or dict is checked first (:func:`check_ground_truth`), so errors name the file, the entry and the field."""
    from pycocotools.coco import COCO

    if isinstance(annotations, COCO):
        return annotations
    if isinstance(annotations, dict):
        check_ground_truth(annotations)
        coco = COCO()
        coco.dataset = annotations
        with _maybe_quiet(quiet):
            coco.createIndex()
        return coco
    path = Path(annotations)
    data = read_json(path, "annotation file")
    check_ground_truth(data, f"annotation file {path}")
    return load_coco(data, quiet)


#: Fields COCOeval reads from every ground-truth annotation (keypoint evaluation).
GT_ANNOTATION_FIELDS: tuple[str, ...] = (
    "id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd",
)


def _numbers(values: list) -> bool:
    """All finite ints/floats (no bools, strings or nulls), type checks at C speed."""
    return set(map(type, values)) <= {int, float} and bool(np.isfinite(np.asarray(values, np.float64)).all())


def check_ground_truth(doc: Any, source: str = "annotations") -> None:
    """What pycocotools' keypoint evaluation needs of a ground truth, as one-line ``ValueError``s naming
    ``source``, the entry and the field: ``images`` with unique integer ids; ``categories`` with ids;
    annotations with unique ids, a known ``image_id`` and the fields of :data:`GT_ANNOTATION_FIELDS`."""
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: top level is a {type(doc).__name__}, expected a JSON object (COCO)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise ValueError(f"{source} lacks the field {key!r} as a list (not a COCO annotation file)")
    for what, need in (("images", ("id",)), ("categories", ("id",)), ("annotations", GT_ANNOTATION_FIELDS)):
        for i, entry in enumerate(doc[what]):
            if not isinstance(entry, dict):
                raise ValueError(f"{source}: {what}[{i}] is a {type(entry).__name__}, expected an object")
            missing = [k for k in need if k not in entry]
            if missing:
                raise ValueError(f"{source}: {what}[{i}] has no field {missing[0]!r} (COCO keypoint evaluation needs it)")
    ids = [im["id"] for im in doc["images"]]
    if not set(map(type, ids)) <= {int}:
        i = next(i for i, v in enumerate(ids) if type(v) is not int)
        raise ValueError(f"{source}: images[{i}]: field 'id' = {ids[i]!r} is not an integer")
    anns = doc["annotations"]
    for what, values in (("image id", ids), ("annotation id", [a["id"] for a in anns])):
        if len(set(values)) != len(values):
            seen: set = set()
            dup = next(v for v in values if v in seen or seen.add(v))
            raise ValueError(f"{source}: {what} {dup!r} appears more than once")
    known = set(ids)
    for i, a in enumerate(anns):
        if a["image_id"] not in known:
            raise ValueError(f"{source}: annotations[{i}]: field 'image_id' = {a['image_id']!r} is not in 'images'")
    columns = {
        "bbox": [a["bbox"] for a in anns], "keypoints": [a["keypoints"] for a in anns],
        "area": [[a["area"]] for a in anns], "num_keypoints": [[a["num_keypoints"]] for a in anns],
    }  # fmt: skip
    for key, rows in columns.items():
        ok = all(isinstance(r, list) and r and (key != "keypoints" or len(r) % 3 == 0) for r in rows)
        if ok and (key != "bbox" or all(len(r) == 4 for r in rows)):
            ok = _numbers([v for r in rows for v in r])
        if not ok:
            i = next(i for i, r in enumerate(rows) if not (isinstance(r, list) and r and _numbers(r)
                                                             and (key != "bbox" or len(r) == 4)
                                                             and (key != "keypoints" or len(r) % 3 == 0)))  # fmt: skip
            value = anns[i][key]
            raise ValueError(f"{source}: annotation id {anns[i]['id']}: field {key!r} = {value!r:.80} is not valid "
                             f"({'4 numbers' if key == 'bbox' else '3*K numbers' if key == 'keypoints' else 'a number'})")  # fmt: skip


def check_results(results: Iterable[dict], source: str = "results") -> list[dict]:
    """Validate COCO keypoint results: objects with ``image_id`` (integer), ``category_id``, ``keypoints``
    (3*K finite numbers, one K for all) and ``score`` (a finite number); returns them as a list. Errors name
    ``source``, the entry and the field."""
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
    if not out:
        return out
    fields = {
        "image_id": ([r["image_id"] for r in out], {int}, "an integer image id"),
        "category_id": ([r["category_id"] for r in out], {int}, "an integer category id"),
        "score": ([r["score"] for r in out], {int, float}, "a finite number"),
    }
    for key, (values, types, what) in fields.items():
        if not set(map(type, values)) <= types or (key == "score" and not np.isfinite(np.asarray(values, float)).all()):
            i = next(i for i, v in enumerate(values) if type(v) not in types or (key == "score" and not _numbers([v])))
            raise ValueError(f"{source}: entry {i} field {key!r} = {values[i]!r} is not {what}")
    lengths = {len(r["keypoints"]) for r in out}
    if len(lengths) > 1:
        first = len(out[0]["keypoints"])
        i = next(i for i, r in enumerate(out) if len(r["keypoints"]) != first)
        raise ValueError(f"{source}: entry {i} has {len(out[i]['keypoints'])} keypoint values, entry 0 has {first}")
    if not _numbers([v for r in out for v in r["keypoints"]]):
        i = next(i for i, r in enumerate(out) if not _numbers(list(r["keypoints"])))
        bad = next(v for v in out[i]["keypoints"] if not _numbers([v]))
        raise ValueError(f"{source}: entry {i} field 'keypoints' holds {bad!r}, expected finite numbers")
    return out


def zero_stats() -> dict[str, float]:
    """All 10 stats at 0 (what an empty result list scores)."""
    return {name: 0.0 for name in COCO_STAT_NAMES}


def _gt_dataset(gt: Any) -> dict:
    """The checked dataset dict of ``gt`` (a path, a dict or a loaded ``COCO``) without building a
    pycocotools index (for the engines that build their own)."""
    if isinstance(gt, dict):
        check_ground_truth(gt)
        return gt
    if isinstance(gt, (str, Path)):
        path = Path(gt)
        data = read_json(path, "annotation file")
        check_ground_truth(data, f"annotation file {path}")
        return data
    dataset = getattr(gt, "dataset", None)
    if not isinstance(dataset, dict):
        raise TypeError(f"ground truth: expected a path, a dataset dict or a COCO object, got {type(gt).__name__}")
    return dataset


def coco_keypoint_stats(gt: Any, results: list[dict], quiet: bool = True, engine: str | None = None) -> dict[str, float]:
    """The 10 COCO keypoint stats (AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL) in [0, 1].

    ``gt``: a ``COCO`` object, a dataset dict or an annotation json path; ``results``: COCO keypoint
    results (image px). No result -> zeros. ``quiet`` silences the engine's prints. Results for images
    absent from ``gt`` are an error naming the first such image id. ``engine``: ``pycocotools`` (the
    reference), ``faster-coco-eval`` or ``hotcoco`` (:mod:`lrpose_bench.evaluation.engines`, equal to
    pycocotools bit for bit); ``None`` is pycocotools.
    ``results`` are never modified; pycocotools and faster-coco-eval add ``ignore`` fields to the
    annotation dicts of a ``gt`` given as a dict or ``COCO`` (hotcoco copies them).
    """
    from lrpose_bench.evaluation.engines import DEFAULT_ENGINE, engine_keypoint_stats, require_engine

    name = require_engine(engine or DEFAULT_ENGINE)
    if name == "pycocotools":
        coco: Any = load_coco(gt, quiet)
        known = set(coco.getImgIds())
    else:
        coco = _gt_dataset(gt)
        known = {im["id"] for im in coco["images"]}
    results = check_results(results)
    if not results:
        return zero_stats()
    stray = next((r["image_id"] for r in results if r["image_id"] not in known), None)
    if stray is not None:
        raise ValueError(f"results: image_id {stray!r} is not in the ground-truth annotations")
    stats = engine_keypoint_stats(name, coco, results, quiet)
    # pycocotools reports -1 where a category/area range has no ground truth; keep its value.
    return {n: float(v) for n, v in zip(COCO_STAT_NAMES, stats)}


def evaluate_results_file(
    predictions: Path, annotations: Path, quiet: bool = True, engine: str | None = None
) -> dict[str, float]:
    """Score a COCO keypoint results file (``predictions.json``) against an annotation file with ``engine``
    (see :func:`coco_keypoint_stats`).

    Returns the 10 stats (:data:`COCO_STAT_NAMES` -> float). Errors name the file and the bad entry.
    """
    from lrpose_bench.evaluation.engines import DEFAULT_ENGINE, require_engine

    require_engine(engine or DEFAULT_ENGINE)  # before reading large files
    predictions = Path(predictions)
    results = read_json(predictions, "predictions file")
    if not isinstance(results, list):
        raise ValueError(f"predictions file {predictions} must hold a JSON list of COCO keypoint results")
    results = check_results(results, str(predictions))
    return coco_keypoint_stats(annotations, results, quiet=quiet, engine=engine)


def stats_table(stats: Mapping[str, float], title: str = "COCO keypoints") -> Any:
    """A rich table of the 10 COCO stats in percent."""
    from rich.table import Table

    table = Table(title=title)
    for name in COCO_STAT_NAMES:
        table.add_column(name, justify="right")
    table.add_row(*(stat_text(stats[n]) for n in COCO_STAT_NAMES))
    return table


def stat_text(value: float | None) -> str:
    """A COCO stat in percent with one decimal; ``-`` for pycocotools' -1 (no ground truth in that area
    range) or a missing value."""
    return "-" if value is None or value < 0 or not math.isfinite(value) else f"{100 * value:.1f}"


def record_stats(stats: Mapping[str, float]) -> dict[str, float | None]:
    """COCO stats for a record: pycocotools' -1 (no ground truth in that area range) becomes null."""
    return {k: None if v is None or v < 0 or not math.isfinite(v) else float(v) for k, v in stats.items()}


__all__ = [
    "load_coco", "check_results", "check_ground_truth", "zero_stats", "coco_keypoint_stats", "evaluate_results_file",
    "stats_table", "stat_text", "record_stats", "RESULT_FIELDS",
]  # fmt: skip
