"""Onboard inference loop: capture, preprocess, infer, act; with a motor watchdog.

`LiveLoop` runs either threaded on the wall clock (a real robot: a sensor thread,
a watchdog thread, inference in the caller's thread) or stepped on a simulated
clock (deterministic, as fast as the CPU allows). In both, the watchdog stops the
motors when the newest command is based on a frame older than `max_staleness_s`
(camera stalled, inference stalled), and every exit path stops them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robot_ssl.controllers import CameraAvoidController
from robot_ssl.devices import Camera, Clock, Robot, WallClock
from robot_ssl.odometry import OdometryIntegrator
from robot_ssl.session import SessionWriter
from robot_ssl.spec import RobotSpec

STAGES = ("capture", "preprocess", "inference", "command", "end_to_end")


class Predictor(Protocol):
    """A detector runtime: uint8 BGR images (B, H, W, 3) of any size -> probabilities (B, S, D)."""

    def preprocess(self, images_bgr: np.ndarray) -> np.ndarray: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LiveConfig:
    """Live loop settings; times in seconds, rates in Hz."""

    drive: str = "monitor"  # "monitor" (never moves) or "avoid" (camera-only avoidance)
    max_staleness_s: float = 0.15  # watchdog: newest acted-on frame older than this -> stop
    watchdog_period_s: float = 0.02
    sensor_hz: float = 50.0  # wheels/odometry; proximity every `prox_every` sensor reads
    prox_every: int = 5
    frame_poll_s: float = 0.002

    def __post_init__(self) -> None:
        if self.drive not in ("monitor", "avoid"):
            raise ValueError(f"drive must be 'monitor' or 'avoid', not {self.drive!r}")
        if self.max_staleness_s + self.watchdog_period_s > 0.2:
            raise ValueError("watchdog must react within 200 ms")


class LatencyStats:
    """Rolling per-stage latencies (ms) for the live status line and benchmarks."""

    def __init__(self, window: int = 2000) -> None:
        self._ms = {s: deque(maxlen=window) for s in STAGES}

    def add(self, stage: str, seconds: float) -> None:
        self._ms[stage].append(seconds * 1e3)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for s, v in self._ms.items():
            if v:
                a = np.fromiter(v, float)
                out[s] = {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99))}
        return out

    def line(self) -> str:
        return "  ".join(f"{s} {v['median_ms']:.1f}ms" for s, v in self.summary().items())


class Watchdog:
    """Stops the robot when fed data gets older than the limit; resumes when fed fresh data."""

    def __init__(self, robot: Robot, clock: Clock, max_staleness_s: float) -> None:
        self.robot = robot
        self.clock = clock
        self.limit_ns = int(max_staleness_s * 1e9)
        self._last_frame_t_ns: int | None = None
        self._lock = threading.Lock()
        self.tripped = False
        self.trips = 0
        self.on_trip: Callable[[int, str], None] | None = None

    def feed(self, frame_t_ns: int) -> None:
        with self._lock:
            self._last_frame_t_ns = frame_t_ns
            self.tripped = False

    def fresh(self, frame_t_ns: int, now_ns: int) -> bool:
        return now_ns - frame_t_ns <= self.limit_ns

    def check(self) -> bool:
        """Stop the motors if the newest acted-on frame is too old; True when tripped now."""
        now = self.clock.now_ns()
        with self._lock:
            last = self._last_frame_t_ns
            if last is None or self.tripped or now - last <= self.limit_ns:
                return False
            self.tripped = True
            self.trips += 1
        self.robot.stop()
        if self.on_trip is not None:
            self.on_trip(now, f"no fresh command for {(now - last) / 1e6:.0f} ms: motors stopped")
        return True


@dataclass
class LiveResult:
    frames: int = 0
    commands: int = 0
    watchdog_trips: int = 0
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    last_prob: np.ndarray | None = None


class LiveLoop:
    """Capture -> preprocess -> infer -> act, recording everything when given a writer."""

    def __init__(
        self,
        robot: Robot,
        camera: Camera,
        predictor: Predictor,
        distances_m: np.ndarray,
        config: LiveConfig | None = None,
        *,
        clock: Clock | None = None,
        writer: SessionWriter | None = None,
        robot_spec: RobotSpec | None = None,
        controller: CameraAvoidController | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.robot = robot
        self.camera = camera
        self.predictor = predictor
        self.cfg = config or LiveConfig()
        self.clock = clock or WallClock()
        self.writer = writer
        self.controller = controller or CameraAvoidController(distances_m)
        self.stats = LatencyStats()
        self.watchdog = Watchdog(robot, self.clock, self.cfg.max_staleness_s)
        self.watchdog.on_trip = self._event
        self.odometry = OdometryIntegrator(robot_spec or RobotSpec())
        self.on_status = on_status
        self.result = LiveResult()
        self._targets = (0, 0)
        self._last_index = -1
        self._sensor_reads = 0
        self._stop = threading.Event()

    # -- pieces shared by both modes --------------------------------------------------------

    def _event(self, t_ns: int, message: str, kind: str = "watchdog_stop") -> None:
        if self.writer is not None:
            self.writer.write_event(t_ns, kind, message)

    def poll_sensors(self) -> None:
        """Read the robot once; record wheels, odometry and (every few reads) proximity."""
        r = self.robot.read()
        self._sensor_reads += 1
        pose, gap = self.odometry.update(r.t_ns, r.wheel_speed)
        if self.writer is None:
            return
        if gap is not None:
            self.writer.write_event(
                r.t_ns, "odometry_gap", f"{(gap.end_ns - gap.start_ns) / 1e9:.2f} s"
            )
        self.writer.write_wheels(r.t_ns, r.wheel_speed, self._targets)
        self.writer.write_odometry(r.t_ns, pose)
        if (self._sensor_reads - 1) % self.cfg.prox_every == 0:
            self.writer.write_proximity(r.t_ns, r.proximity)

    def process_frame(self) -> bool:
        """Handle the newest frame if there is a new one; False when nothing new."""
        t0 = time.perf_counter()
        frame = self.camera.read()
        if frame is None or frame.index == self._last_index:
            return False
        self._last_index = frame.index
        t1 = time.perf_counter()
        batch = self.predictor.preprocess(frame.image[None])
        t2 = time.perf_counter()
        prob = self.predictor.infer(batch)[0]
        t3 = time.perf_counter()
        now = self.clock.now_ns()
        fresh = self.watchdog.fresh(frame.t_ns, now)
        if self.cfg.drive == "avoid" and fresh:
            self._targets = self.controller.command(prob, now)
            self.robot.set_wheel_targets(*self._targets)
            self.result.commands += 1
        if fresh:
            self.watchdog.feed(frame.t_ns)
        t4 = time.perf_counter()
        if self.writer is not None:
            index = self.writer.counts["camera"]
            self.writer.write_frame(frame.t_ns, frame.image)
            self.writer.write_prediction(frame.t_ns, index, prob)
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.stats.add(stage, dt)
        self.stats.add("end_to_end", (now - frame.t_ns) / 1e9 + (t4 - t3))
        self.result.frames += 1
        self.result.last_prob = prob
        return True

    def stop(self) -> None:
        """Ask a running loop to finish (thread-safe)."""
        self._stop.set()

    def _finish(self) -> LiveResult:
        self.robot.stop()
        self.result.watchdog_trips = self.watchdog.trips
        self.result.latency = self.stats.summary()
        return self.result

    # -- threaded, wall clock ------------------------------------------------------------

    def run(self, duration_s: float | None = None, status_interval_s: float = 1.0) -> LiveResult:
        """Run on the wall clock until `duration_s`, stop(), an error or Ctrl-C; motors stop."""
        threads = [
            threading.Thread(target=self._sensor_thread, name="live-sensors", daemon=True),
            threading.Thread(target=self._watchdog_thread, name="live-watchdog", daemon=True),
        ]
        t_end = None if duration_s is None else time.monotonic() + duration_s
        next_status = time.monotonic() + status_interval_s
        try:
            for t in threads:
                t.start()
            while not self._stop.is_set() and (t_end is None or time.monotonic() < t_end):
                if not self.process_frame():
                    time.sleep(self.cfg.frame_poll_s)
                if self.on_status is not None and time.monotonic() >= next_status:
                    next_status += status_interval_s
                    self.on_status(self.status_line())
        finally:
            self._stop.set()
            self.robot.stop()
            for t in threads:
                t.join(timeout=1.0)
        return self._finish()

    def status_line(self) -> str:
        return (
            f"frames {self.result.frames}  commands {self.result.commands}  "
            f"watchdog {self.watchdog.trips}  {self.stats.line()}"
        )

    def _sensor_thread(self) -> None:
        period = 1.0 / self.cfg.sensor_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_sensors()
            except Exception as e:  # a sensor fault must not kill the loop
                self._event(self.clock.now_ns(), f"sensor read failed: {e}", kind="robot_error")
                time.sleep(0.1)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def _watchdog_thread(self) -> None:
        while not self._stop.wait(self.cfg.watchdog_period_s):
            self.watchdog.check()

    # -- stepped, simulated clock ----------------------------------------------------------

    def run_stepped(self, duration_s: float, fps: float) -> LiveResult:
        """Deterministic single-threaded loop on a clock that advances when waited on."""
        start = self.clock.now_ns()
        end = start + int(duration_s * 1e9)
        sensor_period = int(1e9 / self.cfg.sensor_hz)
        frame_period = int(1e9 / fps)
        next_sensor, next_frame = start, start
        try:
            while not self._stop.is_set():
                t = min(next_sensor, next_frame)
                if t > end:
                    break
                self.clock.sleep_until_ns(t)
                if t == next_sensor:
                    self.poll_sensors()
                    next_sensor += sensor_period
                if t == next_frame:
                    self.process_frame()
                    next_frame += frame_period
                self.watchdog.check()
        finally:
            self.robot.stop()
        return self._finish()
