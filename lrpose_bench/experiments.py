"""Experiment files: one declarative TOML file per paper table or ablation, expanded into a list of runs.

An experiment file (``experiments/NAME.toml``, read with :mod:`tomllib`) names the experiment, the paper
table it reproduces, settings shared by its runs, and the runs themselves (method + options). This module
loads and validates such a file (every error names the file, the line and the key, and is raised before
anything runs) and expands it into :class:`PlannedRun` objects, each of which knows its deterministic run
id and the ``lrpose run`` arguments that execute it. The schema is documented in ``experiments/README.md``;
:data:`TOP_KEYS`, :data:`SETTINGS_KEYS` and :data:`RUN_KEYS` are its machine-readable form.

The module never branches on a method's name: methods, their options, backbones and training
hyper-parameters are checked against the registries (``lrpose_bench.method.METHODS`` and each method's
``Options`` dataclass, ``lrpose_bench.models.BACKBONES``, ``lrpose_bench.engine.config.TrainConfig``).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# ----------------------------------------------------------------------------------------------
# Schema (key -> (accepted TOML types, one-line meaning)); experiments/README.md mirrors this.
# ----------------------------------------------------------------------------------------------
TOP_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "experiment name: tags every record; runs go to <out>/<name>/"),
    "title": ((str,), "one-line human title"),
    "paper_table": ((str,), "the paper table / figure it reproduces, or 'beyond the paper'"),
    "description": ((str,), "free text: what the experiment tests and which choices were made"),
    "settings": ((dict,), "settings shared by every run"),
    "runs": ((list,), "the runs ([[runs]] tables)"),
}
SETTINGS_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "backbone": ((str, list), "backbone name, or a list (every run is repeated per backbone)"),
    "pretrained": ((str, dict), "ImageNet weights file, or a table backbone -> file"),
    "profile": ((str,), "training profile: quick | paper"),
    "resolutions": ((list,), "input resolutions, HxW as the paper writes them, e.g. '128x96'"),
    "dataset": ((str,), "embedded (synthetic, the default) | embedded:unmarked (no joint markers) | coco (needs --data PATH)"),
    "boxes": ((str,), "gt (ground-truth person boxes) | det (detected boxes from det_boxes)"),
    "det_boxes": ((str,), "detection results file (COCO format); relative to the data root"),
    "det_score_threshold": ((float, int), "drop detections below this score"),
    "seeds": ((int, list), "number of seeds N (0..N-1) or an explicit list of seeds"),
    "hparams": ((dict,), "training-config fields (epochs, lr, batch_size, workers, ...)"),
    "sr": ((dict,), "super-resolution front end: model, scale, weights"),
    "lowres_protocol": ((str,), "how low-resolution crops are made: direct | antialias"),
}
RUN_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "run name, unique in the file; first part of the run id"),
    "label": ((str,), "how tables name this run (e.g. 'UDP + SR'); default: the name"),
    "method": ((str,), "method name (see `lrpose methods`)"),
    "options": ((dict,), "method options (each becomes --set key=value)"),
    "backbone": ((str, list), "overrides settings.backbone"),
    "pretrained": ((str, dict), "overrides settings.pretrained"),
    "resolutions": ((list,), "overrides settings.resolutions"),
    "seeds": ((int, list), "overrides settings.seeds"),
    "hparams": ((dict,), "merged over settings.hparams"),
    "sr": ((dict,), "merged over settings.sr"),
    "lowres_protocol": ((str,), "overrides settings.lowres_protocol"),
    "weights": ((dict,), "evaluate this checkpoint instead of training (lrpose eval --weights): file, format, test_upsample, pad"),
}
WEIGHTS_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "file": ((str,), "checkpoint file (official HRNet or MMPose 1.x layout), relative to where the sweep runs"),
    "format": ((str,), "key layout: auto | hrnet | mmpose (default auto)"),
    "test_upsample": ((str,), "feed the low-res crop upsampled to this HxW (the checkpoint's training size)"),
    "pad": ((bool,), "pad crops to sides that are multiples of 32 where the backbone needs them"),
}
SR_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "SR model name (--sr), e.g. bicubic"),
    "scale": ((int,), "upscaling factor (--sr-scale)"),
    "weights": ((str,), "SR weights file (--sr-weights)"),
}
#: ``sr`` keys -> the method options that ``lrpose run --sr/--sr-scale/--sr-weights`` set.
SR_OPTIONS: dict[str, str] = {"model": "sr", "scale": "sr_scale", "weights": "sr_weights"}
PROFILES: tuple[str, ...] = ("quick", "paper")
DATASETS: tuple[str, ...] = ("embedded", "embedded:unmarked", "coco")
BOXES: tuple[str, ...] = ("gt", "det")
LOWRES_PROTOCOLS: tuple[str, ...] = ("direct", "antialias")
#: Hyper-parameters that ``lrpose run`` takes as their own flags (all others go through ``--hp``).
HPARAM_FLAGS: dict[str, str] = {"epochs": "--epochs", "lr": "--lr", "batch_size": "--batch-size", "workers": "--workers"}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ExperimentError(ValueError):
    """A bad experiment file; the message names the file, the line and the key."""


# ----------------------------------------------------------------------------------------------
# Data classes
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One ``[[runs]]`` entry with the settings merged in (before the backbone x resolution x seed product)."""

    name: str
    label: str
    method: str
    options: dict[str, Any]
    backbones: tuple[str | None, ...]
    pretrained: str | dict[str, str] | None  # one file, or backbone -> file
    resolutions: tuple[str, ...]
    seeds: tuple[int, ...]
    hparams: dict[str, Any]
    sr: dict[str, Any]
    lowres_protocol: str | None
    weights: dict[str, Any] = dataclasses.field(default_factory=dict)  # eval-only run (lrpose eval --weights)


@dataclass(frozen=True)
class Experiment:
    """A loaded, validated experiment file."""

    path: Path
    name: str
    title: str
    paper_table: str
    description: str
    profile: str | None
    dataset: str
    boxes: str
    det_boxes: str | None
    det_score_threshold: float | None
    runs: tuple[RunSpec, ...]

    def methods(self) -> list[str]:
        """Distinct method names in file order."""
        return list(dict.fromkeys(r.method for r in self.runs))


@dataclass(frozen=True)
class PlannedRun:
    """One concrete ``lrpose run``: a run spec at one backbone, resolution and seed."""

    experiment: str
    run_id: str
    name: str
    label: str
    method: str
    options: dict[str, Any]
    backbone: str | None
    pretrained: str | None
    resolution: str
    seed: int
    profile: str | None
    hparams: dict[str, Any]
    sr: dict[str, Any]
    lowres_protocol: str | None
    boxes: str
    det_boxes: str | None
    det_score_threshold: float | None
    weights: dict[str, Any] = dataclasses.field(default_factory=dict)  # eval-only run (lrpose eval --weights)
    dataset: str = "embedded"  # settings.dataset; an embedded variant (embedded:NAME) is passed as --data

    @property
    def command(self) -> str:
        """The ``lrpose`` command that executes this run: ``eval`` for a checkpoint (``weights``), else ``run``."""
        return "eval" if self.weights else "run"

    def run_args(
        self,
        out_dir: str | Path,
        data: str | Path | None = None,
        device: str | None = None,
        resume: bool = False,
    ) -> list[str]:
        """Arguments of ``lrpose run`` (without the leading ``lrpose run``) for this run.

        ``out_dir`` is the experiment's run folder (the record lands in ``out_dir/run_id/record.json``);
        ``data`` the dataset root (``None``: the embedded dataset); a relative ``det_boxes`` is taken
        relative to ``data``; with no ``data``, an embedded variant (``dataset = "embedded:unmarked"``) is
        passed as ``--data embedded:unmarked``.
        """
        if data is None and self.dataset.startswith("embedded:"):
            data = self.dataset
        if self.weights:
            return self._eval_args(out_dir, data, device)
        args = ["--method", self.method, "--res", self.resolution]
        if data is not None:
            args += ["--data", str(data)]
        if self.backbone:
            args += ["--backbone", self.backbone]
        if self.pretrained:
            args += ["--pretrained", self.pretrained]
        if self.profile:
            args += ["--profile", self.profile]
        for key, flag in HPARAM_FLAGS.items():
            if key in self.hparams:
                args += [flag, format_value(self.hparams[key])]
        args += ["--seed", str(self.seed)]
        for key, value in self.options.items():
            args += ["--set", f"{key}={format_value(value)}"]
        for key, value in self.hparams.items():
            if key not in HPARAM_FLAGS:
                args += ["--hp", f"{key}={format_value(value)}"]
        if device:
            args += ["--device", device]
        if self.boxes == "det" and self.det_boxes:
            det = Path(self.det_boxes).expanduser()
            if not det.is_absolute() and data is not None:
                det = Path(data) / det
            args += ["--det-boxes", str(det)]
            if self.det_score_threshold is not None:
                args += ["--det-score-threshold", format_value(self.det_score_threshold)]
        if "model" in self.sr:
            args += ["--sr", str(self.sr["model"])]
        if "scale" in self.sr:
            args += ["--sr-scale", str(self.sr["scale"])]
        if "weights" in self.sr:
            args += ["--sr-weights", str(self.sr["weights"])]
        if self.lowres_protocol:
            args += ["--lowres-protocol", self.lowres_protocol]
        args += ["--out", str(out_dir), "--run-id", self.run_id, "--experiment", self.experiment]
        if resume:
            args.append("--resume")
        return args

    def _eval_args(self, out_dir: str | Path, data: str | Path | None, device: str | None) -> list[str]:
        """Arguments of ``lrpose eval --weights`` for an eval-only run (see :data:`WEIGHTS_KEYS`)."""
        w = self.weights
        args = ["--weights", str(w["file"]), "--format", str(w.get("format", "auto")), "--method", self.method,
                "--backbone", str(self.backbone), "--res", self.resolution]  # fmt: skip
        if data is not None:
            args += ["--data", str(data)]
        for key, value in self.options.items():
            args += ["--set", f"{key}={format_value(value)}"]
        if w.get("test_upsample"):
            args += ["--test-upsample", str(w["test_upsample"])]
        if w.get("pad"):
            args.append("--pad")
        if "workers" in self.hparams:
            args += ["--workers", format_value(self.hparams["workers"])]
        if device:
            args += ["--device", device]
        if self.boxes == "det" and self.det_boxes:
            det = Path(self.det_boxes).expanduser()
            if not det.is_absolute() and data is not None:
                det = Path(data) / det
            args += ["--det-boxes", str(det)]
            if self.det_score_threshold is not None:
                args += ["--det-score-threshold", format_value(self.det_score_threshold)]
        return args + ["--out", str(out_dir), "--run-id", self.run_id, "--experiment", self.experiment]

    def describe_options(self) -> str:
        """Options, SR and non-default hparams as one short line for the plan table."""
        parts = [f"{k}={format_value(v)}" for k, v in self.options.items()]
        parts += [f"sr.{k}={format_value(v)}" for k, v in self.sr.items()]
        parts += [f"weights.{k}={format_value(v)}" for k, v in self.weights.items()]
        return " ".join(parts)


def format_value(value: Any) -> str:
    """A TOML value as the text ``--set``/``--hp`` expect: booleans lower-case, lists comma-joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------------------------
# Line lookup: tomllib gives no positions, so find the key in the text ourselves.
# ----------------------------------------------------------------------------------------------
_HEADER_RE = re.compile(r"^\s*(\[\[|\[)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")


class _Locator:
    """Maps a key path (``("runs", 2, "options", "sigma")``) to a 1-based line of the file text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, bool, str]] = []  # (0-based line, is array table, dotted name)
        for i, line in enumerate(self.lines):
            m = _HEADER_RE.match(line)
            if m:
                name = ".".join(part.strip().strip("\"'") for part in m.group(2).split("."))
                self.headers.append((i, m.group(1) == "[[", name))

    def line(self, path: Sequence[str | int]) -> int:
        start, end, rest = self._section(path)
        cursor = start
        for key in rest:
            found = self._find_key(str(key), cursor, end)
            if found is None:
                break
            cursor = found
        return cursor + 1

    def _section(self, path: Sequence[str | int]) -> tuple[int, int, list[str | int]]:
        n = len(self.lines)
        first_header = self.headers[0][0] if self.headers else n
        if not path:
            return 0, n, []
        head = path[0]
        if head == "runs" and len(path) > 1 and isinstance(path[1], int):
            starts = [i for i, arr, name in self.headers if arr and name == "runs"]
            if path[1] < len(starts):
                start = starts[path[1]]
                end = starts[path[1] + 1] if path[1] + 1 < len(starts) else n
                return start, end, list(path[2:])
            return 0, n, ["runs"]
        if head == "settings":
            ours = [name == "settings" or name.startswith("settings.") for _, _, name in self.headers]
            if any(ours):
                k = ours.index(True)
                end = next((self.headers[j][0] for j in range(k, len(ours)) if not ours[j]), n)
                return self.headers[k][0], end, list(path[1:])
            return 0, n, list(path)
        return 0, first_header, list(path)

    def _find_key(self, key: str, start: int, end: int) -> int | None:
        pattern = re.compile(r"(^|[\s{,])[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start, min(end, len(self.lines))):
            text = _strip_comment(self.lines[i])
            m = _HEADER_RE.match(text)
            if m and i != start:
                if m.group(2).split(".")[-1].strip().strip("\"'") == key:
                    return i
                continue
            if pattern.search(text):
                return i
        return None


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` inside a quoted string is kept)."""
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


# ----------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------
class _Checker:
    """Collects the context (file, text) that every error message needs."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.locator = _Locator(text)

    def error(self, key_path: Sequence[str | int], message: str, run_name: str | None = None) -> ExperimentError:
        line = self.locator.line(key_path)
        return ExperimentError(f"{self.path}, line {line}, key {_key_name(key_path, run_name)!r}: {message}")

    def check_keys(self, table: Mapping[str, Any], schema: Mapping[str, Any], where: list[str | int], run_name: str | None = None) -> None:
        for key, value in table.items():
            if key not in schema:
                raise self.error(where + [key], f"unknown key; valid keys here: {', '.join(schema)}", run_name)
            types = schema[key][0]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                names = " or ".join(_toml_type(t) for t in types)
                raise self.error(where + [key], f"expected {names}, got {_toml_type(type(value))} {value!r}", run_name)


def _toml_type(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list", dict: "a table"}.get(t, t.__name__)


def _key_name(path: Sequence[str | int], run_name: str | None) -> str:
    parts: list[str] = []
    for i, p in enumerate(path):
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{run_name}]" if run_name else f"{parts[-1]}[{p + 1}]"
        else:
            parts.append(p)
    return ".".join(parts)


def load_experiment(path: str | Path, validate_registries: bool = True) -> Experiment:
    """Read and validate an experiment file; raises :class:`ExperimentError` naming file, line and key.

    ``validate_registries`` also checks methods' options, backbones and hyper-parameters against the
    code (importing torch); turn it off only to inspect a file's structure.
    """
    p = Path(path)
    if not p.is_file():
        raise ExperimentError(f"experiment file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{p}: not valid TOML: {exc}") from None
    ck = _Checker(p, text)

    ck.check_keys(data, TOP_KEYS, [])
    for key in ("name", "title", "runs"):
        if key not in data:
            raise ExperimentError(f"{p}, line 1, key {key!r}: required top-level key is missing")
    name = data["name"]
    if not _NAME_RE.match(name):
        raise ck.error(["name"], f"{name!r} is not a valid name (letters, digits, _ . + -)")
    settings = data.get("settings", {})
    ck.check_keys(settings, SETTINGS_KEYS, ["settings"])
    for sub in ("hparams", "sr"):
        if sub in settings:
            _check_sub(ck, settings[sub], sub, ["settings", sub], None)

    profile = settings.get("profile")
    if profile is not None and profile not in PROFILES:
        raise ck.error(["settings", "profile"], f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    dataset = settings.get("dataset", "embedded")
    if dataset not in DATASETS:
        raise ck.error(["settings", "dataset"], f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    boxes = settings.get("boxes", "gt")
    if boxes not in BOXES:
        raise ck.error(["settings", "boxes"], f"unknown box setting {boxes!r}; valid: {', '.join(BOXES)}")
    if boxes == "det" and "det_boxes" not in settings:
        raise ck.error(["settings", "boxes"], "boxes = 'det' needs det_boxes = 'path/to/detections.json'")

    runs_raw = data["runs"]
    if not runs_raw:
        raise ck.error(["runs"], "an experiment needs at least one [[runs]] entry")
    runs: list[RunSpec] = []
    for i, raw in enumerate(runs_raw):
        if not isinstance(raw, dict):
            raise ck.error(["runs"], "each run must be a table ([[runs]])")
        run_name = raw.get("name") if isinstance(raw.get("name"), str) else None
        runs.append(_load_run(ck, raw, i, settings, run_name))

    exp = Experiment(
        path=p,
        name=name,
        title=data["title"],
        paper_table=data.get("paper_table", ""),
        description=data.get("description", ""),
        profile=profile,
        dataset=dataset,
        boxes=boxes,
        det_boxes=settings.get("det_boxes"),
        det_score_threshold=settings.get("det_score_threshold"),
        runs=tuple(runs),
    )
    if validate_registries:
        _validate_registries(ck, exp, data)
    _check_unique_ids(ck, exp)
    return exp


def _check_sub(ck: _Checker, table: Mapping[str, Any], kind: str, where: list[str | int], run_name: str | None) -> None:
    if kind == "sr":
        ck.check_keys(table, SR_KEYS, where, run_name)
        if "scale" in table and table["scale"] < 1:
            raise ck.error(where + ["scale"], f"sr scale must be >= 1, got {table['scale']}", run_name)
    elif kind == "hparams":
        for key, value in table.items():
            if isinstance(value, dict):
                raise ck.error(where + [key], "hyper-parameter values must be numbers, strings, booleans or lists", run_name)


def _load_run(ck: _Checker, raw: Mapping[str, Any], i: int, settings: Mapping[str, Any], run_name: str | None) -> RunSpec:
    where: list[str | int] = ["runs", i]
    ck.check_keys(raw, RUN_KEYS, where, run_name)
    for key in ("name", "method"):
        if key not in raw:
            raise ck.error(where, f"run #{i + 1} lacks the required key {key!r}", run_name)
    name = raw["name"]
    if not _NAME_RE.match(name):
        raise ck.error(where + ["name"], f"{name!r} is not a valid run name (letters, digits, _ . + -)", run_name)
    for sub in ("hparams", "sr"):
        if sub in raw:
            _check_sub(ck, raw[sub], sub, where + [sub], run_name)

    from lrpose_bench.method import METHODS

    method = raw["method"]
    if method not in METHODS:
        raise ck.error(where + ["method"], f"unknown method {method!r}; valid methods: {', '.join(METHODS)}", run_name)

    # backbones
    bb_src, bb_path = (raw, where + ["backbone"]) if "backbone" in raw else (settings, ["settings", "backbone"])
    bb = bb_src.get("backbone")
    backbones: tuple[str | None, ...]
    if bb is None:
        backbones = (None,)
    elif isinstance(bb, str):
        backbones = (bb,)
    else:
        if not bb or not all(isinstance(b, str) for b in bb):
            raise ck.error(bb_path, "backbone must be a name or a non-empty list of names", run_name)
        backbones = tuple(dict.fromkeys(bb))

    # resolutions
    res_src, res_path = (raw, where + ["resolutions"]) if "resolutions" in raw else (settings, ["settings", "resolutions"])
    if "resolutions" not in res_src:
        raise ck.error(where, f"run {name!r} has no resolutions (set settings.resolutions or the run's resolutions)", run_name)
    resolutions = _parse_resolutions(ck, res_src["resolutions"], res_path, run_name)

    # seeds
    seeds_src, seeds_path = (raw, where + ["seeds"]) if "seeds" in raw else (settings, ["settings", "seeds"])
    seeds = parse_seeds(seeds_src.get("seeds", 1), lambda msg: ck.error(seeds_path, msg, run_name))

    hparams = {**settings.get("hparams", {}), **raw.get("hparams", {})}
    sr = {**settings.get("sr", {}), **raw.get("sr", {})}
    lowres = raw.get("lowres_protocol", settings.get("lowres_protocol"))
    if lowres is not None and lowres not in LOWRES_PROTOCOLS:
        lp_path = where + ["lowres_protocol"] if "lowres_protocol" in raw else ["settings", "lowres_protocol"]
        raise ck.error(lp_path, f"unknown protocol {lowres!r}; valid: {', '.join(LOWRES_PROTOCOLS)}", run_name)
    return RunSpec(
        name=name,
        label=raw.get("label", name),
        method=method,
        options=dict(raw.get("options", {})),
        backbones=backbones,
        pretrained=_pretrained(ck, raw, settings, where, run_name),
        resolutions=resolutions,
        seeds=seeds,
        hparams=hparams,
        sr=sr,
        lowres_protocol=lowres,
        weights=_weights(ck, raw, backbones, where, run_name),
    )


def _weights(
    ck: _Checker, raw: Mapping[str, Any], backbones: tuple[str | None, ...], where: list[str | int], run_name: str | None
) -> dict[str, Any]:
    """The run's ``weights`` table (an eval-only run), checked: ``file`` required, a known ``format``, an
    ``HxW`` ``test_upsample``, and a backbone named (the checkpoint's network)."""
    table = raw.get("weights")
    if table is None:
        return {}
    path = where + ["weights"]
    ck.check_keys(table, WEIGHTS_KEYS, path, run_name)
    if "file" not in table:
        raise ck.error(path, "weights needs 'file' (the checkpoint to evaluate)", run_name)
    if table.get("format", "auto") not in ("auto", "hrnet", "mmpose"):
        raise ck.error(path + ["format"], f"unknown format {table['format']!r}; valid: auto, hrnet, mmpose", run_name)
    if "test_upsample" in table:
        _parse_resolutions(ck, [table["test_upsample"]], path + ["test_upsample"], run_name)
    if any(b is None for b in backbones):
        raise ck.error(path, "an eval-only run (weights) needs a backbone (the checkpoint's network)", run_name)
    return dict(table)


def _pretrained(
    ck: _Checker, raw: Mapping[str, Any], settings: Mapping[str, Any], where: list[str | int], run_name: str | None
) -> str | dict[str, str] | None:
    """``pretrained``: a file for every backbone, or a table ``backbone -> file`` (the run's over the settings')."""
    value = raw.get("pretrained", settings.get("pretrained"))
    if isinstance(value, dict):
        path = where + ["pretrained"] if "pretrained" in raw else ["settings", "pretrained"]
        for key, file in value.items():
            if not isinstance(file, str):
                raise ck.error(path + [key], f"expected a file path string, got {file!r}", run_name)
        return dict(value)
    return value


def _parse_resolutions(ck: _Checker, values: Any, where: list[str | int], run_name: str | None) -> tuple[str, ...]:
    from lrpose_bench.geometry import format_resolution, parse_resolution

    if not isinstance(values, list) or not values:
        raise ck.error(where, "resolutions must be a non-empty list like ['128x96', '64x48']", run_name)
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            raise ck.error(where, f"resolution {v!r} must be a string 'HxW', e.g. '128x96'", run_name)
        try:
            out.append(format_resolution(parse_resolution(v)))
        except ValueError as exc:
            raise ck.error(where, str(exc), run_name) from None
    if len(set(out)) != len(out):
        raise ck.error(where, f"resolutions {values} list one resolution twice", run_name)
    return tuple(out)


def parse_seeds(value: Any, error: Any = ValueError) -> tuple[int, ...]:
    """``seeds``: a count N (seeds 0..N-1) or a list of distinct non-negative integers."""
    if isinstance(value, bool):
        raise error(f"seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise error(f"seeds must be >= 1, got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise error(f"seeds {value} list a seed twice")
        return tuple(value)
    raise error(f"seeds must be a count or a non-empty list of non-negative integers, got {value!r}")


# ----------------------------------------------------------------------------------------------
# Registry checks (import torch and the method modules)
# ----------------------------------------------------------------------------------------------
def _validate_registries(ck: _Checker, exp: Experiment, data: Mapping[str, Any]) -> None:
    """Check every run against the code: backbones, hyper-parameters, SR front ends, method options, and
    that the method and backbone can take each resolution."""
    backbones = _known_backbones()
    hparam_fields = _known_hparams()
    default_profile = exp.profile or ("quick" if exp.dataset.startswith("embedded") else "paper")  # as `lrpose run` defaults
    for i, spec in enumerate(exp.runs):
        raw = data["runs"][i]
        where: list[str | int] = ["runs", i]
        if backbones is not None:
            _check_backbones(ck, spec, raw, where, backbones)
        if hparam_fields is not None:
            _check_hparams(ck, spec, raw, where, hparam_fields, default_profile)
        if spec.sr:
            _check_sr(ck, spec, raw, where)
        _check_method(ck, spec, raw, where, backbones is not None)


def _src(raw: Mapping[str, Any], where: list[str | int], table: str, key: str | None = None) -> list[str | int]:
    """Key path of ``table[.key]`` in the run if the run sets it there, else in ``[settings]``."""
    in_run = table in raw and (key is None or key in raw[table])
    return (where if in_run else ["settings"]) + [table] + ([key] if key is not None else [])


def _check_backbones(ck: _Checker, spec: RunSpec, raw: Mapping[str, Any], where: list[str | int], known: set[str]) -> None:
    valid = ", ".join(sorted(known))
    for bb in spec.backbones:
        if bb is not None and bb not in known:
            raise ck.error(_src(raw, where, "backbone"), f"unknown backbone {bb!r}; valid backbones: {valid}", spec.name)
    if isinstance(spec.pretrained, dict):
        for key in spec.pretrained:
            if key not in known:
                raise ck.error(_src(raw, where, "pretrained", key), f"unknown backbone {key!r}; valid backbones: {valid}", spec.name)


def _check_hparams(
    ck: _Checker, spec: RunSpec, raw: Mapping[str, Any], where: list[str | int], fields: set[str], profile: str
) -> None:
    for key, value in spec.hparams.items():
        path = _src(raw, where, "hparams", key)
        if key not in fields:
            raise ck.error(path, f"unknown training hyper-parameter; valid: {', '.join(sorted(fields))}", spec.name)
        why = _hparam_rejects(key, value)
        if why:
            raise ck.error(path, why, spec.name)
    why = _config_rejects(profile, spec.hparams)
    if why:
        bad = next((k for k in spec.hparams if f"{k}=" in why), None)
        raise ck.error(_src(raw, where, "hparams", bad) if bad else where, why, spec.name)


def _check_method(ck: _Checker, spec: RunSpec, raw: Mapping[str, Any], where: list[str | int], check_backbone: bool) -> None:
    """Options (and SR shorthands) against the method's ``Options``; resolutions against its geometry and
    the backbones."""
    from lrpose_bench.geometry import parse_resolution
    from lrpose_bench.method import method_class, parse_option_value

    rn = spec.name
    try:
        cls = method_class(spec.method)
    except ModuleNotFoundError as exc:  # method module not written yet (development only)
        if exc.name and exc.name.startswith("lrpose_bench.methods"):
            return
        raise
    names = [f.name for f in dataclasses.fields(cls.Options)]
    typed: dict[str, Any] = {}
    for key, value in spec.sr.items():  # --sr/--sr-scale/--sr-weights are shorthands for these options
        opt = SR_OPTIONS[key]
        if opt not in names:
            raise ck.error(_src(raw, where, "sr", key), f"method {spec.method!r} has no super-resolution front end (no option {opt!r})", rn)
        if opt in spec.options:
            raise ck.error(where + ["options", opt], f"option {opt!r} is also set by sr.{key}; use one", rn)
        typed[opt] = parse_option_value(cls, opt, format_value(value))
    for key, value in spec.options.items():
        if key not in names:
            valid = ", ".join(names) or "(none)"
            raise ck.error(where + ["options", key], f"method {spec.method!r} has no option {key!r}; options: {valid}", rn)
        try:
            typed[key] = parse_option_value(cls, key, format_value(value))
        except (TypeError, ValueError) as exc:
            raise ck.error(where + ["options", key], f"bad value {value!r}: {exc}", rn) from None
    try:
        method = cls(**typed)
    except (TypeError, ValueError) as exc:
        raise ck.error(where + ["options"], f"method {spec.method!r} rejects these options: {exc}", rn) from None
    if check_backbone:
        from lrpose_bench.models.assemble import check_backbone_for

        for bb in filter(None, spec.backbones):
            try:
                check_backbone_for(method, bb)
            except (KeyError, ValueError) as exc:
                raise ck.error(_src(raw, where, "backbone"), exc.args[0], rn) from None
    res_path = _src(raw, where, "resolutions")
    for res in spec.resolutions:
        try:
            geometry = method.geometry(parse_resolution(res))
        except ValueError as exc:
            raise ck.error(res_path, str(exc), rn) from None
        for bb in spec.backbones:
            size, trunk_only = _weights_input_size(spec, geometry), method.head_input == "trunk"
            why = _backbone_rejects(bb, size, trunk_only) if bb and check_backbone else None
            if why:
                raise ck.error(res_path, f"run {rn!r} at {res} on {bb}: {why}", rn)


def _weights_input_size(spec: RunSpec, geometry: Any) -> tuple[int, int]:
    """The size the backbone is built at: the model input, or for an eval-only run its ``test_upsample``
    size, or the model input padded to multiples of 32 with ``pad``."""
    from lrpose_bench.geometry import parse_resolution

    size = tuple(geometry.model_input_size)
    if spec.weights.get("test_upsample"):
        return parse_resolution(str(spec.weights["test_upsample"]))
    if spec.weights.get("pad"):
        return (-(-size[0] // 32) * 32, -(-size[1] // 32) * 32)
    return size  # type: ignore[return-value]


def _check_sr(ck: _Checker, spec: RunSpec, raw: Mapping[str, Any], where: list[str | int]) -> None:
    """SR model name and scale against ``lrpose_bench.sr.archs`` (skipped if that module is absent)."""
    try:
        from lrpose_bench.sr.archs import sr_arch
    except ImportError:
        return
    if "model" not in spec.sr:
        return
    try:
        arch = sr_arch(spec.sr["model"])
    except ValueError as exc:
        raise ck.error(_src(raw, where, "sr", "model"), str(exc), spec.name) from None
    scale = spec.sr.get("scale")
    if scale is not None and scale not in arch.scales:
        raise ck.error(_src(raw, where, "sr", "scale"), f"SR model {arch.name!r} supports scales {arch.scales}, got {scale}", spec.name)


def _backbone_rejects(name: str, size: tuple[int, int], trunk_only: bool = False) -> str | None:
    """Why backbone ``name`` cannot take ``size = (w, h)`` px (its own ``ValueError``), or ``None``.

    Checked by the registry's size rules, without building the network.
    """
    from lrpose_bench.models.registry import check_input_size

    try:
        check_input_size(name, size, trunk_only)
    except ValueError as exc:
        return str(exc)
    return None


def _hparam_rejects(key: str, value: Any) -> str | None:
    """Why ``lrpose run --hp key=value`` would refuse ``value`` (typed by the training config), or ``None``."""
    try:
        from lrpose_bench.engine.config import parse_hparam
    except ImportError:
        return None
    try:
        parse_hparam(key, format_value(value))
    except ValueError as exc:
        return str(exc)
    return None


def _config_rejects(profile: str, hparams: Mapping[str, Any]) -> str | None:
    """Why the training config of ``profile`` with ``hparams`` is invalid (``TrainConfig.validate``), or ``None``."""
    try:
        from lrpose_bench.engine.config import make_config
    except ImportError:
        return None
    try:
        make_config(profile, {k: format_value(v) for k, v in hparams.items()})
    except ValueError as exc:
        return str(exc)
    return None


def _known_backbones() -> set[str] | None:
    """Backbone names from ``lrpose_bench.models.BACKBONES``; ``None`` if that registry is not there."""
    try:
        from lrpose_bench.models import BACKBONES  # type: ignore[attr-defined]
    except ImportError:
        return None
    return set(BACKBONES)


def _known_hparams() -> set[str] | None:
    """Field names of the training config; ``None`` if ``lrpose_bench.engine.config`` is not there."""
    try:
        from lrpose_bench.engine.config import TrainConfig  # type: ignore[import-not-found]
    except ImportError:
        return None
    if dataclasses.is_dataclass(TrainConfig):
        return {f.name for f in dataclasses.fields(TrainConfig)}
    fields = getattr(TrainConfig, "model_fields", None) or getattr(TrainConfig, "__annotations__", None)
    return set(fields) if fields else None


def _check_unique_ids(ck: _Checker, exp: Experiment) -> None:
    """Two runs may share a name (e.g. one per backbone) but never a run id."""
    seen: dict[str, int] = {}
    for i, spec in enumerate(exp.runs):
        ids = {run_id_for(spec.name, bb, res, seed) for bb in spec.backbones for res in spec.resolutions for seed in spec.seeds}
        for run_id in sorted(ids):
            if run_id in seen:
                raise ck.error(["runs", i, "name"], f"run id {run_id!r} is also made by run #{seen[run_id] + 1}; "
                               "give one of them another name", spec.name)
            seen[run_id] = i


# ----------------------------------------------------------------------------------------------
# Expansion
# ----------------------------------------------------------------------------------------------
def run_id_for(name: str, backbone: str | None, resolution: str, seed: int) -> str:
    """Deterministic run id: ``<run name>[-<backbone>]-<HxW>-s<seed>`` (folder name of the run)."""
    parts = [name] + ([backbone] if backbone else []) + [resolution, f"s{seed}"]
    return "-".join(parts)


def expand(
    exp: Experiment,
    seeds: int | None = None,
    profile: str | None = None,
    only: Iterable[str] | None = None,
) -> list[PlannedRun]:
    """Every concrete run of ``exp``: runs x backbones x resolutions x seeds, in file order.

    ``seeds`` (a count) replaces every run's seeds by ``0..seeds-1``; ``profile`` overrides the file's;
    ``only`` keeps the listed runs: a value that names a run selects that run, any other value every run
    of that method (``cal`` is the run named ``cal``, not also ``cal_shared``; see :func:`check_only`).
    """
    names = {spec.name for spec in exp.runs}
    wanted = set(only) if only else None
    wanted_runs = {item for item in wanted or () if item in names}
    wanted_methods = (wanted or set()) - wanted_runs
    seed_override = parse_seeds(seeds) if seeds is not None else None
    out: list[PlannedRun] = []
    for spec in exp.runs:
        if wanted is not None and spec.name not in wanted_runs and spec.method not in wanted_methods:
            continue
        for backbone in spec.backbones:
            for res in spec.resolutions:
                for seed in (0,) if spec.weights else seed_override or spec.seeds:  # an evaluation has no seed
                    out.append(
                        PlannedRun(
                            experiment=exp.name,
                            run_id=run_id_for(spec.name, backbone, res, seed),
                            name=spec.name,
                            label=spec.label,
                            method=spec.method,
                            options=dict(spec.options),
                            backbone=backbone,
                            pretrained=spec.pretrained.get(backbone or "") if isinstance(spec.pretrained, dict) else spec.pretrained,
                            resolution=res,
                            seed=seed,
                            profile=None if spec.weights else (profile or exp.profile),
                            hparams=dict(spec.hparams),
                            sr=dict(spec.sr),
                            lowres_protocol=spec.lowres_protocol,
                            boxes=exp.boxes,
                            det_boxes=exp.det_boxes,
                            det_score_threshold=exp.det_score_threshold,
                            weights=dict(spec.weights),
                            dataset=exp.dataset,
                        )
                    )
    return out


def check_only(exp: Experiment, only: Iterable[str]) -> None:
    """Raise :class:`ExperimentError` if an ``--only`` value names no method or run of ``exp``."""
    names = {r.name for r in exp.runs} | {r.method for r in exp.runs}
    for item in only:
        if item not in names:
            raise ExperimentError(
                f"--only {item!r} matches no run of {exp.path}; methods here: {', '.join(exp.methods())}; "
                f"runs: {', '.join(r.name for r in exp.runs)}"
            )


# ----------------------------------------------------------------------------------------------
# Run folders
# ----------------------------------------------------------------------------------------------
def run_status(run_dir: str | Path) -> str:
    """``done`` (record.json exists), ``resume`` (a checkpoint but no record), ``retry`` (a folder with
    neither: a run that failed early) or ``todo`` (no folder)."""
    d = Path(run_dir)
    if (d / "record.json").is_file():
        return "done"
    if _checkpoint_path(d).is_file():
        return "resume"
    return "retry" if d.exists() else "todo"


def _checkpoint_path(run_dir: Path) -> Path:
    try:
        from lrpose_bench.engine.checkpoint import checkpoint_path
    except ImportError:  # engine not there yet: the layout documented in lrpose_bench.records
        return run_dir / "checkpoints" / "last.pt"
    return checkpoint_path(run_dir)


def set_aside(run_dir: str | Path) -> Path:
    """Move a failed run's folder (no record, no checkpoint) to ``<experiment dir>/failed/`` so the
    run can start again under its own id (``lrpose run`` never reuses an existing folder); returns where."""
    d = Path(run_dir)
    target_dir = d.parent / "failed"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / d.name
    n = 2
    while target.exists():
        target = target_dir / f"{d.name}.{n}"
        n += 1
    d.rename(target)
    return target


def record_conflict(run: PlannedRun, record: Mapping[str, Any], dataset_folder: str | None = None) -> str | None:
    """Why an existing record does not belong to ``run`` (different method, resolution, ...), or ``None``.

    ``dataset_folder``: the folder name of the dataset the sweep uses (the embedded dataset's name carries
    its generator version, so records made on an older version are not mistaken for current ones)."""
    checks = {
        "method": (record.get("method", {}).get("name"), run.method),
        "resolution": (record.get("resolution"), run.resolution),
        "seed": (record.get("seed"), run.seed),
    }
    if run.profile:
        checks["profile"] = (record.get("profile"), run.profile)
    if run.backbone:
        checks["backbone"] = (record.get("backbone"), run.backbone)
    if dataset_folder:
        checks["dataset"] = (Path(str(record.get("dataset", {}).get("root", ""))).name, dataset_folder)
    for key, (have, want) in checks.items():
        if have != want:
            return f"its {key} is {have!r}, this sweep wants {want!r}"
    return None


def find_experiment(arg: str, search_dir: str | Path = "experiments") -> Path:
    """``arg`` as a path, or ``NAME`` -> ``<search_dir>/NAME.toml`` when no such file exists."""
    p = Path(arg).expanduser()
    if p.is_file():
        return p
    candidate = Path(search_dir) / f"{arg}.toml"
    if p.suffix != ".toml" and candidate.is_file():
        return candidate
    known = sorted(q.stem for q in Path(search_dir).glob("*.toml")) if Path(search_dir).is_dir() else []
    hint = f"; experiments in {search_dir}/: {', '.join(known)}" if known else ""
    raise ExperimentError(f"experiment file not found: {arg}{hint}")


__all__ = [
    "Experiment",
    "ExperimentError",
    "PlannedRun",
    "RunSpec",
    "load_experiment",
    "expand",
    "check_only",
    "run_status",
    "set_aside",
    "record_conflict",
    "run_id_for",
    "find_experiment",
    "format_value",
    "parse_seeds",
]
