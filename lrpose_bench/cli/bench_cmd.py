"""``lrpose bench codecs``: throughput of every method's batched encode/decode vs a per-keypoint numpy loop.

The loops below are the references: plain per-sample, per-keypoint numpy code in the style of the
HRNet, DarkPose, UDP and CAL releases' data pipelines (one joint at a time, in heatmap px), each checked
equal to the batched targets before it is timed. They live here, not in the core.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import typer

from lrpose_bench.cli.common import bench_app, console, fail, parse_res, run_guarded

#: Tolerance of the loop-vs-batched check on real-valued targets (float32 exp and division may differ
#: by an ulp); binary maps (discs) and weights must be equal.
CHECK_TOL = 1e-5


# --------------------------------------------------------------------------------------------------
# Per-keypoint numpy references (heatmap px)
# --------------------------------------------------------------------------------------------------
def numpy_heatmap_targets(centres: Any, size: tuple[int, int], sigma: float, subpixel: bool = False) -> tuple[Any, Any]:
    """Reference Gaussian heatmap targets with a plain per-sample, per-keypoint loop (numpy, heatmap px).

    Default (MSRA, :class:`lrpose_bench.methods.heatmap.HeatmapMethod`): centre rounded to the nearest
    pixel, Gaussian drawn in a ``3 sigma`` square window, weight 0 when the window misses the map.
    ``subpixel`` (DARK's encoding): the Gaussian at the exact centre over the whole map, the same weight
    rule around the unrounded centre. Returns ``(maps (B, K, h, w), weight (B, K))``.
    """
    import numpy as np

    w, h = size
    b, k, _ = centres.shape
    out = np.zeros((b, k, h, w), dtype=np.float32)
    weight = np.ones((b, k), dtype=np.float32)
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    win = 3.0 * sigma
    for i in range(b):
        for j in range(k):
            mx, my = centres[i, j] if subpixel else np.floor(centres[i, j] + 0.5)
            if mx + win < 0 or mx - win > w - 1 or my + win < 0 or my - win > h - 1:
                weight[i, j] = 0.0
                continue
            gx = np.exp(-((xs - mx) ** 2) / (2 * sigma**2))
            gy = np.exp(-((ys - my) ** 2) / (2 * sigma**2))
            if not subpixel:
                gx = gx * (np.abs(xs - mx) <= win + 1e-6)
                gy = gy * (np.abs(ys - my) <= win + 1e-6)
            out[i, j] = gy[:, None] * gx[None, :]
    return out, weight


def _off_map(cx: float, cy: float, size: tuple[int, int], support: float) -> bool:
    """Does the square of half-size ``support`` around ``(cx, cy)`` miss a ``(w, h)`` map? (float32 math)"""
    w, h = size
    eps = 1e-6
    return bool(cx + support < -eps or cx - support > w - 1 + eps or cy + support < -eps or cy - support > h - 1 + eps)


def numpy_udp_targets(centres: Any, size: tuple[int, int], radius: float) -> tuple[Any, Any, Any]:
    """Reference UDP combined targets with a per-keypoint loop, as UDP's release builds them (numpy, float32).

    Per joint: the binary disc ``|p - c| <= radius`` over the whole map and the offset fields
    ``(c - p) / radius`` (x, y) over the whole map; weight 0 (and no disc) when the square around the disc
    misses the map. Returns ``(discs (B, K, h, w), offsets (B, K, 2, h, w), weight (B, K))``.
    """
    import numpy as np

    w, h = size
    b, k, _ = centres.shape
    c = np.asarray(centres, dtype=np.float32)
    discs = np.zeros((b, k, h, w), dtype=np.float32)
    offsets = np.zeros((b, k, 2, h, w), dtype=np.float32)
    weight = np.ones((b, k), dtype=np.float32)
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    limit = radius * radius * (1.0 + 1e-6)
    for i in range(b):
        for j in range(k):
            cx, cy = c[i, j]
            offsets[i, j, 0] = (cx - xs)[None, :] / radius
            offsets[i, j, 1] = (cy - ys)[:, None] / radius
            if _off_map(cx, cy, size, radius):
                weight[i, j] = 0.0
                continue
            dx, dy = xs - cx, ys - cy
            discs[i, j] = (dx * dx)[None, :] + (dy * dy)[:, None] <= limit
    return discs, offsets, weight


def numpy_cal_targets(centres: Any, size: tuple[int, int], radius: float, sigma: float,
                      normaliser: float) -> dict[str, Any]:
    """Reference CAL targets (the paper's ``G = B * C``, offset weight ``G``) with a per-keypoint loop (float32).

    Per joint: the disc ``B`` of ``radius``, the sub-pixel Gaussian ``C`` (sigma, over the whole map),
    heatmap ``B * C``, offsets ``(c - p) / normaliser`` inside the disc, the disc as offset mask and
    ``B * C`` as the offset-loss weight; weight 0 and empty maps when the square around the disc misses
    the map. Returns the keys of :meth:`lrpose_bench.methods.cal.CALMethod.encode` but ``centres``.
    """
    import numpy as np

    w, h = size
    b, k, _ = centres.shape
    c = np.asarray(centres, dtype=np.float32)
    heat = np.zeros((b, k, h, w), dtype=np.float32)
    offsets = np.zeros((b, k, 2, h, w), dtype=np.float32)
    mask = np.zeros((b, k, h, w), dtype=np.float32)
    weight = np.ones((b, k), dtype=np.float32)
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    limit = radius * radius * (1.0 + 1e-6)
    for i in range(b):
        for j in range(k):
            cx, cy = c[i, j]
            if _off_map(cx, cy, size, radius):
                weight[i, j] = 0.0
                continue
            dx, dy = xs - cx, ys - cy
            disc = ((dx * dx)[None, :] + (dy * dy)[:, None] <= limit).astype(np.float32)
            gauss = np.exp(-(dy * dy) / (2 * sigma**2))[:, None] * np.exp(-(dx * dx) / (2 * sigma**2))[None, :]
            heat[i, j] = gauss * disc
            offsets[i, j, 0] = (cx - xs)[None, :] / normaliser * disc
            offsets[i, j, 1] = (cy - ys)[:, None] / normaliser * disc
            mask[i, j] = disc
    return {"heatmaps": heat, "offsets": offsets, "offset_mask": mask, "offset_weight": heat.copy(), "weight": weight}


def _loop_reference(name: str, method: Any, geo: Any, kp: Any) -> tuple[Callable[[], Any], Callable[[], dict]] | None:
    """``(run, as_targets)`` for the method's numpy loop, or ``None`` when it has none at its options.

    ``run`` builds the loop's targets from crop px ``kp`` (mapped to heatmap px once, outside the timing);
    ``as_targets`` returns them keyed as the method's ``encode`` output, for the equality check.
    """
    o = method.options
    size = geo.heatmap_size
    if name in ("heatmap", "dark", "sr_heatmap"):
        subpixel = not method.rounded_targets
        centres = geo.crop_to_heatmap.forward(kp.cpu().double()).numpy()
        sigma = method.sigma_for(geo)

        def run() -> Any:
            return numpy_heatmap_targets(centres, size, sigma, subpixel=subpixel)

        return run, lambda: dict(zip(("heatmaps", "weight"), run()))
    centres32 = geo.crop_to_heatmap.forward(kp.cpu().float()).numpy()
    if name == "udp":
        radius = method.radius_for(geo)

        def run_udp() -> Any:
            return numpy_udp_targets(centres32, size, radius)

        return run_udp, lambda: dict(zip(("heatmaps", "offsets", "weight"), run_udp()))
    if name in ("cal", "cal_mgm") and o.target == "gaussian_disc" and o.offset_weighting == "target":
        sigma = method.sigma_for(size)

        def run_cal() -> Any:
            return numpy_cal_targets(centres32, size, o.radius, sigma, o.offset_normaliser)

        return run_cal, run_cal
    return None


def _check_equal(name: str, ref: dict, targets: dict) -> float:
    """Max |loop - batched| over the loop's keys; raises when a value differs by more than :data:`CHECK_TOL`."""
    import numpy as np

    worst = 0.0
    for key, value in ref.items():
        got = targets[key].cpu().numpy()
        if got.shape != value.shape:
            raise RuntimeError(f"{name}: numpy loop and batched {key} differ in shape: {value.shape} vs {got.shape}")
        diff = float(np.abs(got - value).max()) if value.size else 0.0
        if diff > CHECK_TOL:
            raise RuntimeError(f"{name}: numpy loop and batched {key} differ (max |diff| {diff:.3g})")
        worst = max(worst, diff)
    return worst


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _interleaved_times(
    calls: dict[str, tuple[Callable[[], Any], Callable[[], None]]],
    rounds: int,
    sync: Callable[[], None],
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Seconds of each call of every entry of ``calls`` (``name -> (fn, prepare)``), in ``rounds`` rounds
    that call each entry once in turn, so that the figures of one round saw the same machine.

    ``prepare`` runs untimed before each call (e.g. setting the thread count), followed by one untimed
    call; each entry also gets ``warmup`` untimed calls before the first round. The first calls after a
    thread-count change can wait for the OpenMP pool (measured: the first four heatmap encodes at 64x48
    on 2 shared cores took ~20x the rest). A shared machine's speed drifts by tens of percent over
    seconds; ratios taken within one round are what stays comparable.
    """
    for fn, prepare in calls.values():
        prepare()
        for _ in range(max(1, warmup)):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, rounds)):
        for name, (fn, prepare) in calls.items():
            prepare()
            fn()
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(max(time.perf_counter() - t0, 1e-12))
    return times


def target_bytes(targets: dict[str, Any]) -> int:
    """Bytes an encode writes: the tensors of ``targets``, each storage counted once (keys may share one)."""
    seen: dict[int, int] = {}
    for value in targets.values():
        if hasattr(value, "untyped_storage"):
            storage = value.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def settle_allocator(mib: int = 30) -> None:
    """Allocate and free one ``mib`` MiB block, as a training process has long done before it encodes.

    glibc serves blocks above a dynamic threshold (128 KiB at start, raised to the size of the largest
    freed mmap'd block up to 32 MiB) with fresh mmap'd pages and trims its heap when more than twice that
    is free at the top. In a fresh process, a codec whose targets total more than ~13 MB (CAL at 128x96,
    batch 64: 16.7 MB) would then fault every page of them in again on each call (~4,000 faults, 4-5x the
    encode's own time); in a training process the network's activations have long raised the threshold.
    Both the batched codecs and the numpy loops are timed after this call. A no-op elsewhere than glibc.
    """
    import torch

    block = torch.empty(mib * 2**20 // 4, dtype=torch.float32)
    del block


def parse_threads(text: str) -> list[int | None]:
    """``"1,default"`` -> ``[1, None]`` (``None`` = torch's default thread count); raises ``ValueError``."""
    out: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "default":
            out.append(None)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise ValueError(f"--threads: expected a comma-separated list of positive integers or 'default', "
                             f"got {text!r}")
    if not out:
        raise ValueError("--threads: empty list")
    return out


def codec_methods() -> list[str]:
    """Every registered method (each is tried; those whose codecs need fitted state are reported as skipped)."""
    from lrpose_bench.method import METHODS

    return list(METHODS)


def bench_codecs(
    resolution: tuple[int, int],
    batch: int,
    repeat: int,
    device: str,
    seed: int = 0,
    threads: list[int | None] | None = None,
    methods: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{method, threads, encode, decode, speedup, megabytes, check}`` (samples/s; ``megabytes``: what
    one encode of the batch writes, :func:`target_bytes`).

    Each method is built with its default options, encoded from random in-crop keypoints and decoded
    from the outputs of a perfect network (``targets_as_outputs``), at each entry of ``threads`` (``None``
    = torch's default). A method with a numpy loop reference gets one more row, ``"<name> (numpy
    loop)"`` (single-threaded; its ``decode`` is NaN), checked equal to the batched targets, and its
    batched rows carry ``speedup``, the median over ``repeat`` rounds of loop time / encode time within a
    round (NaN elsewhere); the loop, every encode and every decode are timed once per round, in turn
    (:func:`_interleaved_times`), and rates are ``batch`` / the median time. A
    method whose codecs fail here (fitted state) gets one row with NaN figures and the reason.
    """
    import torch

    from lrpose_bench.keypoints import FLIP_INDEX
    from lrpose_bench.method import build_method

    if batch < 1 or repeat < 1:
        raise ValueError(f"--batch and --repeat must be >= 1, got {batch} and {repeat}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    default_threads = torch.get_num_threads()
    settle_allocator()
    threads = threads or [1, None]
    nan = float("nan")
    gen = torch.Generator().manual_seed(seed)
    k = len(FLIP_INDEX)
    rows: list[dict[str, Any]] = []
    for name in methods or codec_methods():
        method = build_method(name)
        geo = method.geometry(resolution)  # a resolution the method cannot take is the user's error
        w, h = geo.crop_size
        kp = (torch.rand(batch, k, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])).to(dev)
        vis = torch.ones(batch, k, device=dev)
        try:
            with torch.no_grad():
                targets = method.encode(kp, vis, geo)
                outputs = method.targets_as_outputs(targets)
                method.decode(outputs, geo)
        except Exception as exc:  # a method whose codecs need fitted state
            rows.append({"method": name, "threads": "-", "encode": nan, "decode": nan, "speedup": nan,
                         "megabytes": nan, "check": f"skipped: {type(exc).__name__}: {exc}"})
            continue
        megabytes = target_bytes(targets) / 1e6
        check = ""
        ref = _loop_reference(name, method, geo, kp)
        calls: dict[str, tuple[Callable[[], Any], Callable[[], None]]] = {}
        if ref is not None:
            run, as_targets = ref
            diff = _check_equal(name, as_targets(), targets)
            check = f"equal to batched (max |diff| {diff:.1e})"
            calls["loop"] = (run, lambda: None)
        for n in threads:
            set_threads = (lambda n=n: torch.set_num_threads(default_threads if n is None else n))
            calls[f"encode/{n}"] = (lambda: method.encode(kp, vis, geo), set_threads)
            calls[f"decode/{n}"] = (lambda: method.decode(outputs, geo), set_threads)
        try:
            with torch.no_grad():
                times = _interleaved_times(calls, repeat, sync)
        finally:
            torch.set_num_threads(default_threads)
        for n in threads:
            enc = times[f"encode/{n}"]
            speedup = nan
            if "loop" in times:  # the median of the per-round ratios: both timed on the same machine state
                speedup = _median([t_loop / t_enc for t_loop, t_enc in zip(times["loop"], enc)])
            rows.append({
                "method": name,
                "threads": f"{default_threads} (default)" if n is None else str(n),
                "encode": batch / _median(enc),
                "decode": batch / _median(times[f"decode/{n}"]),
                "speedup": speedup,
                "megabytes": megabytes,
                "check": "",
            })
        if "loop" in times:
            rows.append({"method": f"{name} (numpy loop)", "threads": "numpy", "encode": batch / _median(times["loop"]),
                         "decode": nan, "speedup": nan, "megabytes": nan, "check": check})
    return rows


@bench_app.command("codecs")
def codecs_command(
    res: str = typer.Option("128x96", "--res", help="Input resolution HxW (height x width), e.g. 128x96 or 64x48."),
    batch: int = typer.Option(64, "--batch", min=1, help="Samples per batch (17 COCO keypoints each)."),
    repeat: int = typer.Option(7, "--repeat", min=1, help="Timed rounds; each times the loop and every codec "
                                                         "once, in turn (medians reported)."),
    device: str = typer.Option("cpu", "--device",
                               help="Torch device to run the batched codecs on (cpu, cuda, cuda:1)."),
    threads: str = typer.Option("1,default", "--threads",
                                help="Torch CPU thread counts to time the batched codecs at, comma-separated "
                                     "('default' = torch's default)."),
    method: list[str] = typer.Option(None, "--method", help="Only these methods (repeatable; default: every "
                                                            "registered method)."),
) -> None:
    """Print samples/s of each method's batched encode and decode at each thread count, and of a
    per-keypoint numpy loop that builds the same targets (checked equal) for heatmap, DARK, UDP, CAL, CAL + MGM
    and SR + heatmap, with the batched encode's speedup over it (the median of per-round ratios: the loop and
    every codec are timed once per round, in turn). Figures are informative, never asserted."""
    from rich.table import Table

    resolution = parse_res(res)
    if resolution is None:
        fail("--res is required")
    try:
        thread_list = parse_threads(threads)
    except ValueError as exc:
        fail(str(exc), 2)  # a bad option value, as typer's own
    rows = run_guarded(bench_codecs, resolution, batch, repeat, device, 0, thread_list, method or None)
    table = Table(title=f"codec throughput at {res} (batch {batch}, {device}), samples/s")
    table.add_column("method", no_wrap=True)
    for col in ("threads", "encode", "decode", "vs loop", "targets MB"):
        table.add_column(col, justify="right", no_wrap=True)

    def num(v: float, fmt: str = "{:,.0f}") -> str:
        return "-" if v != v else fmt.format(v)

    notes = []
    for r in rows:
        table.add_row(r["method"], r["threads"], num(r["encode"]), num(r["decode"]), num(r["speedup"], "{:.1f}x"),
                      num(r["megabytes"], "{:.1f}"))
        if r["check"]:
            notes.append(f"{r['method']}: {r['check']}")
    console.print(table)
    console.print(f"vs loop: the numpy loop's time / the batched encode's (loop single-threaded), median over "
                  f"{repeat} rounds that time each row once in turn; targets MB: what one encode writes; default: "
                  f"torch's default thread count")
    for line in notes:
        console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    """The command lives on the shared ``bench`` group (mounted by app.py); nothing to add at top level."""
    del app


__all__ = [
    "bench_codecs",
    "target_bytes",
    "codec_methods",
    "numpy_heatmap_targets",
    "numpy_udp_targets",
    "numpy_cal_targets",
    "parse_threads",
    "settle_allocator",
    "codecs_command",
    "register",
]
