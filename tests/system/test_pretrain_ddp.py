"""`pretrain` under DistributedDataParallel with 2 CPU processes (gloo), as torchrun runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from playground import free_port, join_local_group
from pretrain_data import _odometry_session

from robot_ssl.learning.dataset import synthetic_frames

TASKS = ("denoise", "rotation", "views")


def _worker(rank: int, world_size: int, port: int, root: str) -> None:
    join_local_group(rank, world_size, port)
    from robot_ssl.learning.pretrain import PretrainConfig, PretrainData, pretrain

    images, _ = synthetic_frames(30, size=(48, 48), seed=3)
    data = PretrainData(
        images=images,
        session_ids=np.zeros(30, np.int32),
        pairs=np.zeros((0, 2), np.int64),
        pair_targets=np.zeros((0, 3)),
    )
    cfg = PretrainConfig(
        out_dir=f"{root}/out{rank}",  # each rank its own folder: only out0 may be written
        tasks=TASKS,
        input_width=48,
        input_height=48,
        model={"widths": [8, 8, 8]},
        epochs=2,
        batch_size=8,
        warmup_steps=1,
        num_threads=1,
        device="cpu",
        progress=False,
    )
    history = pretrain(cfg, data)
    # Test-owned output: each rank's history, to check they agree (all-reduced means).
    with open(f"{root}/history{rank}.json", "w") as f:
        json.dump(history, f)


@pytest.mark.slow
def test_pretrain_ddp_two_cpu_processes(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    assert not (tmp_path / "out1").exists() or not any((tmp_path / "out1").iterdir())
    enc = torch.load(tmp_path / "out0/encoder.pt", weights_only=True)
    assert enc["world_size"] == 2 and enc["device"] == "cpu" and enc["epoch"] == 1
    assert enc["tasks"] == list(TASKS)
    metrics = json.loads((tmp_path / "out0/metrics.json").read_text())
    assert len(metrics) == 2 and all(row["world_size"] == 2 for row in metrics)
    h0 = json.loads((tmp_path / "history0.json").read_text())
    h1 = json.loads((tmp_path / "history1.json").read_text())
    for a, b in zip(h0, h1, strict=True):  # epoch means over both ranks: the same numbers
        for k in ("loss", *TASKS, "rotation_acc"):
            assert np.isfinite(a[k]) and a[k] == pytest.approx(b[k], rel=1e-9)


@pytest.mark.slow
def test_pretrain_torchrun_cli(tmp_path):
    """`torchrun --nproc_per_node=2 -m robot_ssl pretrain ...`: one report, rank 0 writes."""
    _odometry_session(tmp_path / "data/s0.h5", seed=0)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "robot_ssl", "pretrain", "--data", str(tmp_path / "data")]
    cmd += ["--out", str(tmp_path / "pre"), "--epochs", "1", "--batch-size", "8"]
    cmd += ["--tasks", "rotation,odometry", "--quiet", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("device cpu (--device cpu), 2 processes") == 1
    assert proc.stdout.count("encoder in") == 1, proc.stdout
    enc = torch.load(tmp_path / "pre/encoder.pt", weights_only=True)
    assert enc["world_size"] == 2 and enc["tasks"] == ["rotation", "odometry"]
