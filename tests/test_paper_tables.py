"""results/paper/*.csv: every published number has a source, lies in [0, 100], and matches FACTS.md."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from lrpose_bench.method import METHODS
from lrpose_bench.report.paper import (
    PAPER_COLUMNS,
    PAPER_METRICS,
    PaperTableError,
    load_paper,
    match_paper,
    read_paper_table,
)

PAPER = Path(__file__).resolve().parents[1] / "results" / "paper"
#: Published labels without a registry method (documented in results/paper/README.md).
NON_REGISTRY_METHODS = {"udp+sr"}


@pytest.fixture(scope="module")
def paper() -> pd.DataFrame:
    return load_paper(PAPER)


def test_every_row_has_source_and_numbers_in_range(paper: pd.DataFrame) -> None:
    files = sorted(PAPER.glob("*.csv"))
    assert [f.stem for f in files] == ["cal_readme_64x48", "dark", "seed_quote", "simcc", "udp"]
    for path in files:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert tuple(raw.columns) == PAPER_COLUMNS, path
        assert (raw["source"].str.strip() != "").all(), path
        assert (raw["table"] == path.stem).all(), path
    values = paper.loc[:, list(PAPER_METRICS)].to_numpy()
    finite = values[~pd.isna(values)]
    assert ((finite >= 0) & (finite <= 100)).all()
    assert paper["AP"].notna().all()  # every row is there for at least its AP
    assert set(paper["method"]) <= set(METHODS) | NON_REGISTRY_METHODS
    assert paper["resolution"].str.fullmatch(r"\d+x\d+").all()
    assert (paper["dataset"] == "coco_val2017").all()


def test_row_counts_and_transcribed_values(paper: pd.DataFrame) -> None:
    counts = paper.groupby("table").size().to_dict()
    assert counts == {"cal_readme_64x48": 10, "dark": 18, "seed_quote": 1, "simcc": 10, "udp": 4}

    def row(table: str, method: str, backbone: str, resolution: str, label: str | None = None) -> pd.Series:
        hit = paper[(paper["table"] == table) & (paper["method"] == method) & (paper["backbone"] == backbone) & (paper["resolution"] == resolution)]
        if label is not None:
            hit = hit[hit["label"] == label]
        assert len(hit) == 1
        return hit.iloc[0]

    cal = row("cal_readme_64x48", "cal_mgm", "hrnet_w48", "64x48")
    assert [cal[m] for m in PAPER_METRICS] == [61.5, 88.1, 68.7, 60.7, 63.5, 66.3]
    spsr = row("cal_readme_64x48", "udp+sr", "hrnet_w32", "64x48")
    assert spsr["label"] == "UDP + SPSR" and spsr["sr"] == "spsr" and spsr["AP"] == 52.5
    assert row("cal_readme_64x48", "sr_heatmap", "hrnet_w32", "64x48")["AP50"] == 81.6
    # DARK: AP only, the other metrics stay empty
    dark = row("dark", "dark", "resnet101", "128x96")
    assert dark["AP"] == 63.2 and all(math.isnan(dark[m]) for m in PAPER_METRICS[1:])
    assert row("dark", "heatmap", "hrnet_w32", "384x288")["AP"] == 75.8
    assert row("udp", "udp", "hrnet_w32", "384x288")["AP"] == 77.8
    assert row("simcc", "heatmap", "hrnet_w32", "64x64", "Heatmap (without post-processing)")["AP"] == 34.6
    seed = paper[paper["table"] == "seed_quote"].iloc[0]
    assert seed["source"] == "seed quote" and seed["AP"] == 72.3 and seed["resolution"] == "128x96"
    assert seed["backbone"] == ""  # not stated: not guessed


def test_matching(paper: pd.DataFrame) -> None:
    hit = match_paper(paper, "cal_mgm", "hrnet_w32", "64x48", "coco")
    assert hit is not None and hit["AP"] == 58.4
    # several published baselines at 256x192: the first table in priority order (DARK before UDP/SimCC)
    hit = match_paper(paper, "heatmap", "hrnet_w32", "256x192", "coco_val2017")
    assert hit is not None and hit["table"] == "dark" and hit["AP"] == 74.4
    # variants (no post-processing) are never matched; SimCC's own heatmap row is
    hit = match_paper(paper, "heatmap", "hrnet_w32", "64x64", "coco")
    assert hit is not None and hit["AP"] == 45.8
    assert match_paper(paper, "cal_mgm", "hrnet_w32", "64x48", "embedded") is None
    assert match_paper(paper, "cal_mgm", "hrnet_w32", "64x48", "coco_sample") is None  # a subset: not comparable
    assert match_paper(paper, "cal_mgm", "hrnet_w32", "64x48", "coco2017") is not None
    assert match_paper(paper, "cal_mgm", "hrnet_w32", "128x96", "coco") is None  # the seed quote names no backbone


def test_bad_paper_table_is_named(tmp_path: Path) -> None:
    src = (PAPER / "udp.csv").read_text().splitlines()
    (tmp_path / "bad.csv").write_text("\n".join([src[0], src[1].replace(",75.6,", ",175.6,")]) + "\n")
    with pytest.raises(PaperTableError, match=r"bad\.csv, line 2: AP=175\.6 outside"):
        read_paper_table(tmp_path / "bad.csv")
    frame = pd.read_csv(PAPER / "udp.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "source"] = " "
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PaperTableError, match="line 2: empty 'source'"):
        read_paper_table(tmp_path / "bad.csv")
