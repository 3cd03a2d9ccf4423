"""Label uncertainty through the real label command, and a training run that reads the confidence weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from labelling_sessions import write_session

from robot_ssl.io.labels_file import read_labels


def test_label_command_takes_replays_and_refuses_bad_counts(tmp_path: Path):
    session = write_session(tmp_path / "s.h5", seconds=3.0)
    cmd = [sys.executable, "-m", "robot_ssl", "label", str(session), "--no-plot", "-j", "1"]
    ok = subprocess.run([*cmd, "--uncertainty-replays", "3", "--camera-offset-ms", "0"],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert read_labels(tmp_path / "s.labels.h5").confidence is not None
    bad = subprocess.run([*cmd, "--uncertainty-replays", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "uncertainty_replays" in bad.stderr or "uncertainty-replays" in bad.stderr


def test_training_reads_the_confidence_weights(tmp_path: Path):
    import torch

    from robot_ssl.learning.dataset import synthetic_frameset
    from robot_ssl.learning.train import TrainConfig, train

    torch.set_num_threads(1)
    frames = synthetic_frameset(32, seed=1)
    cfg = dict(epochs=1, batch_size=16, progress=False, num_threads=1, patience=None)
    cfg["model"] = {"widths": [8, 8, 8, 8], "hidden": 16}
    plain = train(TrainConfig(out_dir=str(tmp_path / "a"), **cfg), data=(frames, None))
    frames.weights = np.zeros(frames.labels.shape, np.float32)  # no label trusted: no loss
    zero = train(TrainConfig(out_dir=str(tmp_path / "b"), **cfg), data=(frames, None))
    assert plain.history[-1]["train_loss"] > 0.1
    assert zero.history[-1]["train_loss"] == 0.0
