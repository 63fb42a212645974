"""Evaluation: COCO keypoint AP/AR (pycocotools, or an engine proven equal to it), OKS, rescoring + OKS-NMS,
per-joint errors, error types.

The names below load their submodule on first use (PEP 562), so that importing this package, or scoring a
results file (``coco_eval``, ``engines``), never imports torch: only ``errors`` and ``postprocess`` do.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> submodule that defines it.
_EXPORTS: dict[str, str] = {
    "check_results": "coco_eval",
    "coco_keypoint_stats": "coco_eval",
    "evaluate_results_file": "coco_eval",
    "load_coco": "coco_eval",
    "record_stats": "coco_eval",
    "stats_table": "coco_eval",
    "zero_stats": "coco_eval",
    "DEFAULT_ENGINE": "engines",
    "ENGINES": "engines",
    "EngineUnavailable": "engines",
    "installed_engines": "engines",
    "ERROR_TYPES": "error_types",
    "error_type_summary": "error_types",
    "format_error_types": "error_types",
    "keypoint_error_types": "error_types",
    "per_joint_dict": "errors",
    "per_joint_errors": "errors",
    "make_coco_results": "postprocess",
    "oks": "postprocess",
    "oks_nms": "postprocess",
    "rescore": "postprocess",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
