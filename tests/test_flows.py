"""RealNVP (lrpose_bench.flows): exact inverse, log-determinants against autograd, a normalised density."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrpose_bench.flows import AffineCoupling, RealNVP


def _scrambled(flow: RealNVP, std: float = 0.2, seed: int = 0) -> RealNVP:
    """Give the flow non-trivial weights (its init is close to the identity, which would test little).

    std 0.2 bends the density clearly (latents up to ~8 for data within 6) without stretching it so far
    that a float32 round trip or a finite integration grid loses it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in flow.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * std)
    return flow


def test_defaults_are_the_releases() -> None:
    flow = RealNVP()
    assert flow.dim == 2 and len(flow.layers) == 6
    assert [layer.mask.tolist() for layer in flow.layers] == [[0.0, 1.0], [1.0, 0.0]] * 3
    first = flow.layers[0].scale[0]
    assert first.in_features == 2 and first.out_features == 64
    assert isinstance(flow.layers[0].scale[-1], nn.Tanh) and not isinstance(flow.layers[0].shift[-1], nn.Tanh)
    # Xavier-uniform with gain 0.01: |w| <= 0.01 * sqrt(6 / (fan_in + fan_out))
    assert first.weight.abs().max().item() <= 0.01 * math.sqrt(6 / 66) + 1e-9


def test_coupling_by_hand() -> None:
    layer = AffineCoupling(torch.tensor([1.0, 0.0]), hidden=4)
    with torch.no_grad():  # make s(x) = tanh(0) = 0 -> then set the output bias: s = tanh(0.5), t = 2
        for net in (layer.scale, layer.shift):
            for m in net:
                if isinstance(m, nn.Linear):
                    m.weight.zero_()
                    m.bias.zero_()
        layer.scale[4].bias.fill_(0.5)
        layer.shift[4].bias.fill_(2.0)
    x = torch.tensor([[3.0, -1.0]])
    y, log_det = layer(x)
    s = math.tanh(0.5)
    # kept coordinate 0 passes; coordinate 1 becomes x1 * exp(s) + t
    assert y[0].tolist() == pytest.approx([3.0, -1.0 * math.exp(s) + 2.0])
    assert log_det.item() == pytest.approx(s)
    back, inv_det = layer.inverse(y)
    assert back[0].tolist() == pytest.approx([3.0, -1.0]) and inv_det.item() == pytest.approx(-s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip(dtype: torch.dtype) -> None:
    flow = _scrambled(RealNVP()).to(dtype)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(1), dtype=dtype) * 2.0
    z, ld_inv = flow.inverse(x)
    x2, ld_fwd = flow(z)
    assert torch.allclose(x2, x, atol=1e-5, rtol=0)
    assert torch.allclose(ld_fwd, -ld_inv, atol=1e-5, rtol=0)  # log|det dx/dz| = -log|det dz/dx|
    z2, _ = flow.inverse(flow(z)[0])
    assert torch.allclose(z2, z, atol=1e-5, rtol=0)


def test_log_det_matches_autograd_jacobian() -> None:
    flow = _scrambled(RealNVP(), seed=3).double()
    points = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, log_det = flow.inverse(points)
    for p, ld in zip(points, log_det):
        jac = torch.autograd.functional.jacobian(lambda v: flow.inverse(v[None])[0][0], p)
        assert ld.item() == pytest.approx(torch.linalg.det(jac).abs().log().item(), abs=1e-5)
    _, log_det_f = flow(points)
    for p, ld in zip(points, log_det_f):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], p)
        assert ld.item() == pytest.approx(torch.linalg.det(jac).abs().log().item(), abs=1e-5)


def test_density_is_normalised() -> None:
    flow = _scrambled(RealNVP(), seed=5).double()
    step = 0.15  # within 1e-3 of 1 here, as at 0.1 and 0.05 (2.25 and 9 times the points); the tail beyond 15 holds ~1e-4
    axis = torch.arange(-15.0, 15.0 + step / 2, step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum().item() * step * step
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="dim >= 2"):
        RealNVP(dim=1)
    with pytest.raises(ValueError, match="layers >= 1"):
        RealNVP(layers=0)
    with pytest.raises(ValueError, match="binary"):
        AffineCoupling(torch.tensor([1.0, 1.0]), hidden=4)
