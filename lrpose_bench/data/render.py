"""Drawing for the embedded synthetic dataset: textured backgrounds and exact sub-pixel primitives.

Every primitive is drawn twice with identical rasterisation: once in colour on the RGB canvas and once with
an integer *label* on a ``uint16`` label map, so occlusion, silhouettes and visibility are read back exactly
from what was drawn. Points are image px in the project's convention (pixel centres at integers, as OpenCV
draws); they are quantised to ``1 / 2**SHIFT`` px and drawn with OpenCV's fixed-point ``shift`` argument,
so a disc drawn at a quantised point is centred on it to the sub-pixel. Primitives are flat-coloured, except
:meth:`Canvas.shaded_segment` (a limb shaded like a cylinder; the unmarked variant of the embedded data).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Fixed-point fraction bits for OpenCV drawing: coordinates are multiples of 1/16 px.
SHIFT: int = 4
ONE: int = 1 << SHIFT


def quantize(points: np.ndarray) -> np.ndarray:
    """Round image-px points to the drawing grid (multiples of ``1/16`` px); float64, exact in JSON."""
    return np.round(np.asarray(points, dtype=np.float64) * ONE) / ONE


def _fixed(point: np.ndarray) -> tuple[int, int]:
    return int(round(float(point[0]) * ONE)), int(round(float(point[1]) * ONE))


@dataclass
class Canvas:
    """An RGB image (H, W, 3) uint8 plus its label map (H, W) uint16 (0 = background)."""

    rgb: np.ndarray
    labels: np.ndarray

    def disc(self, center: np.ndarray, radius: float, colour: tuple[int, int, int], label: int) -> None:
        """Filled disc at a sub-pixel centre (image px), radius in px."""
        c, r = _fixed(center), max(1, int(round(radius * ONE)))
        cv2.circle(self.rgb, c, r, colour, -1, cv2.LINE_8, SHIFT)
        cv2.circle(self.labels, c, r, int(label), -1, cv2.LINE_8, SHIFT)

    def segment(self, a: np.ndarray, b: np.ndarray, width: float, colour: tuple[int, int, int], label: int) -> None:
        """A thick limb from ``a`` to ``b`` (image px): a quadrilateral with round caps, ``width`` px across."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        d = b - a
        n = float(np.hypot(*d))
        half = 0.5 * max(width, 1.0)
        if n > 1e-6:
            perp = np.array([-d[1], d[0]]) / n * half
            self.polygon(np.stack([a + perp, b + perp, b - perp, a - perp]), colour, label)
        self.disc(a, half, colour, label)
        self.disc(b, half, colour, label)

    def shaded_segment(
        self, a: np.ndarray, b: np.ndarray, width: float, colour: tuple[int, int, int], label: int, rim: float
    ) -> None:
        """:meth:`segment`'s exact pixels (and labels), shaded like a lit cylinder with hemispherical ends.

        A pixel's brightness is ``1 - rim * (d / half)**2`` of ``colour``, where ``d`` is the distance (px)
        from its centre (integer image px) to the axis ``a``-``b`` (the nearest point of the segment, so
        each round cap shades like a hemisphere centred on its end point) and ``half = width / 2``: a limb
        is brightest on its axis and darkest at its rim, and where a segment ends on another its cap's rim
        shows the end. The shading depends on ``d`` alone, so a mirror image shades the same way.
        """
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        h, w = self.labels.shape
        half = 0.5 * max(width, 1.0)
        scratch = np.zeros((h, w), np.uint8)
        mask = Canvas(scratch, scratch)  # colour and label drawn into one 1-channel scratch image
        mask.segment(a, b, width, (1, 1, 1), 1)  # exactly segment()'s rasterisation
        x0, y0 = (max(0, int(np.floor(min(a[k], b[k]) - half)) - 1) for k in (0, 1))
        x1, y1 = (min(lim, int(np.ceil(max(a[k], b[k]) + half)) + 2) for k, lim in ((0, w), (1, h)))
        if x1 <= x0 or y1 <= y0:
            return
        ys, xs = np.nonzero(mask.labels[y0:y1, x0:x1])
        if ys.size == 0:
            return
        ys, xs = ys + y0, xs + x0
        d = b - a
        dd = float(d @ d)
        px, py = xs - a[0], ys - a[1]
        t = np.clip((px * d[0] + py * d[1]) / dd, 0.0, 1.0) if dd > 1e-12 else np.zeros(xs.shape)
        dist = np.hypot(px - t * d[0], py - t * d[1])
        gain = 1.0 - rim * np.clip(dist / half, 0.0, 1.0) ** 2
        self.rgb[ys, xs] = np.clip(np.rint(gain[:, None] * np.asarray(colour, np.float64)), 0, 255).astype(np.uint8)
        self.labels[ys, xs] = label

    def ellipse(
        self, center: np.ndarray, axes: tuple[float, float], angle: float, colour: tuple[int, int, int], label: int
    ) -> None:
        """Filled ellipse at a sub-pixel centre (image px); semi-axes ``axes`` (px) along the direction
        ``angle`` (degrees, image x toward image y) and across it."""
        c = _fixed(center)
        ax = (max(1, int(round(axes[0] * ONE))), max(1, int(round(axes[1] * ONE))))
        cv2.ellipse(self.rgb, c, ax, float(angle), 0.0, 360.0, colour, -1, cv2.LINE_8, SHIFT)
        cv2.ellipse(self.labels, c, ax, float(angle), 0.0, 360.0, int(label), -1, cv2.LINE_8, SHIFT)

    def polygon(self, points: np.ndarray, colour: tuple[int, int, int], label: int) -> None:
        """Filled convex polygon, vertices (N, 2) in image px."""
        pts = np.round(np.asarray(points, np.float64) * ONE).astype(np.int32).reshape(1, -1, 2)
        cv2.fillPoly(self.rgb, pts, colour, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.labels, pts, int(label), cv2.LINE_8, SHIFT)


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured, noisy RGB background (H, W, 3) uint8: gradient + smooth noise + stripes + blobs + rods."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    c0, c1 = rng.uniform(20, 235, 3).astype(np.float32), rng.uniform(20, 235, 3).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = np.cos(ang) * xs + np.sin(ang) * ys
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    grid = rng.normal(0.0, 35.0, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3)).astype(np.float32)
    img += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        theta, period = rng.uniform(0, np.pi), rng.uniform(6, 40)
        phase = (np.cos(theta) * xs + np.sin(theta) * ys) * np.float32(2 * np.pi / period)
        img += (np.float32(rng.uniform(8, 30)) * np.sin(phase))[..., None] * rng.uniform(0.3, 1.0, 3).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):  # blobs
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(4, width // 4)), int(rng.integers(4, height // 4)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 5))):  # rods: limb-like distractors
        p = rng.uniform([0, 0], [width, height]).astype(int)
        q = (p + rng.normal(0, 40, 2)).astype(int)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(rng.integers(2, 10)), cv2.LINE_AA)
    # sensor-like noise: mostly luminance, same on every channel
    sigma = np.float32(rng.uniform(1.0, 4.0))
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * sigma
    return np.clip(img + noise, 0, 255).astype(np.uint8)
