"""The fast per-sample data path: same samples as before it, the reduced JPEG decode, ``lrpose bench data``.

``tests/data/getitem_reference.npz`` holds every field of a few samples as the dataset produced them
before the per-sample work was vectorised (written by the code of commit 4c3ee96: real COCO JPEGs of
``tests/data/minicoco`` and the tiny embedded set of ``tests/conftest.py``; augmented and plain, biased and
unbiased, direct and antialias, cached and not; the pixels are those of the pinned OpenCV build).
``python tests/test_data_fast.py --write`` rewrites it, only when a change of the samples is intended.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

TEST_DATA = Path(__file__).resolve().parent / "data"
REFERENCE = TEST_DATA / "getitem_reference.npz"

#: (name, dataset root ("minicoco" or "embedded"), split, dataset keyword arguments, epoch, sample indices)
CASES: tuple[tuple[str, str, str, dict[str, Any], int, tuple[int, ...]], ...] = (
    ("mc_train_aug", "minicoco", "train", dict(crop_size=(48, 64), unbiased=False, train=True, seed=3), 1,
     (0, 2, 7, 9, 10, 12)),
    ("mc_train_udp_aa", "minicoco", "train", dict(crop_size=(48, 64), unbiased=True, train=True, seed=5,
                                                   lowres_protocol="antialias"), 0, (0, 3, 7, 12)),
    ("mc_val_udp", "minicoco", "val", dict(crop_size=(48, 64), unbiased=True, train=False), 0, (0, 2, 4, 6)),
    ("emb_train_cache", "embedded", "train", dict(crop_size=(96, 128), unbiased=True, train=True, seed=0,
                                                  cache_images=True), 2, (0, 11, 17)),
    ("emb_val_cache", "embedded", "val", dict(crop_size=(48, 64), unbiased=False, train=False,
                                              cache_images=True), 0, (0, 3)),
)  # fmt: skip


def make_tiny_embedded(out: Path) -> Path:
    """The tiny embedded dataset of ``tests/conftest.py`` (24 train, 12 val images, generator seed 7; keep the
    two equal)."""
    from lrpose_bench.data.synth import generate_dataset

    generate_dataset(out, num_train=24, num_val=12, seed=7)
    return out


def reference_samples(minicoco: Path, embedded: Path) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """``("case/index", sample as numpy arrays)`` for every sample of :data:`CASES`."""
    from lrpose_bench.data.coco import CocoPoseDataset

    roots = {"minicoco": minicoco, "embedded": embedded}
    for name, root_name, split, kw, epoch, indices in CASES:
        root = roots[root_name]
        ds = CocoPoseDataset(root / "annotations" / f"person_keypoints_{split}2017.json", root / f"{split}2017", **kw)
        ds.set_epoch(epoch)
        for i in indices:
            yield f"{name}/{i}", {k: np.asarray(v) for k, v in ds[i].items()}


def write_reference() -> None:
    """Rewrite :data:`REFERENCE` from the current code."""
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = make_tiny_embedded(Path(tmp) / "tiny")
        for key, sample in reference_samples(TEST_DATA / "minicoco", embedded):
            for field_name, value in sample.items():
                arrays[f"{key}/{field_name}"] = value
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays)")


def _dataset(root: Path, split: str, **kw: Any):
    from lrpose_bench.data.coco import CocoPoseDataset

    return CocoPoseDataset(root / "annotations" / f"person_keypoints_{split}2017.json", root / f"{split}2017", **kw)


def _same(a: dict, b: dict) -> None:
    """Samples equal field by field: pixels, flags and ids exactly, floats to their rounding."""
    assert set(a) == set(b)
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape, key
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9, err_msg=key)
        else:
            np.testing.assert_array_equal(x, y, err_msg=key)


# --------------------------------------------------------------------------------------------------
# Same samples as before the fast path
# --------------------------------------------------------------------------------------------------
def test_samples_equal_the_stored_reference(minicoco_root: Path, tiny_embedded: Path) -> None:
    ref = np.load(REFERENCE)
    seen = 0
    for key, sample in reference_samples(minicoco_root, tiny_embedded):
        _same({f: ref[f"{key}/{f}"] for f in sample}, sample)
        seen += 1
    assert seen == sum(len(c[-1]) for c in CASES)
    # the cases cover what they should: flips, half-body crops, rotations, joints leaving the crop
    flips = [float(ref[f"mc_train_aug/{i}/crop_to_image"][0, 0]) < 0 for i in (0, 2, 7, 9, 10, 12)]
    assert any(flips) and not all(flips)
    vis = np.stack([ref[f"mc_train_aug/{i}/visibility"] for i in (0, 2, 7, 9, 10, 12)])
    gt = np.stack([ref[f"mc_train_aug/{i}/gt_keypoints"][:, 2] > 0 for i in (0, 2, 7, 9, 10, 12)])
    assert (vis.sum(1) <= gt.sum(1)).all() and (vis.sum(1) < gt.sum(1)).any()  # (flips reorder the joints)


def test_sample_generators_are_numpys_per_sample_generators() -> None:
    import pickle

    from lrpose_bench.data.augment import SampleGenerators, sample_rng, seed_words

    for seed, epoch in [(0, 0), (3, 1), (2**32 - 1, 209), (12345, 2**32 - 1)]:
        gens = SampleGenerators(seed, 300)
        for i in (0, 1, 17, 299):
            want = np.random.SeedSequence([seed, epoch, i]).generate_state(4, np.uint64)
            np.testing.assert_array_equal(seed_words(seed, epoch, np.array([i]))[0], want)
            np.testing.assert_array_equal(gens(epoch, i).random(6), sample_rng(seed, epoch, i).random(6))
            assert gens(epoch, i).standard_normal() == sample_rng(seed, epoch, i).standard_normal()
    # order of calls, a copy in another process (pickled), the fallback for seeds past 32 bits
    gens = SampleGenerators(5, 10)
    late = gens(2, 9).random(3)
    again = pickle.loads(pickle.dumps(gens))
    np.testing.assert_array_equal(again(2, 9).random(3), late)
    np.testing.assert_array_equal(SampleGenerators(2**40, 10)(0, 3).random(2), sample_rng(2**40, 0, 3).random(2))
    with pytest.raises(ValueError):  # as numpy: negative entropy is refused
        SampleGenerators(-1, 10)(0, 3)


def test_samples_do_not_depend_on_order_or_workers(tiny_embedded: Path) -> None:
    import torch

    ds = _dataset(tiny_embedded, "train", crop_size=(48, 64), unbiased=False, train=True, seed=11)
    ds.set_epoch(3)
    forward = [ds[i] for i in range(6)]
    backward = [ds[i] for i in reversed(range(6))][::-1]
    for a, b in zip(forward, backward):
        _same({k: v.numpy() for k, v in a.items()}, {k: v.numpy() for k, v in b.items()})
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(itertools.islice(loader, 2))
    for j, sample in enumerate(forward):
        got = {k: v[j % 3].numpy() for k, v in batches[j // 3].items()}
        _same({k: v.numpy() for k, v in sample.items()}, got)


def test_crop_affine_is_crop_matrix() -> None:
    from lrpose_bench.data.coco import crop_affine
    from lrpose_bench.geometry import crop_matrix

    rng = np.random.default_rng(0)
    for _ in range(500):
        c, s = rng.uniform(0, 640, 2), rng.uniform(5, 400, 2)
        rot = float(rng.choice([0.0, rng.uniform(-90, 90)]))
        unbiased, flip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        size = (96, 128) if rng.random() < 0.5 else (48, 64)
        want = crop_matrix(c, s, size, rot, unbiased, flip)
        got = crop_affine(*c.tolist(), *s.tolist(), *size, rot, unbiased, flip)
        if rot == 0.0:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_normalize_in_place_gives_the_same_values() -> None:
    import torch

    from lrpose_bench.data.normalize import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize

    x = torch.randint(0, 256, (2, 3, 8, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    want = (x.float() / 255.0 - mean) / std
    assert torch.equal(normalize(x), want) and normalize(x).dtype == torch.float32
    f = x.float()
    normalize(f)
    assert torch.equal(f, x.float())  # a float input is left alone
    torch.testing.assert_close(denormalize(normalize(x)) * 255.0, x.float(), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------------------
# Reduced JPEG decode
# --------------------------------------------------------------------------------------------------
def _block_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Mean of the ``f x f`` pixel blocks ``[f q, f q + f)`` (the image's last row/column repeated to fill)."""
    import cv2

    h_img, w_img = image.shape[:2]
    h, w = -(-h_img // f), -(-w_img // f)
    pad = cv2.copyMakeBorder(image, 0, h * f - h_img, 0, w * f - w_img, cv2.BORDER_REPLICATE)
    return pad.reshape(h, f, w, f, -1).astype(np.float64).mean(axis=(1, 3))


def test_libjpeg_reduced_decode_is_the_block_mean_without_shift(minicoco_root: Path) -> None:
    """Small px ``q`` is the mean of full px ``[f q, f q + f)``, i.e. centred on full px ``f q + (f - 1) / 2``:
    the map :func:`reduced_matrix` composes. A sub-pixel shift of the block means only gets further away."""
    import cv2

    ds = _dataset(minicoco_root, "val", crop_size=(48, 64), unbiased=False, train=False)
    i = ds._image_index[0]
    full, f1 = ds._decode_bgr(i)
    assert f1 == 1
    for f in (2, 4, 8):
        small, factor = ds._decode_bgr(i, f)
        assert factor == f and small.shape[:2] == (-(-full.shape[0] // f), -(-full.shape[1] // f))
        ref = _block_mean(full, f)
        inner = (slice(4, -4), slice(4, -4))
        err0 = np.abs(small - ref)[inner].mean()
        assert err0 < 1.0, (f, err0)
        for dx, dy in ((0.25, 0), (-0.25, 0), (0, 0.25), (0, -0.25)):
            moved = cv2.warpAffine(ref.astype(np.float32), np.float64([[1, 0, dx], [0, 1, dy]]), small.shape[1::-1],
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)  # fmt: skip
            assert np.abs(small - moved)[inner].mean() > err0 + 0.5, (f, dx, dy)


def test_reduced_decode_factor_and_matrix() -> None:
    from lrpose_bench.data.coco import reduced_decode_factor, reduced_matrix
    from lrpose_bench.geometry import apply_affine, crop_matrix

    def matrix(step: float, rotation: float = 30.0) -> np.ndarray:  # `step` image px per input px
        return crop_matrix(np.array([200.0, 150.0]), np.array([48 * step, 64 * step]), (48, 64), rotation)

    for step, want in ((1.0, 1), (1.99, 1), (2.0, 2), (3.9, 2), (4.0, 4), (7.5, 4), (8.0, 8), (40.0, 8)):
        assert reduced_decode_factor(matrix(step), "direct") == want, step
    assert reduced_decode_factor(matrix(9.0), "antialias") == 2  # the 4x warp samples every 2.25 px
    assert reduced_decode_factor(matrix(7.9), "antialias") == 1
    m = matrix(5.0)
    q = np.random.default_rng(0).uniform(-3, 90, (20, 2))
    for f in (1, 2, 4, 8):
        np.testing.assert_allclose(apply_affine(q, reduced_matrix(m, f)), apply_affine(f * q + (f - 1) / 2, m), atol=1e-9)


def test_reduced_decode_crops_are_block_mean_crops_with_the_same_geometry(minicoco_root: Path) -> None:
    """Same keypoints, boxes and maps; the crop is the crop of the block-mean image (what the scaled IDCT
    computes), within JPEG rounding, and differs from the default crop by its anti-aliasing only."""
    import cv2

    from lrpose_bench.data.coco import reduced_decode_factor, reduced_matrix
    from lrpose_bench.geometry import invert_affine

    kw = dict(crop_size=(48, 64), unbiased=False, train=False)
    full = _dataset(minicoco_root, "val", **kw)
    reduced = _dataset(minicoco_root, "val", jpeg_reduced_decode=True, **kw)
    assert reduced.describe()["jpeg_reduced_decode"] and not full.describe()["jpeg_reduced_decode"]
    factors = []
    for i in range(len(full)):
        a, b = full[i], reduced[i]
        _same({k: v.numpy() for k, v in a.items() if k != "image"}, {k: v.numpy() for k, v in b.items() if k != "image"})
        m = invert_affine(a["crop_to_image"].numpy())
        f = reduced_decode_factor(m, "direct")
        factors.append(f)
        got, default = b["image"].numpy().astype(float), a["image"].numpy().astype(float)
        if f == 1:
            np.testing.assert_array_equal(got, default)
            continue
        block = np.rint(_block_mean(full._decode_bgr(full._image_index[i])[0], f)).astype(np.uint8)
        expect = cv2.warpAffine(block, reduced_matrix(m, f), (48, 64), flags=cv2.INTER_LINEAR)
        expect = expect[:, :, ::-1].transpose(2, 0, 1).astype(float)  # BGR -> RGB, CHW
        shifted = cv2.warpAffine(block, m * f, (48, 64), flags=cv2.INTER_LINEAR)[:, :, ::-1].transpose(2, 0, 1)
        err = np.abs(got - expect).mean()
        assert err < 0.6, (i, f, err)
        assert np.abs(got - shifted).mean() > 2 * err + 1, (i, f)  # without the (f - 1) / 2 offset: further off
        assert abs(got.mean() - default.mean()) < 3.0  # same content, only less aliased
    assert max(factors) > 1 and min(factors) == 1


def test_reduced_decode_leaves_other_files_and_the_cache_alone(tiny_embedded: Path) -> None:
    from lrpose_bench.engine.config import make_config
    from lrpose_bench.errors import OptionValueError

    kw = dict(crop_size=(48, 64), unbiased=False, train=True, seed=2)
    png = _dataset(tiny_embedded, "train", **kw)
    png_reduced = _dataset(tiny_embedded, "train", jpeg_reduced_decode=True, **kw)
    for i in range(0, len(png), 7):  # PNG files: decoded at full size whatever the crop
        _same({k: v.numpy() for k, v in png[i].items()}, {k: v.numpy() for k, v in png_reduced[i].items()})
    with pytest.raises(ValueError, match="cache_images"):
        _dataset(tiny_embedded, "train", jpeg_reduced_decode=True, cache_images=True, **kw)
    assert make_config("paper").jpeg_reduced_decode is False
    assert make_config("paper", {"jpeg_reduced_decode": "true"}).to_dict()["jpeg_reduced_decode"] is True
    with pytest.raises(OptionValueError, match="cache_images=false"):
        make_config("quick", {"jpeg_reduced_decode": "true"})


# --------------------------------------------------------------------------------------------------
# lrpose bench data
# --------------------------------------------------------------------------------------------------
def test_hrnet_style_affine_is_the_biased_crop_matrix() -> None:
    from lrpose_bench.cli.bench_data_cmd import hrnet_style_affine
    from lrpose_bench.geometry import crop_matrix

    for rot in (0.0, 17.0, -60.0):
        c, s = np.array([210.5, 140.25]), np.array([90.0, 120.0])
        np.testing.assert_allclose(hrnet_style_affine(c, s, rot, (48, 64)), crop_matrix(c, s, (48, 64), rot), atol=1e-3)


def test_bench_data_cli(minicoco_root: Path) -> None:
    from typer.testing import CliRunner

    from lrpose_bench.cli.app import app
    from lrpose_bench.cli.bench_data_cmd import bench_data

    rows, facts = bench_data(minicoco_root, (48, 64), samples=3, repeat=1, split="val", augment=False)
    assert [r.pipeline for r in rows][0] == "HRNet-style (anchor)" and rows[0].anchor
    assert all(r.rate > 0 for r in rows) and facts["jpeg_images"] == facts["images_read"] > 0
    assert any("decode on" in r.note for r in rows)
    res = CliRunner().invoke(app, ["bench", "data", "--data", str(minicoco_root), "--res", "64x48", "--samples", "2",
                                   "--repeat", "1", "--markdown"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| HRNet-style (anchor) | cv2.imread |" in res.output and "| ours, cache_images |" in res.output
    bad = CliRunner().invoke(app, ["bench", "data", "--data", str(minicoco_root), "--split", "test", "--samples", "1"])
    assert bad.exit_code != 0 and "--split" in bad.output


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_reference()
    else:
        print(__doc__)
