"""The COCO-17 left/right table written out as literals, independent of ``FLIP_INDEX``.

Flip tests elsewhere build both their expected and their actual values through ``FLIP_INDEX``, so a
wrong table passes them. Here the table is written by hand: joint order, the permutation, the named
pairs; then the three places that use it (training flip augmentation, the flip test's merge, the
inversion error type) are checked against the literal permutation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lrpose_bench import keypoints as kp

#: COCO's ``categories[0].keypoints`` (person_keypoints_*2017.json).
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

#: After a horizontal flip, joint ``j`` of the mirrored person is joint ``COCO17_FLIP[j]`` of the original.
COCO17_FLIP: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

#: The eight left/right pairs by name.
COCO17_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("left_eye", "right_eye"), ("left_ear", "right_ear"), ("left_shoulder", "right_shoulder"),
    ("left_elbow", "right_elbow"), ("left_wrist", "right_wrist"), ("left_hip", "right_hip"),
    ("left_knee", "right_knee"), ("left_ankle", "right_ankle"),
})  # fmt: skip


def test_joint_order_is_coco() -> None:
    assert kp.KEYPOINT_NAMES == COCO17_NAMES
    assert kp.PERSON_CATEGORY["keypoints"] == list(COCO17_NAMES)


def test_flip_index_is_the_literal_permutation() -> None:
    assert tuple(kp.FLIP_INDEX) == COCO17_FLIP


def test_flip_pairs_name_every_left_right_pair() -> None:
    named = {tuple(sorted((COCO17_NAMES[a], COCO17_NAMES[b]))) for a, b in kp.FLIP_PAIRS}
    assert named == set(COCO17_PAIRS)
    assert len(kp.FLIP_PAIRS) == 8
    for left, right in COCO17_PAIRS:  # the literal itself: each pair is one body part, left and right
        assert left.removeprefix("left_") == right.removeprefix("right_") != left


def test_flip_augmentation_relabels_joints_by_the_literal_table(tiny_embedded: Path) -> None:
    """A flip-only augmented training crop holds the plain crop's joints mirrored (x' = w-1-x) and relabelled."""
    from lrpose_bench.data.augment import AugmentConfig
    from lrpose_bench.data.coco import CocoPoseDataset
    from lrpose_bench.data.spec import resolve_dataset

    spec = resolve_dataset(tiny_embedded, need_train=True)
    flip_only = AugmentConfig(flip_prob=1.0, scale_factor=0.0, rotation_factor=0.0, rotation_prob=0.0, half_body_prob=0.0)
    size = (48, 64)
    plain = CocoPoseDataset(spec.train_ann, spec.train_images, size, True, False)  # no augmentation
    flipped = CocoPoseDataset(spec.train_ann, spec.train_images, size, True, True, augment=flip_only)
    checked = 0
    for i in range(4):
        a, b = plain[i], flipped[i]
        pa, pb = a["keypoints"].double().numpy(), b["keypoints"].double().numpy()
        labelled = a["gt_keypoints"][:, 2].numpy() > 0
        for j in range(17):
            src = COCO17_FLIP[j]
            if labelled[src]:
                np.testing.assert_allclose(pb[j], [size[0] - 1 - pa[src, 0], pa[src, 1]], atol=1e-3)
                checked += 1
    assert checked > 20


def test_flip_test_merge_swaps_joints_by_the_literal_table() -> None:
    """The engine's flip test: merged joint ``j`` = mean of the plain joint ``j`` and the flipped pass's
    joint ``COCO17_FLIP[j]`` (mirrored back). Joint ``j``'s map is constant ``j`` plus the image."""
    from lrpose_bench.engine.inference import predict_outputs
    from lrpose_bench.method import build_method

    method = build_method("udp", {"radius": 1.0, "cls_kernel": 3, "offset_kernel": 1})

    def model(x: torch.Tensor) -> dict[str, torch.Tensor]:
        img = x[:, :1]  # (B, 1, h, w): mirrors with the input
        joint = torch.arange(17, dtype=x.dtype).view(1, 17, 1, 1)
        return {"heatmaps": joint + img, "offsets": (joint + img)[:, :, None].expand(-1, -1, 2, -1, -1)}

    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    _, merged = predict_outputs(model, method, x, flip=True)
    for j in range(17):
        expected = 0.5 * (j + COCO17_FLIP[j]) + x[:, 0]
        torch.testing.assert_close(merged["heatmaps"][:, j], expected)
        torch.testing.assert_close(merged["offsets"][:, j, 1], expected)  # y offsets: no sign change


def test_inversion_error_type_uses_the_literal_partner() -> None:
    """A prediction sitting exactly on the partner joint (and not on its own) is an inversion (code 2)."""
    from lrpose_bench.evaluation import ERROR_TYPES, keypoint_error_types

    gt = np.zeros((1, 17, 3))
    gt[0, :, 0] = np.arange(17) * 40.0  # joints 40 px apart: far outside each other's OKS
    gt[0, :, 2] = 2
    pred = gt[:, list(COCO17_FLIP), :2]  # every joint on its partner (the nose stays on itself)
    codes = keypoint_error_types(pred, gt, np.array([10_000.0]), np.array([1]))
    assert ERROR_TYPES[2].startswith("inv")
    assert codes[0, 0] == 0 and (codes[0, 1:] == 2).all()
