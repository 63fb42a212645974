"""``--hp tensorboard=true``: the epoch's log.csv scalars and prediction images as TensorBoard events; and the
DataLoader worker cap (the paper profile's 4 workers on a 2-core machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lrpose_bench.engine import env
from lrpose_bench.engine.config import make_config
from lrpose_bench.engine.runner import build_model
from lrpose_bench.engine.tensorboard import TensorBoardLogger, draw_pose
from lrpose_bench.method import build_method


def _sample(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randint(0, 255, (3, 64, 48), generator=g, dtype=torch.uint8),
        "keypoints": torch.rand(17, 2, generator=g) * torch.tensor([47.0, 63.0]),
        "visibility": torch.ones(17),
    }


def test_tensorboard_events(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    method = build_method("heatmap")
    geometry = method.geometry((48, 64))
    model = build_model(method, geometry, "tiny", None)
    logger = TensorBoardLogger(tmp_path, method, geometry, [_sample(i) for i in range(6)], torch.device("cpu"))
    for epoch in (1, 2):
        logger.log_epoch({"epoch": epoch, "stage": "main", "lr": 0.002, "loss_heatmap": 0.1 / epoch, "loss": 0.1 / epoch},
                         model, epoch)  # fmt: skip
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/lr", "train/loss_heatmap", "train/loss"}
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([0.1, 0.05])
    images = events.Images("predictions")
    assert [i.step for i in images] == [1, 2] and images[0].height == 256  # 4 crops of 64 px upsampled x4
    assert make_config("quick", {"tensorboard": "true"}).tensorboard is True


def test_draw_pose_marks_joints_in_upsampled_px() -> None:
    crop = np.zeros((64, 48, 3), np.uint8)
    gt = np.full((17, 2), 10.0)
    image = draw_pose(crop, gt, np.ones(17, bool), gt + 20.0)
    assert image.shape == (256, 192, 3)
    assert image[122, 122].tolist() == [230, 159, 0]  # the prediction at (30 + 0.5) * 4 - 0.5, orange
    assert (image == 255).all(-1).any() and image[:20].max() == 0  # the ground truth in white, nothing elsewhere


def test_workers_capped_to_usable_cpus(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(env, "usable_cpus", lambda: 2)
    monkeypatch.setattr(env, "_CAPPED_WORKERS", set())
    assert env.usable_workers(4) == 2 and env.usable_workers(4) == 2 and env.usable_workers(1) == 1
    assert env.usable_workers(0) == 0
    notes = capsys.readouterr().err.strip().splitlines()
    assert notes == ["note: 4 DataLoader workers requested, 2 CPUs usable: using 2 (set --workers or --hp workers=N to choose)"]
