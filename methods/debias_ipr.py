"""Debias-IPR (Gu, Yang, Yao, ICCV 2021, "Removing the Bias of Integral Pose Regression"): integral
regression with the soft-argmax's background bias removed.

The softmax spreads a share of its mass over the whole map even where the network's heatmap is flat, so
the plain soft-argmax is pulled toward the map centre (most at low temperature and on small maps, i.e.
at low resolution). Gu et al. model the heatmap as 0 on the background: with ``C = sum exp(beta H)``
over ``hw`` pixels the background holds ``hw / C`` of the mass, uniformly, and

    ``J = (C J_soft - hw c) / (C - hw)``   (``c`` the map centre)

is the expectation of the foreground alone (:func:`lrpose_bench.codecs.debiased_soft_argmax_2d`), used in
training and at test. Everything else is the soft-argmax family's
(:class:`lrpose_bench.methods.ipr.SoftArgmaxMethod`): unbiased transform, 1x1-conv logit head, L1 loss on
normalised coordinates (IPR's), soft-argmax decoding (clamped into the hull of pixel centres), flip
test by averaging ``exp(beta H)`` of the two passes (keeps the background at 0), exact oracle
(``H = log(1 + M p) / beta``: zero background, foreground ``M p``).

Initialisation: the logit bias starts at ``ln 2 / beta``, so ``exp(beta H) - 1 = 1`` on every pixel:
the foreground starts as heavy as the background and the first estimate at the map centre. With
HRNet's zero bias the foreground mass ``C - hw`` starts at ~0 (of either sign) and the correction divides
by it. The division is also held at a foreground fraction of at least
:data:`lrpose_bench.codecs.DEBIAS_MIN_FOREGROUND`.

Error bound of the codec alone: none inside the hull of pixel centres (as IPR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from lrpose_bench.methods.ipr import SoftArgmaxMethod


class DebiasIPRMethod(SoftArgmaxMethod):
    """Debias-IPR: IPR with Gu et al.'s debiased soft-argmax in training and decoding."""

    name = "debias_ipr"
    description = "Debias-IPR: integral regression with the softmax background bias removed (Gu et al.), L1 loss"
    debiased: ClassVar[bool] = True

    @dataclass(frozen=True)
    class Options:
        """Options of Debias-IPR.

        beta: inverse temperature of the softmax, ``softmax(beta * H)`` (MMPose's Debias-IPR config,
            ``ipr_res50_debias-8xb64-210e_coco-256x256``: ``beta=10``).
        js_weight: weight of a DSNT-style Jensen-Shannon regulariser toward a Gaussian (0 = none: Gu et
            al.'s IPR with L1 alone; MMPose's config adds it with weight 1, i.e. DSNT + debias). On the
            embedded data L1 alone trains unstably (loss jumps; 19.8 / 1.4 AP at 64x48 / 128x96) and
            ``js_weight=1`` does not (33.7 / 41.3): results/embedded_regression/README.md.
        sigma: sigma of that regulariser's Gaussian in heatmap px (DSNT's 1; unused when js_weight=0).
        """

        beta: float = 10.0
        js_weight: float = 0.0
        sigma: float = 1.0

    def head_bias(self) -> float:
        """``ln 2 / beta``: ``exp(beta H) = 2`` everywhere at the start (see the module docstring)."""
        return math.log(2.0) / float(self.options.beta)


__all__ = ["DebiasIPRMethod"]
