"""Result records -> pandas: one row per run, then mean/std over seeds per setting.

A *setting* is (experiment, method, option label, backbone, resolution, dataset, boxes, profile);
runs that differ only in their seed are aggregated. The dataset is its name *and* its content hash
(records carry it): two datasets of one name with other annotations (a regenerated embedded set, another
copy of a COCO root) are two settings, shown as ``name (hash)``. Two records of one run id in one
experiment (a copied run folder) are an error, never counted twice. The option label names the method options that
differ between the runs of one method within one experiment (``n_components=3``), leaving out values
equal to the method's defaults, so an ablation's rows stay apart while plain runs keep a bare name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lrpose_bench.evaluation.error_types import ERROR_TYPES
from lrpose_bench.records import COCO_STAT_NAMES, RecordError, iter_records

#: Columns that identify a setting (everything but the seed).
GROUP_KEYS: tuple[str, ...] = (
    "experiment", "method", "label", "backbone", "resolution", "dataset", "boxes", "profile",
)
#: Training-budget hyper-parameters (record ``hparams``) that make a separate row when they differ between
#: runs of one method, options and resolution in one experiment (e.g. SR + heatmap at equal compute and at
#: equal epochs); they are never averaged together as if they were seeds.
BUDGET_KEYS: tuple[str, ...] = ("epochs", "batch_size", "lr")
#: Name used for records whose ``experiment`` is null.
NO_EXPERIMENT = "adhoc"
#: Row columns of the keypoint error types (fractions of labelled joints; NaN for records without them).
ERROR_STATS: tuple[str, ...] = tuple(f"err_{t}" for t in ERROR_TYPES)


class ReportError(ValueError):
    """Bad input to the report (no records, a malformed record): a one-line message naming the file."""


def resolution_pixels(resolution: str, source: str = "record") -> int:
    """Pixel count of an ``"HxW"`` resolution (ordering key of the resolution axis)."""
    h, sep, w = resolution.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) <= 0 or int(w) <= 0:
        raise ReportError(f"{source}: field 'resolution' is {resolution!r}, expected 'HxW' such as '128x96'")
    return int(h) * int(w)


def record_row(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Flatten one validated record into a row; stats must be numbers in [0, 1].

    pycocotools reports -1 for a stat without ground truth (e.g. APM when no medium-sized person
    exists); that becomes NaN, an empty cell, rather than a number.
    """
    stats: dict[str, float] = {}
    for name in COCO_STAT_NAMES:
        value = record["stats"][name]
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1):
            stats[name] = float("nan")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isnan(value) or 0.0 <= value <= 1.0
        ):
            raise ReportError(f"{source}: field 'stats.{name}' is {value!r}, expected a number in [0, 1]")
        stats[name] = float(value)
    dataset = record["dataset"]
    if not isinstance(dataset.get("name"), str) or not dataset["name"]:
        raise ReportError(f"{source}: field 'dataset.name' is missing or empty")
    method = record["method"]
    if not isinstance(method["name"], str) or not isinstance(method["options"], dict):
        raise ReportError(f"{source}: field 'method' needs a string 'name' and an 'options' object")
    return {
        "path": source,
        "run_id": record["run_id"],
        "experiment": record["experiment"] if record["experiment"] is not None else NO_EXPERIMENT,
        "method": method["name"],
        "options": method["options"],
        "backbone": record["backbone"],
        "resolution": record["resolution"],
        "pixels": resolution_pixels(record["resolution"], source),
        "dataset": dataset["name"],
        "dataset_hash": str(dataset.get("hash") or ""),
        "boxes": record["boxes"],
        "profile": record["profile"],
        "budget": {k: record["hparams"].get(k) for k in BUDGET_KEYS},
        "seed": record["seed"],
        **stats,
        **_error_types(record),
        "mean_error_px": float(record["mean_error_px"]) if record["mean_error_px"] is not None else math.nan,
        "created": record["created"],
    }


def _error_types(record: Mapping[str, Any]) -> dict[str, float]:
    """``err_<type>`` fractions from the record's ``error_types`` (GT-box runs), NaN when absent."""
    overall = (record.get("error_types") or {}).get("overall") or {}
    return {f"err_{t}": float(overall[t]) if overall.get(t) is not None else math.nan for t in ERROR_TYPES}


def load_records(runs_dir: str | Path) -> pd.DataFrame:
    """Every ``record.json`` under ``runs_dir`` as one row each, with an option ``label`` column.

    Raises :class:`ReportError` when the folder is missing or holds no record, or a record is malformed.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise ReportError(f"runs folder not found: {root}")
    rows: list[dict[str, Any]] = []
    try:
        for path, record in iter_records(root):
            rows.append(record_row(record, str(path)))
    except (RecordError, FileNotFoundError) as exc:
        raise ReportError(str(exc)) from None
    except ValueError as exc:  # invalid JSON: read_json names the file and position
        raise ReportError(str(exc)) from None
    if not rows:
        raise ReportError(f"no result records (record.json) found under {root}")
    frame = pd.DataFrame(rows)
    _refuse_duplicate_runs(frame)
    frame["dataset"] = dataset_labels(frame)
    frame["label"] = with_budget_labels(frame, option_labels(frame))
    return frame


def _refuse_duplicate_runs(frame: pd.DataFrame) -> None:
    """Two records with one run id in one experiment (e.g. a copied run folder) would count twice."""
    dup = frame[frame.duplicated(["experiment", "run_id"], keep=False)]
    if dup.empty:
        return
    first = dup.iloc[0]
    paths = dup[(dup["experiment"] == first["experiment"]) & (dup["run_id"] == first["run_id"])]["path"]
    raise ReportError(
        f"run id {first['run_id']!r} of experiment {first['experiment']!r} has {len(paths)} records "
        f"({', '.join(paths)}); remove the copies so that each run counts once"
    )


def dataset_labels(frame: pd.DataFrame) -> pd.Series:
    """The dataset name of each row, with its content hash appended (``name (1d3bfb08)``) when rows of
    that name were made on datasets of different content."""
    hashes = frame.groupby("dataset")["dataset_hash"].nunique()
    ambiguous = set(hashes[hashes > 1].index)
    return pd.Series(
        [f"{n} ({h[:8] or 'no hash'})" if n in ambiguous else n for n, h in zip(frame["dataset"], frame["dataset_hash"])],
        index=frame.index, dtype=object,
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value)
    return str(value)


def method_defaults(name: str) -> dict[str, Any] | None:
    """Default options of a registered method (as JSON-like values), or None if it cannot be loaded."""
    try:
        import dataclasses

        from lrpose_bench.method import method_class

        return json.loads(json.dumps(dataclasses.asdict(method_class(name).Options()), default=str))
    except Exception:  # noqa: BLE001 - an unknown or broken method only costs the default filter
        return None


def option_labels(frame: pd.DataFrame) -> pd.Series:
    """Per row, ``"k=v, ..."`` for the options that vary between runs of its method in its experiment.

    Values equal to the method's default are left out (when the defaults can be loaded); a row whose
    varying options are all at their defaults gets ``"default"``; a method whose options never vary, ``""``.
    """
    labels = pd.Series("", index=frame.index, dtype=object)
    defaults_cache: dict[str, dict[str, Any] | None] = {}
    for (_, method), part in frame.groupby(["experiment", "method"], sort=False):
        keys = sorted({k for opts in part["options"] for k in opts})
        varying = [k for k in keys if len({_canonical(opts.get(k)) for opts in part["options"]}) > 1]
        if not varying:
            continue
        if method not in defaults_cache:
            defaults_cache[method] = method_defaults(method)
        defaults = defaults_cache[method]
        for idx, opts in part["options"].items():
            items = []
            for k in varying:
                if k not in opts:
                    continue
                if defaults is not None and k in defaults and _canonical(opts[k]) == _canonical(defaults[k]):
                    continue
                items.append(f"{k}={_format_value(opts[k])}")
            labels[idx] = ", ".join(items) or "default"
    return labels


def with_budget_labels(frame: pd.DataFrame, labels: pd.Series) -> pd.Series:
    """``labels`` plus ``"epochs=N"`` (any of :data:`BUDGET_KEYS`) where runs that share every other
    grouping key (:data:`GROUP_KEYS`: method, options, backbone, resolution, data, profile) were trained
    with different budgets.

    A record without a key (older schema) never splits a group on it. The budget replaces a bare
    ``"default"`` label and is appended to any other.
    """
    out = labels.copy()
    same = ["experiment", "method", "backbone", "resolution", "dataset", "boxes", "profile"]
    for _, part in frame.groupby([*same, labels], sort=False):
        for key in BUDGET_KEYS:
            values = part["budget"].map(lambda b: b.get(key))
            if values.dropna().map(_canonical).nunique() < 2:
                continue
            for idx, value in values.items():
                if value is None:
                    continue
                text = f"{key}={_format_value(value)}"
                out[idx] = text if out[idx] in ("", "default") else f"{out[idx]}, {text}"
    return out


def has_budget(label: str) -> bool:
    """Whether a row label (:func:`with_budget_labels`) names a training budget (``epochs=25``, ...)."""
    return any(item.split("=", 1)[0].strip() in BUDGET_KEYS for item in str(label).split(",") if "=" in item)


def aggregate(frame: pd.DataFrame, stats: tuple[str, ...] = COCO_STAT_NAMES + ERROR_STATS) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof=1; NaN for one run) and ``n`` over seeds per setting.

    Columns: :data:`GROUP_KEYS`, ``pixels``, ``n``, ``seeds``, and ``<stat>_mean`` / ``<stat>_std`` for
    every stat (same units as the records: [0, 1]). Rows are sorted by experiment, resolution (pixels),
    backbone, method and label.
    """
    rows = []
    for key, part in frame.groupby(list(GROUP_KEYS), sort=False, dropna=False):
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key))
        row["pixels"] = int(part["pixels"].iloc[0])
        row["n"] = len(part)
        row["seeds"] = ",".join(str(s) for s in sorted(part["seed"]))
        for stat in (*stats, "mean_error_px"):
            values = part[stat].astype(float)
            row[f"{stat}_mean"] = float(values.mean())
            row[f"{stat}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    out["_order"] = out["method"].map(method_order)
    out = out.sort_values(
        ["experiment", "pixels", "backbone", "dataset", "boxes", "profile", "_order", "method", "label"], kind="stable"
    )
    return out.drop(columns="_order").reset_index(drop=True)


def method_order(name: str) -> int:
    """Position of ``name`` in the method registry (baselines first, CAL last); unknown names after them."""
    from lrpose_bench.method import METHODS

    names = list(METHODS)
    return names.index(name) if name in names else len(names)
