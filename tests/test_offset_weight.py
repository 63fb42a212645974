"""The MGM diagnostic: each stage's offset-loss weight per joint (``lrpose_bench.report.offset_weight``),
on hand-computed cases and from a run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_report import make_record

from lrpose_bench.method import build_method
from lrpose_bench.mixture import Mixture2D
from lrpose_bench.records import write_record
from lrpose_bench.report.offset_weight import joint_grid_centres, offset_weight_mass, stage_weight_mass
from lrpose_bench.report.registry import ReportError


def isotropic(var: float) -> Mixture2D:
    """One zero-mean Gaussian with covariance ``var * I`` (heatmap px^2); peak 1 / (2 pi var)."""
    return Mixture2D(np.ones(1), np.zeros((1, 2)), var * np.eye(2)[None], 1.0 / (2 * math.pi * var), 0)


def pixel_centred_joints(method, res=(96, 128)):
    """Joints on pixel centres near the middle of the heatmap (x, y heatmap px), and the geometry."""
    geometry = method.geometry(res)
    w, h = geometry.heatmap_size
    centres = torch.tensor([[[w // 2, h // 2]], [[w // 2 - 1, h // 2 + 1]]], dtype=torch.float64)
    return geometry, centres


def test_stage_masses_by_hand() -> None:
    """At 128x96 (heatmap 24x32, sigma 1, disc radius 4), joints on pixel centres:
    stage 1 = sum over the disc of exp(-d^2 / 2); a flat MGM = the 7x7 patch inside the disc (49 - 4
    corners at sqrt(18) > 4) = 45 px; a needle-thin MGM = the joint's own pixel."""
    method = build_method("cal_mgm")
    geometry, centres = pixel_centred_joints(method)
    disc = [(i, j) for i in range(-4, 5) for j in range(-4, 5) if i * i + j * j <= 16]
    g_mass = sum(math.exp(-(i * i + j * j) / 2.0) for i, j in disc)

    flat = stage_weight_mass(method, isotropic(1e6), geometry, centres)
    assert flat.stage1 == pytest.approx(g_mass, rel=1e-6)
    assert flat.stage1_nearest == pytest.approx(1.0 / g_mass, rel=1e-6)
    assert flat.stage2 == pytest.approx(45.0, rel=1e-4)
    assert flat.stage2_nearest == pytest.approx(1.0 / 45.0, rel=1e-4)
    assert flat.ratio == pytest.approx(45.0 / g_mass, rel=1e-4)

    needle = stage_weight_mass(method, isotropic(1e-4), geometry, centres)
    assert needle.stage2 == pytest.approx(1.0, abs=1e-6) and needle.stage2_nearest == pytest.approx(1.0)
    assert needle.n_joints == 2

    # the MGM at one std of a unit Gaussian: 1 + 4 e^-1/2 + 4 e^-1 + 4 e^-2 + ... over the 7x7 patch in the disc
    unit = stage_weight_mass(method, isotropic(1.0), geometry, centres)
    patch = [(i, j) for i, j in disc if abs(i) <= 3 and abs(j) <= 3]
    assert unit.stage2 == pytest.approx(sum(math.exp(-(i * i + j * j) / 2.0) for i, j in patch), rel=1e-6)


def test_joint_grid_centres_cover_every_phase() -> None:
    c = joint_grid_centres((24, 32), n=4096, seed=0)
    assert c.shape == (4096, 1, 2) and c.dtype == torch.float64
    frac = c - torch.floor(c)
    assert frac.min() < 0.01 and frac.max() > 0.99  # sub-pixel positions all over a pixel
    assert (c[..., 0] - 11.5).abs().max() <= 1.0 and (c[..., 1] - 15.5).abs().max() <= 1.0
    assert torch.equal(c, joint_grid_centres((24, 32), n=4096, seed=0))


def _mgm_run(folder: Path, mgm: dict | None, method: str = "cal_mgm", resolution: str = "128x96",
             options: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    write_record(folder, make_record(folder.name, method=method, resolution=resolution, options=options or {}))
    if mgm is not None:
        (folder / "method.json").write_text(json.dumps({"mgm": mgm}))
    return folder


def test_offset_weight_mass_from_a_run(tmp_path: Path) -> None:
    """A narrow mixture (the sub-pixel spread of a correct argmax) shrinks a joint's weight; a wide one
    (gross errors included) spreads it over the patch. ``peak_density`` is always recomputed from the
    mixture (a stored value is not read)."""
    narrow = {"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[0.1, 0.0], [0.0, 0.1]]]}
    wide = {"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[6.0, 0.0], [0.0, 4.0]]]}
    a = offset_weight_mass(_mgm_run(tmp_path / "narrow", narrow))
    b = offset_weight_mass(_mgm_run(tmp_path / "wide", wide) / "record.json")
    assert a is not None and b is not None
    assert a.stage1 == pytest.approx(b.stage1) == pytest.approx(2 * math.pi, rel=0.01)  # sigma 1: ~2 pi sigma^2
    assert a.ratio < 0.25 < 2.0 < b.ratio
    assert a.stage2_nearest > 0.5 > a.stage1_nearest
    assert "stage 1 6.2" in a.summary() and "x;" in a.summary()
    # nothing to say: no mixture, a method without staged offset weights, no record
    assert offset_weight_mass(_mgm_run(tmp_path / "unfitted", None)) is None
    assert offset_weight_mass(_mgm_run(tmp_path / "heatmap", narrow, method="heatmap")) is None
    no_record = tmp_path / "no_record"
    no_record.mkdir()
    assert offset_weight_mass(no_record) is None
    with pytest.raises(ReportError, match=r"run not found: .*nowhere"):
        offset_weight_mass(tmp_path / "nowhere")
    bad = _mgm_run(tmp_path / "bad", {"weights": [1.0], "means": [[0.0]], "covariances": [[[1.0]]]})
    with pytest.raises(ReportError, match=r"method.json: field 'mgm' has weights \(1,\), means \(1, 1\)"):
        offset_weight_mass(bad)


def test_offset_weight_mass_says_which_fit_and_whether_it_scales_the_loss(tmp_path: Path) -> None:
    """A per-batch fit is named as the run's last one; with offset_reduction=mask the masses do not scale
    the offset term (the loss divides by the weight's sum), and the summary says so."""
    last_batch = {"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [[[6.0, 0.0], [0.0, 4.0]]],
                  "scope": "batch", "n_samples": 74, "n_fits": 456}
    a = offset_weight_mass(_mgm_run(tmp_path / "batch", last_batch))
    assert a is not None and not a.normalised
    assert a.fit == "the last of 456 per-batch fits, 74 errors" and "[mixture: the last of 456" in a.summary()
    b = offset_weight_mass(_mgm_run(tmp_path / "mask", {**last_batch, "scope": "epoch", "n_samples": 9000},
                                    options={"offset_reduction": "mask"}))
    assert b is not None and b.normalised and b.fit == "scope epoch, 9000 errors"
    assert b.ratio == pytest.approx(a.ratio) and "the offset term keeps its scale" in b.summary()


@pytest.mark.parametrize("cov", [[[0.0, 0.0], [0.0, 0.0]], [[-1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [0.0, 1.0]]])
def test_offset_weight_mass_refuses_covariances_that_are_not_positive_definite(tmp_path: Path, cov: list) -> None:
    run = _mgm_run(tmp_path / "run", {"weights": [1.0], "means": [[0.0, 0.0]], "covariances": [cov]})
    with pytest.raises(ReportError, match=r"method.json: field 'mgm.covariances' must hold finite, symmetric, positive definite"):
        offset_weight_mass(run)
