"""OKS-NMS (HRNet's ``oks_nms``): the area convention and the greedy order, pinned by cases that tell them apart.

HRNet compares two predictions with OKS over all joints, using the *mean* of their two areas, and
visits the instances of an image in descending score order; an instance is dropped when its OKS with an
already kept one exceeds the threshold. Cases with equal areas cannot tell mean from sum, min or max,
and a chain whose best instance is at one end is kept the same in either order; these cases can.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrpose_bench.evaluation import oks_nms

SIGMA_HALF = np.array([0.5])  # one joint, (2 sigma)^2 = 1: OKS = exp(-d^2 / (2 * area))


def _pair(d2: float, areas: tuple[float, float]) -> list[bool]:
    """Keep mask of two one-joint instances ``d2`` px^2 apart in one image (the first scores higher)."""
    coords = torch.tensor([[[0.0, 0.0]], [[math.sqrt(d2), 0.0]]], dtype=torch.float64)
    return oks_nms([1, 1], coords, torch.tensor([0.9, 0.8]), torch.tensor(areas), 0.9, SIGMA_HALF).tolist()


def test_area_is_the_mean_of_the_two_areas() -> None:
    """Areas 1 and 3: mean 2, sum 4, max 3, min 1. OKS = exp(-d^2 / (2 a)), suppressed when > 0.9.

    d^2 = 0.6: mean -> exp(-0.15) = 0.861, kept; sum -> exp(-0.075) = 0.928 and max -> exp(-0.1) = 0.905,
    suppressed. d^2 = 0.4: mean -> exp(-0.1) = 0.905, suppressed; min -> exp(-0.2) = 0.819, kept.
    """
    assert math.exp(-0.6 / (2 * 2)) < 0.9 < min(math.exp(-0.6 / (2 * 4)), math.exp(-0.6 / (2 * 3)))
    assert math.exp(-0.4 / (2 * 1)) < 0.9 < math.exp(-0.4 / (2 * 2))
    assert _pair(0.6, (1.0, 3.0)) == [True, True]
    assert _pair(0.6, (3.0, 1.0)) == [True, True]  # symmetric in the two areas
    assert _pair(0.4, (1.0, 3.0)) == [True, False]
    assert _pair(0.4, (3.0, 1.0)) == [True, False]


def test_greedy_order_is_descending_score() -> None:
    """A chain A (x 0) - B (x 0.4) - C (x 0.8), area 1: OKS(A,B) = OKS(B,C) = exp(-0.08) = 0.923 > 0.9,
    OKS(A,C) = exp(-0.32) = 0.726.

    B scores highest: it is kept first and drops both A and C. Visited in ascending order, C would be kept,
    then A (far from C), and B dropped: the opposite mask.
    """
    coords = torch.tensor([[[0.0, 0.0]], [[0.4, 0.0]], [[0.8, 0.0]]], dtype=torch.float64)
    keep = oks_nms([5, 5, 5], coords, torch.tensor([0.8, 0.9, 0.7]), torch.ones(3), 0.9, SIGMA_HALF)
    assert keep.tolist() == [False, True, False]
    # the same scores in reverse keep the ends and drop the middle
    keep = oks_nms([5, 5, 5], coords, torch.tensor([0.9, 0.8, 0.95]), torch.ones(3), 0.9, SIGMA_HALF)
    assert keep.tolist() == [True, False, True]


def reference_oks_nms(image_ids: np.ndarray, coords: np.ndarray, scores: np.ndarray, areas: np.ndarray,
                      threshold: float, sigmas: np.ndarray, area_rule: str = "mean",
                      descending: bool = True) -> np.ndarray:
    """HRNet's greedy OKS-NMS written plainly, one image and one instance at a time (the test's oracle).

    ``area_rule`` / ``descending`` give the wrong variants, to show that the random case tells them apart.
    """
    keep = np.zeros(len(scores), dtype=bool)
    var = (2.0 * sigmas) ** 2
    for image in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == image)
        order = idx[np.argsort(-scores[idx] if descending else scores[idx], kind="stable")]
        while order.size:
            i, rest = order[0], order[1:]
            keep[i] = True
            d2 = ((coords[rest] - coords[i]) ** 2).sum(-1)  # (R, K)
            pair_area = areas[i] + areas[rest] if area_rule == "sum" else 0.5 * (areas[i] + areas[rest])
            similarity = np.exp(-d2 / var / (2.0 * pair_area[:, None] + np.spacing(1))).mean(-1)
            order = rest[similarity <= threshold]
    return keep


def test_matches_the_plain_greedy_reference_on_random_crowds() -> None:
    """Random crowds (17 joints, areas over a 10x range, near-duplicates) against the plain reference."""
    from lrpose_bench.keypoints import OKS_SIGMAS

    rng = np.random.default_rng(0)
    n_images, per_image, k = 12, 9, 17
    image_ids = np.repeat(np.arange(n_images) * 7 + 3, per_image)
    rng.shuffle(image_ids)
    areas = rng.uniform(800.0, 8000.0, size=image_ids.size)
    base = rng.uniform(0, 200, size=(n_images * 7 + 3, k, 2))
    jitter = rng.normal(0.0, 1.0, size=(image_ids.size, 1, 1)) * rng.uniform(0.5, 5.0, size=(image_ids.size, k, 2))
    coords = base[image_ids] + jitter  # every instance near its image's base pose
    scores = rng.uniform(0.1, 1.0, size=image_ids.size)
    expected = reference_oks_nms(image_ids, coords, scores, areas, 0.9, OKS_SIGMAS)
    # the case is discriminating: about half suppressed, and the wrong conventions give other masks
    assert 0.3 < 1 - expected.mean() < 0.9
    assert (reference_oks_nms(image_ids, coords, scores, areas, 0.9, OKS_SIGMAS, area_rule="sum") != expected).any()
    assert (reference_oks_nms(image_ids, coords, scores, areas, 0.9, OKS_SIGMAS, descending=False) != expected).any()
    got = oks_nms(image_ids, coords, scores, areas, 0.9)
    assert got.tolist() == expected.tolist()
    assert oks_nms(image_ids, coords, scores, areas, 0.9, max_elements=500).tolist() == expected.tolist()
