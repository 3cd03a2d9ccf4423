"""Pretraining that diverges, and train --init with a diverged encoder: in process and on the real command line."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from pretrain_data import _odometry_session, _tiny_encoder
from robot_cli import run_robot_ssl

from robot_ssl.learning.dataset import synthetic_frames, write_synthetic_session
from robot_ssl.learning.pretrain import (
    PretrainConfig,
    PretrainData,
    pretrain,
)
from robot_ssl.learning.step import TrainingDiverged


def _robot_ssl(*args: str) -> subprocess.CompletedProcess:
    return run_robot_ssl(*args, "--quiet", "--threads", "1")


def test_a_diverging_pretraining_stops_at_its_step_and_writes_no_encoder(tmp_path):
    """lr 1e12 (past the config's bounds, which refuse it): the first non-finite step ends
    the run with the step named; no encoder.pt or metrics.json is written."""
    images, _ = synthetic_frames(16, size=(80, 64), seed=2)
    data = PretrainData(
        images, np.zeros(16, np.int32), np.zeros((0, 2), np.int64), np.zeros((0, 3))
    )
    cfg = PretrainConfig(
        out_dir=str(tmp_path / "pre"), tasks=("denoise",), epochs=2, batch_size=4, warmup_steps=0
    )
    cfg.lr, cfg.progress, cfg.device = 1e12, False, "cpu"
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step \d+ \(epoch 1, "):
        pretrain(cfg, data)
    assert not (tmp_path / "pre").exists()  # nothing was written, not even the folder

    # on the command line: one line, exit 2, no encoder
    _odometry_session(tmp_path / "data/s0.h5")
    r = _robot_ssl("pretrain", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "p"),
                   "--epochs", "1", "--lr", "1e12")  # fmt: skip
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err and err.startswith("robot-ssl pretrain: error: ")
    assert "argument --lr:" in err or "diverged at step" in err, err  # its bounds, or the step
    assert not (tmp_path / "p/encoder.pt").exists()


def test_train_init_refuses_an_encoder_whose_pretraining_diverged(tmp_path):
    """An encoder.pt with NaN weights (written before this check existed): one line, exit 2,
    before any training."""
    encoder = torch.load(_tiny_encoder(tmp_path), weights_only=True)
    first = next(iter(encoder["encoder"]))
    encoder["encoder"][first][0] = float("nan")
    torch.save(encoder, tmp_path / "nan.pt")
    write_synthetic_session(tmp_path / "data/s0.h5", 16)
    r = _robot_ssl("train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                   "--init", str(tmp_path / "nan.pt"), "--epochs", "1", "--no-cache")  # fmt: skip
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err, r.stderr
    assert err == (
        f"robot-ssl train: error: {tmp_path / 'nan.pt'}: the encoder's weights are not finite "
        "(NaN or inf): its pretraining diverged; pretrain again with a lower --lr"
    )
    assert not (tmp_path / "run/best.pt").exists() and not (tmp_path / "run/last.pt").exists()
