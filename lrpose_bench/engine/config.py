"""Training profiles: every hyper-parameter of a run in one dataclass, :class:`TrainConfig`.

Two profiles ship:

* ``paper``: the HRNet / SimpleBaseline / CAL recipe (Adam 1e-3, 210 epochs, lr x0.1 at epochs 170 and
  200, batch 32 per GPU, flip p 0.5, rotation factor 45 deg with p 0.6, scale factor 0.35, half-body p 0.3).
* ``quick``: a fixed compute budget for the ``tiny`` backbone on the embedded synthetic dataset on two
  CPU cores: 25 epochs at 128x96, scaled by pixel count to 100 epochs at 64x48 (a few minutes each).
  Measured on the embedded data at 64x48: at 40 epochs the plain heatmap still leads UDP (28.7 vs 19.9
  AP, the networks are in the gross-error regime); at 100 epochs UDP leads on every seed (38.5 vs 35.8
  AP over 3 seeds; results/embedded).

Any field can be overridden from the CLI with ``--hp key=value`` (typed by the field's default);
``--epochs``, ``--lr``, ``--batch-size`` and ``--workers`` are shorthands.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

#: ``--amp`` choices: full precision, bfloat16 autocast, float16 autocast with a gradient scaler.
AMP_MODES: tuple[str, ...] = ("off", "bf16", "fp16")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
#: ``torch.compile`` modes: "reduce-overhead" replays the compiled forward and backward as CUDA graphs on a GPU
#: (one launch each instead of one per kernel); on a CPU it compiles as "default".
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Command-line shorthands of some hyper-parameters (named in error messages).
HPARAM_SHORTHANDS: dict[str, str] = {
    "epochs": "--epochs", "lr": "--lr", "batch_size": "--batch-size", "workers": "--workers", "amp": "--amp",
    "cpu_threads": "--threads", "flip_test": "--flip/--no-flip", "det_score_threshold": "--det-score-threshold",
}
#: Closed ranges of numeric hyper-parameters (probabilities, fractions, counts).
_RANGES: dict[str, tuple[float, float]] = {
    "flip_prob": (0.0, 1.0), "rotation_prob": (0.0, 1.0), "half_body_prob": (0.0, 1.0),
    "warmup_ratio": (0.0, 1.0), "momentum": (0.0, 1.0), "oks_nms_threshold": (0.0, 1.0),
    "scale_factor": (0.0, 0.99), "rotation_factor": (0.0, 180.0),
    "weight_decay": (0.0, math.inf), "grad_clip": (0.0, math.inf), "warmup_steps": (0, math.inf),
    "reference_pixels": (0, math.inf), "workers": (0, math.inf), "max_train_instances": (0, math.inf),
    "max_val_instances": (0, math.inf), "half_body_min_joints": (0, math.inf), "cpu_threads": (0, math.inf),
    "log_every": (0, math.inf),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a training + evaluation run (epochs count from 0; lr steps are epochs)."""

    # ---- schedule
    epochs: int = 210
    batch_size: int = 32  # per process (per GPU under DDP)
    lr: float = 1e-3  # base learning rate (not scaled by the number of processes)
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    lr_steps: tuple[int, ...] = (170, 200)  # epochs at which lr *= lr_factor
    lr_factor: float = 0.1
    warmup_steps: int = 0  # linear warmup over this many optimizer steps, from warmup_ratio * lr
    warmup_ratio: float = 0.001
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping
    # Fixed compute budget: > 0 means `epochs` and `lr_steps` are meant for crops of this many pixels and
    # scale by reference_pixels / (w * h) at other resolutions (the quick profile: 64x48 gets 4x the
    # epochs of 128x96). 0 = epochs as given. Set to 0 whenever --epochs or lr_steps are given explicitly.
    reference_pixels: int = 0
    # ---- data loading
    workers: int = 4  # DataLoader worker processes per training process
    cache_images: bool = False  # decode every image once into memory (small datasets; capped at 8 GiB)
    # Decode a JPEG at 1/2, 1/4 or 1/8 size when the crop samples it that sparsely (cache_images=false only):
    # faster, but libjpeg's reduced decode box-averages first, so crops are less aliased than the protocol's.
    jpeg_reduced_decode: bool = False
    eval_batch_size: int = 64
    max_train_instances: int = 0  # 0 = all annotated persons of the training split
    max_val_instances: int = 0  # 0 = all persons of the validation split
    # ---- augmentation (training only; see lrpose_bench.data.AugmentConfig)
    flip_prob: float = 0.5
    scale_factor: float = 0.35  # box size x clip(N(1, sf), 1 - sf, 1 + sf)
    rotation_factor: float = 45.0  # degrees: clip(N(0, rf), -2 rf, 2 rf) ...
    rotation_prob: float = 0.6  # ... applied with this probability
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8  # half-body crop only with more labelled joints than this
    half_body_padding: float = 1.5
    # ---- evaluation
    flip_test: bool = True
    oks_nms_threshold: float = 0.9
    det_score_threshold: float = 0.0  # drop detected boxes below this score (detected-box setting only)
    eval_engine: str = "pycocotools"  # COCO AP engine: pycocotools | faster-coco-eval | hotcoco (evaluation.engines)
    # ---- speed
    amp: str = "off"  # off | bf16 | fp16 (CUDA)
    channels_last: bool = False  # NHWC memory format (CUDA and CPU)
    compile: bool = False  # torch.compile the model
    compile_mode: str = "default"  # torch.compile mode (COMPILE_MODES); "reduce-overhead": CUDA graphs on a GPU
    cudnn_benchmark: bool = True  # let cuDNN time its convolution algorithms (fixed input sizes; HRNet's default)
    cpu_threads: int = 0  # torch threads on a CPU device (--threads); 0 = $OMP_NUM_THREADS if set, else the automatic rule (engine.env.auto_threads)
    # ---- logging
    log_every: int = 20  # progress bar refresh period in steps
    tensorboard: bool = False  # also write TensorBoard events (scalars + a few predictions per epoch) to <run>/tensorboard

    def validate(self) -> "TrainConfig":
        """Raise :class:`~lrpose_bench.errors.OptionValueError` naming the field and value for values that
        cannot work (non-finite numbers, probabilities outside [0, 1], ...); returns ``self``."""
        from lrpose_bench.errors import OptionValueError

        def bad(name: str, rule: str) -> OptionValueError:
            flag = HPARAM_SHORTHANDS.get(name)
            where = f"{flag} / --hp {name}" if flag else f"--hp {name}"
            return OptionValueError(f"hyper-parameter {name}={getattr(self, name)!r} ({where}): {rule}")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise bad(f.name, "must be a finite number")
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not (low <= value <= high):
                raise bad(name, f"must be in [{low:g}, {high:g}]" if high != math.inf else f"must be >= {low:g}")
        if self.epochs < 1:
            raise bad("epochs", "must be >= 1")
        if self.batch_size < 1:
            raise bad("batch_size", "must be >= 1")
        if self.eval_batch_size < 1:
            raise bad("eval_batch_size", "must be >= 1")
        if not self.lr > 0:
            raise bad("lr", "must be > 0")
        if not self.lr_factor > 0:
            raise bad("lr_factor", "must be > 0")
        if not self.half_body_padding > 0:
            raise bad("half_body_padding", "must be > 0")
        if self.amp not in AMP_MODES:
            raise bad("amp", f"choose one of {', '.join(AMP_MODES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise bad("compile_mode", f"choose one of {', '.join(COMPILE_MODES)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        from lrpose_bench.evaluation.engines import ENGINES

        if self.eval_engine not in ENGINES:
            raise bad("eval_engine", f"choose one of {', '.join(ENGINES)}")
        if self.jpeg_reduced_decode and self.cache_images:
            raise bad("jpeg_reduced_decode", "applies to images decoded per sample; set cache_images=false")
        if list(self.lr_steps) != sorted(self.lr_steps) or any(step < 0 for step in self.lr_steps):
            raise bad("lr_steps", "must be increasing epochs >= 0")
        return self

    def for_resolution(self, crop_size: tuple[int, int]) -> "TrainConfig":
        """The effective config at ``crop_size = (w, h)``: epochs and lr steps scaled by the pixel budget
        (see ``reference_pixels``); unchanged when ``reference_pixels`` is 0."""
        if self.reference_pixels <= 0:
            return self
        factor = self.reference_pixels / float(crop_size[0] * crop_size[1])
        epochs = max(1, int(math.floor(self.epochs * factor + 0.5)))
        steps = tuple(min(epochs, max(1, int(math.floor(s * factor + 0.5)))) for s in self.lr_steps)
        return dataclasses.replace(self, epochs=epochs, lr_steps=steps)

    def lr_at(self, epoch: int, step: int) -> float:
        """Learning rate for ``epoch`` (0-based) and global optimizer ``step`` (0-based): steps + warmup."""
        lr = self.lr * self.lr_factor ** sum(1 for s in self.lr_steps if epoch >= s)
        if self.warmup_steps > 0 and step < self.warmup_steps:
            alpha = step / self.warmup_steps
            lr *= self.warmup_ratio + (1.0 - self.warmup_ratio) * alpha
        return lr

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown hyper-parameter(s) {unknown}; valid: {', '.join(sorted(names))}")
        typed = {k: tuple(v) if isinstance(getattr(cls(), k), tuple) else v for k, v in data.items()}
        return cls(**typed)


PROFILES: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    # Embedded data, tiny backbone, two CPU cores: a few minutes end to end (see module docstring).
    "quick": TrainConfig(
        epochs=25,  # at 128x96; 100 at 64x48 (reference_pixels)
        batch_size=32,
        lr=2e-3,
        lr_steps=(20,),
        reference_pixels=128 * 96,
        warmup_steps=20,
        workers=0,  # crops are cut in the training process from decoded images; both cores compute
        cache_images=True,  # the embedded images decoded once (about 0.3 GB): PNG decoding was the bottleneck
        eval_batch_size=64,
        rotation_factor=30.0,
        rotation_prob=0.5,
        scale_factor=0.25,
        half_body_prob=0.0,
        # NHWC: 1.1-1.2x training images/s for the tiny backbone on this CPU (oneDNN), 1 and 2 threads,
        # 64x48 and 128x96 (interleaved A/B, benchmarks/README.md); results/ records before 2026-11-30
        # were trained contiguous, and the experiments holding them pin channels_last = false.
        channels_last=True,
        log_every=5,
    ),
}


def profile_config(name: str) -> TrainConfig:
    """The :class:`TrainConfig` of profile ``name``; an error listing the profiles otherwise."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def parse_hparam(key: str, text: str) -> Any:
    """Type ``--hp key=text`` by the default value of :class:`TrainConfig` field ``key``."""
    defaults = TrainConfig()
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    if key not in names:
        raise ValueError(f"unknown hyper-parameter {key!r} in --hp; valid keys: {', '.join(names)}")
    default = getattr(defaults, key)
    text = text.strip()
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
                raise ValueError
            return low in {"true", "1", "yes", "on"}
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        from lrpose_bench.errors import OptionValueError

        kind = "a comma-separated list of integers" if isinstance(default, tuple) else type(default).__name__
        raise OptionValueError(f"--hp {key}={text!r}: expected {kind}") from None
    return text


def make_config(profile: str, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Profile ``profile`` with ``overrides`` (typed values, or text parsed by :func:`parse_hparam`)."""
    base = profile_config(profile)
    typed = {k: parse_hparam(k, v) if isinstance(v, str) else v for k, v in (overrides or {}).items()}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(typed) - names)
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown}; valid keys: {', '.join(sorted(names))}")
    return dataclasses.replace(base, **typed).validate()


#: TrainConfig fields that configure training augmentation.
AUGMENT_FIELDS: tuple[str, ...] = (
    "flip_prob",
    "scale_factor",
    "rotation_factor",
    "rotation_prob",
    "half_body_prob",
    "half_body_min_joints",
    "half_body_padding",
)

__all__ = [
    "AMP_MODES",
    "AUGMENT_FIELDS",
    "PROFILES",
    "TrainConfig",
    "make_config",
    "parse_hparam",
    "profile_config",
]
