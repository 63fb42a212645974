"""Data: COCO keypoint datasets (real or the embedded synthetic default), crops and augmentation.

``DatasetSpec``/``resolve_dataset``/``default_cache_dir`` import lightly; the torch-backed pieces
(``CocoPoseDataset``, ``AugmentConfig``, ``generate_dataset``) load on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from lrpose_bench.data.spec import DatasetSpec, default_cache_dir, resolve_dataset

_LAZY = {
    "CocoPoseDataset": "lrpose_bench.data.coco",
    "AugmentConfig": "lrpose_bench.data.augment",
    "generate_dataset": "lrpose_bench.data.synth",
    "DEFAULT_TRAIN_IMAGES": "lrpose_bench.data.synth",
    "DEFAULT_VAL_IMAGES": "lrpose_bench.data.synth",
}

__all__ = ["DatasetSpec", "default_cache_dir", "resolve_dataset", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrpose_bench.data' has no attribute {name!r}")
