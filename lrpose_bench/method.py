"""The method contract and the method registry.

A *method* is everything that differs between low-resolution pose approaches: how keypoints become
training targets (``encode``), the output layer (``build_head``), the loss, how outputs become
coordinates (``decode``), how outputs flip for the flip test, and what the data pipeline must do for it
(biased/unbiased crop, the input size for a ``--res``, training stages). The core (data, models, engine,
evaluation) talks to methods only through this class; it never branches on a method's name.

Shapes and spaces (B = batch, K = keypoints):
    keypoints   (B, K, 2) float, *input* px (see :mod:`lrpose_bench.geometry`)
    visibility  (B, K)    float, 1 where the joint is labelled and inside the crop, else 0
    outputs     dict[str, Tensor] produced by the head (e.g. ``{"heatmaps": (B,K,h,w)}``)
    targets     dict[str, Tensor] produced by ``encode``; always holds ``"weight"`` (B, K)
    decode ->   coords (B, K, 2) *input* px, scores (B, K) in [0, 1]-ish confidence units

Options: each method declares a frozen dataclass ``Options``; every field is a named option with the
paper's (or the baseline's) value as default, settable from the CLI as ``--set name=value``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

import torch
from torch import nn

from lrpose_bench.geometry import AxisMap, input_to_heatmap
from lrpose_bench.heads import MapHead, MapHeadSpec


@dataclass(frozen=True)
class Stage:
    """One training stage: a name and the fraction of the total epochs it takes (fractions sum to 1)."""

    name: str
    fraction: float = 1.0


@dataclass(frozen=True)
class Geometry:
    """Sizes a method works at for one ``--res``: all ``(width, height)`` in px.

    ``crop_size`` is what the data pipeline cuts from the image (the low-resolution input the paper is
    about); ``model_input_size`` is what the backbone sees (equal to ``crop_size`` except for methods that
    resize, e.g. super-resolution front ends); ``heatmap_size`` is the head's spatial output size.
    ``crop_to_heatmap`` maps crop px (where keypoints live in a batch) to heatmap px.
    """

    crop_size: tuple[int, int]
    model_input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    crop_to_heatmap: AxisMap


#: What ``begin_stage`` receives to look at the training data with the current model: calling it
#: yields ``(outputs, targets, batch)`` for every training batch, under ``torch.no_grad()``, on the device.
PredictFn = Callable[[], Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]]]


class PoseMethod:
    """Base class of every method. Subclasses set ``name``, ``description``, ``Options`` and the codecs."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Options:
        """Method options (none by default)."""

    #: Default threshold on a keypoint's score for it to count in rescoring (HRNet: 0.2).
    keypoint_score_threshold: ClassVar[float] = 0.2
    #: Output stride of the backbone this method expects (heatmap = input / stride).
    stride: ClassVar[int] = 4
    #: What :meth:`build_head`'s module reads: ``"features"``, the backbone's stride-4 map, or ``"trunk"``,
    #: the deepest map of the backbone's trunk with its upsampling stage removed (ResNet's C5, as
    #: MMPose's regression heads read it through a global-pooling neck; tiny's stride-16 encoder output).
    head_input: ClassVar[str] = "features"
    #: Backbone to use when no ``--backbone`` is given and the profile's default cannot serve this method
    #: (RLE on the paper profile, whose HRNet has no single deepest trunk map: ResNet-50, as MMPose's RLE).
    fallback_backbone: ClassVar[str | None] = None

    def __init__(self, options: "PoseMethod.Options | None" = None, **overrides: Any) -> None:
        base = options if options is not None else self.Options()
        self.options = dataclasses.replace(base, **overrides) if overrides else base

    # ------------------------------------------------------------------ data needs
    @property
    def unbiased(self) -> bool:
        """Whether crops and the input->heatmap map use UDP's unbiased transform."""
        return False

    def geometry(self, resolution: tuple[int, int]) -> Geometry:
        """Sizes for ``--res`` ``resolution = (width, height)``; default: crop = model input, stride 4."""
        w, h = resolution
        if w % self.stride or h % self.stride:
            raise ValueError(
                f"--res {h}x{w}: both sides must be multiples of the output stride {self.stride} "
                f"for method {self.name!r}"
            )
        hm = (w // self.stride, h // self.stride)
        return Geometry(
            crop_size=(w, h),
            model_input_size=(w, h),
            heatmap_size=hm,
            crop_to_heatmap=input_to_heatmap((w, h), hm, self.unbiased),
        )

    def train_geometry(self, resolution: tuple[int, int]) -> Geometry:
        """Sizes used in *training*; default: the same as :meth:`geometry` (evaluation).

        A method may train on other crops than it is evaluated on: SR + heatmap's paper baseline trains the
        heatmap model on real high-resolution crops and puts the SR front end in front only at test time.
        The model is the same, so ``model_input_size`` and ``heatmap_size`` must agree with :meth:`geometry`.
        """
        return self.geometry(resolution)

    def stages(self) -> list[Stage]:
        """Training stages in order; most methods train in one stage."""
        return [Stage("main", 1.0)]

    def begin_stage(self, stage: Stage, predict: PredictFn) -> dict[str, Any]:
        """Hook run before each stage (e.g. CAL fits its GMM here). Returns facts to log in the record."""
        return {}

    # ------------------------------------------------------------------ model
    def build_front(self, geometry: Geometry) -> nn.Module | None:
        """Optional module applied to the crop before the backbone (e.g. super-resolution); default none."""
        return None

    def head_spec(self, geometry: Geometry) -> MapHeadSpec | None:
        """The per-pixel head this method wants (outputs, blocks before each final 1x1 conv, outputs on a
        private copy of the backbone's last stage), or ``None`` when it builds its head itself
        (:meth:`build_head`). The core assembles the model from it (``models.assemble``)."""
        return None

    def build_head(self, in_channels: int, num_keypoints: int, geometry: Geometry) -> nn.Module:
        """The output layer on the stride-``stride`` feature map (on the trunk's deepest map with
        ``head_input = "trunk"``; ``in_channels`` is that map's width); returns a module producing ``outputs``.

        Default: the :class:`MapHead` of :meth:`head_spec` on one shared feature map (a spec with decoupled
        outputs needs the backbone too: the core's ``assemble_model`` builds it).
        """
        spec = self.head_spec(geometry)
        if spec is None:
            raise NotImplementedError(f"method {self.name!r} defines neither head_spec nor build_head")
        if spec.decoupled:
            raise ValueError(f"method {self.name!r}: decoupled outputs {spec.decoupled} need the backbone; "
                             "build the model with lrpose_bench.models.assemble.assemble_model")
        return MapHead.from_spec(spec, in_channels, num_keypoints)

    # ------------------------------------------------------------------ codecs
    def encode(self, keypoints: torch.Tensor, visibility: torch.Tensor, geometry: Geometry) -> dict[str, torch.Tensor]:
        """Batched training targets for keypoints in crop px; must include ``"weight"`` (B, K)."""
        raise NotImplementedError

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms (scalars) with their sum under ``"total"``."""
        raise NotImplementedError

    def decode(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates in *crop* px ``(B, K, 2)`` and scores ``(B, K)``."""
        raise NotImplementedError

    def targets_as_outputs(self, targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs a perfect network would produce for ``targets`` (used by ``lrpose oracle``).

        Default: the targets themselves (true for regression targets such as heatmaps and offsets);
        methods whose outputs are logits override it.
        """
        return {k: v for k, v in targets.items() if k != "weight"}

    def coarse(self, outputs: Mapping[str, torch.Tensor], geometry: Geometry) -> torch.Tensor | None:
        """Coarse (integer argmax) predictions in *heatmap* px ``(B, K, 2)``, or ``None`` if the method has
        no heatmap. Used for the offset-distribution analysis (``lrpose plot offsets``)."""
        return None

    def flip_back(self, outputs: Mapping[str, torch.Tensor], flip_index: Iterable[int]) -> dict[str, torch.Tensor]:
        """Outputs of a horizontally flipped crop, brought back to the unflipped frame (joints swapped)."""
        raise NotImplementedError

    def merge_flip(self, outputs: Mapping[str, torch.Tensor], flipped_back: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Combine outputs with the flipped-back outputs of the flipped crop (default: the mean)."""
        return {k: 0.5 * (outputs[k] + flipped_back[k]) for k in outputs}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Fitted, non-learned state to checkpoint (e.g. a GMM); tensors or JSON-able values."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def artifacts(self) -> dict[str, Any]:
        """JSON-able facts saved beside the run's record (e.g. the fitted mixture for the offset plot)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name and every option value, as written into result records."""
        return {"name": self.name, "options": dataclasses.asdict(self.options)}


# ----------------------------------------------------------------------------------------------
# Registry: one line per method. Adding a method = one file in methods/ + one line here.
# ----------------------------------------------------------------------------------------------
METHODS: dict[str, str] = {
    "heatmap": "lrpose_bench.methods.heatmap:HeatmapMethod",
    "dark": "lrpose_bench.methods.dark:DarkMethod",
    "udp": "lrpose_bench.methods.udp:UDPMethod",
    "cal": "lrpose_bench.methods.cal:CALMethod",
    "cal_mgm": "lrpose_bench.methods.cal:CALMGMMethod",
    "simcc": "lrpose_bench.methods.simcc:SimCCMethod",
    "sr_heatmap": "lrpose_bench.methods.sr_heatmap:SRHeatmapMethod",
    "rle": "lrpose_bench.methods.rle:RLEMethod",
    "ipr": "lrpose_bench.methods.ipr:IPRMethod",
    "dsnt": "lrpose_bench.methods.dsnt:DSNTMethod",
    "debias_ipr": "lrpose_bench.methods.debias_ipr:DebiasIPRMethod",
}


def method_class(name: str) -> type[PoseMethod]:
    """The class registered under ``name``; a clear error listing the valid names otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    module_name, _, attr = METHODS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def parse_option_value(cls: type[PoseMethod], key: str, text: str) -> Any:
    """Convert ``--set key=text`` to the type of the option field ``key`` of ``cls.Options``; a value of
    the wrong type, or a NaN / infinite number, raises ``OptionValueError`` naming the method and option."""
    from lrpose_bench.errors import OptionValueError

    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    if key not in fields:
        raise KeyError(f"method {cls.name!r} has no option {key!r}; options: {', '.join(fields) or '(none)'}")
    default = getattr(cls.Options(), key)
    if isinstance(default, bool):
        low = text.strip().lower()
        if low not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
            raise OptionValueError(f"--set {key}={text!r}: option {key!r} of method {cls.name!r} takes true/false")
        return low in {"true", "1", "yes", "on"}
    kind = type(default[0]) if isinstance(default, tuple) and default else type(default)
    try:
        if isinstance(default, tuple):
            value: Any = tuple(kind(v) for v in text.split(",")) if default else tuple(text.split(","))
        elif isinstance(default, (int, float)):
            value = kind(text)
        else:
            return text
    except ValueError:
        noun = {int: "integer", float: "number"}.get(kind, kind.__name__)
        article = "an" if noun[0] in "aeiou" else "a"
        what = f"a comma-separated list of {noun}s" if isinstance(default, tuple) else f"{article} {noun}"
        raise OptionValueError(f"--set {key}={text!r}: option {key!r} of method {cls.name!r} takes {what}") from None
    return _check_option(cls, key, value)


def build_method(name: str, options: Mapping[str, Any] | None = None) -> PoseMethod:
    """Instantiate method ``name`` with option overrides (values as text or already typed)."""
    cls = method_class(name)
    typed = {
        k: parse_option_value(cls, k, v) if isinstance(v, str) else _check_option(cls, k, v)
        for k, v in (options or {}).items()
    }
    return cls(**typed)


def _check_option(cls: type[PoseMethod], key: str, value: Any) -> Any:
    """``value`` for option ``key`` of ``cls``: a known option, and no NaN or infinite number in it."""
    import math

    from lrpose_bench.errors import OptionValueError

    names = {f.name for f in dataclasses.fields(cls.Options)}
    if key not in names:
        raise KeyError(f"method {cls.name!r} has no option {key!r}; options: {', '.join(sorted(names)) or '(none)'}")
    items = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        raise OptionValueError(f"--set {key}={value!r}: option {key!r} of method {cls.name!r} must be a finite number")
    return value


__all__ = ["PoseMethod", "Stage", "Geometry", "PredictFn", "MapHeadSpec", "METHODS", "method_class", "build_method",
           "field"]
