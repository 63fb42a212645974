"""Figures: coarse-error analysis (the paper's motivation for CAL/MGM), AP against resolution, oracle AP.

All figures use :mod:`lrpose_bench.report.style` (Okabe-Ito colours, fixed method styles) and are saved
as PNG and vector PDF. Coarse errors are ``argmax(predicted heatmap) - ground truth`` in *heatmap px*,
``(x, y)`` with y pointing down as in the image.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrpose_bench.io import read_json
from lrpose_bench.report.registry import ReportError, has_budget, resolution_pixels
from lrpose_bench.report.style import (
    COLUMN_WIDTH,
    OKABE_ITO,
    TEXT_WIDTH,
    VARIANT_LINESTYLES,
    PlotResult,
    method_style,
    plot_style,
    save_figure,
)

#: Size (inches) of the offsets figure; the PNG is this times :data:`style.PNG_DPI` pixels.
OFFSETS_FIGSIZE: tuple[float, float] = (TEXT_WIDTH, 3.2)
#: Bin edges (heatmap px) of the "errors binned by size" panel: |error| = Euclidean length.
SIZE_BIN_EDGES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf)
#: MGM component ellipses; the mixture's marginal densities are vermillion, the single Gaussian black.
_COMPONENT_COLORS = (OKABE_ITO["orange"], OKABE_ITO["reddish_purple"], OKABE_ITO["bluish_green"], OKABE_ITO["blue"])


# ------------------------------------------------------------------------------------------------
# Coarse-error data
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianMixtureSpec:
    """A 2-D mixture read from ``method.json`` (heatmap px): ``weights (n,)``, ``means (n,2)``, ``covariances (n,2,2)``."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def resolve_run_dir(run: str | Path) -> Path:
    """A run folder from ``run`` (the folder itself or its ``record.json``)."""
    path = Path(run)
    if path.is_file() and path.name == "record.json":
        return path.parent
    if path.is_dir():
        return path
    raise ReportError(f"run not found: {path} (give a run folder or its record.json)")


def load_coarse_errors(run_dir: Path) -> np.ndarray:
    """Valid coarse errors ``(M, 2)`` (heatmap px) from ``run_dir/coarse_errors.npz`` (``errors``, ``valid``)."""
    path = run_dir / "coarse_errors.npz"
    if not path.is_file():
        method = _record_method(run_dir)
        if method is not None and not _has_grid(method):
            raise ReportError(
                f"{path} not found: method {method!r} is not a grid method (no heatmap argmax, so no coarse "
                "errors to plot); only heatmap-based methods have them"
            )
        raise ReportError(f"{path} not found: the run wrote no coarse errors (only heatmap-based methods do)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "errors" not in data or "valid" not in data:
                raise ReportError(f"{path}: needs arrays 'errors' (N,K,2) and 'valid' (N,K); has {sorted(data.files)}")
            errors = np.asarray(data["errors"], dtype=np.float64)
            valid = np.asarray(data["valid"]).astype(bool)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable .npz file ({exc})") from None
    if errors.ndim != 3 or errors.shape[-1] != 2 or valid.shape != errors.shape[:2]:
        raise ReportError(f"{path}: 'errors' {errors.shape} and 'valid' {valid.shape} are not (N,K,2) and (N,K)")
    picked = errors[valid & np.isfinite(errors).all(axis=-1)]
    if len(picked) < 2:
        raise ReportError(f"{path}: fewer than 2 valid coarse errors ({len(picked)})")
    return picked


def _record_method(run_dir: Path) -> str | None:
    """The method name in ``run_dir/record.json``, or None when there is no readable record."""
    import json

    try:
        record = json.loads((run_dir / "record.json").read_text())
        name = record["method"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def _has_grid(method: str) -> bool:
    """Whether registered ``method`` has coarse (integer argmax) predictions, i.e. overrides ``coarse``."""
    from lrpose_bench.method import PoseMethod, method_class

    try:
        cls = method_class(method)
    except (KeyError, ImportError, AttributeError):
        return True  # unknown here: say nothing about it
    return cls.coarse is not PoseMethod.coarse


def load_mgm(run_dir: Path) -> GaussianMixtureSpec | None:
    """The GMM behind the MGM from ``run_dir/method.json`` key ``"mgm"``; None when the run has none."""
    path = run_dir / "method.json"
    if not path.is_file():
        return None
    data = read_json(path, "method artifacts")
    mgm = data.get("mgm") if isinstance(data, dict) else None
    if mgm is None:
        return None
    if not isinstance(mgm, dict):
        raise ReportError(f"{path}: field 'mgm' is not an object")
    units = str(mgm.get("units", "heatmap px")).lower()
    if "heatmap" not in units:
        raise ReportError(f"{path}: field 'mgm.units' is {mgm['units']!r}; the figure needs heatmap px")
    try:
        weights = np.asarray(mgm["weights"], dtype=np.float64)
        means = np.asarray(mgm["means"], dtype=np.float64)
        covs = np.asarray(mgm["covariances"], dtype=np.float64)
    except KeyError as exc:
        raise ReportError(f"{path}: field 'mgm.{exc.args[0]}' is missing") from None
    except (TypeError, ValueError):
        raise ReportError(f"{path}: fields 'mgm.weights/means/covariances' are not numeric arrays") from None
    n = weights.shape[0] if weights.ndim == 1 else -1
    if n < 1 or means.shape != (n, 2) or covs.shape != (n, 2, 2):
        raise ReportError(
            f"{path}: field 'mgm' has weights {weights.shape}, means {means.shape}, covariances {covs.shape}; "
            "expected (n,), (n,2), (n,2,2)"
        )
    if "n_components" in mgm and int(mgm["n_components"]) != n:
        raise ReportError(f"{path}: field 'mgm.n_components' is {mgm['n_components']} but there are {n} weights")
    finite = np.isfinite(weights).all() and np.isfinite(means).all() and np.isfinite(covs).all()
    if not finite or not np.allclose(covs, covs.transpose(0, 2, 1)) or (np.linalg.eigvalsh(covs) <= 0).any():
        raise ReportError(f"{path}: field 'mgm.covariances' must hold finite, symmetric, positive definite 2x2 "
                          f"matrices (and finite weights and means), got {covs.tolist()}")
    return GaussianMixtureSpec(weights, means, covs)


def fit_gaussian(errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood single Gaussian of ``errors (M, 2)``: mean ``(2,)`` and covariance ``(2, 2)`` (ddof 0)."""
    mean = errors.mean(axis=0)
    centred = errors - mean
    return mean, centred.T @ centred / len(errors)


def size_fractions(errors: np.ndarray, edges: Sequence[float] = SIZE_BIN_EDGES) -> np.ndarray:
    """Fraction of errors whose Euclidean length falls in each ``[edges[i], edges[i+1])`` bin."""
    lengths = np.linalg.norm(errors, axis=-1)
    counts = np.histogram(lengths, bins=np.asarray(edges, dtype=np.float64))[0]
    # np.histogram closes the last bin on the right; an infinite right edge makes that irrelevant.
    return counts / len(lengths)


def gaussian_size_fractions(
    mean: np.ndarray, cov: np.ndarray, edges: Sequence[float] = SIZE_BIN_EDGES, samples: int = 200_000, seed: int = 0
) -> np.ndarray:
    """Bin fractions of |error| expected under a 2-D Gaussian (Monte Carlo, fixed seed)."""
    rng = np.random.default_rng(seed)
    return size_fractions(rng.multivariate_normal(mean, cov, size=samples, method="eigh"), edges)


def _normal_pdf(x: np.ndarray, mu: float, var: float) -> np.ndarray:
    var = max(var, 1e-12)
    return np.exp(-0.5 * (x - mu) ** 2 / var) / math.sqrt(2.0 * math.pi * var)


def _ellipse(ax: Any, mean: np.ndarray, cov: np.ndarray, k: float, **kwargs: Any) -> None:
    """The ``k``-sigma (Mahalanobis distance ``k``) ellipse of a 2-D Gaussian."""
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))  # direction of the major axis
    ax.add_patch(
        Ellipse(tuple(mean), 2 * k * math.sqrt(vals[1]), 2 * k * math.sqrt(vals[0]), angle=angle, fill=False, **kwargs)
    )


def _size_label(lo: float, hi: float) -> str:
    return f"≥{lo:g}" if math.isinf(hi) else f"{lo:g}–{hi:g}"


def plot_offsets(run: str | Path, out_dir: str | Path, name: str | None = None) -> PlotResult:
    """The coarse-error figure of one run -> ``out_dir/<name>.png`` and ``.pdf`` (name: ``offsets_<run>``).

    Left: 2-D histogram of the errors with marginal histograms, the fitted single Gaussian (1 and 2 sigma
    ellipses, marginal densities) and, for MGM runs, the mixture's components (ellipses) and weighted
    marginal densities. Right: the errors binned by length with the fraction the single Gaussian predicts.

    ``series`` (heatmap px): ``edges`` (bin edges, both axes), ``hist2d (x bins, y bins)`` counts,
    ``mean (2,)``, ``cov (2,2)`` of the single Gaussian, ``size_edges``, ``observed_pct`` and
    ``expected_pct`` per size bin, ``n`` errors; MGM runs add ``mgm_weights``, ``mgm_means``, ``mgm_covariances``
    and, with a record, each stage's offset-loss weight per joint (``offset_weight_stage1/2``, heatmap px^2)
    and its share on the nearest pixel (``nearest_share_stage1/2``), over ``offset_weight_joints`` sub-pixel
    joint positions, and their one-line ``offset_weight_summary`` (:mod:`lrpose_bench.report.offset_weight`).
    """
    from matplotlib.figure import Figure

    from lrpose_bench.report.offset_weight import offset_weight_mass  # torch: only for MGM runs

    run_dir = resolve_run_dir(run)
    errors = load_coarse_errors(run_dir)
    mgm = load_mgm(run_dir)
    weight_mass = None
    if mgm is not None:  # a diagnostic: the figure is drawn without it when the run's method cannot be rebuilt
        try:
            weight_mass = offset_weight_mass(run_dir)
        except ReportError as exc:
            warnings.warn(f"offset-loss weight per stage left out: {exc}", stacklevel=2)
    mean, cov = fit_gaussian(errors)
    title = _run_title(run_dir)

    half = float(np.quantile(np.abs(errors), 0.995))
    half = min(max(math.ceil(half * 2.0) / 2.0 + 0.5, 1.5), 8.0)
    width = max(0.125 if len(errors) >= 2000 else 0.25, 2.0 * half / 64.0)  # at most ~64 bins per axis
    edges = np.arange(-half, half + width / 2, width)
    hist, _, _ = np.histogram2d(errors[:, 0], errors[:, 1], bins=[edges, edges])
    grid = np.linspace(-half, half, 400)

    with plot_style():
        fig = Figure(figsize=OFFSETS_FIGSIZE, layout="constrained")
        gs = fig.add_gridspec(2, 3, width_ratios=[4.0, 1.1, 4.4], height_ratios=[1.1, 4.0])
        ax = fig.add_subplot(gs[1, 0])
        ax_top = fig.add_subplot(gs[0, 0], sharex=ax)
        ax_right = fig.add_subplot(gs[1, 1], sharey=ax)
        ax_bar = fig.add_subplot(gs[:, 2])

        mesh = ax.pcolormesh(edges, edges, hist.T, cmap="Blues", shading="flat", linewidth=0, rasterized=False)
        ax.set_xlim(-half, half)
        ax.set_ylim(half, -half)  # y down, as in the heatmap
        ax.set_aspect("equal", adjustable="box")
        ax.grid(False)
        ax.axhline(0, color="0.6", lw=0.4)
        ax.axvline(0, color="0.6", lw=0.4)
        ax.set_xlabel("x error (heatmap px)")
        ax.set_ylabel("y error (heatmap px, down)")
        fig.colorbar(mesh, ax=ax_right, label="count", fraction=0.5, pad=0.1, aspect=30)
        for k in (1.0, 2.0):
            _ellipse(ax, mean, cov, k, color=OKABE_ITO["black"], lw=1.0, ls="--")
        ax.plot([], [], color=OKABE_ITO["black"], ls="--", lw=1.0, label="single Gaussian (1σ, 2σ)")
        if mgm is not None:
            for i in range(len(mgm.weights)):
                color = _COMPONENT_COLORS[i % len(_COMPONENT_COLORS)]
                for k in (1.0, 2.0):
                    _ellipse(ax, mgm.means[i], mgm.covariances[i], k, color=color, lw=1.1)
                ax.plot(*mgm.means[i], marker="+", color=color, ms=6)
                ax.plot([], [], color=color, lw=1.1, label=f"MGM component {i + 1} (w={mgm.weights[i]:.2f})")
        if mgm is not None:
            ax.plot([], [], color=OKABE_ITO["vermillion"], lw=1.0, label="MGM mixture (marginals)")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower left", ncols=2, handlelength=2.0)

        for axis, marg, values in ((0, ax_top, errors[:, 0]), (1, ax_right, errors[:, 1])):
            single = _normal_pdf(grid, mean[axis], cov[axis, axis])
            orient = "vertical" if axis == 0 else "horizontal"
            marg.hist(values, bins=edges, density=True, color="0.75", orientation=orient)
            curves = [(single, OKABE_ITO["black"], "--")]
            if mgm is not None:
                mix = sum(
                    w * _normal_pdf(grid, m[axis], c[axis, axis])
                    for w, m, c in zip(mgm.weights, mgm.means, mgm.covariances)
                )
                curves.append((mix, OKABE_ITO["vermillion"], "-"))
            for curve, color, ls in curves:
                if axis == 0:
                    marg.plot(grid, curve, color=color, ls=ls, lw=1.0)
                else:
                    marg.plot(curve, grid, color=color, ls=ls, lw=1.0)
            marg.grid(False)
        ax_top.tick_params(labelbottom=False)
        ax_top.set_ylabel("density")
        ax_right.tick_params(labelleft=False)
        ax_right.set_xlabel("density")

        observed = 100.0 * size_fractions(errors)
        expected = 100.0 * gaussian_size_fractions(mean, cov)
        labels = [_size_label(lo, hi) for lo, hi in zip(SIZE_BIN_EDGES[:-1], SIZE_BIN_EDGES[1:])]
        xs = np.arange(len(labels))
        ax_bar.bar(xs, observed, color=OKABE_ITO["sky_blue"], width=0.7, label="coarse predictions")
        ax_bar.plot(xs, expected, ls="none", marker="D", color=OKABE_ITO["black"], ms=4, label="fitted Gaussian")
        for x, v in zip(xs, observed):
            ax_bar.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=6)
        ax_bar.set_xticks(xs, labels)
        ax_bar.set_xlabel("|error| (heatmap px)")
        ax_bar.set_ylabel("keypoints (%)")
        ax_bar.set_title("errors binned by size")
        ax_bar.grid(axis="x", visible=False)
        ax_bar.set_ylim(0, 1.22 * max(float(observed.max()), float(expected.max())))
        ax_bar.legend(loc="upper center", ncols=2)
        std = np.sqrt(np.diag(cov))
        ax_info = fig.add_subplot(gs[0, 1])
        ax_info.set_axis_off()
        ax_info.text(
            0.0, 1.0,
            f"N = {len(errors)}\nmean ({mean[0]:+.2f}, {mean[1]:+.2f}) px\n"
            f"std ({std[0]:.2f}, {std[1]:.2f}) px\nρ = {cov[0, 1] / max(std[0] * std[1], 1e-12):+.2f}"
            + ("" if weight_mass is None else
               f"\noffset weight / joint\n  stage 1 {weight_mass.stage1:.2f}\n  MGM {weight_mass.stage2:.2f} ({weight_mass.ratio:.2f}x)"),
            transform=ax_info.transAxes, ha="left", va="top", fontsize=6,
        )
        fig.suptitle(title, fontsize=8.5)
        series: dict[str, Any] = {
            "edges": edges, "hist2d": hist, "mean": mean, "cov": cov, "size_edges": np.asarray(SIZE_BIN_EDGES),
            "observed_pct": observed, "expected_pct": expected, "n": np.array(len(errors)),
        }  # fmt: skip
        if mgm is not None:
            series |= {"mgm_weights": mgm.weights, "mgm_means": mgm.means, "mgm_covariances": mgm.covariances}
        if weight_mass is not None:
            series |= {
                "offset_weight_stage1": np.array(weight_mass.stage1), "offset_weight_stage2": np.array(weight_mass.stage2),
                "nearest_share_stage1": np.array(weight_mass.stage1_nearest),
                "nearest_share_stage2": np.array(weight_mass.stage2_nearest),
                "offset_weight_joints": np.array(weight_mass.n_joints),
                "offset_weight_summary": np.array(weight_mass.summary()),
            }  # fmt: skip
        return PlotResult(save_figure(fig, Path(out_dir) / (name or f"offsets_{run_dir.name}")), series)


def _run_title(run_dir: Path) -> str:
    """``run id: method, backbone, HxW`` from the run's record.json when present."""
    path = run_dir / "record.json"
    try:
        record = read_json(path, "result record") if path.is_file() else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return f"Coarse-prediction errors: {run_dir.name}"
    method = record.get("method", {}).get("name", "?") if isinstance(record.get("method"), dict) else "?"
    return (
        f"Coarse-prediction errors: {record.get('run_id', run_dir.name)} "
        f"({method}, {record.get('backbone', '?')}, {record.get('resolution', '?')})"
    )


# ------------------------------------------------------------------------------------------------
# AP against resolution (from records) and oracle AP (from the oracle)
# ------------------------------------------------------------------------------------------------


def _resolution_axis(ax: Any, resolutions: Sequence[str]) -> None:
    pixels = [resolution_pixels(r) for r in resolutions]
    ax.set_xscale("log")
    ax.set_xticks(pixels, list(resolutions))
    ax.minorticks_off()
    ax.set_xlabel("input resolution (H×W, log pixel count)")
    lo, hi = min(pixels), max(pixels)
    ax.set_xlim(lo / 1.4, hi * 1.4)


def plot_resolution(agg: pd.DataFrame, out_dir: str | Path, experiment: str | None = None) -> PlotResult:
    """AP (%) against input resolution, one line per method (and option label), error bars = std over seeds;
    rows labelled with a training budget (``epochs=N``) are points, not lines.

    ``agg`` is :func:`lrpose_bench.report.registry.aggregate`'s frame. One figure per experiment
    (``resolution_<experiment>.png/.pdf``); one panel per (backbone, dataset, boxes, profile) setting.
    ``series``: per line ``"<experiment>|<backbone>·<dataset>·<boxes>·<profile>|<legend label>"`` ->
    ``(pixels (n,), AP % (n,), std % (n,))`` stacked as a ``(3, n)`` array, resolutions in pixel order.
    """
    from matplotlib.figure import Figure

    from lrpose_bench.report.tables import method_text, slug

    if experiment is not None:
        if experiment not in set(agg["experiment"]):
            found = ", ".join(sorted(set(agg["experiment"])))
            raise ReportError(f"no records for experiment {experiment!r}; experiments found: {found}")
        agg = agg[agg["experiment"] == experiment]
    extras = sorted(set(agg["method"]) - set(_registered()))
    paths: list[Path] = []
    series: dict[str, np.ndarray] = {}
    for exp, part in agg.groupby("experiment", sort=True):
        panels = list(part.groupby(["backbone", "dataset", "boxes", "profile"], sort=True))
        resolutions = sorted(set(part["resolution"]), key=resolution_pixels)
        with plot_style():
            ncols = min(len(panels), 3)
            fig = Figure(figsize=(COLUMN_WIDTH * ncols + 1.9, 2.8 * math.ceil(len(panels) / 3)), layout="constrained")
            axes = fig.subplots(math.ceil(len(panels) / 3), min(len(panels), 3), squeeze=False).ravel()
            for ax, ((backbone, dataset, boxes, profile), panel) in zip(axes, panels):
                for method in sorted(set(panel["method"]), key=_method_order):
                    by_method = panel[panel["method"] == method]
                    style = method_style(str(method), extras)
                    for j, (label, line) in enumerate(by_method.groupby("label", sort=True)):
                        line = line.sort_values("pixels")
                        text = method_text(style.label, str(label))
                        # a budget label is absolute (epochs=25 is a quarter of the quick profile at 64x48
                        # and all of it at 128x96): its points are not joined across resolutions
                        ls = "none" if has_budget(str(label)) else VARIANT_LINESTYLES[j % len(VARIANT_LINESTYLES)]
                        ax.errorbar(
                            line["pixels"], 100.0 * line["AP_mean"], yerr=100.0 * line["AP_std"].fillna(0.0),
                            color=style.color, marker=style.marker, ls=ls, capsize=2.0, label=text,
                        )
                        series[f"{exp}|{backbone}·{dataset}·{boxes}·{profile}|{text}"] = np.stack([
                            line["pixels"].to_numpy(float), 100.0 * line["AP_mean"].to_numpy(float),
                            100.0 * line["AP_std"].to_numpy(float),
                        ])  # fmt: skip
                _resolution_axis(ax, resolutions)
                ax.set_ylabel("AP (%)")
                ax.set_title(f"{backbone} · {dataset} · {boxes} boxes · {profile}", fontsize=7)
            for ax in axes[len(panels):]:
                ax.set_visible(False)
            handles: dict[str, Any] = {}
            for ax in axes[: len(panels)]:
                for handle, text in zip(*ax.get_legend_handles_labels()):
                    handles.setdefault(text, handle)
            fig.legend(list(handles.values()), list(handles), loc="outside right center")
            fig.suptitle(f"AP against input resolution: {exp}", fontsize=8.5)
            paths += save_figure(fig, Path(out_dir) / f"resolution_{slug(str(exp))}")
    return PlotResult(paths, series)


def _registered() -> list[str]:
    from lrpose_bench.report.style import METHOD_STYLES

    return list(METHOD_STYLES)


def check_oracle_results(results: Mapping[str, Any], source: str = "oracle results") -> dict[str, dict[str, dict[str, float]]]:
    """Validate ``{res "HxW": {method: {"AP": [0,1], ..., "mean_px_error": px}}}``; returns it with floats."""
    if not isinstance(results, Mapping) or not results:
        raise ReportError(f"{source}: expected a non-empty object {{resolution: {{method: {{AP, ...}}}}}}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for res, methods in results.items():
        resolution_pixels(str(res), source)
        if not isinstance(methods, Mapping) or not methods:
            raise ReportError(f"{source}: field {res!r} is not a non-empty object of methods")
        out[str(res)] = {}
        for method, stats in methods.items():
            if not isinstance(stats, Mapping) or "AP" not in stats:
                raise ReportError(f"{source}: field '{res}.{method}' lacks 'AP'")
            try:
                out[str(res)][str(method)] = {k: float(v) for k, v in stats.items()}
            except (TypeError, ValueError):
                raise ReportError(f"{source}: field '{res}.{method}' has non-numeric values") from None
            ap = out[str(res)][str(method)]["AP"]
            if not 0.0 <= ap <= 1.0:
                raise ReportError(f"{source}: field '{res}.{method}.AP' is {ap}, expected [0, 1]")
    return out


def plot_oracle(results: Mapping[str, Any], out_dir: str | Path, name: str = "oracle") -> PlotResult:
    """Oracle AP (%) and mean keypoint error against resolution, one line per codec -> ``<name>.png/.pdf``.

    ``results``: ``{"HxW": {method: {"AP": [0,1], ..., "mean_px_error": px}}}`` (from
    :func:`lrpose_bench.oracle.run_oracle` per resolution). The error panel is drawn when every entry
    has ``mean_px_error``. ``series``: ``"<method>/pixels"``, ``"<method>/AP"`` (%) and, with the error
    panel, ``"<method>/mean_px_error"`` (image px), resolutions in pixel order.
    """
    from matplotlib.figure import Figure

    data = check_oracle_results(results)
    series: dict[str, np.ndarray] = {}
    resolutions = sorted(data, key=resolution_pixels)
    methods = sorted({m for per in data.values() for m in per}, key=_method_order)
    extras = sorted(set(methods) - set(_registered()))
    with_err = all("mean_px_error" in s for per in data.values() for s in per.values())
    with plot_style():
        fig = Figure(figsize=(TEXT_WIDTH if with_err else COLUMN_WIDTH + 0.4, 2.8), layout="constrained")
        axes = fig.subplots(1, 2 if with_err else 1, squeeze=False).ravel()
        for method in methods:
            style = method_style(method, extras)
            res_m = [r for r in resolutions if method in data[r]]
            x = [resolution_pixels(r) for r in res_m]
            series[f"{method}/pixels"] = np.asarray(x, float)
            series[f"{method}/AP"] = np.asarray([100.0 * data[r][method]["AP"] for r in res_m])
            if with_err:
                series[f"{method}/mean_px_error"] = np.asarray([data[r][method]["mean_px_error"] for r in res_m])
            axes[0].plot(x, [100.0 * data[r][method]["AP"] for r in res_m], color=style.color, marker=style.marker,
                         label=style.label)
            if with_err:
                axes[1].plot(x, [data[r][method]["mean_px_error"] for r in res_m], color=style.color,
                             marker=style.marker, label=style.label)
        _resolution_axis(axes[0], resolutions)
        axes[0].set_ylabel("oracle AP (%)")
        axes[0].set_title("codec round trip on ground truth (oracle)")
        axes[0].legend(loc="lower right")
        if with_err:
            _resolution_axis(axes[1], resolutions)
            axes[1].set_yscale("log")
            axes[1].set_ylabel("mean keypoint error (image px)")
            axes[1].set_title("mean error of the decoded keypoints")
        return PlotResult(save_figure(fig, Path(out_dir) / name), series)


def _method_order(name: str) -> tuple[int, str]:
    order = _registered()
    return (order.index(name) if name in order else len(order), name)


# ------------------------------------------------------------------------------------------------
# Training curves (log.csv)
# ------------------------------------------------------------------------------------------------
#: log.csv columns holding validation AP per epoch (fractions in [0, 1]), when a run recorded them.
AP_COLUMNS: tuple[str, ...] = ("AP", "val_AP", "val_ap")
#: Line colours of overlaid runs whose methods repeat (otherwise each run takes its method's colour).
_RUN_COLORS: tuple[str, ...] = (
    OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"], OKABE_ITO["orange"],
    OKABE_ITO["reddish_purple"], OKABE_ITO["sky_blue"], OKABE_ITO["black"], "#999999",
)  # fmt: skip


def load_log(run_dir: Path) -> pd.DataFrame:
    """``run_dir/log.csv`` (one row per epoch; ``epoch`` 1-based) with its numeric columns as floats."""
    path = run_dir / "log.csv"
    if not path.is_file():
        raise ReportError(f"{path} not found: the run has no training log (lrpose run writes one per epoch)")
    try:
        log = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    if "epoch" not in log.columns or log.empty:
        raise ReportError(f"{path}: needs an 'epoch' column and at least one row; has {list(log.columns)}")
    for column in log.columns:
        if column != "stage":
            log[column] = pd.to_numeric(log[column], errors="coerce")
    return log.sort_values("epoch", kind="stable").reset_index(drop=True)


def _run_label(run_dir: Path, record: Mapping[str, Any] | None) -> tuple[str, str]:
    """(legend label, method name) of a run."""
    method = str(record.get("method", {}).get("name", "?")) if isinstance(record, Mapping) else "?"
    return (f"{run_dir.name} ({method})" if method != "?" else run_dir.name), method


def _read_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "record.json"
    try:
        record = read_json(path, "result record") if path.is_file() else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def plot_training(runs: Sequence[str | Path], out_dir: str | Path, name: str | None = None) -> PlotResult:
    """Loss terms and learning rate per epoch of one or more runs (overlaid), and validation AP per epoch
    where ``log.csv`` records it (the final AP of ``record.json`` is marked at the last epoch)
    -> ``<name>.png/.pdf`` (default ``training_<run>``, or ``training_<first run>_vs_<n - 1>`` for several).

    One panel per loss column (``loss`` = the total first, then ``loss_<term>``), one for the learning
    rate, one for AP. Dotted verticals mark where a run's training stage changes (e.g. CAL + MGM's
    ``coarse`` -> ``mgm``). ``series``: ``"<run>/epoch"``, ``"<run>/<column>"`` per plotted column and
    ``"<run>/final_AP"`` (%) when the record has one.
    """
    from matplotlib.figure import Figure

    if not runs:
        raise ReportError("plot training needs at least one --run")
    dirs = [resolve_run_dir(r) for r in runs]
    names = [d.name for d in dirs]
    if len(set(names)) < len(names):
        names = [f"{d.parent.name}/{d.name}" for d in dirs]
    logs = [load_log(d) for d in dirs]
    records = [_read_record(d) for d in dirs]
    labels = [_run_label(d, r) for d, r in zip(dirs, records)]
    methods = [m for _, m in labels]
    distinct = len(set(methods)) == len(methods) and "?" not in methods
    colors = [method_style(m).color if distinct else _RUN_COLORS[i % len(_RUN_COLORS)] for i, m in enumerate(methods)]
    loss_columns: list[str] = []
    for log in logs:
        loss_columns += [c for c in log.columns if c.startswith("loss") and c not in loss_columns]
    loss_columns = sorted(loss_columns, key=lambda c: c != "loss")  # the total first (stable: the rest in order)
    ap_columns = {i: next((c for c in AP_COLUMNS if c in log.columns and log[c].notna().any()), None)
                  for i, log in enumerate(logs)}  # fmt: skip
    finals = {i: 100.0 * float(r["stats"]["AP"]) for i, r in enumerate(records)
              if r and isinstance(r.get("stats", {}).get("AP"), (int, float)) and r["stats"]["AP"] >= 0}  # fmt: skip
    panels = [*loss_columns, "lr", *(["AP"] if any(ap_columns.values()) or finals else [])]
    series: dict[str, Any] = {}
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with plot_style():
        fig = Figure(figsize=(TEXT_WIDTH, 2.1 * nrows + 0.5), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for i, (log, (label, _), color, run_name) in enumerate(zip(logs, labels, colors, names)):
            epoch = log["epoch"].to_numpy(float)
            series[f"{run_name}/epoch"] = epoch
            style = dict(color=color, ls=VARIANT_LINESTYLES[(i // len(_RUN_COLORS)) % len(VARIANT_LINESTYLES)], lw=1.0)
            for ax, column in zip(axes, panels):
                if column == "AP":
                    column_ap = ap_columns[i]
                    if column_ap is not None:
                        values = 100.0 * log[column_ap].to_numpy(float)
                        keep = np.isfinite(values)
                        ax.plot(epoch[keep], values[keep], marker=".", ms=3, label=label, **style)
                        series[f"{run_name}/{column_ap}"] = values
                    if i in finals:
                        ax.plot([epoch[-1]], [finals[i]], marker="*", ms=7, color=color, ls="none",
                                label=None if column_ap else label)  # fmt: skip
                        ax.annotate(f"{finals[i]:.1f}", (epoch[-1], finals[i]), xytext=(-6, 0), textcoords="offset points",
                                    ha="right", va="center", fontsize=6, color=color)  # fmt: skip
                        series[f"{run_name}/final_AP"] = np.array(finals[i])
                    continue
                if column not in log.columns:
                    continue
                values = log[column].to_numpy(float)
                series[f"{run_name}/{column}"] = values
                ax.plot(epoch, values, label=label, **style)
                if "stage" in log.columns:
                    stage = log["stage"].astype(str).to_numpy()
                    for e in epoch[1:][stage[1:] != stage[:-1]]:
                        ax.axvline(e - 0.5, color=color, lw=0.6, ls=":", alpha=0.8)
        last = max(float(log["epoch"].max()) for log in logs)
        for ax, column in zip(axes, panels):
            ax.set_xlabel("epoch")
            ax.set_xlim(0, last + max(1.0, 0.02 * last))
            if column == "AP":
                ax.set_ylabel("validation AP (%)")
                ax.set_title("validation AP" + ("" if any(ap_columns.values()) else " (★ final, from record.json)"))
                continue
            ax.set_yscale("log")
            if column == "lr":
                ax.set_ylabel("learning rate")
                ax.set_title("learning rate")
            else:
                term = "total" if column == "loss" else column.removeprefix("loss_")
                ax.set_ylabel("loss (epoch mean)")
                ax.set_title(f"loss: {term}")
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        handles: dict[str, Any] = {}
        for ax in axes[: len(panels)]:
            for handle, text in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(text, handle)
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(3, len(handles)))
        title = f"Training: {names[0]}" if len(dirs) == 1 else f"Training: {len(dirs)} runs"
        fig.suptitle(title, fontsize=8.5)
        stem = name or (f"training_{names[0]}" if len(dirs) == 1 else f"training_{dirs[0].name}_vs_{len(dirs) - 1}")
        return PlotResult(save_figure(fig, Path(out_dir) / stem.replace("/", "_")), series)
