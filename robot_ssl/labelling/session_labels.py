"""Labelling session files: read a session, compute its labels, compare them with truth.

The file-level half of the labeller (robot_ssl.labelling.labeller is the pure half);
labels files are written and read by robot_ssl.io.labels_file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from robot_ssl.core.label_grid import LabelConfig
from robot_ssl.io.labels_file import LabelSet, LabelsFileError, identify_session
from robot_ssl.io.session import SessionReader
from robot_ssl.labelling.labeller import (
    LabelStats,
    TruthAgreement,
    compare_with_truth,
    compute_labels,
    label_stats,
    truth_labels,
)

__all__ = ["label_session", "session_truth_agreement"]


def label_session(
    session_path: str | Path,
    config: LabelConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> LabelSet:
    """Label one session file (read only; nothing is written). Use `write_labels` to save.

    Uses the session's odometry stream, or integrates its wheel speeds when it
    recorded none. Raises robot_ssl.labelling.labeller.NothingToLabelError for an empty
    session, one without odometry or one too short, and the session reader's
    errors (robot_ssl.io.session.SessionError).
    """
    cfg = config if config is not None else LabelConfig()
    session_path = Path(session_path)
    if not session_path.is_file():
        raise LabelsFileError(f"{session_path}: no such file")
    with SessionReader(session_path) as reader:
        camera_t = np.asarray(reader.camera_t_ns)
        prox_t, prox_values = reader.proximity()
        odom_t, odom_pose = _odometry_of(reader)
    grid = compute_labels(camera_t, prox_t, prox_values, odom_t, odom_pose, cfg, progress=progress)
    return LabelSet.from_grid(grid, cfg, identify_session(session_path))


def _odometry_of(reader) -> tuple[np.ndarray, np.ndarray]:
    """The session's odometry; integrated from the wheel speeds when it recorded none.

    Empty arrays when there is neither (the labeller then says "no odometry").
    """
    from robot_ssl.core.odometry import DEFAULT_MAX_GAP_NS, integrate_wheel_odometry

    odom_t, pose = reader.odometry()
    if len(odom_t) >= 2:
        return np.asarray(odom_t), np.asarray(pose)
    wheel_t, speed, _ = reader.wheels()
    if len(wheel_t) < 2:
        return np.asarray(odom_t), np.asarray(pose).reshape(-1, 3)
    keep = np.concatenate([[True], np.diff(wheel_t) > 0])  # equal stamps: keep the first
    wheel_t, speed = np.asarray(wheel_t)[keep], np.asarray(speed)[keep]
    pose, _ = integrate_wheel_odometry(wheel_t, speed, reader.robot, max_gap_ns=DEFAULT_MAX_GAP_NS)
    return wheel_t, pose


def session_truth_agreement(
    session_path: str | Path, labels: LabelSet
) -> tuple[TruthAgreement, LabelStats] | None:
    """Compare labels with the simulator's truth stored in the session (None without truth).

    Returns the agreement and the statistics of the true labels. The IR range
    comes from the session's robot description (`prox_range_m`).
    """
    with SessionReader(session_path) as reader:
        truth = reader.truth()
        if truth is None or len(truth[0]) == 0:
            return None
        range_m = float(reader.robot.prox_range_m)
    t_ns, pose, distance_m = truth
    true_grid = truth_labels(labels.t_ns, t_ns, pose, distance_m, range_m, labels.config)
    return compare_with_truth(labels.labels, true_grid.labels), label_stats(true_grid.labels)
