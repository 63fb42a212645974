"""The paper's (and its baselines') published numbers: ``results/paper/*.csv`` -> one DataFrame.

Each CSV is one published table, transcribed from ``shared/paper/FACTS.md``; every row names its
``source``. Numbers are AP-style percentages in [0, 100]; a metric the source does not give is an empty
cell (NaN), never filled in. ``method`` uses this project's registry names (``udp+sr`` is the one label
without a registry method); ``variant`` is non-empty for rows that are not the standard setting of that
method (e.g. a heatmap decoded without post-processing) and that are therefore never matched against
our runs. See ``results/paper/README.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

#: Metric columns of a paper table, in COCO order (percent).
PAPER_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR")
#: Every column a paper CSV has.
PAPER_COLUMNS: tuple[str, ...] = (
    "table", "method", "label", "sr", "backbone", "backbone_label", "resolution", "dataset", "boxes",
    "flip_test", "variant", *PAPER_METRICS, "source", "note",
)
#: When several published rows match one of our settings, the first table in this order is shown
#: (the CAL authors' own numbers first, then the baselines' papers).
TABLE_PRIORITY: tuple[str, ...] = ("cal_readme_64x48", "seed_quote", "dark", "udp", "simcc")
#: Short names of the tables for a ``Source`` column.
TABLE_SHORT: dict[str, str] = {
    "cal_readme_64x48": "CAL README",
    "seed_quote": "seed quote",
    "dark": "DARK",
    "udp": "UDP",
    "simcc": "SimCC",
}

_RES = re.compile(r"^\d+x\d+$")


class PaperTableError(ValueError):
    """A paper CSV that does not follow the layout (the message names the file, row and column)."""


def default_paper_dir() -> Path | None:
    """``results/paper`` under the working directory, else beside the source tree; None if neither exists."""
    for candidate in (Path.cwd() / "results" / "paper", Path(__file__).resolve().parents[2] / "results" / "paper"):
        if candidate.is_dir() and any(candidate.glob("*.csv")):
            return candidate
    return None


def read_paper_table(path: str | Path) -> pd.DataFrame:
    """Read and check one paper CSV: all columns present, sources non-empty, metrics in [0, 100]."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PaperTableError(f"paper table {path}: cannot be read ({exc})") from None
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise PaperTableError(f"paper table {path}: missing columns {missing}")
    frame = frame.loc[:, list(PAPER_COLUMNS)].copy()
    for i, row in frame.iterrows():
        line = int(i) + 2  # header is line 1
        if not row["source"].strip():
            raise PaperTableError(f"paper table {path}, line {line}: empty 'source'")
        if not _RES.match(row["resolution"]):
            raise PaperTableError(f"paper table {path}, line {line}: resolution {row['resolution']!r} is not HxW")
        for metric in PAPER_METRICS:
            text = row[metric].strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise PaperTableError(f"paper table {path}, line {line}: {metric}={text!r} is not a number") from None
            if not 0.0 <= value <= 100.0:
                raise PaperTableError(f"paper table {path}, line {line}: {metric}={value} outside [0, 100]")
    for metric in PAPER_METRICS:
        frame[metric] = pd.to_numeric(frame[metric].str.strip().replace("", None), errors="raise").astype(float)
    return frame


def load_paper(paper_dir: str | Path | None = None) -> pd.DataFrame:
    """All paper tables of ``paper_dir`` (default: :func:`default_paper_dir`) in one frame.

    Returns an empty frame with :data:`PAPER_COLUMNS` when there is no paper folder.
    """
    folder = Path(paper_dir) if paper_dir is not None else default_paper_dir()
    if folder is None:
        return _empty()
    if not folder.is_dir():
        raise PaperTableError(f"paper folder not found: {folder}")
    tables = [read_paper_table(p) for p in sorted(folder.glob("*.csv"))]
    if not tables:
        return _empty()
    return pd.concat(tables, ignore_index=True)


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=str) for c in PAPER_COLUMNS})
    for metric in PAPER_METRICS:
        frame[metric] = frame[metric].astype(float)
    return frame


def is_coco_val(dataset_name: str) -> bool:
    """Whether a record's dataset is (full) COCO val2017, the only setting the published numbers hold for.

    Records name a COCO dataset by its root folder; a name starting with ``coco`` counts, unless it
    marks a subset (``sample``, ``mini``, ``tiny``, ``subset``, ``debug``): numbers on a handful of
    images are not comparable with the published ones.
    """
    name = dataset_name.strip().lower()
    if not name.startswith("coco"):
        return False
    return not any(tag in name for tag in ("sample", "mini", "tiny", "subset", "debug"))


def match_paper(paper: pd.DataFrame, method: str, backbone: str, resolution: str, dataset: str) -> pd.Series | None:
    """The published row for one of our settings, or None.

    A row matches on method (registry name), backbone and resolution, for a COCO val2017 dataset only;
    rows with a ``variant`` are never matched. Several matches: the first in :data:`TABLE_PRIORITY`.
    """
    if paper.empty or not is_coco_val(dataset):
        return None
    hits = paper[
        (paper["method"] == method)
        & (paper["backbone"] == backbone)
        & (paper["resolution"] == resolution)
        & (paper["variant"].str.strip() == "")
        & paper["AP"].notna()
    ]
    if hits.empty:
        return None
    order = {t: i for i, t in enumerate(TABLE_PRIORITY)}
    ranked = hits.assign(_rank=hits["table"].map(lambda t: order.get(t, len(order)))).sort_values("_rank", kind="stable")
    return ranked.iloc[0].drop(labels="_rank")
