"""The embedded synthetic dataset: procedural COCO-format person keypoints, exact to the sub-pixel.

Each image (256-384 px a side) shows 1-3 colour-coded mannequins on a textured, noisy background. A figure
is a 17-joint kinematic skeleton in COCO order (head with nose/eyes/ears, torso, limbs as thick segments),
in a random view (front, back, profile), pose, size (small to filling the image), rotation and position.

Two variants (:data:`VARIANTS`) draw the same scenes (the same random draws, so image ``i`` of a split shows
the same figures in both):

- ``marked`` (the default): each joint is marked by a disc of its joint type's colour
  (:data:`JOINT_COLOURS`) at the annotated point; limbs are flat-coloured.
- ``unmarked``: no disc anywhere. Limbs are shaded like cylinders with hemispherical ends
  (:meth:`~lrpose_bench.data.render.Canvas.shaded_segment`), the lower segments (forearm, shin) darker than
  the upper ones (:data:`LOWER_SEGMENT_SHADE`), so a joint is the centre of the rounded end where two
  segments meet (shoulder, hip: where the upper segment starts over the torso; wrist, ankle: where the
  lower one ends). The face shows plain features instead of markers: dark eyes, a darker nose, ears as
  skin-coloured lobes (:func:`_draw_face_feature`), drawn where the keypoints are, as in a photograph.

Left and right are told apart the way they are in photographs, by cues that a mirror image carries over
consistently: the view (front: face visible, the person's left on the image right; back: hair, no face, left
on the image left) and, in profile, the facing direction with the near side drawn over the torso and the
far side shaded behind it (a person facing image-right shows the right side). Nothing mirror-invariant,
such as a colour, differs between a joint and its left/right partner: with a colour cue, training with
flip augmentation would label the same colour left in one sample and right in its mirror image
(generator version 1 did this, and left/right swaps dominated every method's errors at 64x48).

Annotations follow COCO: keypoints in image px (pixel centres at integers, multiples of 1/16 px),
``v = 2`` where the joint's own part is what is seen at the keypoint's pixel (marked: its disc; unmarked:
a limb segment ending at the joint, or the face feature; :func:`own_parts`), ``v = 1`` where a body part
(its own or another figure's) covers it, ``v = 0`` with ``x = y = 0`` outside the image; ``area`` is the
pixel count of the figure's visible silhouette, ``bbox`` its tight box (pixel edges), ``segmentation`` its
RLE. Generation is deterministic for a seed: image ``i`` of a split draws from
``numpy.random.default_rng([seed, split, i])``, and the PNG and JSON bytes are reproducible. The JSON's
``info`` names a non-default variant (``"variant": "unmarked"``), so the two variants' annotation files,
and with them the dataset content hashes, differ; the default's files carry no such key (they are
byte-identical to those written before the variants existed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lrpose_bench.data.render import Canvas, background, quantize
from lrpose_bench.keypoints import NUM_KEYPOINTS, PERSON_CATEGORY

#: Sizes of the embedded default (``lrpose`` with no ``--data``).
DEFAULT_TRAIN_IMAGES: int = 640
DEFAULT_VAL_IMAGES: int = 160
#: Bumped whenever the generator's output changes (part of the cache folder name).
GENERATOR_VERSION: int = 2
#: Generator variants; the first is the default (``lrpose --data embedded:VARIANT``; see the module docstring).
VARIANTS: tuple[str, ...] = ("marked", "unmarked")
DEFAULT_VARIANT: str = VARIANTS[0]

SPLITS: dict[str, int] = {"train": 0, "val": 1}
#: Image ids: ``SPLIT_ID_BASE[split] + i + 1``; annotation ids likewise, so ids are unique across splits.
SPLIT_ID_BASE: dict[str, int] = {"train": 1_000_000, "val": 2_000_000}

#: RGB marker colour of each joint type; a joint and its left/right partner share one (COCO order).
_TYPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "nose": (255, 255, 255), "eye": (0, 230, 255), "ear": (255, 120, 0), "shoulder": (0, 255, 120),
    "elbow": (255, 0, 255), "wrist": (255, 255, 0), "hip": (60, 60, 255), "knee": (255, 60, 60),
    "ankle": (120, 255, 0),
}  # fmt: skip
JOINT_COLOURS: np.ndarray = np.array(
    [_TYPE_COLOURS[t] for t in ["nose"] + [t for t in
     ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle") for _ in range(2)]],
    dtype=np.uint8,
)  # fmt: skip
#: Limb colour (jittered per figure); in profile the far side is drawn at FAR_SHADE of it, behind the torso.
LIMB_RGB = np.array([70, 90, 170], np.float64)
FAR_SHADE = 0.6
#: Head colours: skin (front, profile) and hair (back view, where the face is hidden).
SKIN_RGB_RANGE = ((150, 100, 70), (235, 190, 160))
HAIR_RGB_RANGE = ((20, 10, 5), (90, 60, 40))

LABELS_PER_PERSON = 64
PART_TORSO, PART_HEAD, PART_LIMB0 = 40, 41, 20
# Limbs (joint a, joint b, width in units of the figure height); index = limb id.
LIMBS: tuple[tuple[int, int, float], ...] = (
    (5, 7, 0.070), (7, 9, 0.060), (6, 8, 0.070), (8, 10, 0.060),
    (11, 13, 0.090), (13, 15, 0.075), (12, 14, 0.090), (14, 16, 0.075),
)  # fmt: skip
LEFT, RIGHT = 0, 1
LIMB_SIDE = (LEFT, LEFT, RIGHT, RIGHT, LEFT, LEFT, RIGHT, RIGHT)
SIDE_JOINTS = {LEFT: (5, 7, 9, 11, 13, 15), RIGHT: (6, 8, 10, 12, 14, 16)}
#: Unmarked variant: limb ids of the lower segments (forearms, shins), drawn at LOWER_SEGMENT_SHADE of the
#: side's limb colour; LIMB_RIM_SHADE: how much darker a limb's rim is than its axis (cylinder shading).
LOWER_LIMBS: frozenset[int] = frozenset({1, 3, 5, 7})
LOWER_SEGMENT_SHADE = 0.72
LIMB_RIM_SHADE = 0.45
#: Unmarked variant, face features (COCO 0-4) in units of the head radius: semi-axes (across the face, along
#: its up direction) and colour relative to the head colour; ears use EAR_SKIN_RGB under hair (back view).
FACE_FEATURES: dict[int, tuple[float, float, float]] = {
    0: (0.13, 0.19, 0.70), 1: (0.17, 0.10, 0.25), 2: (0.17, 0.10, 0.25), 3: (0.20, 0.30, 0.80), 4: (0.20, 0.30, 0.80),
}  # fmt: skip
FACE_FEATURE_MIN_PX = 0.8
EAR_SKIN_RGB = (190, 140, 110)


@dataclass
class Figure:
    """One sampled mannequin: joints (17, 2) image px (before visibility), drawing parameters."""

    joints: np.ndarray
    height: float
    head_center: np.ndarray
    head_radius: float
    torso: np.ndarray  # (4, 2) polygon
    view: str
    near_side: int  # side drawn on top (profile: the other side is behind the torso)
    face_hidden: tuple[int, ...]  # face joints behind the head (back view / profile)
    colours: dict = field(default_factory=dict)
    head_axis: np.ndarray | None = None  # unit vector (image px): the head's "right" (+x of its frame) in the image


@dataclass
class Scene:
    """A rendered image with its per-person annotations (image px, COCO visibility)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint16: person p (1-based) part q -> p*64 + q
    keypoints: np.ndarray  # (P, 17, 3) x, y, v (COCO: v=0 -> x=y=0)
    raw_joints: np.ndarray  # (P, 17, 2) drawn joint positions, also for v=0
    figures: list[Figure]


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def sample_figure(rng: np.random.Generator, width: int, height: int) -> Figure:
    """Sample a figure's pose, view, size, rotation and position (image of ``width x height`` px)."""
    h = float(np.exp(rng.uniform(np.log(0.18), np.log(1.1)))) * min(width, height) * rng.uniform(0.9, 1.15)
    view = str(rng.choice(["front", "back", "profile"], p=[0.4, 0.2, 0.4]))
    width_factor = 1.0 if view != "profile" else rng.uniform(0.25, 0.45)
    facing = float(rng.choice([-1.0, 1.0]))  # profile: direction the face points along +x of the body frame
    # +1: the person's left is on the image right (front view). In profile the side at +x is the near one,
    # and a person facing +x shows the right side: left_sign = -facing (v1 drew both chiralities).
    left_sign = {"front": 1.0, "back": -1.0}.get(view, -facing)
    lm = rng.uniform(0.9, 1.1, 6)  # limb length multipliers
    j = np.zeros((NUM_KEYPOINTS, 2))
    lean = rng.normal(0.0, 10.0)
    up = _rot(np.array([0.0, -1.0]), lean)
    right = np.array([-up[1], up[0]])  # image-right of the torso when upright
    pelvis = np.zeros(2)
    neck = pelvis + up * 0.30 * lm[0]
    sw, hw = 0.11 * width_factor, 0.075 * width_factor
    j[5] = neck - up * 0.03 + right * sw * left_sign
    j[6] = neck - up * 0.03 - right * sw * left_sign
    j[11] = pelvis + right * hw * left_sign
    j[12] = pelvis - right * hw * left_sign
    for s, (sh, el, wr, hip, kn, an) in ((1.0, (5, 7, 9, 11, 13, 15)), (-1.0, (6, 8, 10, 12, 14, 16))):
        side = s * left_sign  # +1: this body side lies toward image-right (front view)
        if view == "profile":
            arm = rng.uniform(-130, 170) * facing
            leg = rng.uniform(-60, 100) * facing
            bend_arm = rng.uniform(0, 140) * facing
            bend_leg = -rng.uniform(0, 120) * facing
        else:
            arm = rng.uniform(-40, 170) * side
            leg = rng.uniform(-15, 55) * side
            bend_arm = rng.uniform(-60, 150) * side
            bend_leg = rng.uniform(-40, 100) * float(rng.choice([-1.0, 1.0]))
        down = -up
        upper = _rot(down, -arm)
        j[el] = j[sh] + upper * 0.16 * lm[1]
        j[wr] = j[el] + _rot(upper, -bend_arm) * 0.14 * lm[2]
        thigh = _rot(down, -leg)
        j[kn] = j[hip] + thigh * 0.23 * lm[3]
        j[an] = j[kn] + _rot(thigh, -bend_leg) * 0.22 * lm[4]
    head_up = _rot(up, rng.normal(0.0, 15.0))
    head_right = np.array([-head_up[1], head_up[0]])
    r = 0.065 * lm[5]
    hc = neck + head_up * 0.10
    hidden: tuple[int, ...] = ()
    dn = -head_up
    if view in ("front", "back"):
        j[0] = hc + dn * 0.25 * r
        j[1] = hc + head_right * 0.38 * r * left_sign - dn * 0.15 * r
        j[2] = hc - head_right * 0.38 * r * left_sign - dn * 0.15 * r
        j[3] = hc + head_right * 0.95 * r * left_sign + dn * 0.05 * r
        j[4] = hc - head_right * 0.95 * r * left_sign + dn * 0.05 * r
        if view == "back":
            hidden = (0, 1, 2)
    else:
        near_is_left = left_sign > 0  # in profile, the side at +right is the near side
        near_eye, far_eye, near_ear, far_ear = (1, 2, 3, 4) if near_is_left else (2, 1, 4, 3)
        f = head_right * facing
        j[0] = hc + f * 1.0 * r + dn * 0.15 * r
        j[near_eye] = hc + f * 0.55 * r - dn * 0.2 * r
        j[far_eye] = hc + f * 0.75 * r - dn * 0.25 * r
        j[near_ear] = hc - f * 0.15 * r
        j[far_ear] = hc - f * 0.05 * r - dn * 0.05 * r
        hidden = (far_eye, far_ear)
    half_t = max(0.06, 0.12 * width_factor)
    half_b = max(0.05, 0.10 * width_factor)
    torso = np.stack([neck + right * half_t, neck - right * half_t, pelvis - right * half_b, pelvis + right * half_b])
    torso = torso - up * 0.02 * np.array([1, 1, -1, -1])[:, None]
    # global similarity: scale to px, rotate, translate the pelvis into the image (figures may leave it)
    angle = rng.normal(0.0, 8.0) if rng.random() < 0.8 else rng.uniform(-180.0, 180.0)
    origin = rng.uniform([0.1 * width, 0.15 * height], [0.9 * width, 0.95 * height])

    def place(p: np.ndarray) -> np.ndarray:
        t = math.radians(angle)
        m = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) * h
        return p @ m.T + origin

    near = LEFT if left_sign > 0 else RIGHT
    if view == "front" or view == "back":
        near = int(rng.integers(0, 2))  # side drawn last (it may cross the other)
    limb = np.clip(LIMB_RGB + rng.uniform(-30, 30, 3), 0, 255)
    shade = {near: 1.0, 1 - near: FAR_SHADE if view == "profile" else 1.0}
    head_range = HAIR_RGB_RANGE if view == "back" else SKIN_RGB_RANGE
    colours = {
        LEFT: tuple(int(c) for c in limb * shade[LEFT]),
        RIGHT: tuple(int(c) for c in limb * shade[RIGHT]),
        "torso": tuple(int(c) for c in rng.integers(40, 200, 3)),
        "head": tuple(int(c) for c in rng.uniform(*head_range)),
    }
    axis = place(hc + head_right) - place(hc)
    return Figure(
        joints=quantize(place(j)),
        height=h,
        head_center=place(hc),
        head_radius=r * h,
        torso=place(torso),
        view=view,
        near_side=near,
        face_hidden=hidden,
        colours=colours,
        head_axis=axis / max(float(np.hypot(*axis)), 1e-12),
    )


def check_variant(variant: str) -> str:
    """``variant`` if it is a generator variant (:data:`VARIANTS`), else ``ValueError`` listing them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown embedded data variant {variant!r}; valid: {', '.join(VARIANTS)}")
    return variant


def _draw_figure(canvas: Canvas, fig: Figure, person: int, variant: str = DEFAULT_VARIANT) -> None:
    """Draw one figure back to front; label = person * 64 + part (joint discs and face features: part =
    joint index; limb segment ``li``: ``PART_LIMB0 + li``). ``variant``: see the module docstring."""
    base = person * LABELS_PER_PERSON
    h = fig.height
    marked = variant == "marked"
    disc_r = max(1.6, 0.022 * h)
    face_r = max(1.2, 0.14 * fig.head_radius)
    far = 1 - fig.near_side
    items: list[tuple[float, int, object]] = []  # (depth, order, drawing closure)
    profile = fig.view == "profile"
    for side in (LEFT, RIGHT):
        depth = (0.0 if side == far else 3.0) if profile else (3.0 if side == far else 3.2)
        for li, (a, b, w) in enumerate(LIMBS):
            if LIMB_SIDE[li] == side:
                items.append((depth, li, ("seg", a, b, w * h, fig.colours[side], base + PART_LIMB0 + li)))
        if marked:
            for jt in SIDE_JOINTS[side]:
                items.append((depth + 0.1, jt, ("disc", jt, disc_r)))
    items.append((1.0, 0, ("poly", fig.torso, fig.colours["torso"], base + PART_TORSO)))
    items.append((2.0, 0, ("head",)))
    for jt in range(5):
        items.append((1.5 if jt in fig.face_hidden else 2.5, jt, ("disc", jt, face_r) if marked else ("face", jt)))
    for _, _, it in sorted(items, key=lambda t: (t[0], t[1])):
        kind = it[0]
        if kind == "seg":
            _, a, b, w, col, lab = it
            if marked:
                canvas.segment(fig.joints[a], fig.joints[b], w, col, lab)
            else:
                li = lab - base - PART_LIMB0
                shade = LOWER_SEGMENT_SHADE if li in LOWER_LIMBS else 1.0
                col = tuple(int(round(c * shade)) for c in col)
                canvas.shaded_segment(fig.joints[a], fig.joints[b], w, col, lab, LIMB_RIM_SHADE)
        elif kind == "disc":
            _, jt, r = it
            canvas.disc(fig.joints[jt], r, tuple(int(c) for c in JOINT_COLOURS[jt]), base + jt)
        elif kind == "face":
            _draw_face_feature(canvas, fig, it[1], base + it[1])
        elif kind == "poly":
            _, pts, col, lab = it
            canvas.polygon(pts, col, lab)
        else:
            canvas.disc(fig.head_center, fig.head_radius, fig.colours["head"], base + PART_HEAD)


def _draw_face_feature(canvas: Canvas, fig: Figure, joint: int, label: int) -> None:
    """Unmarked variant: face joint ``joint`` (COCO 0-4) as a plain feature centred on its keypoint (image px):
    an ellipse (:data:`FACE_FEATURES`) oriented with the head, in a shade of the head colour (eyes dark, nose
    darker skin, ears skin lobes; under hair the ears are EAR_SKIN_RGB). Left and right features are alike."""
    across, along, tone = FACE_FEATURES[joint]
    r = fig.head_radius
    axes = (max(FACE_FEATURE_MIN_PX, across * r), max(FACE_FEATURE_MIN_PX, along * r))
    axis = fig.head_axis if fig.head_axis is not None else np.array([1.0, 0.0])
    angle = math.degrees(math.atan2(float(axis[1]), float(axis[0])))
    skin = EAR_SKIN_RGB if (joint in (3, 4) and fig.view == "back") else fig.colours["head"]
    colour = tuple(int(round(c * tone)) for c in skin)
    canvas.ellipse(fig.joints[joint], axes, angle, colour, label)


def own_parts(variant: str = DEFAULT_VARIANT) -> np.ndarray:
    """``(17, 2)`` int64: the part ids (label ``= person * 64 + part``) that make joint ``j`` visible
    (``v = 2``) when one of them is what its keypoint pixel shows; ``-1`` pads. Marked: the joint's disc
    (part ``j``). Unmarked: the limb segments that end at the joint, or (face) the joint's feature."""
    parts = np.full((NUM_KEYPOINTS, 2), -1, np.int64)
    parts[:, 0] = np.arange(NUM_KEYPOINTS)
    if check_variant(variant) == "marked":
        return parts
    ends: dict[int, list[int]] = {}
    for li, (a, b, _) in enumerate(LIMBS):
        ends.setdefault(a, []).append(PART_LIMB0 + li)
        ends.setdefault(b, []).append(PART_LIMB0 + li)
    for jt, ids in ends.items():
        parts[jt, : len(ids)] = ids
    return parts


def joint_pixel(points: np.ndarray) -> np.ndarray:
    """The pixel (integer, ``floor(p + 0.5)``) containing each image-px point ``(..., 2)``."""
    return np.floor(np.asarray(points) + 0.5).astype(np.int64)


def render_scene(
    rng: np.random.Generator, width: int, height: int, num_persons: int, variant: str = DEFAULT_VARIANT
) -> Scene:
    """Render ``num_persons`` figures over a background and derive COCO keypoints with visibility.

    ``variant`` changes only the drawing, never the random draws: both variants of a scene show the same
    figures at the same keypoints (image px)."""
    check_variant(variant)
    canvas = Canvas(background(rng, width, height), np.zeros((height, width), np.uint16))
    figures = [sample_figure(rng, width, height) for _ in range(num_persons)]
    for p, fig in enumerate(figures, start=1):
        _draw_figure(canvas, fig, p, variant)
    raw = np.stack([f.joints for f in figures]) if figures else np.zeros((0, NUM_KEYPOINTS, 2))
    pix = joint_pixel(raw)
    inside = (pix[..., 0] >= 0) & (pix[..., 0] < width) & (pix[..., 1] >= 0) & (pix[..., 1] < height)
    px, py = np.clip(pix[..., 0], 0, width - 1), np.clip(pix[..., 1], 0, height - 1)
    seen = canvas.labels[py, px].astype(np.int64)
    parts = own_parts(variant)  # (17, 2), -1 pads
    own = np.arange(1, len(figures) + 1)[:, None, None] * LABELS_PER_PERSON + parts[None]  # (P, 17, 2)
    hit = ((seen[..., None] == own) & (parts[None] >= 0)).any(axis=-1)
    v = np.where(inside, np.where(hit, 2, 1), 0)
    kps = np.concatenate([np.where(inside[..., None], raw, 0.0), v[..., None].astype(np.float64)], axis=-1)
    return Scene(canvas.rgb, canvas.labels, kps, raw, figures)


def _scene_for(seed: int, split: str, index: int, variant: str = DEFAULT_VARIANT) -> Scene:
    rng = np.random.default_rng([seed, SPLITS[split], index])
    width, height = int(rng.integers(256, 385)), int(rng.integers(256, 385))
    num = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    return render_scene(rng, width, height, num, variant)


def scene_for(seed: int, split: str, index: int, variant: str = DEFAULT_VARIANT) -> Scene:
    """The scene of image ``index`` (0-based) of ``split`` for ``seed``: exactly what the generator writes."""
    return _scene_for(seed, split, index, check_variant(variant))


def _annotations(scene: Scene, image_id: int, next_ann_id: int) -> list[dict]:
    from pycocotools import mask as mask_utils

    anns = []
    person_of = scene.labels // LABELS_PER_PERSON
    for p in range(scene.keypoints.shape[0]):
        mask = person_of == p + 1
        area = int(mask.sum())
        if area == 0:
            continue  # fully covered or outside the image: COCO has no annotation for it
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        kp = scene.keypoints[p]
        flat: list[float | int] = []
        for x, y, v in kp:
            flat += [float(x), float(y), int(v)]
        anns.append(
            {
                "id": next_ann_id + len(anns),
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "area": area,
                # pixel edges in the pixel-centre convention: pixel i spans [i - 0.5, i + 0.5]
                "bbox": [float(x0) - 0.5, float(y0) - 0.5, float(x1 - x0 + 1), float(y1 - y0 + 1)],
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "keypoints": flat,
                "segmentation": {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")},
            }
        )
    return anns


def _render_image(job: tuple[str, int, str, int, str]) -> tuple[dict, list[dict]]:
    """Render image ``index`` of ``split``, write its PNG into ``img_dir``; return image entry + annotations."""
    img_dir, seed, split, index, variant = job
    scene = _scene_for(seed, split, index, variant)
    image_id = SPLIT_ID_BASE[split] + index + 1
    name = f"{image_id:012d}.png"
    ok, buf = cv2.imencode(".png", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"could not encode synthetic image {name}")
    (Path(img_dir) / name).write_bytes(buf.tobytes())
    h, w = scene.image.shape[:2]
    return {"id": image_id, "file_name": name, "width": int(w), "height": int(h)}, _annotations(scene, image_id, 0)


def _write_split(
    root: Path, split: str, num_images: int, seed: int, workers: int, advance, variant: str = DEFAULT_VARIANT
) -> None:
    img_dir = root / f"{split}2017"
    img_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(img_dir), seed, split, i, variant) for i in range(num_images)]
    images, annotations = [], []
    if workers > 1 and num_images >= 64:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.imap(_render_image, jobs, chunksize=16)
            for entry, anns in results:
                images.append(entry)
                annotations.append(anns)
                advance()
    else:
        for job in jobs:
            entry, anns = _render_image(job)
            images.append(entry)
            annotations.append(anns)
            advance()
    flat: list[dict] = []
    for anns in annotations:  # ids in image order, unique across splits
        for ann in anns:
            ann["id"] = SPLIT_ID_BASE[split] + len(flat) + 1
            flat.append(ann)
    info: dict = {"description": "lrpose-bench embedded synthetic person keypoints", "version": GENERATOR_VERSION,
                  "seed": seed, "split": split}
    if variant != DEFAULT_VARIANT:  # the default's bytes (and dataset hash) stay those of generator v2
        info["variant"] = variant
    doc = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": flat,
        "categories": [PERSON_CATEGORY],
    }
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / f"person_keypoints_{split}2017.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def generate_dataset(
    out_dir: Path,
    num_train: int,
    num_val: int,
    seed: int,
    overwrite: bool = False,
    progress: bool = False,
    variant: str = DEFAULT_VARIANT,
) -> Path:
    """Write a synthetic COCO root (``train2017/``, ``val2017/``, ``annotations/``) to ``out_dir``; returns it.

    Atomic: the data is written into a temporary sibling folder and renamed into place. An existing
    non-empty ``out_dir`` is refused (``FileExistsError``) unless ``overwrite``. ``progress`` shows a rich bar.
    ``variant``: one of :data:`VARIANTS` (``ValueError`` otherwise).
    """
    check_variant(variant)
    out_dir = Path(out_dir).expanduser()
    if num_train < 0 or num_val < 0:
        raise ValueError(f"image counts must be >= 0, got train={num_train}, val={num_val}")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"output path exists and is not a folder: {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder is not empty: {out_dir} (use --force to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        _generate_into(tmp, num_train, num_val, seed, progress, variant=variant)
        install_folder(tmp, out_dir, replace=overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _generate_into(
    root: Path,
    num_train: int,
    num_val: int,
    seed: int,
    progress: bool,
    workers: int | None = None,
    variant: str = DEFAULT_VARIANT,
) -> None:
    """Write both splits into ``root`` (``workers`` processes; default: up to 4, bounded by the CPUs)."""
    check_variant(variant)
    if workers is None:
        workers = max(1, min(4, os.cpu_count() or 1))
    splits = (("train", num_train), ("val", num_val))
    if not progress:
        for split, n in splits:
            _write_split(root, split, n, seed, workers, lambda: None, variant)
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        for split, n in splits:
            task = bar.add_task(f"synthesising {split} images", total=n)
            _write_split(root, split, n, seed, workers, lambda: bar.advance(task), variant)


def install_folder(tmp: Path, target: Path, replace: bool = False) -> bool:
    """Rename the finished folder ``tmp`` to ``target``; returns False if another writer got there first.

    With ``replace`` an existing ``target`` is moved aside and deleted after the rename.
    """
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    old = None
    if replace and target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if target.is_dir():  # lost a race: somebody else installed it
            return False
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return True
