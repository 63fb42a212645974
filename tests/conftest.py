"""Shared fixtures: small generated datasets and the real COCO samples in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Keep tests from writing into the user's cache and from oversubscribing the 2 CI cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny embedded dataset (COCO layout) generated once per test session."""
    from lrpose_bench.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("embedded") / "tiny"
    generate_dataset(out, num_train=24, num_val=12, seed=7)
    return out


@pytest.fixture(scope="session")
def minicoco_root() -> Path:
    root = SHARED_DATA / "minicoco"
    if not root.is_dir():
        pytest.skip(f"real COCO sample not found at {root}")
    return root


@pytest.fixture(scope="session")
def coco_sample_root() -> Path:
    root = SHARED_DATA / "coco_sample"
    if not root.is_dir():
        pytest.skip(f"real COCO sample not found at {root}")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point LRPOSE_CACHE at a per-session temp folder so tests never touch ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "lrpose-cache"
    monkeypatch.setenv("LRPOSE_CACHE", str(cache))
