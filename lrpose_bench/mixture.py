"""2-D Gaussian mixtures of coarse-prediction errors, and the Mixture Gaussian Mask (MGM) they render.

CAL's MGM (Wang et al. 2022): the offsets between coarse (argmax) heatmap predictions and the ground
truth are modelled by a Gaussian mixture; its density, drawn around every ground-truth joint, weights the
offset loss so offsets are learned where the coarse prediction tends to land.

Units: errors and means in *heatmap px* (``argmax - ground truth``, ``(x, y)``), covariances in heatmap
px^2. Fitting uses scikit-learn's ``GaussianMixture`` (EM, CPU, numpy); density evaluation and mask
rendering are vectorised torch on the caller's device.

Mask normalisation: the mask is the density divided by the mixture's *global maximum* (found by the
fixed-point mode iteration started from every component mean), so it lies in ``(0, 1]`` and equals 1
where the coarse prediction is most likely to land; it is a relative weight, independent of how peaked
the fitted distribution is (a sharper fit does not inflate the offset loss). A sharper fit does shrink
the mask's *total* weight, and with it the offset term (with CAL's default ``offset_reduction="pixels"``;
``"mask"`` divides by that total): ``lrpose plot offsets`` prints a run's weight per joint in both stages
(:mod:`lrpose_bench.report.offset_weight`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

COVARIANCE_TYPES: tuple[str, ...] = ("full", "diag", "spherical", "tied")


@dataclass(frozen=True)
class Mixture2D:
    """A fitted 2-D Gaussian mixture (heatmap px): ``weights (n,)``, ``means (n, 2)``, ``covariances (n, 2, 2)``.

    ``peak_density`` is the maximum of the mixture density (px^-2); ``n_samples`` the number of errors fitted.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    peak_density: float
    n_samples: int

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    def density(self, d: torch.Tensor) -> torch.Tensor:
        """Mixture density at offsets ``d (..., 2)`` (heatmap px) -> ``(...)`` (px^-2), in ``d``'s dtype/device."""
        return mixture_density(d, self.weights, self.means, self.covariances)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists/floats (JSON-able and loadable with ``torch.load(weights_only=True)``)."""
        return {
            "n_components": self.n_components,
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "peak_density": float(self.peak_density),
            "n_samples": int(self.n_samples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Mixture2D":
        """Inverse of :meth:`to_dict` (accepts lists, numpy arrays or tensors); checks the shapes."""

        def arr(key: str) -> np.ndarray:
            v = data[key]
            v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
            return np.asarray(v, dtype=np.float64)

        w, m, c = arr("weights"), arr("means"), arr("covariances")
        n = w.shape[0]
        if w.ndim != 1 or m.shape != (n, 2) or c.shape != (n, 2, 2):
            raise ValueError(
                f"mixture state: weights {w.shape}, means {m.shape}, covariances {c.shape} are not (n,), (n,2), (n,2,2)"
            )
        return cls(w, m, c, float(data["peak_density"]), int(data["n_samples"]))


def mixture_density(d: torch.Tensor, weights: Any, means: Any, covariances: Any) -> torch.Tensor:
    """Density of a 2-D mixture at ``d (..., 2)``; parameters as arrays ``(n,)``, ``(n, 2)``, ``(n, 2, 2)``."""
    dtype = d.dtype if d.is_floating_point() else torch.float64
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64, device=d.device)
    mu = torch.as_tensor(np.asarray(means), dtype=torch.float64, device=d.device)
    cov = torch.as_tensor(np.asarray(covariances), dtype=torch.float64, device=d.device)
    prec = torch.linalg.inv(cov)  # (n, 2, 2)
    norm = w / (2.0 * math.pi * torch.sqrt(torch.linalg.det(cov)))  # (n,)
    diff = d.to(torch.float64)[..., None, :] - mu  # (..., n, 2)
    maha = torch.einsum("...ni,nij,...nj->...n", diff, prec, diff)
    return (norm * torch.exp(-0.5 * maha)).sum(-1).to(dtype)


def mixture_peak(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, iterations: int = 200) -> float:
    """Global maximum of the mixture density (px^-2).

    Fixed-point mode search (Carreira-Perpinan 2000): ``x <- (sum_i r_i P_i)^-1 sum_i r_i P_i mu_i`` with
    ``r_i`` the component responsibilities at ``x`` and ``P_i`` the precisions, started from every mean
    (every mode of a Gaussian mixture is reached from some mean in practice); the best value is returned.
    For one component it is the analytic ``1 / (2 pi sqrt(det C))``.
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    mu = torch.as_tensor(means, dtype=torch.float64)
    cov = torch.as_tensor(covariances, dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    x = mu.clone()  # (n starts, 2)
    for _ in range(iterations if w.numel() > 1 else 0):
        diff = x[:, None, :] - mu[None]  # (s, n, 2)
        maha = torch.einsum("sni,nij,snj->sn", diff, prec, diff)
        r = w / (2 * math.pi * torch.sqrt(torch.linalg.det(cov))) * torch.exp(-0.5 * maha)  # (s, n)
        a = torch.einsum("sn,nij->sij", r, prec)
        b = torch.einsum("sn,nij,nj->si", r, prec, mu)
        new = torch.linalg.solve(a, b[..., None])[..., 0]
        if torch.allclose(new, x, atol=1e-12, rtol=0):
            x = new
            break
        x = new
    dens = mixture_density(torch.cat([x, mu]), w.numpy(), mu.numpy(), cov.numpy())
    return float(dens.max())


def _full_covariances(cov: np.ndarray, kind: str, n: int) -> np.ndarray:
    """scikit-learn's per-type covariance arrays -> ``(n, 2, 2)`` full matrices."""
    if kind == "full":
        return np.asarray(cov, dtype=np.float64)
    if kind == "tied":
        return np.broadcast_to(np.asarray(cov, dtype=np.float64), (n, 2, 2)).copy()
    if kind == "diag":
        return np.stack([np.diag(c) for c in np.asarray(cov, dtype=np.float64)])
    return np.asarray(cov, dtype=np.float64)[:, None, None] * np.eye(2)  # spherical


def fit_mixture(
    errors: np.ndarray | torch.Tensor,
    n_components: int = 1,
    covariance_type: str = "full",
    seed: int = 0,
    reg_covar: float = 1e-3,
    max_samples: int | None = 200_000,
) -> Mixture2D:
    """Fit a Gaussian mixture to errors ``(N, 2)`` (heatmap px) with scikit-learn's EM.

    ``n_components`` is reduced to ``N`` when fewer samples exist; ``reg_covar`` (px^2) is added to the
    covariance diagonals (keeps the fit finite when errors sit on the integer grid, e.g. a perfect
    argmax); at most ``max_samples`` errors are used (a seeded random subset). Raises ``ValueError`` for
    fewer than 2 samples or an unknown covariance type.
    """
    from sklearn.mixture import GaussianMixture

    x = errors.detach().cpu().double().numpy() if isinstance(errors, torch.Tensor) else np.asarray(errors, np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"fit_mixture: errors must be (N, 2) heatmap px, got shape {x.shape}")
    x = x[np.isfinite(x).all(1)]
    if x.shape[0] < 2:
        raise ValueError(f"fit_mixture: need at least 2 finite error samples to fit a mixture, got {x.shape[0]}")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance type {covariance_type!r} is not one of {', '.join(COVARIANCE_TYPES)}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    n_total = x.shape[0]
    if max_samples is not None and n_total > max_samples:
        x = x[np.random.default_rng(seed).choice(n_total, size=max_samples, replace=False)]
    n = min(int(n_components), x.shape[0])
    gm = GaussianMixture(n_components=n, covariance_type=covariance_type, reg_covar=reg_covar, random_state=seed)
    gm.fit(x)
    w = np.asarray(gm.weights_, dtype=np.float64)
    mu = np.asarray(gm.means_, dtype=np.float64)
    cov = _full_covariances(gm.covariances_, covariance_type, n)
    order = np.argsort(-w, kind="stable")  # heaviest component first (a stable, readable order)
    w, mu, cov = w[order], mu[order], cov[order]
    return Mixture2D(w, mu, cov, mixture_peak(w, mu, cov), n_total)


def render_mask(
    mixture: Mixture2D,
    centres: torch.Tensor,
    size: Sequence[int],
    patch: int = 7,
    subpixel: bool = True,
) -> torch.Tensor:
    """The MGM ``(B, K, h, w)`` in ``[0, 1]``: ``density(p - c) / peak_density`` inside a patch, 0 outside.

    ``centres (B, K, 2)`` ground-truth joints (heatmap px); ``size = (w, h)``. The ``patch x patch``
    window (odd, heatmap px) is centred on each joint's integer peak ``q = floor(c + 0.5)`` (the argmax of
    its Gaussian target). The density is read at the exact offset ``p - c`` of each pixel ``p`` from the
    joint (``subpixel=True``; matches errors measured as ``argmax - c``), or at the integer offset
    ``p - q`` (``subpixel=False``; the released code's patch, for errors measured as ``argmax - q``).
    Only the ``B*K*patch^2`` window values are computed, then scattered into the map.
    """
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"MGM patch size must be a positive odd integer (heatmap px), got {patch}")
    b, k = centres.shape[:2]
    w, h = int(size[0]), int(size[1])
    dtype = centres.dtype if centres.is_floating_point() else torch.float32
    c = centres.to(dtype)
    q = torch.floor(c + 0.5)
    r = patch // 2
    steps = torch.arange(-r, r + 1, dtype=dtype, device=c.device)
    px = q[..., 0, None, None] + steps.view(1, 1, 1, -1)  # (B,K,1,P)
    py = q[..., 1, None, None] + steps.view(1, 1, -1, 1)  # (B,K,P,1)
    px, py = torch.broadcast_tensors(px, py)  # (B,K,P,P)
    ref = c if subpixel else q
    d = torch.stack([px - ref[..., 0, None, None], py - ref[..., 1, None, None]], -1)
    values = (mixture.density(d) / mixture.peak_density).to(dtype)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    flat_idx = torch.where(inside, py.long() * w + px.long(), torch.full_like(px, h * w, dtype=torch.long))
    out = torch.zeros(b, k, h * w + 1, dtype=dtype, device=c.device)
    out.scatter_(2, flat_idx.reshape(b, k, -1), values.reshape(b, k, -1))
    return out[..., : h * w].reshape(b, k, h, w)


__all__ = ["Mixture2D", "mixture_density", "mixture_peak", "fit_mixture", "render_mask", "COVARIANCE_TYPES"]
