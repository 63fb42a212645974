"""RLE: normalised crop coordinates, the residual log-likelihood by hand, the loss on a toy problem, flips."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lrpose_bench.geometry import flip_points
from lrpose_bench.keypoints import FLIP_INDEX
from lrpose_bench.method import build_method
from lrpose_bench.methods.rle import RLEHead, RLEMethod


def _identity_flow(method: RLEMethod) -> None:
    """Zero the last layer of every s/t net: s = tanh(0) = 0, t = 0, the flow is the identity (G = N(0, I))."""
    assert method.flow is not None
    with torch.no_grad():
        for layer in method.flow.layers:
            for net in (layer.scale, layer.shift):
                last = [m for m in net if isinstance(m, nn.Linear)][-1]
                last.weight.zero_()
                last.bias.zero_()


def test_options_and_errors() -> None:
    m = build_method("rle")
    assert m.describe()["options"] == {"residual": True, "q_distribution": "laplace", "flow_layers": 6, "flow_hidden": 64,
                                       "pool": "trunk"}  # fmt: skip
    with pytest.raises(ValueError, match="pool='c4' is not one of trunk, features"):
        build_method("rle", {"pool": "c4"})
    with pytest.raises(ValueError, match="q_distribution='cauchy' is not one of laplace, gaussian"):
        build_method("rle", {"q_distribution": "cauchy"})
    with pytest.raises(ValueError, match="flow_layers=0 must be >= 1"):
        build_method("rle", {"flow_layers": "0"})
    with pytest.raises(ValueError, match="true/false"):
        build_method("rle", {"residual": "maybe"})
    with pytest.raises(RuntimeError, match="call build_head first"):
        m.loss({"coords": torch.zeros(1, 1, 2), "sigma": torch.ones(1, 1, 2)},
               {"coords": torch.zeros(1, 1, 2), "weight": torch.ones(1, 1)})


def test_encode_hand_values() -> None:
    m = build_method("rle")
    g = m.geometry((48, 64))
    kp = torch.tensor([[[0.0, 0.0], [47.0, 63.0], [-0.5, 31.5]]])
    t = m.encode(kp, torch.tensor([[1.0, 1.0, 0.0]]), g)
    # u = (x + 0.5) / 48, v = (y + 0.5) / 64
    expected = torch.tensor([[0.5 / 48, 0.5 / 64], [47.5 / 48, 63.5 / 64], [0.0, 0.5]])
    assert torch.allclose(t["coords"][0], expected, atol=1e-7)
    assert t["weight"].tolist() == [[1.0, 1.0, 0.0]]
    coords, scores = m.decode({"coords": t["coords"], "sigma": torch.tensor([[[0.1, 0.3], [0.0, 0.0], [0.5, 0.5]]])}, g)
    assert torch.allclose(coords, kp, atol=1e-5)
    assert scores[0].tolist() == pytest.approx([0.8, 1.0, 0.5])  # 1 - mean(sigma)


@pytest.mark.parametrize("res", [(48, 64), (96, 128)])
def test_round_trip(res: tuple[int, int]) -> None:
    m = build_method("rle")
    g = m.geometry(res)
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(50, 17, 2, generator=gen) * torch.tensor([res[0] + 10.0, res[1] + 10.0]) - 5.0  # also outside
    t = m.encode(kp, torch.ones(50, 17), g)
    coords, scores = m.decode(m.targets_as_outputs(t), g)
    assert (coords - kp).abs().max().item() < 1e-4 and torch.all(scores == 1)


def test_nll_by_hand() -> None:
    m = build_method("rle")
    m.build_head(4, 1, m.geometry((48, 64)))
    _identity_flow(m)
    out = {"coords": torch.tensor([[[0.30, 0.50]]]), "sigma": torch.tensor([[[0.10, 0.20]]])}
    tgt = {"coords": torch.tensor([[[0.25, 0.60]]]), "weight": torch.tensor([[1.0]])}
    r = (0.5, -0.5)  # (0.30 - 0.25) / 0.1, (0.50 - 0.60) / 0.2
    log_sigma = math.log(0.1) + math.log(0.2)
    log_g = -0.5 * (r[0] ** 2 + r[1] ** 2) - math.log(2 * math.pi)  # standard 2-D normal
    laplace = 2 * math.log(2) + abs(r[0]) + abs(r[1])
    assert m.loss(out, tgt)["total"].item() == pytest.approx(log_sigma - log_g + laplace, rel=1e-5)
    g = build_method("rle", {"q_distribution": "gaussian"})
    g.build_head(4, 1, g.geometry((48, 64)))
    _identity_flow(g)
    gauss = math.log(2 * math.pi) + 0.5 * (r[0] ** 2 + r[1] ** 2)
    assert g.loss(out, tgt)["total"].item() == pytest.approx(log_sigma - log_g + gauss, rel=1e-5)
    direct = build_method("rle", {"residual": "false"})
    direct.build_head(4, 1, direct.geometry((48, 64)))
    _identity_flow(direct)
    assert direct.loss(out, tgt)["total"].item() == pytest.approx(log_sigma - log_g, rel=1e-5)
    # weight 0 drops the joint; the sum over joints is divided by the batch size (2 here)
    two = {"coords": out["coords"].expand(2, 1, 2), "sigma": out["sigma"].expand(2, 1, 2)}
    tgt2 = {"coords": tgt["coords"].expand(2, 1, 2), "weight": torch.tensor([[1.0], [0.0]])}
    assert m.loss(two, tgt2)["total"].item() == pytest.approx(0.5 * (log_sigma - log_g + laplace), rel=1e-5)


def test_head_shapes_and_pooling() -> None:
    m = build_method("rle")
    head = m.build_head(8, 17, m.geometry((48, 64)))
    assert isinstance(head, RLEHead) and head.flow is m.flow
    out = head(torch.randn(3, 8, 16, 12))
    assert out["coords"].shape == (3, 17, 2) and out["sigma"].shape == (3, 17, 2)
    assert torch.all((out["sigma"] > 0) & (out["sigma"] < 1))
    # the flow's parameters belong to the head (optimiser, checkpoints), and global pooling ignores the size
    assert {n.split(".")[0] for n, _ in head.named_parameters()} == {"fc", "flow"}
    assert head(torch.randn(1, 8, 32, 24))["coords"].shape == (1, 17, 2)


@pytest.mark.parametrize(("backbone", "size", "channels", "stride"), [("tiny", (48, 64), 128, 16), ("resnet50", (96, 128), 2048, 32)])
def test_pooling_reads_the_deepest_trunk_map(backbone: str, size: tuple[int, int], channels: int, stride: int) -> None:
    """As MMPose's RLE (ResNet C5 -> global pooling -> linear): the trunk's deepest map, the upsampling stage gone."""
    from lrpose_bench.engine.runner import build_model

    m = build_method("rle")
    model = build_model(m, m.geometry(size), backbone, None)
    assert model.trunk_only and model.head.fc.in_features == channels
    assert not any(getattr(model.backbone, name) for name in model.backbone.tail_modules)  # no unused parameters
    images = torch.randn(2, 3, size[1], size[0])
    assert model.features(images).shape == (2, channels, size[1] // stride, size[0] // stride)
    out = model(images)
    out["coords"].sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("head.flow"))

    stride4 = build_model(build_method("rle", {"pool": "features"}), m.geometry(size), backbone, None)
    assert not stride4.trunk_only and stride4.head.fc.in_features == stride4.backbone.out_channels
    assert stride4.features(images).shape[-2:] == (size[1] // 4, size[0] // 4)


def test_trunk_only_frees_resnet_of_its_multiple_of_32_rule() -> None:
    """MMPose's RLE on ResNet-50 runs at 64x48: no deconvolutions have to land on stride 4."""
    from lrpose_bench.engine.runner import build_model

    m = build_method("rle")
    model = build_model(m, m.geometry((48, 64)), "resnet50", None)
    assert model(torch.randn(1, 3, 64, 48))["coords"].shape == (1, 17, 2)
    heatmap = build_method("heatmap")
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model(heatmap, heatmap.geometry((48, 64)), "resnet50", None)
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model(build_method("rle", {"pool": "features"}), m.geometry((48, 64)), "resnet50", None)


def test_pooling_the_trunk_refuses_hrnet() -> None:
    from lrpose_bench.engine.runner import build_model

    m = build_method("rle")
    with pytest.raises(ValueError, match="backbone 'hrnet_w32' has no single deepest trunk map for rle"):
        build_model(m, m.geometry((96, 128)), "hrnet_w32", None)
    assert build_model(build_method("rle", {"pool": "features"}), m.geometry((96, 128)), "hrnet_w32", None)


def test_loss_decreases_on_a_toy_problem() -> None:
    """4 samples, 2 joints, 8 pooled features: the linear head can fit them exactly; head and flow train."""
    torch.manual_seed(0)
    m = build_method("rle")
    g = m.geometry((48, 64))
    head = m.build_head(8, 2, g)
    feats = torch.randn(4, 8, 1, 1)
    kp = torch.rand(4, 2, 2) * torch.tensor([47.0, 63.0])
    targets = m.encode(kp, torch.ones(4, 2), g)
    opt = torch.optim.Adam(head.parameters(), lr=2e-2)
    losses = []
    flow_before = [p.detach().clone() for p in m.flow.parameters()]
    for _ in range(100):
        loss = m.loss(head(feats), targets)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 5.0  # nats per sample (2 joints): ~6 -> ~-3
    assert sum(losses[-10:]) < sum(losses[:10])
    assert any(not torch.equal(a, b) for a, b in zip(flow_before, m.flow.parameters()))  # the flow learns too
    with torch.no_grad():
        coords, _ = m.decode(head(feats), g)
    centre = m.decode(m.targets_as_outputs({"coords": torch.full_like(targets["coords"], 0.5)}), g)[0]
    assert (coords - kp).abs().mean() < 0.1 * (centre - kp).abs().mean()  # from the crop centre to the joints


def test_flip_back_is_the_mirror() -> None:
    m = build_method("rle")
    g = m.geometry((48, 64))
    gen = torch.Generator().manual_seed(1)
    kp = torch.rand(20, 17, 2, generator=gen) * torch.tensor([47.0, 63.0])
    vis = torch.ones(20, 17)
    sigma = torch.rand(20, 17, 2, generator=gen) * 0.5
    out = {"coords": m.encode(kp, vis, g)["coords"], "sigma": sigma}
    mirrored = flip_points(kp, g.crop_size[0])[:, list(FLIP_INDEX)]
    out_f = {"coords": m.encode(mirrored, vis, g)["coords"], "sigma": sigma[:, list(FLIP_INDEX)]}
    back = m.flip_back(out_f, FLIP_INDEX)
    assert torch.allclose(back["coords"], out["coords"], atol=1e-6) and torch.equal(back["sigma"], sigma)
    merged = m.merge_flip(out, back)
    coords, scores = m.decode(merged, g)
    ref_coords, ref_scores = m.decode(out, g)
    assert torch.allclose(coords, ref_coords, atol=1e-4) and torch.allclose(scores, ref_scores)
    assert m.coarse(out, g) is None  # not a grid method


def test_paper_profile_falls_back_to_resnet50_for_rle() -> None:
    """`lrpose run --method rle --data COCO` (paper profile, HRNet by default) trains MMPose's ResNet-50 RLE
    and says so; an explicit --backbone is kept; a method HRNet can serve keeps HRNet."""
    from types import SimpleNamespace

    from lrpose_bench.engine.runner import resolve_backbone

    rle = build_method("rle")
    backbone, why = resolve_backbone(SimpleNamespace(backbone=None), "paper", rle)
    assert backbone == "resnet50" and why is not None and "hrnet_w32 cannot serve" in why
    assert resolve_backbone(SimpleNamespace(backbone=None), "quick", rle) == ("tiny", None)
    assert resolve_backbone(SimpleNamespace(backbone="hrnet_w48"), "paper", rle) == ("hrnet_w48", None)
    assert resolve_backbone(SimpleNamespace(backbone=None), "paper", build_method("rle", {"pool": "features"})) == ("hrnet_w32", None)
    assert resolve_backbone(SimpleNamespace(backbone=None), "paper", build_method("heatmap")) == ("hrnet_w32", None)
