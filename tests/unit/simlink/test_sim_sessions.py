"""Simulated, labelled sessions in-process (robot_ssl.simlink.sim_sessions): what the demo
and the benchmarks record and label through the verbs' library functions."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.io.labels_file import read_labels
from robot_ssl.io.session import SessionReader
from robot_ssl.simlink import sim_sessions
from robot_ssl.simlink.sim_sessions import (
    SimRecording,
    labelled_session,
    record_sessions,
    world_arg,
)


def test_labelled_session_records_labels_and_is_kept(tmp_path: Path) -> None:
    """A generated world is written once, the session recorded and labelled; a second
    call finds both files and leaves them as they are."""
    path = labelled_session("gen:train:5", 0.1, 3, tmp_path / "s.h5", tmp_path / "worlds")
    labels = tmp_path / "s.labels.h5"
    assert (tmp_path / "worlds" / "gen_train_5.yaml").is_file()
    with SessionReader(path) as reader:
        assert reader.num_frames > 0 and not reader.recovered
    assert read_labels(labels).num_frames > 0
    stamps = (path.stat().st_mtime_ns, labels.stat().st_mtime_ns)
    labelled_session("gen:train:5", 0.1, 3, tmp_path / "s.h5", tmp_path / "worlds")
    assert (path.stat().st_mtime_ns, labels.stat().st_mtime_ns) == stamps


def test_a_failed_recording_in_a_worker_is_one_line(tmp_path: Path) -> None:
    """Recordings in worker processes: a world that does not exist is the simulator's
    one-line error in this process, and no session file is left."""
    good = SimRecording(world_arg("gen:train:6", tmp_path), 0.05, 1, tmp_path / "a.h5")
    bad = SimRecording("no_such_world", 0.05, 1, tmp_path / "b.h5")
    with pytest.raises(RobotSSLError) as e:
        record_sessions([good, bad], jobs=2)
    assert "no_such_world" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "b.h5").exists()


def test_quiet_steps_in_overlapping_threads_give_stdout_back() -> None:
    """Two threads labelling quietly, the first leaving while the second is still inside
    (record_sessions' thread pool): stdout is swallowed meanwhile and given back after."""
    real = sys.stdout
    inside, leave_a, a_left = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with sim_sessions._quiet():
            inside.set()
            leave_a.wait(5)
        a_left.set()

    thread = threading.Thread(target=a)
    thread.start()
    assert inside.wait(5)
    with sim_sessions._quiet():
        leave_a.set()
        assert a_left.wait(5)
        assert sys.stdout is not real  # still quiet: this thread is inside
    thread.join(5)
    assert sys.stdout is real
