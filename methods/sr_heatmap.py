"""SR + heatmap: super-resolve the low-res crop, then regress Gaussian heatmaps at the high resolution.

The paper's SR baseline (HRNet/UDP + SPSR): a super-resolution network in front of a heatmap model.
Here the data pipeline cuts the low-res crop at ``--res`` (keypoints in low-res crop px), the front end
(:class:`lrpose_bench.sr.front.SRFront`) upsamples it ``x sr_scale`` with pixel areas aligned
(``x_hr = (x_lr + 0.5) * s - 0.5``), and the heatmap codec of :class:`HeatmapMethod` works at the
high-res size: heatmap = ``res * sr_scale / 4``. ``crop_to_heatmap`` composes both maps, so encode and
decode take and return low-res crop px and the rest of the pipeline never sees the high resolution.

Front ends (``sr``): ``bicubic`` (default: needs no weights, so every run works offline), ``srresnet``,
``esrgan``, ``edsr``, ``spsr`` (:mod:`lrpose_bench.sr.archs`). The learned ones load ``sr_weights``
(from ``lrpose sr train`` or an official basicsr ``.pth``); frozen unless ``finetune``.
By default (``train_on=highres``, the paper's baseline) the heatmap model trains on real high-res crops
(:meth:`SRHeatmapMethod.train_geometry`) and the front end super-resolves only the low-res test crops;
``train_on=sr`` trains on super-resolved low-res crops instead (and is what ``finetune`` needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from lrpose_bench.geometry import input_to_heatmap, upsample_map
from lrpose_bench.method import Geometry
from lrpose_bench.methods.heatmap import HeatmapMethod
from lrpose_bench.sr.archs import sr_arch


class SRHeatmapMethod(HeatmapMethod):
    """An SR front end (x ``sr_scale``) before a plain heatmap model working at the super-resolved size."""

    name = "sr_heatmap"
    description = "super-resolution front end (bicubic/SRResNet/ESRGAN/EDSR/SPSR) + Gaussian heatmaps at the SR size"

    @dataclass(frozen=True)
    class Options(HeatmapMethod.Options):
        """Options of SR + heatmap (plus the heatmap options: ``sigma`` auto-scales with the *high-res*
        heatmap, e.g. 2.0 for 128x96 crops at x2 = 256x192 model input).

        sr: front end: bicubic (default; no weights needed) | srresnet | esrgan | edsr | spsr.
        sr_scale: upscaling factor (2: 128x96 -> 256x192; 4: 64x48 -> 256x192).
        sr_weights: weights file of a learned front end; "" = ``$LRPOSE_CACHE/weights/sr/<sr>_x<scale>.pth``
            if present, else an error saying how to get weights.
        sr_param_key: state-dict entry of a basicsr checkpoint; "" = params_ema if present, else params.
        finetune: train the front end with the pose loss (default: frozen, in eval mode throughout).
        train_on: what the heatmap model trains on. "highres" (default; the paper's baseline): real
            high-resolution crops at the model input size, with the SR front end used only at test time on
            low-res crops. "sr": low-res crops super-resolved by the (frozen or fine-tuned) front end, so
            training sees SR artefacts too; required by finetune.
        """

        sr: str = "bicubic"
        sr_scale: int = 2
        sr_weights: str = ""
        sr_param_key: str = ""
        finetune: bool = False
        train_on: str = "highres"

    def __init__(self, options: SRHeatmapMethod.Options | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        arch = sr_arch(self.options.sr)  # unknown names fail here, before any data is read
        if self.options.sr_scale not in arch.scales:
            raise ValueError(f"SR model {arch.name!r} supports sr_scale {arch.scales}, got {self.options.sr_scale}")
        if self.options.finetune and not arch.learned:
            raise ValueError(f"finetune=true needs a learned SR model; {arch.name!r} has no weights")
        if self.options.train_on not in ("highres", "sr"):
            raise ValueError(f"method {self.name!r}: option train_on={self.options.train_on!r} must be highres or sr")
        if self.options.finetune and self.options.train_on != "sr":
            raise ValueError("finetune=true trains the front end, so it needs train_on=sr")
        self._front_info: dict[str, Any] = {}

    def geometry(self, resolution: tuple[int, int]) -> Geometry:
        """Crop = ``resolution`` (low-res); model input = crop x ``sr_scale``; heatmap = model input / 4."""
        w, h = resolution
        s = self.options.sr_scale
        big = (w * s, h * s)
        if big[0] % self.stride or big[1] % self.stride:
            raise ValueError(
                f"--res {h}x{w} x sr_scale {s} = {big[1]}x{big[0]}: both sides must be multiples of the output "
                f"stride {self.stride} for method {self.name!r}"
            )
        hm = (big[0] // self.stride, big[1] // self.stride)
        return Geometry(
            crop_size=(w, h),
            model_input_size=big,
            heatmap_size=hm,
            crop_to_heatmap=upsample_map((w, h), s).then(input_to_heatmap(big, hm, self.unbiased)),
        )

    def train_geometry(self, resolution: tuple[int, int]) -> Geometry:
        """``train_on=highres``: real crops at the model input size; ``sr``: the low-res crops of :meth:`geometry`."""
        low = self.geometry(resolution)
        if self.options.train_on == "sr":
            return low
        big, hm = low.model_input_size, low.heatmap_size
        return Geometry(crop_size=big, model_input_size=big, heatmap_size=hm,
                        crop_to_heatmap=input_to_heatmap(big, hm, self.unbiased))  # fmt: skip

    def build_front(self, geometry: Geometry) -> nn.Module:
        """The SR front end with its weights (normalised low-res crop -> normalised model-input crop)."""
        from lrpose_bench.sr.front import build_sr_front

        o = self.options
        expected = (geometry.crop_size[0] * o.sr_scale, geometry.crop_size[1] * o.sr_scale)
        if tuple(geometry.model_input_size) != expected:
            raise ValueError(f"geometry model input {geometry.model_input_size} is not crop {geometry.crop_size} x {o.sr_scale}")
        front, info = build_sr_front(o.sr, o.sr_scale, o.sr_weights or None, o.finetune, o.sr_param_key or None)
        front.output_size = expected  # real high-res crops (train_on=highres) pass through
        self._front_info = {**info, "frozen": front.frozen, "crop_size": list(geometry.crop_size),
                            "output_size": list(expected)}
        return front

    @property
    def front_info(self) -> dict[str, Any]:
        """Provenance of the last built front end (model, scale, config, weights path and SHA-256, frozen)."""
        return dict(self._front_info)

    def artifacts(self) -> dict[str, Any]:
        """``{"sr_front": front_info}`` once a front end was built (its cost is in the record's ``cost.front``)."""
        return {"sr_front": self.front_info} if self._front_info else {}


__all__ = ["SRHeatmapMethod"]
