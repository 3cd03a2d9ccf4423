"""The recorder on the wall clock: threads, real rates, a robot gap, a failing camera, a slow writer."""

from __future__ import annotations

import time

import numpy as np
import pytest
from recorder_doubles import DyingCamera, FakeRobot, SlowWriter, _rate, _writer

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.recording.cameras import SyntheticCamera
from robot_ssl.recording.recorder import Recorder, RecorderConfig


def test_threaded_rates_and_camera(tmp_path):
    robot = FakeRobot()
    spec = CameraSpec(width=160, height=120, fps=30.0)
    with SyntheticCamera(160, 120, 30) as cam, SessionWriter(tmp_path / "t.h5", camera=spec) as w:
        stats = Recorder(robot, cam, w, RecorderConfig(status=False)).run(2.0)
    assert stats.frames_dropped == 0 and stats.rows_dropped == 0
    assert stats.stop_reason.startswith("duration")
    with SessionReader(tmp_path / "t.h5") as r:
        assert _rate(r.proximity()[0]) == pytest.approx(10, rel=0.1)
        assert _rate(r.wheels()[0]) == pytest.approx(50, rel=0.1)
        assert _rate(r.camera_t_ns) == pytest.approx(30, rel=0.1)
        assert r.streams["odometry"] == r.streams["wheels"]
        assert r.frame(0).shape == (120, 160, 3)
        assert not r.recovered


def test_threaded_robot_gap_keeps_camera_and_reconnects(tmp_path):
    robot = FakeRobot()
    start = time.monotonic()
    robot.down = (start + 0.5, start + 1.3)
    with SyntheticCamera(64, 48, 30) as cam, _writer(tmp_path / "g.h5") as w:
        stats = Recorder(robot, cam, w, RecorderConfig(status=False)).run(2.2)
    assert stats.robot_gaps == 1 and stats.robot_read_failures >= 2
    with SessionReader(tmp_path / "g.h5") as r:
        ev = {e.kind: e for e in r.events()}
        assert "robot_gap" in ev and "robot_reconnected" in ev
        assert "unplugged" in ev["robot_gap"].message
        gap0, gap1 = ev["robot_gap"].t_ns, ev["robot_reconnected"].t_ns
        assert 0.6 < (gap1 - gap0) / 1e9 < 1.2
        cam_t = r.camera_t_ns
        in_gap = np.count_nonzero((cam_t > gap0) & (cam_t < gap1))
        assert in_gap >= 0.8 * 30 * (gap1 - gap0) / 1e9  # camera went on
        t_w = r.wheels()[0]
        assert np.count_nonzero((t_w > gap0) & (t_w < gap1)) == 0
        assert np.count_nonzero(t_w > gap1) > 20  # wheels are back
        assert "odometry_gap" in ev


@pytest.mark.parametrize("how", ["health", "exception"])
def test_threaded_camera_failure_keeps_robot_streams(tmp_path, how):
    cam = SyntheticCamera(64, 48, 30, fail_after_frames=15) if how == "health" else DyingCamera(15)
    robot = FakeRobot()
    with _writer(tmp_path / "c.h5") as w:
        stats = Recorder(robot, cam, w, RecorderConfig(status=False)).run(1.5)
    cam.close()
    assert stats.camera_failed
    with SessionReader(tmp_path / "c.h5") as r:
        failed = [e for e in r.events() if e.kind == "camera_failed"]
        assert len(failed) == 1
        assert ("synthetic failure" if how == "health" else "No such device") in failed[0].message
        assert r.num_frames <= 15
        t_w = r.wheels()[0]
        assert np.count_nonzero(t_w > failed[0].t_ns) > 25  # robot streams went on


def test_slow_writer_drops_and_counts_frames_with_bounded_queue(tmp_path):
    robot = FakeRobot()
    cfg = RecorderConfig(status=False, write_queue_frames=3, frame_queue_size=2)
    path = tmp_path / "slow.h5"
    with (
        SyntheticCamera(160, 120, 30) as cam,
        SlowWriter(path, camera=CameraSpec(width=160, height=120)) as w,
    ):
        stats = Recorder(robot, cam, w, cfg).run(2.0)
    assert stats.frames_dropped > 20
    assert stats.max_frames_queued <= 3
    with SessionReader(path) as r:
        assert r.num_frames + stats.frames_dropped + stats.frames_missed >= 50
        assert r.num_frames <= 2.0 / 0.15 + cfg.write_queue_frames + cfg.frame_queue_size + 1
        assert any(e.kind == "frames_dropped" for e in r.events())
        assert _rate(r.wheels()[0]) == pytest.approx(50, rel=0.15)  # robot rows unaffected
