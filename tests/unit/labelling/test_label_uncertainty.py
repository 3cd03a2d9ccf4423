"""Label uncertainty: odometry replays give each label a confidence, stored in the labels
file, absent (1.0) when off, and the label command's options and bounds."""

from __future__ import annotations

import json
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
