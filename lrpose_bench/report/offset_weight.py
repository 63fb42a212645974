"""How much offset-loss weight a joint gets in each training stage: the MGM diagnostic.

CAL + MGM replaces CAL's per-pixel offset-loss weight (stage 1) by the disc times the Mixture Gaussian
Mask (stage 2). The mask is peak-normalised (:mod:`lrpose_bench.mixture`), so its *total* weight depends
on how wide the fitted mixture is: a mixture whose main component only covers the sub-pixel spread of a
correct argmax puts almost all of a joint's weight on its nearest pixel and shrinks the offset term; one
Gaussian fitted to every error, gross ones included, spreads it over the whole patch. This module builds
both stages' weight maps for the same joints, from a run's record (method and options) and its fitted
mixture (``method.json``), and sums them per joint.

Units: weights are per heatmap pixel (dimensionless, peak 1 for CAL's ``G = B*C`` and for the MGM); a
joint's *weight mass* is their sum over the heatmap, i.e. heatmap px^2 of full weight. The ratio of the
stages' masses is the factor on the offset term for the default ``offset_reduction="pixels"`` (a mean over
pixels); with ``"mask"`` the loss divides by the weight's sum and the factor is 1 whatever the mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lrpose_bench.io import read_json
from lrpose_bench.report.registry import ReportError

if TYPE_CHECKING:
    import torch

    from lrpose_bench.method import Geometry, PoseMethod
    from lrpose_bench.mixture import Mixture2D


@dataclass(frozen=True)
class OffsetWeightMass:
    """Per-joint offset-loss weight of both stages, means over ``n_joints`` sub-pixel joint positions.

    ``stage1`` / ``stage2``: the weight summed over the heatmap (heatmap px^2); ``*_nearest``: the share of
    it on the joint's nearest pixel (0-1). ``normalised``: the loss divides by the weight's sum, so the
    masses do not scale the offset term. ``fit``: which mixture stage 2 used (the scope and the errors it
    was fitted to; ``fit_scope="batch"`` refits every mini-batch and the run keeps only its last fit).
    """

    stage1: float
    stage2: float
    stage1_nearest: float
    stage2_nearest: float
    n_joints: int
    normalised: bool = False
    fit: str = ""

    @property
    def ratio(self) -> float:
        """``stage2 / stage1``: the MGM's factor on a joint's offset-loss weight mass (on the offset term
        too unless ``normalised``)."""
        return self.stage2 / self.stage1 if self.stage1 > 0 else float("nan")

    def summary(self) -> str:
        """One line for the console and the README."""
        effect = ("; the loss divides by the weight's sum (offset_reduction=mask): the offset term keeps its "
                  "scale" if self.normalised else "")
        fit = f" [mixture: {self.fit}]" if self.fit else ""
        return (
            f"offset-loss weight per joint (sum over the heatmap, mean of {self.n_joints} sub-pixel positions): "
            f"stage 1 {self.stage1:.2f}, stage 2 (MGM) {self.stage2:.2f} = {self.ratio:.2f}x; "
            f"on the nearest pixel {100 * self.stage1_nearest:.0f} % / {100 * self.stage2_nearest:.0f} %{effect}{fit}"
        )


def joint_grid_centres(heatmap_size: tuple[int, int], n: int = 4096, seed: int = 0) -> torch.Tensor:
    """``(n, 1, 2)`` joints (heatmap px, float64) spread uniformly over the 2 x 2 px square at the map's
    centre: every sub-pixel phase, away from the borders."""
    import torch

    w, h = heatmap_size
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=torch.float64)
    return (centre + 2.0 * torch.rand(n, 1, 2, generator=g, dtype=torch.float64) - 1.0)


def offset_weight_mass(run: str | Path, n: int = 4096, seed: int = 0) -> OffsetWeightMass | None:
    """Both stages' offset-loss weight per joint for a run (folder or its ``record.json``).

    ``None`` when the run has no ``record.json``, its method has no staged offset weighting (no
    ``stage_offset_weights``) or it holds no fitted mixture (``method.json`` without ``mgm``). Raises
    :class:`ReportError` for a record without method or resolution, or a mixture with bad fields.
    """
    from lrpose_bench.method import build_method
    from lrpose_bench.mixture import Mixture2D, mixture_peak
    from lrpose_bench.report.figures import load_mgm, resolve_run_dir

    run_dir = resolve_run_dir(run)
    if not (run_dir / "record.json").is_file():
        return None  # the method and its options are unknown
    record = read_json(run_dir / "record.json", "run record")
    try:
        name, options, resolution = record["method"]["name"], record["method"]["options"], record["resolution"]
        h, w = (int(v) for v in str(resolution).lower().split("x"))
    except (KeyError, TypeError, ValueError):
        raise ReportError(f"{run_dir / 'record.json'}: needs 'method.name', 'method.options' and 'resolution' (HxW)") from None
    try:
        method = build_method(name, options)
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{run_dir / 'record.json'}: cannot rebuild method {name!r} from its options ({exc})") from None
    if not hasattr(method, "stage_offset_weights"):
        return None
    spec = load_mgm(run_dir)  # checks the fields and shapes
    if spec is None:
        return None
    peak = mixture_peak(spec.weights, spec.means, spec.covariances)
    mixture = Mixture2D(spec.weights, spec.means, spec.covariances, peak, 0)

    geometry = method.geometry((w, h))
    mass = stage_weight_mass(method, mixture, geometry, joint_grid_centres(geometry.heatmap_size, n, seed))
    return dataclasses.replace(mass, fit=_fit_text(run_dir / "method.json"))


def _fit_text(path: Path) -> str:
    """``"scope once, 4474 errors"``, ``"the last of 456 per-batch fits, 74 errors"`` from a run's ``method.json``."""
    mgm = read_json(path, "method artifacts").get("mgm") or {}
    scope, n, fits = mgm.get("scope"), mgm.get("n_samples"), mgm.get("n_fits")
    errors = f", {n} errors" if n is not None else ""
    if scope == "batch":
        return f"the last of {fits} per-batch fits{errors}" if fits is not None else f"the last per-batch fit{errors}"
    return f"scope {scope}{errors}" if scope else errors.lstrip(", ")


def stage_weight_mass(
    method: "PoseMethod", mixture: "Mixture2D", geometry: "Geometry", centres: torch.Tensor
) -> OffsetWeightMass:
    """Both stages' weight per joint for joints ``centres (n, 1, 2)`` (heatmap px) of ``method`` (one with
    ``stage_offset_weights``) at ``geometry``, stage 2 with ``mixture`` (:class:`~lrpose_bench.mixture.Mixture2D`)."""
    import torch

    n = centres.shape[0]
    keypoints = geometry.crop_to_heatmap.inverse(centres)  # crop px
    with torch.no_grad():
        targets = method.encode(keypoints, torch.ones(centres.shape[:2]), geometry)
        stage1, stage2 = method.stage_offset_weights(targets, mixture)
    nearest = torch.floor(targets["centres"] + 0.5).long()  # (n, 1, 2): x, y of the nearest pixel

    def mass_and_share(weight: torch.Tensor) -> tuple[float, float]:
        mass = weight.sum((-1, -2))  # (n, 1)
        at = weight[torch.arange(n)[:, None], torch.zeros(n, 1, dtype=torch.long), nearest[..., 1], nearest[..., 0]]
        return float(mass.mean()), float((at / mass.clamp_min(1e-12)).mean())

    (m1, s1), (m2, s2) = mass_and_share(stage1.double()), mass_and_share(stage2.double())
    return OffsetWeightMass(m1, m2, s1, s2, n, normalised=bool(getattr(method, "offset_loss_normalised", False)))
