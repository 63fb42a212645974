"""THE coordinate convention of lrpose-bench, written once.

Pixel convention
    Every 2-D point in this project (image, input, heatmap space) is continuous ``(x, y)`` with pixel
    *centres at integer coordinates*: pixel ``(i, j)`` covers ``[i-0.5, i+0.5] x [j-0.5, j+0.5]``.
    An image of width ``W`` spans ``[-0.5, W-0.5]``. COCO keypoints are read in this convention (as UDP and
    MMPose do), and OpenCV's ``warpAffine`` samples in it, so crops and keypoints agree exactly.

Spaces
    * image:   pixels of the original photograph.
    * input:   pixels of the network input crop, size ``(w_in, h_in)`` (``--res WxH``).
    * heatmap: pixels of the network output, size ``(w_hm, h_hm)`` (``input / stride``).

Person box -> crop
    A COCO box ``(x, y, w, h)`` becomes a centre ``c = (x + w/2, y + h/2)`` and a *box size* ``s`` in image
    pixels: the box is widened or heightened to the input's aspect ratio, then multiplied by the padding
    (1.25). (HRNet stores ``s / 200``; we keep pixels.)

Image -> input (the crop affine), for a rotation ``theta`` (degrees, counter-clockwise as displayed):
    * biased (HRNet / SimpleBaseline):  ``q = (w_in / s_w) R (p - c) + (w_in/2, h_in/2)``
    * unbiased (UDP, "pixel as unit"):  ``q = ((w_in-1)/s_w, (h_in-1)/s_h) * R (p - c) + ((w_in-1)/2, (h_in-1)/2)``
    The biased map puts the box centre half a pixel off the crop's true centre ``((w_in-1)/2, ..)``;
    the unbiased map puts it exactly there, and maps the box edges onto the outer pixel centres.
    A horizontal flip is composed in input space as ``x' = (w_in - 1) - x`` (exact in this convention).

Input -> heatmap
    * biased:    ``h = q / stride`` with ``stride = w_in / w_hm`` (HRNet's ``feat_stride``).
    * unbiased:  ``h = q * (w_hm - 1) / (w_in - 1)`` (UDP).
    Both are per-axis linear maps ``h = q * scale + offset`` (:class:`AxisMap`).

All functions are batched: leading dimensions broadcast. Numpy is used where OpenCV consumes the result
(per-sample crops in data workers); torch versions serve the hot paths on the training device.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: Default padding applied to a person box before cropping (HRNet, UDP, MMPose).
BOX_PADDING: float = 1.25


# --------------------------------------------------------------------------------------------------
# Resolutions
# --------------------------------------------------------------------------------------------------
def parse_resolution(text: str) -> tuple[int, int]:
    """Parse a resolution as the paper writes it, *height x width*, into ``(width, height)``.

    ``"128x96"`` is 128 px high and 96 px wide (the 4:3 person crop of HRNet's ``256x192``); the returned
    ``(96, 128)`` is ``(width, height)``, the order every function in the project takes.
    """
    parts = text.lower().strip().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"resolution {text!r} is not of the form HxW with positive integers, e.g. 128x96")
    height, width = int(parts[0]), int(parts[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution {text!r} has a zero side; both sides must be positive, e.g. 128x96")
    return width, height


def format_resolution(size: Sequence[int]) -> str:
    """``(width, height)`` -> ``"HxW"`` as the paper writes it (``(96, 128)`` -> ``"128x96"``)."""
    return f"{int(size[1])}x{int(size[0])}"


# --------------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------------
def box_to_center_scale(
    boxes_xywh: np.ndarray, aspect_ratio: float, padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """COCO boxes ``(..., 4)`` (image px) -> centres ``(..., 2)`` and box sizes ``(..., 2)`` (image px).

    ``aspect_ratio`` is the input's ``width / height``; the box is enlarged (never shrunk) along one side to
    match it, then scaled by ``padding``.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    x, y, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    wider = w > aspect_ratio * h
    w2 = np.where(wider, w, h * aspect_ratio)
    h2 = np.where(wider, w / aspect_ratio, h)
    scale = np.stack([w2, h2], axis=-1) * padding
    return center, scale


# --------------------------------------------------------------------------------------------------
# Crop affine (image <-> input)
# --------------------------------------------------------------------------------------------------
def crop_matrix(
    center: np.ndarray,
    scale: np.ndarray,
    output_size: Sequence[int],
    rotation: np.ndarray | float = 0.0,
    unbiased: bool = False,
    flip: np.ndarray | bool = False,
) -> np.ndarray:
    """Affine matrices ``(..., 2, 3)`` mapping image px -> input px (float64).

    ``center``/``scale`` (``(..., 2)``, image px) describe the box; ``output_size = (w, h)`` the crop;
    ``rotation`` in degrees (counter-clockwise as displayed, y pointing down); ``flip`` mirrors the crop
    horizontally (``x' = w - 1 - x``). ``unbiased`` selects UDP's map (see module docstring).
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    w_out, h_out = float(output_size[0]), float(output_size[1])
    theta = np.deg2rad(np.asarray(rotation, dtype=np.float64))
    if unbiased:
        sx, sy = (w_out - 1.0) / scale[..., 0], (h_out - 1.0) / scale[..., 1]
        tx, ty = (w_out - 1.0) * 0.5, (h_out - 1.0) * 0.5
    else:
        sx, sy = w_out / scale[..., 0], h_out / scale[..., 1]
        tx, ty = w_out * 0.5, h_out * 0.5
    cos, sin = np.cos(theta), np.sin(theta)
    cos, sin = np.broadcast_to(cos, sx.shape), np.broadcast_to(sin, sx.shape)
    # Counter-clockwise on screen with y down: [x'; y'] = [[cos, sin], [-sin, cos]] [x; y].
    a = np.stack([np.stack([sx * cos, sx * sin], -1), np.stack([-sy * sin, sy * cos], -1)], -2)
    d = center[..., :, None]
    t = np.stack([np.full_like(sx, tx), np.full_like(sy, ty)], -1)[..., :, None] - a @ d
    matrix = np.concatenate([a, t], axis=-1)
    flip = np.broadcast_to(np.asarray(flip, dtype=bool), sx.shape)
    if flip.any():
        mirrored = matrix.copy()
        mirrored[..., 0, :] *= -1.0
        mirrored[..., 0, 2] += w_out - 1.0
        matrix = np.where(flip[..., None, None], mirrored, matrix)
    return matrix


def invert_affine(matrix: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Inverse of affine matrices ``(..., 2, 3)`` (numpy or torch, same type out)."""
    a, t = matrix[..., :2], matrix[..., 2:]
    if isinstance(matrix, torch.Tensor):
        a_inv = torch.linalg.inv(a)
        return torch.cat([a_inv, -a_inv @ t], dim=-1)
    a_inv = np.linalg.inv(a)
    return np.concatenate([a_inv, -a_inv @ t], axis=-1)


def apply_affine(points: np.ndarray | torch.Tensor, matrix: np.ndarray | torch.Tensor):
    """Apply ``(..., 2, 3)`` matrices to points ``(..., K, 2)``; numpy or torch, batched."""
    return points @ matrix[..., :2].swapaxes(-1, -2) + matrix[..., None, :, 2]


def warp_batch(images: torch.Tensor, matrix: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
    """Batched bilinear crop on the device: ``images (B,C,H,W)``, ``matrix (B,2,3)`` image->output px.

    Same sampling as ``cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT=0)`` in this pixel convention.
    """
    b, _, h_img, w_img = images.shape
    w_out, h_out = int(output_size[0]), int(output_size[1])
    inv = invert_affine(matrix.to(torch.float64))
    ys, xs = torch.meshgrid(
        torch.arange(h_out, dtype=torch.float64, device=images.device),
        torch.arange(w_out, dtype=torch.float64, device=images.device),
        indexing="ij",
    )
    grid = torch.stack([xs, ys], -1).reshape(1, -1, 2).expand(b, -1, -1)
    src = apply_affine(grid, inv)  # (B, N, 2) image px
    norm = torch.stack([(2 * src[..., 0] + 1) / w_img - 1, (2 * src[..., 1] + 1) / h_img - 1], -1)
    norm = norm.reshape(b, h_out, w_out, 2).to(images.dtype)
    return F.grid_sample(images, norm, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------------------------------
# Input <-> heatmap
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AxisMap:
    """Per-axis linear map between two pixel spaces: ``dst = src * scale + offset`` (``(x, y)`` pairs)."""

    scale: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Map ``(..., 2)`` points from the source to the destination space."""
        s, o = _axis_map_tensors(self.scale, self.offset, points.dtype, points.device)
        return points * s + o

    def inverse(self, points: torch.Tensor) -> torch.Tensor:
        """Map ``(..., 2)`` points from the destination back to the source space."""
        s, o = _axis_map_tensors(self.scale, self.offset, points.dtype, points.device)
        return (points - o) / s

    def then(self, other: "AxisMap") -> "AxisMap":
        """The composition ``other(self(p))``."""
        return AxisMap(
            scale=(self.scale[0] * other.scale[0], self.scale[1] * other.scale[1]),
            offset=(
                self.offset[0] * other.scale[0] + other.offset[0],
                self.offset[1] * other.scale[1] + other.offset[1],
            ),
        )


@functools.lru_cache(maxsize=256)
def _axis_map_tensors(scale: tuple[float, float], offset: tuple[float, float], dtype: torch.dtype,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """An :class:`AxisMap`'s scale and offset as ``(2,)`` tensors, made once per dtype and device (read-only:
    the codecs map a batch of joints every step, and two tensor constructions cost as much as the map)."""
    with torch.inference_mode(False):  # plain tensors even when first built under inference mode
        return (torch.tensor(scale, dtype=dtype, device=device), torch.tensor(offset, dtype=dtype, device=device))


def input_to_heatmap(input_size: Sequence[int], heatmap_size: Sequence[int], unbiased: bool) -> AxisMap:
    """The input px -> heatmap px map of the module docstring (biased ``/stride`` or UDP's ``(n-1)`` ratio)."""
    (w_in, h_in), (w_hm, h_hm) = input_size, heatmap_size
    if unbiased:
        return AxisMap(scale=((w_hm - 1) / (w_in - 1), (h_hm - 1) / (h_in - 1)))
    return AxisMap(scale=(w_hm / w_in, h_hm / h_in))


def upsample_map(low_size: Sequence[int], factor: float) -> AxisMap:
    """Low-res px -> high-res px for an image resized by ``factor`` with area-aligned pixels.

    This is what bicubic interpolation (``align_corners=False``) and pixel-shuffle super-resolution do:
    pixel edges line up, so ``x_hr = (x_lr + 0.5) * factor - 0.5``.
    """
    del low_size  # the map depends only on the factor; kept for a uniform signature
    return AxisMap(scale=(factor, factor), offset=(0.5 * factor - 0.5, 0.5 * factor - 0.5))


def flip_points(points: torch.Tensor | np.ndarray, width: int):
    """Mirror ``(..., 2)`` points horizontally inside an image of ``width`` px: ``x' = width - 1 - x``."""
    out = points.clone() if isinstance(points, torch.Tensor) else points.copy()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def rotation_matrix_2d(theta_deg: float) -> np.ndarray:
    """The 2x2 rotation used by :func:`crop_matrix` (counter-clockwise on screen, y down)."""
    t = math.radians(theta_deg)
    return np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
