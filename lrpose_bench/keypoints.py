"""COCO-17 keypoint metadata: the one table every module uses.

Joint order is COCO's (``person_keypoints_*.json`` ``categories[0].keypoints``).
"""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS: int = len(KEYPOINT_NAMES)

#: Left/right pairs (0-based joint indices) swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def _flip_index() -> tuple[int, ...]:
    index = list(range(NUM_KEYPOINTS))
    for a, b in FLIP_PAIRS:
        index[a], index[b] = b, a
    return tuple(index)


#: ``flipped[..., j] = original[..., FLIP_INDEX[j]]`` after a horizontal flip.
FLIP_INDEX: tuple[int, ...] = _flip_index()

#: Per-keypoint OKS falloff constants (COCO, ``pycocotools.cocoeval.Params.kpt_oks_sigmas``).
OKS_SIGMAS: np.ndarray = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)

#: Limbs as 0-based joint index pairs (COCO's 1-based ``skeleton`` minus one).
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

#: Joints of the upper body, for half-body augmentation (nose .. wrists).
UPPER_BODY: tuple[int, ...] = tuple(range(11))
LOWER_BODY: tuple[int, ...] = tuple(range(11, 17))

#: Per-joint weights used by some training recipes (HRNet's ``joints_weight``); 1 = uniform.
JOINT_WEIGHTS: tuple[float, ...] = (1.0,) * 5 + (1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5)

#: COCO ``categories`` entry for the person class, as written into generated annotation files.
PERSON_CATEGORY: dict = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
}
