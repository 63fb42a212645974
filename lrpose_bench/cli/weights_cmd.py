"""The ``--weights`` mode of ``lrpose eval`` (bring your own checkpoint); ``run_cmd`` declares the options.

Kept apart from ``run_cmd`` so that the checkpoint-import code path has one entry point:
:func:`eval_weights` checks the options, runs :func:`lrpose_bench.engine.eval_weights.evaluate_weights`
and prints the stats table (or JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from lrpose_bench.cli.common import UserError, console, err_console

#: ``--format`` choices of ``lrpose eval --weights`` (``auto`` reads the key layout).
WEIGHT_FORMATS: tuple[str, ...] = ("auto", "hrnet", "mmpose")
#: Options that only apply to ``--weights``, as written on the command line.
WEIGHTS_ONLY_OPTIONS: tuple[str, ...] = (
    "--format", "--method", "--backbone", "--res", "--data", "--set", "--test-upsample", "--pad", "--out",
    "--run-id", "--experiment",
)  # fmt: skip


def eval_weights(
    *, weights: Path, fmt: str, method: str | None, backbone: str | None, res: str | None, data: Path | None,
    sets: dict[str, str], test_upsample: str | None, pad: bool, det_boxes: Path | None,
    det_score_threshold: float | None, flip: bool, device: str, workers: int | None, as_json: bool,
    out: Path | None, run_id: str | None, experiment: str | None,
) -> None:
    """Evaluate checkpoint ``weights`` with ``method`` / ``backbone`` at ``res`` and print the stats."""
    from lrpose_bench.engine.eval_weights import WeightsSpec, evaluate_weights, parse_size
    from lrpose_bench.engine.runner import record_stats, stats_table
    from lrpose_bench.models.checkpoint_import import detect_format, read_state_dict

    missing = [flag for flag, value in (("--method", method), ("--backbone", backbone), ("--res", res)) if not value]
    if missing:
        raise UserError(f"--weights needs {', '.join(missing)} (the network the checkpoint was trained as)", 2)
    if fmt not in WEIGHT_FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(WEIGHT_FORMATS)}", 2)
    if det_boxes is not None and not det_boxes.is_file():
        raise UserError(f"--det-boxes: file not found: {det_boxes}")
    if fmt == "auto":
        fmt = detect_format(read_state_dict(weights))
        err_console.print(f"--format auto: {weights.name} has the {fmt} key layout", highlight=False)
    spec = WeightsSpec(
        weights=str(weights), fmt=fmt, method=str(method), backbone=str(backbone),
        resolution=parse_size(str(res), "--res"), options=dict(sets),
        test_upsample=parse_size(test_upsample, "--test-upsample") if test_upsample else None, pad=pad,
        data=str(data) if data else None, det_boxes=str(det_boxes) if det_boxes else None,
        det_score_threshold=det_score_threshold, flip=flip, device=device, workers=workers,
        out=str(out) if out else None, run_id=run_id, experiment=experiment,
    )  # fmt: skip
    result, meta = evaluate_weights(spec)
    extra: dict[str, Any] = {"mean_error_px": result.mean_error, "instances": result.instances, "boxes": meta["boxes"],
                             "error_types": result.error_types, "weights": meta["weights"]}  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"stats": record_stats(result.stats), **extra}, indent=2))
    else:
        upsample = meta["weights"]["test_upsample"]
        how = f"upsampled to {upsample}" if upsample else "fed as is"
        if meta["weights"]["padded_input"]:
            w, h = meta["weights"]["padded_input"]
            how += f", padded to {h}x{w}"
        title = (f"{weights.name} ({fmt} layout): {meta['method']} {meta['resolution']} {meta['backbone']}, "
                 f"{how} ({meta['boxes']} boxes, flip {'on' if flip else 'off'})")  # fmt: skip
        console.print(stats_table(result.stats, title))
        if result.mean_error is not None:
            console.print(f"mean keypoint error {result.mean_error:.2f} px (image)", highlight=False)
        if result.error_types is not None:
            from lrpose_bench.evaluation import format_error_types

            console.print(format_error_types(result.error_types), highlight=False)
    if "run_dir" in meta:
        err_console.print(f"record: {Path(meta['run_dir']) / 'record.json'}", highlight=False)
