"""Result records: the JSON file ``lrpose run`` writes per run and ``lrpose report`` reads.

Layout of one run folder (``results/runs/<run_id>/``):
    record.json         this schema (written last, atomically: its presence means the run finished)
    predictions.json    COCO keypoint results of the evaluation
    log.csv             one row per epoch
    method.json         the method's artifacts (e.g. the fitted GMM of CAL+MGM), when it has any
    coarse_errors.npz   coarse-prediction errors on the validation set, heatmap px (``errors (N, K, 2)``,
                        ``valid (N, K)``), for ``lrpose plot offsets``; only for heatmap-based methods
    checkpoints/        ``last.pt`` (and per-stage copies); never committed
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from lrpose_bench.io import read_json, write_json

SCHEMA_VERSION = 1

#: The 10 COCO keypoint stats, in pycocotools' ``COCOeval.stats`` order.
COCO_STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

#: Top-level keys every record has, with their types.
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema": int,
    "run_id": str,
    "experiment": (str, type(None)),
    "method": dict,  # {"name": str, "options": {...}}
    "backbone": str,
    "resolution": str,  # as the paper writes it: "HxW", e.g. "128x96"
    "input_size": list,  # crop [w, h] px
    "model_input_size": list,  # [w, h] px the backbone sees
    "heatmap_size": list,  # [w, h] px
    "dataset": dict,  # {"name", "root", "hash", "train_instances", "val_instances"}
    "boxes": str,  # "gt" or "det:<file name>"
    "profile": str,
    "hparams": dict,
    "seed": int,
    "stats": dict,  # COCO_STAT_NAMES -> float in [0, 1]
    "per_joint_error_px": dict,  # keypoint name -> mean error, image px
    "mean_error_px": (float, type(None)),  # null when no joint could be measured (e.g. detected boxes)
    "train_images_per_s": float,
    "train_seconds": float,
    "eval_seconds": float,
    "versions": dict,
    "git_commit": (str, type(None)),
    "created": str,  # ISO 8601
}


class RecordError(ValueError):
    """A record that does not follow the schema (the message names the file and field)."""


def validate_record(record: dict[str, Any], source: str = "record") -> dict[str, Any]:
    """Check ``record`` against the schema; returns it, or raises :class:`RecordError` naming the field."""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: top level is a {type(record).__name__}, expected a JSON object")
    for key, typ in REQUIRED_FIELDS.items():
        if key not in record:
            raise RecordError(f"{source}: missing field {key!r}")
        value = record[key]
        takes_float = typ is float or (isinstance(typ, tuple) and float in typ)
        if takes_float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, typ):
            raise RecordError(f"{source}: field {key!r} has type {type(value).__name__}, expected {typ}")
    if record["schema"] != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema {record['schema']} is not {SCHEMA_VERSION}")
    missing = [s for s in COCO_STAT_NAMES if s not in record["stats"]]
    if missing:
        raise RecordError(f"{source}: field 'stats' lacks {missing}")
    if "name" not in record["method"] or "options" not in record["method"]:
        raise RecordError(f"{source}: field 'method' needs 'name' and 'options'")
    return record


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Validate and write ``record.json`` atomically into ``run_dir`` as strict JSON (a NaN or infinite
    number is written as ``null``)."""
    path = Path(run_dir) / "record.json"
    validate_record(record, str(path))
    return write_json(path, record, strict=True)


def read_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one ``record.json``."""
    return validate_record(read_json(path, "result record"), str(path))


def iter_records(root: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every ``record.json`` under ``root`` (recursively), validated, sorted by path."""
    for path in sorted(Path(root).rglob("record.json")):
        yield path, read_record(path)
