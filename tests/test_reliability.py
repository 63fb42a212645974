"""Issue 16, reliability: bad data never trains silently, a run folder has one owner, every user error is
one line. One test (or table case) per defect of the issue, numbered as there.

``CASES`` is the table of user errors: command, expected exit code, expected message; each case builds its
bad input with a named setup. Add a row for every new user error the CLI must report in one line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lrpose_bench.cli.app import app

runner = CliRunner()
TINY_RUN = ["--backbone", "tiny", "--profile", "quick", "--epochs", "1", "--batch-size", "8", "--workers", "0",
            "--hp", "max_val_instances=4", "--no-flip"]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------------
def _doc(tiny: Path, split: str) -> dict:
    return json.loads((tiny / "annotations" / f"person_keypoints_{split}2017.json").read_text())


def make_root(tmp: Path, tiny: Path, train: Callable[[dict], Any] | None = None,
              val: Callable[[dict], Any] | None = None, copy_images: bool = False) -> Path:
    """A COCO root beside ``tmp``: the tiny dataset's files with ``train`` / ``val`` applied to the JSONs."""
    root = tmp / "root"
    (root / "annotations").mkdir(parents=True)
    for split, edit in (("train", train), ("val", val)):
        doc = _doc(tiny, split)
        if edit is not None:
            doc = edit(doc) or doc
        text = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
        path = root / "annotations" / f"person_keypoints_{split}2017.json"
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        if copy_images:
            shutil.copytree(tiny / f"{split}2017", root / f"{split}2017")
        else:
            (root / f"{split}2017").symlink_to(tiny / f"{split}2017")
    return root


def _dup_image_id(doc: dict) -> None:
    doc["images"][1]["id"] = doc["images"][0]["id"]


def _dup_image_entry(doc: dict) -> None:
    doc["images"].append(dict(doc["images"][0]))


def _dup_ann_id(doc: dict) -> None:
    doc["annotations"][1]["id"] = doc["annotations"][0]["id"]


def _dup_file_name(doc: dict) -> None:
    doc["images"][1]["file_name"] = doc["images"][0]["file_name"]


def _zero_boxes(doc: dict) -> None:
    for a in doc["annotations"]:
        a["bbox"][2] = 0.0


def _no_area(doc: dict) -> None:
    for a in doc["annotations"]:
        a.pop("area", None)


def _no_keypoints(doc: dict) -> None:
    for a in doc["annotations"]:
        a["keypoints"] = [0] * 51


def _string_image_ids(doc: dict) -> None:
    for im in doc["images"]:
        im["id"] = str(im["id"])
    for a in doc["annotations"]:
        a["image_id"] = str(a["image_id"])


def _binary(doc: dict) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary"


def setup_root(edit_train=None, edit_val=None) -> Callable[[Path, Path], dict[str, str]]:
    def build(tmp: Path, tiny: Path) -> dict[str, str]:
        return {"root": str(make_root(tmp, tiny, edit_train, edit_val))}

    return build


def setup_text_weights(tmp: Path, tiny: Path) -> dict[str, str]:
    (tmp / "weights.pth").write_text("hello, these are not weights\n")
    return {"root": str(tiny), "weights": str(tmp / "weights.pth")}


class Evil:  # a pickled object that weights_only loading refuses
    pass


def setup_pickle(tmp: Path, tiny: Path) -> dict[str, str]:
    torch.save({"format": 1, "object": Evil()}, tmp / "evil.pt")
    return {"root": str(tiny), "weights": str(tmp / "evil.pt")}


def setup_predictions(keypoints: Any = None, score: Any = 1.0, gt_edit=None) -> Callable[[Path, Path], dict[str, str]]:
    def build(tmp: Path, tiny: Path) -> dict[str, str]:
        gt = _doc(tiny, "val")
        ann = next(a for a in gt["annotations"] if a["num_keypoints"] > 0)
        pred = {"image_id": ann["image_id"], "category_id": 1, "score": score,
                "keypoints": ann["keypoints"] if keypoints is None else keypoints}  # fmt: skip
        (tmp / "pred.json").write_text(json.dumps([pred]))
        if gt_edit is not None:
            gt_edit(gt)
        (tmp / "gt.json").write_text(json.dumps(gt))
        return {"pred": str(tmp / "pred.json"), "gt": str(tmp / "gt.json")}

    return build


def _images_without_id(doc: dict) -> None:
    for im in doc["images"]:
        del im["id"]


def setup_file_in_the_way(tmp: Path, tiny: Path) -> dict[str, str]:
    (tmp / "afile").write_text("x")
    return {"root": str(tiny), "under_file": str(tmp / "afile" / "runs")}


def setup_truncated_npz(tmp: Path, tiny: Path) -> dict[str, str]:
    run = tmp / "run"
    run.mkdir()
    np.savez_compressed(run / "coarse_errors.npz", errors=np.zeros((50, 17, 2), np.float32), valid=np.ones((50, 17), bool))
    data = (run / "coarse_errors.npz").read_bytes()
    (run / "coarse_errors.npz").write_bytes(data[: len(data) // 2])
    return {"run": str(run)}


def setup_records_under_file(tmp: Path, tiny: Path) -> dict[str, str]:
    from test_report import make_record, put

    put(tmp / "records", make_record("a"))
    (tmp / "afile").write_text("x")
    return {"runs": str(tmp / "records"), "under_file": str(tmp / "afile" / "tables")}


def setup_plain(tmp: Path, tiny: Path) -> dict[str, str]:
    return {"root": str(tiny)}


@dataclass(frozen=True)
class Case:
    """One user error: ``argv`` (with ``{placeholders}`` filled by ``setup``), exit code, message."""

    name: str
    defect: int
    setup: Callable[[Path, Path], dict[str, str]]
    argv: tuple[str, ...]
    code: int
    message: str
    one_line: bool = True  # typer's own option errors are a box; ours are one "error: ..." line


def run_argv(out: str = "{tmp}/runs", data: str = "{root}") -> tuple[str, ...]:
    return ("run", "--method", "heatmap", "--res", "64x48", "--data", data, "--out", out, *TINY_RUN)


RUN = run_argv()

CASES: list[Case] = [
    # 1. duplicate ids cross-wire training
    Case("duplicate-image-id-train", 1, setup_root(_dup_image_id), RUN, 1, "image id(s) {dup_id} appear more than once in 'images'"),
    Case("duplicate-image-id-val", 1, setup_root(None, _dup_image_id), RUN, 1, "person_keypoints_val2017.json: image id(s)"),
    Case("duplicate-image-entry", 1, setup_root(_dup_image_entry), RUN, 1, "appear more than once in 'images'"),
    Case("duplicate-annotation-id", 1, setup_root(_dup_ann_id), RUN, 1, "annotation id(s) {dup_ann} appear more than once"),
    Case("duplicate-file-name", 1, setup_root(_dup_file_name), RUN, 1, "appear more than once in 'images'"),
    # 2. empty splits are errors before training, per cause
    Case("no-usable-box", 2, setup_root(_zero_boxes), RUN, 1,
         "no usable person to train on (of {n_train} person annotations: {n_train} with a box of zero width/height"),
    Case("no-area", 2, setup_root(_no_area), RUN, 1, "{n_train} with no numeric 'area' field"),
    Case("no-visible-keypoint", 2, setup_root(_no_keypoints), RUN, 1, "{n_train} with no labelled keypoint"),
    Case("empty-val", 2, setup_root(None, _no_keypoints), RUN, 1, "person_keypoints_val2017.json: no usable person"),
    # 7. tracebacks on user input
    Case("null-keypoints", 7, setup_predictions(keypoints=[None] * 51),
         ("eval", "--predictions", "{pred}", "--annotations", "{gt}"), 1, "field 'keypoints' holds None, expected finite numbers"),
    Case("string-score", 7, setup_predictions(score="high"),
         ("eval", "--predictions", "{pred}", "--annotations", "{gt}"), 1, "field 'score' = 'high' is not a finite number"),
    Case("out-under-a-file", 7, setup_file_in_the_way, run_argv(out="{under_file}"), 1,
         "{under_file}: a part of the path is a file, not a folder"),
    Case("truncated-npz", 7, setup_truncated_npz, ("plot", "offsets", "--run", "{run}", "--out", "{tmp}/fig"), 1,
         "coarse_errors.npz: not a readable .npz file"),
    Case("report-out-under-a-file", 7, setup_records_under_file,
         ("report", "--runs", "{runs}", "--out", "{under_file}", "--format", "csv", "-q"), 1,
         "{under_file}: a part of the path is a file, not a folder"),
    # 8. errors that name nothing
    Case("pretrained-text-file", 8, setup_text_weights, RUN + ("--pretrained", "{weights}"), 1,
         "--pretrained: {weights} could not be read: it is not a file written by torch.save"),
    Case("pretrained-pickle", 8, setup_pickle, RUN + ("--pretrained", "{weights}"), 1,
         "it holds Python objects that are not tensors or plain types"),
    Case("checkpoint-pickle", 8, setup_pickle, ("eval", "--checkpoint", "{weights}"), 1,
         "checkpoint {weights} could not be read: it holds Python objects"),
    Case("gt-images-without-id", 8, setup_predictions(gt_edit=_images_without_id),
         ("eval", "--predictions", "{pred}", "--annotations", "{gt}"), 1, "gt.json: images[0] has no field 'id'"),
    Case("set-not-a-number", 8, setup_plain, RUN + ("--set", "sigma=abc"), 2,
         "--set sigma='abc': option 'sigma' of method 'heatmap' takes a number"),
    Case("seed-not-an-integer", 8, setup_plain, RUN + ("--seed", "1e30"), 2, "'1e30' is not an integer in [0, 4294967295]",
         one_line=False),
    Case("seed-too-large", 8, setup_plain, RUN + ("--seed", "1" + "0" * 30), 2, "is not an integer in [0, 4294967295]",
         one_line=False),
    Case("binary-annotation-file", 8, setup_root(_binary), RUN, 1,
         "person_keypoints_train2017.json is not UTF-8 text (byte 0x89 at offset 0)"),
    Case("string-image-ids", 8, setup_root(_string_image_ids), RUN, 1,
         "person_keypoints_train2017.json: images[0]: field 'id' = "),
    # 10. values that make no sense
    Case("set-nan", 10, setup_plain, RUN + ("--set", "sigma=nan"), 2, "option 'sigma' of method 'heatmap' must be a finite number"),
    Case("set-inf", 10, setup_plain, RUN + ("--set", "sigma=inf"), 2, "must be a finite number"),
    Case("flip-prob-2", 10, setup_plain, RUN + ("--hp", "flip_prob=2"), 2, "hyper-parameter flip_prob=2.0 (--hp flip_prob): must be in [0, 1]"),
    Case("lr-inf", 10, setup_plain, RUN + ("--lr", "inf"), 2, "hyper-parameter lr=inf (--lr / --hp lr): must be a finite number"),
    # 12. run ids are folder names
    Case("run-id-escapes-out", 12, setup_plain, RUN + ("--run-id", "a/../../x"), 2, "--run-id 'a/../../x': a run id names one folder"),
    Case("run-id-dot-dot", 12, setup_plain, RUN + ("--run-id", ".."), 2, "--run-id '..'"),
]


def _facts(tiny: Path) -> dict[str, str]:
    """Values the messages quote, taken from the tiny dataset."""
    train = _doc(tiny, "train")
    return {"dup_id": repr(train["images"][0]["id"]), "dup_ann": repr(train["annotations"][0]["id"]),
            "n_train": str(len(train["annotations"]))}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.defect}-{c.name}")
def test_user_error_is_one_line(case: Case, tiny_embedded: Path, tmp_path: Path) -> None:
    values = {"tmp": str(tmp_path), **_facts(tiny_embedded), **case.setup(tmp_path, tiny_embedded)}
    result = runner.invoke(app, [a.format(**values) for a in case.argv])
    output = result.output
    assert result.exit_code == case.code, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    assert "Traceback" not in output and "weights_only=False" not in output
    message = case.message.format(**values)
    if case.one_line:
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], output
    else:
        assert message in " ".join(output.replace("│", " ").split()), output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "a failed start left a run folder"


# ------------------------------------------------------------------------------------------------
# 1. duplicate ids: the data core refuses them (train and val, and the evaluation's ground truth)
# ------------------------------------------------------------------------------------------------
def test_duplicate_ids_are_refused_by_every_loader(tiny_embedded: Path, tmp_path: Path) -> None:
    from lrpose_bench.data.coco import load_annotation_file
    from lrpose_bench.evaluation.coco_eval import load_coco

    doc = _doc(tiny_embedded, "val")
    _dup_image_id(doc)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"gt\.json: image id\(s\) \d+ appear more than once"):
        load_annotation_file(path)
    with pytest.raises(ValueError, match=r"gt\.json: image id \d+ appears more than once"):
        load_coco(path)


# ------------------------------------------------------------------------------------------------
# 2. skipped instances are counted per cause and named in the summary
# ------------------------------------------------------------------------------------------------
def test_skipped_instances_are_counted_per_cause(tiny_embedded: Path, tmp_path: Path, caplog) -> None:
    from lrpose_bench.data.coco import CocoPoseDataset

    doc = _doc(tiny_embedded, "train")
    anns = doc["annotations"]
    anns[0].pop("area")
    anns[1]["area"] = 0
    anns[2]["bbox"][3] = -5.0
    anns[3]["keypoints"] = [0] * 51
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with caplog.at_level("WARNING", logger="lrpose_bench.data.coco"):
        ds = CocoPoseDataset(tmp_path / "ann.json", tiny_embedded / "train2017", (48, 64), False, True)
    assert len(ds) == len(anns) - 4
    c = ds.counts
    assert (c["missing_area"], c["zero_area"], c["zero_area_box"], c["no_keypoints"]) == (1, 1, 1, 1)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 4 of" in text and "1 with no numeric 'area' field" in text and "1 with an 'area' <= 0" in text


# ------------------------------------------------------------------------------------------------
# 3. run-folder ownership
# ------------------------------------------------------------------------------------------------
def test_a_second_writer_fails_at_once_naming_the_holder(tiny_embedded: Path, tmp_path: Path) -> None:
    from lrpose_bench.engine.runlock import RunLock, claim_run_dir

    out = tmp_path / "runs"
    (out / "x" / "checkpoints").mkdir(parents=True)
    with RunLock(out / "x"):  # a live run holds x (a lock of another open file: flock refuses it in-process too)
        for extra in (["--run-id", "x", "--resume"], ["--run-id", "x"]):
            result = runner.invoke(app, [*run_argv(str(out), str(tiny_embedded)), *extra])
            assert result.exit_code == 1, result.output
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and f"is in use by another run (pid {os.getpid()} " in errors[0], result.output
        # default ids: a taken folder gets a free suffix, claimed atomically (two at once never share one)
        first = claim_run_dir(out, None, "x", resume=False)
        second = claim_run_dir(out, None, "x", resume=False)
        assert (first.path.name, second.path.name) == ("x-2", "x-3")
        first.release(), second.release()
    assert RunLock(out / "x").acquire().held  # released when its holder ends: never stale


def test_sweep_runs_die_with_the_sweep(tmp_path: Path) -> None:
    """A sweep killed with SIGKILL leaves no orphan training on: its run gets SIGINT (save, stop)."""
    child_code = ("from lrpose_bench.cli.common import die_with_parent; die_with_parent(); import time; "
                  "print('ready', flush=True); time.sleep(120)")  # fmt: skip
    parent_code = textwrap.dedent(f"""
        import sys, time
        from lrpose_bench.cli.sweep_cmd import start_run
        child = start_run([sys.executable, "-c", {child_code!r}], open({str(tmp_path / 'child.log')!r}, "w"))
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while "ready" not in (tmp_path / "child.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child_pid), "the sweep's run outlived the sweep"
    finally:
        parent.kill()
        if "child_pid" in locals() and _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


# ------------------------------------------------------------------------------------------------
# 4. a run that dies before its first checkpoint strands nothing
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_without_a_checkpoint_starts_from_scratch_and_cleans_temp_files(tiny_embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    ckpts = out / "x" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # what a kill during torch.save leaves
    result = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded),
                                 "--out", str(out), "--run-id", "x", "--resume", *TINY_RUN])  # fmt: skip
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "has no checkpoint" in flat and "starting it from scratch" in flat and "removed 1 temporary file" in flat
    assert (out / "x" / "record.json").is_file() and not list(ckpts.glob("*.tmp"))


@pytest.mark.slow
def test_divergence_before_the_first_checkpoint_leaves_no_folder(tiny_embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded),
                                 "--out", str(out), "--run-id", "boom", *TINY_RUN, "--hp", "lr_steps=0",
                                 "--hp", "lr_factor=1e30"])  # fmt: skip
    assert result.exit_code == 3, result.output
    flat = " ".join(result.output.split())
    assert "diverged before its first checkpoint" in flat and "last good checkpoint" not in flat
    assert not (out / "boom").exists()  # the id is free again: a plain rerun works


# ------------------------------------------------------------------------------------------------
# 5. a full disk names the file and the bytes it needs
# ------------------------------------------------------------------------------------------------
def test_full_disk_while_saving_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrpose_bench.engine import checkpoint as ck
    from lrpose_bench.errors import DiskFullError

    def full(obj: Any, f: Any) -> None:
        Path(f).write_bytes(b"x" * 10)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ck.torch, "save", full)
    monkeypatch.setattr(ck, "free_bytes", lambda path: 1000)
    target = tmp_path / "run" / "checkpoints" / "last.pt"
    with pytest.raises(DiskFullError) as info:
        ck.save_checkpoint(target, {"model": {"w": torch.zeros(1000)}})
    assert str(info.value).startswith(f"disk full writing {target} (needs about 4.0 kB, 1.0 kB free)")
    assert not list(target.parent.iterdir())  # no partial file


def test_full_disk_while_writing_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrpose_bench.cli.common import run_guarded
    from lrpose_bench.io import write_json

    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    result = CliRunner().invoke(_wrap(lambda: run_guarded(write_json, tmp_path / "r.json", {"a": 1})))
    assert result.exit_code == 1
    assert f"error: disk full writing {tmp_path / 'r.json'} (needs about 13 bytes" in result.output


def _wrap(func: Callable[[], Any]) -> Any:
    import typer

    cmd = typer.Typer()
    cmd.command()(func)
    return cmd


def test_read_only_out_is_one_line(tiny_embedded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if str(self).startswith(str(blocked)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = runner.invoke(app, ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded),
                                 "--out", str(blocked / "runs"), *TINY_RUN])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"error: {blocked / 'runs'}: the file system is read-only: write elsewhere" in result.output


# ------------------------------------------------------------------------------------------------
# 6. the report groups by content hash and counts each run once
# ------------------------------------------------------------------------------------------------
def test_report_groups_by_dataset_hash_and_refuses_copied_records(tmp_path: Path) -> None:
    from test_report import make_record, put

    from lrpose_bench.report.registry import ReportError, aggregate, load_records
    from lrpose_bench.report.tables import build_tables, render_markdown_table
    from lrpose_bench.report.paper import load_paper

    root = tmp_path / "runs"
    for seed in (0, 1):
        put(root, make_record(f"old-{seed}", dataset="embedded", seed=seed, ap=0.3, inversion=0.1))
    new = make_record("new-0", dataset="embedded", ap=0.6, inversion=0.2)
    new["dataset"]["hash"] = "ffff0000aaaa1111"
    put(root, new)
    agg = aggregate(load_records(root))
    assert sorted(agg["n"]) == [1, 2]  # one folder name, two datasets: two settings
    assert set(agg["dataset"]) == {"embedded (abc123)", "embedded (ffff0000)"}
    md = render_markdown_table(build_tables(load_records(root), load_paper())[0])
    assert "| Method | Backbone | Input | Dataset | Good | Jitter | Inversion | Swap | Miss |" in md  # error types
    # a copied run folder: the same record twice
    shutil.copytree(root / "exp" / "old-1", root / "exp" / "old-1-copy")
    with pytest.raises(ReportError, match=r"run id 'old-1' of experiment 'exp' has 2 records"):
        load_records(root)


# ------------------------------------------------------------------------------------------------
# 9. truncated images and sizes that disagree with the JSON
# ------------------------------------------------------------------------------------------------
def test_truncated_and_resized_images_are_skipped_and_counted(tiny_embedded: Path, tmp_path: Path, caplog) -> None:
    import cv2

    from lrpose_bench.data.coco import CocoPoseDataset

    doc = _doc(tiny_embedded, "val")
    images = tmp_path / "val2017"
    shutil.copytree(tiny_embedded / "val2017", images)
    used = sorted({a["image_id"] for a in doc["annotations"] if a["num_keypoints"] > 0})
    by_id = {im["id"]: im for im in doc["images"]}
    jpeg, png = by_id[used[0]], by_id[used[1]]
    img = cv2.imread(str(images / jpeg["file_name"]))
    ok, buf = cv2.imencode(".jpg", img)
    jpeg["file_name"] = jpeg["file_name"].replace(".png", ".jpg")
    (images / jpeg["file_name"]).write_bytes(buf.tobytes()[: len(buf) // 2])  # libjpeg would fill it with grey
    data = (images / png["file_name"]).read_bytes()
    (images / png["file_name"]).write_bytes(data[: len(data) * 2 // 3])
    by_id[used[2]]["width"] += 8  # the JSON disagrees with the file
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with caplog.at_level("WARNING", logger="lrpose_bench.data.coco"):
        ds = CocoPoseDataset(tmp_path / "ann.json", images, (48, 64), False, False, cache_images=True)
    assert (ds.counts["truncated_images"], ds.counts["size_mismatch_images"]) == (2, 1)
    bad_ids = {used[0], used[1], used[2]}
    for i in range(len(ds)):
        sample = ds[i]
        assert bool(sample["ok"]) == (int(sample["image_id"]) not in bad_ids)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "2 image(s) are truncated" in text and "1 image(s) differ in size" in text
    # past the threshold (a resized image folder): an error naming both sizes
    for im in doc["images"]:
        im["width"] *= 2
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"differ in size from .*ann\.json .* px in the file, \d+x\d+ in the JSON"):
        CocoPoseDataset(tmp_path / "ann.json", images, (48, 64), False, False)


# ------------------------------------------------------------------------------------------------
# 10. records are strict JSON
# ------------------------------------------------------------------------------------------------
def test_records_are_strict_json(tmp_path: Path) -> None:
    from test_report import make_record

    from lrpose_bench.records import read_record, write_record

    record = make_record("r")
    record["mean_error_px"] = float("nan")
    record["per_joint_error_px"] = {"nose": float("inf")}
    path = write_record(tmp_path, record)

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in record.json")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["mean_error_px"] is None and data["per_joint_error_px"]["nose"] is None
    assert read_record(path)["mean_error_px"] is None


# ------------------------------------------------------------------------------------------------
# 11. Ctrl-C during evaluation; a sweep counts only valid records as done
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_during_evaluation_says_how_to_finish(tiny_embedded: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from lrpose_bench.engine import runner as engine_runner

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_runner, "evaluate", interrupted)
    args = ["run", "--method", "heatmap", "--res", "64x48", "--data", str(tiny_embedded), "--out", str(tmp_path),
            "--run-id", "cut", *TINY_RUN]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "interrupted during the evaluation" in errors[0] and "--resume --run-id cut" in errors[0]
    monkeypatch.undo()
    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "cut" / "record.json").is_file()


def test_sweep_does_not_count_a_record_that_fails_the_schema(tmp_path: Path) -> None:
    from lrpose_bench.data.spec import embedded_dir

    from test_sweep import TINY

    exp = tmp_path / "tiny_sweep.toml"
    exp.write_text(TINY)
    for method in ("heatmap", "udp"):
        run_dir = tmp_path / "runs" / "tiny_sweep" / f"{method}-tiny-64x48-s0"
        run_dir.mkdir(parents=True)
        (run_dir / "record.json").write_text(json.dumps(
            {"method": {"name": method, "options": {}}, "resolution": "64x48", "seed": 0, "profile": "quick",
             "backbone": "tiny", "dataset": {"root": str(embedded_dir())}}
        ))  # fmt: skip
    result = runner.invoke(app, ["sweep", str(exp), "--out", str(tmp_path / "runs")], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "is not a valid record" in result.output and "missing field 'schema'" in result.output


# ------------------------------------------------------------------------------------------------
# 12. files are written with the process umask
# ------------------------------------------------------------------------------------------------
def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    from lrpose_bench.engine.checkpoint import save_checkpoint
    from lrpose_bench.io import process_umask, write_json

    mode = 0o666 & ~process_umask()
    json_file = write_json(tmp_path / "a.json", {"a": 1})
    ckpt = save_checkpoint(tmp_path / "last.pt", {"w": torch.zeros(2)})
    assert (json_file.stat().st_mode & 0o777, ckpt.stat().st_mode & 0o777) == (mode, mode)
    assert mode != 0o600 or process_umask() == 0o066


def test_every_case_has_a_defect_number() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.defect for c in CASES} <= set(range(1, 13)) and {c.code for c in CASES} <= {1, 2}
