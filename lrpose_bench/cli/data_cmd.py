"""``lrpose data ...``: write a synthetic dataset anywhere; summarise or show any COCO keypoint dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lrpose_bench.cli.common import DATA_HELP, console, fail, parse_res, run_guarded

if TYPE_CHECKING:
    from lrpose_bench.data.show import ShowResult

data_app = typer.Typer(
    help="Datasets: generate the synthetic one, inspect and show any COCO keypoint dataset.", no_args_is_help=True
)

#: Box-size bins (sqrt of the box area, image px); 32 and 96 are COCO's small/medium/large limits.
BOX_BINS: tuple[float, ...] = (0, 16, 32, 64, 96, 128, 192, 256, float("inf"))


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the COCO-layout dataset into (must be empty or new)."),
    train: int = typer.Option(640, "--train", min=0, help="Number of training images."),
    val: int = typer.Option(160, "--val", min=0, help="Number of validation images."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
    variant: str = typer.Option(
        "marked", "--variant",
        help="Generator variant: marked (a coloured disc on every joint; the default) | unmarked (no joint markers: "
             "shaded limbs, plain face features; the same scenes and keypoints).",
    ),  # fmt: skip
) -> None:
    """Generate the procedural person-keypoint dataset (COCO format, PNG images) into --out."""
    from lrpose_bench.data.synth import VARIANTS, generate_dataset

    if variant not in VARIANTS:
        fail(f"--variant {variant!r} is not one of {', '.join(VARIANTS)}", 2)

    def _go() -> Path:
        try:
            return generate_dataset(out, train, val, seed, overwrite=force, progress=True, variant=variant)
        except FileExistsError as exc:
            fail(str(exc))

    root = run_guarded(_go)
    console.print(f"wrote {train} train + {val} val images ({variant}) to {root}", highlight=False)


@data_app.command("show")
def show(
    data: Path = typer.Option(None, "--data", help=DATA_HELP),
    split: str = typer.Option("val", "--split", help="Which split to show: train or val."),
    n: int = typer.Option(12, "--n", min=1, max=48, help="Number of images (drawn at random among those with persons)."),
    res: str = typer.Option("64x48", "--res", help="Input resolution HxW of the crops shown (as the paper writes it)."),
    crops: int = typer.Option(
        2, "--crops", min=0, max=4, help="Persons per image shown as crops (largest first), each as input and with the truth."
    ),
    seed: int = typer.Option(0, "--seed", help="Which images: the same seed shows the same images."),
    lowres_protocol: str = typer.Option(
        "direct", "--lowres-protocol", help="How the low-resolution crops are made: direct (as lrpose run) | antialias."
    ),
    out: Path = typer.Option(
        None, "--out", help="PNG file to write. Default: data_show_<dataset>_<split>_<HxW>.png in the current folder."
    ),
) -> None:
    """Draw images with their ground-truth skeletons and the low-resolution crops the network sees (PNG).

    Each cell is one image with every usable person's keypoints (dot: visible, ring: occluded; blue: the
    person's left, orange: right) and, below it, its largest persons cut as evaluation cuts them at --res,
    shown pixel for pixel with the ground truth in crop px.
    """
    size = parse_res(res)
    if split not in ("train", "val"):
        fail(f"--split {split!r} is not one of train, val", 2)
    from lrpose_bench.data.coco import LOWRES_PROTOCOLS

    if lowres_protocol not in LOWRES_PROTOCOLS:
        fail(f"--lowres-protocol {lowres_protocol!r} is not one of {', '.join(LOWRES_PROTOCOLS)}", 2)
    result = run_guarded(_show, data, split, n, size, crops, seed, lowres_protocol, out)
    console.print(
        f"wrote {result.path}: {result.images} of {result.available_images} images with persons, "
        f"{result.crops} crops at {res}",
        highlight=False,
        soft_wrap=True,  # a long path stays one piece
    )


def _show(
    data: Path | None, split: str, n: int, size: tuple[int, int], crops: int, seed: int, protocol: str, out: Path | None
) -> ShowResult:
    """Resolve the dataset and draw the figure (``size``: crop ``(width, height)`` px); returns what was drawn."""
    from lrpose_bench.data.show import show_dataset
    from lrpose_bench.data.spec import resolve_dataset
    from lrpose_bench.geometry import format_resolution

    spec = resolve_dataset(data, need_train=split == "train")
    if out is None:
        out = Path(f"data_show_{spec.name}_{split}_{format_resolution(size)}.png")
    elif out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: the figure is a PNG; give a file name ending in .png")
    return show_dataset(spec, out.expanduser(), split=split, n=n, crop_size=size, seed=seed, crops_per_image=crops,
                        lowres_protocol=protocol)  # fmt: skip


@data_app.command("info")
def info(
    data: Path = typer.Option(None, "--data", help=DATA_HELP),
    split: str = typer.Option("val", "--split", help="Which split to summarise: train or val."),
) -> None:
    """Summarise a split: instances, persons per image, keypoint visibility per joint, box sizes."""
    if split not in ("train", "val"):
        fail(f"--split {split!r} is not one of train, val")
    run_guarded(_info, data, split)


def _info(data: Path | None, split: str) -> None:
    import numpy as np
    from rich.table import Table

    from lrpose_bench.data.coco import gt_instances, load_annotation_file
    from lrpose_bench.data.spec import resolve_dataset
    from lrpose_bench.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

    spec = resolve_dataset(data, need_train=split == "train")
    ann_file = spec.train_ann if split == "train" else spec.val_ann
    doc = load_annotation_file(ann_file)
    persons = [a for a in doc["annotations"] if a.get("category_id", 1) == 1]
    index = {im["id"]: k for k, im in enumerate(doc["images"])}
    inst = gt_instances(doc, index)
    per_image = np.bincount([index[a["image_id"]] for a in persons], minlength=len(doc["images"]))
    console.print(f"[bold]{spec.name}[/] {split}: {ann_file}", highlight=False)
    console.print(
        f"images {len(doc['images'])}, person annotations {len(persons)}, "
        f"usable instances {len(inst.box)} (crowd {inst.counts['crowd']}, no keypoints "
        f"{inst.counts['no_keypoints']}, zero-area box {inst.counts['zero_area_box']})",
        highlight=False,
    )
    hist = np.bincount(per_image)
    console.print("persons per image: " + ", ".join(f"{k}: {c}" for k, c in enumerate(hist) if c), highlight=False)

    kps = np.array([a["keypoints"] for a in persons], np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    v = np.clip(kps[..., 2].astype(np.int64), 0, 2)
    counts = np.stack([(v == k).sum(axis=0) for k in range(3)], axis=1)  # (K, 3)
    table = Table(title="keypoint visibility (COCO v) over person annotations")
    for col in ("joint", "v=0 (unlabelled)", "v=1 (occluded)", "v=2 (visible)"):
        table.add_column(col, justify="right" if col != "joint" else "left")
    for j, name in enumerate(KEYPOINT_NAMES):
        table.add_row(name, *(str(int(c)) for c in counts[j]))
    table.add_row("[bold]all[/]", *(f"[bold]{int(c)}[/]" for c in counts.sum(axis=0)))
    console.print(table)

    size = np.sqrt(np.maximum(inst.box[:, 2] * inst.box[:, 3], 0.0))
    edges = np.array(BOX_BINS)
    hist, _ = np.histogram(size, bins=edges)
    console.print("box size of usable instances (sqrt(w*h), image px):")
    top = max(int(hist.max()) if hist.size else 0, 1)
    for lo, hi, c in zip(edges[:-1], edges[1:], hist):
        label = f"{int(lo):>4}-{'' if np.isinf(hi) else int(hi):<4}"
        console.print(f"  {label} {int(c):>7} {'#' * int(round(40 * c / top))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Mount ``lrpose data`` on the main app."""
    app.add_typer(data_app, name="data")
