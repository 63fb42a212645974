"""One figure style for every plot: print sizes, readable fonts, the Okabe-Ito palette, fixed method styles.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (never through pyplot), so they
render with the Agg canvas whatever the interactive backend is; PDFs embed TrueType fonts (editable,
vector text).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrpose_bench.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}


@dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn in every figure."""

    color: str
    marker: str
    label: str


#: Fixed mapping for the registered methods (shared by all figures).
METHOD_STYLES: dict[str, MethodStyle] = {
    "heatmap": MethodStyle(OKABE_ITO["black"], "o", "Heatmap"),
    "dark": MethodStyle(OKABE_ITO["sky_blue"], "s", "DARK"),
    "udp": MethodStyle(OKABE_ITO["bluish_green"], "^", "UDP"),
    "sr_heatmap": MethodStyle(OKABE_ITO["reddish_purple"], "D", "SR + heatmap"),
    "simcc": MethodStyle(OKABE_ITO["blue"], "P", "SimCC"),
    # quantisation-free regression (issue 13); colours from Paul Tol's colour-blind-safe "muted" scheme
    "rle": MethodStyle("#882255", "8", "RLE"),
    "ipr": MethodStyle("#44AA99", "H", "IPR"),
    "dsnt": MethodStyle("#999933", "+", "DSNT"),
    "debias_ipr": MethodStyle("#332288", "x", "Debias-IPR"),
    "cal": MethodStyle(OKABE_ITO["orange"], "v", "CAL"),
    "cal_mgm": MethodStyle(OKABE_ITO["vermillion"], "*", "CAL + MGM"),
}
#: Styles handed out, in order, to names outside the registry (e.g. oracle codec variants).
_EXTRA_COLORS: tuple[str, ...] = ("#999999", "#8C6D1F", "#4D4D4D", "#F0E442", "#A6CEE3", "#7F3C8D")
_EXTRA_MARKERS: tuple[str, ...] = ("X", "h", "p", "<", ">", "d")
#: Line styles for variants of one method (different options) in one figure.
VARIANT_LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")

#: Figure widths in inches: one journal column, the full text width.
COLUMN_WIDTH = 3.5
TEXT_WIDTH = 7.0
#: Raster resolution of the PNG copies.
PNG_DPI = 200

RC_PARAMS: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.5,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "savefig.dpi": PNG_DPI,
    "figure.dpi": PNG_DPI,
    "image.cmap": "cividis",
}


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Apply :data:`RC_PARAMS` for the duration of a figure's drawing and saving."""
    import matplotlib

    with matplotlib.rc_context(RC_PARAMS):
        yield


def method_style(name: str, extras: list[str] | None = None) -> MethodStyle:
    """The style of method ``name``; names outside the registry take the next extra style.

    ``extras`` is the sorted list of unregistered names in the figure, so their styles are stable
    within a figure (and across figures showing the same names).
    """
    if name in METHOD_STYLES:
        return METHOD_STYLES[name]
    others = extras if extras is not None else [name]
    i = others.index(name) if name in others else 0
    return MethodStyle(_EXTRA_COLORS[i % len(_EXTRA_COLORS)], _EXTRA_MARKERS[i % len(_EXTRA_MARKERS)], name)


class PlotResult(list):
    """What a plot function returns: the written files (a list of paths, PNG then PDF) plus ``series``,
    the data drawn, as a dict of numpy arrays (names documented by each plot function)."""

    def __init__(self, paths: list[Path], series: dict[str, Any] | None = None) -> None:
        super().__init__(paths)
        self.series: dict[str, Any] = dict(series or {})


#: Colours of the keypoint error types (:data:`lrpose_bench.evaluation.error_types.ERROR_TYPES`).
ERROR_TYPE_COLORS: dict[str, str] = {
    "good": OKABE_ITO["bluish_green"],
    "jitter": OKABE_ITO["sky_blue"],
    "inversion": OKABE_ITO["vermillion"],
    "swap": OKABE_ITO["reddish_purple"],
    "miss": OKABE_ITO["yellow"],
}


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` (at :data:`PNG_DPI`) and ``stem.pdf`` atomically; returns both paths.

    The layout engine (constrained layout) runs once, for the PNG; the PDF reuses its positions, so both
    files have the same layout and the PDF costs about half as much.
    """
    paths = []
    engine = fig.get_layout_engine()
    try:
        for ext in ("png", "pdf"):
            target = stem.with_name(f"{stem.name}.{ext}")
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=ext, dpi=PNG_DPI)
            paths.append(target)
            if engine is not None:
                fig.set_layout_engine("none")  # keep the positions just computed
    finally:
        if engine is not None:
            fig.set_layout_engine(engine)
    return paths
