"""Recorder with fake devices: stepped schedule and determinism, threaded rates, faults."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from recorder_doubles import FakeRobot, _writer

from robot_ssl.io.session import SessionReader, SessionWriteError, SessionWriter
from robot_ssl.recording.cameras import CameraHealth, CapturedFrame, SyntheticCamera
from robot_ssl.recording.recorder import Recorder, RecorderConfig, RecorderError


class SteppedClock:
    """A simulated clock: waiting on it jumps time (and would step a simulator)."""

    def __init__(self, t_ns: int = 1_000_000_000) -> None:
        self.t_ns = t_ns

    def now_ns(self) -> int:
        return self.t_ns

    def sleep_until_ns(self, t_ns: int) -> None:
        self.t_ns = max(self.t_ns, t_ns)


class StepCamera:
    """Renders a new (seeded) frame at the clock's time on every read."""

    def __init__(self, clock: SteppedClock, seed: int = 0, size=(48, 64)) -> None:
        self.clock, self.seed, self.size = clock, seed, size
        self.index = -1

    def read(self) -> CapturedFrame:
        self.index += 1
        rng = np.random.default_rng((self.seed, self.index))
        image = rng.integers(0, 256, (*self.size, 3), dtype=np.uint8)
        return CapturedFrame(self.clock.now_ns(), image, self.index)

    def health(self) -> CameraHealth:
        return CameraHealth(self.index + 1, 0, 0.0, False)

    def close(self) -> None:
        pass


class Truth:
    def __init__(self, clock: SteppedClock) -> None:
        self.clock = clock

    def __call__(self):
        t = self.clock.now_ns()
        return t, np.array([t * 1e-12, 0.0, 0.0]), np.full(7, 0.1)


class TurnController:
    """Forward, or turn in place when the front sensor sees something."""

    def command(self, proximity: np.ndarray, t_ns: int) -> tuple[int, int]:
        return (-150, 150) if proximity[2] > 2000 else (200, 200)


def _stepped_session(path, seed: int, duration_s: float = 2.0, **kw):
    clock = SteppedClock()
    robot = FakeRobot(clock, seed=seed)
    with _writer(path, truth_sensors=7) as w:
        rec = Recorder(
            robot,
            StepCamera(clock, seed),
            w,
            RecorderConfig(status=False),
            clock=clock,
            truth=Truth(clock),
            **kw,
        )
        stats = rec.run_stepped(duration_s)
    return stats, robot, clock


def test_stepped_schedule_counts_and_rates(tmp_path):
    stats, robot, _ = _stepped_session(tmp_path / "s.h5", seed=1)
    with SessionReader(tmp_path / "s.h5") as r:
        assert r.streams["wheels"] == 101  # 0..2 s at 50 Hz, both ends
        assert r.streams["odometry"] == 101
        assert r.streams["truth"] == 101
        assert r.streams["proximity"] == 21
        assert r.num_frames == 61
        t_w = r.wheels()[0]
        assert np.all(np.diff(t_w) == 20_000_000)
        assert np.all(np.diff(r.proximity()[0]) == 100_000_000)
        assert np.abs(np.diff(r.camera_t_ns) - 33_333_333).max() <= 1
        # straight at 100 units for 2 s: x = 2 * 100 * speed_m_per_unit
        pose = r.odometry()[1][-1]
        assert pose[0] == pytest.approx(2.0 * 100 * r.robot.speed_m_per_unit, rel=1e-9)
        assert r.frame(3).shape == (48, 64, 3)
        kinds = [e.kind for e in r.events()]
        assert kinds[0] == "recording_started" and kinds[-1] == "recording_stopped"
    assert robot.stops == 0  # not driving: never touches the motors
    assert stats.frames_dropped == 0 and stats.counts["camera"] == 61


def test_stepped_is_deterministic(tmp_path):
    _stepped_session(tmp_path / "a.h5", seed=7, controller=TurnController())
    _stepped_session(tmp_path / "b.h5", seed=7, controller=TurnController())
    _stepped_session(tmp_path / "c.h5", seed=8, controller=TurnController())
    with (
        SessionReader(tmp_path / "a.h5") as a,
        SessionReader(tmp_path / "b.h5") as b,
        SessionReader(tmp_path / "c.h5") as c,
    ):
        for name in ("proximity", "wheels", "odometry", "truth"):
            for x, y in zip(getattr(a, name)(), getattr(b, name)()):
                np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a.camera_t_ns, b.camera_t_ns)
        assert all(a.jpeg(i) == b.jpeg(i) for i in range(a.num_frames))
        assert a.events() == b.events()
        assert not np.array_equal(a.proximity()[1], c.proximity()[1])


def test_stepped_drives_and_stops_motors(tmp_path):
    _, robot, _ = _stepped_session(tmp_path / "d.h5", seed=3, controller=TurnController())
    assert robot.stops == 2 and robot.targets[-1] == (0, 0)  # at the start and the end
    assert {(-150, 150), (200, 200)} <= set(robot.targets)
    with SessionReader(tmp_path / "d.h5") as r:
        _, _, target = r.wheels()
        assert {(-150, 150), (200, 200)} <= {tuple(t) for t in target.tolist()}


class FailingWriter(SessionWriter):
    """Raises like a full disk after `ok_rows` proximity rows."""

    def __init__(self, *a, ok_rows: int, **kw) -> None:
        super().__init__(*a, **kw)
        self.ok_rows = ok_rows

    def write(self, record) -> None:
        if record.stream == "proximity" and self.counts["proximity"] >= self.ok_rows:
            self.flush()
            self._failed = SessionWriteError(f"disk full while writing {self.path}")
            self._abandon()
            raise self._failed
        super().write(record)


def test_stepped_write_failure_stops_motors_and_raises(tmp_path):
    clock = SteppedClock()
    robot = FakeRobot(clock)
    w = FailingWriter(tmp_path / "f.h5", ok_rows=5)
    rec = Recorder(robot, StepCamera(clock), w, clock=clock, controller=TurnController())
    with pytest.raises(SessionWriteError, match="disk full"):
        rec.run_stepped(5.0)
    assert robot.targets[-1] == (0, 0)
    with SessionReader(tmp_path / "f.h5") as r:
        assert r.streams["proximity"] == 5
        assert r.recovered


def test_config_checks():
    with pytest.raises(RecorderError):
        RecorderConfig(prox_hz=0)
    with pytest.raises(RecorderError):
        RecorderConfig(jpeg_quality=101)


def test_controller_without_robot_is_refused(tmp_path):
    with _writer(tmp_path / "x.h5") as w, pytest.raises(RecorderError):
        Recorder(None, SyntheticCamera(64, 48, 10), w, controller=TurnController())


# -- threaded, wall clock ----------------------------------------------------------------


class ExplodingController:
    def command(self, proximity, t_ns):
        raise ZeroDivisionError("bug in controller")


def test_thread_crash_stops_recording_and_motors(tmp_path):
    robot = FakeRobot()
    with _writer(tmp_path / "x.h5") as w:
        rec = Recorder(
            robot, None, w, RecorderConfig(status=False), controller=ExplodingController()
        )
        t0 = time.monotonic()
        with pytest.raises(RecorderError, match="bug in controller"):
            rec.run(10.0)
        assert time.monotonic() - t0 < 2.0
    assert robot.stops >= 1 and robot.targets[-1] == (0, 0)


def test_request_stop_and_status_line(tmp_path):
    import io

    robot = FakeRobot()
    out = io.StringIO()
    with SyntheticCamera(64, 48, 30) as cam, _writer(tmp_path / "s.h5") as w:
        rec = Recorder(
            robot,
            cam,
            w,
            RecorderConfig(status=True, status_interval_s=0.2),
            controller=TurnController(),
            status_stream=out,
        )
        threading.Timer(0.8, rec.request_stop).start()
        stats = rec.run(None)
    assert stats.stop_reason == "stop requested"
    assert robot.targets[-1] == (0, 0)
    text = out.getvalue()
    assert "\r" in text and "wheels" in text and "MB" in text and "dropped 0" in text
