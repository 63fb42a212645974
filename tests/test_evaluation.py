"""Evaluation module: pycocotools parity, OKS, rescoring, OKS-NMS, per-joint errors."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpose_bench.evaluation import (
    coco_keypoint_stats,
    evaluate_results_file,
    make_coco_results,
    oks,
    oks_nms,
    per_joint_errors,
    rescore,
)
from lrpose_bench.records import COCO_STAT_NAMES


def _perturbed_results(ann_file: Path, seed: int = 0) -> list[dict]:
    """One result per keypoint-labelled person: GT keypoints + noise scaled by the person size."""
    data = json.loads(ann_file.read_text())
    rng = np.random.default_rng(seed)
    out = []
    for a in data["annotations"]:
        if a.get("num_keypoints", 0) == 0 or a.get("iscrowd", 0):
            continue
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        noise = rng.normal(0.0, 0.05 * math.sqrt(max(a["area"], 1.0)), size=(kp.shape[0], 2))
        kp[:, :2] += noise
        kp[:, 2] = rng.uniform(0.1, 1.0, size=kp.shape[0])
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": float(rng.uniform(0.2, 1.0))})
    return out


def _pycocotools_direct(ann_file: Path, results: list[dict]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


@pytest.mark.parametrize("which", ["coco_sample", "minicoco"])
def test_stats_equal_pycocotools(which: str, coco_sample_root: Path, minicoco_root: Path) -> None:
    root = coco_sample_root if which == "coco_sample" else minicoco_root
    ann = root / "annotations" / "person_keypoints_val2017.json"
    results = _perturbed_results(ann)
    expected = _pycocotools_direct(ann, [dict(r) for r in results])
    stats = coco_keypoint_stats(ann, results)
    assert list(stats) == list(COCO_STAT_NAMES)
    assert np.array_equal(np.array([stats[n] for n in COCO_STAT_NAMES]), expected)
    assert 0.0 < stats["AP"] < 1.0  # the perturbation makes it imperfect but non-trivial


def test_perfect_results_score_one(coco_sample_root: Path, tmp_path: Path) -> None:
    ann = coco_sample_root / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(ann.read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in data["annotations"] if a.get("num_keypoints", 0) > 0]
    assert coco_keypoint_stats(ann, results)["AP"] == pytest.approx(1.0)
    pred = tmp_path / "predictions.json"
    pred.write_text(json.dumps(results))
    assert evaluate_results_file(pred, ann)["AP"] == pytest.approx(1.0)


def test_empty_results_give_zeros(coco_sample_root: Path) -> None:
    ann = coco_sample_root / "annotations" / "person_keypoints_val2017.json"
    assert coco_keypoint_stats(ann, []) == {n: 0.0 for n in COCO_STAT_NAMES}


def test_bad_inputs_have_clear_errors(coco_sample_root: Path, tmp_path: Path) -> None:
    ann = coco_sample_root / "annotations" / "person_keypoints_val2017.json"
    with pytest.raises(ValueError, match="image_id 123456789"):
        coco_keypoint_stats(ann, [{"image_id": 123456789, "category_id": 1, "keypoints": [0, 0, 1] * 17, "score": 1}])
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps([{"image_id": 785, "keypoints": [0, 0, 1] * 17, "score": 1}]))
    with pytest.raises(ValueError, match=r"p\.json: entry 0 lacks field 'category_id'"):
        evaluate_results_file(bad, ann)
    with pytest.raises(FileNotFoundError, match="predictions file not found"):
        evaluate_results_file(tmp_path / "missing.json", ann)


def test_oks_hand_computed() -> None:
    sigmas = np.array([0.1, 0.2, 0.3])
    pred = torch.tensor([[[3.0, 4.0], [10.0, 10.0], [50.0, 50.0]]])
    gt = torch.tensor([[[0.0, 0.0, 2.0], [10.0, 10.0, 1.0], [0.0, 0.0, 0.0]]])  # third joint unlabelled
    area = torch.tensor([100.0])
    # joint 0: d^2 = 25, 2 * area * (2 sigma)^2 = 2 * 100 * 0.04 = 8 -> exp(-25/8); joint 1: exp(0) = 1
    expected = (math.exp(-25.0 / 8.0) + 1.0) / 2.0
    m = oks(pred, gt, area, sigmas)
    assert m.shape == (1, 1)
    assert m.item() == pytest.approx(expected, rel=1e-12)
    assert oks(pred, gt, area, sigmas, pairwise=False).item() == pytest.approx(expected, rel=1e-12)
    # no labelled joint -> 0
    assert oks(pred, torch.zeros(1, 3, 3), area, sigmas).item() == 0.0


def test_oks_matches_cocoeval(coco_sample_root: Path) -> None:
    """Our batched OKS matrix equals pycocotools' computeOks for an image with several people."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann = coco_sample_root / "annotations" / "person_keypoints_val2017.json"
    results = _perturbed_results(ann, seed=3)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        ev = COCOeval(gt, gt.loadRes([dict(r) for r in results]), iouType="keypoints")
        ev.evaluate()
    counts = {}
    for r in results:
        counts[r["image_id"]] = counts.get(r["image_id"], 0) + 1
    img = max(counts, key=counts.get)
    assert counts[img] >= 2
    dts = sorted([r for r in results if r["image_id"] == img], key=lambda r: -r["score"])
    gts = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=[img], iscrowd=None)) if a["num_keypoints"] > 0]
    pred = torch.from_numpy(np.array([np.reshape(d["keypoints"], (-1, 3))[:, :2] for d in dts], dtype=np.float64))
    g = torch.from_numpy(np.array([np.reshape(a["keypoints"], (-1, 3)) for a in gts], dtype=np.float64))
    ours = oks(pred, g, np.array([a["area"] for a in gts], dtype=np.float64))
    ref = np.asarray(ev.ious[(img, 1)])
    all_gts = gt.loadAnns(gt.getAnnIds(imgIds=[img], catIds=[1]))
    cols = [i for i, a in enumerate(all_gts) if a["num_keypoints"] > 0]
    assert np.allclose(ours.numpy(), ref[:, cols], rtol=1e-10, atol=0)


def test_rescore_hand_case() -> None:
    ks = torch.tensor([[0.1, 0.5, 0.9], [0.1, 0.2, 0.15]])
    out = rescore(torch.tensor([0.8, 0.9]), ks, threshold=0.2)
    assert out[0].item() == pytest.approx(0.8 * 0.7)
    assert out[1].item() == 0.0  # no keypoint strictly above the threshold


def test_oks_nms_greedy_and_per_image() -> None:
    sigmas = np.array([0.5])  # (2 sigma)^2 = 1; area 1 -> OKS = exp(-d^2 / 2)
    coords = torch.tensor([[[0.0, 0.0]], [[0.4, 0.0]], [[0.8, 0.0]], [[0.4, 0.0]], [[5.0, 5.0]]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.1])
    image_ids = torch.tensor([1, 1, 1, 2, 1])
    areas = torch.ones(5)
    # image 1: A(0) keeps; B(0.4) has OKS exp(-0.08)=0.923 > 0.9 with A -> dropped; C(0.8): OKS with A is
    # exp(-0.32)=0.73, and B (which would suppress it) is gone -> kept; E far -> kept. Image 2 alone: kept.
    keep = oks_nms(image_ids, coords, scores, areas, threshold=0.9, sigmas=sigmas)
    assert keep.tolist() == [True, False, True, True, True]
    # tiny chunks give the same answer
    keep2 = oks_nms(image_ids, coords, scores, areas, threshold=0.9, sigmas=sigmas, max_elements=1)
    assert keep2.tolist() == keep.tolist()


def test_make_coco_results_rescoring_and_nms() -> None:
    k = 17
    base = torch.rand(k, 2, generator=torch.Generator().manual_seed(0)) * 100
    coords = torch.stack([base, base + 0.5, base + 60.0])  # 2 near-duplicates + 1 distinct
    kps = torch.full((3, k), 0.5)
    kps[1] = 0.4
    kps[2, :] = 0.1
    kps[2, 0] = 0.9
    res = make_coco_results([7, 7, 7], coords, kps, torch.tensor([1.0, 1.0, 0.5]), torch.full((3,), 5000.0))
    assert [r["image_id"] for r in res] == [7, 7]
    assert res[0]["score"] == pytest.approx(0.5)
    assert res[1]["score"] == pytest.approx(0.5 * 0.9)  # only joint 0 is above 0.2
    assert len(res[0]["keypoints"]) == 3 * k
    assert res[0]["keypoints"][:3] == pytest.approx([base[0, 0].item(), base[0, 1].item(), 0.5])
    assert res[0]["category_id"] == 1
    no_nms = make_coco_results([7, 7, 7], coords, kps, torch.ones(3), torch.full((3,), 5000.0), oks_nms_threshold=None)
    assert len(no_nms) == 3
    assert make_coco_results([], torch.zeros(0, k, 2), torch.zeros(0, k), [], []) == []


def test_per_joint_errors() -> None:
    pred = torch.tensor([[[3.0, 4.0], [0.0, 0.0]], [[1.0, 0.0], [7.0, 7.0]]])
    gt = torch.tensor([[[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [7.0, 8.0, 2.0]]])
    per_joint, overall = per_joint_errors(pred, gt)
    assert per_joint.tolist() == pytest.approx([3.0, 1.0])  # joint 0: (5 + 1) / 2; joint 1: 1
    assert overall == pytest.approx((5 + 1 + 1) / 3)
    per_joint, overall = per_joint_errors(pred[:, :1], torch.zeros(2, 1, 3))
    assert np.isnan(per_joint[0]) and np.isnan(overall)
