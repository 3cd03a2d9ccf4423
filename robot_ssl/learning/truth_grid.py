"""What `robot-ssl eval` needs to know about each evaluated session beyond its frames.

- :func:`session_targets`: the frames' stamps (for the block bootstrap), the
  session's identity (SHA-256 recorded in its labels file) and, for simulated
  sessions, the true label grid of the evaluated frames
  (robot_ssl.labelling.session_labels.session_truth_grid, the same grid
  `robot-ssl label --truth` compares the auto-labels with).
- :func:`training_data_of`: which sessions a model was trained on, as far as its
  file tells. A checkpoint records its training config (`train_config.data`,
  the session files or folders, and `labels_dir`); the run's `config.json`
  beside it names the training sessions (file stems). Identities (SHA-256) are
  read from the labels files of those sessions while they still exist; otherwise
  only names are compared. TorchScript and ONNX exports record no training data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SessionTargets",
    "TrainingData",
    "session_targets",
    "training_data_of",
    "with_truth_targets",
]


@dataclass(frozen=True)
class SessionTargets:
    """One evaluated session: its identity, frame stamps and (when simulated) true labels."""

    name: str
    world: str | None
    sha256: str | None
    t_s: np.ndarray  # float64 (n,) stamps of the evaluated frames, seconds
    truth: np.ndarray | None  # int8 (n, S, D) true labels of those frames; None: no truth


def session_targets(
    session_path: str | Path,
    frame_index: np.ndarray,
    *,
    labels_dir: str | Path | None = None,
    world: str | None = None,
    with_truth: bool = True,
) -> SessionTargets:
    """Targets of the frames `frame_index` (sorted, as robot_ssl.learning.dataset keeps them)."""
    from robot_ssl.io.labels_file import read_labels
    from robot_ssl.labelling.session_labels import session_truth_grid
    from robot_ssl.learning.dataset import DatasetError, labels_path_for

    path = Path(session_path)
    labels = read_labels(labels_path_for(path, labels_dir))
    frame_index = np.asarray(frame_index, np.int64)
    order = np.argsort(labels.frame_index, kind="stable")
    pos = np.searchsorted(labels.frame_index, frame_index, sorter=order)
    rows = order[np.clip(pos, 0, max(len(order) - 1, 0))]
    if len(frame_index) and not np.array_equal(labels.frame_index[rows], frame_index):
        raise DatasetError(f"{path}: evaluated frames are missing from its labels file")
    truth = None
    if with_truth:
        grid = session_truth_grid(path, labels)
        if grid is not None:
            truth = np.asarray(grid.labels)[rows].astype(np.int8)
    return SessionTargets(
        name=path.stem,
        world=world,
        sha256=labels.session.sha256,
        t_s=labels.t_ns[rows].astype(np.float64) * 1e-9,
        truth=truth,
    )


@dataclass(frozen=True)
class TrainingData:
    """The training sessions a model file records: identities, names, or why none."""

    identities: frozenset[str]  # SHA-256 of the training session files
    names: frozenset[str]  # their file stems
    source: str  # where the record came from
    reason: str | None = None  # why the check cannot be made (None: it can)

    @property
    def method(self) -> str | None:
        """ "sha256" when identities are known, "name" when only names, None: no check."""
        if self.reason is not None:
            return None
        return "sha256" if self.identities else "name"

    def overlap(self, sessions: Sequence[tuple[str, str | None]]) -> list[str]:
        """Names of the (name, sha256) sessions that are among the training sessions."""
        if self.method == "sha256":
            return [n for n, sha in sessions if sha is not None and sha in self.identities]
        if self.method == "name":
            return [n for n, _ in sessions if n in self.names]
        return []


def _run_config(model_path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((model_path.parent / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def training_data_of(model_path: str | Path, kind: str) -> TrainingData:
    """The training sessions recorded by a model file of `kind` (see the module docstring)."""
    from robot_ssl.core.errors import RobotSSLError
    from robot_ssl.io.labels_file import read_labels
    from robot_ssl.learning.checkpoint import Checkpoint
    from robot_ssl.learning.dataset import find_sessions, labels_path_for

    model_path = Path(model_path)
    if kind != "checkpoint":
        return TrainingData(
            frozenset(), frozenset(), kind, f"a {kind} file records no training data"
        )
    ckpt = Checkpoint.load(model_path)
    recorded = ckpt.train_sessions  # [{"name", "sha256"}, ...] where a trainer records it
    if isinstance(recorded, list) and recorded:
        shas = {str(r["sha256"]) for r in recorded if isinstance(r, dict) and r.get("sha256")}
        names = {str(r.get("name", r)) if isinstance(r, dict) else str(r) for r in recorded}
        return TrainingData(frozenset(shas), frozenset(names), "checkpoint train_sessions")
    tc = ckpt.train_config
    info = _run_config(model_path)
    names = None
    if info is not None and isinstance(info.get("train_sessions"), list):
        names = {str(n) for n in info["train_sessions"]}
    shas: set[str] = set()
    try:
        files = find_sessions(tc.get("data") or [])
    except (RobotSSLError, OSError):
        files = []
    for f in files:
        if names is not None and f.stem not in names:
            continue  # a validation session
        try:
            shas.add(read_labels(labels_path_for(f, tc.get("labels_dir"))).session.sha256)
        except (RobotSSLError, OSError):
            continue
    source = "checkpoint train_config.data" + (" + config.json" if names is not None else "")
    if not shas and names is None:
        return TrainingData(
            frozenset(),
            frozenset(),
            source,
            "the checkpoint's training sessions are neither recorded nor found on disk",
        )
    if names is None:  # no split record: every session of the training data counts
        names = {f.stem for f in files}
    return TrainingData(frozenset(shas), frozenset(names), source)


def with_truth_targets(session: Any, labels_dir: str | Path | None = None) -> Any:
    """The SessionData `session` with its labels replaced by the simulator's truth of the
    same frames and cells (`train --targets truth`, the supervised reference); a session
    without truth is refused (DatasetError)."""
    from dataclasses import replace

    from robot_ssl.learning.dataset import DatasetError

    targets = session_targets(session.path, session.frame_index, labels_dir=labels_dir)
    if targets.truth is None:
        raise DatasetError(
            f"{session.path}: no simulator truth to train on (--targets truth needs "
            "sessions of `robot-ssl sim record`)"
        )
    return replace(session, labels=targets.truth)
