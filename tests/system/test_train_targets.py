"""`train --targets truth` (the supervised reference) and the state-consistency loss."""

import subprocess
import sys

import numpy as np

from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.dataset import load_sessions
from robot_ssl.learning.train import split_frames
from robot_ssl.learning.train_config import TrainConfig


def _session(path, n=150, *, truth=True, seed=0):
    """A 30 fps session driving straight at 0.1 m/s towards a wall 0.4 m ahead of the
    centre sensor (truth and odometry at 100 Hz) with unrelated synthetic auto-labels."""
    from robot_ssl.core.spec import CameraSpec
    from robot_ssl.io.labels_file import write_labels
    from robot_ssl.io.session import SessionWriter
    from robot_ssl.labelling.labeller import LabelConfig
    from robot_ssl.learning.dataset import labels_path_for, synthetic_frames, synthetic_label_set

    config = LabelConfig()
    s, d = config.num_sensors, config.num_distances
    images, labels = synthetic_frames(n, size=(64, 48), num_sensors=s, num_distances=d, seed=seed)
    t_ns = np.arange(n, dtype=np.int64) * 33_333_333
    kwargs = {"truth_sensors": 7} if truth else {}
    with SessionWriter(
        path, camera=CameraSpec(width=64, height=48), metadata={"world": "sim"}, **kwargs
    ) as w:
        for t, image in zip(t_ns, images):
            w.write_frame(int(t), image)
        if truth:
            for t in np.arange(0, int(t_ns[-1]) + 500_000_000, 10_000_000):
                x = 0.1 * t * 1e-9
                dist = np.full(7, np.inf)
                dist[2] = 0.4 - x
                w.write_truth(int(t), np.array([x, 0.0, 0.0]), dist)
                w.write_odometry(int(t), np.array([x, 0.0, 0.0]))
    write_labels(labels_path_for(path), synthetic_label_set(path, t_ns, labels, config))
    return path


def _train_cli(*args):
    cmd = [sys.executable, "-m", "robot_ssl", "train", "--epochs", "1", "--batch-size", "16"]
    cmd += ["--no-cache", "--quiet", "--threads", "1", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_truth_targets_are_the_truth_grid_of_the_same_frames(tmp_path):
    from robot_ssl.io.labels_file import read_labels
    from robot_ssl.labelling.session_labels import session_truth_grid
    from robot_ssl.learning.dataset import labels_path_for

    data = tmp_path / "data"
    data.mkdir()
    path = _session(data / "a.h5")
    sessions = load_sessions([data], progress=False)
    cfg = TrainConfig(data=(str(data),), targets="truth", val_fraction=0.0)
    auto, _ = split_frames(TrainConfig(data=(str(data),), val_fraction=0.0), sessions)
    truth, _ = split_frames(cfg, sessions)
    grid = session_truth_grid(path, read_labels(labels_path_for(path))).labels
    rows = sessions[0].frame_index
    assert len(truth) == len(auto) == len(rows)  # the same frames, only the source differs
    for i in (0, len(rows) // 2, len(rows) - 1):
        assert np.array_equal(truth.labels[i], grid[rows[i]])
    assert (truth.labels == 1).any() and not np.array_equal(truth.labels, auto.labels)

    run = tmp_path / "run"
    done = _train_cli("--data", data, "--out", run, "--targets", "truth", "--val-fraction", 0)
    assert done.returncode == 0, done.stderr
    assert Checkpoint.load(run / "best.pt").train_config["targets"] == "truth"


def test_truth_targets_refuse_a_session_without_truth_in_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _session(data / "real.h5", truth=False)
    done = _train_cli("--data", data, "--out", tmp_path / "run", "--targets", "truth")
    assert done.returncode == 2
    assert "no simulator truth" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "best.pt").exists()


def test_pairs_of_a_straight_drive_map_cells_by_the_distance_travelled():
    import torch

    from robot_ssl.learning.consistency import consistency_loss, match_pairs

    t_s = np.arange(40) / 30.0
    poses = np.stack([0.1 * t_s, np.zeros(40), np.zeros(40)], axis=1)  # 0.1 m/s straight on
    poses[30:, 2] = 0.3  # a turn: no pair may span it
    sid = np.zeros(40, np.int32)
    sid[35:] = 1  # a second session: no pair across sessions
    d = np.round(np.arange(31) * 0.01, 2)
    pairs = match_pairs(poses, sid, d, shift_m=0.05)
    # 0.05 m at 0.1 m/s is 15 frames: frame t pairs with t + 15, 5 cells nearer
    assert pairs.anchor.tolist() == list(range(15))
    assert (pairs.partner - pairs.anchor).tolist() == [15] * 15
    assert pairs.shift.tolist() == [5] * 15
    # cell (s, d) of the anchor is cell (s, d - 5) of the partner: equal there, zero loss
    p = torch.randn(1, 5, 31)
    a = torch.cat([torch.full((1, 5, 5), 9.0), p[:, :, :26]], 2)
    shift = torch.tensor([5])
    assert float(consistency_loss(a, p, shift)) < 1e-12
    assert float(consistency_loss(a, torch.roll(p, 1, 2), shift)) > 1e-3


def test_training_with_the_consistency_weight_logs_its_term(tmp_path):
    import json

    data = tmp_path / "data"
    data.mkdir()
    _session(data / "a.h5")
    run = tmp_path / "run"
    done = _train_cli("--data", data, "--out", run, "--consistency-weight", 0.5)
    assert done.returncode == 0, done.stderr
    assert "consistency:" in done.stdout and "frames paired" in done.stdout
    row = json.loads((run / "metrics.json").read_text())
    row = row[-1] if isinstance(row, list) else row["history"][-1]
    assert row["train_consistency"] > 0
    assert Checkpoint.load(run / "best.pt").train_config["consistency_weight"] == 0.5
