"""Training augmentation of the person box (HRNet's recipe), drawn from a per-sample generator.

All randomness of a sample comes from ``numpy.random.default_rng([seed, epoch, index])``, so a sample is
the same in any worker, after a resume, and on any machine. :class:`SampleGenerators` hands out generators
in exactly that state without building one per sample (numpy's seeding costs about 5x the draws of a
sample): the ``SeedSequence`` hash of a whole epoch is computed at once with numpy arrays, and one
``PCG64`` per thread is set to each sample's state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

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


# --------------------------------------------------------------------------------------------------
# The same generators, cheaply
# --------------------------------------------------------------------------------------------------
_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1
# numpy's SeedSequence (NEP 19: its seeding algorithm is part of numpy's stream-compatibility promise).
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_POOL_SIZE = 4
# PCG64's 128-bit LCG multiplier.
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341


def _hash_consts(start: int, mult: int, n: int) -> list[np.uint32]:
    """The ``n`` successive hash constants ``start * mult**k`` (mod 2**32) of SeedSequence's hashmix."""
    out, h = [], start
    for _ in range(n):
        out.append(np.uint32(h))
        h = (h * mult) & _MASK32
    return out


#: hashmix of the pool (4 entropy words, then 12 cross mixes) and of generate_state (8 words).
_CONST_A = _hash_consts(_INIT_A, _MULT_A, _POOL_SIZE + _POOL_SIZE * (_POOL_SIZE - 1) + 1)
_CONST_B = _hash_consts(_INIT_B, _MULT_B, 9)


def seed_words(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """``SeedSequence([seed, epoch, i]).generate_state(4, np.uint64)`` for every ``i`` of ``indices``,
    computed on whole arrays; ``(N, 4)`` uint64. ``seed``, ``epoch`` and ``indices`` must lie in
    ``[0, 2**32)`` (one 32-bit entropy word each)."""
    n = len(indices)
    with np.errstate(over="ignore"):
        words = [np.full(n, seed, np.uint32), np.full(n, epoch, np.uint32),
                 np.asarray(indices).astype(np.uint32), np.zeros(n, np.uint32)]  # fmt: skip
        k = 0

        def hashmix(value: np.ndarray) -> np.ndarray:
            nonlocal k
            value = (value ^ _CONST_A[k]) * _CONST_A[k + 1]
            k += 1
            return value ^ (value >> np.uint32(16))

        pool = [hashmix(w) for w in words]
        for src in range(_POOL_SIZE):
            for dst in range(_POOL_SIZE):
                if src != dst:
                    mixed = np.uint32(_MIX_MULT_L) * pool[dst] - np.uint32(_MIX_MULT_R) * hashmix(pool[src])
                    pool[dst] = mixed ^ (mixed >> np.uint32(16))
        state = np.empty((n, 2 * _POOL_SIZE), np.uint32)
        for i in range(2 * _POOL_SIZE):
            value = (pool[i % _POOL_SIZE] ^ _CONST_B[i]) * _CONST_B[i + 1]
            state[:, i] = value ^ (value >> np.uint32(16))
    state = state.astype(np.uint64)
    return state[:, 0::2] | (state[:, 1::2] << np.uint64(32))  # little-endian uint32 pairs -> uint64


def pcg64_state(words: np.ndarray) -> dict[str, Any]:
    """The ``PCG64.state`` dict of ``PCG64(SeedSequence(...))`` whose generate_state(4, uint64) is ``words``."""
    w0, w1, w2, w3 = (int(v) for v in words)
    inc = ((((w2 << 64) | w3) << 1) | 1) & _MASK128
    state = (inc + ((w0 << 64) | w1)) & _MASK128  # one step from 0 (gives inc), plus the seed, ...
    state = (state * _PCG_MULT + inc) & _MASK128  # ... and one more step (pcg_setseq_128_srandom_r)
    return {"bit_generator": "PCG64", "state": {"state": state, "inc": inc}, "has_uint32": 0, "uinteger": 0}


class SampleGenerators:
    """``gens(epoch, index)``: a generator in the state of ``sample_rng(seed, epoch, index)``, for
    ``index < size``. The generator is one per thread, re-seated on every call: use it up before the
    next call on the same thread. Seeds or epochs outside ``[0, 2**32)`` fall back to :func:`sample_rng`."""

    def __init__(self, seed: int, size: int) -> None:
        self.seed, self.size = int(seed), int(size)
        self._table: tuple[int, np.ndarray] | None = None
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"seed": self.seed, "size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["seed"], state["size"])  # type: ignore[misc]

    def __call__(self, epoch: int, index: int) -> np.random.Generator:
        if not (0 <= self.seed <= _MASK32 and 0 <= epoch <= _MASK32 and 0 <= index < self.size):
            return sample_rng(self.seed, epoch, index)
        table = self._table
        if table is None or table[0] != epoch:
            table = (epoch, seed_words(self.seed, epoch, np.arange(self.size)))
            self._table = table
        gen = getattr(self._local, "gen", None)
        if gen is None:
            gen = self._local.gen = np.random.Generator(np.random.PCG64(0))
        gen.bit_generator.state = pcg64_state(table[1][index])
        return gen


# --------------------------------------------------------------------------------------------------
# The draws
# --------------------------------------------------------------------------------------------------
def _box_size(w: float, h: float, aspect_ratio: float, padding: float) -> tuple[float, float]:
    """:func:`~lrpose_bench.geometry.box_to_center_scale`'s box size for one box (image px), in floats."""
    if w > aspect_ratio * h:
        return w * padding, w / aspect_ratio * padding
    return h * aspect_ratio * padding, h * padding


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
    w, h = float(hi[0] - lo[0]), float(hi[1] - lo[1])
    if w <= 0 or h <= 0:
        return None
    center = pts.mean(axis=0)  # HRNet centres the half-body box on the joints' mean
    return center, np.array(_box_size(w, h, aspect_ratio, padding))


def draw_box(
    center: np.ndarray, scale: np.ndarray, joints: np.ndarray, visible: np.ndarray, config: AugmentConfig,
    rng: np.random.Generator, aspect_ratio: float, num_visible: int | None = None,
) -> tuple[float, float, float, float, float, bool, bool]:
    """:func:`augment_box` as plain floats: ``(cx, cy, sw, sh, rotation, flip, half_body)`` (image px,
    degrees). ``num_visible`` is ``visible.sum()`` when the caller has it."""
    half = False
    n_vis = int(visible.sum()) if num_visible is None else num_visible
    cx, cy, sw, sh = float(center[0]), float(center[1]), float(scale[0]), float(scale[1])
    if n_vis > config.half_body_min_joints and rng.random() < config.half_body_prob:
        hb = half_body_box(joints, visible, rng, aspect_ratio, config.half_body_padding)
        if hb is not None:
            (cx, cy), (sw, sh), half = hb[0].tolist(), hb[1].tolist(), True
    sf, rf = config.scale_factor, config.rotation_factor
    factor = min(max(rng.standard_normal() * sf + 1.0, 1.0 - sf), 1.0 + sf)  # = np.clip for finite values
    rot = min(max(rng.standard_normal() * rf, -2.0 * rf), 2.0 * rf)
    if rng.random() >= config.rotation_prob:
        rot = 0.0
    flip = bool(rng.random() < config.flip_prob)
    return cx, cy, sw * factor, sh * factor, float(rot), flip, half


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
    cx, cy, sw, sh, rot, flip, half = draw_box(center, scale, joints, visible, config, rng, aspect_ratio)
    return BoxAugmentation(np.array([cx, cy]), np.array([sw, sh]), rot, flip, half)
