"""One run end to end: dataset -> model -> train (or resume) -> evaluate -> result record.

``run(spec)`` is what ``lrpose run`` calls; :class:`RunSpec` holds the command line in plain types (it is
stored in every checkpoint so that ``lrpose eval --checkpoint`` can rebuild the model).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from lrpose_bench.engine import distributed as D
from lrpose_bench.engine.checkpoint import check_weights_file, checkpoint_path, load_checkpoint
from lrpose_bench.engine.config import AUGMENT_FIELDS, TrainConfig, make_config
from lrpose_bench.engine.env import configure_cpu_threads, git_commit, resolve_device, versions
from lrpose_bench.engine.inference import EvalResult, evaluate
from lrpose_bench.engine.runlock import RunLock, check_run_id, claim_run_dir
from lrpose_bench.engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted
from lrpose_bench.evaluation.coco_eval import record_stats, stats_table  # torch-free; stats_table re-exported
from lrpose_bench.evaluation.engines import require_engine
from lrpose_bench.geometry import format_resolution, parse_resolution
from lrpose_bench.io import read_json, write_json
from lrpose_bench.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from lrpose_bench.method import Geometry, PoseMethod, build_method
from lrpose_bench.models.assemble import check_backbone_for
from lrpose_bench.records import SCHEMA_VERSION, write_record

#: Backbone when ``--backbone`` is not given: the CPU net for the quick profile, HRNet-W32 for the paper's.
DEFAULT_BACKBONE = {"quick": "tiny", "paper": "hrnet_w32"}
#: Hyper-parameters that do not change the trained weights (may differ on ``--resume``).
RESUME_FREE_HPARAMS = {
    "workers", "eval_batch_size", "log_every", "flip_test", "det_score_threshold", "oks_nms_threshold", "cpu_threads",
    "cache_images", "tensorboard", "eval_engine", "compile_mode",  # e.g. off CUDA graphs after a capture failure
}


@dataclass
class RunSpec:
    """A run's command line in plain types (``resolution`` as the paper writes it, ``"HxW"``)."""

    method: str
    resolution: str
    options: dict[str, Any] = field(default_factory=dict)  # method options (--set)
    data: str | None = None  # None = embedded synthetic dataset
    cache_dir: str | None = None
    backbone: str | None = None
    pretrained: str | None = None
    profile: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides (text or typed)
    seed: int = 0
    device: str = "auto"
    det_boxes: str | None = None
    out: str = "results/runs"
    run_id: str | None = None
    experiment: str | None = None
    resume: bool = False
    lowres_protocol: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunResult:
    """What :func:`run` returns on rank 0 (``record`` is the written record.json)."""

    run_dir: Path
    record: dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Building blocks (shared with `lrpose eval` and `lrpose bench train`)
# --------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(method: PoseMethod, geometry: Geometry, backbone: str, pretrained: str | Path | None) -> torch.nn.Module:
    """``PoseModel(backbone, method head, method front, private tails)`` for ``geometry``; pretrained
    weights load into the backbone (the shared path) before any decoupled copy of its last stage is made."""
    from lrpose_bench.models import build_backbone
    from lrpose_bench.models.assemble import assemble_model

    net = build_backbone(backbone, geometry.model_input_size, Path(pretrained) if pretrained else None,
                         trunk_only=method.head_input == "trunk")  # fmt: skip
    return assemble_model(method, geometry, net, NUM_KEYPOINTS)


def augment_config(config: TrainConfig) -> Any:
    """The data pipeline's ``AugmentConfig`` from the augmentation fields of ``config``."""
    from lrpose_bench.data import AugmentConfig

    accepted = {f.name for f in dataclasses.fields(AugmentConfig)}
    return AugmentConfig(**{k: getattr(config, k) for k in AUGMENT_FIELDS if k in accepted})


def make_dataset(
    ann: Path, images: Path, method: PoseMethod, geometry: Geometry, *, train: bool, config: TrainConfig, seed: int,
    lowres_protocol: str, det_file: str | None = None, augment: bool = True,
) -> Any:
    """A ``CocoPoseDataset`` of crops at ``geometry.crop_size`` for ``method`` (augmented if ``train``)."""
    from lrpose_bench.data import CocoPoseDataset

    limit = config.max_train_instances if train else config.max_val_instances
    return CocoPoseDataset(
        ann,
        images,
        crop_size=geometry.crop_size,
        unbiased=method.unbiased,
        train=train and augment,
        augment=augment_config(config) if train and augment else None,
        det_file=Path(det_file) if det_file else None,
        det_score_threshold=config.det_score_threshold,
        lowres_protocol=lowres_protocol,
        max_instances=limit or None,
        seed=seed,
        cache_images=config.cache_images,
        jpeg_reduced_decode=config.jpeg_reduced_decode,
    )


def effective_config(profile: str, hparams: Mapping[str, Any], crop_size: tuple[int, int]) -> TrainConfig:
    """Profile + overrides at ``crop_size``; explicit epochs / lr_steps switch the pixel budget off."""
    overrides = dict(hparams)
    if ("epochs" in overrides or "lr_steps" in overrides) and "reference_pixels" not in overrides:
        overrides["reference_pixels"] = 0
    return make_config(profile, overrides).for_resolution(crop_size)


def resolve_profile(spec: RunSpec) -> str:
    """``--profile``, else ``quick`` on the embedded data and ``paper`` on real data."""
    from lrpose_bench.data.spec import is_embedded  # None, embedded or embedded:VARIANT

    return spec.profile or ("quick" if is_embedded(spec.data) else "paper")


def resolve_backbone(spec: RunSpec, profile: str, method: PoseMethod | None = None) -> tuple[str, str | None]:
    """The run's backbone and, when the profile's default cannot serve ``method`` (e.g. HRNet for a head
    that pools the trunk's deepest map), why the method's ``fallback_backbone`` was taken instead.
    An explicit ``--backbone`` is always kept (and refused later with a clear error if it cannot serve)."""
    if spec.backbone:
        return spec.backbone, None
    default = DEFAULT_BACKBONE.get(profile, "tiny")
    fallback = getattr(method, "fallback_backbone", None)
    if method is None or not fallback:
        return default, None
    try:
        check_backbone_for(method, default)
    except ValueError:
        return fallback, (f"{method.name}: the {profile} profile's {default} cannot serve its head; using {fallback} "
                          f"(--backbone chooses)")
    return default, None


def default_run_id(method: str, resolution: str, backbone: str, seed: int) -> str:
    return f"{method}-{resolution}-{backbone}-s{seed}"


def choose_run_dir(out: Path, run_id: str | None, default_id: str, resume: bool) -> Path:
    """``out/run_id``; a resume must exist; an explicit ``--run-id`` must not (the caller named that
    folder, e.g. a sweep, so silently writing elsewhere would lose track of the run); a default id whose
    folder exists gets ``-2``, ``-3``, ... Neither creates nor locks the folder: a run uses
    :func:`~lrpose_bench.engine.runlock.claim_run_dir`."""
    if run_id is not None:
        check_run_id(run_id)
    base = run_id or default_id
    path = out / base
    if resume:
        if not checkpoint_path(path).is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path(path)} (check --out/--run-id)")
        return path
    if run_id and path.exists():
        raise ValueError(f"--run-id {run_id}: {path} exists; pass --resume to continue it, or another --run-id")
    n = 2
    while path.exists():
        path = out / f"{base}-{n}"
        n += 1
    return path


def _check_resume(ckpt: Mapping[str, Any], spec: RunSpec, config: TrainConfig) -> None:
    stored_run, stored_cfg = ckpt.get("run", {}), ckpt.get("config", {})
    for key in ("method", "resolution", "options", "backbone", "seed", "lowres_protocol", "data"):
        if stored_run.get(key) != getattr(spec, key):
            raise ValueError(
                f"--resume: {key} is {getattr(spec, key)!r} but the checkpoint {ckpt['path']} was trained with "
                f"{stored_run.get(key)!r}; rerun the original command with --resume"
            )
    defaults = TrainConfig().to_dict()  # a key missing from an older checkpoint had its default then
    for key, value in config.to_dict().items():
        stored = stored_cfg.get(key, defaults.get(key))
        if key not in RESUME_FREE_HPARAMS and stored != value:
            raise ValueError(
                f"--resume: hyper-parameter {key}={value!r} differs from the checkpoint's {stored!r} "
                f"({ckpt['path']}); rerun the original command with --resume"
            )


def check_same_dataset(ckpt: Mapping[str, Any], data: Any, action: str) -> None:
    """Refuse to resume or evaluate a checkpoint on data other than it was trained on (the content hash of
    the annotation files; e.g. the embedded dataset after a generator version change). Checkpoints from
    before the hash was stored are checked against the record beside them, when there is one."""
    trained_on = ckpt.get("run", {}).get("dataset_hash")
    if trained_on is None and ckpt.get("path"):
        record = Path(ckpt["path"]).parent.parent / "record.json"
        if record.is_file():
            trained_on = read_json(record, "result record").get("dataset", {}).get("hash")
    if trained_on and trained_on != data.content_hash():
        raise ValueError(
            f"{action}: the checkpoint {ckpt.get('path')} was trained on a dataset with hash {trained_on}, but "
            f"{data.root} has hash {data.content_hash()} (other annotation files, or the embedded dataset of "
            f"another generator version); use the data it was trained on"
        )


# stats_table, stat_text, record_stats: torch-free, in lrpose_bench.evaluation.coco_eval.


def _finite_or_none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
def run(spec: RunSpec, console: Any = None, on_step: Any = None) -> RunResult | None:
    """Train and evaluate one run; writes ``record.json`` and friends on rank 0 and returns them there.

    ``on_step(epoch, step)`` is passed to the :class:`Trainer` (called after every optimizer step).

    Raises ``TrainingDiverged`` on a non-finite loss and ``TrainingInterrupted`` on Ctrl-C (both after
    keeping/writing a resumable checkpoint).
    """
    from lrpose_bench.cli.common import console as default_console
    from lrpose_bench.data import resolve_dataset

    console = console or default_console
    dist_info, device = D.init_distributed(resolve_device(spec.device))
    try:
        return _run(spec, console, dist_info, device, resolve_dataset, on_step)
    finally:
        D.shutdown_distributed()


def _run(
    spec: RunSpec, console: Any, dist_info: D.DistInfo, device: torch.device, resolve_dataset: Any, on_step: Any
) -> RunResult | None:
    say = console.print if dist_info.is_main else (lambda *a, **k: None)
    if spec.run_id is not None:
        check_run_id(spec.run_id)  # before the dataset is generated or read
    res = parse_resolution(spec.resolution)
    resolution = format_resolution(res)
    spec = dataclasses.replace(spec, resolution=resolution)
    profile = resolve_profile(spec)
    method = build_method(spec.method, spec.options)
    backbone, why = resolve_backbone(spec, profile, method)
    if why:
        say(why, highlight=False)
    check_backbone_for(method, backbone)  # before the dataset is generated or read
    geometry = method.geometry(res)  # evaluation sizes
    train_geometry = method.train_geometry(res)  # training sizes (the same for most methods)
    config = effective_config(profile, spec.hparams, geometry.crop_size)
    if config.amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 or off on the CPU")
    require_engine(config.eval_engine, "--hp eval_engine")  # before training, not after it
    configure_cpu_threads(device, config.workers, config.cpu_threads, announce=dist_info.is_main)  # + in the record

    # Dataset: rank 0 generates/caches it first, the others then find it.
    if dist_info.is_main:
        data = resolve_dataset(Path(spec.data) if spec.data else None, Path(spec.cache_dir) if spec.cache_dir else None, need_train=True)
    D.barrier()
    if not dist_info.is_main:
        data = resolve_dataset(Path(spec.data) if spec.data else None, Path(spec.cache_dir) if spec.cache_dir else None, need_train=True)

    if spec.pretrained:
        check_weights_file(spec.pretrained, "--pretrained")  # before anything is written

    # Run folder: rank 0 creates (or opens) and locks it; everyone agrees on the path.
    default_id = default_run_id(spec.method, resolution, backbone, spec.seed)
    claim = claim_run_dir(Path(spec.out), spec.run_id, default_id, spec.resume) if dist_info.is_main else None
    run_dir = Path(D.broadcast_object(str(claim.path) if claim else None))
    spec = dataclasses.replace(spec, backbone=backbone, profile=profile)
    if claim is not None and claim.removed_temps:
        say(f"removed {len(claim.removed_temps)} temporary file(s) a stopped run left in {run_dir}", highlight=False)
    try:
        return _train_and_evaluate(spec, console, dist_info, device, on_step, say, run_dir, data, method, geometry,
                                   train_geometry, config, resolution)  # fmt: skip
    except TrainingDiverged as exc:
        if claim is None or checkpoint_path(run_dir).is_file():
            raise
        removed = claim.abandon()
        head = str(exc).split(" The last good checkpoint", 1)[0]
        raise TrainingDiverged(
            f"{head}. It diverged before its first checkpoint, so there is nothing to resume"
            f"{f' (the empty run folder {run_dir} was removed)' if removed else ''}. "
            "Lower the learning rate (--lr) or check the data."
        ) from None
    except BaseException:
        if claim is not None:
            claim.abandon()  # a run that failed before its first checkpoint leaves no folder behind
        raise
    finally:
        if claim is not None:
            claim.release()


def _train_and_evaluate(
    spec: RunSpec, console: Any, dist_info: D.DistInfo, device: torch.device, on_step: Any, say: Any, run_dir: Path,
    data: Any, method: PoseMethod, geometry: Geometry, train_geometry: Geometry, config: TrainConfig, resolution: str,
) -> RunResult | None:
    """The run proper, in a claimed run folder: build, train (or resume), evaluate, write the record."""
    backbone, profile = spec.backbone, spec.profile
    seed_everything(spec.seed)  # same initial weights on every rank (DDP also broadcasts them)
    model = build_model(method, geometry, backbone, spec.pretrained)
    train_set = make_dataset(data.train_ann, data.train_images, method, train_geometry, train=True, config=config,
                             seed=spec.seed, lowres_protocol=spec.lowres_protocol)  # fmt: skip
    predict_set = make_dataset(data.train_ann, data.train_images, method, train_geometry, train=True, augment=False,
                               config=config, seed=spec.seed, lowres_protocol=spec.lowres_protocol)  # fmt: skip
    val_set = make_dataset(data.val_ann, data.val_images, method, geometry, train=False, config=config, seed=spec.seed,
                           lowres_protocol=spec.lowres_protocol, det_file=spec.det_boxes)  # fmt: skip
    run_meta = spec.to_dict() | {"hparams": config.to_dict(), "num_keypoints": NUM_KEYPOINTS,
                                 "dataset_hash": data.content_hash()}  # fmt: skip
    trainer = Trainer(model, method, train_geometry, config, device, seed=spec.seed, run_dir=run_dir, run_meta=run_meta,
                      dist_info=dist_info, console=console, on_step=on_step)  # fmt: skip
    if spec.resume and checkpoint_path(run_dir).is_file():
        ckpt = load_checkpoint(checkpoint_path(run_dir), map_location=device)
        _check_resume(ckpt, spec, config)
        check_same_dataset(ckpt, data, "--resume")
        trainer.load_state(ckpt)
        say(f"resuming {run_dir} from epoch {trainer.state.epoch + 1}, step {trainer.state.step + 1}", highlight=False)
    elif spec.resume:
        say(f"--resume: {run_dir} has no checkpoint (its run stopped before the first one): starting it from scratch",
            highlight=False, markup=False)  # fmt: skip
    if dist_info.is_main:
        say(
            f"run {run_dir}: {spec.method} {resolution} backbone {backbone}, profile {profile}, "
            f"{len(train_set)} train / {len(val_set)} val instances, {config.epochs} epochs on {device}",
            highlight=False,
            markup=False,
        )
    try:
        summary = trainer.fit(train_set, predict_set)
    except TrainingInterrupted as exc:
        resume_hint = f"resume with the same command plus --resume --run-id {run_dir.name} --out {run_dir.parent}"
        raise TrainingInterrupted(f"{exc}. {resume_hint}", exc.path, exc.epoch, exc.step) from None

    try:
        result = evaluate(
            trainer.model, method, geometry, val_set, device,
            batch_size=config.eval_batch_size, workers=config.workers, flip=config.flip_test, amp=config.amp,
            channels_last=trainer.channels_last, oks_nms_threshold=config.oks_nms_threshold, progress=True,
            engine=require_engine(config.eval_engine, "eval_engine"),
        )  # fmt: skip
    except KeyboardInterrupt:
        path = checkpoint_path(run_dir)
        raise TrainingInterrupted(
            f"interrupted during the evaluation; the trained model is saved in {path}. Evaluate it with the same "
            f"command plus --resume --run-id {run_dir.name} --out {run_dir.parent}", path, trainer.state.epoch, 0,
        ) from None
    if not dist_info.is_main or result is None:
        return None

    cost = _cost(trainer.model, geometry)
    record = build_record(
        spec=spec, run_dir=run_dir, method=method, geometry=geometry, config=config, data=data,
        train_instances=len(train_set), val_set=val_set, result=result, summary=summary, cost=cost, device=device,
        world_size=dist_info.world_size,
    )  # fmt: skip
    record["dataset"]["counts"] = {"train": dict(train_set.counts), "val": dict(val_set.counts)}
    write_outputs(run_dir, record, result, method)
    console.print(stats_table(result.stats, f"{run_dir.name}: {spec.method} {resolution} ({val_set.boxes} boxes)"))
    if result.mean_error is not None:
        say(f"mean keypoint error {result.mean_error:.2f} px (image); record: {run_dir / 'record.json'}", highlight=False)
    if result.error_types is not None:
        from lrpose_bench.evaluation import format_error_types

        say(format_error_types(result.error_types), highlight=False)
    return RunResult(run_dir, record)


def _cost(model: torch.nn.Module, geometry: Geometry) -> dict[str, Any]:
    from lrpose_bench.models import model_cost

    cost: dict[str, Any] = {"model": model_cost(model, geometry.crop_size, repeats=3)}
    if getattr(model, "has_front", False):
        cost["front"] = model_cost(model.front, geometry.crop_size, repeats=3)
    return cost


def build_record(
    *, spec: RunSpec, run_dir: Path, method: PoseMethod, geometry: Geometry, config: TrainConfig, data: Any,
    train_instances: int, val_set: Any, result: EvalResult, summary: Any, cost: dict[str, Any], device: torch.device,
    world_size: int = 1,
) -> dict[str, Any]:
    """The result record (see :mod:`lrpose_bench.records`) of a finished run."""
    per_joint: dict[str, float | None] = {}
    if result.per_joint_error is not None:
        per_joint = {n: _finite_or_none(float(v)) for n, v in zip(KEYPOINT_NAMES, result.per_joint_error)}
    mean = result.mean_error if result.mean_error is not None else float("nan")
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "experiment": spec.experiment,
        "method": method.describe(),
        "backbone": spec.backbone,
        "resolution": spec.resolution,
        "input_size": list(geometry.crop_size),
        "model_input_size": list(geometry.model_input_size),
        "heatmap_size": list(geometry.heatmap_size),
        "dataset": {
            "name": data.name,
            "root": str(data.root),
            "hash": data.content_hash(),
            "train_instances": int(train_instances),
            "val_instances": int(len(val_set)),
        },
        "boxes": str(val_set.boxes),
        "profile": spec.profile,
        "hparams": config.to_dict(),
        "seed": spec.seed,
        "stats": record_stats(result.stats),
        "eval_engine": config.eval_engine,  # which COCO evaluation engine computed "stats"
        "per_joint_error_px": per_joint,
        "mean_error_px": float(mean),
        "train_images_per_s": float(summary.images_per_s),
        "train_seconds": float(summary.seconds),
        "eval_seconds": float(result.seconds),
        "versions": versions(device, world_size),
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # extras
        "stages": summary.stage_facts,
        "cost": cost,
        "skipped_images": int(summary.skipped_images + result.skipped_images),
        "lowres_protocol": spec.lowres_protocol,
        "pretrained": spec.pretrained,
        "det_score_threshold": config.det_score_threshold if spec.det_boxes else None,
        "error_types": result.error_types,  # GT boxes: keypoint error types (good/jitter/inversion/swap/miss)
    }


def write_outputs(run_dir: Path, record: dict[str, Any], result: EvalResult, method: PoseMethod) -> None:
    """predictions.json, method.json, coarse_errors.npz, then record.json (last: it marks completion)."""
    from lrpose_bench.io import atomic_path

    write_json(run_dir / "predictions.json", result.results, indent=None)
    artifacts = method.artifacts()
    if artifacts:
        write_json(run_dir / "method.json", artifacts)
    if result.coarse_errors is not None:
        with atomic_path(run_dir / "coarse_errors.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, errors=result.coarse_errors.astype(np.float32), valid=result.coarse_valid.astype(bool))
    write_record(run_dir, record)


# --------------------------------------------------------------------------------------------------
# Re-evaluation of a saved run (`lrpose eval --checkpoint`)
# --------------------------------------------------------------------------------------------------
def update_record(run_dir: Path, result: EvalResult, boxes: str, flip: bool, engine: str = "pycocotools") -> dict[str, Any]:
    """Rewrite the evaluation fields of ``run_dir/record.json`` (stats, per-joint and mean errors, error
    types, eval time) and ``predictions.json`` from ``result``, e.g. to add metrics that a newer evaluator
    computes. The evaluation must use the record's boxes and flip setting; ``reevaluated`` notes when, by
    which commit, and the AP before; ``engine`` is the evaluation engine that scored ``result``. Returns the
    new record."""
    record = read_json(run_dir / "record.json", "result record")
    if boxes != record.get("boxes") or flip != record.get("hparams", {}).get("flip_test", True):
        raise ValueError(
            f"--update-record: {run_dir}/record.json was evaluated with boxes {record.get('boxes')!r}, flip "
            f"{record.get('hparams', {}).get('flip_test')}; this evaluation used boxes {boxes!r}, flip {flip}"
        )
    before = record["stats"].get("AP")
    record |= {
        "stats": record_stats(result.stats),
        "eval_engine": engine,
        "per_joint_error_px": (
            {n: _finite_or_none(float(v)) for n, v in zip(KEYPOINT_NAMES, result.per_joint_error)}
            if result.per_joint_error is not None else record["per_joint_error_px"]
        ),
        "mean_error_px": float(result.mean_error) if result.mean_error is not None else record["mean_error_px"],
        "error_types": result.error_types,
        "eval_seconds": float(result.seconds),
        "reevaluated": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "git_commit": git_commit(), "AP_before": before},
    }  # fmt: skip
    with RunLock(run_dir):  # never while a run writes this folder
        write_json(run_dir / "predictions.json", result.results, indent=None)
        write_record(run_dir, record)
    return record


def evaluate_checkpoint(
    checkpoint: str | Path, *, det_boxes: str | None = None, flip: bool | None = None, device: str = "auto",
    workers: int | None = None, det_score_threshold: float | None = None, eval_engine: str | None = None,
) -> tuple[EvalResult, dict[str, Any]]:
    """Rebuild the model stored in ``checkpoint`` (a run folder or a ``.pt``) and evaluate it on the
    validation split of its dataset (scored by ``eval_engine``, default the run's); returns the result and
    the checkpoint's run spec (plus ``boxes``, ``epoch``, ``eval_engine``)."""
    from lrpose_bench.data import resolve_dataset

    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    configure_cpu_threads(dev, workers if workers is not None else int(ckpt["config"].get("workers", 0)))
    meta = dict(ckpt["run"])
    spec = RunSpec(**{k: meta[k] for k in RunSpec.__dataclass_fields__ if k in meta})
    config = TrainConfig.from_dict(ckpt["config"])
    overrides: dict[str, Any] = {}
    if flip is not None:
        overrides["flip_test"] = flip
    if workers is not None:
        overrides["workers"] = workers
    if det_score_threshold is not None:
        overrides["det_score_threshold"] = det_score_threshold
    if eval_engine is not None:
        overrides["eval_engine"] = eval_engine
    config = dataclasses.replace(config, **overrides).validate()
    require_engine(config.eval_engine, "--engine" if eval_engine is not None else "the run's eval_engine")
    method = build_method(spec.method, spec.options)
    method.load_state_dict(ckpt.get("method", {}))
    geometry = method.geometry(parse_resolution(spec.resolution))
    model = build_model(method, geometry, spec.backbone or "tiny", None)
    model.load_state_dict(ckpt["model"])
    model.to(dev)
    data = resolve_dataset(Path(spec.data) if spec.data else None, Path(spec.cache_dir) if spec.cache_dir else None)
    check_same_dataset(ckpt, data, "lrpose eval")
    val_set = make_dataset(data.val_ann, data.val_images, method, geometry, train=False, config=config, seed=spec.seed,
                           lowres_protocol=spec.lowres_protocol, det_file=det_boxes)  # fmt: skip
    result = evaluate(
        model, method, geometry, val_set, dev, batch_size=config.eval_batch_size, workers=config.workers,
        flip=config.flip_test, amp=config.amp, oks_nms_threshold=config.oks_nms_threshold, progress=True,
        engine=require_engine(config.eval_engine, "eval_engine"),
    )  # fmt: skip
    assert result is not None  # single process
    meta["eval_engine"] = config.eval_engine
    meta["boxes"] = str(val_set.boxes)
    meta["epoch"] = int(ckpt["epoch"])
    return result, meta
