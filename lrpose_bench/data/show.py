"""``lrpose data show``: a grid of dataset images with their ground-truth skeletons and the low-resolution
crops the network is given, as one PNG.

Each cell shows one image with every usable person's ground truth (the persons the benchmark trains and
evaluates on: non-crowd, labelled keypoints, a usable box) and, below it, the crops of its largest persons
at the input resolution, cut exactly as evaluation cuts them (:class:`~lrpose_bench.data.coco.CocoPoseDataset`
with ``train=False``: the box padded by 1.25 to the input's aspect ratio, the biased HRNet crop affine,
``lowres_protocol``), each twice, pixel for pixel (nearest-neighbour enlargement): as the network gets it,
and with the ground truth mapped into crop px. A dashed numbered frame on the image marks each crop's
extent.

Coordinates: image px and crop px both put pixel centres at integers, which is how ``imshow`` places
pixels, so keypoints are drawn at their annotated positions without any half-pixel shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lrpose_bench.keypoints import NUM_KEYPOINTS, SKELETON

if TYPE_CHECKING:
    from lrpose_bench.data.spec import DatasetSpec

#: Colours of the person's left side, right side and the middle (nose, the shoulder and hip bars); the
#: Okabe-Ito blue / vermillion / bluish green, readable on the embedded figures and on photographs.
SIDE_COLOURS: dict[str, str] = {"left": "#56B4E9", "right": "#E69F00", "middle": "#009E73"}
#: Frame and number colour of the crop extents drawn on the image.
CROP_FRAME_COLOUR = "#FFFFFF"
#: Cell size in inches (image part); the crops row below is ``CROP_ROW_INCHES`` high.
CELL_INCHES = 4.0
CROP_ROW_INCHES = 1.75
DPI = 110
MAX_IMAGES = 48
MAX_CROPS = 4


@dataclass(frozen=True)
class ShowResult:
    """What :func:`show_dataset` drew: the PNG, how many images and crops, and from how many images."""

    path: Path
    images: int
    crops: int
    available_images: int
    image_ids: tuple[int, ...]


def _side(j: int) -> str:
    """``left`` (odd COCO indices), ``right`` (even, > 0) or ``middle`` (the nose)."""
    return "middle" if j == 0 else ("left" if j % 2 == 1 else "right")


def _edge_colour(a: int, b: int) -> str:
    sa, sb = _side(a), _side(b)
    return SIDE_COLOURS[sa] if sa == sb else SIDE_COLOURS["middle"]


def draw_skeleton(ax: Any, kps: np.ndarray, linewidth: float = 1.6, markersize: float = 4.0) -> None:
    """Draw one person's ground truth on ``ax`` (data coordinates = px, pixel centres at integers).

    ``kps`` is ``(17, 3)``: x, y, COCO visibility. Limbs join labelled joints (``v > 0``); a visible joint
    (``v = 2``) is a filled dot, an occluded one (``v = 1``) a ring; each outlined in black for contrast.
    """
    import matplotlib.patheffects as pe

    outline = [pe.Stroke(linewidth=linewidth + 1.4, foreground="black"), pe.Normal()]
    v = kps[:, 2]
    for a, b in SKELETON:
        if v[a] > 0 and v[b] > 0:
            ax.plot(kps[[a, b], 0], kps[[a, b], 1], color=_edge_colour(a, b), linewidth=linewidth,
                    solid_capstyle="round", path_effects=outline, zorder=3)  # fmt: skip
    for j in range(NUM_KEYPOINTS):
        if v[j] <= 0:
            continue
        colour = SIDE_COLOURS[_side(j)]
        visible = v[j] >= 2
        ax.plot(kps[j, 0], kps[j, 1], "o", markersize=markersize, markerfacecolor=colour if visible else "none",
                markeredgecolor="black" if visible else colour, markeredgewidth=0.7 if visible else 1.3,
                zorder=4)  # fmt: skip


def _crop_outline(crop_to_image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The crop's extent in image px: its corners ``(-0.5, -0.5) .. (w - 0.5, h - 0.5)`` (crop px, pixel
    edges) mapped through the 2x3 affine ``crop_to_image``; ``(5, 2)``, closed."""
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5],
                        [-0.5, -0.5]])  # fmt: skip
    return corners @ crop_to_image[:, :2].T + crop_to_image[:, 2]


def _pick_images(used: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the image indices ``used`` (all if fewer), drawn with ``seed``, in file order."""
    if len(used) <= n:
        return np.sort(used)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(used, size=n, replace=False))


def show_dataset(
    spec: DatasetSpec,
    out: Path,
    split: str = "val",
    n: int = 12,
    crop_size: tuple[int, int] = (48, 64),
    seed: int = 0,
    crops_per_image: int = 2,
    lowres_protocol: str = "direct",
    columns: int | None = None,
) -> ShowResult:
    """Draw ``n`` images of ``split`` with their ground truth and their crops at ``crop_size`` into ``out`` (PNG).

    ``crop_size`` is ``(width, height)`` input px; ``seed`` chooses the images (among those with at least
    one usable person); ``crops_per_image`` largest persons (by box area) get two crop panels each (the
    input as it is, and with the ground truth); ``columns``
    cells per row (default: up to 4). Raises ``ValueError`` for bad arguments or a split without images to
    show, ``FileNotFoundError`` for a missing split.
    """
    import cv2
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    from lrpose_bench.data.coco import CocoPoseDataset
    from lrpose_bench.geometry import format_resolution
    from lrpose_bench.io import atomic_path

    if split not in ("train", "val"):
        raise ValueError(f"split {split!r} is not one of train, val")
    if not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"--n {n}: show between 1 and {MAX_IMAGES} images")
    if not 0 <= crops_per_image <= MAX_CROPS:
        raise ValueError(f"--crops {crops_per_image}: between 0 and {MAX_CROPS} crops per image")
    if split == "train" and not spec.has_train:
        raise FileNotFoundError(f"dataset {spec.root} has no train split (annotations/person_keypoints_train2017.json)")
    ann = spec.train_ann if split == "train" else spec.val_ann
    images = spec.train_images if split == "train" else spec.val_images
    assert ann is not None and images is not None
    w, h = int(crop_size[0]), int(crop_size[1])
    ds = CocoPoseDataset(ann, images, (w, h), unbiased=False, train=False, lowres_protocol=lowres_protocol)
    inst = ds.instances
    used = np.unique(inst.image_index)
    chosen = _pick_images(used, n, seed)

    cols = columns or min(4, len(chosen))
    rows = -(-len(chosen) // cols)
    crop_row = CROP_ROW_INCHES if crops_per_image else 0.0
    cell_h = CELL_INCHES + crop_row + 0.35
    fig = Figure(figsize=(cols * CELL_INCHES, rows * cell_h + 0.9), dpi=DPI)
    outer = GridSpec(rows, cols, figure=fig, left=0.01, right=0.99, bottom=0.01, top=1 - 0.9 / (rows * cell_h + 0.9),
                     wspace=0.06, hspace=0.12)  # fmt: skip
    n_crops = 0
    for cell, img_i in enumerate(chosen):
        idx = np.flatnonzero(inst.image_index == img_i)
        order = idx[np.argsort(-(inst.box[idx, 2] * inst.box[idx, 3]), kind="stable")]
        shown = order[:crops_per_image]
        if crops_per_image:
            inner = outer[cell // cols, cell % cols].subgridspec(
                2, 2 * crops_per_image, height_ratios=[CELL_INCHES, crop_row], hspace=0.08, wspace=0.05
            )
            ax = fig.add_subplot(inner[0, :])
        else:
            ax = fig.add_subplot(outer[cell // cols, cell % cols])
        path = ds.image_dir / ds.image_files[int(img_i)]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None:
            ax.text(0.5, 0.5, f"cannot read\n{path.name}", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), interpolation="antialiased")
        for k in idx:
            draw_skeleton(ax, inst.keypoints[k], linewidth=1.3, markersize=3.6)
        samples = [ds[int(k)] for k in shown]
        iw, ih = (int(v) for v in ds.image_sizes[int(img_i)])
        for num, sample in enumerate(samples, start=1):
            frame = _crop_outline(sample["crop_to_image"].numpy().astype(np.float64), w, h)
            ax.plot(frame[:, 0], frame[:, 1], "--", color=CROP_FRAME_COLOUR, linewidth=0.9, zorder=5)
            # the number inside the frame's top-left corner, kept inside the image
            tx = float(np.clip(frame[:, 0].min(), -0.5, iw - 0.5))
            ty = float(np.clip(frame[:, 1].min(), -0.5, ih - 0.5))
            ax.text(tx, ty, f"{num}", color="black", fontsize=7, fontweight="bold", va="top", ha="left", zorder=6,
                    clip_on=True, bbox=dict(boxstyle="square,pad=0.15", facecolor="white", edgecolor="none"))  # fmt: skip
        ax.set_xlim(-0.5, iw - 0.5)
        ax.set_ylim(ih - 0.5, -0.5)
        ax.set_title(f"{path.name}  ({len(idx)} person{'s' if len(idx) != 1 else ''}, {iw}x{ih} px)", fontsize=7.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_anchor("S")  # the image sits right above its crops
        for num, (k, sample) in enumerate(zip(shown, samples), start=1):
            crop = sample["image"].numpy().transpose(1, 2, 0)
            gt = inst.keypoints[int(k)].copy()
            gt[:, :2] = sample["keypoints"].numpy()
            inside = (gt[:, 0] >= -0.5) & (gt[:, 0] <= w - 0.5) & (gt[:, 1] >= -0.5) & (gt[:, 1] <= h - 0.5)
            gt[~inside, 2] = 0
            for half, title in enumerate((f"{num}: input", f"{num}: truth")):
                cax = fig.add_subplot(inner[1, 2 * (num - 1) + half])
                cax.imshow(crop, interpolation="nearest")
                if half:
                    draw_skeleton(cax, gt, linewidth=0.7, markersize=2.2)
                cax.set_xlim(-0.5, w - 0.5)
                cax.set_ylim(h - 0.5, -0.5)
                cax.set_xticks([])
                cax.set_yticks([])
                cax.set_title(title, fontsize=6.5, pad=1.5)
                cax.set_anchor("N")
            n_crops += 1
        if crops_per_image:
            for empty in range(2 * len(samples), 2 * crops_per_image):
                fig.add_subplot(inner[1, empty]).set_axis_off()
    res = format_resolution((w, h))
    fig.suptitle(
        f"{spec.name} {split}: {len(chosen)} of {len(used)} images with persons (seed {seed}). Ground truth: "
        f"blue = the person's left, orange = right, green = middle; dot = visible (v=2), ring = occluded (v=1).\n"
        f"Below each image: its largest persons as the {res} (HxW) crops the network is given "
        f"(evaluation crop, {lowres_protocol} protocol), pixel for pixel, as input and with the truth; "
        f"dashed frames = their extent.",
        fontsize=9, y=1 - 0.12 / (rows * cell_h + 0.9),
    )  # fmt: skip
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return ShowResult(out, len(chosen), n_crops, len(used), tuple(int(ds.image_ids[int(i)]) for i in chosen))
