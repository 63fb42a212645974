"""COCO person keypoints as top-down crops: annotation checks, person boxes, the crop, augmentation.

Coordinates follow :mod:`lrpose_bench.geometry` (pixel centres at integers). A sample's crop is
``cv2.warpAffine`` with the very matrix its keypoints go through (``crop_matrix``), so image and keypoints
cannot disagree; ``crop_to_image`` (its inverse) takes predictions in crop (input) px back to image px.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import struct
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lrpose_bench.data.augment import AugmentConfig, SampleGenerators, draw_box
from lrpose_bench.errors import UserInputError
from lrpose_bench.geometry import BOX_PADDING, apply_affine, box_to_center_scale, invert_affine
from lrpose_bench.io import read_json
from lrpose_bench.keypoints import FLIP_INDEX, NUM_KEYPOINTS

log = logging.getLogger(__name__)

LOWRES_PROTOCOLS: tuple[str, ...] = ("direct", "antialias")
#: ``antialias`` warps at this multiple of the crop size, then area-averages down.
ANTIALIAS_FACTOR: int = 4
#: ``cache_images`` refuses to hold more decoded pixels than this in memory (bytes; COCO train is ~100 GB).
MAX_IMAGE_CACHE_BYTES: int = 8 << 30
#: A labelled keypoint further than this outside the image extent ``[-0.5, W-0.5]`` is "outside" (px).
OUTSIDE_TOLERANCE: float = 0.5

#: More images than this fraction (and more than one) with another size than the annotation file gives is
#: an error (a wrong or resized image folder); fewer are skipped with a warning.
SIZE_MISMATCH_ERROR_FRACTION: float = 0.05
#: cv2 flags: colour, pixel rows as stored (the annotations' frame; HRNet reads images the same way).
_IMREAD_FLAGS: int = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
#: ``jpeg_reduced_decode``: the scale denominators libjpeg decodes at (its scaled IDCT), with their cv2 flags.
REDUCED_DECODE_FACTORS: tuple[int, ...] = (8, 4, 2)
_REDUCED_FLAGS: dict[int, int] = {
    2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION,
    4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_IGNORE_ORIENTATION,
    8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION,
}
_FLIP_ORDER: np.ndarray = np.asarray(FLIP_INDEX, np.int64)
#: Bytes at the end of a file searched for the JPEG end marker / the PNG IEND chunk.
_TAIL: int = 4096
_PROBLEM_TEXT = {
    "unreadable_images": "cannot be read as images",
    "truncated_images": "are truncated",
    "size_mismatch_images": "differ in size from the annotation file",
}
_PROBED: dict[tuple[str, int, int], Any] = {}

_WARNED_FILES: set[str] = set()
#: Decoded images (RGB uint8) by (path, mtime ns, size), shared by every dataset of this process that
#: caches images (a run's training and statistics datasets read the same split).
_DECODED: dict[tuple[str, int, int], np.ndarray | None] = {}


# --------------------------------------------------------------------------------------------------
# Annotation files
# --------------------------------------------------------------------------------------------------
def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


_NUMBER_TYPES = {int, float}


def _all_numbers(rows: list, width: int) -> bool:
    """Whether ``rows`` is a list of lists of ``width`` finite numbers (type checks at C speed)."""
    if not all(type(r) is list and len(r) == width for r in rows):
        return False
    if not set(map(type, itertools.chain.from_iterable(rows))) <= _NUMBER_TYPES:
        return False
    return bool(np.isfinite(np.asarray(rows, np.float64)).all()) if rows else True


def _duplicates(values: list) -> list:
    """Values that occur more than once (in first-seen order)."""
    if len(set(values)) == len(values):
        return []
    return [v for v, n in Counter(values).items() if n > 1]


def _shown(values: list, limit: int = 5) -> str:
    text = ", ".join(repr(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def load_annotation_file(path: Path) -> dict:
    """Read and check a COCO person-keypoint file; errors name the file, the field and the value.

    Checks: valid JSON object with ``images``/``annotations``/``categories`` lists; images with an integer
    ``id``, ``file_name``, ``width``, ``height``; no image id or file name twice, no annotation id twice;
    person annotations with ``id``, a known ``image_id``, ``bbox`` of 4 numbers and ``keypoints`` of 51
    numbers. One pass over the file, with the value checks done on whole columns.
    """
    path = Path(path)
    doc = read_json(path, "annotation file")
    if not isinstance(doc, dict):
        raise ValueError(f"annotation file {path}: top level is a {type(doc).__name__}, expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise ValueError(f"annotation file {path}: missing field '{key}' (COCO needs images, annotations, categories)")
        if not isinstance(doc[key], list):
            raise ValueError(f"annotation file {path}: field '{key}' is a {type(doc[key]).__name__}, expected a list")
    images, anns = doc["images"], doc["annotations"]
    for i, im in enumerate(images):
        if not isinstance(im, dict) or not _IMAGE_FIELDS <= im.keys():
            key = next(k for k in ("id", "file_name", "width", "height") if not isinstance(im, dict) or k not in im)
            raise ValueError(f"annotation file {path}: images[{i}] has no field '{key}'")
    ids = [im["id"] for im in images]
    if not set(map(type, ids)) <= {int}:
        i = next(i for i, v in enumerate(ids) if type(v) is not int)
        raise ValueError(f"annotation file {path}: images[{i}]: field 'id' = {ids[i]!r} is not an integer")
    if not _all_numbers([[im["width"], im["height"]] for im in images], 2) or any(
        im["width"] <= 0 or im["height"] <= 0 for im in images
    ):
        im = next(im for im in images if not (_is_number(im["width"]) and _is_number(im["height"])
                                              and im["width"] > 0 and im["height"] > 0))  # fmt: skip
        raise ValueError(
            f"annotation file {path}: image id {im['id']}: width/height = {im['width']!r}/{im['height']!r} "
            "are not positive numbers"
        )
    dup = _duplicates(ids)
    if dup:
        raise ValueError(
            f"annotation file {path}: image id(s) {_shown(dup)} appear more than once in 'images'; "
            "each image needs its own id (annotations would be drawn on the wrong photograph)"
        )
    names = [im["file_name"] for im in images]
    if not set(map(type, names)) <= {str}:
        i = next(i for i, v in enumerate(names) if not isinstance(v, str))
        raise ValueError(f"annotation file {path}: images[{i}]: field 'file_name' = {names[i]!r} is not a string")
    dup = _duplicates(names)
    if dup:
        raise ValueError(f"annotation file {path}: file_name(s) {_shown(dup)} appear more than once in 'images'")
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict) or "id" not in ann:
            raise ValueError(f"annotation file {path}: annotations[{i}] has no field 'id'")
    ann_ids = [ann["id"] for ann in anns]
    if not set(map(type, ann_ids)) <= {int}:
        i = next(i for i, v in enumerate(ann_ids) if type(v) is not int)
        raise ValueError(f"annotation file {path}: annotations[{i}]: field 'id' = {ann_ids[i]!r} is not an integer")
    dup = _duplicates(ann_ids)
    if dup:
        raise ValueError(f"annotation file {path}: annotation id(s) {_shown(dup)} appear more than once")
    persons = [ann for ann in anns if ann.get("category_id", 1) == 1]
    known = set(ids)
    if not all(ann.get("image_id") in known for ann in persons):
        ann = next(ann for ann in persons if ann.get("image_id") not in known)
        raise ValueError(
            f"annotation file {path}: annotation id {ann['id']}: field 'image_id' = {ann.get('image_id')!r} "
            "is not in 'images'"
        )
    if not _all_numbers([ann.get("bbox") for ann in persons], 4):
        ann = next(a for a in persons if not _all_numbers([a.get("bbox")], 4))
        raise ValueError(
            f"annotation file {path}: annotation id {ann['id']}: field 'bbox' = {ann.get('bbox')!r} is not 4 numbers"
        )
    if not _all_numbers([ann.get("keypoints") for ann in persons], 3 * NUM_KEYPOINTS):
        ann = next(a for a in persons if not _all_numbers([a.get("keypoints")], 3 * NUM_KEYPOINTS))
        kps = ann.get("keypoints")
        shown = f"{len(kps)} values" if isinstance(kps, list) else repr(kps)
        raise ValueError(
            f"annotation file {path}: annotation id {ann['id']}: field 'keypoints' = {shown} "
            f"is not {3 * NUM_KEYPOINTS} numbers ({NUM_KEYPOINTS} x [x, y, v])"
        )
    return doc


_IMAGE_FIELDS = frozenset(("id", "file_name", "width", "height"))


def build_coco(doc: dict):
    """A pycocotools ``COCO`` index over an already loaded document (its index messages silenced)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_detections(path: Path, image_ids: set[int], score_threshold: float) -> tuple[list[dict], dict[str, int]]:
    """Read COCO detection results (``image_id``, ``bbox`` xywh, ``score``, ``category_id`` 1).

    Keeps person detections with ``score >= score_threshold`` and a positive-area box on a known image.
    Returns the kept detections and counts of what was dropped.
    """
    path = Path(path)
    dets = read_json(path, "detection file")
    if not isinstance(dets, list):
        raise ValueError(f"detection file {path}: top level is a {type(dets).__name__}, expected a list of detections")
    kept: list[dict] = []
    counts = {"below_threshold": 0, "zero_area": 0, "unknown_image": 0, "other_category": 0}
    for i, det in enumerate(dets):
        if not isinstance(det, dict):
            raise ValueError(f"detection file {path}: entry [{i}] is a {type(det).__name__}, expected an object")
        for key in ("image_id", "bbox", "score"):
            if key not in det:
                raise ValueError(f"detection file {path}: entry [{i}] has no field '{key}'")
        bbox, score = det["bbox"], det["score"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise ValueError(f"detection file {path}: entry [{i}]: field 'bbox' = {bbox!r} is not 4 numbers")
        if not _is_number(score):
            raise ValueError(f"detection file {path}: entry [{i}]: field 'score' = {score!r} is not a number")
        if det.get("category_id", 1) != 1:
            counts["other_category"] += 1
        elif det["image_id"] not in image_ids:
            counts["unknown_image"] += 1
        elif score < score_threshold:
            counts["below_threshold"] += 1
        elif bbox[2] <= 0 or bbox[3] <= 0:
            counts["zero_area"] += 1
        else:
            kept.append(det)
    if dets and counts["unknown_image"] == len(dets):
        raise ValueError(
            f"detection file {path}: none of its {len(dets)} detections is on an image of the annotation file "
            f"(first image_id = {dets[0]['image_id']!r})"
        )
    return kept, counts


# --------------------------------------------------------------------------------------------------
# Image files
# --------------------------------------------------------------------------------------------------
class EmptyDatasetError(UserInputError):
    """A split with no usable person (the message names the file and why each annotation was skipped)."""


_JPEG_START, _PNG_START = b"\xff\xd8", b"\x89PNG\r\n\x1a\n"


def _is_truncated(head: bytes, tail: bytes) -> bool:
    """A JPEG without its end-of-image marker or a PNG without its IEND chunk near the end (libjpeg would
    fill the missing rows with grey and only print a warning)."""
    if head.startswith(_JPEG_START):
        return b"\xff\xd9" not in tail
    if head.startswith(_PNG_START):
        return b"IEND" not in tail
    return False


def probe_image(path: Path) -> tuple[int, int] | str | None:
    """``(width, height)`` of an image file from its header, ``"truncated"``, ``"unreadable"``, or None
    (readable, size unknown); remembered per (path, mtime, size) for the process."""
    try:
        st = path.stat()
    except OSError:
        return "unreadable"
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _PROBED:
        _PROBED[key] = _probe(path, st.st_size)
    return _PROBED[key]


def _probe(path: Path, size: int) -> tuple[int, int] | str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            f.seek(max(0, size - _TAIL))
            tail = f.read(_TAIL)
    except OSError:
        return "unreadable"
    if len(head) < 8:
        return "unreadable"
    if _is_truncated(head, tail):
        return "truncated"
    if head.startswith(_PNG_START) and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return (int(w), int(h))
    try:
        from PIL import Image

        with Image.open(path) as im:
            return (int(im.size[0]), int(im.size[1]))
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - not for PIL: let OpenCV decide
        img = cv2.imread(str(path), _IMREAD_FLAGS)
        return "unreadable" if img is None else (int(img.shape[1]), int(img.shape[0]))


# --------------------------------------------------------------------------------------------------
# Instances
# --------------------------------------------------------------------------------------------------
@dataclass
class Instances:
    """Person instances as parallel arrays (image px)."""

    image_index: np.ndarray  # (N,) int64 index into the image table
    box: np.ndarray  # (N, 4) float64 xywh
    keypoints: np.ndarray  # (N, K, 3) float64 x, y, v (outside-image joints set to v=0)
    area: np.ndarray  # (N,) float32
    ann_id: np.ndarray  # (N,) int64, -1 for detections
    score: np.ndarray  # (N,) float32
    counts: dict[str, int] = field(default_factory=dict)


def clean_box(box: np.ndarray, width: float, height: float) -> np.ndarray | None:
    """Clip ``xywh`` to the image's pixel centres ``[0, W-1] x [0, H-1]`` (HRNet's clean-bbox rule, without
    its extra 1 px shrink); ``None`` unless the clipped box has a positive width and height."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x1 + max(0.0, w)), min(height - 1.0, y1 + max(0.0, h))
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1])


#: Why a person annotation is not used, in the order the causes are tested (each is counted once, under
#: its first cause), with the words of the summary.
SKIP_CAUSES: dict[str, str] = {
    "crowd": "crowd regions",
    "no_keypoints": "no labelled keypoint",
    "zero_area_box": "a box of zero width/height inside the image",
    "missing_area": "no numeric 'area' field",
    "zero_area": "an 'area' <= 0",
}


def gt_instances(doc: dict, image_index: dict[int, int], source: str | os.PathLike = "") -> Instances:
    """Non-crowd person annotations with labelled keypoints, a usable box and a positive ``area`` (train and
    GT-box eval), as arrays in one pass. ``counts`` holds how many were skipped per cause
    (:data:`SKIP_CAUSES`) and ``keypoints_outside_image``; one warning (naming ``source``) sums them up."""
    persons = [a for a in doc["annotations"] if a.get("category_id", 1) == 1]
    n = len(persons)
    sizes = np.zeros((max(image_index.values(), default=-1) + 1, 2), np.float64)
    for im in doc["images"]:
        if im["id"] in image_index:
            sizes[image_index[im["id"]]] = (float(im["width"]), float(im["height"]))
    img = np.array([image_index[a["image_id"]] for a in persons], np.int64)
    kps = np.array([a["keypoints"] for a in persons], np.float64).reshape(n, NUM_KEYPOINTS, 3)
    bbox = np.array([a["bbox"] for a in persons], np.float64).reshape(n, 4)
    raw_area = [a.get("area") for a in persons]
    has_area = np.array([_is_number(v) for v in raw_area], bool)
    area = np.array([float(v) if ok else 0.0 for v, ok in zip(raw_area, has_area)], np.float64)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in persons], bool)
    w_img, h_img = sizes[img, 0], sizes[img, 1]
    # HRNet's clean-bbox rule (without its extra 1 px shrink): clip to the pixel centres [0, W-1] x [0, H-1]
    x1, y1 = np.maximum(bbox[:, 0], 0.0), np.maximum(bbox[:, 1], 0.0)
    x2 = np.minimum(w_img - 1.0, x1 + np.maximum(bbox[:, 2], 0.0))
    y2 = np.minimum(h_img - 1.0, y1 + np.maximum(bbox[:, 3], 0.0))
    tests = {
        "crowd": crowd,
        "no_keypoints": ~(kps[:, :, 2] > 0).any(axis=1),
        "zero_area_box": ~((x2 > x1) & (y2 > y1)),
        "missing_area": ~has_area,
        "zero_area": area <= 0,
    }
    keep = np.ones(n, bool)
    counts: dict[str, int] = {}
    for cause, failed in tests.items():
        hit = keep & failed
        counts[cause] = int(hit.sum())
        keep &= ~failed
    t = OUTSIDE_TOLERANCE
    x, y = kps[:, :, 0], kps[:, :, 1]
    out = (kps[:, :, 2] > 0) & (
        (x < -0.5 - t) | (x > w_img[:, None] - 0.5 + t) | (y < -0.5 - t) | (y > h_img[:, None] - 0.5 + t)
    ) & keep[:, None]
    counts["keypoints_outside_image"] = int(out.sum())
    kps[out, 2] = 0
    where = f"{source}: " if source else ""
    skipped = {c: counts[c] for c in SKIP_CAUSES if c != "crowd" and counts[c]}
    if skipped:
        log.warning("%sskipped %d of %d person annotations: %s", where, sum(skipped.values()), n,
                    ", ".join(f"{k} with {SKIP_CAUSES[c]}" for c, k in skipped.items()))  # fmt: skip
    if counts["keypoints_outside_image"]:
        log.warning("%s%d labelled keypoints lie outside their image; marked not visible", where,
                    counts["keypoints_outside_image"])  # fmt: skip
    box = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return Instances(
        image_index=img[keep],
        box=box[keep].reshape(-1, 4),
        keypoints=kps[keep].reshape(-1, NUM_KEYPOINTS, 3),
        area=area[keep].astype(np.float32),
        ann_id=np.array([a["id"] for a in persons], np.int64).reshape(n)[keep],
        score=np.ones(int(keep.sum()), np.float32),
        counts=counts,
    )


def skip_summary(counts: dict[str, int]) -> str:
    """``"3 crowd regions, 2 with no 'area' field"``: the non-zero skip causes of ``counts``."""
    parts = [f"{counts[c]} crowd regions" if c == "crowd" else f"{counts[c]} with {SKIP_CAUSES[c]}"
             for c in SKIP_CAUSES if counts.get(c)]  # fmt: skip
    return ", ".join(parts) or "none skipped"


def det_instances(dets: list[dict], image_index: dict[int, int], counts: dict[str, int]) -> Instances:
    """Detected person boxes (used as given, HRNet's detection setting)."""
    n = len(dets)
    box = np.array([d["bbox"] for d in dets], np.float64).reshape(n, 4)
    return Instances(
        image_index=np.array([image_index[d["image_id"]] for d in dets], np.int64),
        box=box,
        keypoints=np.zeros((n, NUM_KEYPOINTS, 3), np.float64),
        area=(box[:, 2] * box[:, 3]).astype(np.float32),
        ann_id=np.full(n, -1, np.int64),
        score=np.array([d["score"] for d in dets], np.float32),
        counts=counts,
    )


# --------------------------------------------------------------------------------------------------
# One sample's crop
# --------------------------------------------------------------------------------------------------
def crop_affine(
    cx: float, cy: float, sw: float, sh: float, w: int, h: int, rotation: float, unbiased: bool, flip: bool
) -> np.ndarray:
    """:func:`~lrpose_bench.geometry.crop_matrix` of one box, ``(2, 3)`` image px -> input px, in floats.

    The same operations in the same order (the translation with the same numpy product), so the matrix is
    the same to the bit; about 7x cheaper than the batched function on a single box. ``(cx, cy)`` centre and
    ``(sw, sh)`` box size in image px, ``(w, h)`` crop size in input px, ``rotation`` in degrees.
    """
    theta = rotation * (math.pi / 180.0)  # = np.deg2rad
    cos, sin = float(np.cos(theta)), float(np.sin(theta))
    if unbiased:
        sx, sy, tx, ty = (w - 1.0) / sw, (h - 1.0) / sh, (w - 1.0) * 0.5, (h - 1.0) * 0.5
    else:
        sx, sy, tx, ty = w / sw, h / sh, w * 0.5, h * 0.5
    a = np.array([[sx * cos, sx * sin], [-sy * sin, sy * cos]])
    matrix = np.empty((2, 3))
    matrix[:, :2] = a
    matrix[:, 2:] = np.array([[tx], [ty]]) - a @ np.array([[cx], [cy]])
    if flip:
        matrix[0] *= -1.0
        matrix[0, 2] += w - 1.0
    return matrix


def reduced_decode_factor(matrix: np.ndarray, lowres_protocol: str) -> int:
    """The largest libjpeg scale denominator (8, 4, 2, else 1) at which the decoded image still has at least
    one pixel per pixel that the warp samples (``matrix`` image px -> input px; ``antialias`` warps at
    :data:`ANTIALIAS_FACTOR` x the crop size)."""
    step = 1.0 / max(math.hypot(matrix[0, 0], matrix[0, 1]), math.hypot(matrix[1, 0], matrix[1, 1]))
    if lowres_protocol == "antialias":
        step /= ANTIALIAS_FACTOR
    return next((f for f in REDUCED_DECODE_FACTORS if step >= f), 1)


def reduced_matrix(matrix: np.ndarray, factor: int) -> np.ndarray:
    """``matrix`` (image px -> input px) for the image decoded at ``1/factor`` of its size.

    libjpeg's scaled IDCT makes reduced pixel ``q`` out of full pixels ``[f q, f q + f)``, so with pixel
    centres at integers full px ``p = f q + (f - 1) / 2``; the result is ``matrix`` composed with that map.
    """
    if factor == 1:
        return matrix
    out = matrix * float(factor)
    out[:, 2] = matrix[:, 2] + 0.5 * (factor - 1) * (matrix[:, 0] + matrix[:, 1])
    return out


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------
class CocoPoseDataset(torch.utils.data.Dataset):
    """Top-down person crops of a COCO keypoint file (see the module docstring for coordinates).

    ``crop_size = (w, h)`` input px; ``unbiased`` selects UDP's crop affine; ``train`` enables augmentation
    (``augment`` or the default :class:`AugmentConfig`); ``det_file`` switches evaluation to detected boxes
    (``score >= det_score_threshold``); ``lowres_protocol``: ``direct`` (bilinear warp straight to the crop,
    as the released CAL code) or ``antialias`` (warp at 4x, then area-average down); ``cache_images``
    decodes every used image once into memory (small datasets: the embedded default decodes a PNG in about
    6 ms, a crop costs 0.1 ms; loader workers forked afterwards share the decoded pages).
    ``jpeg_reduced_decode`` (images decoded per sample only; off by default) decodes a JPEG at 1/2, 1/4 or
    1/8 of its size when the warp samples the image that sparsely (:func:`reduced_decode_factor`): faster,
    but libjpeg's scaled IDCT averages the pixels first, so the crops are less aliased than the protocol's.

    Per sample, the box (image px) and the augmentation draw are those of ``default_rng([seed, epoch,
    index])`` (:class:`~lrpose_bench.data.augment.SampleGenerators` makes them without building a
    generator); the box geometry is computed for all instances at construction, so ``crop_size``,
    ``box_padding`` and ``instances`` are fixed once the dataset exists.
    """

    def __init__(
        self,
        ann_file: Path,
        image_dir: Path,
        crop_size: tuple[int, int],
        unbiased: bool,
        train: bool,
        augment: AugmentConfig | None = None,
        det_file: Path | None = None,
        det_score_threshold: float = 0.0,
        box_padding: float = BOX_PADDING,
        lowres_protocol: str = "direct",
        max_instances: int | None = None,
        seed: int = 0,
        cache_images: bool = False,
        jpeg_reduced_decode: bool = False,
    ) -> None:
        if lowres_protocol not in LOWRES_PROTOCOLS:
            raise ValueError(f"lowres_protocol = {lowres_protocol!r} is not one of {', '.join(LOWRES_PROTOCOLS)}")
        if len(crop_size) != 2 or min(int(crop_size[0]), int(crop_size[1])) < 2:
            raise ValueError(f"crop_size = {crop_size!r} must be (width, height) with both sides >= 2")
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (for {self.ann_file})")
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.unbiased = bool(unbiased)
        self.train = bool(train)
        self.augment = (augment or AugmentConfig()) if train else None
        self.box_padding = float(box_padding)
        self.lowres_protocol = lowres_protocol
        self.seed = int(seed)
        self.epoch = 0
        if jpeg_reduced_decode and cache_images:
            raise ValueError("jpeg_reduced_decode applies to images decoded per sample; it cannot be combined "
                             "with cache_images (set one of them to false)")
        self.jpeg_reduced_decode = bool(jpeg_reduced_decode)

        doc = load_annotation_file(self.ann_file)
        self._doc: dict | None = doc
        self._coco = None
        self.image_ids = np.array([im["id"] for im in doc["images"]], np.int64)
        self.image_files = [str(im["file_name"]) for im in doc["images"]]
        self.image_sizes = np.array([[im["width"], im["height"]] for im in doc["images"]], np.float64)
        index = {int(i): k for k, i in enumerate(self.image_ids)}
        if det_file is not None:
            if train:
                raise ValueError("detected boxes (det_file) are for evaluation; training uses ground-truth boxes")
            dets, counts = load_detections(Path(det_file), set(index), det_score_threshold)
            self.instances = det_instances(dets, index, counts)
            self.boxes = f"det:{Path(det_file).name}"
        else:
            self.instances = gt_instances(doc, index, self.ann_file)
            self.boxes = "gt"
        self.counts = dict(self.instances.counts)
        if max_instances is not None:
            self._truncate(int(max_instances))
        self._bad: frozenset[int] = frozenset()
        self._require_instances()
        self._check_images()
        self._prepare_samples()
        self._cache: dict[int, np.ndarray | None] | None = None
        if cache_images:
            self._fill_cache()

    # -- construction helpers ------------------------------------------------------------------------
    def _truncate(self, n: int) -> None:
        inst = self.instances
        for name in ("image_index", "box", "keypoints", "area", "ann_id", "score"):
            setattr(inst, name, getattr(inst, name)[:n])

    def _prepare_samples(self) -> None:
        """Per-instance constants of ``__getitem__``, for all instances at once: box centre and size
        (image px), labelled joints, the float32 fields, the samples' generators."""
        inst = self.instances
        w, h = self.crop_size
        self._center, self._scale = box_to_center_scale(inst.box, w / h, self.box_padding)
        self._labelled = inst.keypoints[:, :, 2] > 0
        self._num_labelled: list[int] = self._labelled.sum(axis=1).tolist()
        self._visible = self._labelled.astype(np.float32)
        self._gt_keypoints = inst.keypoints.astype(np.float32)
        self._image_index: list[int] = inst.image_index.tolist()
        self._generators = SampleGenerators(self.seed, len(self))

    def _require_instances(self) -> None:
        """No person to train on (or to evaluate) is an error naming the file and why each was skipped."""
        if len(self):
            return
        c = self.counts
        if self.boxes == "gt":
            why = skip_summary(c)
            total = sum(c.get(k, 0) for k in SKIP_CAUSES)
            raise EmptyDatasetError(
                f"annotation file {self.ann_file}: no usable person to {'train on' if self.train else 'use'} "
                f"(of {total} person annotations: {why}); fix the file or use another dataset"
            )
        dropped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items() if v) or "it holds none"
        raise EmptyDatasetError(f"detections {self.boxes[4:]}: no person box to evaluate ({dropped})")

    def _check_images(self) -> None:
        """Look at every image file an instance uses (once per process and file): missing, unreadable,
        truncated (a JPEG without its end marker, a PNG without IEND) or of another size than the JSON says.
        Such images are skipped (their samples have ``ok=False``) and counted; all of them missing is an error
        (wrong folder), and so are size mismatches past :data:`SIZE_MISMATCH_ERROR_FRACTION` of the images."""
        present = set(os.listdir(self.image_dir))
        used = np.unique(self.instances.image_index)
        missing = [int(i) for i in used if self.image_files[i] not in present]
        self.counts["missing_images"] = len(missing)
        if missing and len(missing) == len(used):
            raise FileNotFoundError(
                f"none of the {len(used)} images of {self.ann_file.name} is in {self.image_dir} "
                f"(e.g. file_name {self.image_files[missing[0]]!r})"
            )
        if missing:
            log.warning("%d images of %s are missing from %s (e.g. %s); their samples have ok=False",
                        len(missing), self.ann_file.name, self.image_dir, self.image_files[missing[0]])
        problems: dict[str, list[int]] = {"unreadable_images": [], "truncated_images": [], "size_mismatch_images": []}
        for i in used:
            if self.image_files[i] not in present:
                continue
            found = probe_image(self.image_dir / self.image_files[i])
            if found in ("unreadable", "truncated"):
                problems[f"{found}_images"].append(int(i))
            elif found is not None and tuple(found) != tuple(int(v) for v in self.image_sizes[i]):
                problems["size_mismatch_images"].append(int(i))
        for key, idx in problems.items():
            self.counts[key] = len(idx)
            if idx:
                log.warning("%s: %d image(s) %s (e.g. %s); their samples are skipped (ok=False)", self.ann_file.name,
                            len(idx), _PROBLEM_TEXT[key], self.image_dir / self.image_files[idx[0]])  # fmt: skip
        mismatch = problems["size_mismatch_images"]
        if len(mismatch) > max(1.0, SIZE_MISMATCH_ERROR_FRACTION * len(used)):
            i = mismatch[0]
            w, h = probe_image(self.image_dir / self.image_files[i])  # type: ignore[misc]
            raise ValueError(
                f"{len(mismatch)} of the {len(used)} images in {self.image_dir} differ in size from {self.ann_file} "
                f"(e.g. {self.image_files[i]}: {w}x{h} px in the file, "
                f"{int(self.image_sizes[i][0])}x{int(self.image_sizes[i][1])} in the JSON); "
                "wrong image folder, or resized images?"
            )
        bad = set(missing).union(*problems.values())
        self._bad = frozenset(bad)
        if bad and len(bad) == len(used):
            found = ", ".join(f"{len(v)} {_PROBLEM_TEXT[k]}" for k, v in problems.items() if v)
            raise ValueError(
                f"none of the {len(used)} images of {self.ann_file.name} in {self.image_dir} can be used "
                f"({len(missing)} missing{', ' + found if found else ''})"
            )

    def _fill_cache(self) -> None:
        """Decode every image an instance uses into ``self._cache`` (an error past MAX_IMAGE_CACHE_BYTES)."""
        used = np.unique(self.instances.image_index)
        need = int(np.sum(np.prod(self.image_sizes[used], axis=1))) * 3
        if need > MAX_IMAGE_CACHE_BYTES:
            raise ValueError(
                f"cache_images: the {len(used)} images of {self.ann_file.name} need {need / 2**30:.1f} GiB decoded "
                f"(limit {MAX_IMAGE_CACHE_BYTES / 2**30:.0f} GiB); set the hyper-parameter cache_images=false"
            )
        self._cache = {}
        pending: dict[tuple, int] = {}  # decoded-cache key -> image index, for images not decoded yet
        keys: dict[int, tuple] = {}
        for i in map(int, used):
            if i in self._bad:
                self._cache[i] = None
                continue
            path = self.image_dir / self.image_files[i]
            try:
                st = path.stat()
            except OSError:
                self._cache[i] = self._decode(i)  # missing: warns once, sample has ok=False
                continue
            keys[i] = (str(path), st.st_mtime_ns, st.st_size)
            if keys[i] not in _DECODED:
                pending.setdefault(keys[i], i)
        if pending:  # OpenCV decodes without the GIL: one thread per core this process may use
            from lrpose_bench.engine.env import usable_cpus

            with ThreadPoolExecutor(max(1, min(len(pending), usable_cpus()))) as pool:
                _DECODED.update(zip(pending, pool.map(self._decode, pending.values())))
        for i, key in keys.items():
            self._cache[i] = _DECODED[key]

    @property
    def coco(self):
        """pycocotools ``COCO`` of the annotation file (built on first use; not carried to workers)."""
        if self._coco is None:
            doc = self._doc if self._doc is not None else load_annotation_file(self.ann_file)
            self._coco = build_coco(doc)
        return self._coco

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_coco"] = None
        state["_doc"] = None
        return state

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call before each epoch; workers are re-created then)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.instances.box.shape[0])

    # -- one sample ----------------------------------------------------------------------------------
    def _read_image(self, i: int) -> np.ndarray | None:
        """Image ``i`` as RGB uint8 ``(H, W, 3)``, from the cache when there is one; None if unreadable."""
        if self._cache is not None:
            return self._cache[i]
        return self._decode(i)

    def _decode(self, i: int) -> np.ndarray | None:
        """Image ``i`` decoded (RGB), or None (one warning per file) when it is missing, undecodable,
        truncated or not of the size the JSON gives; images found bad at load time are not read again."""
        img = self._decode_bgr(i)[0]
        return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _decode_bgr(self, i: int, factor: int = 1) -> tuple[np.ndarray | None, int]:
        """Image ``i`` as OpenCV decodes it (BGR) and the factor it was reduced by: a JPEG at ``1/factor``
        of its size (``factor`` in 2, 4, 8; size ``ceil(W / factor) x ceil(H / factor)``), any other file
        at full size (factor 1). None as in :meth:`_decode`."""
        if i in self._bad:
            return None, 1
        path = self.image_dir / self.image_files[i]
        try:
            data = np.fromfile(str(path), np.uint8)
        except OSError:
            data = None
        why = "missing or unreadable"
        img = None
        if data is not None and data.size:
            head = data[:16].tobytes()
            if _is_truncated(head, data[-_TAIL:].tobytes()):
                why = "truncated"
            else:
                if factor not in _REDUCED_FLAGS or not head.startswith(_JPEG_START):
                    factor = 1
                img = cv2.imdecode(data, _REDUCED_FLAGS[factor] if factor > 1 else _IMREAD_FLAGS)
                why = "corrupt"
        full_w, full_h = (int(v) for v in self.image_sizes[i])
        if img is not None and (img.shape[1], img.shape[0]) != (-(-full_w // factor), -(-full_h // factor)):
            reduced = f" decoded at 1/{factor}" if factor > 1 else ""
            why = f"{img.shape[1]}x{img.shape[0]} px{reduced}, the JSON says {full_w}x{full_h}"
            img = None
        if img is None:
            key = str(path)
            if key not in _WARNED_FILES:
                _WARNED_FILES.add(key)
                log.warning("could not use image %s (%s); its samples have ok=False", path, why)
            return None, 1
        return img, factor

    def _warp(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        w, h = self.crop_size
        flags = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        if self.lowres_protocol == "direct":
            return cv2.warpAffine(image, matrix, (w, h), **flags)
        f = ANTIALIAS_FACTOR
        # big px = f * crop px + (f - 1) / 2: area-averaging f x f blocks then lands exactly on `matrix`.
        big = matrix * f
        big[:, 2] += 0.5 * (f - 1)
        large = cv2.warpAffine(image, big, (w * f, h * f), **flags)
        return cv2.resize(large, (w, h), interpolation=cv2.INTER_AREA)

    def sample_box(self, i: int) -> tuple[float, float, float, float, float, bool]:
        """Sample ``i``'s box after this epoch's draw: centre ``(cx, cy)`` and size ``(sw, sh)`` in image px,
        rotation (degrees) and flip; :func:`crop_affine` of it is the sample's crop matrix."""
        if self.augment is None:
            (cx, cy), (sw, sh) = self._center[i].tolist(), self._scale[i].tolist()
            return cx, cy, sw, sh, 0.0, False
        w, h = self.crop_size
        rng = self._generators(self.epoch, i)
        kps = self.instances.keypoints[i]
        cx, cy, sw, sh, rotation, flip, _ = draw_box(self._center[i], self._scale[i], kps[:, :2], self._labelled[i],
                                                     self.augment, rng, w / h, self._num_labelled[i])  # fmt: skip
        return cx, cy, sw, sh, rotation, flip

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        """One crop: ``image`` uint8 ``(3, h, w)`` RGB; ``keypoints`` ``(K, 2)`` input px and ``visibility``
        (after flip and crop); ``crop_to_image`` ``(2, 3)`` input px -> image px; the box ``center`` and
        ``scale`` (image px, augmented); ``gt_keypoints`` ``(K, 3)`` image px; ids, area, box score, ``ok``."""
        i = int(idx)
        w, h = self.crop_size
        kps = self.instances.keypoints[i]
        cx, cy, sw, sh, rotation, flip = self.sample_box(i)
        matrix = crop_affine(cx, cy, sw, sh, w, h, rotation, self.unbiased, flip)
        img_i = self._image_index[i]
        if self._cache is not None:  # decoded RGB images
            image = self._cache[img_i]
            ok = image is not None
            crop = self._warp(image, matrix) if ok else np.zeros((h, w, 3), np.uint8)
            chw = np.ascontiguousarray(crop.transpose(2, 0, 1))
        else:  # decode now (BGR: only the crop's channels are swapped, the same pixels as converting first)
            factor = reduced_decode_factor(matrix, self.lowres_protocol) if self.jpeg_reduced_decode else 1
            image, factor = self._decode_bgr(img_i, factor)
            ok = image is not None
            crop = self._warp(image, reduced_matrix(matrix, factor)) if ok else np.zeros((h, w, 3), np.uint8)
            chw = np.ascontiguousarray(crop.transpose(2, 0, 1)[::-1])
        points = apply_affine(kps[:, :2], matrix)
        vis = self._visible[i]
        if flip:
            points, vis = points[_FLIP_ORDER], vis[_FLIP_ORDER]
        inside = (points[:, 0] >= -0.5) & (points[:, 0] <= w - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] <= h - 0.5)
        vis = vis * inside * float(ok)
        inst = self.instances
        return {
            "image": torch.from_numpy(chw),
            "keypoints": torch.from_numpy(points.astype(np.float32)),
            "visibility": torch.from_numpy(vis),
            "image_id": torch.from_numpy(np.array(self.image_ids[img_i])),
            "ann_id": torch.from_numpy(np.array(inst.ann_id[i], np.int64)),
            "center": torch.from_numpy(np.array((cx, cy), np.float32)),
            "scale": torch.from_numpy(np.array((sw, sh), np.float32)),
            "crop_to_image": torch.from_numpy(invert_affine(matrix)),
            "area": torch.from_numpy(np.array(inst.area[i], np.float32)),
            "box_score": torch.from_numpy(np.array(inst.score[i], np.float32)),
            "gt_keypoints": torch.from_numpy(self._gt_keypoints[i].copy()),
            "ok": torch.from_numpy(np.array(ok)),
        }

    def describe(self) -> dict[str, Any]:
        """What a result record should say about this data: file, boxes, crop, protocol, counts."""
        return {
            "ann_file": str(self.ann_file),
            "boxes": self.boxes,
            "crop_size": list(self.crop_size),
            "unbiased": self.unbiased,
            "lowres_protocol": self.lowres_protocol,
            "jpeg_reduced_decode": self.jpeg_reduced_decode,
            "instances": len(self),
            "counts": dict(self.counts),
        }
