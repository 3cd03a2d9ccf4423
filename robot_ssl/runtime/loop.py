"""The drive loop: one scheduler for `record`, `run`, `replay --live` and the closed-loop
trials, each of which is this loop with different parts.

Parts (robot_ssl.runtime.interfaces): a robot and its `Sensors` (the sampler that
records wheels, odometry, proximity and truth), a camera, a `Policy` (what drives:
wander, IR-reactive, camera avoid, or none) and `Observer`s (the session recording,
the online learner, the live view). Every wheel command goes through the `Watchdog`;
the motors are stopped when the run starts and on every exit path (end, stop request,
error, KeyboardInterrupt), and by the watchdog when the command's perception gets
stale.

- `run(duration_s)`, the wall clock: a sensor thread polls the robot (wheels at
  `sensor_hz`, proximity at `prox_hz`), a watchdog thread checks the watchdog every
  `watchdog_period_s` (and halts the motors at once on a stop request, even while the
  main thread infers), and the caller's thread looks for new frames, perceives,
  decides and hands each frame to the observers.
- `run_stepped(duration_s, command_latency_s)`, a clock that advances when waited on
  (the simulator's): the same parts on one fixed schedule (run_schedule), deterministic
  and as fast as the CPU allows; a command reaches the wheels `command_latency_s` after
  its decision (the robot computer's compute time, modelled in simulated time).

A camera that fails (health() says so, or read() raises) is an event; a run whose
policy needs frames, or that has no robot, then stops ("camera failed: ..."), other runs
go on without it.
No new frame for `camera_stall_s` is a "camera_stalled" event.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from robot_ssl.core.devices import Camera, Clock, Frame, Robot
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.io.streams import Record, StreamBus
from robot_ssl.runtime.interfaces import (
    TRIGGERS,
    Observer,
    Perception,
    Policy,
    Sensors,
    Situation,
)
from robot_ssl.runtime.latency import LatencyStats
from robot_ssl.runtime.schedule import run_schedule
from robot_ssl.runtime.stopping import StopFlag
from robot_ssl.runtime.watchdog import Watchdog

__all__ = ["DriveLoop", "LoopConfig", "LoopCrashed", "LoopResult"]


class LoopCrashed(RobotSSLError):
    """A part of the loop raised (a policy's bug, say): the run stopped, motors stopped."""


@dataclass(frozen=True)
class LoopConfig:
    """Rates and limits of one drive loop (checked by the verbs' own configs)."""

    sensor_hz: float = 50.0  # wheels, odometry, truth
    prox_hz: float = 10.0  # proximity (Thymio firmware: 10 Hz)
    max_staleness_s: float = 0.15  # watchdog: a command's perception older -> refused/stop
    watchdog_period_s: float = 0.02
    target_refresh_s: float | None = None  # resend unchanged targets this often (None: always)
    frame_poll_s: float = 0.002  # threaded: pause when no new frame
    frame_poll_hz: float = 100.0  # stepped: how often the camera is looked at
    camera_stall_s: float = 2.0  # no new frame this long -> "camera_stalled"
    health_interval_s: float = 0.25  # camera health checks (clock time)
    robot_retry_s: float = 0.1  # pause between reads while the robot is gone
    status_interval_s: float = 1.0  # on_status cadence (wall clock)
    final_read: bool = True  # read the robot once more after the stop (records zero targets)


@dataclass
class LoopResult:
    """What a run did: counts, latency summary (see LatencyStats.summary), why it ended."""

    frames: int = 0
    commands: int = 0
    refused: int = 0
    watchdog_trips: int = 0
    duration_s: float = 0.0
    stop_reason: str = ""
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    motors_stopped: bool = False  # the final stop reached the robot (False: unreachable)
    stop_error: str = ""  # why the final stop failed
    frames_missed: int = 0  # frames the camera captured that the loop never saw
    camera_failed: bool = False

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


@dataclass(frozen=True)
class _Decision:
    """A policy's decision waiting for the wheels (stepped runs with a modelled latency)."""

    due_ns: int
    basis_t_ns: int
    targets: tuple[int, int] | None
    capture_s: float
    stages_s: dict[str, float]
    decide_s: float


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class DriveLoop:
    """One robot run: sensors, camera, policy, watchdog and observers on one schedule.

    `robot` and `sensors` come together (or neither: a camera-only recording); a policy
    needs a robot, a "frame" policy a camera. `frame_truth`: emit ("frame_truth", t,
    exposure) for simulated frames (recordings with a truth stream). `on_status`
    receives the status line every `status_interval_s` of a threaded run.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        robot: Robot | None = None,
        sensors: Sensors | None = None,
        camera: Camera | None = None,
        policy: Policy | None = None,
        observers: Sequence[Observer] = (),
        config: LoopConfig | None = None,
        on_status: Callable[[str], None] | None = None,
        frame_truth: bool = False,
    ) -> None:
        if (robot is None) != (sensors is None):
            raise ValueError("a robot and its sensors come together")
        if policy is not None and robot is None:
            raise ValueError("a policy needs a robot to drive")
        if policy is not None and policy.trigger not in TRIGGERS:
            raise ValueError(f"policy trigger must be one of {TRIGGERS}, not {policy.trigger!r}")
        if policy is not None and policy.trigger == "frame" and camera is None:
            raise ValueError("a policy that decides on frames needs a camera")
        self.clock = clock
        self.robot = robot
        self.sensors = sensors
        self.camera = camera
        self.policy = policy
        self.observers = tuple(observers)
        self.bus = StreamBus()  # records by stream name, to the observers that subscribed
        for o in self.observers:
            self.bus.subscribe(o.on_row, o.streams)
        self.cfg = config or LoopConfig()
        self.on_status = on_status
        self.frame_truth = frame_truth
        self.stop_flag = StopFlag()
        self.latency = LatencyStats()
        self.result = LoopResult()
        self.watchdog: Watchdog | None = None
        if policy is not None and robot is not None:
            self.watchdog = Watchdog(
                robot,
                clock,
                self.cfg.max_staleness_s,
                self._on_trip,
                refresh_s=self.cfg.target_refresh_s,
            )
        if sensors is not None:
            sensors.targets = lambda: self.targets
        self.pose: np.ndarray | None = None
        self._proximity: np.ndarray | None = None
        self._robot_error_logged = False  # one "robot_error" per link gap
        self._crash: tuple[str, BaseException] | None = None
        self._pending: deque[_Decision] = deque()
        self._latency_ns = 0
        self._latency_s: float | None = None  # None: measured (threaded)
        # camera state (one thread looks)
        self._last_index = -1
        self._last_new_frame_ns: int | None = None
        self._next_health_ns: int | None = None
        self._camera_stalled = False
        self._camera_dead = camera is None
        self._started_ns = 0

    # -- state and stopping -----------------------------------------------------------

    @property
    def targets(self) -> tuple[int, int]:
        """The wheel targets last sent ((0, 0) when the loop does not drive)."""
        return self.watchdog.targets if self.watchdog is not None else (0, 0)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to finish (signal-safe: sets a flag). The watchdog thread halts the
        motors within one watchdog period; the loop exits after the current stage."""
        self.stop_flag.request(reason)

    def stop(self) -> None:
        """Alias of request_stop()."""
        self.request_stop()

    # -- rows and events --------------------------------------------------------------

    def emit(self, row: Record) -> None:
        """Hand one session record to the observers subscribed to its stream."""
        self.bus.publish(row)

    def event(self, t_ns: int, kind: str, message: str = "") -> None:
        """Emit an "events" record (what happened: stops, stalls, failures)."""
        self.emit(Record.of("events", t_ns, kind=kind, message=message))

    def _on_trip(self, t_ns: int, message: str) -> None:
        self.event(t_ns, "watchdog_stop", message)

    def _robot_failed(self, what: str, error: BaseException) -> None:
        """A command or stop failed (link down): log it once per gap; the loop goes on."""
        if (self.sensors is not None and self.sensors.in_gap) or self._robot_error_logged:
            return
        self._robot_error_logged = True
        self.event(self.clock.now_ns(), "robot_error", f"{what} failed: {error}".splitlines()[0])

    # -- the robot --------------------------------------------------------------------

    def poll_robot(self, wheels: bool = True, proximity: bool = True) -> bool:
        """Read the robot once (rows to the observers) and let a wheels/proximity policy
        decide; False when the robot did not answer (a gap, logged by the sensors). The
        first read after a gap stops the motors until perception newer than it drives."""
        assert self.sensors is not None
        sample = self.sensors.step(self.emit, wheels, proximity)
        if sample is None:
            return False
        self.pose = sample.pose
        self._proximity = sample.proximity
        if sample.reconnected and self.watchdog is not None:
            self._robot_error_logged = False
            try:
                self.watchdog.rearm(self.clock.now_ns())
                self.event(sample.t_ns, "motors_held", "robot back: motors at 0 until fresh data")
            except Exception as e:  # gone again already: the next read logs the gap
                self.sensors.failed(self.emit, e)
        trigger = self.policy.trigger if self.policy is not None else None
        if (trigger == "wheels" and wheels) or (trigger == "proximity" and proximity):
            age_s = max(0, self.clock.now_ns() - sample.t_ns) / 1e9
            self._decide(sample.t_ns, None, age_s)
        return True

    # -- the camera -------------------------------------------------------------------

    def look(self) -> bool:
        """Look for a new frame: perceive and decide on it (a frame policy), hand it to the
        observers; log stalls and failures. True when there was a new frame."""
        assert self.camera is not None
        now = self.clock.now_ns()
        try:
            frame = self.camera.read()
        except Exception as e:
            self._camera_failed(now, _describe(e).splitlines()[0])
            return False
        if frame is None or frame.index <= self._last_index:
            self._check_camera(now)
            return False
        if self._camera_stalled:
            self._camera_stalled = False
            self.event(now, "camera_resumed", "frames again")
        if self._last_index >= 0 and frame.index > self._last_index + 1:
            self.result.frames_missed += frame.index - self._last_index - 1
        self._last_index = frame.index
        self._last_new_frame_ns = now
        self._on_frame(frame, now)
        return True

    def _on_frame(self, frame: Frame, now_ns: int) -> None:
        capture_s = max(0, now_ns - frame.t_ns) / 1e9
        perception: Perception | None = None
        self.result.frames += 1
        if self.policy is not None and self.policy.trigger == "frame":
            perception = self.policy.perceive(frame.image)
            self._decide(int(frame.t_ns), perception, capture_s)
        prob = perception.prob if perception is not None else None
        for o in self.observers:
            o.on_frame(int(frame.t_ns), frame.image, prob)
        exposure_ns = getattr(frame, "exposure_t_ns", None)  # simulated frames only
        if self.frame_truth and exposure_ns is not None:
            self.emit(Record.of("frame_truth", frame.t_ns, exposure_t_ns=int(exposure_ns)))

    def _check_camera(self, now_ns: int) -> None:
        """No new frame: a failed camera (health, at most every health_interval_s) or a
        stall (no new frame for camera_stall_s) is an event."""
        if self._next_health_ns is None or now_ns >= self._next_health_ns:
            self._next_health_ns = now_ns + round(self.cfg.health_interval_s * 1e9)
            assert self.camera is not None
            try:
                health = self.camera.health()
                failed, error = bool(health.failed), health.error
            except Exception as e:  # a broken camera object: failed
                failed, error = True, _describe(e)
            if failed:
                self._camera_failed(now_ns, error or "stopped delivering frames")
                return
        since = self._last_new_frame_ns if self._last_new_frame_ns is not None else self._started_ns
        if not self._camera_stalled and now_ns - since > self.cfg.camera_stall_s * 1e9:
            self._camera_stalled = True
            self.event(now_ns, "camera_stalled", f"no new frame for {(now_ns - since) / 1e9:.1f} s")

    def _camera_failed(self, t_ns: int, message: str) -> None:
        self._camera_dead = True
        self.result.camera_failed = True
        frame_policy = self.policy is not None and self.policy.trigger == "frame"
        if frame_policy or self.robot is None:  # nothing left to do without frames
            self.event(t_ns, "camera_failed", message)
            self.request_stop(f"camera failed: {message}")
        else:
            self.event(t_ns, "camera_failed", f"{message}; other streams go on")

    # -- deciding and commanding ------------------------------------------------------

    def _decide(self, basis_t_ns: int, perception: Perception | None, capture_s: float) -> None:
        """Ask the policy; the decision reaches the wheels now or `command_latency_s` later."""
        assert self.policy is not None
        now = self.clock.now_ns()
        t0 = time.perf_counter()
        situation = Situation(now, basis_t_ns, self._proximity, self.pose, perception)
        targets = self.policy.decide(situation)
        decide_s = time.perf_counter() - t0
        stages = perception.stages_s if perception is not None else {}
        decision = _Decision(
            now + self._latency_ns, basis_t_ns, targets, capture_s, stages, decide_s
        )
        if self._latency_ns > 0 and targets is not None:
            self._pending.append(decision)
        else:
            self._apply(decision)

    def _apply(self, d: _Decision) -> None:
        """Send the targets through the watchdog (None: note the basis as fresh); latencies."""
        assert self.watchdog is not None
        t0 = time.perf_counter()
        if d.targets is None:
            if self.watchdog.fresh(d.basis_t_ns, self.clock.now_ns()):
                self.watchdog.feed(d.basis_t_ns)
        else:
            try:
                sent = self.watchdog.command(d.basis_t_ns, *d.targets)
            except Exception as e:  # link down: no command reached the robot; go on
                self._robot_failed("wheel command", e)
                sent = False
            self.result.commands += int(sent)
        command_s = d.decide_s + time.perf_counter() - t0
        self.latency.add("capture", d.capture_s)
        for stage, seconds in d.stages_s.items():
            self.latency.add(stage, seconds)
        self.latency.add("command", command_s)
        if self._latency_s is None:  # threaded: measured
            e2e = d.capture_s + sum(d.stages_s.values()) + command_s
        else:
            e2e = d.capture_s + self._latency_s
        self.latency.add("end_to_end", e2e)

    def _apply_due(self, t_ns: int) -> None:
        while self._pending and self._pending[0].due_ns <= t_ns:
            self._apply(self._pending.popleft())

    def _check_watchdog(self) -> None:
        assert self.watchdog is not None
        try:
            self.watchdog.check()
        except Exception as e:  # stop failed (link down): log; the next check retries
            self._robot_failed("watchdog stop", e)

    # -- start and finish -------------------------------------------------------------

    def _begin(self) -> None:
        self._started_ns = self.clock.now_ns()
        if self.sensors is not None:
            self.sensors.attach()
        if self.watchdog is not None:
            try:
                self.watchdog.stop_motors()
            except Exception as e:  # robot gone already: the first read logs the gap
                self._robot_failed("initial stop", e)

    def _finish(self, reason: str, started: float, final_read: bool) -> LoopResult:
        """Halt the motors (logged), record a last sensor row with the zero targets."""
        if self.watchdog is not None:
            now = self.clock.now_ns()
            try:
                self.watchdog.halt()
                self.event(now, "stop", f"motors stopped: {reason}")
                self.result.motors_stopped = True
            except Exception as e:  # the robot may be what failed; report, do not mask
                self.event(now, "robot_error", f"stop failed ({reason}): {e}")
                self.result.stop_error = str(e) or type(e).__name__
            if final_read and self.cfg.final_read and self.sensors is not None:
                with contextlib.suppress(Exception):  # the robot may be what failed
                    self.sensors.final_step(self.emit)
            self.result.watchdog_trips = self.watchdog.trips
            self.result.refused = self.watchdog.refused
        if self.sensors is not None:
            self.sensors.detach()
        self.result.stop_reason = reason
        self.result.duration_s = time.monotonic() - started
        self.result.latency = self.latency.summary()
        return self.result

    def _reason(self, default: str) -> str:
        if self._crash is not None:
            name, error = self._crash
            return f"{name} failed: {_describe(error)}"
        return self.stop_flag.reason or default if self.stop_flag.requested else default

    def _raise_crash(self) -> None:
        if self._crash is not None:
            name, error = self._crash
            raise LoopCrashed(f"{name} failed: {error!r}") from error

    # -- threaded, wall clock ---------------------------------------------------------

    def run(self, duration_s: float | None = None) -> LoopResult:
        """Run until `duration_s`, a stop request, a failed frame-policy camera, an error
        or Ctrl-C; the motors are halted on every exit path. Raises LoopCrashed when a
        part raised in a thread (after stopping)."""
        started = time.monotonic()
        reason = "stopped"
        threads = []
        if self.sensors is not None:
            threads.append(self._thread(self._sensor_thread, "drive-sensors"))
        if self.watchdog is not None:
            threads.append(self._thread(self._watchdog_thread, "drive-watchdog"))
        try:
            self._begin()
            for t in threads:
                t.start()
            reason = self._main_thread(started, duration_s)
        except BaseException as e:
            reason = _describe(e)
            raise
        finally:
            self.stop_flag.request(reason)
            self.stop_flag.wake()
            for t in threads:
                if t.is_alive():
                    t.join(timeout=1.0)
            alive = any(t.is_alive() for t in threads)  # a read stuck in a dead link
            self._finish(reason, started, final_read=not alive)
        self._raise_crash()
        return self.result

    def _main_thread(self, started: float, duration_s: float | None) -> str:
        end = None if duration_s is None else started + duration_s
        next_status = started + self.cfg.status_interval_s
        idle_s = self.cfg.frame_poll_s if self.camera is not None else 0.02
        while True:
            if self.stop_flag.requested:
                self.stop_flag.wake()
                return self._reason("stop requested")
            now = time.monotonic()
            if end is not None and now >= end:
                return f"duration {duration_s:g} s reached"
            if self._camera_dead or not self.look():
                time.sleep(idle_s if end is None else max(0.0, min(idle_s, end - now)))
            if self.on_status is not None and now >= next_status:
                next_status += self.cfg.status_interval_s
                self.on_status(self.status_line())

    def _thread(self, body: Callable[[], None], name: str) -> threading.Thread:
        """A loop thread: an exception in it stops the run (re-raised as LoopCrashed)."""

        def guarded() -> None:
            try:
                body()
            except BaseException as e:
                if self._crash is None:
                    self._crash = (name, e)
                self.stop_flag.request(f"{name} failed: {_describe(e)}")

        return threading.Thread(target=guarded, name=name, daemon=True)

    def _sensor_thread(self) -> None:
        """Poll the robot on two fixed grids (wheels, proximity); skip ticks that passed."""
        cfg, stop = self.cfg, self.stop_flag
        wheels_ns, prox_ns = int(1e9 / cfg.sensor_hz), int(1e9 / cfg.prox_hz)
        next_w = next_p = time.monotonic_ns()
        while not stop.requested:
            delay = (min(next_w, next_p) - time.monotonic_ns()) / 1e9
            if delay > 0 and stop.wait(delay):
                break
            now = time.monotonic_ns()
            do_w, do_p = now >= next_w, now >= next_p
            ok = self.poll_robot(do_w, do_p)
            now = time.monotonic_ns()
            if do_w:
                next_w += wheels_ns * max(1, (now - next_w) // wheels_ns + 1)
            if do_p:
                next_p += prox_ns * max(1, (now - next_p) // prox_ns + 1)
            if not ok and stop.wait(cfg.robot_retry_s):
                break

    def _watchdog_thread(self) -> None:
        assert self.watchdog is not None
        while not self.stop_flag.wait(self.cfg.watchdog_period_s):
            self._check_watchdog()
        # A stop request: halt now, without waiting for the main thread's inference.
        try:
            self.watchdog.halt()
        except Exception as e:
            self.event(self.clock.now_ns(), "robot_error", f"halt failed: {e}")

    def status_line(self) -> str:
        """One line: frames, commands, watchdog trips, the policy's and the observers' say,
        wheels, latencies."""
        parts = []
        if self.camera is not None:
            parts.append(f"frames {self.result.frames}")
        if self.watchdog is not None:
            parts.append(f"cmd {self.result.commands}  watchdog {self.watchdog.trips}")
        if self.policy is not None:
            parts.append(self.policy.status())
        if self.watchdog is not None:
            lt, rt = self.watchdog.targets
            parts.append(f"wheels {lt:+d} {rt:+d}")
        parts.append(self.latency.line())
        parts.extend(o.status() for o in self.observers)
        return "  ".join(p for p in parts if p)

    # -- stepped, simulated clock -----------------------------------------------------

    def run_stepped(self, duration_s: float, command_latency_s: float = 0.0) -> LoopResult:
        """Deterministic single-threaded run on a clock that advances when waited on.

        One schedule from the start: robot polls at `sensor_hz` (proximity at
        `prox_hz`), the camera looked at `frame_poll_hz` times a second, the watchdog
        every `watchdog_period_s`; a decision reaches the wheels `command_latency_s`
        later (meanwhile the robot keeps its old command; decisions still pending at
        the end are dropped). Write errors of unthreaded observers propagate (after the
        motors stopped)."""
        if command_latency_s < 0:
            raise ValueError("need command_latency_s >= 0")
        started = time.monotonic()
        self._latency_ns = round(command_latency_s * 1e9)
        self._latency_s = command_latency_s
        periods: dict[str, float] = {}
        if self.sensors is not None:
            periods["wheels"] = 1e9 / self.cfg.sensor_hz
            periods["prox"] = 1e9 / self.cfg.prox_hz
        if self.camera is not None:
            periods["camera"] = 1e9 / self.cfg.frame_poll_hz
        if self.watchdog is not None:
            periods["watchdog"] = self.cfg.watchdog_period_s * 1e9

        def on_tick(t: int, due: frozenset[str]) -> None:
            self._apply_due(t)
            if due & {"wheels", "prox"}:
                self.poll_robot("wheels" in due, "prox" in due)
            if "camera" in due and not self._camera_dead:
                self.look()
            if "watchdog" in due:
                self._check_watchdog()

        reason = f"duration {duration_s:g} s reached"
        try:
            self._begin()
            reason = run_schedule(
                self.clock,
                duration_s,
                periods,
                on_tick,
                lambda: self.stop_flag.requested,
                lambda: self._pending[0].due_ns if self._pending else None,
            )
            reason = self._reason(reason)
        except BaseException as e:
            reason = _describe(e)
            raise
        finally:
            self._finish(reason, started, final_read=True)
        return self.result
