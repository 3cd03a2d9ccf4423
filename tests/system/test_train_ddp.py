"""DistributedDataParallel training with 2 CPU processes (gloo), as torchrun would run it."""

import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from playground import free_port, join_local_group

from robot_ssl.learning.dataset import synthetic_frameset, write_synthetic_session


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    join_local_group(rank, world_size, port)
    from robot_ssl.learning.train import TrainConfig, train

    cfg = TrainConfig(
        out_dir=out_dir,
        epochs=2,
        batch_size=16,
        warmup_steps=2,
        num_threads=1,
        device="cpu",
        progress=False,
        model={"widths": [8, 8, 8, 8], "hidden": 32},
    )
    data = (synthetic_frameset(96, seed=1), synthetic_frameset(32, seed=2))
    result = train(cfg, data=data)
    # Test-owned output: each rank's OWN final weights (from its memory, not from the
    # checkpoint rank 0 wrote), to check that DDP kept them equal.
    torch.save(result.final_state, f"{out_dir}/../rank{rank}.pt")


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs, written once (rank 0)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = torch.load(out / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], saved[k]) for k in a)  # what rank 0 saved is what it had
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 1


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """`torchrun --nproc_per_node=2 -m robot_ssl train ...` on two tiny labelled sessions."""
    for i in range(3):
        write_synthetic_session(tmp_path / f"data/s{i}.h5", 48, world=f"w{i}", seed=i)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "robot_ssl",
        "train",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--val-worlds",
        "w2",
        "--no-cache",
        "--quiet",
        "--device",
        "cpu",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "run/best.pt", weights_only=True)
    assert ckpt["world_size"] == 2
    assert proc.stdout.count("best epoch") == 1  # only rank 0 reports
