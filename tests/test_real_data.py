"""Real COCO samples (committed in tests/data) through CocoPoseDataset: GT boxes, detections, a contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from lrpose_bench.data.coco import CocoPoseDataset
from lrpose_bench.data.spec import resolve_dataset
from lrpose_bench.geometry import apply_affine
from lrpose_bench.keypoints import SKELETON


def _usable(ann_file: Path) -> int:
    doc = json.loads(ann_file.read_text())
    return sum(1 for a in doc["annotations"] if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0)


def test_minicoco_train_and_val_load(minicoco_root: Path) -> None:
    spec = resolve_dataset(minicoco_root, need_train=True)
    train = CocoPoseDataset(spec.train_ann, spec.train_images, (48, 64), False, True, seed=3)
    val = CocoPoseDataset(spec.val_ann, spec.val_images, (96, 128), True, False)
    assert len(train) == _usable(spec.train_ann) == 14 and len(val) == _usable(spec.val_ann) == 7
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=8, num_workers=2)))
    assert batch["image"].shape == (8, 3, 64, 48) and batch["ok"].all()
    for i in range(len(val)):
        s = val[i]
        gt = s["gt_keypoints"].numpy().astype(np.float64)
        back = apply_affine(s["keypoints"].numpy().astype(np.float64), s["crop_to_image"].numpy())
        lab = gt[:, 2] > 0
        np.testing.assert_allclose(back[lab], gt[lab, :2], atol=1e-3)
        assert s["visibility"].sum() > 0 and s["image"].float().std() > 5  # a real, non-empty crop


def test_coco_sample_gt_and_detected_boxes(coco_sample_root: Path) -> None:
    spec = resolve_dataset(coco_sample_root)
    gt = CocoPoseDataset(spec.val_ann, spec.val_images, (192, 256), True, False)
    assert len(gt) == _usable(spec.val_ann) == 12 and gt.boxes == "gt"
    det_file = coco_sample_root / "person_detection_results.json"
    dets = json.loads(det_file.read_text())
    for thr in (0.0, 0.5):
        ds = CocoPoseDataset(spec.val_ann, spec.val_images, (192, 256), True, False, det_file=det_file,
                             det_score_threshold=thr)
        assert len(ds) == sum(1 for d in dets if d["score"] >= thr)
        assert ds.boxes == "det:person_detection_results.json"
    s = ds[0]
    assert int(s["ann_id"]) == -1 and 0.5 <= float(s["box_score"]) <= 1.0 and bool(s["ok"])


def _draw(sample: dict, zoom: int = 2) -> np.ndarray:
    img = cv2.resize(sample["image"].permute(1, 2, 0).numpy(), None, fx=zoom, fy=zoom,
                     interpolation=cv2.INTER_NEAREST)
    img = np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    pts = (sample["keypoints"].numpy() + 0.5) * zoom - 0.5  # crop px -> zoomed px (area-aligned)
    vis = sample["visibility"].numpy() > 0
    for a, b in SKELETON:
        if vis[a] and vis[b]:
            cv2.line(img, tuple(int(round(v)) for v in pts[a]), tuple(int(round(v)) for v in pts[b]), (0, 255, 255), 1)
    for j, p in enumerate(pts):
        if vis[j]:
            colour = (255, 128, 0) if j in (1, 3, 5, 7, 9, 11, 13, 15) else (0, 0, 255) if j else (0, 255, 0)
            cv2.circle(img, tuple(int(round(v)) for v in p), 3, colour, -1)
    return img


def test_contact_sheet_of_real_crops(minicoco_root: Path, coco_sample_root: Path, tmp_path: Path) -> None:
    """Crops with their keypoints drawn (left blue, right red), written into the test's tmp folder."""
    spec = resolve_dataset(minicoco_root)
    ds = CocoPoseDataset(spec.train_ann, spec.train_images, (96, 128), False, True, seed=0)
    sample_ds = CocoPoseDataset(coco_sample_root / "annotations/person_keypoints_val2017.json",
                                coco_sample_root / "val2017", (96, 128), True, False)
    tiles = [_draw(ds[i]) for i in range(12)] + [_draw(sample_ds[i]) for i in range(4)]
    rows = [np.concatenate(tiles[r * 8:(r + 1) * 8], axis=1) for r in range(2)]
    sheet = np.concatenate(rows, axis=0)
    assert sheet.shape == (2 * 256, 8 * 192, 3)
    out = tmp_path / "contact_sheet.png"
    assert cv2.imwrite(str(out), sheet) and out.stat().st_size > 10_000
