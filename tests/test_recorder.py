"""Recorder with fake devices: stepped schedule and determinism, threaded rates, faults."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader, SessionWriteError, SessionWriter
from robot_ssl.recording.cameras import CameraHealth, CapturedFrame, SyntheticCamera
from robot_ssl.recording.recorder import Recorder, RecorderConfig, RecorderError


@dataclass(frozen=True)
class Reading:
    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray


class SteppedClock:
    """A simulated clock: waiting on it jumps time (and would step a simulator)."""

    def __init__(self, t_ns: int = 1_000_000_000) -> None:
        self.t_ns = t_ns

    def now_ns(self) -> int:
        return self.t_ns

    def sleep_until_ns(self, t_ns: int) -> None:
        self.t_ns = max(self.t_ns, t_ns)


class FakeRobot:
    """Drives at its targets; proximity from a seeded RNG; can be 'unplugged' for a while."""

    def __init__(self, clock=None, seed: int = 0, speed=(100, 100)) -> None:
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.speed = np.array(speed, dtype=np.int16)
        self.targets: list[tuple[int, int]] = []
        self.stops = 0
        self.reads = 0
        self.down: tuple[float, float] | None = None  # monotonic window when read() fails
        self.lock = threading.Lock()

    def now(self) -> int:
        return self.clock.now_ns() if self.clock else time.monotonic_ns()

    def read(self) -> Reading:
        if self.down is not None and self.down[0] <= time.monotonic() < self.down[1]:
            time.sleep(0.05)
            raise TimeoutError("no reply (unplugged)")
        self.reads += 1
        prox = self.rng.integers(0, 4000, 7).astype(np.int16)
        return Reading(self.now(), prox, self.speed.copy())

    def set_wheel_targets(self, left: int, right: int) -> None:
        self.targets.append((left, right))

    def stop(self) -> None:
        self.stops += 1
        self.targets.append((0, 0))

    def close(self) -> None:
        pass


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


def _writer(path, **kw) -> SessionWriter:
    return SessionWriter(path, camera=CameraSpec(width=64, height=48, fps=30.0), **kw)


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


def _rate(t_ns: np.ndarray) -> float:
    return (len(t_ns) - 1) / ((t_ns[-1] - t_ns[0]) / 1e9)


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


class DyingCamera:
    """Frames for a while, then read() raises (a driver error)."""

    def __init__(self, frames: int) -> None:
        self.inner = SyntheticCamera(64, 48, 30)
        self.frames = frames

    def read(self):
        f = self.inner.read()
        if f is not None and f.index >= self.frames:
            raise OSError("VIDIOC_DQBUF: No such device")
        return f

    def health(self):
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


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


class SlowWriter(SessionWriter):
    """A writer that takes 0.15 s per frame (a slow SD card)."""

    def write_jpeg(self, t_ns, jpeg) -> None:
        time.sleep(0.15)
        super().write_jpeg(t_ns, jpeg)


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
