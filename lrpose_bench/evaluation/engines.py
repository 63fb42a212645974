"""COCO keypoint evaluation engines: pycocotools (the reference) and two faster implementations of the same
protocol, faster-coco-eval (C++) and hotcoco (Rust), behind one function.

:func:`engine_keypoint_stats` returns the 10 ``COCOeval.stats`` of an engine as a float64 array; loading,
checks and naming of the stats stay in :mod:`lrpose_bench.evaluation.coco_eval`. The engines are proven
equal to pycocotools, all 10 stats bit for bit, by ``tests/test_eval_engines.py`` (committed COCO samples
and a generated set with crowd regions, duplicates, misses and left/right swaps) and by
``lrpose bench eval``. No engine imports torch.

Which engine scores is a parameter of :func:`lrpose_bench.evaluation.coco_eval.coco_keypoint_stats`,
passed down from the run's ``eval_engine`` or ``lrpose eval --engine``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from typing import Any

import numpy as np

from lrpose_bench.errors import OptionValueError, UserInputError

#: Engine name -> (module imported, pip package that provides it).
ENGINE_PACKAGES: dict[str, tuple[str, str]] = {
    "pycocotools": ("pycocotools", "pycocotools"),
    "faster-coco-eval": ("faster_coco_eval", "faster-coco-eval"),
    "hotcoco": ("hotcoco", "hotcoco"),
}
#: Engine names, the reference first.
ENGINES: tuple[str, ...] = tuple(ENGINE_PACKAGES)
#: The reference engine, and the default everywhere.
DEFAULT_ENGINE = "pycocotools"


class EngineUnavailable(UserInputError):
    """The chosen evaluation engine is not installed (the message names the pip package)."""


def check_engine_name(name: str, source: str = "--engine") -> str:
    """``name`` if it is a known engine; otherwise an :class:`OptionValueError` naming ``source`` and the choices."""
    if name not in ENGINE_PACKAGES:
        raise OptionValueError(f"{source} {name!r}: unknown evaluation engine; choose one of {', '.join(ENGINES)}")
    return name


def engine_available(name: str) -> bool:
    """Whether engine ``name``'s package is importable (checked without importing it)."""
    module = ENGINE_PACKAGES[check_engine_name(name)][0]
    return importlib.util.find_spec(module) is not None


def require_engine(name: str, source: str = "--engine") -> str:
    """``name`` if it is known and installed; otherwise an error naming the pip package to install."""
    check_engine_name(name, source)
    if not engine_available(name):
        package = ENGINE_PACKAGES[name][1]
        raise EngineUnavailable(
            f"{source} {name}: the evaluation engine is not installed; pip install {package} "
            f"(or pip install 'lrpose-bench[eval]' for every engine), or use --engine {DEFAULT_ENGINE}"
        )
    return name


def installed_engines() -> list[str]:
    """The engines whose packages are installed, in :data:`ENGINES` order."""
    return [name for name in ENGINES if engine_available(name)]


def engine_keypoint_stats(name: str, gt: Any, results: list[dict], quiet: bool = True) -> np.ndarray:
    """The 10 COCO keypoint stats (``COCOeval.stats`` order, float64) of ``results`` against ``gt`` by engine
    ``name``.

    ``gt``: a ``pycocotools.coco.COCO`` for pycocotools, the checked dataset dict for the other engines.
    ``results``: checked, non-empty COCO keypoint results on images of ``gt``; they are not modified.
    """
    require_engine(name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        stats = _RUNNERS[name](gt, results)
    stats = np.asarray(stats, dtype=np.float64)
    if stats.shape != (10,):
        raise RuntimeError(f"evaluation engine {name} returned {stats.shape} stats, expected the 10 keypoint stats")
    return stats


def _pycocotools(gt: Any, results: list[dict]) -> Any:
    from pycocotools.cocoeval import COCOeval

    dets = gt.loadRes([dict(r) for r in results])  # loadRes adds fields to the dicts it gets
    ev = COCOeval(gt, dets, iouType="keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def _faster_coco_eval(gt: dict, results: list[dict]) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    def silent(*args: Any, **kwargs: Any) -> None:
        return None

    coco = COCO(gt, print_function=silent)  # a shallow copy of the dict; the index only normalises int ids
    dets = coco.loadRes([dict(r) for r in results])  # loadRes adds fields to the dicts it gets
    ev = COCOeval_faster(coco, dets, iouType="keypoints", print_function=silent)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def _hotcoco(gt: dict, results: list[dict]) -> Any:
    from hotcoco import COCO, COCOeval

    coco = COCO(gt)  # converted into hotcoco's own (Rust) structures: the dicts are not touched
    ev = COCOeval(coco, coco.loadRes(results), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


_RUNNERS = {"pycocotools": _pycocotools, "faster-coco-eval": _faster_coco_eval, "hotcoco": _hotcoco}

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "ENGINE_PACKAGES",
    "EngineUnavailable",
    "check_engine_name",
    "engine_available",
    "engine_keypoint_stats",
    "installed_engines",
    "require_engine",
]
