"""``lrpose eval --weights FILE``: evaluate an imported checkpoint (official HRNet or MMPose 1.x layout)
with one of our methods at any input resolution, on any COCO keypoint dataset.

The crop is cut at ``--res`` (the low resolution) and fed to the network as it is. Two options change that:

* ``test_upsample = (W, H)`` (``--test-upsample HxW``, the checkpoint's training size): the low-res crop is
  upsampled (bicubic, pixel areas aligned: ``x_big = (x + 0.5) * W / w - 0.5``) to the training size before
  the network, and the heatmap works at that size; coordinates come back in low-res crop px.
* ``pad``: sides that the backbone cannot take (HRNet with four stage-4 branches and ResNet need
  multiples of 32) are padded at the right and bottom with zeros (the mean colour after normalisation)
  up to the next multiple of 32, and the outputs are cut back to the crop's heatmap. Padding at the far
  sides leaves every pixel's coordinates unchanged.

Nothing is trained: the record (with ``--out``) has zero training time, ``profile`` ``"imported"`` (or
``"imported-upsample<H>x<W>"``) and a ``weights`` field with the file, its SHA-256 and the layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lrpose_bench.geometry import AxisMap, format_resolution, input_to_heatmap, parse_resolution
from lrpose_bench.method import Geometry, PoseMethod, build_method, method_class

#: Side multiple that ``pad`` rounds up to (HRNet's four stage-4 branches and ResNet's stride 32).
PAD_MULTIPLE = 32


@dataclass
class WeightsSpec:
    """What ``lrpose eval --weights`` was asked for (resolutions are ``(width, height)`` px)."""

    weights: str
    fmt: str
    method: str
    backbone: str
    resolution: tuple[int, int]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    test_upsample: tuple[int, int] | None = None
    pad: bool = False
    data: str | None = None
    cache_dir: str | None = None
    det_boxes: str | None = None
    det_score_threshold: float | None = None
    flip: bool = True
    device: str = "auto"
    workers: int | None = None
    batch_size: int | None = None
    lowres_protocol: str = "direct"
    out: str | None = None
    run_id: str | None = None
    experiment: str | None = None


class UpsampleFront(nn.Module):
    """Normalised crops ``(B, 3, h, w)`` -> bicubic upsampling to ``size = (W, H)`` (align_corners=False)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.shape[-1], x.shape[-2]) == self.size:
            return x
        return F.interpolate(x, size=(self.size[1], self.size[0]), mode="bicubic", align_corners=False)


class PaddedModel(nn.Module):
    """Runs ``model`` on crops padded at the right/bottom to ``padded = (W, H)`` and cuts every spatial
    output ``(..., h', w')`` back to ``heatmap = (w, h)`` (heatmap px keep their coordinates)."""

    def __init__(self, model: nn.Module, padded: tuple[int, int], heatmap: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.padded, self.heatmap = padded, heatmap

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = images.shape[-2:]
        x = F.pad(images, (0, self.padded[0] - w, 0, self.padded[1] - h))
        out = self.model(x)
        return {k: v[..., : self.heatmap[1], : self.heatmap[0]] if v.dim() >= 4 else v for k, v in out.items()}


def with_test_upsample(method: PoseMethod, train_size: tuple[int, int]) -> PoseMethod:
    """A copy of ``method`` whose model sees the low-res crop upsampled to ``train_size = (W, H)``.

    Same class behaviour (codecs, flip, name), with :meth:`geometry` and :meth:`build_front` replaced:
    crop = ``--res``, model input = ``train_size``, heatmap = ``train_size / stride``, and
    ``crop_to_heatmap`` composes the area-aligned upsampling with the method's input -> heatmap map.
    """
    base = type(method)
    size = (int(train_size[0]), int(train_size[1]))

    def geometry(self: PoseMethod, resolution: tuple[int, int]) -> Geometry:
        w, h = resolution
        big = base.geometry(self, size)
        up = AxisMap(scale=(size[0] / w, size[1] / h), offset=(0.5 * size[0] / w - 0.5, 0.5 * size[1] / h - 0.5))
        return Geometry(crop_size=(w, h), model_input_size=size, heatmap_size=big.heatmap_size,
                        crop_to_heatmap=up.then(input_to_heatmap(size, big.heatmap_size, self.unbiased)))  # fmt: skip

    def build_front(self: PoseMethod, geometry: Geometry) -> nn.Module:
        return UpsampleFront(geometry.model_input_size)

    cls = type(f"{base.__name__}TestUpsample", (base,), {"geometry": geometry, "train_geometry": geometry,
                                                          "build_front": build_front})  # fmt: skip
    return cls(method.options)


def padded_size(size: tuple[int, int], multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """``size = (w, h)`` rounded up to multiples of ``multiple``."""
    return (math.ceil(size[0] / multiple) * multiple, math.ceil(size[1] / multiple) * multiple)


def import_method(spec: WeightsSpec) -> PoseMethod:
    """The method of ``spec``; options it has and the user did not set follow the official network
    (``network=shared``: one 1x1 final layer on the backbone's output)."""
    names = {f.name for f in dataclasses.fields(method_class(spec.method).Options)}
    options: dict[str, Any] = dict(spec.options)
    if "network" in names and "network" not in options:
        options["network"] = "shared"
    method = build_method(spec.method, options)
    return with_test_upsample(method, spec.test_upsample) if spec.test_upsample else method


def build_imported_model(
    spec: WeightsSpec, method: PoseMethod, geometry: Geometry, state: Mapping[str, torch.Tensor]
) -> tuple[nn.Module, dict[str, Any]]:
    """Our model for ``spec`` with the checkpoint ``state`` loaded (padded where ``spec.pad`` asks).

    Returns the model and facts for the record (``padded_input``, loaded tensors and parameters).
    """
    from lrpose_bench.engine.runner import build_model
    from lrpose_bench.models import hrnet_branches
    from lrpose_bench.models.checkpoint_import import (
        CheckpointImportError,
        hrnet_branches_of,
        load_into,
        official_layout,
    )

    size = geometry.model_input_size
    branches = hrnet_branches_of(official_layout(state, spec.fmt))
    res = format_resolution(size)
    needs_pad = size[0] % PAD_MULTIPLE or size[1] % PAD_MULTIPLE
    if needs_pad and not spec.pad and (branches == 4 or spec.backbone.startswith("resnet")):
        why = "its four stage-4 branches" if branches == 4 else "its stride-32 trunk"
        raise CheckpointImportError(
            f"--res {res}: the checkpoint's {spec.backbone} needs both sides to be multiples of {PAD_MULTIPLE} "
            f"({why}); add --pad (pads the crop to {format_resolution(padded_size(size))}) or "
            "--test-upsample HxW (the checkpoint's training size)"
        )
    build_size = padded_size(size) if (spec.pad and needs_pad) else size
    if branches and hrnet_branches(build_size) != branches:
        raise CheckpointImportError(
            f"--res {format_resolution(build_size)}: the checkpoint's HRNet has {branches} stage-4 branches, "
            f"but at this size the backbone gets {hrnet_branches(build_size)}"
        )
    model = build_model(method, dataclasses.replace(geometry, model_input_size=build_size), spec.backbone, None)
    facts = load_into(model, state, spec.fmt)
    if build_size != size:
        model = PaddedModel(model, build_size, geometry.heatmap_size)
    facts["padded_input"] = list(build_size) if build_size != size else None
    return model, facts


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def evaluate_weights(spec: WeightsSpec, console: Any = None) -> tuple[Any, dict[str, Any]]:
    """Load ``spec.weights`` into our model and evaluate it on the validation split of ``spec.data``.

    Returns ``(EvalResult, meta)``; with ``spec.out`` also writes a run folder (record.json,
    predictions.json) and puts its path under ``meta["run_dir"]``.
    """
    from lrpose_bench.data import resolve_dataset
    from lrpose_bench.engine.config import make_config
    from lrpose_bench.engine.env import configure_cpu_threads, resolve_device
    from lrpose_bench.engine.inference import evaluate
    from lrpose_bench.engine.runner import make_dataset
    from lrpose_bench.models import BACKBONES
    from lrpose_bench.models.checkpoint_import import FORMATS, read_state_dict

    if spec.fmt not in FORMATS:
        raise ValueError(f"--format {spec.fmt!r} is not one of {', '.join(FORMATS)}")
    if spec.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {spec.backbone!r}; valid backbones: {', '.join(BACKBONES)}")
    weights = Path(spec.weights).expanduser()
    state = read_state_dict(weights)
    method = import_method(spec)
    geometry = method.geometry(spec.resolution)
    model, facts = build_imported_model(spec, method, geometry, state)
    device = resolve_device(spec.device)
    overrides: dict[str, Any] = {"flip_test": spec.flip}
    for key, value in (("workers", spec.workers), ("eval_batch_size", spec.batch_size),
                       ("det_score_threshold", spec.det_score_threshold)):  # fmt: skip
        if value is not None:
            overrides[key] = value
    config = make_config("paper", overrides)
    configure_cpu_threads(device, config.workers, config.cpu_threads)
    data = resolve_dataset(Path(spec.data) if spec.data else None, Path(spec.cache_dir) if spec.cache_dir else None)
    val_set = make_dataset(data.val_ann, data.val_images, method, geometry, train=False, config=config, seed=0,
                           lowres_protocol=spec.lowres_protocol, det_file=spec.det_boxes)  # fmt: skip
    model.to(device)
    result = evaluate(
        model, method, geometry, val_set, device, batch_size=config.eval_batch_size, workers=config.workers,
        flip=config.flip_test, amp=config.amp, oks_nms_threshold=config.oks_nms_threshold, progress=True,
    )  # fmt: skip
    assert result is not None  # single process
    resolution = format_resolution(spec.resolution)
    profile = "imported" + (f"-upsample{format_resolution(spec.test_upsample)}" if spec.test_upsample else "")
    weights_info = {
        "file": str(weights), "sha256": sha256_of(weights), "format": spec.fmt,
        "test_upsample": format_resolution(spec.test_upsample) if spec.test_upsample else None,
        "padded_input": facts["padded_input"], "tensors": facts["tensors"],
    }  # fmt: skip
    meta: dict[str, Any] = {
        "method": method.name, "resolution": resolution, "backbone": spec.backbone, "boxes": str(val_set.boxes),
        "profile": profile, "weights": weights_info, "parameters": facts["parameters"],
    }  # fmt: skip
    if spec.out:
        meta["run_dir"] = _write_run(spec, method, geometry, config, data, val_set, result, device, model, meta)
    return result, meta


def _write_run(spec: WeightsSpec, method: PoseMethod, geometry: Geometry, config: Any, data: Any, val_set: Any,
               result: Any, device: torch.device, model: nn.Module, meta: dict[str, Any]) -> Path:
    """The run folder of an imported checkpoint's evaluation: record.json + predictions.json."""
    from lrpose_bench.engine.runner import RunSpec, build_record, choose_run_dir, write_outputs
    from lrpose_bench.engine.trainer import TrainSummary
    from lrpose_bench.models import model_cost

    resolution = meta["resolution"]
    default_id = f"{spec.method}-{resolution}-{spec.backbone}-{Path(spec.weights).stem}"
    run_dir = choose_run_dir(Path(spec.out), spec.run_id, default_id, resume=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_spec = RunSpec(method=spec.method, resolution=resolution, options=dict(spec.options), data=spec.data,
                       backbone=spec.backbone, profile=meta["profile"], seed=0, device=spec.device,
                       det_boxes=spec.det_boxes, out=str(spec.out), run_id=run_dir.name, experiment=spec.experiment,
                       lowres_protocol=spec.lowres_protocol)  # fmt: skip
    summary = TrainSummary(images_per_s=0.0, seconds=0.0, stage_facts=[], skipped_images=0, log_rows=[])
    cost = {"model": model_cost(model, geometry.crop_size, repeats=3)}
    record = build_record(
        spec=run_spec, run_dir=run_dir, method=method, geometry=geometry, config=config, data=data,
        train_instances=0, val_set=val_set, result=result, summary=summary, cost=cost, device=device,
    )  # fmt: skip
    record["weights"] = meta["weights"]
    write_outputs(run_dir, record, result, method)
    return run_dir


def parse_size(value: str, option: str) -> tuple[int, int]:
    """``HxW`` -> ``(width, height)``; a ``ValueError`` naming ``option`` otherwise."""
    try:
        return parse_resolution(value)
    except ValueError as exc:
        raise ValueError(f"{option} {value!r}: {exc}") from None


__all__ = ["PAD_MULTIPLE", "PaddedModel", "UpsampleFront", "WeightsSpec", "evaluate_weights", "with_test_upsample"]
