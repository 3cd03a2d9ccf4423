"""The one drive loop (robot_ssl.runtime): every drive goes through the watchdog (record's
wander included), a policy plugs in by its protocol, camera health by its declared method."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from robot_ssl.core.odometry import OdometryIntegrator
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session import SessionReader, SessionWriter
from robot_ssl.live.loop import LiveConfig, LiveLoop
from robot_ssl.recording.recorder import Recorder, RecorderConfig
from robot_ssl.recording.sampler import RobotSampler
from robot_ssl.recording.wander import wander_controller
from robot_ssl.runtime.interfaces import Perception, Situation
from robot_ssl.runtime.loop import DriveLoop
from robot_ssl.simlink.closed_loop import OraclePredictor, make_simulator
from sim.world import Arena, World

D = np.round(np.arange(31) * 0.01, 2)


@dataclass(frozen=True)
class Reading:
    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray


class HangingRobot:
    """A robot whose link hangs (read() blocks) from `hang_after_s` on: the loop's sensor
    thread is stuck, so fresh readings stop; stop() still reaches the motors."""

    def __init__(self, hang_after_s: float) -> None:
        self.hang_at = time.monotonic() + hang_after_s
        self.log: list[tuple[int, tuple[int, int]]] = []  # (monotonic ns, targets)
        self.release = threading.Event()

    def read(self) -> Reading:
        if time.monotonic() >= self.hang_at:
            self.release.wait(3.0)
        return Reading(time.monotonic_ns(), np.zeros(7, np.int16), np.zeros(2, np.int16))

    def set_wheel_targets(self, left: int, right: int) -> None:
        self.log.append((time.monotonic_ns(), (left, right)))

    def stop(self) -> None:
        self.log.append((time.monotonic_ns(), (0, 0)))

    def close(self) -> None:
        self.release.set()


def test_record_wander_stops_the_motors_when_the_robot_link_hangs(tmp_path):
    """`record --drive wander` drives through the host watchdog: a hung link (no fresh
    reading) stops the motors within the watchdog's 200 ms, long before the run ends."""
    robot = HangingRobot(hang_after_s=0.6)
    with SessionWriter(tmp_path / "w.h5", camera=CameraSpec(width=64, height=48)) as w:
        rec = Recorder(
            robot,
            None,
            w,
            RecorderConfig(status=False, target_refresh_s=0.05),
            controller=wander_controller(RobotSpec(), seed=1),
        )
        timer = threading.Timer(1.5, robot.release.set)
        timer.start()
        stats = rec.run(1.2)
        timer.cancel()
    moving = [t for t, targets in robot.log if targets != (0, 0) and t < robot.hang_at * 1e9]
    assert moving, "wander never drove"
    hung_ns = int(robot.hang_at * 1e9)
    stops = [t for t, targets in robot.log if targets == (0, 0) and t > hung_ns]
    assert stops and (stops[0] - hung_ns) / 1e9 <= 0.2 + 0.05  # watchdog, not the run's end
    assert rec.result.watchdog_trips == 1 and robot.log[-1][1] == (0, 0)
    assert stats.stop_reason.startswith("duration")
    with SessionReader(tmp_path / "w.h5") as r:
        assert any(e.kind == "watchdog_stop" for e in r.events())


class SeekContact:
    """A policy another issue could add (contact-seeking, by its protocol alone): creep
    forward until a front sensor reads close, then stop and remember it."""

    trigger = "proximity"

    def __init__(self) -> None:
        self.touched_ns: int | None = None

    def perceive(self, image_bgr: np.ndarray) -> Perception:
        return Perception(None)

    def decide(self, situation: Situation) -> tuple[int, int] | None:
        if situation.proximity is not None and situation.proximity[:5].max() > 3000:
            self.touched_ns = self.touched_ns or situation.t_ns
        return (0, 0) if self.touched_ns is not None else (150, 150)

    def status(self) -> str:
        return "touched" if self.touched_ns is not None else "seeking"


def test_a_new_policy_plugs_into_the_loop_and_goes_through_the_watchdog():
    world = World(name="box", arena=Arena(width_m=1.0, depth_m=1.0), start_pose=(0.0, 0.0, 0.0))
    sim = make_simulator(world, 0, camera=False)
    policy = SeekContact()
    sensors = RobotSampler(sim.robot, OdometryIntegrator(RobotSpec()), sim.clock)
    loop = DriveLoop(sim.clock, robot=sim.robot, sensors=sensors, policy=policy)
    result = loop.run_stepped(8.0, command_latency_s=0.02)
    assert result.commands == 80 and result.refused == 0  # 10 Hz: every decision sent
    assert policy.touched_ns is not None  # it reached the wall and stopped there
    assert sim.pose[0] > 0.25 and not sim.drive.bumping
    assert sim.robot.targets == (0, 0) and result.motors_stopped
    assert "seeking" in loop.status_line() or "touched" in loop.status_line()


class FailingCamera:
    """The simulated camera, whose health() reports a failure after `frames` frames and
    which then delivers nothing new (a USB camera unplugged)."""

    def __init__(self, camera, frames: int) -> None:
        self.camera, self.frames, self.seen, self.last = camera, frames, 0, None

    def read(self):
        if self.seen < self.frames:
            f = self.camera.read()
            if f is not None and (self.last is None or f.index != self.last.index):
                self.seen += 1
                self.last = f
        return self.last

    def health(self):
        from robot_ssl.recording.cameras import CameraHealth

        failed = self.seen >= self.frames
        return CameraHealth(self.seen, 0, None, failed, "unplugged" if failed else "")

    def close(self) -> None:
        pass


def test_a_failed_camera_stops_a_camera_policy_run_by_its_health():
    sim = make_simulator("heldout_mixed", 1, camera=True)
    loop = LiveLoop(
        sim.robot,
        FailingCamera(sim.camera, frames=10),
        OraclePredictor(sim),
        D,
        LiveConfig(drive="avoid"),
        clock=sim.clock,
    )
    result = loop.run_stepped(5.0)
    assert result.stop_reason == "camera failed: unplugged" and result.camera_failed
    assert result.frames == 10 and sim.robot.targets == (0, 0)
    assert (sim.t_ns - sim.start_ns) / 1e9 < 1.0  # stopped at once, not at the end
