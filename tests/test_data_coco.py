"""CocoPoseDataset on the tiny embedded set: samples, crop <-> image maps, flip, augmentation, bad input."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpose_bench.data.augment import AugmentConfig, augment_box, sample_rng
from lrpose_bench.data.coco import CocoPoseDataset
from lrpose_bench.data.spec import DatasetSpec, ensure_embedded, resolve_dataset
from lrpose_bench.data.synth import JOINT_COLOURS
from lrpose_bench.geometry import apply_affine, box_to_center_scale, crop_matrix, invert_affine
from lrpose_bench.keypoints import FLIP_INDEX, NUM_KEYPOINTS

CROP = (48, 64)  # (w, h): the paper's 64x48
NO_AUG = AugmentConfig(flip_prob=0.0, scale_factor=0.0, rotation_prob=0.0, half_body_prob=0.0)


def _ds(root: Path, split: str = "val", **kw) -> CocoPoseDataset:
    kw.setdefault("crop_size", CROP)
    kw.setdefault("unbiased", False)
    kw.setdefault("train", split == "train")
    return CocoPoseDataset(root / "annotations" / f"person_keypoints_{split}2017.json", root / f"{split}2017", **kw)


def test_sample_shapes_and_dtypes(tiny_embedded: Path) -> None:
    ds = _ds(tiny_embedded, "train")
    assert len(ds) > 24 and ds.boxes == "gt" and ds.lowres_protocol == "direct"
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    expect = {
        "image": (torch.uint8, (2, 3, 64, 48)), "keypoints": (torch.float32, (2, 17, 2)),
        "visibility": (torch.float32, (2, 17)), "image_id": (torch.int64, (2,)), "ann_id": (torch.int64, (2,)),
        "center": (torch.float32, (2, 2)), "scale": (torch.float32, (2, 2)),
        "crop_to_image": (torch.float64, (2, 2, 3)), "area": (torch.float32, (2,)),
        "box_score": (torch.float32, (2,)), "gt_keypoints": (torch.float32, (2, 17, 3)), "ok": (torch.bool, (2,)),
    }  # fmt: skip
    assert set(batch) == set(expect)
    for key, (dtype, shape) in expect.items():
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == shape, key
    assert batch["ok"].all() and set(batch["visibility"].unique().tolist()) <= {0.0, 1.0}
    assert ds.coco.getAnnIds()  # pycocotools index available


def test_eval_crop_is_the_box_affine_and_inverts_exactly(tiny_embedded: Path) -> None:
    for unbiased in (False, True):
        ds = _ds(tiny_embedded, "val", unbiased=unbiased)
        for i in range(len(ds)):
            s = ds[i]
            box = ds.instances.box[i]
            c, sc = box_to_center_scale(box, CROP[0] / CROP[1])
            m = crop_matrix(c, sc, CROP, 0.0, unbiased)
            np.testing.assert_allclose(s["crop_to_image"].numpy(), invert_affine(m), atol=1e-9)
            gt = s["gt_keypoints"].numpy().astype(np.float64)
            back = apply_affine(s["keypoints"].numpy().astype(np.float64), s["crop_to_image"].numpy())
            lab = gt[:, 2] > 0
            np.testing.assert_allclose(back[lab], gt[lab, :2], atol=1e-3)
            w, h = CROP
            kp = s["keypoints"].numpy()
            inside = (kp[:, 0] >= -0.5) & (kp[:, 0] <= w - 0.5) & (kp[:, 1] >= -0.5) & (kp[:, 1] <= h - 0.5)
            assert np.array_equal(s["visibility"].numpy() > 0, lab & inside)


def test_train_matrix_includes_augmentation_and_flip_swaps_joints(tiny_embedded: Path) -> None:
    ds = _ds(tiny_embedded, "train", seed=5)
    ds.set_epoch(3)
    flips = rotations = 0
    for i in range(len(ds)):
        s = ds[i]
        kps = ds.instances.keypoints[i]
        c, sc = box_to_center_scale(ds.instances.box[i], CROP[0] / CROP[1])
        aug = augment_box(c, sc, kps[:, :2], kps[:, 2] > 0, ds.augment, sample_rng(5, 3, i), CROP[0] / CROP[1])
        m = crop_matrix(aug.center, aug.scale, CROP, aug.rotation, False, aug.flip)
        np.testing.assert_allclose(s["crop_to_image"].numpy(), invert_affine(m), atol=1e-9)
        order = list(FLIP_INDEX) if aug.flip else list(range(NUM_KEYPOINTS))
        back = apply_affine(s["keypoints"].numpy().astype(np.float64), s["crop_to_image"].numpy())
        gt = kps[order]
        lab = gt[:, 2] > 0
        np.testing.assert_allclose(back[lab], gt[lab, :2], atol=1e-3)
        flips += aug.flip
        rotations += aug.rotation != 0.0
    assert flips > 0 and rotations > 0


def test_flip_mirrors_image_and_swaps_pairs(tiny_embedded: Path) -> None:
    plain = _ds(tiny_embedded, "train", augment=NO_AUG)
    flipped = _ds(tiny_embedded, "train", augment=AugmentConfig(flip_prob=1.0, scale_factor=0.0, rotation_prob=0.0,
                                                              half_body_prob=0.0))
    w = CROP[0]
    for i in range(6):
        a, b = plain[i], flipped[i]
        idx = list(FLIP_INDEX)
        np.testing.assert_allclose(b["keypoints"][:, 0], (w - 1) - a["keypoints"][idx, 0], atol=1e-4)
        np.testing.assert_allclose(b["keypoints"][:, 1], a["keypoints"][idx, 1], atol=1e-4)
        assert torch.equal(b["visibility"], a["visibility"][idx])
        diff = (b["image"].float() - a["image"].flip(-1).float()).abs().mean()
        assert diff < 1.0


def _colour_hits(ds: CocoPoseDataset, n: int, flipped: bool = False) -> tuple[int, int]:
    """Visible joints whose crop pixel (at the rounded crop keypoint) shows the joint's colour."""
    import cv2

    hits = total = 0
    for i in range(min(n, len(ds))):
        s = ds[i]
        m = invert_affine(s["crop_to_image"].numpy())
        zoom = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # crop px per image px
        img = cv2.cvtColor(cv2.imread(str(ds.image_dir / ds.image_files[ds.instances.image_index[i]])), cv2.COLOR_BGR2RGB)
        gt = s["gt_keypoints"].numpy()
        order = np.array(FLIP_INDEX) if flipped else np.arange(NUM_KEYPOINTS)
        r = int(np.ceil(0.75 / zoom + 1.0))  # the crop pixel's footprint in the image, plus bilinear support
        for j in range(NUM_KEYPOINTS):
            src = order[j]
            if gt[src, 2] != 2 or s["visibility"][j] == 0:
                continue
            x, y = (np.floor(gt[src, :2] + 0.5)).astype(int)
            patch = img[max(y - r, 0): y + r + 1, max(x - r, 0): x + r + 1]
            if patch.shape[:2] != (2 * r + 1, 2 * r + 1) or not (patch == JOINT_COLOURS[src]).all():
                continue  # the joint's disc does not cover the sampled footprint
            cx, cy = np.floor(s["keypoints"][j].numpy() + 0.5).astype(int)
            total += 1
            hits += bool(np.abs(s["image"][:, cy, cx].numpy().astype(int) - JOINT_COLOURS[src]).max() <= 3)
    return hits, total


FLIP_ROT = AugmentConfig(flip_prob=1.0, rotation_prob=1.0, half_body_prob=0.0)


@pytest.mark.parametrize(
    "kw",
    [dict(unbiased=False), dict(unbiased=True), dict(lowres_protocol="antialias", crop_size=(96, 128)),
     dict(unbiased=True, split="train", augment=FLIP_ROT), dict(unbiased=False, split="train", augment=FLIP_ROT)],
)  # fmt: skip
def test_crop_pixels_line_up_with_keypoints(tiny_embedded: Path, kw: dict) -> None:
    """The joint's colour disc is where the sample's keypoint says, in the crop (biased/UDP, AA, flip+rotation)."""
    kw = dict(kw)
    split = kw.pop("split", "val")
    kw.setdefault("crop_size", (192, 256))
    ds = _ds(tiny_embedded, split, **kw)
    hits, total = _colour_hits(ds, 30, flipped=split == "train")
    assert total >= 10 and hits == total


def test_antialias_protocol_differs_but_keeps_geometry(tiny_embedded: Path) -> None:
    a, b = _ds(tiny_embedded), _ds(tiny_embedded, lowres_protocol="antialias")
    assert b.lowres_protocol == "antialias"
    sa, sb = a[0], b[0]
    assert torch.equal(sa["keypoints"], sb["keypoints"]) and not torch.equal(sa["image"], sb["image"])


def test_augmentation_is_deterministic_per_seed_epoch_index(tiny_embedded: Path) -> None:
    ds = _ds(tiny_embedded, "train", seed=1)
    first = [ds[i]["crop_to_image"] for i in range(8)]
    assert all(torch.equal(x, ds[i]["crop_to_image"]) for i, x in enumerate(first))
    ds.set_epoch(1)
    assert any(not torch.equal(x, ds[i]["crop_to_image"]) for i, x in enumerate(first))


def test_half_body_crops_are_smaller(tiny_embedded: Path) -> None:
    full = _ds(tiny_embedded, "train", augment=NO_AUG)
    half = _ds(tiny_embedded, "train", augment=AugmentConfig(flip_prob=0.0, scale_factor=0.0, rotation_prob=0.0,
                                                           half_body_prob=1.0, half_body_min_joints=0))
    smaller = sum(float(half[i]["scale"][1]) < float(full[i]["scale"][1]) for i in range(len(full)))
    assert smaller > len(full) // 2


def test_dataloader_with_two_workers(tiny_embedded: Path) -> None:
    ds = _ds(tiny_embedded, "train", seed=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(b["image"].shape[0] for b in batches) == len(ds)
    assert torch.equal(batches[0]["keypoints"], torch.stack([ds[i]["keypoints"] for i in range(8)]))


def test_cached_images_give_identical_samples_and_are_shared(tiny_embedded: Path) -> None:
    from lrpose_bench.data import coco

    plain = _ds(tiny_embedded, "train", seed=3)
    cached = _ds(tiny_embedded, "train", seed=3, cache_images=True)
    for i in (0, 5, len(plain) - 1):
        a, b = plain[i], cached[i]
        assert all(torch.equal(a[k], b[k]) for k in a)
    again = _ds(tiny_embedded, "train", cache_images=True)  # a second dataset of the split decodes nothing new
    assert all(again._cache[i] is cached._cache[i] for i in cached._cache)
    loader = torch.utils.data.DataLoader(cached, batch_size=8, num_workers=1, shuffle=False)
    assert torch.equal(next(iter(loader))["image"], torch.stack([plain[i]["image"] for i in range(8)]))
    assert len(coco._DECODED) >= len(cached._cache)


def test_image_cache_refuses_more_than_its_limit(tiny_embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrpose_bench.data import coco

    monkeypatch.setattr(coco, "MAX_IMAGE_CACHE_BYTES", 1000)
    with pytest.raises(ValueError, match=r"cache_images: the \d+ images of person_keypoints_val2017.json need .*cache_images=false"):
        _ds(tiny_embedded, "val", cache_images=True)


# ---- bad input --------------------------------------------------------------------------------------
def _write(tmp: Path, doc) -> Path:
    p = tmp / "ann.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    (tmp / "imgs").mkdir(exist_ok=True)
    return p


def _doc(tiny: Path) -> dict:
    return json.loads((tiny / "annotations" / "person_keypoints_val2017.json").read_text())


def test_bad_annotation_files_name_file_field_value(tiny_embedded: Path, tmp_path: Path) -> None:
    imgs = tiny_embedded / "val2017"
    with pytest.raises(ValueError, match=r"ann.json is not valid JSON"):
        CocoPoseDataset(_write(tmp_path, "{oops"), imgs, CROP, False, False)
    doc = _doc(tiny_embedded)
    del doc["annotations"]
    with pytest.raises(ValueError, match=r"ann.json: missing field 'annotations'"):
        CocoPoseDataset(_write(tmp_path, doc), imgs, CROP, False, False)
    doc = _doc(tiny_embedded)
    aid = doc["annotations"][2]["id"]
    doc["annotations"][2]["keypoints"] = doc["annotations"][2]["keypoints"][:50]
    with pytest.raises(ValueError, match=rf"annotation id {aid}: field 'keypoints' = 50 values is not 51 numbers"):
        CocoPoseDataset(_write(tmp_path, doc), imgs, CROP, False, False)
    doc = _doc(tiny_embedded)
    doc["annotations"][0]["bbox"] = [1, 2, 3]
    with pytest.raises(ValueError, match=r"field 'bbox' = \[1, 2, 3\] is not 4 numbers"):
        CocoPoseDataset(_write(tmp_path, doc), imgs, CROP, False, False)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        CocoPoseDataset(tmp_path / "nope.json", imgs, CROP, False, False)


def test_missing_image_folder_and_files(tiny_embedded: Path, tmp_path: Path) -> None:
    ann = tiny_embedded / "annotations" / "person_keypoints_val2017.json"
    with pytest.raises(FileNotFoundError, match="image folder not found: .*nowhere"):
        CocoPoseDataset(ann, tmp_path / "nowhere", CROP, False, False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"none of the \d+ images .* is in .*empty"):
        CocoPoseDataset(ann, tmp_path / "empty", CROP, False, False)


def test_corrupt_image_gives_ok_false_and_one_warning(tiny_embedded: Path, tmp_path: Path, caplog) -> None:
    import shutil

    imgs = tmp_path / "val2017"
    shutil.copytree(tiny_embedded / "val2017", imgs)
    ds = CocoPoseDataset(tiny_embedded / "annotations" / "person_keypoints_val2017.json", imgs, CROP, False, False)
    name = ds.image_files[ds.instances.image_index[0]]
    (imgs / name).write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="lrpose_bench.data.coco"):
        s, _ = ds[0], ds[0]  # read twice: the warning comes once
    assert not bool(s["ok"]) and int(s["image"].sum()) == 0 and float(s["visibility"].sum()) == 0
    assert sum(name in r.getMessage() for r in caplog.records) == 1
    assert bool(ds[len(ds) - 1]["ok"]) or ds.instances.image_index[-1] == ds.instances.image_index[0]


def test_zero_area_boxes_and_outside_keypoints_are_counted(tiny_embedded: Path, tmp_path: Path) -> None:
    doc = _doc(tiny_embedded)
    n = len(_ds(tiny_embedded))
    doc["annotations"][0]["bbox"] = [10.0, 10.0, 0.0, 30.0]
    kp = doc["annotations"][1]["keypoints"]
    kp[0:3] = [5000.0, 12.0, 2]
    ann = _write(tmp_path, doc)
    ds = CocoPoseDataset(ann, tiny_embedded / "val2017", CROP, False, True)
    assert len(ds) == n - 1 and ds.counts["zero_area_box"] == 1 and ds.counts["keypoints_outside_image"] == 1
    row = int(np.flatnonzero(ds.instances.ann_id == doc["annotations"][1]["id"])[0])
    assert ds.instances.keypoints[row, 0, 2] == 0 and float(ds[row]["visibility"][0]) == 0.0


def test_bad_detection_files(tiny_embedded: Path, tmp_path: Path) -> None:
    ann, imgs = tiny_embedded / "annotations" / "person_keypoints_val2017.json", tiny_embedded / "val2017"
    image_id = _doc(tiny_embedded)["images"][0]["id"]
    cases = [
        ({"a": 1}, r"dets.json: top level is a dict, expected a list"),
        ([{"image_id": image_id, "bbox": [1, 2, 3, 4]}], r"entry \[0\] has no field 'score'"),
        ([{"image_id": image_id, "bbox": [1, 2, 3], "score": 0.5}], r"entry \[0\]: field 'bbox' = \[1, 2, 3\]"),
        ([{"image_id": -5, "bbox": [1, 2, 3, 4], "score": 0.5}], r"none of its 1 detections .* image_id = -5"),
    ]
    for dets, msg in cases:
        (tmp_path / "dets.json").write_text(json.dumps(dets))
        with pytest.raises(ValueError, match=msg):
            CocoPoseDataset(ann, imgs, CROP, False, False, det_file=tmp_path / "dets.json")
    dets = [{"image_id": image_id, "bbox": [10, 20, 30, 60], "score": s, "category_id": 1} for s in (0.9, 0.2)]
    dets.append({"image_id": image_id, "bbox": [10, 20, 0, 60], "score": 0.95, "category_id": 1})
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    ds = CocoPoseDataset(ann, imgs, CROP, False, False, det_file=tmp_path / "dets.json", det_score_threshold=0.5)
    assert len(ds) == 1 and ds.boxes == "det:dets.json"
    assert ds.counts["below_threshold"] == 1 and ds.counts["zero_area"] == 1
    s = ds[0]
    assert int(s["ann_id"]) == -1 and float(s["box_score"]) == pytest.approx(0.9) and float(s["area"]) == 1800.0
    assert float(s["gt_keypoints"].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="lowres_protocol = 'fancy'"):
        CocoPoseDataset(ann, imgs, CROP, False, False, lowres_protocol="fancy")


# ---- where datasets live ----------------------------------------------------------------------------
def test_resolve_dataset_checks_the_layout(tiny_embedded: Path, tmp_path: Path, coco_sample_root: Path) -> None:
    spec = resolve_dataset(tiny_embedded, need_train=True)
    assert isinstance(spec, DatasetSpec) and spec.name == "tiny" and spec.train_images == tiny_embedded / "train2017"
    assert len(spec.content_hash()) == 16 and int(spec.content_hash(), 16) >= 0
    with pytest.raises(FileNotFoundError, match="dataset root not found: .*missing"):
        resolve_dataset(tmp_path / "missing")
    (tmp_path / "half" / "annotations").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"is missing .*person_keypoints_val2017.json, .*val2017"):
        resolve_dataset(tmp_path / "half")
    sample = resolve_dataset(coco_sample_root)
    assert sample.train_ann is None and not sample.has_train
    with pytest.raises(FileNotFoundError, match="has no train split"):
        resolve_dataset(coco_sample_root, need_train=True)
    assert sample.content_hash() != spec.content_hash()


def test_embedded_cache_is_built_once_even_when_raced(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "embedded-test"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_embedded(target, 3, 2, 0))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [target, target]
    assert sorted(p.name for p in target.parent.iterdir()) == ["embedded-test"]  # loser's copy discarded
    assert len(list((target / "train2017").iterdir())) == 3
    stamp = (target / "annotations" / "person_keypoints_val2017.json").stat().st_mtime_ns
    ensure_embedded(target, 3, 2, 0)
    assert (target / "annotations" / "person_keypoints_val2017.json").stat().st_mtime_ns == stamp
