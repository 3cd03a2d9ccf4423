"""Onboard inference loop: capture, preprocess, infer, act; with a motor watchdog.

`LiveLoop` runs either threaded on a real-time clock (a real robot: a sensor thread,
a watchdog thread, capture + inference + command in the caller's thread) or stepped
on a simulated clock (deterministic, as fast as the CPU allows, with the
capture-to-command latency modelled in simulated time). `ProximityLoop` is the
IR-only reactive baseline, stepped on the same clock.

Watchdog semantics (both loops): every wheel command goes through the `Watchdog`,
which refuses a command whose perception basis (the frame's capture time, or the
proximity reading's time) is older than `max_staleness_s`, and stops the motors when
the basis of the newest command gets older than that (camera stalled, inference
stalled, sensor thread stalled). It checks every `watchdog_period_s`, so the motors
stop at most `max_staleness_s + watchdog_period_s` (default 0.15 + 0.02 s) after the
capture of the last frame that drove them. A stop request (`request_stop`, e.g.
from a SIGINT handler) halts the motors at once from the watchdog thread, even while
inference is busy, and every exit path (end of run, exception, KeyboardInterrupt)
halts them in `finally`.

Latency stages (milliseconds in `LatencyStats`): `capture` is the frame's age when
the loop picked it up (clock now - capture time), `preprocess` and `inference` the
wall time of the two predictor halves, `command` the wall time of the controller
and the wheel command, `end_to_end` capture to command sent (threaded: age + the
three others; stepped: age + the modelled latency, i.e. what the physics saw).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from robot_ssl.core.config import bounded, check_bounds
from robot_ssl.core.devices import Camera, Clock, Robot, WallClock
from robot_ssl.core.errors import ConfigError
from robot_ssl.core.odometry import OdometryIntegrator
from robot_ssl.core.schedule import run_schedule
from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.session import SessionWriter
from robot_ssl.io.streams import Record, StreamBus
from robot_ssl.live.controllers import AvoidConfig, CameraAvoidController, IRReactiveController
from robot_ssl.recording.sampler import RobotSample, RobotSampler, event
from robot_ssl.recording.sink import SessionSink

__all__ = [
    "STAGES",
    "LatencyStats",
    "LiveConfig",
    "LiveLoop",
    "LiveResult",
    "Observer",
    "Predictor",
    "ProximityLoop",
    "RunConfig",
    "Watchdog",
]

STAGES = ("capture", "preprocess", "inference", "command", "end_to_end")


class Predictor(Protocol):
    """A detector runtime: uint8 BGR images (B, H, W, 3) of any size -> probabilities (B, S, D)."""

    def preprocess(self, images_bgr: np.ndarray) -> np.ndarray: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


class Observer(Protocol):
    """What watches the loop without ever commanding the motors: learning while driving
    (robot_ssl.learning.online.OnlineLearning), the live view (robot_ssl.live.rerun_log).
    It subscribes to session streams by name (`streams`, e.g. ("odometry", "proximity"):
    their records, robot_ssl.io.streams.Record, come to `on_row`) and sees every frame
    with its prediction; it must only queue what it gets (the loop's threads call it)."""

    streams: tuple[str, ...]

    def on_row(self, row: Record) -> None: ...

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray) -> None: ...

    def status(self) -> str: ...


@dataclass(frozen=True)
class LiveConfig:
    """Live loop settings; times in seconds, rates in Hz."""

    drive: str = "monitor"  # "monitor" (never moves the robot) or "avoid" (camera-only)
    # watchdog: basis of the newest command older -> stop
    max_staleness_s: float = bounded(0.15, 0, 0.2, min_inclusive=False)
    watchdog_period_s: float = bounded(0.02, 0, 0.2, min_inclusive=False)
    # wheels/odometry; proximity every `prox_every` sensor reads
    sensor_hz: float = bounded(50.0, 0, 1000, min_inclusive=False)
    prox_every: int = bounded(5, 1, 1000)
    frame_poll_s: float = bounded(0.002, 0, 1, min_inclusive=False)  # threaded: no new frame
    status_interval_s: float = bounded(1.0, 0, 3600, min_inclusive=False)  # on_status cadence
    health_interval_s: float = bounded(0.25, 0, 60, min_inclusive=False)  # camera health checks

    def __post_init__(self) -> None:
        check_bounds(self, "live config", ConfigError)
        if self.drive not in ("monitor", "avoid"):
            raise ConfigError(
                f"live config.drive: must be 'monitor' or 'avoid', not {self.drive!r}"
            )
        if self.max_staleness_s + self.watchdog_period_s > 0.2:
            raise ConfigError("live config: the watchdog must react within 200 ms")


@dataclass(frozen=True)
class RunConfig:
    """What `robot-ssl run` configures: the loop (`live`) and the camera steering law
    (`avoid`); on the command line `--live.FIELD` and `--avoid.FIELD`."""

    live: LiveConfig = field(default_factory=LiveConfig)
    avoid: AvoidConfig = field(default_factory=AvoidConfig.for_camera)


class LatencyStats:
    """Rolling per-stage latencies (ms) for the live status line and benchmarks."""

    def __init__(self, window: int = 100_000) -> None:
        self._ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._ms[stage].append(seconds * 1e3)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage with samples: median_ms, p99_ms, mean_ms, max_ms, n."""
        out = {}
        with self._lock:
            items = [(s, np.fromiter(v, float)) for s, v in self._ms.items() if v]
        for s, a in items:
            out[s] = {
                "median_ms": float(np.median(a)),
                "p99_ms": float(np.percentile(a, 99)),
                "mean_ms": float(a.mean()),
                "max_ms": float(a.max()),
                "n": len(a),
            }
        return out

    def line(self) -> str:
        short = {"capture": "cap", "preprocess": "pre", "inference": "inf", "command": "cmd"}
        parts = []
        for s, v in self.summary().items():
            if s == "end_to_end":
                parts.append(f"e2e {v['median_ms']:.1f} (p99 {v['p99_ms']:.1f}) ms")
            else:
                parts.append(f"{short[s]} {v['median_ms']:.1f}")
        return "  ".join(parts)


class Watchdog:
    """The only way to the motors: refuses stale commands, stops them when data go stale.

    `command(basis_t_ns, left, right)` sends wheel targets if the basis (capture time of
    the frame, or time of the reading, the command was computed from) is fresh.
    `check()` stops the motors once the newest basis is older than the limit, and
    `halt()` stops them for good (no command is accepted after it). One lock orders
    commands, checks and stops, so a command computed before a stop cannot overtake it.
    """

    def __init__(
        self,
        robot: Robot,
        clock: Clock,
        max_staleness_s: float,
        on_trip: Callable[[int, str], None] | None = None,
    ) -> None:
        self.robot = robot
        self.clock = clock
        self.limit_ns = int(max_staleness_s * 1e9)
        self.on_trip = on_trip
        self._lock = threading.RLock()
        self._basis_ns: int | None = None
        self._min_basis_ns: int | None = None  # set by rearm(): older perception is refused
        self.tripped = False
        self.halted = False
        self.trips = 0
        self.refused = 0  # commands refused because their basis was stale
        self.targets: tuple[int, int] = (0, 0)  # last wheel targets sent

    @property
    def basis_ns(self) -> int | None:
        return self._basis_ns

    def fresh(self, basis_t_ns: int, now_ns: int) -> bool:
        return now_ns - basis_t_ns <= self.limit_ns

    def feed(self, basis_t_ns: int) -> None:
        """Note fresh perception without commanding (monitor mode): the watchdog then
        reports when perception stalls, although the motors are not driven."""
        with self._lock:
            self._basis_ns = basis_t_ns
            self.tripped = False

    def command(self, basis_t_ns: int, left: int, right: int) -> bool:
        """Send wheel targets if the basis is fresh and the loop is not halted."""
        with self._lock:
            if self.halted:
                return False
            stale = self._min_basis_ns is not None and basis_t_ns < self._min_basis_ns
            if stale or not self.fresh(basis_t_ns, self.clock.now_ns()):
                self.refused += 1
                return False
            self.robot.set_wheel_targets(int(left), int(right))
            self.targets = (int(left), int(right))
            self._basis_ns = basis_t_ns
            self.tripped = False
            return True

    def stop_motors(self) -> None:
        """Set the wheel targets to zero now (does not halt: commands may follow)."""
        with self._lock:
            self.robot.stop()
            self.targets = (0, 0)

    def check(self) -> bool:
        """Stop the motors if the newest basis is too old; True when tripped by this call."""
        with self._lock:
            now = self.clock.now_ns()
            last = self._basis_ns
            if self.halted or self.tripped or last is None or now - last <= self.limit_ns:
                return False
            self.robot.stop()  # raises if the robot is gone: the caller logs and retries
            self.targets = (0, 0)
            self.tripped = True
            self.trips += 1
        if self.on_trip is not None:
            self.on_trip(now, f"no fresh data for {(now - last) / 1e6:.0f} ms: motors stopped")
        return True

    def rearm(self, after_ns: int) -> None:
        """Stop the motors and refuse commands computed from perception older than
        `after_ns` (after a link loss: the robot may have kept or lost old targets, and
        what the loop saw before the gap is no basis for driving)."""
        with self._lock:
            self._min_basis_ns = after_ns
            self._basis_ns = None
            self.robot.stop()
            self.targets = (0, 0)

    def halt(self) -> None:
        """Stop the motors and refuse every later command (end of a run); idempotent."""
        with self._lock:
            self.halted = True
            self.robot.stop()
            self.targets = (0, 0)


@dataclass
class LiveResult:
    """What a run did: counts, latency summary (see LatencyStats.summary), why it ended."""

    frames: int = 0
    commands: int = 0
    refused: int = 0
    watchdog_trips: int = 0
    duration_s: float = 0.0
    stop_reason: str = ""
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    last_prob: np.ndarray | None = None
    motors_stopped: bool = False  # the final stop reached the robot (False: unreachable)
    stop_error: str = ""  # why the final stop failed

    def summary(self) -> str:
        """One readable line (what `run` and `replay --live` print): duration, frames and
        their rate, commands, watchdog stops, capture-to-command latency and the median
        of each stage in ms, why the run ended."""
        lat = self.latency
        e2e = lat.get("end_to_end")
        e2e_s = (
            f", capture-to-command {e2e['median_ms']:.1f} ms (p99 {e2e['p99_ms']:.1f})"
            if e2e
            else ""
        )
        stages = "  ".join(
            f"{s} {lat[s]['median_ms']:.1f}"
            for s in ("capture", "preprocess", "inference")
            if s in lat
        )
        fps = self.frames / self.duration_s if self.duration_s > 0 else 0.0
        return (
            f"ran {self.duration_s:.1f} s: {self.frames} frames ({fps:.1f}/s), "
            f"{self.commands} commands, {self.watchdog_trips} watchdog stops{e2e_s} "
            f"[{stages} ms]; {self.stop_reason}"
        )


@dataclass
class _Perception:
    """One frame through the detector, waiting to be acted on and recorded."""

    frame_t_ns: int
    image: np.ndarray
    prob: np.ndarray
    t_ns: int  # clock time when the prediction was ready
    capture_s: float
    preprocess_s: float
    inference_s: float
    wall_done: float  # perf_counter() when the prediction was ready


class _LoopBase:
    """Sensors, odometry, recording, watchdog and stop handling shared by both loops."""

    def __init__(
        self,
        robot: Robot,
        config: LiveConfig,
        clock: Clock | None,
        writer: SessionWriter | None,
        robot_spec: RobotSpec | None,
        truth: Callable[[], Any] | None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.robot = robot
        self.observers = tuple(observers)
        self.cfg = config
        self.clock = clock or WallClock()
        self.writer = writer
        self.truth = truth if writer is not None and "truth" in writer.counts else None
        # one thread owns the writer: JPEG encoding and HDF5 flushes stay off this loop
        self.sink = SessionSink(writer) if writer is not None else None
        # records by stream name: to the sink (the session's streams) and the observers
        self.bus = StreamBus()
        if self.sink is not None:
            self.sink.subscribe(self.bus)
        for o in self.observers:
            self.bus.subscribe(o.on_row, o.streams)
        self._frames_recorded = 0
        self.stats = LatencyStats()
        self.watchdog = Watchdog(robot, self.clock, config.max_staleness_s, self._on_trip)
        spec = robot_spec or (writer.robot if writer is not None else RobotSpec())
        self.odometry = OdometryIntegrator(spec)
        self.sampler = RobotSampler(
            robot,
            self.odometry,
            self.clock,
            targets=lambda: self.watchdog.targets,
            truth=self.truth,
        )
        self.result = LiveResult()
        self.last_sample: RobotSample | None = None
        self.pose: np.ndarray | None = None  # odometry (x_m, y_m, theta_rad), for controllers
        self._sensor_reads = 0
        self._robot_error_logged = False  # one "robot_error" per link gap, not one per check
        self._stop = threading.Event()
        self._stop_reason = ""

    # -- events and sensors -----------------------------------------------------------------

    def _event(self, t_ns: int, kind: str, message: str = "") -> None:
        self.bus.publish(event(t_ns, kind, message))

    def _emit(self, row: Record) -> None:
        self.bus.publish(row)

    def _on_trip(self, t_ns: int, message: str) -> None:
        self._event(t_ns, "watchdog_stop", message)

    def poll_sensors(self) -> None:
        """Read the robot once (through the shared `RobotSampler`): record wheels,
        odometry, truth and (every `prox_every` reads) proximity. A failed read logs a
        gap and returns; the first read after a gap stops the motors until perception
        newer than the reconnection drives them again."""
        prox = self._sensor_reads % self.cfg.prox_every == 0
        sample = self.sampler.step(self._emit, wheels=True, proximity=prox)
        if sample is None:
            return
        self._sensor_reads += 1
        self.last_sample = sample
        self.pose = sample.pose
        if sample.reconnected:
            self._robot_error_logged = False
            try:
                self.watchdog.rearm(self.clock.now_ns())
                self._event(
                    sample.t_ns, "motors_held", "robot back: motors at 0 until a fresh frame"
                )
            except Exception as e:  # gone again already: the next read logs the gap
                self.sampler.failed(self._emit, e)

    def _robot_failed(self, what: str, error: BaseException) -> None:
        """A command or stop failed (link down): log it once per gap; the loop goes on."""
        if self.sampler.in_gap or self._robot_error_logged:
            return
        self._robot_error_logged = True
        self._event(self.clock.now_ns(), "robot_error", f"{what} failed: {error}".splitlines()[0])

    # -- stopping -------------------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to finish (thread- and signal-safe: only sets a flag). In a threaded
        run the watchdog thread halts the motors at once; the loop exits after the
        current stage."""
        if not self._stop.is_set():
            self._stop_reason = reason
        self._stop.set()

    def stop(self) -> None:
        """Alias of request_stop()."""
        self.request_stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _run_events(
        self,
        duration_s: float,
        started: float,
        name: str,
        period_ns: int,
        handler: Callable[[int], None],
        pending: deque,
        on_pending: Callable[[int], None],
    ) -> LiveResult:
        """Stepped loop shared by both loops: sensors, `name` every `period_ns`, the
        watchdog, and pending (latency-delayed) commands; motors stop on every exit."""
        periods = {
            "sensor": round(1e9 / self.cfg.sensor_hz),
            name: period_ns,
            "watchdog": round(self.cfg.watchdog_period_s * 1e9),
        }
        handlers = {
            "sensor": lambda t: self.poll_sensors(),
            name: handler,
            "watchdog": lambda t: self._check_watchdog(),
        }
        reason = f"duration {duration_s:g} s reached"
        try:
            self.watchdog.stop_motors()

            def on_tick(t: int, due: frozenset[str]) -> None:
                first = pending[0][0] if pending else None
                if first is not None and first <= t:
                    on_pending(t)
                for stream, handler in handlers.items():  # in this order when due together
                    if stream in due:
                        handler(t)

            reason = run_schedule(
                self.clock,
                duration_s,
                periods,
                on_tick,
                self._stop.is_set,
                lambda: pending[0][0] if pending else None,
            )
            if self._stop.is_set():
                reason = self._stop_reason or "stop requested"
        except BaseException as e:
            reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise
        finally:
            self._halt_and_finish(reason, started)
        return self.result

    def _halt_and_finish(self, reason: str, started: float, final_read: bool = True) -> LiveResult:
        """Halt the motors (logged) and record a last sensor row with the zero targets."""
        now = self.clock.now_ns()
        try:
            self.watchdog.halt()
            self._event(now, "stop", f"motors stopped: {reason}")
            self.result.motors_stopped = True
        except Exception as e:  # the robot may be what failed; report, do not mask
            self._event(now, "robot_error", f"stop failed ({reason}): {e}")
            self.result.stop_error = str(e) or type(e).__name__
        if final_read:
            with contextlib.suppress(Exception):  # the robot may be what failed
                self.sampler.final_step(self._emit)
        self.result.stop_reason = reason
        self.result.duration_s = time.monotonic() - started
        self.result.watchdog_trips = self.watchdog.trips
        self.result.refused = self.watchdog.refused
        self.result.latency = self.stats.summary()
        if self.sink is not None:
            self.sink.close()  # everything queued is in the file; raises a write error
        return self.result

    def _check_watchdog(self) -> None:
        try:
            self.watchdog.check()
        except Exception as e:  # stop failed (link down): log; the next check retries
            self._robot_failed("watchdog stop", e)


class LiveLoop(_LoopBase):
    """Capture -> preprocess -> infer -> act, recording everything when given a writer.

    `distances_m` are the detector grid's distance bins (for the default controller);
    `controller` overrides the camera controller; `truth` (simulator only) gives the true
    pose and sensor distances, recorded with the sensor rows when the writer has a truth
    stream; `on_status` receives the status line once per `status_interval_s`;
    `observers` (run --learn, --view) see every recorded sensor row and every frame
    with its prediction; the caller starts and closes them.
    """

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
        truth: Callable[[], Any] | None = None,
        on_status: Callable[[str], None] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        super().__init__(robot, config or LiveConfig(), clock, writer, robot_spec, truth, observers)
        self.camera = camera
        self.predictor = predictor
        self.controller = controller or CameraAvoidController(
            distances_m, sensor_range_m=(robot_spec or RobotSpec()).prox_range_m
        )
        self.on_status = on_status
        self.last_clearance_m: np.ndarray | None = None
        self._last_index = -1

    # -- the pipeline stages ------------------------------------------------------------

    def perceive(self) -> _Perception | None:
        """Read the newest frame and run the detector on it; None when there is no new frame."""
        frame = self.camera.read()
        if frame is None or frame.index == self._last_index:
            return None
        self._last_index = frame.index
        capture_s = max(0, self.clock.now_ns() - frame.t_ns) / 1e9
        t1 = time.perf_counter()
        batch = self.predictor.preprocess(frame.image[None])
        t2 = time.perf_counter()
        prob = np.asarray(self.predictor.infer(batch)[0])
        t3 = time.perf_counter()
        self.result.frames += 1
        self.result.last_prob = prob
        return _Perception(
            frame.t_ns, frame.image, prob, self.clock.now_ns(), capture_s, t2 - t1, t3 - t2, t3
        )

    def act(self, p: _Perception, modelled_latency_s: float | None = None) -> bool:
        """Command the wheels from a perception (avoid mode; through the watchdog) and
        account latencies; True when a command was sent."""
        t0 = time.perf_counter()
        self.last_clearance_m = self.controller.clearance(p.prob)
        sent = False
        if self.cfg.drive == "avoid":
            targets = self.controller.command(p.prob, self.clock.now_ns(), pose=self.pose)
            try:
                sent = self.watchdog.command(p.frame_t_ns, *targets)
            except Exception as e:  # link down: no command reached the robot; go on
                self._robot_failed("wheel command", e)
                sent = False
            self.result.commands += int(sent)
        elif self.watchdog.fresh(p.frame_t_ns, self.clock.now_ns()):
            self.watchdog.feed(p.frame_t_ns)
        t1 = time.perf_counter()
        self.stats.add("capture", p.capture_s)
        self.stats.add("preprocess", p.preprocess_s)
        self.stats.add("inference", p.inference_s)
        self.stats.add("command", t1 - t0)
        if modelled_latency_s is None:  # threaded: measured
            e2e = p.capture_s + p.preprocess_s + p.inference_s + (t1 - t0)
        else:
            e2e = p.capture_s + modelled_latency_s
        self.stats.add("end_to_end", e2e)
        return sent

    def record(self, p: _Perception) -> None:
        """Write the frame and its prediction (the prediction's time: when it was ready);
        hand the frame to the observers."""
        for o in self.observers:
            o.on_frame(p.frame_t_ns, p.image, p.prob)
        index = self._frames_recorded
        self._frames_recorded += 1
        self.bus.publish(Record.of("camera", p.frame_t_ns, image=p.image))
        t_ns = max(p.t_ns, p.frame_t_ns)
        self.bus.publish(Record.of("predictions", t_ns, frame_index=index, prob=p.prob))

    def process_frame(self) -> bool:
        """Perceive, act and record the newest frame if there is a new one."""
        p = self.perceive()
        if p is None:
            return False
        self.act(p)
        self.record(p)
        return True

    # -- threaded, real-time clock --------------------------------------------------------

    def run(self, duration_s: float | None = None) -> LiveResult:
        """Run until `duration_s`, request_stop(), a failed camera, an error or Ctrl-C;
        the motors are halted on every exit path."""
        started = time.monotonic()
        reason = "stopped"
        threads = [
            threading.Thread(target=self._sensor_thread, name="live-sensors", daemon=True),
            threading.Thread(target=self._watchdog_thread, name="live-watchdog", daemon=True),
        ]
        t_end = None if duration_s is None else started + duration_s
        next_status = started + self.cfg.status_interval_s
        next_health = started + self.cfg.health_interval_s
        try:
            self.sampler.attach()
            self.watchdog.stop_motors()
            for t in threads:
                t.start()
            while True:
                if self._stop.is_set():
                    reason = self._stop_reason or "stop requested"
                    break
                now = time.monotonic()
                if t_end is not None and now >= t_end:
                    reason = f"duration {duration_s:g} s reached"
                    break
                if not self.process_frame():
                    time.sleep(self.cfg.frame_poll_s)
                if now >= next_health:
                    next_health = now + self.cfg.health_interval_s
                    failed = _camera_failure(self.camera)
                    if failed:
                        reason = f"camera failed: {failed}"
                        break
                    if self.sink is not None and self.sink.error is not None:
                        reason = f"write failed: {self.sink.error}"
                        break
                if self.on_status is not None and now >= next_status:
                    next_status += self.cfg.status_interval_s
                    self.on_status(self.status_line())
        except BaseException as e:
            reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise
        finally:
            self._stop.set()  # the watchdog thread halts the motors at once
            for t in threads:
                if t.is_alive():
                    t.join(timeout=1.0)
            alive = any(t.is_alive() for t in threads)  # a read stuck in a dead link
            self._halt_and_finish(reason, started, final_read=not alive)
            self.sampler.detach()
        return self.result

    def status_line(self) -> str:
        """One line: frames, commands, watchdog trips, clearance ahead, wheels, latencies."""
        c = self.last_clearance_m
        ahead = "-" if c is None or not np.isfinite(c).any() else f"{np.min(c):.2f} m"
        lt, rt = self.watchdog.targets
        return (
            f"frames {self.result.frames}  cmd {self.result.commands}  "
            f"watchdog {self.watchdog.trips}  obstacle {ahead}  wheels {lt:+d} {rt:+d}  "
            f"{self.stats.line()}"
            + "".join(f"  {text}" for text in (o.status() for o in self.observers) if text)
        )

    def _sensor_thread(self) -> None:
        period = 1.0 / self.cfg.sensor_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_sensors()
            except Exception as e:  # a sensor fault must not kill the loop
                self._event(self.clock.now_ns(), "robot_error", f"sensor read failed: {e}")
                self._stop.wait(0.1)
            if self.sampler.in_gap:  # robot gone: retry gently while the link reconnects
                self._stop.wait(0.1)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:  # fell behind (slow link): do not try to catch up
                next_t = time.monotonic()
            self._stop.wait(max(0.0, delay))

    def _watchdog_thread(self) -> None:
        while not self._stop.wait(self.cfg.watchdog_period_s):
            self._check_watchdog()
        # A stop request: halt now, without waiting for the main thread's inference.
        try:
            self.watchdog.halt()
        except Exception as e:
            self._event(self.clock.now_ns(), "robot_error", f"halt failed: {e}")

    # -- stepped, simulated clock ---------------------------------------------------------

    def run_stepped(
        self, duration_s: float, poll_hz: float = 100.0, command_latency_s: float = 0.0
    ) -> LiveResult:
        """Deterministic single-threaded loop on a clock that advances when waited on.

        The camera is looked at `poll_hz` times a second (default 100, the simulator's
        physics rate: a camera whose frames arrive with jitter is then seen as the
        threaded loop sees it, each new frame once, soon after it arrives), sensors at
        `sensor_hz`, the watchdog every `watchdog_period_s`; a frame's command reaches the
        wheels `command_latency_s` after the loop got the frame (the compute time of the
        robot's computer, modelled in simulated time: meanwhile the robot keeps its old
        command).
        """
        if poll_hz <= 0 or command_latency_s < 0:
            raise ValueError("need poll_hz > 0 and command_latency_s >= 0")
        started = time.monotonic()
        lat_ns = round(command_latency_s * 1e9)
        pending: deque[tuple[int, _Perception]] = deque()

        def on_frame(t: int) -> None:
            p = self.perceive()
            if p is None:
                return
            self.record(p)
            if lat_ns == 0:
                self.act(p, modelled_latency_s=0.0)
            else:
                pending.append((t + lat_ns, p))

        def on_pending(t: int) -> None:
            while pending and pending[0][0] <= t:
                _, p = pending.popleft()
                self.act(p, modelled_latency_s=command_latency_s)

        period_ns = round(1e9 / poll_hz)
        return self._run_events(
            duration_s, started, "frame", period_ns, on_frame, pending, on_pending
        )


class ProximityLoop(_LoopBase):
    """IR-only reactive baseline: commands from the proximity sensors instead of frames.

    Proximity readings come with every sensor read; the controller runs at
    `command_hz` (Thymio: proximity updates at 10 Hz) on the newest reading, and its
    command goes through the same watchdog (basis: the reading's time).
    """

    def __init__(
        self,
        robot: Robot,
        controller: IRReactiveController,
        config: LiveConfig | None = None,
        *,
        clock: Clock | None = None,
        writer: SessionWriter | None = None,
        robot_spec: RobotSpec | None = None,
        truth: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(
            robot, config or LiveConfig(drive="avoid"), clock, writer, robot_spec, truth
        )
        self.controller = controller

    def run_stepped(
        self, duration_s: float, command_hz: float = 10.0, command_latency_s: float = 0.0
    ) -> LiveResult:
        """Deterministic loop on a stepped clock: sensors at `sensor_hz`, a command from the
        newest reading at `command_hz`, applied `command_latency_s` later."""
        if command_hz <= 0 or command_latency_s < 0:
            raise ValueError("need command_hz > 0 and command_latency_s >= 0")
        started = time.monotonic()
        lat_ns = round(command_latency_s * 1e9)
        pending: deque[tuple[int, int, tuple[int, int], float]] = deque()

        def on_command(t: int) -> None:
            r = self.robot.read()
            t0 = time.perf_counter()
            targets = self.controller.command(r.proximity, self.clock.now_ns(), pose=self.pose)
            compute_s = time.perf_counter() - t0
            if lat_ns == 0:
                apply(r.t_ns, targets, compute_s)
            else:
                pending.append((t + lat_ns, r.t_ns, targets, compute_s))

        def apply(basis_ns: int, targets: tuple[int, int], compute_s: float) -> None:
            sent = self.watchdog.command(basis_ns, *targets)
            self.result.commands += int(sent)
            self.result.frames += 1
            self.stats.add("command", compute_s)
            self.stats.add("end_to_end", max(0, self.clock.now_ns() - basis_ns) / 1e9)

        def on_pending(t: int) -> None:
            while pending and pending[0][0] <= t:
                _, basis, targets, compute_s = pending.popleft()
                apply(basis, targets, compute_s)

        period_ns = round(1e9 / command_hz)
        return self._run_events(
            duration_s, started, "command", period_ns, on_command, pending, on_pending
        )


def _camera_failure(camera: Camera) -> str:
    """Why the camera gave up ('' when healthy or when it cannot tell)."""
    health = getattr(camera, "health", None)
    if health is None:
        return ""
    try:
        h = health()
    except Exception as e:  # a broken camera object: treat as failed
        return str(e) or type(e).__name__
    return (h.error or "stopped delivering frames") if getattr(h, "failed", False) else ""
