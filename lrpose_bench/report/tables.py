"""Comparison tables: our runs (mean ± std over seeds) beside the published numbers.

One table per experiment. Numbers are COCO keypoint metrics in percent with one decimal; our cells read
``mean ± std`` (the AP cell adds the number of runs, ``(n)``); ``Paper AP`` is the published AP for the
same method, backbone and input resolution on COCO val2017 (see :mod:`lrpose_bench.report.paper`) and
``ΔAP`` is ours minus the paper's. The best of ours per metric column among rows with the same backbone and input
is bold.

Formats: LaTeX (pandas ``Styler.to_latex``, booktabs rules, caption and label), Markdown (a small pipe
table formatter: ``DataFrame.to_markdown`` would need ``tabulate``), CSV (the numbers, unformatted).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lrpose_bench.io import write_text
from lrpose_bench.report.paper import TABLE_SHORT, load_paper, match_paper
from lrpose_bench.report.registry import ERROR_STATS, ReportError, aggregate, load_records

#: Metrics shown in the tables (the paper's columns), record stat names.
TABLE_STATS: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR")
#: Setting columns that are shown only when they vary within an experiment (else: in the caption).
OPTIONAL_KEYS: tuple[str, ...] = ("dataset", "boxes", "profile")
FORMATS: dict[str, str] = {"latex": "tex", "markdown": "md", "csv": "csv"}

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def slug(name: str) -> str:
    """A file-name and label-safe form of an experiment name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


@dataclass
class ReportTable:
    """One experiment's table: ``data`` holds numbers (percent), ``constants`` the settings shared by all rows."""

    experiment: str
    data: pd.DataFrame
    constants: dict[str, str] = field(default_factory=dict)
    shown_keys: tuple[str, ...] = ()
    has_paper: bool = False
    has_error_types: bool = False  # records with keypoint error types (GT boxes): a second table

    @property
    def label(self) -> str:
        return f"tab:{slug(self.experiment)}"


def build_tables(records: pd.DataFrame, paper: pd.DataFrame, experiment: str | None = None) -> list[ReportTable]:
    """Aggregate ``records`` (from :func:`load_records`) and attach the matching paper numbers.

    ``experiment`` selects one experiment; a name without records raises :class:`ReportError`.
    """
    agg = aggregate(records)
    if experiment is not None:
        if experiment not in set(agg["experiment"]):
            found = ", ".join(sorted(set(agg["experiment"])))
            raise ReportError(f"no records for experiment {experiment!r}; experiments found: {found}")
        agg = agg[agg["experiment"] == experiment]
    tables = []
    for name, part in agg.groupby("experiment", sort=True):
        data = part.reset_index(drop=True).copy()
        for stat in (*TABLE_STATS, *ERROR_STATS):
            data[f"{stat}_pct_mean"] = 100.0 * data[f"{stat}_mean"]
            data[f"{stat}_pct_std"] = 100.0 * data[f"{stat}_std"]
        paper_ap, paper_src, paper_label = [], [], []
        for _, row in data.iterrows():
            # an imported checkpoint's row is not the paper's model trained at that resolution
            imported = str(row["profile"]).startswith("imported")
            hit = None if imported else match_paper(paper, row["method"], row["backbone"], row["resolution"], row["dataset"])
            paper_ap.append(float(hit["AP"]) if hit is not None else math.nan)
            paper_src.append(TABLE_SHORT.get(hit["table"], hit["table"]) if hit is not None else "")
            paper_label.append(hit["label"] if hit is not None else "")
        data["paper_AP"] = paper_ap
        data["paper_source"] = paper_src
        data["paper_label"] = paper_label
        data["delta_AP"] = data["AP_pct_mean"] - data["paper_AP"]
        constants = {k: str(data[k].iloc[0]) for k in OPTIONAL_KEYS if data[k].nunique() == 1}
        shown = tuple(k for k in OPTIONAL_KEYS if k not in constants)
        tables.append(
            ReportTable(str(name), data, constants, shown, has_paper=bool(data["paper_AP"].notna().any()),
                        has_error_types=bool(data[f"{ERROR_STATS[0]}_mean"].notna().any()))  # fmt: skip
        )
    return tables


# ------------------------------------------------------------------------------------------------
# Cell text
# ------------------------------------------------------------------------------------------------


def method_text(method: str, label: str) -> str:
    """``cal_mgm`` or ``cal_mgm (n_components=3)``."""
    return f"{method} ({label})" if label else method


def stat_cell(mean: float, std: float, n: int | None, pm: str) -> str:
    """``72.3 ± 0.4 (3)``: percent, one decimal; no ``±`` for a single run; ``(n)`` when ``n`` is given;
    ``-`` for a stat without a value (pycocotools' -1 for an area range without ground truth: null in the record)."""
    if not math.isfinite(mean):
        return "-"
    text = f"{mean:.1f}"
    if math.isfinite(std):
        text += f" {pm} {std:.1f}"
    if n is not None:
        text += f" ({n})"
    return text


def _best_mask(table: ReportTable) -> pd.DataFrame:
    """True where a cell holds the best (highest, at display precision) mean of its metric column among
    the rows of the same block (same backbone, resolution, dataset, boxes and profile); one-row blocks
    get no bold."""
    mask = pd.DataFrame(False, index=table.data.index, columns=list(TABLE_STATS))
    blocks = table.data.groupby(["backbone", "resolution", *OPTIONAL_KEYS], sort=False).groups
    for rows in blocks.values():
        if len(rows) < 2:
            continue
        for stat in TABLE_STATS:
            shown = table.data.loc[rows, f"{stat}_pct_mean"].round(1)
            if shown.notna().any():
                mask.loc[rows, stat] = (shown == shown.max()).to_numpy()
    return mask


def _columns(table: ReportTable, fmt: str) -> list[tuple[str, str, str]]:
    """(key, header, alignment) of the displayed columns."""
    latex = fmt == "latex"
    cols = [("method", "Method", "l"), ("backbone", "Backbone", "l"), ("resolution", "Input", "l")]
    cols += [(k, k.capitalize(), "l") for k in table.shown_keys]
    cols += [(s, s, "r") for s in TABLE_STATS]
    if table.has_paper:
        cols += [
            ("paper_AP", "Paper AP", "r"),
            ("paper_source", "Source", "l"),
            ("delta_AP", r"$\Delta$AP" if latex else "ΔAP", "r"),
        ]
    return cols


def display_frame(table: ReportTable, fmt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table's text cells for ``fmt`` ("latex" or "markdown") and the bold mask (same shape)."""
    latex = fmt == "latex"
    pm = r"$\pm$" if latex else "±"
    esc = latex_escape if latex else (lambda s: s.replace("|", r"\|"))
    best = _best_mask(table)
    cols = _columns(table, fmt)
    rows, bold = [], []
    for i, row in table.data.iterrows():
        cells, flags = [], []
        for key, _, _ in cols:
            flag = False
            if key == "method":
                text = esc(method_text(row["method"], row["label"]))
            elif key in ("backbone", "resolution", "dataset", "boxes", "profile", "paper_source"):
                text = esc(str(row[key]))
            elif key in TABLE_STATS:
                n = int(row["n"]) if key == "AP" else None
                text = stat_cell(row[f"{key}_pct_mean"], row[f"{key}_pct_std"], n, pm)
                flag = bool(best.at[i, key])
            elif key == "paper_AP":
                text = f"{row[key]:.1f}" if math.isfinite(row[key]) else ""
            elif key == "delta_AP":
                text = f"{row[key]:+.1f}" if math.isfinite(row[key]) else ""
                if latex and text:
                    text = f"${text}$"
            else:  # pragma: no cover - every column above is handled
                raise KeyError(key)
            cells.append(text)
            flags.append(flag)
        rows.append(cells)
        bold.append(flags)
    headers = [h for _, h, _ in cols]
    return pd.DataFrame(rows, columns=headers), pd.DataFrame(bold, columns=headers)


def caption_text(table: ReportTable, fmt: str) -> str:
    """The table caption: what the numbers are, the shared settings, the paper columns."""
    latex = fmt == "latex"
    esc = latex_escape if latex else (lambda s: s)
    pct, pm = (r"\%", r"$\pm$") if latex else ("%", "±")
    name = rf"\texttt{{{esc(table.experiment)}}}" if latex else f"`{table.experiment}`"
    parts = [
        (
            f"Experiment {name}: COCO keypoint metrics ({pct}), mean {pm} standard deviation over seeds, "
            "(n) = number of runs; bold: best of ours per column among rows with the same backbone and input."
        )
    ]
    if table.constants:
        shared = ", ".join(f"{k} {esc(v)}" for k, v in table.constants.items())
        parts.append(f"Shared settings: {shared}.")
    if table.has_paper:
        delta = r"$\Delta$AP" if latex else "ΔAP"
        parts.append(
            f"Paper AP: the published AP for the same method, backbone and input on COCO val2017 "
            f"(Source: its table, see results/paper); {delta} = ours minus paper."
        )
    return " ".join(parts)


def error_frame(table: ReportTable, fmt: str) -> pd.DataFrame:
    """The keypoint error types table's text cells: method, backbone, input, the setting columns that vary
    (dataset, boxes, profile: as in the main table), then each type's share of the labelled joints (%,
    mean ± std over seeds)."""
    latex = fmt == "latex"
    pm = r"$\pm$" if latex else "±"
    esc = latex_escape if latex else (lambda s: s.replace("|", r"\|"))
    headers = ["Method", "Backbone", "Input", *(k.capitalize() for k in table.shown_keys),
               *(s.removeprefix("err_").capitalize() for s in ERROR_STATS)]  # fmt: skip
    rows = [
        [esc(method_text(r["method"], r["label"])), esc(str(r["backbone"])), esc(str(r["resolution"])),
         *(esc(str(r[k])) for k in table.shown_keys),
         *(stat_cell(r[f"{s}_pct_mean"], r[f"{s}_pct_std"], None, pm) for s in ERROR_STATS)]
        for _, r in table.data.iterrows()
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=headers)


def error_caption(table: ReportTable, fmt: str) -> str:
    """Caption of the error types table."""
    pct, pm = (r"\%", r"$\pm$") if fmt == "latex" else ("%", "±")
    text = (
        f"Keypoint error types ({pct} of labelled joints, mean {pm} standard deviation over seeds; ground-truth "
        "boxes), after Ronchi and Perona (ICCV 2017): good (keypoint similarity ks >= 0.85), jitter "
        "(0.5 <= ks < 0.85), inversion (on the left/right partner joint), swap (on another person), miss."
    )
    if fmt != "latex":
        return text
    return text.replace(">=", r"$\geq$").replace("<=", r"$\leq$").replace("<", r"$<$")


def render_latex(table: ReportTable) -> str:
    """The table as LaTeX (booktabs, caption, label) via pandas' ``Styler.to_latex``."""
    text, bold = display_frame(table, "latex")
    styler = text.style.hide(axis="index")
    styler = styler.apply(lambda _: bold.replace({True: "textbf:--rwrap;", False: ""}), axis=None)
    column_format = "".join(a for _, _, a in _columns(table, "latex"))
    text = styler.to_latex(
        column_format=column_format,
        position="htbp",
        position_float="centering",
        hrules=True,
        label=table.label,
        caption=caption_text(table, "latex"),
    )
    if table.has_error_types:
        errors = error_frame(table, "latex")
        text += "\n" + errors.style.hide(axis="index").to_latex(
            column_format="l" * (3 + len(table.shown_keys)) + "r" * len(ERROR_STATS), position="htbp", position_float="centering",
            hrules=True, label=f"{table.label}-errors", caption=error_caption(table, "latex"),
        )  # fmt: skip
    return text


def render_markdown_table(table: ReportTable) -> str:
    """The table as a Markdown pipe table with a heading and the caption below it."""
    text, bold = display_frame(table, "markdown")
    aligns = [a for _, _, a in _columns(table, "markdown")]
    cells = text.where(~bold | (text == ""), "**" + text + "**")
    header = "| " + " | ".join(text.columns) + " |"
    rule = "| " + " | ".join("---:" if a == "r" else ":---" for a in aligns) + " |"
    body = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False, name=None)]
    lines = [f"### {table.experiment}", "", header, rule, *body, "", caption_text(table, "markdown"), ""]
    if table.has_error_types:
        errors = error_frame(table, "markdown")
        lines += [
            "| " + " | ".join(errors.columns) + " |",
            "| " + " | ".join([":---"] * (3 + len(table.shown_keys)) + ["---:"] * len(ERROR_STATS)) + " |",
            *("| " + " | ".join(row) + " |" for row in errors.itertuples(index=False, name=None)),
            "", error_caption(table, "markdown"), "",
        ]  # fmt: skip
    return "\n".join(lines)


def csv_frame(table: ReportTable) -> pd.DataFrame:
    """The numbers of a table, unformatted: metrics in percent (``<stat>_pct_mean``/``_pct_std``)."""
    keys = ["experiment", "method", "label", "backbone", "resolution", "dataset", "boxes", "profile", "n", "seeds"]
    stats = [f"{s}_pct_{m}" for s in (*TABLE_STATS, *ERROR_STATS) for m in ("mean", "std")]
    return table.data.loc[:, keys + stats + ["paper_AP", "paper_source", "paper_label", "delta_AP"]]


def render(table: ReportTable, fmt: str) -> str:
    """``table`` in ``fmt`` (latex, markdown or csv)."""
    if fmt == "latex":
        return render_latex(table)
    if fmt == "markdown":
        return render_markdown_table(table)
    if fmt == "csv":
        return csv_frame(table).to_csv(index=False, float_format="%.4f")
    raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------------------------
# Public API (also used by the sweep)
# ------------------------------------------------------------------------------------------------


def report_tables(
    runs_dir: str | Path, experiment: str | None = None, paper_dir: str | Path | None = None
) -> list[ReportTable]:
    """Load the records under ``runs_dir`` and the paper tables; one :class:`ReportTable` per experiment."""
    return build_tables(load_records(runs_dir), load_paper(paper_dir), experiment)


def write_report(
    runs_dir: Path,
    experiment: str | None = None,
    fmt: str = "latex",
    out_dir: Path = Path("results/tables"),
    paper_dir: Path | None = None,
) -> list[Path]:
    """Write one file per experiment, ``out_dir/<experiment>.<tex|md|csv>`` (atomically); returns the paths.

    ``fmt`` is ``latex``, ``markdown``, ``csv`` or ``all`` (the three, side by side).
    """
    if fmt != "all" and fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}, all")
    return write_tables(report_tables(runs_dir, experiment, paper_dir), fmt, Path(out_dir))


def write_tables(tables: list[ReportTable], fmt: str, out_dir: Path) -> list[Path]:
    """Write ``tables`` as ``out_dir/<experiment>.<ext>`` for ``fmt`` (or ``all`` formats), atomically."""
    formats = list(FORMATS) if fmt == "all" else [fmt]
    if any(f not in FORMATS for f in formats):
        raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}, all")
    return [
        write_text(out_dir / f"{slug(table.experiment)}.{FORMATS[f]}", render(table, f))
        for table in tables
        for f in formats
    ]


def render_markdown(
    runs_dir: str | Path, experiment: str | None = None, paper_dir: str | Path | None = None
) -> str:
    """All experiments' tables as Markdown, one after another."""
    return "\n".join(render_markdown_table(t) for t in report_tables(runs_dir, experiment, paper_dir))
