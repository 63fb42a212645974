"""Results -> tables and figures: records registry (pandas), the paper's numbers, LaTeX/Markdown/CSV
tables and matplotlib figures.

Public API (used by ``lrpose report``/``lrpose plot`` and by the sweep at its end):
``write_report(runs_dir, experiment, fmt, out_dir) -> list[Path]``, ``render_markdown(runs_dir, ...) -> str``,
``load_records``, ``aggregate``, ``load_paper``.
"""

from __future__ import annotations

from lrpose_bench.report.paper import load_paper, match_paper
from lrpose_bench.report.registry import ReportError, aggregate, load_records
from lrpose_bench.report.tables import (
    ReportTable,
    build_tables,
    render,
    render_markdown,
    report_tables,
    write_report,
)

__all__ = [
    "ReportError",
    "ReportTable",
    "aggregate",
    "build_tables",
    "load_paper",
    "load_records",
    "match_paper",
    "render",
    "render_markdown",
    "report_tables",
    "write_report",
]
