"""``lrpose run`` (train + evaluate one method at one resolution) and ``lrpose eval`` (score a run again,
or score a COCO results file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from lrpose_bench.cli.common import (
    DATA_HELP,
    UserError,
    console,
    err_console,
    fail,
    parse_res,
    seed_value,
    parse_set,
    run_guarded,
)

#: ``--sr/--sr-scale/--sr-weights`` are shorthands for these method options.
SR_SHORTHANDS = {"sr": "sr", "sr_scale": "sr_scale", "sr_weights": "sr_weights"}


def _method_options(method: str, sets: dict[str, str], shorthands: dict[str, Any]) -> dict[str, str]:
    """``--set`` options plus the ``--sr*`` shorthands, checked against the method's option names."""
    import dataclasses

    from lrpose_bench.method import method_class

    cls = method_class(method)
    names = {f.name for f in dataclasses.fields(cls.Options)}
    options = dict(sets)
    for key, value in shorthands.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key not in names:
            raise UserError(f"{flag}: method {method!r} has no option {key!r}; options: {', '.join(sorted(names)) or '(none)'}")
        if key in options:
            raise UserError(f"{flag} and --set {key}=... both given; use one")
        options[key] = str(value)
    for key in options:
        if key not in names:
            raise UserError(f"--set {key}: method {method!r} has no option {key!r}; options: {', '.join(sorted(names)) or '(none)'}")
    return options


def _check_backbone(name: str | None) -> None:
    if name is None:
        return
    from lrpose_bench.models import BACKBONES

    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)}")


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``eval`` to the ``lrpose`` app."""

    @app.command("run")
    def run_command(
        method: str = typer.Option(..., "--method", "-m", help="Method to train (see `lrpose methods`)."),
        res: str = typer.Option(..., "--res", help="Input resolution HxW as the paper writes it, e.g. 128x96 or 64x48."),
        data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
        backbone: Optional[str] = typer.Option(None, "--backbone", help="Backbone (default: tiny with the quick profile, hrnet_w32 with paper)."),
        pretrained: Optional[Path] = typer.Option(None, "--pretrained", help="Local file with ImageNet weights for the backbone."),
        profile: Optional[str] = typer.Option(None, "--profile", help="Hyper-parameter profile: quick | paper (default: quick on the embedded data, paper on real data)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs, taken as given (the quick profile otherwise scales its 25 epochs at 128x96 by pixel count, e.g. 100 at 64x48)."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Override the base learning rate."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the batch size (per process)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (0 = load in the main process)."),
        seed: int = typer.Option(0, "--seed", parser=seed_value, help="Random seed (weights, data order, augmentation): an integer in [0, 2^32)."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="Method option key=value (repeatable; see `lrpose methods`)."),
        hp: Optional[list[str]] = typer.Option(None, "--hp", help="Any training hyper-parameter key=value (repeatable), e.g. --hp lr_steps=8,10."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        amp: Optional[str] = typer.Option(None, "--amp", help="Mixed precision: off | bf16 | fp16 (fp16 needs CUDA)."),
        flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Flip test at evaluation (default on)."),
        det_boxes: Optional[Path] = typer.Option(None, "--det-boxes", help="Evaluate on person detections (COCO detection-results json) instead of ground-truth boxes."),
        det_score_threshold: Optional[float] = typer.Option(None, "--det-score-threshold", help="Drop detections scoring below this."),
        out: Path = typer.Option(Path("results/runs"), "--out", help="Folder that holds run folders."),
        run_id: Optional[str] = typer.Option(None, "--run-id", help="Run folder name (default <method>-<HxW>-<backbone>-s<seed>, suffixed if taken)."),
        experiment: Optional[str] = typer.Option(None, "--experiment", help="Experiment name stored in the record."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run from its checkpoints/last.pt."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache folder for the embedded dataset (default $LRPOSE_CACHE or ~/.cache/lrpose-bench)."),
        sr: Optional[str] = typer.Option(None, "--sr", help="Shorthand for --set sr=MODEL (methods with a super-resolution front)."),
        sr_scale: Optional[int] = typer.Option(None, "--sr-scale", help="Shorthand for --set sr_scale=N."),
        sr_weights: Optional[Path] = typer.Option(None, "--sr-weights", help="Shorthand for --set sr_weights=PATH."),
        lowres_protocol: str = typer.Option("direct", "--lowres-protocol", help="How low-resolution crops are made: direct (bilinear warp, as the paper) | antialias."),
        threads: Optional[int] = typer.Option(None, "--threads", min=0, help="Torch CPU threads (shorthand for --hp cpu_threads=N; 0 = automatic: the cores not used by DataLoader workers; AP depends on it on the CPU)."),
    ) -> None:
        """Train METHOD at --res on the dataset, evaluate it (COCO keypoint AP) and write a result record."""
        parse_res(res)  # exit 2 on a malformed --res
        run_guarded(
            _run,
            method=method, res=res, data=data, backbone=backbone, pretrained=pretrained, profile=profile, epochs=epochs,
            lr=lr, batch_size=batch_size, workers=workers, seed=seed, sets=parse_set(set_), hp=parse_set(hp),
            device=device, amp=amp, flip=flip, det_boxes=det_boxes, det_score_threshold=det_score_threshold, out=out,
            run_id=run_id, experiment=experiment, resume=resume, cache_dir=cache_dir,
            shorthands={"sr": sr, "sr_scale": sr_scale, "sr_weights": sr_weights}, lowres_protocol=lowres_protocol,
            threads=threads,
        )  # fmt: skip

    @app.command("eval")
    def eval_command(
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A run folder or its checkpoints/last.pt: re-evaluate that model."),
        predictions: Optional[Path] = typer.Option(None, "--predictions", help="A COCO keypoint results json to score (with --annotations)."),
        annotations: Optional[Path] = typer.Option(None, "--annotations", help="Ground-truth COCO keypoint annotations json (with --predictions)."),
        det_boxes: Optional[Path] = typer.Option(None, "--det-boxes", help="Evaluate on person detections instead of ground-truth boxes (--checkpoint)."),
        det_score_threshold: Optional[float] = typer.Option(None, "--det-score-threshold", help="Drop detections scoring below this."),
        flip: bool = typer.Option(True, "--flip/--no-flip", help="Flip test (--checkpoint)."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes."),
        as_json: bool = typer.Option(False, "--json", help="Print the stats as JSON instead of a table."),
        engine: Optional[str] = typer.Option(
            None, "--engine",
            help="COCO evaluation engine: pycocotools (the reference; default with --predictions) | faster-coco-eval | "
                 "hotcoco (both equal to pycocotools bit for bit, faster). With --checkpoint the run's own engine "
                 "(hyper-parameter eval_engine) unless given.",
        ),  # fmt: skip
        update_record: bool = typer.Option(
            False, "--update-record",
            help="With --checkpoint RUN: write this evaluation into the run's record.json and predictions.json "
                 "(adds metrics of a newer evaluator; same boxes and flip setting as the record).",
        ),  # fmt: skip
        weights: Optional[Path] = typer.Option(None, "--weights", help="Bring your own checkpoint: an official HRNet pose (or pose_resnet) or MMPose 1.x top-down state dict to evaluate with --method/--backbone/--res."),
        weights_format: str = typer.Option("auto", "--format", help="Key layout of --weights: hrnet (conv1.*, stage4.*, final_layer.*) | mmpose (backbone.*, head.final_layer.*) | auto (read from the keys)."),
        method: Optional[str] = typer.Option(None, "--method", "-m", help="With --weights: the method whose head and decoding the checkpoint matches: heatmap | dark | udp (see `lrpose methods`)."),
        backbone: Optional[str] = typer.Option(None, "--backbone", help="With --weights: the checkpoint's backbone, e.g. hrnet_w32, hrnet_w48, resnet50."),
        res: Optional[str] = typer.Option(None, "--res", help="With --weights: input resolution HxW at which the crop is cut and fed, e.g. 64x48."),
        data: Optional[Path] = typer.Option(None, "--data", help="With --weights: " + DATA_HELP),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="With --weights: method option key=value (repeatable; see `lrpose methods --verbose`)."),
        test_upsample: Optional[str] = typer.Option(None, "--test-upsample", help="With --weights: feed the low-res crop upsampled (bicubic) to this size HxW, the checkpoint's training size (e.g. 256x192), instead of as is."),
        pad: bool = typer.Option(False, "--pad", help="With --weights: pad the crop at the right and bottom to sides that are multiples of 32 when the backbone needs them (HRNet's four branches, ResNet); outputs are cut back."),
        out: Optional[Path] = typer.Option(None, "--out", help="With --weights: also write a run folder (record.json, predictions.json) under this folder, for `lrpose report`."),
        run_id: Optional[str] = typer.Option(None, "--run-id", help="With --weights --out: run folder name (default <method>-<HxW>-<backbone>-<file stem>)."),
        experiment: Optional[str] = typer.Option(None, "--experiment", help="With --weights --out: experiment name stored in the record."),
    ) -> None:
        """Score a saved run again (--checkpoint), a COCO results file (--predictions + --annotations), or an
        imported HRNet / MMPose checkpoint at any resolution (--weights with --method, --backbone, --res)."""
        if weights is not None:
            if checkpoint is not None or predictions is not None or update_record or engine is not None:
                fail("--weights evaluates an imported checkpoint: --checkpoint, --predictions, --update-record and "
                     "--engine do not apply", 2)  # fmt: skip
            from lrpose_bench.cli.weights_cmd import eval_weights

            run_guarded(
                eval_weights, weights=weights, fmt=weights_format, method=method, backbone=backbone, res=res,
                data=data, sets=parse_set(set_), test_upsample=test_upsample, pad=pad, det_boxes=det_boxes,
                det_score_threshold=det_score_threshold, flip=flip, device=device, workers=workers,
                as_json=as_json, out=out, run_id=run_id, experiment=experiment,
            )  # fmt: skip
            return
        used = [flag for flag, value in (("--method", method), ("--backbone", backbone), ("--res", res),
                ("--data", data), ("--set", set_), ("--test-upsample", test_upsample), ("--pad", pad or None),
                ("--out", out), ("--run-id", run_id), ("--experiment", experiment)) if value is not None]  # fmt: skip
        if used:
            fail(f"{', '.join(used)}: only with --weights FILE", 2)
        if (checkpoint is None) == (predictions is None):
            fail("give either --checkpoint RUN, or --predictions P.json with --annotations GT.json, or --weights FILE", 2)
        if predictions is not None and annotations is None:
            fail("--predictions needs --annotations GT.json", 2)
        if update_record and checkpoint is None:
            fail("--update-record needs --checkpoint RUN", 2)
        run_guarded(
            _eval, checkpoint=checkpoint, predictions=predictions, annotations=annotations, det_boxes=det_boxes,
            det_score_threshold=det_score_threshold, flip=flip, device=device, workers=workers, as_json=as_json,
            update_record=update_record, engine=engine,
        )  # fmt: skip


def _run(
    *, method: str, res: str, data: Path | None, backbone: str | None, pretrained: Path | None, profile: str | None,
    epochs: int | None, lr: float | None, batch_size: int | None, workers: int | None, seed: int,
    sets: dict[str, str], hp: dict[str, str], device: str, amp: str | None, flip: bool | None,
    det_boxes: Path | None, det_score_threshold: float | None, out: Path, run_id: str | None, experiment: str | None,
    resume: bool, cache_dir: Path | None, shorthands: dict[str, Any], lowres_protocol: str, threads: int | None = None,
) -> None:
    from lrpose_bench.engine.config import PROFILES, parse_hparam
    from lrpose_bench.engine.runner import RunSpec, run
    from lrpose_bench.engine.trainer import TrainingDiverged, TrainingInterrupted

    options = _method_options(method, sets, shorthands)
    _check_backbone(backbone)
    if profile is not None and profile not in PROFILES:
        raise UserError(f"--profile {profile!r}: valid profiles: {', '.join(PROFILES)}")
    hparams: dict[str, Any] = {k: parse_hparam(k, v) for k, v in hp.items()}
    for key, value in {"epochs": epochs, "lr": lr, "batch_size": batch_size, "workers": workers, "amp": amp,
                       "flip_test": flip, "det_score_threshold": det_score_threshold, "cpu_threads": threads}.items():  # fmt: skip
        if value is not None:
            hparams[key] = value
    if det_boxes is not None and not det_boxes.is_file():
        raise UserError(f"--det-boxes: file not found: {det_boxes}")
    spec = RunSpec(
        method=method, resolution=res, options=options, data=str(data) if data else None,
        cache_dir=str(cache_dir) if cache_dir else None, backbone=backbone,
        pretrained=str(pretrained) if pretrained else None, profile=profile, hparams=hparams, seed=seed, device=device,
        det_boxes=str(det_boxes) if det_boxes else None, out=str(out), run_id=run_id, experiment=experiment,
        resume=resume, lowres_protocol=lowres_protocol,
    )  # fmt: skip
    try:
        run(spec, console=console)
    except TrainingDiverged as exc:
        raise UserError(str(exc), 3) from None
    except TrainingInterrupted as exc:
        raise UserError(str(exc), 130) from None


def _eval(
    *, checkpoint: Path | None, predictions: Path | None, annotations: Path | None, det_boxes: Path | None,
    det_score_threshold: float | None, flip: bool, device: str, workers: int | None, as_json: bool,
    update_record: bool = False, engine: str | None = None,
) -> None:
    """``lrpose eval`` with --predictions (torch is never imported on this path) or --checkpoint."""
    from lrpose_bench.evaluation.coco_eval import record_stats, stats_table
    from lrpose_bench.evaluation.engines import DEFAULT_ENGINE, require_engine

    if engine is not None:
        require_engine(engine)  # before any file is read or model built
    if predictions is not None:
        from lrpose_bench.evaluation.coco_eval import evaluate_results_file

        engine = engine or DEFAULT_ENGINE
        stats = evaluate_results_file(predictions, annotations, engine=engine)
        title = f"{predictions.name} vs {annotations.name} ({engine})"
        extra: dict[str, Any] = {"engine": engine}
    else:
        from lrpose_bench.engine.runner import evaluate_checkpoint
        from lrpose_bench.engine.runner import update_record as write_evaluation

        if det_boxes is not None and not det_boxes.is_file():
            raise UserError(f"--det-boxes: file not found: {det_boxes}")
        result, meta = evaluate_checkpoint(
            checkpoint, det_boxes=str(det_boxes) if det_boxes else None, flip=flip, device=device, workers=workers,
            det_score_threshold=det_score_threshold, eval_engine=engine,
        )  # fmt: skip
        stats = result.stats
        title = f"{meta['method']} {meta['resolution']} {meta.get('backbone')} after {meta['epoch']} epochs ({meta['boxes']} boxes, flip {'on' if flip else 'off'}, {meta['eval_engine']})"
        extra = {"mean_error_px": result.mean_error, "instances": result.instances, "boxes": meta["boxes"],
                 "error_types": result.error_types, "engine": meta["eval_engine"]}  # fmt: skip
        if update_record:
            run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent.parent
            write_evaluation(run_dir, result, meta["boxes"], flip, engine=meta["eval_engine"])
            err_console.print(f"updated {run_dir / 'record.json'}", highlight=False)
    if as_json:
        typer.echo(json.dumps({"stats": record_stats(stats), **extra}, indent=2))  # pycocotools' -1 -> null
        return
    console.print(stats_table(stats, title))
    if extra.get("mean_error_px") is not None:
        console.print(f"mean keypoint error {extra['mean_error_px']:.2f} px (image)", highlight=False)
    if extra.get("error_types") is not None:
        from lrpose_bench.evaluation.error_types import format_error_types

        console.print(format_error_types(extra["error_types"]), highlight=False)
