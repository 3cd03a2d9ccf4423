"""Label uncertainty: odometry replays give each label a confidence, stored in the labels
file, absent (1.0) when off, and the label command's options and bounds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from labelling_sessions import write_session

from robot_ssl.core.label_grid import LabelConfig
from robot_ssl.io.labels_file import read_labels, write_labels
from robot_ssl.labelling.session_labels import label_session


def test_far_cells_are_less_certain_than_near_ones(tmp_path: Path):
    session = write_session(tmp_path / "s.h5")
    cfg = LabelConfig(camera_offset=0.0, uncertainty_replays=8)
    labels = label_session(session, cfg)
    conf, known = labels.confidence, labels.labels >= 0
    assert conf is not None and conf.dtype == np.float32
    assert np.all(conf[~known] == 0) and np.all((conf >= 0) & (conf <= 1))
    d = labels.distances_m
    near = conf[:, :, d <= 0.05][known[:, :, d <= 0.05]].mean()
    far = conf[:, :, d >= 0.2][known[:, :, d >= 0.2]].mean()
    assert near > 0.8 and far < near - 0.2
    np.testing.assert_array_equal(
        labels.labels, label_session(session, LabelConfig(camera_offset=0.0)).labels
    )
    back = read_labels(write_labels(tmp_path / "s.labels.h5", labels))
    np.testing.assert_array_equal(back.confidence, conf)
    assert back.config.uncertainty_replays == 8


def test_no_replays_writes_the_labels_file_of_before(tmp_path: Path):
    session = write_session(tmp_path / "s.h5")
    path = write_labels(
        tmp_path / "s.labels.h5", label_session(session, LabelConfig(camera_offset=0.0))
    )
    with h5py.File(path, "r") as f:
        assert "confidence" not in f
        assert not any(k.startswith("uncertainty") for k in json.loads(f.attrs["config"]))
    back = read_labels(path)
    assert back.confidence is None
    assert back.cell_weights().shape == back.labels.shape and np.all(back.cell_weights() == 1.0)


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


def test_masked_loss_weighs_cells_by_confidence():
    import torch

    from robot_ssl.learning.train import masked_bce_loss

    logits = torch.tensor([[[2.0, -1.0, 0.5]]])
    labels = torch.tensor([[[0, 1, -1]]], dtype=torch.int8)
    plain = masked_bce_loss(logits, labels)
    assert torch.isclose(masked_bce_loss(logits, labels, None, torch.ones(1, 1, 3)), plain)
    only_second = masked_bce_loss(logits, labels, None, torch.tensor([[[0.0, 1.0, 1.0]]]))
    expected = torch.nn.functional.softplus(torch.tensor(1.0)) / 2  # one cell of two known
    assert torch.isclose(only_second, expected)


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
