"""Keypoint error types (good / jitter / inversion / swap / miss) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrpose_bench.evaluation.error_types import ERROR_TYPES, error_type_summary, keypoint_error_types
from lrpose_bench.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, OKS_SIGMAS

AREA = 10_000.0
LWRI, RWRI, NOSE = KEYPOINT_NAMES.index("left_wrist"), KEYPOINT_NAMES.index("right_wrist"), 0
GOOD, JITTER, INVERSION, SWAP, MISS = range(5)


def _radius(joint: int, ks: float, area: float = AREA) -> float:
    """Distance (px) at which joint's keypoint similarity equals ks: d^2 = -ln(ks) * 2 * area * (2 sigma)^2."""
    return math.sqrt(-math.log(ks) * 2.0 * area * (2.0 * OKS_SIGMAS[joint]) ** 2)


def _person(x0: float) -> np.ndarray:
    """A person's GT (K, 3): joints 40 px apart in x from x0, all labelled."""
    gt = np.zeros((NUM_KEYPOINTS, 3))
    gt[:, 0] = x0 + 40.0 * np.arange(NUM_KEYPOINTS)
    gt[:, 1] = 100.0
    gt[:, 2] = 2
    return gt


def test_radii_by_hand() -> None:
    # left wrist sigma 0.062, area 1e4: ks 0.85 at sqrt(-ln .85 * 2e4 * 0.124^2) = 7.07 px, ks 0.5 at 14.60 px
    assert _radius(LWRI, 0.85) == pytest.approx(7.0701, abs=1e-3)
    assert _radius(LWRI, 0.5) == pytest.approx(14.5994, abs=1e-3)


@pytest.mark.parametrize(("dx", "want"), [(0.0, GOOD), (7.0, GOOD), (7.2, JITTER), (14.5, JITTER), (14.7, MISS)])
def test_own_joint_thresholds(dx: float, want: int) -> None:
    gt = _person(0.0)[None]
    pred = gt[..., :2].copy()
    pred[0, LWRI, 1] += dx  # move down: away from every other joint (they lie on a row 40 px apart)
    codes = keypoint_error_types(pred, gt, np.array([AREA]), np.array([1]))
    assert codes[0, LWRI] == want
    assert (np.delete(codes[0], LWRI) == GOOD).all()


def test_inversion_swap_and_unlabelled() -> None:
    a, b = _person(0.0), _person(2000.0)  # two people in one image, far apart
    gt = np.stack([a, b, _person(0.0)])
    pred = gt[..., :2].copy()
    pred[0, LWRI] = a[RWRI, :2] + [3.0, 0.0]  # on its own right wrist: inversion
    pred[0, NOSE] = b[NOSE, :2]  # on the other person's nose: swap
    pred[1, LWRI] = a[RWRI, :2]  # on the other person's right wrist (the partner joint): swap
    pred[1, NOSE] = [5000.0, 5000.0]  # nowhere: miss
    gt[2, RWRI, 2] = 0  # unlabelled partner: no inversion possible, and the joint itself is not scored
    pred[2, LWRI] = gt[2, RWRI, :2]  # image 2 holds person 2 alone
    codes = keypoint_error_types(pred, gt, np.full(3, AREA), np.array([7, 7, 8]))
    assert codes[0, LWRI] == INVERSION and codes[0, RWRI] == GOOD
    assert codes[0, NOSE] == SWAP and codes[1, LWRI] == SWAP and codes[1, NOSE] == MISS
    assert codes[2, LWRI] == MISS and codes[2, RWRI] == -1
    # the same predictions with person 1 in another image: no swap partner left
    codes = keypoint_error_types(pred, gt, np.full(3, AREA), np.array([7, 9, 8]))
    assert codes[0, NOSE] == MISS and codes[1, LWRI] == MISS


def test_summary_fractions() -> None:
    codes = np.array([[GOOD, JITTER, -1] + [GOOD] * (NUM_KEYPOINTS - 3),
                      [INVERSION, SWAP, -1] + [MISS] * (NUM_KEYPOINTS - 3)])  # fmt: skip
    summary = error_type_summary(codes)
    labelled = 2 * NUM_KEYPOINTS - 2
    assert summary["overall"]["good"] == pytest.approx((1 + NUM_KEYPOINTS - 3) / labelled)
    assert summary["overall"]["miss"] == pytest.approx((NUM_KEYPOINTS - 3) / labelled)
    assert sum(summary["overall"].values()) == pytest.approx(1.0)
    assert summary["per_joint"][KEYPOINT_NAMES[0]] == {"good": 0.5, "jitter": 0.0, "inversion": 0.5, "swap": 0.0, "miss": 0.0}
    assert summary["per_joint"][KEYPOINT_NAMES[2]] is None
    assert tuple(summary["overall"]) == ERROR_TYPES


def test_many_images_match_a_loop() -> None:
    """The vectorised same-image pairing equals a per-pair loop on random data."""
    rng = np.random.default_rng(0)
    n = 40
    gt = np.concatenate([rng.uniform(0, 200, (n, NUM_KEYPOINTS, 2)), rng.integers(0, 3, (n, NUM_KEYPOINTS, 1))], -1)
    pred = gt[..., :2] + rng.normal(0, 20, (n, NUM_KEYPOINTS, 2))
    areas, ids = rng.uniform(2000, 20000, n), rng.integers(0, 12, n)
    codes = keypoint_error_types(pred, gt, areas, ids)
    from lrpose_bench.keypoints import FLIP_INDEX

    def ks(p: np.ndarray, t: np.ndarray, area: float, j: int) -> float:
        return math.exp(-((p - t) ** 2).sum() / (2 * area * (2 * OKS_SIGMAS[j]) ** 2))

    for i in range(n):
        for j in range(NUM_KEYPOINTS):
            if gt[i, j, 2] == 0:
                assert codes[i, j] == -1
                continue
            own, q = ks(pred[i, j], gt[i, j, :2], areas[i], j), FLIP_INDEX[j]
            swap = any(gt[m, jj, 2] > 0 and ks(pred[i, j], gt[m, jj, :2], areas[m], j) >= 0.5
                       for m in range(n) if m != i and ids[m] == ids[i] for jj in {j, q})  # fmt: skip
            inv = q != j and gt[i, q, 2] > 0 and ks(pred[i, j], gt[i, q, :2], areas[i], j) >= 0.5
            want = GOOD if own >= 0.85 else JITTER if own >= 0.5 else INVERSION if inv else SWAP if swap else MISS
            assert codes[i, j] == want, (i, j)
