"""``lrpose bench data``: crops/s of the dataset's ``__getitem__`` against an HRNet-style per-sample pipeline,
in the same run and process, on the same samples.

Ours: :class:`~lrpose_bench.data.coco.CocoPoseDataset` with decoded images cached, decoded per sample, and
decoded per sample with ``jpeg_reduced_decode``; it returns uint8 crops (normalised per batch on the
device). The anchor re-implements the per-sample steps of HRNet's ``JointsDataset.__getitem__`` (Sun et
al. 2019; SimpleBaseline's pipeline): ``cv2.imread`` of the whole image and a colour conversion, the
augmentation drawn from numpy's global generator (half body, scale, rotation, flip of the whole image and
a per-pair joint swap), the crop affine from three point pairs (``cv2.getAffineTransform``),
``cv2.warpAffine``, torchvision's ``ToTensor`` + ``Normalize``, and a per-keypoint loop that moves the
joints. HRNet's per-sample target heatmaps are left out (ours are made on the device, see ``lrpose bench
codecs``). Torch runs on one thread while timing, as in a DataLoader worker. Figures are informative,
never asserted in tests.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from lrpose_bench.cli.common import DATA_HELP, bench_app, console, fail, parse_res, run_guarded

#: ImageNet statistics (torchvision's Normalize in HRNet's loader).
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------
# The anchor: HRNet-style per-sample Python
# --------------------------------------------------------------------------------------------------
def _rotate(point: Any, angle_rad: float) -> Any:
    """``point`` (x, y) turned by ``angle_rad`` (HRNet's ``get_dir`` convention)."""
    import numpy as np

    sn, cs = math.sin(angle_rad), math.cos(angle_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs], np.float32)


def _third_point(a: Any, b: Any) -> Any:
    """The point that makes ``a, b`` and it a right angle at ``b`` (``b`` plus ``a - b`` turned 90 deg)."""
    import numpy as np

    d = a - b
    return b + np.array([-d[1], d[0]], np.float32)


def hrnet_style_affine(center: Any, size: Any, rotation: float, output_size: tuple[int, int]) -> Any:
    """The crop affine ``(2, 3)`` (image px -> input px) built as HRNet builds it: the box centre and the
    point half a box width above it (turned by ``rotation`` degrees) in image px, their images in the
    crop, a third point at a right angle to each pair, ``cv2.getAffineTransform`` on float32 points.

    ``center``/``size`` image px (the box size, HRNet's ``scale * 200``). Equals the biased
    :func:`~lrpose_bench.geometry.crop_matrix` up to float32 rounding.
    """
    import cv2
    import numpy as np

    w, h = output_size
    src_dir = _rotate((0.0, size[0] * -0.5), math.pi * rotation / 180.0)
    dst_dir = np.array([0.0, w * -0.5], np.float32)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = np.asarray(center, np.float32) + src_dir
    dst[0] = (w * 0.5, h * 0.5)
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


@dataclass
class _Record:
    """One person as HRNet's ``db`` holds it (image px)."""

    path: str
    width: int
    center: Any
    size: Any
    joints: Any  # (K, 3): x, y, 0
    joints_vis: Any  # (K, 3): v, v, 0


class HRNetStylePipeline:
    """Per-sample crops the HRNet way (see the module docstring); ``images`` holds decoded BGR images by path
    to time the same Python without ``cv2.imread``. ``pipeline(i)`` returns ``(tensor, joints, vis)``."""

    def __init__(self, dataset: Any, augment: bool, images: dict[str, Any] | None = None) -> None:
        import numpy as np
        import torchvision.transforms as T

        from lrpose_bench.data.augment import AugmentConfig
        from lrpose_bench.geometry import box_to_center_scale
        from lrpose_bench.keypoints import FLIP_INDEX, LOWER_BODY, UPPER_BODY

        self.size = dataset.crop_size
        self.augment = augment
        self.config = AugmentConfig()
        self.images = images
        self.upper, self.lower = set(UPPER_BODY), set(LOWER_BODY)
        self.pairs = [(a, b) for a, b in enumerate(FLIP_INDEX) if a < b]
        self.transform = T.Compose([T.ToTensor(), T.Normalize(mean=_MEAN, std=_STD)])
        self.records: list[_Record] = []
        inst = dataset.instances
        w, h = self.size
        centers, sizes = box_to_center_scale(inst.box, w / h, dataset.box_padding)
        for i in range(len(dataset)):
            k = int(inst.image_index[i])
            kps = inst.keypoints[i]
            joints = np.zeros((len(kps), 3), np.float32)
            joints[:, :2] = kps[:, :2]
            vis = np.zeros((len(kps), 3), np.float32)
            vis[:, :2] = (kps[:, 2:3] > 0).astype(np.float32)
            self.records.append(_Record(str(dataset.image_dir / dataset.image_files[k]),
                                        int(dataset.image_sizes[k][0]), centers[i], sizes[i], joints, vis))  # fmt: skip

    def _half_body(self, joints: Any, vis: Any) -> tuple[Any, Any] | None:
        """HRNet's half-body box: the upper or lower joints (per-joint loop), their mean and padded extent."""
        import numpy as np

        upper, lower = [], []
        for j in range(len(joints)):
            if vis[j, 0] > 0:
                (upper if j in self.upper else lower).append(joints[j])
        chosen = upper if np.random.randn() < 0.5 and len(upper) > 2 else (lower if len(lower) > 2 else upper)
        if len(chosen) < 2:
            return None
        pts = np.array(chosen, np.float32)
        center = pts.mean(axis=0)[:2]
        lo, hi = np.amin(pts, axis=0), np.amax(pts, axis=0)
        bw, bh = hi[0] - lo[0], hi[1] - lo[1]
        ratio = self.size[0] / self.size[1]
        if bw > ratio * bh:
            bh = bw / ratio
        else:
            bw = bh * ratio
        return center, np.array([bw, bh], np.float32) * self.config.half_body_padding

    def __call__(self, idx: int) -> tuple[Any, Any, Any]:
        import cv2
        import numpy as np

        rec = self.records[idx]
        if self.images is None:
            image = cv2.imread(rec.path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        else:
            image = self.images[rec.path]
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        joints, vis = rec.joints.copy(), rec.joints_vis.copy()
        c, s, r = rec.center.copy(), rec.size.copy(), 0.0
        cfg = self.config
        if self.augment:
            if np.sum(vis[:, 0]) > cfg.half_body_min_joints and np.random.rand() < cfg.half_body_prob:
                hb = self._half_body(joints, vis)
                if hb is not None:
                    c, s = hb
            sf, rf = cfg.scale_factor, cfg.rotation_factor
            s = s * np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
            r = np.clip(np.random.randn() * rf, -rf * 2, rf * 2) if np.random.rand() <= cfg.rotation_prob else 0.0
            if np.random.rand() <= cfg.flip_prob:
                image = image[:, ::-1, :]
                joints[:, 0] = rec.width - joints[:, 0] - 1
                for a, b in self.pairs:
                    joints[[a, b]] = joints[[b, a]]
                    vis[[a, b]] = vis[[b, a]]
                joints = joints * vis
                c = np.array([rec.width - c[0] - 1, c[1]], np.float32)
        trans = hrnet_style_affine(c, s, float(r), self.size)
        crop = cv2.warpAffine(image, trans, self.size, flags=cv2.INTER_LINEAR)
        tensor = self.transform(crop)
        for j in range(len(joints)):
            if vis[j, 0] > 0:
                joints[j, :2] = np.dot(trans, np.array([joints[j, 0], joints[j, 1], 1.0]))[:2]
        return tensor, joints, vis


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One pipeline's figures: ``rate`` crops/s (wall clock) and ``cpu_ms`` CPU ms per crop (all threads of
    the process: steadier than the wall clock on a busy machine), each the best pass; ``note``."""

    pipeline: str
    decode: str
    rate: float
    cpu_ms: float
    note: str = ""
    anchor: bool = False


def _best_rates(
    pipelines: dict[str, Callable[[int], Any]], indices: list[int], repeat: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Crops/s (wall clock) and CPU ms per crop of each pipeline over ``indices``, each the best of
    ``repeat`` passes; passes interleaved across pipelines (a change of load hits all alike), numpy's
    global generator re-seeded before each (the anchor's draws)."""
    import numpy as np

    rate = {name: 0.0 for name in pipelines}
    cpu = {name: math.inf for name in pipelines}
    for name, fn in pipelines.items():  # warm-up: first reads, the epoch's seed table, lazy imports
        np.random.seed(0)
        for i in indices[:3]:
            fn(i)
    for _ in range(repeat):
        for name, fn in pipelines.items():
            np.random.seed(0)
            t0, c0 = time.perf_counter(), time.process_time()
            for i in indices:
                fn(i)
            wall, used = time.perf_counter() - t0, time.process_time() - c0
            rate[name] = max(rate[name], len(indices) / max(wall, 1e-9))
            cpu[name] = min(cpu[name], 1e3 * used / len(indices))
    return rate, cpu


def _normalize_rate(size: tuple[int, int], batch: int, repeat: int) -> float:
    """Crops/s of :func:`~lrpose_bench.data.normalize.normalize` on the CPU for uint8 batches of ``batch``."""
    import torch

    from lrpose_bench.data.normalize import normalize

    x = torch.randint(0, 256, (batch, 3, size[1], size[0]), dtype=torch.uint8)
    normalize(x)
    best = 0.0
    for _ in range(max(3, repeat)):
        t0 = time.perf_counter()
        normalize(x)
        best = max(best, batch / max(time.perf_counter() - t0, 1e-9))
    return best


def bench_data(
    data: str | Path | None, size: tuple[int, int], samples: int, repeat: int, split: str = "train",
    augment: bool = True,
) -> tuple[list[Row], dict[str, Any]]:
    """Rows of crops/s for ours (cached, per sample, per sample with reduced JPEG decode) and the
    HRNet-style anchor (``cv2.imread`` per sample; decoded images in memory), and facts about the run."""
    import cv2
    import numpy as np
    import torch

    from lrpose_bench.data.coco import CocoPoseDataset, crop_affine, reduced_decode_factor
    from lrpose_bench.data.spec import resolve_dataset
    from lrpose_bench.geometry import crop_matrix

    if samples < 1 or repeat < 1:
        raise ValueError(f"--samples and --repeat must be >= 1, got {samples} and {repeat}")
    if split not in ("train", "val"):
        raise ValueError(f"--split {split!r}: choose train or val")
    spec = resolve_dataset(data, need_train=split == "train")
    ann, images = (spec.train_ann, spec.train_images) if split == "train" else (spec.val_ann, spec.val_images)

    cache_note = ""

    def make(**kw: Any) -> CocoPoseDataset:
        return CocoPoseDataset(ann, images, crop_size=size, unbiased=False, train=augment, seed=0, **kw)

    plain = make()
    quiet = logging.getLogger("lrpose_bench.data.coco")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the same annotation warnings once is enough
    try:
        reduced = make(jpeg_reduced_decode=True)
        cached = None
        try:
            cached = make(cache_images=True)
        except ValueError as exc:  # more decoded pixels than the cache allows
            cache_note = f"skipped: {exc}"
    finally:
        quiet.setLevel(level)
    indices = [i % len(plain) for i in range(samples)]
    anchor = HRNetStylePipeline(plain, augment)
    pipelines: dict[str, Callable[[int], Any]] = {
        "anchor": anchor,
        "ours_decode": plain.__getitem__,
        "ours_reduced": reduced.__getitem__,
    }
    if cached is not None:
        pipelines["ours_cached"] = cached.__getitem__
    used = {anchor.records[i].path for i in indices}
    jpeg = sum(1 for p in used if Path(p).read_bytes()[:2] == b"\xff\xd8")
    in_memory = {p: cv2.imread(p, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) for p in sorted(used)}
    pipelines["anchor_memory"] = HRNetStylePipeline(plain, augment, images=in_memory)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker (HRNet's ToTensor/Normalize run there)
    try:
        rates, cpu = _best_rates(pipelines, indices, repeat)
        normalize_rate = _normalize_rate(size, 32, repeat)
    finally:
        torch.set_num_threads(threads)

    # How often the reduced decode applies (factor > 1) on these samples, and the affine check.
    factors = []
    for i in indices:
        cx, cy, sw, sh, rotation, flip = plain.sample_box(i)
        matrix = crop_affine(cx, cy, sw, sh, size[0], size[1], rotation, plain.unbiased, flip)
        factors.append(reduced_decode_factor(matrix, plain.lowres_protocol))
    rec = anchor.records[indices[0]]
    ours = crop_matrix(rec.center, rec.size, size, 17.0, unbiased=False)
    theirs = hrnet_style_affine(rec.center, rec.size, 17.0, size)
    affine_diff = float(np.abs(ours - theirs).max())
    n_reduced = sum(f > 1 for f in factors)
    rows = [
        Row("HRNet-style (anchor)", "cv2.imread", rates["anchor"], cpu["anchor"], anchor=True),
        Row("HRNet-style", "in memory", rates["anchor_memory"], cpu["anchor_memory"], "its per-sample Python alone"),
        Row("ours", "cv2.imdecode", rates["ours_decode"], cpu["ours_decode"], "paper profile"),
        Row("ours, jpeg_reduced_decode", "reduced JPEG", rates["ours_reduced"], cpu["ours_reduced"],
            f"1/2-1/8 decode on {n_reduced} of {len(factors)} crops" if jpeg else "no JPEGs: full decode"),
        Row("ours, cache_images", "in memory", rates.get("ours_cached", math.nan), cpu.get("ours_cached", math.nan),
            cache_note or "quick profile"),
    ]  # fmt: skip
    facts = {
        "dataset": spec.name, "split": split, "instances": len(plain), "samples": samples, "repeat": repeat,
        "images_read": len(used), "jpeg_images": jpeg, "cv2_threads": cv2.getNumThreads(), "affine_max_diff": affine_diff,
        "normalize_rate": normalize_rate, "augment": augment,
    }  # fmt: skip
    return rows, facts


@bench_app.command("data")
def data_command(
    res: str = typer.Option("128x96", "--res", help="Input resolution HxW (height x width), e.g. 128x96 or 64x48."),
    data: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
    split: str = typer.Option("train", "--split", help="Which split's persons to crop: train or val."),
    samples: int = typer.Option(300, "--samples", min=1, help="Crops per timed pass (the dataset's persons, cycled)."),
    repeat: int = typer.Option(3, "--repeat", min=1, help="Timed passes per pipeline, interleaved; the fastest counts."),
    augment: bool = typer.Option(True, "--augment/--no-augment",
                                 help="Training augmentation (HRNet's recipe, the paper profile) or plain crops."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table (for benchmarks/README.md)."),
) -> None:
    """Print crops/s of the dataset's __getitem__ (images cached, decoded per sample, reduced JPEG decode)
    against an HRNet-style per-sample pipeline, in one process. Figures are informative, never asserted."""
    size = parse_res(res)
    if size is None:
        fail("--res is required")
    rows, facts = run_guarded(bench_data, data, size, samples, repeat, split, augment)
    anchor = next(r for r in rows if r.anchor)
    title = (f"data pipeline at {res}: {facts['dataset']} {split} ({facts['instances']} persons, "
             f"{facts['images_read']} images, {facts['jpeg_images']} JPEG), {'augmented' if augment else 'plain'} "
             f"crops, 1 process, best of {repeat} passes of {samples} crops")  # fmt: skip
    cells = []
    for r in rows:
        ok = r.rate == r.rate
        cells.append([r.pipeline, r.decode, f"{r.rate:,.0f}" if ok else "-", f"{r.rate / anchor.rate:.2f}" if ok else "-",
                      f"{r.cpu_ms:.2f}" if ok else "-", f"{anchor.cpu_ms / r.cpu_ms:.2f}" if ok else "-", r.note])  # fmt: skip
    header = ["pipeline", "images", "crops/s", "x anchor", "CPU ms/crop", "x anchor (CPU)", "note"]
    if markdown:
        typer.echo(f"{title}\n")
        typer.echo("| " + " | ".join(header) + " |")
        typer.echo("|---|---|--:|--:|--:|--:|---|")
        for c in cells:
            typer.echo("| " + " | ".join(c) + " |")
    else:
        from rich.table import Table

        table = Table(title=title)
        for name in header:
            left = name in ("pipeline", "images", "note")
            table.add_column(name, justify="left" if left else "right", no_wrap=name != "note")
        for c in cells:
            table.add_row(*c)
        console.print(table)
    console.print(
        f"ours returns uint8 crops; normalize() runs per batch on the device ({facts['normalize_rate']:,.0f} crops/s "
        f"in batches of 32 on one CPU thread). Torch threads: 1 (as in a DataLoader worker); OpenCV threads: "
        f"{facts['cv2_threads']}. The anchor's affine equals our biased crop_matrix to "
        f"{facts['affine_max_diff']:.1e} (float32 points).",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """The command lives on the shared ``bench`` group (mounted by app.py); nothing to add at top level."""
    del app


__all__ = ["HRNetStylePipeline", "bench_data", "data_command", "hrnet_style_affine", "register"]
