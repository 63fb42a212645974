"""Training augmentation of the person box (HRNet's recipe), drawn from a per-sample generator.

All randomness of a sample comes from ``numpy.random.default_rng([seed, epoch, index])``, so a sample is
the same in any worker, after a resume, and on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrpose_bench.geometry import box_to_center_scale
from lrpose_bench.keypoints import LOWER_BODY, UPPER_BODY


@dataclass(frozen=True)
class AugmentConfig:
    """HRNet / SimpleBaseline training augmentation.

    ``scale_factor``: box size x ``clip(N(1, sf), 1-sf, 1+sf)``; ``rotation_factor`` (degrees):
    ``clip(N(0, rf), -2rf, 2rf)`` applied with ``rotation_prob``; horizontal flip with ``flip_prob``;
    half-body crop with ``half_body_prob`` when more than ``half_body_min_joints`` joints are labelled
    (box from the chosen half's joints, padded by ``half_body_padding``).
    """

    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5


@dataclass(frozen=True)
class BoxAugmentation:
    """One draw: the augmented box (image px), rotation (degrees, counter-clockwise) and flip."""

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flip: bool
    half_body: bool


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def half_body_box(
    joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator, aspect_ratio: float, padding: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """HRNet's half-body box: upper body (p 0.5, if > 2 joints) else lower body; ``None`` if < 2 joints.

    ``joints`` (K, 2) image px, ``visible`` (K,) bool. Returns centre and box size (image px).
    """
    upper = [j for j in UPPER_BODY if visible[j]]
    lower = [j for j in LOWER_BODY if visible[j]]
    if rng.random() < 0.5 and len(upper) > 2:  # HRNet draws randn() < 0.5 here; MMPose's fair coin is used
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    pts = joints[chosen]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    box = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
    if box[2] <= 0 or box[3] <= 0:
        return None
    center, scale = box_to_center_scale(box, aspect_ratio, padding)
    center = pts.mean(axis=0)  # HRNet centres the half-body box on the joints' mean
    return center, scale


def augment_box(
    center: np.ndarray,
    scale: np.ndarray,
    joints: np.ndarray,
    visible: np.ndarray,
    config: AugmentConfig,
    rng: np.random.Generator,
    aspect_ratio: float,
) -> BoxAugmentation:
    """Draw half-body, scale, rotation and flip for one sample (HRNet's order and rules)."""
    half = False
    if int(visible.sum()) > config.half_body_min_joints and rng.random() < config.half_body_prob:
        hb = half_body_box(joints, visible, rng, aspect_ratio, config.half_body_padding)
        if hb is not None:
            center, scale, half = hb[0], hb[1], True
    sf, rf = config.scale_factor, config.rotation_factor
    scale = scale * float(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    rot = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    if rng.random() >= config.rotation_prob:
        rot = 0.0
    flip = bool(rng.random() < config.flip_prob)
    return BoxAugmentation(np.asarray(center, np.float64), np.asarray(scale, np.float64), rot, flip, half)
