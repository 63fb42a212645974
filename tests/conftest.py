"""Shared fixtures (small generated datasets, the committed real COCO samples) and the skip policy.

Skip policy: the real-data samples are committed under ``tests/data``, so nothing that checks the core
against a reference (pycocotools parity, OKS against ``cocoeval``, the pinned oracle, real-data
loading) may skip. Such tests carry the ``parity`` marker (added here to every test that uses a
real-data fixture); a skip of a ``parity`` test is turned into a failure, and a missing data folder is an
error that names it. The end of every run prints how many tests were skipped and why.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"

#: Fixtures that hand a test real (or pinned reference) data: their users are parity tests.
REAL_DATA_FIXTURES: tuple[str, ...] = ("minicoco_root", "coco_sample_root", "embedded_val_annotations")

# Keep tests from writing into the user's cache and from oversubscribing the 2 CI cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def committed_data(relative: str) -> Path:
    """``tests/data/<relative>``; fails the test loudly (never skips) when it is missing."""
    path = TEST_DATA / relative
    if not path.exists():
        pytest.fail(
            f"committed test data missing: {path} (tests/data is part of the repository: "
            f"git checkout -- tests/data; tests/data/make_test_data.py rebuilds it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def tiny_embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny embedded dataset (COCO layout) generated once per test session."""
    from lrpose_bench.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("embedded") / "tiny"
    generate_dataset(out, num_train=24, num_val=12, seed=7)
    return out


@pytest.fixture(scope="session")
def minicoco_root() -> Path:
    """COCO root with 5 train and 7 val real COCO images (tests/data/minicoco, see its README)."""
    return committed_data("minicoco")


@pytest.fixture(scope="session")
def coco_sample_root() -> Path:
    """COCO root with 4 real val2017 images, annotations and person detections (tests/data/coco_sample)."""
    return committed_data("coco_sample")


@pytest.fixture(scope="session")
def embedded_val_annotations() -> Path:
    """The embedded synthetic dataset's validation annotations (generator output, committed)."""
    return committed_data("embedded_val/person_keypoints_val2017.json")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point LRPOSE_CACHE at a per-session temp folder so tests never touch ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "lrpose-cache"
    monkeypatch.setenv("LRPOSE_CACHE", str(cache))


# ---------------------------------------------------------------------------------------- skip policy
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a real-data fixture as ``parity``."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & set(REAL_DATA_FIXTURES):
            item.add_marker(pytest.mark.parity)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A skipped ``parity`` test is reported as failed: those checks must run everywhere."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("parity") is not None and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"parity test {item.nodeid} was skipped ({reason}); parity tests may not skip"


def _skip_reason(report: pytest.TestReport) -> str:
    """The reason text of a skipped report (``Skipped: `` prefix removed)."""
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001
    """Print the number of skipped tests with their reasons (works under pytest-xdist)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    reasons = Counter(_skip_reason(r) for r in skipped)
    detail = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
    terminalreporter.write_line(f"lrpose-bench skipped tests: {len(skipped)}" + (f" ({detail})" if detail else ""))
