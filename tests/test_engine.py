"""Unit tests of the engine's pieces: profiles/overrides, lr schedule, stage split, data order, RNG and
checkpoint round trips, single-process distributed helpers."""

from __future__ import annotations

import copy
import inspect
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lrpose_bench.engine import distributed as D
from lrpose_bench.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from lrpose_bench.engine.config import PROFILES, TrainConfig, make_config, parse_hparam
from lrpose_bench.engine.env import resolve_device, versions
from lrpose_bench.engine.trainer import EpochBatchSampler, stage_schedule
from lrpose_bench.method import Stage


# ------------------------------------------------------------------ config
def test_parse_hparam_types_values_by_field() -> None:
    assert parse_hparam("epochs", "7") == 7
    assert parse_hparam("lr", "2.5e-3") == pytest.approx(2.5e-3)
    assert parse_hparam("lr_steps", "8, 10") == (8, 10)
    assert parse_hparam("lr_steps", "") == ()
    assert parse_hparam("flip_test", "off") is False
    assert parse_hparam("channels_last", "yes") is True
    assert parse_hparam("amp", "bf16") == "bf16"


def test_parse_hparam_errors_name_key_and_valid_keys() -> None:
    with pytest.raises(ValueError, match="unknown hyper-parameter 'lrr'.*valid keys: epochs, batch_size, lr"):
        parse_hparam("lrr", "1")
    with pytest.raises(ValueError, match=r"--hp epochs='three': expected int"):
        parse_hparam("epochs", "three")
    with pytest.raises(ValueError, match="expected bool"):
        parse_hparam("flip_test", "maybe")


def test_make_config_applies_overrides_and_validates() -> None:
    cfg = make_config("quick", {"epochs": "3", "lr": 0.01, "lr_steps": "2"})
    assert (cfg.epochs, cfg.lr, cfg.lr_steps) == (3, 0.01, (2,))
    assert cfg.batch_size == PROFILES["quick"].batch_size
    with pytest.raises(ValueError, match="amp='fp8'"):
        make_config("quick", {"amp": "fp8"})
    with pytest.raises(ValueError, match="compile_mode='fast'.*reduce-overhead"):
        make_config("quick", {"compile": True, "compile_mode": "fast"})
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid profiles: paper, quick"):
        make_config("fast")


def test_trainer_compiles_with_the_configured_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compile_mode`` reaches ``torch.compile`` (CUDA graphs with "reduce-overhead" on a GPU)."""
    from lrpose_bench.engine.trainer import Trainer

    seen: list[dict] = []
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: seen.append(kwargs) or model)
    for mode in ("default", "reduce-overhead"):
        config = make_config("quick", {"compile": True, "compile_mode": mode})
        Trainer(torch.nn.Linear(2, 2), SimpleNamespace(), SimpleNamespace(), config, torch.device("cpu"))
    assert seen == [{"mode": "default"}, {"mode": "reduce-overhead"}]


def test_paper_profile_is_the_hrnet_recipe() -> None:
    p = PROFILES["paper"]
    assert (p.optimizer, p.lr, p.epochs, p.lr_steps, p.lr_factor, p.batch_size) == ("adam", 1e-3, 210, (170, 200), 0.1, 32)
    assert (p.flip_prob, p.rotation_factor, p.rotation_prob, p.scale_factor, p.half_body_prob) == (0.5, 45.0, 0.6, 0.35, 0.3)


def test_config_dict_round_trip() -> None:
    cfg = make_config("quick", {"lr_steps": "4,6"})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        TrainConfig.from_dict({"nope": 1})


def test_lr_schedule_steps_and_warmup() -> None:
    cfg = TrainConfig(lr=1e-3, lr_steps=(170, 200), lr_factor=0.1, warmup_steps=0)
    assert cfg.lr_at(0, 0) == 1e-3
    assert cfg.lr_at(169, 10**6) == 1e-3
    assert cfg.lr_at(170, 0) == pytest.approx(1e-4)
    assert cfg.lr_at(209, 0) == pytest.approx(1e-5)
    warm = TrainConfig(lr=1.0, lr_steps=(), warmup_steps=10, warmup_ratio=0.1)
    # linear from 0.1 * lr at step 0 to lr at step 10: step 5 -> 0.1 + 0.9 * 0.5 = 0.55
    assert warm.lr_at(0, 0) == pytest.approx(0.1)
    assert warm.lr_at(0, 5) == pytest.approx(0.55)
    assert warm.lr_at(0, 10) == 1.0


# ------------------------------------------------------------------ stages
def test_stage_schedule_splits_epochs_by_fraction() -> None:
    two = [Stage("coarse", 0.5), Stage("fine", 0.5)]
    assert [(s.name, a, b) for s, a, b in stage_schedule(two, 10)] == [("coarse", 0, 5), ("fine", 5, 10)]
    assert [(a, b) for _, a, b in stage_schedule(two, 3)] == [(0, 2), (2, 3)]  # round(1.5) = 2
    assert [(a, b) for _, a, b in stage_schedule(two, 1)] == [(0, 1), (1, 1)]  # second stage skipped
    tilted = [Stage("a", 0.9), Stage("b", 0.1)]
    assert [(a, b) for _, a, b in stage_schedule(tilted, 2)] == [(0, 1), (1, 2)]  # every stage gets an epoch
    assert [(a, b) for _, a, b in stage_schedule([Stage("main")], 4)] == [(0, 4)]


# ------------------------------------------------------------------ data order
def test_epoch_sampler_is_seeded_per_epoch_and_resumable() -> None:
    s = EpochBatchSampler(10, 3, seed=5)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(0)
    assert list(s) == e0  # same epoch, same order
    assert sorted(i for b in e0 for i in b) == list(range(10))
    assert [len(b) for b in e0] == [3, 3, 3, 1]
    s.set_epoch(1)
    assert list(s) != e0
    s.set_epoch(0, start_batch=2)
    assert list(s) == e0[2:] and len(s) == 2


def test_epoch_sampler_shards_ranks_evenly() -> None:
    shards = []
    for rank in range(3):
        s = EpochBatchSampler(10, 2, seed=1, rank=rank, world_size=3)
        s.set_epoch(4)
        shards.append([i for b in s for i in b])
    assert [len(x) for x in shards] == [4, 4, 4]  # 10 padded to 12 by wrapping
    assert set().union(*map(set, shards)) == set(range(10))


# ------------------------------------------------------------------ rng + checkpoints
def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint(tmp_path / "c.pt", {"rng": rng_state(), "x": torch.arange(3)})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt = load_checkpoint(path)  # weights_only=True inside
    set_rng_state(ckpt["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert ckpt["x"].tolist() == [0, 1, 2]


def test_load_checkpoint_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an lrpose-bench checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(tmp_path / "junk.pt")


# ------------------------------------------------------------------ env + distributed
def test_single_process_distributed_helpers_are_identities() -> None:
    info = D.env_dist_info()
    assert (info.rank, info.world_size, info.is_main, info.enabled) == (0, 1, True, False)
    t = torch.tensor([1.0, 2.0])
    assert D.all_reduce_sum(t).tolist() == [1.0, 2.0]
    assert D.gather_objects("a") == ["a"] and D.broadcast_object(3) == 3 and D.any_flag(True, torch.device("cpu"))


def test_env_facts() -> None:
    v = versions(torch.device("cpu"))
    assert v["torch"] == torch.__version__ and v["device"].startswith("cpu: ") and v["cuda"] is None
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="--device .gpu.: choose auto, cpu or cuda"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_quick_profile_scales_epochs_by_pixel_budget() -> None:
    from lrpose_bench.engine.runner import effective_config

    at128 = effective_config("quick", {}, (96, 128))
    at64 = effective_config("quick", {}, (48, 64))
    assert (at128.epochs, at128.lr_steps) == (25, (20,))
    assert (at64.epochs, at64.lr_steps) == (100, (80,))  # a quarter of the pixels: four times the epochs
    assert effective_config("quick", {"epochs": 2}, (48, 64)).epochs == 2  # explicit epochs are taken as given
    assert effective_config("paper", {}, (48, 64)).epochs == 210  # no budget in the paper recipe
    big = TrainConfig(epochs=4, lr_steps=(3,), reference_pixels=100).for_resolution((20, 20))
    assert (big.epochs, big.lr_steps) == (1, (1,))  # 4 * 100/400 = 1 epoch, steps clipped into it


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizer_is_fused_on_cpu_and_steps_as_the_loop(name: str) -> None:
    from lrpose_bench.engine.trainer import Trainer, _fusable

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))  # no bias with
    # a zero gradient (a bias before BN), whose update is sign(rounding noise) * lr for Adam
    config = make_config("quick", {"optimizer": name, "weight_decay": 1e-4})
    opt = Trainer._make_optimizer(SimpleNamespace(config=config, model=model))
    assert opt.defaults["fused"] is True
    loop_model = copy.deepcopy(model)
    accepted = inspect.signature(type(opt)).parameters
    loop = type(opt)(loop_model.parameters(), **{k: v for k, v in opt.defaults.items() if k in accepted and k != "fused"})
    assert not loop.defaults["fused"]
    for _ in range(3):
        x = torch.randn(2, 3, 8, 8)
        for m, o in ((model, opt), (loop_model, loop)):
            o.zero_grad()
            (m(x) - 1).square().mean().backward()  # every gradient well away from 0
            o.step()
    for p, q in zip(model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-5)  # 1 % of one step (lr 2e-3): the fused
        # kernel rounds differently, which shows where |grad| is near eps
    assert not _fusable([torch.zeros(2, dtype=torch.long)])
    assert not _fusable([])


@pytest.mark.parametrize("saved_fused", [False, True])
def test_resumed_optimizer_keeps_this_process_kernel_choice(saved_fused: bool) -> None:
    from lrpose_bench.engine.trainer import _keep_kernel_choice

    def make(fused: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2, **({"fused": True} if fused else {}))

    model, opt = make(saved_fused)
    (model(torch.randn(5, 4)) - 1).square().mean().backward()
    opt.step()
    _, resumed = make(not saved_fused)
    resumed.load_state_dict(opt.state_dict())
    assert bool(resumed.param_groups[0]["fused"]) == saved_fused  # torch copies the saved group's flag
    _keep_kernel_choice(resumed)
    assert bool(resumed.param_groups[0]["fused"]) == (not saved_fused)
    assert all(s["step"].dtype == torch.float32 for s in resumed.state.values())
