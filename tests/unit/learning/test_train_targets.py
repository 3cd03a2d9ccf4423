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
    centre sensor (truth at 100 Hz) with unrelated synthetic auto-labels."""
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
