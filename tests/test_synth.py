"""The embedded synthetic dataset: determinism, COCO validity, exact keypoints, visibility, silhouettes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lrpose_bench.data import synth
from lrpose_bench.data.render import Canvas
from lrpose_bench.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

SEED = 7  # tiny_embedded's seed


def _load(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"person_keypoints_{split}2017.json").read_text())


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_generation_is_byte_deterministic(tmp_path: Path) -> None:
    a = synth.generate_dataset(tmp_path / "a", num_train=3, num_val=2, seed=11)
    b = synth.generate_dataset(tmp_path / "b", num_train=3, num_val=2, seed=11)
    c = synth.generate_dataset(tmp_path / "c", num_train=3, num_val=2, seed=12)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files_a) == 3 + 2 + 2
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "annotations/person_keypoints_train2017.json").read_bytes() != (
        c / "annotations/person_keypoints_train2017.json"
    ).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_generate_refuses_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        synth.generate_dataset(out, 1, 1, 0)
    synth.generate_dataset(out, 1, 1, 0, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "val2017").is_dir()


def test_pycocotools_loads_it(tiny_embedded: Path) -> None:
    from pycocotools.coco import COCO

    for split, n in (("train", 24), ("val", 12)):
        coco = COCO(str(tiny_embedded / "annotations" / f"person_keypoints_{split}2017.json"))
        assert len(coco.getImgIds()) == n
        assert coco.loadCats(1)[0]["keypoints"] == list(KEYPOINT_NAMES)
        anns = coco.loadAnns(coco.getAnnIds())
        assert n <= len(anns) <= 3 * n
        for ann in anns:
            assert len(ann["keypoints"]) == 51 and ann["iscrowd"] == 0
            assert ann["num_keypoints"] == sum(1 for v in ann["keypoints"][2::3] if v > 0)
            # the RLE silhouette is the area
            assert int(coco.annToMask(ann).sum()) == ann["area"]
        for img in coco.loadImgs(coco.getImgIds()):
            assert 256 <= img["width"] <= 384 and 256 <= img["height"] <= 384
            assert (tiny_embedded / f"{split}2017" / img["file_name"]).is_file()


def test_written_annotations_are_the_rendered_scenes(tiny_embedded: Path) -> None:
    doc = _load(tiny_embedded, "val")
    for i, img in enumerate(doc["images"]):
        scene = synth.scene_for(SEED, "val", i)
        assert np.array_equal(_rgb(tiny_embedded / "val2017" / img["file_name"]), scene.image)
        anns = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
        written = np.array([a["keypoints"] for a in anns]).reshape(-1, NUM_KEYPOINTS, 3)
        kept = [p for p in range(len(scene.figures)) if (scene.labels // 64 == p + 1).any()]
        assert np.array_equal(written, scene.keypoints[kept])


def test_pixel_colour_at_visible_keypoints_is_the_joint_colour(tiny_embedded: Path) -> None:
    checked = 0
    for split in ("train", "val"):
        doc = _load(tiny_embedded, split)
        files = {im["id"]: im["file_name"] for im in doc["images"]}
        cache: dict[int, np.ndarray] = {}
        for ann in doc["annotations"]:
            img = cache.setdefault(ann["image_id"], _rgb(tiny_embedded / f"{split}2017" / files[ann["image_id"]]))
            kp = np.array(ann["keypoints"], np.float64).reshape(-1, 3)
            for j in np.flatnonzero(kp[:, 2] == 2):
                x, y = int(np.floor(kp[j, 0] + 0.5)), int(np.floor(kp[j, 1] + 0.5))
                assert tuple(img[y, x]) == tuple(synth.JOINT_COLOURS[j]), (split, ann["id"], KEYPOINT_NAMES[j])
                checked += 1
            # keypoints are on the 1/16 px drawing grid
            assert np.array_equal(kp[:, :2] * 16, np.round(kp[:, :2] * 16))
    assert checked > 400


def test_occluded_joints_are_v1_and_outside_joints_are_v0() -> None:
    n_occluded = n_outside = 0
    for i in range(30):
        scene = synth.scene_for(SEED, "train", i)
        h, w = scene.labels.shape
        for p in range(len(scene.figures)):
            for j in range(NUM_KEYPOINTS):
                x, y, v = scene.keypoints[p, j]
                px, py = synth.joint_pixel(scene.raw_joints[p, j])
                inside = 0 <= px < w and 0 <= py < h
                if v == 0:
                    n_outside += 1
                    assert (x, y) == (0.0, 0.0) and not inside
                    continue
                assert inside and (x, y) == tuple(scene.raw_joints[p, j])
                seen = int(scene.labels[py, px])
                if v == 1:  # something else (a body part, never background) is drawn over the joint
                    n_occluded += 1
                    assert seen != (p + 1) * 64 + j and seen != 0
                else:
                    assert seen == (p + 1) * 64 + j
    assert n_occluded > 20 and n_outside > 5


def test_area_and_bbox_follow_the_visible_silhouette(tiny_embedded: Path) -> None:
    doc = _load(tiny_embedded, "train")
    for i, img in enumerate(doc["images"][:12]):
        scene = synth.scene_for(SEED, "train", i)
        anns = sorted((a for a in doc["annotations"] if a["image_id"] == img["id"]), key=lambda a: a["id"])
        masks = [scene.labels // 64 == p + 1 for p in range(len(scene.figures))]
        masks = [m for m in masks if m.any()]
        assert len(masks) == len(anns)
        for ann, mask in zip(anns, masks):
            ys, xs = np.nonzero(mask)
            assert ann["area"] == mask.sum()
            # pixel i spans [i - 0.5, i + 0.5]
            assert ann["bbox"] == [xs.min() - 0.5, ys.min() - 0.5, xs.max() - xs.min() + 1.0, ys.max() - ys.min() + 1.0]
            kp = np.array(ann["keypoints"]).reshape(-1, 3)
            vis = kp[kp[:, 2] == 2, :2]
            x0, y0, bw, bh = ann["bbox"]
            assert np.all((vis[:, 0] >= x0) & (vis[:, 0] <= x0 + bw) & (vis[:, 1] >= y0) & (vis[:, 1] <= y0 + bh))


@pytest.mark.parametrize("centre", [(20.25, 30.75), (21.5, 30.0), (20.0625, 29.4375)])
def test_disc_is_centred_on_its_sub_pixel_point(centre: tuple[float, float]) -> None:
    """The drawn disc's pixel centroid is the point itself (a half-pixel convention bug would be off by 0.5)."""
    canvas = Canvas(np.zeros((60, 50, 3), np.uint8), np.zeros((60, 50), np.uint16))  # W 50, H 60
    canvas.disc(np.array(centre), 10.0, (255, 0, 0), 9)
    ys, xs = np.nonzero(canvas.labels == 9)
    assert abs(xs.mean() - centre[0]) < 0.12 and abs(ys.mean() - centre[1]) < 0.12
    assert abs(len(xs) - np.pi * 10.5**2) < 15  # OpenCV fills pixels within r + 0.5


def test_no_mirror_invariant_cue_tells_left_from_right() -> None:
    """A colour that differs between left and right would be learned as 'left' and, in the mirrored
    training sample (flip augmentation swaps the labels), as 'right': partners share every colour."""
    from lrpose_bench.keypoints import FLIP_PAIRS

    assert len({tuple(c) for c in synth.JOINT_COLOURS}) == 9  # nose + 8 left/right joint types
    for a, b in FLIP_PAIRS:
        assert np.array_equal(synth.JOINT_COLOURS[a], synth.JOINT_COLOURS[b])
    rng = np.random.default_rng(3)
    for _ in range(200):
        fig = synth.sample_figure(rng, 300, 300)
        if fig.view != "profile":
            assert fig.colours[synth.LEFT] == fig.colours[synth.RIGHT]


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    """z of u x v in image px (y down): > 0 when v points to the image-right of an upward u."""
    return float(u[0] * v[1] - u[1] * v[0])


def test_left_and_right_follow_from_the_view_as_in_a_photograph() -> None:
    """Front: left shoulder on the image right of the right one; back: on the left, under hair; profile:
    a person facing image-right shows the right side (drawn near, unshaded). Rotation-invariant checks."""
    rng = np.random.default_rng(4)
    seen = set()
    for _ in range(300):
        fig = synth.sample_figure(rng, 300, 300)
        j = fig.joints
        up = (j[5] + j[6]) / 2 - (j[11] + j[12]) / 2
        left_to_image_right = _cross(up, j[5] - j[6]) > 0
        if fig.view == "front":
            assert left_to_image_right and not fig.face_hidden
        elif fig.view == "back":
            assert not left_to_image_right and set(fig.face_hidden) == {0, 1, 2}
            assert all(lo <= c <= hi for c, lo, hi in zip(fig.colours["head"], *synth.HAIR_RGB_RANGE))
        else:
            faces_image_right = _cross(up, j[0] - fig.head_center) > 0
            assert fig.near_side == (synth.RIGHT if faces_image_right else synth.LEFT)
            assert left_to_image_right == (not faces_image_right)
            far = 1 - fig.near_side
            assert sum(fig.colours[far]) < sum(fig.colours[fig.near_side])  # the far side is shaded
            seen.add(faces_image_right)
    assert seen == {True, False}


def test_default_sizes_are_sensible() -> None:
    assert 400 <= synth.DEFAULT_TRAIN_IMAGES <= 2000 and 100 <= synth.DEFAULT_VAL_IMAGES <= 500


# ------------------------------------------------------------------------------------------------------
# The unmarked variant (issue 17) and the default's stability
# ------------------------------------------------------------------------------------------------------
def test_the_default_variant_is_byte_stable(tmp_path: Path) -> None:
    """The default (marked) data may never change without a generator version bump: existing records and
    checkpoints name its dataset hash. Golden values from generator v2 before the variants existed."""
    import hashlib

    out = synth.generate_dataset(tmp_path / "g", 3, 2, seed=5)
    h_json, h_pix = hashlib.sha256(), hashlib.sha256()
    for split in ("train", "val"):
        h_json.update((out / "annotations" / f"person_keypoints_{split}2017.json").read_bytes())
        for p in sorted((out / f"{split}2017").glob("*.png")):
            h_pix.update(cv2.imread(str(p), cv2.IMREAD_COLOR).tobytes())
    assert synth.GENERATOR_VERSION == 2
    assert (h_json.hexdigest()[:16], h_pix.hexdigest()[:16]) == ("72d603ace0addd09", "ee3e9fa6bda67f68")
    assert "variant" not in _load(out, "val")["info"]


def test_unmarked_shows_the_same_scenes_without_markers() -> None:
    """Same random draws: same image size, figures and keypoints; no joint-colour disc at any keypoint."""
    checked = 0
    for i in range(12):
        m = synth.scene_for(SEED, "val", i, "marked")
        u = synth.scene_for(SEED, "val", i, "unmarked")
        assert m.image.shape == u.image.shape and len(m.figures) == len(u.figures)
        assert np.array_equal(m.raw_joints, u.raw_joints)
        assert np.array_equal(m.keypoints[..., :2], u.keypoints[..., :2])
        assert np.array_equal(m.keypoints[..., 2] == 0, u.keypoints[..., 2] == 0)  # outside: both
        assert not np.array_equal(m.image, u.image)
        for p in range(len(u.figures)):
            for j in np.flatnonzero(u.keypoints[p, :, 2] == 2):
                x, y = synth.joint_pixel(u.raw_joints[p, j])
                assert tuple(u.image[y, x]) != tuple(synth.JOINT_COLOURS[j])
                checked += 1
    assert checked > 100


def test_unmarked_visibility_is_the_joints_own_limb_or_feature() -> None:
    """v = 2 where the keypoint pixel shows a limb segment ending at the joint (face: its feature), v = 1
    where anything else covers it, v = 0 outside."""
    parts = synth.own_parts("unmarked")
    assert set(parts[7]) == {synth.PART_LIMB0 + 0, synth.PART_LIMB0 + 1}  # left elbow: upper arm, forearm
    assert list(parts[9]) == [synth.PART_LIMB0 + 1, -1] and list(parts[0]) == [0, -1]
    assert np.array_equal(synth.own_parts("marked")[:, 0], np.arange(NUM_KEYPOINTS))
    counts = {0: 0, 1: 0, 2: 0}
    for i in range(20):
        scene = synth.scene_for(SEED, "train", i, "unmarked")
        for p in range(len(scene.figures)):
            for j in range(NUM_KEYPOINTS):
                v = int(scene.keypoints[p, j, 2])
                counts[v] += 1
                if v == 0:
                    continue
                px, py = synth.joint_pixel(scene.raw_joints[p, j])
                seen = int(scene.labels[py, px])
                mine = {(p + 1) * 64 + int(q) for q in parts[j] if q >= 0}
                assert (seen in mine) == (v == 2), (i, p, KEYPOINT_NAMES[j])
    assert counts[1] > 20 and counts[2] > 200


def test_unmarked_has_no_mirror_invariant_left_right_cue() -> None:
    """Shading, segment tones and face features are alike for a joint and its left/right partner."""
    for a, b in ((1, 2), (3, 4)):
        assert synth.FACE_FEATURES[a] == synth.FACE_FEATURES[b]
    from lrpose_bench.keypoints import FLIP_INDEX

    ends = [(a, b) for a, b, _ in synth.LIMBS]
    for li, (a, b, w) in enumerate(synth.LIMBS):  # the mirror limb (partner joints): same tone and width
        mirror = ends.index((FLIP_INDEX[a], FLIP_INDEX[b]))
        assert mirror != li and synth.LIMB_SIDE[mirror] != synth.LIMB_SIDE[li]
        assert (li in synth.LOWER_LIMBS) == (mirror in synth.LOWER_LIMBS) and synth.LIMBS[mirror][2] == w


def test_unmarked_generation_is_deterministic_and_labelled(tmp_path: Path) -> None:
    a = synth.generate_dataset(tmp_path / "a", 2, 2, seed=3, variant="unmarked")
    b = synth.generate_dataset(tmp_path / "b", 2, 2, seed=3, variant="unmarked")
    m = synth.generate_dataset(tmp_path / "m", 2, 2, seed=3)
    for rel in ("annotations/person_keypoints_train2017.json", "annotations/person_keypoints_val2017.json"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
        assert (a / rel).read_bytes() != (m / rel).read_bytes()
    assert _load(a, "val")["info"]["variant"] == "unmarked"
    for p in sorted((a / "val2017").glob("*.png")):
        assert p.read_bytes() == (b / "val2017" / p.name).read_bytes()
    with pytest.raises(ValueError, match="unknown embedded data variant 'dots'.*marked, unmarked"):
        synth.generate_dataset(tmp_path / "x", 1, 1, seed=0, variant="dots")


def test_shaded_segment_has_segments_pixels_and_a_darker_rim() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.uniform(5, 75, 2), rng.uniform(5, 75, 2)
        width = float(rng.uniform(2, 14))
        flat = Canvas(np.zeros((80, 80, 3), np.uint8), np.zeros((80, 80), np.uint16))
        shaded = Canvas(np.zeros((80, 80, 3), np.uint8), np.zeros((80, 80), np.uint16))
        flat.segment(a, b, width, (200, 100, 50), 7)
        shaded.shaded_segment(a, b, width, (200, 100, 50), 7, rim=0.5)
        assert np.array_equal(flat.labels, shaded.labels)
        inside = shaded.labels == 7
        red = shaded.rgb[..., 0][inside].astype(int)
        assert red.max() <= 200 and red.min() >= 100 and red.max() - red.min() > 20


def test_ellipse_is_centred_on_its_sub_pixel_point() -> None:
    """No half-pixel or rounding bias: over random 1/16 px centres the pixel centroid errors average out
    (a single small ellipse's centroid is off by up to about 0.2 px: polygon approximation, rasterisation)."""
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(40):
        centre = np.round(rng.uniform(25, 35, 2) * 16) / 16
        canvas = Canvas(np.zeros((60, 60, 3), np.uint8), np.zeros((60, 60), np.uint16))
        canvas.ellipse(centre, (12.0, 7.0), float(rng.uniform(0, 180)), (0, 255, 0), 5)
        ys, xs = np.nonzero(canvas.labels == 5)
        errors.append((xs.mean() - centre[0], ys.mean() - centre[1]))
        assert abs(len(xs) - np.pi * 12.5 * 7.5) < 25
    err = np.array(errors)
    assert np.abs(err).max() < 0.3 and np.all(np.abs(err.mean(axis=0)) < 0.05)
