"""RealNVP normalising flows in plain torch (Dinh, Sohl-Dickstein, Bengio: "Density estimation using Real
NVP", ICLR 2017), the learned density of RLE's residual log-likelihood loss (Li et al., ICCV 2021).

A flow is an invertible map ``g: z -> x`` from a standard normal latent ``z`` to data ``x``; the density of
``x`` follows from the change of variables

    ``log p(x) = log N(f(x); 0, I) + log |det df/dx|``,   ``f = g^-1``.

RealNVP builds ``g`` from *affine coupling layers*: with a binary mask ``b`` (1 = passed through),

    ``y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))``,   ``log |det dy/dx| = sum((1 - b) * s(b * x))``

and the exact inverse ``x = b * y + (1 - b) * (y - t(b * y)) * exp(-s(b * y))``; ``s`` and ``t`` are small
MLPs that only see the passed-through half, so neither their size nor their form affects invertibility.
Alternating masks let every coordinate be transformed.

Units: the flow works on dimensionless vectors (RLE feeds it the normalised residual ``(mu_hat - mu) /
sigma_hat``); every tensor is ``(..., dim)`` and batched over the leading dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def coupling_mlp(dim: int, hidden: int, tanh: bool) -> nn.Sequential:
    """``dim -> hidden -> hidden -> dim`` with LeakyReLU activations (and a final Tanh for the log-scale net).

    The RLE release's nets (two hidden layers of 64, LeakyReLU, Tanh bounding the log-scale ``s`` to
    ``[-1, 1]`` per layer so ``exp(s)`` stays in ``[1/e, e]``).
    """
    layers: list[nn.Module] = [nn.Linear(dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                               nn.Linear(hidden, dim)]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class AffineCoupling(nn.Module):
    """One RealNVP affine coupling layer on ``(..., dim)`` vectors with a fixed binary ``mask`` (1 = kept)."""

    def __init__(self, mask: torch.Tensor, hidden: int) -> None:
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.float32).flatten()
        if not bool(((mask == 0) | (mask == 1)).all()) or int(mask.sum().item()) in (0, mask.numel()):
            raise ValueError(f"coupling mask must be binary with both 0s and 1s, got {mask.tolist()}")
        self.register_buffer("mask", mask)
        dim = mask.numel()
        self.scale = coupling_mlp(dim, hidden, tanh=True)
        self.shift = coupling_mlp(dim, hidden, tanh=False)

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        free = 1.0 - self.mask.to(kept.dtype)
        return self.scale(kept) * free, self.shift(kept) * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y = g_layer(x)`` and ``log |det dy/dx|`` ``(...)``."""
        b = self.mask.to(x.dtype)
        kept = x * b
        s, t = self._scale_shift(kept)
        y = kept + (1.0 - b) * (x * torch.exp(s) + t)
        return y, s.sum(dim=-1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = g_layer^-1(y)`` and ``log |det dx/dy|`` ``(...)`` (the negative of the forward log-det at x)."""
        b = self.mask.to(y.dtype)
        kept = y * b
        s, t = self._scale_shift(kept)
        x = kept + (1.0 - b) * (y - t) * torch.exp(-s)
        return x, -s.sum(dim=-1)


class RealNVP(nn.Module):
    """A RealNVP flow with a standard normal base: ``layers`` affine couplings with alternating masks.

    Defaults (the RLE release, kept by MMPose's ``RealNVP``): ``dim=2`` (one keypoint's x/y residual),
    6 coupling layers (3 pairs of the masks ``[0, 1]``, ``[1, 0]``), MLPs of width 64, weights initialised
    Xavier-uniform with gain ``init_gain = 0.01`` (biases PyTorch's default), so the flow starts close to
    the identity and the density close to ``N(0, I)``.

    ``forward(z)`` maps latent -> data (sampling), ``inverse(x)`` data -> latent (density evaluation),
    both returning the log-det of their own Jacobian; ``log_prob(x)`` is the log-density of ``x``.
    """

    def __init__(self, dim: int = 2, layers: int = 6, hidden: int = 64, init_gain: float = 0.01) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"RealNVP needs dim >= 2 (a coupling splits the vector), got {dim}")
        if layers < 1 or hidden < 1:
            raise ValueError(f"RealNVP needs layers >= 1 and hidden >= 1, got layers={layers}, hidden={hidden}")
        self.dim = int(dim)
        base = torch.arange(self.dim)
        self.layers = nn.ModuleList(
            AffineCoupling(((base + i) % 2 == 1).float(), int(hidden)) for i in range(int(layers))
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=init_gain)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``z (..., dim)`` -> data ``x`` and ``log |det dx/dz|`` ``(...)``."""
        x, log_det = z, z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data ``x (..., dim)`` -> latent ``z`` and ``log |det dz/dx|`` ``(...)``."""
        z, log_det = x, x.new_zeros(x.shape[:-1])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` ``(...)`` of data ``x (..., dim)`` (natural log, density w.r.t. Lebesgue measure)."""
        z, log_det = self.inverse(x)
        base = -0.5 * (z * z).sum(dim=-1) - 0.5 * self.dim * math.log(2.0 * math.pi)
        return base + log_det


__all__ = ["coupling_mlp", "AffineCoupling", "RealNVP"]
