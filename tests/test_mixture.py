"""GMM fitting of coarse errors and MGM rendering (lrpose_bench.mixture)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrpose_bench.mixture import Mixture2D, fit_mixture, mixture_peak, render_mask


def _numpy_density(d: np.ndarray, w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> float:
    total = 0.0
    for wi, mi, ci in zip(w, mu, cov):
        diff = d - mi
        total += wi * math.exp(-0.5 * diff @ np.linalg.inv(ci) @ diff) / (2 * math.pi * math.sqrt(np.linalg.det(ci)))
    return total


def test_fit_recovers_known_mixture() -> None:
    rng = np.random.default_rng(0)
    mu = np.array([[0.2, -0.1], [3.0, -2.0]])
    cov = np.array([[[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 0.8]]])
    n = 6000
    which = rng.random(n) < 0.7
    x = np.where(which[:, None], rng.multivariate_normal(mu[0], cov[0], n), rng.multivariate_normal(mu[1], cov[1], n))
    fit = fit_mixture(x, n_components=2, reg_covar=1e-6)
    assert fit.n_samples == n
    assert fit.weights == pytest.approx([0.7, 0.3], abs=0.02)  # heaviest first
    assert np.allclose(fit.means, mu, atol=0.05)
    assert np.allclose(fit.covariances, cov, atol=0.05)


def test_single_component_peak_is_analytic() -> None:
    cov = np.array([[[0.5, 0.2], [0.2, 0.3]]])
    peak = mixture_peak(np.array([1.0]), np.array([[0.4, -0.3]]), cov)
    assert peak == pytest.approx(1.0 / (2 * math.pi * math.sqrt(np.linalg.det(cov[0]))), rel=1e-12)


def test_mixture_peak_matches_grid_search() -> None:
    w = np.array([0.6, 0.4])
    mu = np.array([[0.0, 0.0], [0.8, 0.3]])  # overlapping: the mode lies between the means
    cov = np.array([[[0.4, 0.0], [0.0, 0.4]], [[0.3, 0.1], [0.1, 0.5]]])
    xs = np.linspace(-1, 2, 601)
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    from lrpose_bench.mixture import mixture_density

    brute = mixture_density(torch.from_numpy(grid), w, mu, cov).max().item()
    peak = mixture_peak(w, mu, cov)
    assert peak >= brute - 1e-9
    assert peak == pytest.approx(brute, rel=1e-4)
    assert peak > mixture_density(torch.from_numpy(mu), w, mu, cov).max().item()


def _mixture() -> Mixture2D:
    w = np.array([0.75, 0.25])
    mu = np.array([[0.1, -0.2], [1.0, 0.5]])
    cov = np.array([[[0.6, 0.1], [0.1, 0.4]], [[1.0, 0.0], [0.0, 1.5]]])
    return Mixture2D(w, mu, cov, mixture_peak(w, mu, cov), 100)


def test_render_mask_values_are_density_ratios() -> None:
    mix = _mixture()
    centres = torch.tensor([[[5.3, 4.6], [0.2, 0.4]]], dtype=torch.float64)
    mask = render_mask(mix, centres, (12, 10), patch=7)
    assert mask.shape == (1, 2, 10, 12)
    # joint 0: peak pixel q = (5, 5); pixel (6, 4) is at offset (0.7, -0.6) from the joint
    expected = _numpy_density(np.array([0.7, -0.6]), mix.weights, mix.means, mix.covariances) / mix.peak_density
    assert mask[0, 0, 4, 6].item() == pytest.approx(expected, rel=1e-10)
    # window is x, y in [2, 8] around q = (5, 5): (9, 5) and (5, 1) lie outside
    assert mask[0, 0, 5, 9].item() == 0.0 and mask[0, 0, 1, 5].item() == 0.0
    assert mask[0, 0, 8, 2].item() > 0.0
    assert (mask[0, 0] > 0).sum().item() == 49
    assert mask.max().item() <= 1.0
    # joint 1 near the corner: the window is clipped to x, y in [0, 3]
    assert (mask[0, 1] > 0).sum().item() == 16
    # integer-offset variant: offset measured from q
    mask_int = render_mask(mix, centres, (12, 10), patch=7, subpixel=False)
    expected_int = _numpy_density(np.array([1.0, -1.0]), mix.weights, mix.means, mix.covariances) / mix.peak_density
    assert mask_int[0, 0, 4, 6].item() == pytest.approx(expected_int, rel=1e-10)


def test_render_mask_rejects_even_patch() -> None:
    with pytest.raises(ValueError, match="odd"):
        render_mask(_mixture(), torch.zeros(1, 1, 2), (4, 4), patch=6)


def test_mixture_state_round_trip(tmp_path) -> None:
    mix = _mixture()
    path = tmp_path / "m.pt"
    torch.save(mix.to_dict(), path)
    back = Mixture2D.from_dict(torch.load(path, weights_only=True))
    assert np.array_equal(back.covariances, mix.covariances) and back.peak_density == mix.peak_density
    with pytest.raises(ValueError, match="not"):
        Mixture2D.from_dict({**mix.to_dict(), "means": [[0.0, 0.0, 0.0]]})


def test_fit_needs_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        fit_mixture(np.zeros((1, 2)))
    fit = fit_mixture(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.2]]), n_components=5)
    assert fit.n_components == 3
