"""``lrpose plot predictions``: validation persons as the network saw them, with ground truth and prediction.

Each panel is the low-resolution crop of one person (cut exactly as evaluation cuts it: the record's crop
size, biased or unbiased affine, low-resolution protocol), shown with nearest-neighbour upsampling so its
pixels show, pixel centres at integer coordinates (:mod:`lrpose_bench.geometry`). Over it: the
ground-truth skeleton (white) and the predicted one (black), each predicted joint coloured by its error
type (:mod:`lrpose_bench.evaluation.error_types`: good, jitter, inversion, swap, miss) with a thin line to
its ground-truth position when it is not good. A second figure shows a few of the same persons on the
full-resolution image.

Nothing is re-run: predictions come from the run's ``predictions.json`` (COCO results, image px), paired
with the ground-truth persons of the validation split by OKS within each image (greedy, best first);
persons whose prediction OKS-NMS removed are left out (counted in ``series["unmatched"]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lrpose_bench.io import read_json
from lrpose_bench.keypoints import NUM_KEYPOINTS, SKELETON
from lrpose_bench.report.registry import ReportError
from lrpose_bench.report.style import (
    ERROR_TYPE_COLORS,
    OKABE_ITO,
    TEXT_WIDTH,
    PlotResult,
    plot_style,
    save_figure,
)

#: ``--kind`` choices: lowest OKS first, a seeded random draw, persons with left/right inversions.
KINDS: tuple[str, ...] = ("worst", "random", "inversions")
#: Panels per row of the grid.
GRID_COLUMNS = 6
#: Line colours of the two skeletons.
GT_COLOR, PRED_COLOR = "#FFFFFF", OKABE_ITO["black"]


@dataclass
class RunPredictions:
    """A run's predictions paired with the validation persons (arrays over the M paired persons).

    ``index`` dataset indices; ``pred (M,K,3)`` image px + keypoint score; ``gt (M,K,3)`` image px + COCO
    visibility; ``oks (M,)``; ``codes (M,K)`` error-type codes (-1 unlabelled); ``unmatched`` persons of the
    split with no prediction.
    """

    dataset: Any
    record: dict[str, Any]
    index: np.ndarray
    pred: np.ndarray
    gt: np.ndarray
    oks: np.ndarray
    codes: np.ndarray
    unmatched: int


def _dataset_for(record: dict[str, Any], run_dir: Path, data: Path | None, cache_dir: Path | None) -> Any:
    """The validation split the run was evaluated on, cut as its evaluation cut it."""
    from lrpose_bench.data import CocoPoseDataset, resolve_dataset
    from lrpose_bench.method import build_method

    boxes = str(record.get("boxes", "gt"))
    if boxes != "gt":
        raise ReportError(
            f"{run_dir}: evaluated on detected boxes ({boxes}); plot predictions needs a run evaluated with "
            "ground-truth boxes (each prediction is paired with its labelled person)"
        )
    dataset = record.get("dataset", {})
    if data is None and dataset.get("name") != "embedded":
        root = Path(str(dataset.get("root", "")))
        if not root.is_dir():
            raise ReportError(f"{run_dir}: the run's dataset root {root} is not here; pass --data ROOT")
        data = root
    spec = resolve_dataset(data, cache_dir)
    if dataset.get("hash") and spec.content_hash() != dataset["hash"]:
        raise ReportError(
            f"{run_dir}: the run was evaluated on a dataset with hash {dataset['hash']}, but {spec.root} has hash "
            f"{spec.content_hash()}; pass --data with the run's dataset"
        )
    method = record.get("method", {})
    try:
        unbiased = bool(build_method(method["name"], method.get("options", {})).unbiased)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{run_dir}: cannot rebuild method {method.get('name')!r} of the record ({exc})") from None
    hparams = record.get("hparams", {})
    limit = int(hparams.get("max_val_instances", 0) or 0)
    return CocoPoseDataset(
        spec.val_ann, spec.val_images, crop_size=tuple(record["input_size"]), unbiased=unbiased, train=False,
        lowres_protocol=str(record.get("lowres_protocol") or "direct"), max_instances=limit or None,
        jpeg_reduced_decode=bool(hparams.get("jpeg_reduced_decode", False)),
    )  # fmt: skip


def _read_results(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``predictions.json`` -> image ids ``(P,)`` and keypoints ``(P, K, 3)`` (image px + score)."""
    results = read_json(path, "predictions")
    if not isinstance(results, list):
        raise ReportError(f"{path}: expected a list of COCO keypoint results")
    ids, kps = [], []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "image_id" not in r or len(r.get("keypoints", ())) != 3 * NUM_KEYPOINTS:
            raise ReportError(f"{path}: entry [{i}] is not a COCO keypoint result with {3 * NUM_KEYPOINTS} values")
        ids.append(int(r["image_id"]))
        kps.append(r["keypoints"])
    return np.asarray(ids, np.int64), np.asarray(kps, np.float64).reshape(len(kps), NUM_KEYPOINTS, 3)


def pair_predictions(
    pred_ids: np.ndarray, pred: np.ndarray, gt_ids: np.ndarray, gt: np.ndarray, gt_areas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pair predictions with ground-truth persons of the same image by OKS, greedily (best pair first).

    Returns ``gt_index (Q,)`` and ``pred_index (Q,)`` of the pairs; a person or prediction is used once.
    """
    from lrpose_bench.evaluation.postprocess import oks

    gt_index, pred_index = [], []
    by_image: dict[int, list[int]] = {}
    for j, image_id in enumerate(pred_ids):
        by_image.setdefault(int(image_id), []).append(j)
    for image_id in np.unique(gt_ids):
        g = np.flatnonzero(gt_ids == image_id)
        p = np.asarray(by_image.get(int(image_id), []), np.int64)
        if not len(p):
            continue
        sim = oks(pred[p, :, :2], gt[g], gt_areas[g][None, :]).numpy()  # (P_i, G_i)
        while np.isfinite(sim).any() and sim.max() >= 0:
            a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
            gt_index.append(int(g[b]))
            pred_index.append(int(p[a]))
            sim[a, :] = -np.inf
            sim[:, b] = -np.inf
    order = np.argsort(gt_index, kind="stable")
    return np.asarray(gt_index, np.int64)[order], np.asarray(pred_index, np.int64)[order]


def load_run_predictions(run: str | Path, data: Path | None = None, cache_dir: Path | None = None) -> RunPredictions:
    """The run's predictions paired with its validation persons, with OKS and error types."""
    from lrpose_bench.evaluation.error_types import keypoint_error_types
    from lrpose_bench.evaluation.postprocess import oks
    from lrpose_bench.report.figures import resolve_run_dir

    run_dir = resolve_run_dir(run)
    for name in ("record.json", "predictions.json"):
        if not (run_dir / name).is_file():
            raise ReportError(f"{run_dir / name} not found: plot predictions needs a finished run")
    record = read_json(run_dir / "record.json", "result record")
    dataset = _dataset_for(record, run_dir, data, cache_dir)
    pred_ids, pred = _read_results(run_dir / "predictions.json")
    inst = dataset.instances
    gt_ids = dataset.image_ids[inst.image_index]
    areas = inst.area.astype(np.float64)
    gi, pi = pair_predictions(pred_ids, pred, gt_ids, inst.keypoints, areas)
    if not len(gi):
        raise ReportError(f"{run_dir}: no prediction pairs with a person of {dataset.ann_file} (another dataset?)")
    gt = inst.keypoints[gi]
    return RunPredictions(
        dataset=dataset, record=record, index=gi, pred=pred[pi], gt=gt,
        oks=oks(pred[pi, :, :2], gt, areas[gi], pairwise=False).numpy(),
        codes=keypoint_error_types(pred[pi, :, :2], gt, areas[gi], gt_ids[gi]),
        unmatched=len(dataset) - len(gi),
    )  # fmt: skip


def select_persons(rp: RunPredictions, kind: str, n: int, seed: int = 0) -> np.ndarray:
    """Positions (into ``rp``'s arrays) of the ``n`` persons to show for ``kind`` (see :data:`KINDS`).

    ``worst``: lowest OKS first. ``random``: a uniform draw (``seed``), in dataset order. ``inversions``:
    persons with at least one inverted joint, most inversions first, then lowest OKS.
    """
    if kind not in KINDS:
        raise ReportError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    if n < 1:
        raise ReportError(f"--n {n}: must be at least 1")
    m = len(rp.oks)
    if kind == "worst":
        return np.argsort(rp.oks, kind="stable")[:n]
    if kind == "random":
        return np.sort(np.random.default_rng(seed).choice(m, size=min(n, m), replace=False))
    inversions = (rp.codes == 2).sum(1)
    candidates = np.flatnonzero(inversions > 0)
    if not len(candidates):
        raise ReportError("no person of this run has an inverted (left/right) joint; try --kind worst")
    order = np.lexsort((rp.oks[candidates], -inversions[candidates]))
    return candidates[order][:n]


def _draw_person(ax: Any, image: np.ndarray, gt: np.ndarray, pred: np.ndarray, codes: np.ndarray, marker: float) -> None:
    """One person on ``image`` (RGB uint8, drawn with pixel centres at integers): ground truth ``gt (K,3)``
    and prediction ``pred (K,2)`` in that image's px, prediction joints coloured by ``codes (K,)``."""
    from lrpose_bench.evaluation.error_types import ERROR_TYPES

    from matplotlib.collections import LineCollection

    h, w = image.shape[:2]
    ax.imshow(image, interpolation="nearest", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    labelled = gt[:, 2] > 0
    # One collection per kind of mark (a Line2D per bone and joint made a 24-person grid take seconds).
    bones = np.array([(a, b) for a, b in SKELETON if labelled[a] and labelled[b]], dtype=int).reshape(-1, 2)
    for points, color, lw, z in ((gt[:, :2], GT_COLOR, 0.9, 2.0), (pred, PRED_COLOR, 0.8, 2.1)):
        ax.add_collection(LineCollection(points[bones], colors=color, linewidths=lw, alpha=0.9,
                                         capstyle="round", zorder=z))  # fmt: skip
    joints = np.flatnonzero(labelled)
    colors = [ERROR_TYPE_COLORS[ERROR_TYPES[c]] for c in codes[joints]]
    wrong = codes[joints] != 0
    if wrong.any():
        segments = np.stack([gt[joints, :2], pred[joints]], axis=1)[wrong]
        ax.add_collection(LineCollection(segments, colors=[c for c, x in zip(colors, wrong) if x], linewidths=0.7,
                                         linestyles=[(0, (2, 1))], zorder=2.2))  # fmt: skip
    # scatter sizes are marker diameters squared (points^2), as Line2D's ``ms`` is a diameter
    ax.scatter(gt[joints, 0], gt[joints, 1], s=(marker * 0.8) ** 2, facecolors="none", edgecolors=GT_COLOR,
               linewidths=0.7, zorder=2.3)  # fmt: skip
    ax.scatter(pred[joints, 0], pred[joints, 1], s=marker**2, c=colors, edgecolors=PRED_COLOR, linewidths=0.4,
               zorder=2.4)  # fmt: skip
    ax.set_xlim(-0.5, w - 0.5)  # predictions far outside stay clipped at the image edge
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _legend(fig: Any) -> None:
    from matplotlib.lines import Line2D

    from lrpose_bench.evaluation.error_types import ERROR_TYPES

    handles = [Line2D([], [], color=GT_COLOR, lw=0.9, marker="o", mfc="none", mec="0.3", ms=4, label="ground truth"),
               Line2D([], [], color=PRED_COLOR, lw=0.8, label="prediction")]  # fmt: skip
    handles += [Line2D([], [], ls="none", marker="o", mfc=ERROR_TYPE_COLORS[t], mec=PRED_COLOR, mew=0.4, ms=5, label=t)
                for t in ERROR_TYPES]  # fmt: skip
    leg = fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), handlelength=1.8, frameon=True)
    leg.get_frame().set_facecolor("0.55")
    leg.get_frame().set_linewidth(0)


def _crop_view(rp: RunPredictions, pos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Person ``pos``'s crop (RGB uint8), ground truth ``(K,3)`` and prediction ``(K,2)`` in crop px, and
    the crop -> image affine ``(2,3)``."""
    from lrpose_bench.geometry import apply_affine, invert_affine

    sample = rp.dataset[int(rp.index[pos])]
    to_image = sample["crop_to_image"].numpy().astype(np.float64)
    to_crop = invert_affine(to_image)
    gt = np.concatenate([apply_affine(rp.gt[pos, :, :2], to_crop), rp.gt[pos, :, 2:]], 1)
    return sample["image"].numpy().transpose(1, 2, 0), gt, apply_affine(rp.pred[pos, :, :2], to_crop), to_image


def plot_predictions(
    run: str | Path, out_dir: str | Path, *, n: int = 24, kind: str = "worst", data: Path | None = None,
    full: int = 4, seed: int = 0, cache_dir: Path | None = None, name: str | None = None,
) -> PlotResult:
    """Grid of ``n`` validation persons of ``kind`` -> ``<name>.png/.pdf`` (name ``predictions_<run>_<kind>``),
    and, with ``full > 0``, the first ``full`` of them beside the full-resolution image -> ``<name>_full.*``.

    ``series``: ``index`` (dataset indices), ``image_id``, ``ann_id``, ``oks``, ``codes (n,K)`` error-type
    codes, ``gt_crop (n,K,3)`` and ``pred_crop (n,K,2)`` crop px, ``crop_size (2,)`` (w, h), ``type_counts
    (5,)`` joints per error type over all paired persons, ``paired`` and ``unmatched`` persons.
    """
    from matplotlib.figure import Figure

    from lrpose_bench.report.figures import resolve_run_dir

    run_dir = resolve_run_dir(run)
    rp = load_run_predictions(run_dir, data, cache_dir)
    chosen = select_persons(rp, kind, n, seed)
    views = [_crop_view(rp, int(p)) for p in chosen]
    w, h = rp.dataset.crop_size
    inst = rp.dataset.instances
    series: dict[str, Any] = {
        "index": rp.index[chosen], "image_id": rp.dataset.image_ids[inst.image_index[rp.index[chosen]]],
        "ann_id": inst.ann_id[rp.index[chosen]], "oks": rp.oks[chosen], "codes": rp.codes[chosen],
        "gt_crop": np.stack([v[1] for v in views]), "pred_crop": np.stack([v[2] for v in views]),
        "crop_size": np.array([w, h]), "type_counts": np.array([(rp.codes == t).sum() for t in range(5)]),
        "paired": np.array(len(rp.index)), "unmatched": np.array(rp.unmatched),
    }  # fmt: skip
    record = rp.record
    title = (f"{record.get('run_id', run_dir.name)}: {record.get('method', {}).get('name', '?')}, "
             f"{record.get('backbone', '?')}, {record.get('resolution', '?')} crops ({h}x{w} px shown as cut)\n"
             f"{_kind_text(kind, len(chosen), len(rp.index))}")  # fmt: skip
    stem = name or f"predictions_{run_dir.name}_{kind}"
    ncols = min(GRID_COLUMNS, len(chosen))
    nrows = math.ceil(len(chosen) / ncols)
    panel_w = TEXT_WIDTH / ncols
    marker = max(2.0, min(4.0, 30.0 / max(w, h) * panel_w * 2.2))
    with plot_style():
        fig = Figure(figsize=(TEXT_WIDTH, nrows * (panel_w * h / w + 0.3) + 0.75), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for i, (ax, pos, (image, gt, pred, _)) in enumerate(zip(axes, chosen, views)):
            _draw_person(ax, image, gt, pred, rp.codes[pos], marker)
            inverted = int((rp.codes[pos] == 2).sum())
            ax.set_title(f"OKS {rp.oks[pos]:.2f}" + (f" · {inverted} inverted" if inverted else ""), fontsize=6.5, pad=2)
            ax.set_xlabel(f"image {series['image_id'][i]}, ann {series['ann_id'][i]}", fontsize=5, labelpad=1)
        for ax in axes[len(chosen):]:
            ax.set_visible(False)
        _legend(fig)
        fig.suptitle(title, fontsize=7.5)
        paths = list(save_figure(fig, Path(out_dir) / stem))
        if full > 0:
            paths += _plot_full(rp, chosen[:full], views[:full], Path(out_dir) / f"{stem}_full", title)
    return PlotResult(paths, series)


def _kind_text(kind: str, shown: int, paired: int) -> str:
    what = {"worst": "lowest OKS first", "random": "a random draw", "inversions": "persons with left/right inversions"}
    return f"{shown} of {paired} persons, {what[kind]}"


def _plot_full(rp: RunPredictions, chosen: np.ndarray, views: list[Any], stem: Path, title: str) -> list[Path]:
    """The low-res crop (top) and the same person on the full-resolution image (bottom), per column."""
    import cv2
    from matplotlib.figure import Figure

    w, h = rp.dataset.crop_size
    cols = len(chosen)
    panel_w = TEXT_WIDTH / max(cols, 2)
    fig = Figure(figsize=(panel_w * cols, 2 * panel_w * h / w + 1.0), layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    for c, (pos, (image, gt, pred, to_image)) in enumerate(zip(chosen, views)):
        _draw_person(axes[0, c], image, gt, pred, rp.codes[pos], 4.0)
        axes[0, c].set_title(f"as the network saw it ({h}x{w})", fontsize=5.5, pad=2)
        img_i = int(rp.dataset.instances.image_index[rp.index[pos]])
        full = cv2.imread(str(rp.dataset.image_dir / rp.dataset.image_files[img_i]), cv2.IMREAD_COLOR)
        ax = axes[1, c]
        if full is None:
            ax.text(0.5, 0.5, "image not readable", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        full = cv2.cvtColor(full, cv2.COLOR_BGR2RGB)
        _draw_person(ax, full, rp.gt[pos], rp.pred[pos, :, :2], rp.codes[pos], 4.0)
        corners = np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]]) @ to_image[:, :2].T + to_image[:, 2]
        ax.set_xlim(corners[0, 0], corners[1, 0])
        ax.set_ylim(corners[1, 1], corners[0, 1])
        ax.set_facecolor("0.15")
        box_w = corners[1, 0] - corners[0, 0]
        ax.set_title(f"full resolution (box {box_w:.0f} px wide)", fontsize=5.5, pad=2)
    _legend(fig)
    fig.suptitle(title.split("\n")[0] + "\nlow-resolution crop and full-resolution image", fontsize=7.5)
    return save_figure(fig, stem)


__all__ = ["KINDS", "RunPredictions", "load_run_predictions", "pair_predictions", "plot_predictions", "select_persons"]
