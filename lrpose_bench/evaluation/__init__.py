"""Evaluation: COCO keypoint AP/AR (pycocotools), OKS, rescoring + OKS-NMS, per-joint errors, error types."""

from lrpose_bench.evaluation.coco_eval import (
    check_results,
    coco_keypoint_stats,
    evaluate_results_file,
    load_coco,
    zero_stats,
)
from lrpose_bench.evaluation.error_types import (
    ERROR_TYPES,
    error_type_summary,
    format_error_types,
    keypoint_error_types,
)
from lrpose_bench.evaluation.errors import per_joint_dict, per_joint_errors
from lrpose_bench.evaluation.postprocess import make_coco_results, oks, oks_nms, rescore

__all__ = [
    "check_results",
    "coco_keypoint_stats",
    "evaluate_results_file",
    "load_coco",
    "zero_stats",
    "ERROR_TYPES",
    "error_type_summary",
    "format_error_types",
    "keypoint_error_types",
    "per_joint_dict",
    "per_joint_errors",
    "make_coco_results",
    "oks",
    "oks_nms",
    "rescore",
]
