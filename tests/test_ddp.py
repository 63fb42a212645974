"""DDP on the CPU without torchrun: two gloo processes (torch.multiprocessing) run the real Trainer for two
epochs (cal_mgm: both ranks must fit the same mixture) and the sharded evaluation. Both ranks end with
identical weights although their initial weights differed, and only rank 0 writes files.

With torchrun the same code runs as
    torchrun --nproc_per_node=2 -m lrpose_bench.cli.app run --method cal --res 128x96 --device cpu
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

#: Imported once by the forkserver; both ranks fork from it instead of importing torch each (CI CPU time).
PRELOAD = ["torch", "torch._dynamo", "torch.distributed", "cv2", "sklearn.mixture", "pycocotools.cocoeval",
           "lrpose_bench.engine.trainer", "lrpose_bench.engine.runner", "lrpose_bench.engine.inference",
           "lrpose_bench.method", "lrpose_bench.mixture", "lrpose_bench.methods.cal"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    from lrpose_bench.engine import distributed as D
    from lrpose_bench.engine.config import make_config
    from lrpose_bench.engine.inference import evaluate
    from lrpose_bench.engine.runner import build_model, make_dataset, seed_everything
    from lrpose_bench.engine.trainer import Trainer
    from lrpose_bench.method import build_method

    info, device = D.init_distributed(torch.device("cpu"))
    assert (info.rank, info.world_size) == (rank, world)
    root, out_dir = Path(data), Path(out)
    method = build_method("cal_mgm")
    geometry = method.geometry((48, 64))
    seed_everything(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = build_model(method, geometry, "tiny", None)
    cfg = make_config("quick", {"epochs": 2, "batch_size": 4, "workers": 0, "max_train_instances": 16, "warmup_steps": 0})
    ann, images = root / "annotations" / "person_keypoints_train2017.json", root / "train2017"
    train_set = make_dataset(ann, images, method, geometry, train=True, config=cfg, seed=0, lowres_protocol="direct")
    predict_set = make_dataset(ann, images, method, geometry, train=True, augment=False, config=cfg, seed=0,
                               lowres_protocol="direct")  # fmt: skip
    val_set = make_dataset(root / "annotations" / "person_keypoints_val2017.json", root / "val2017", method, geometry,
                           train=False, config=cfg, seed=0, lowres_protocol="direct")  # fmt: skip
    trainer = Trainer(model, method, geometry, cfg, device, seed=0, run_dir=out_dir / f"run{rank}", dist_info=info)
    summary = trainer.fit(train_set, predict_set)
    result = evaluate(trainer.model, method, geometry, val_set, device, batch_size=5)
    torch.save({k: v.detach().clone() for k, v in trainer.model.named_parameters()}, out_dir / f"params{rank}.pt")
    facts = {"stages": summary.stage_facts, "rows": summary.log_rows, "has_result": result is not None}
    if result is not None:
        facts |= {"stats": result.stats, "instances": result.instances, "val": len(val_set)}
    (out_dir / f"facts{rank}.json").write_text(json.dumps(facts))
    D.shutdown_distributed()


@pytest.mark.slow
def test_two_gloo_processes_train_identically_and_only_rank0_writes(tiny_embedded: Path, tmp_path: Path) -> None:
    import multiprocessing

    multiprocessing.set_forkserver_preload(PRELOAD)
    mp.start_processes(_worker, args=(2, _free_port(), str(tiny_embedded), str(tmp_path)), nprocs=2, join=True,
                       start_method="forkserver")  # fmt: skip
    p0 = torch.load(tmp_path / "params0.pt", weights_only=True)
    p1 = torch.load(tmp_path / "params1.pt", weights_only=True)
    assert p0.keys() == p1.keys() and len(p0) > 0
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    # rank 0 wrote the log and the checkpoint; rank 1 wrote nothing
    assert (tmp_path / "run0" / "log.csv").is_file() and (tmp_path / "run0" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "run1").exists()
    f0 = json.loads((tmp_path / "facts0.json").read_text())
    f1 = json.loads((tmp_path / "facts1.json").read_text())
    # every rank fitted the same mixture (predict() covers the whole training set on each rank)
    assert f0["stages"] == f1["stages"] and f0["stages"][1]["facts"]["mgm_fitted"]
    # metrics are reduced over ranks: 16 instances per epoch in total, same logged loss on both ranks
    assert [r["loss"] for r in f0["rows"]] == [r["loss"] for r in f1["rows"]]
    assert f0["rows"][0]["images_per_s"] > 0
    # sharded evaluation gathered on rank 0: every validation instance scored once
    assert f0["has_result"] and not f1["has_result"]
    assert f0["instances"] == f0["val"]
    ckpt = torch.load(tmp_path / "run0" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["train_images"] == 2 * 16
    for k in p0:
        assert torch.equal(ckpt["model"][k], p0[k]), k
