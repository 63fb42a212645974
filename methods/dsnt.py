"""DSNT (Nibali, He, Morgan, Prendergast, 2018, "Numerical Coordinate Regression with Convolutional Neural
Networks"): the differentiable spatial to numerical transform, i.e. the soft-argmax of a softmax-normalised
heatmap, trained with a Euclidean loss on the coordinates plus a Jensen-Shannon regulariser that pulls each
heatmap toward a Gaussian around the joint.

Everything but the loss is the soft-argmax family's (:class:`lrpose_bench.methods.ipr.SoftArgmaxMethod`:
unbiased transform, 1x1-conv logit head, soft-argmax decoding, flip test in probability space, exact
oracle). Loss per joint, in DSNT's normalised units ``2u - 1`` (``[-1, 1]`` over the heatmap, pixel
centres at ``(2x + 1) / w - 1``):

    ``||mu_hat - mu||_2 + lambda * JS(p || N(mu, sigma_t^2))``

with ``p = softmax(beta H)`` and the Gaussian sampled at the pixel centres and normalised to sum 1;
weighted per joint, averaged over batch and joints.

Error bound of the codec alone: as IPR (none inside the hull of pixel centres).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lrpose_bench.methods.ipr import SoftArgmaxMethod


class DSNTMethod(SoftArgmaxMethod):
    """DSNT: soft-argmax coordinates, Euclidean loss + Jensen-Shannon regulariser toward a Gaussian."""

    name = "dsnt"
    description = "DSNT: softmax heatmap -> soft-argmax, Euclidean loss + Jensen-Shannon regulariser (unbiased)"

    @dataclass(frozen=True)
    class Options:
        """Options of DSNT (defaults: the paper's setting, as its reference package dsntnn documents it:
        ``js_reg_losses(heatmaps, target, sigma_t=1.0)`` added to the Euclidean loss with weight 1).

        beta: inverse temperature of the softmax (DSNT normalises with a plain softmax: 1; MMPose's
            ``DSNTHead`` default ``beta=1.0``).
        sigma: sigma of the regulariser's target Gaussian in heatmap px (the paper's ``sigma_t = 1``
            px). Kept fixed at every resolution, as the paper states it in heatmap pixels.
        js_weight: the regularisation coefficient ``lambda`` of the JS term (the paper's 1).
        """

        beta: float = 1.0
        sigma: float = 1.0
        js_weight: float = 1.0

    def coordinate_loss(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """DSNT's Euclidean loss: ``||2 (u_hat - u)||_2`` per joint (``[-1, 1]`` units), weighted, mean over B, K."""
        d = 2.0 * (pred - target)
        dist = torch.sqrt((d * d).sum(dim=-1) + 1e-12)  # the epsilon keeps the gradient finite at 0
        return (dist * weight).mean()


__all__ = ["DSNTMethod"]
