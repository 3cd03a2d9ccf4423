"""Onboard inference loop: capture, preprocess, infer, act; with a motor watchdog.

`LiveLoop` is the drive loop (robot_ssl.runtime.loop.DriveLoop) with a camera policy
(the detector, then the camera-avoid controller in "avoid" mode, nothing in "monitor"
mode), the robot's sampler, a `SessionRecording` observer when given a writer, and
the caller's observers (learning while driving, the live view). `run()` is threaded
on the wall clock (a real robot), `run_stepped()` deterministic on a simulated clock
with the capture-to-command latency modelled in simulated time. The IR-only baseline
is the same loop with a proximity policy (robot_ssl.simlink.closed_loop).

Watchdog semantics (robot_ssl.runtime.watchdog): every wheel command goes through the
`Watchdog`, which refuses a command whose perception basis (the frame's capture time)
is older than `max_staleness_s`, and stops the motors when the basis of the newest
command gets older than that (camera stalled, inference stalled). It checks every
`watchdog_period_s`, so the motors stop at most `max_staleness_s + watchdog_period_s`
(default 0.15 + 0.02 s) after the capture of the last frame that drove them. A stop
request (`request_stop`, e.g. from a SIGINT handler) halts the motors within one
watchdog period from the watchdog thread, even while inference is busy, and every
exit path (end of run, exception, KeyboardInterrupt) halts them.

Latency stages (milliseconds, robot_ssl.runtime.latency): `capture` is the frame's age
when the loop picked it up, `preprocess` and `inference` the wall time of the two
predictor halves, `command` the wall time of the controller and the wheel command,
`end_to_end` capture to command sent (threaded: age + the three others; stepped: age +
the modelled latency, i.e. what the physics saw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from robot_ssl.core.config import bounded, check_bounds
from robot_ssl.core.devices import Camera, Clock, Robot, WallClock
from robot_ssl.core.errors import ConfigError
from robot_ssl.core.odometry import OdometryIntegrator
from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.session import SessionWriter
from robot_ssl.live.controllers import CameraAvoidController
from robot_ssl.recording.recorder import RecorderConfig, SessionRecording
from robot_ssl.recording.sampler import RobotSampler, TruthSource
from robot_ssl.runtime.interfaces import Observer, Predictor
from robot_ssl.runtime.loop import DriveLoop, LoopConfig, LoopResult
from robot_ssl.runtime.policies import CameraPolicy

__all__ = ["LiveConfig", "LiveLoop", "LiveResult"]

LiveResult = LoopResult  # what `run` and `replay --live` report


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
    # the loop's threads on the real-time round-robin policy at this priority when the OS
    # allows (0: normal priority): robot_ssl.runtime.priority, docs/live.md
    realtime_priority: int = bounded(1, 0, 99)

    def __post_init__(self) -> None:
        check_bounds(self, "live config", ConfigError)
        if self.drive not in ("monitor", "avoid"):
            raise ConfigError(
                f"live config.drive: must be 'monitor' or 'avoid', not {self.drive!r}"
            )
        if self.max_staleness_s + self.watchdog_period_s > 0.2:
            raise ConfigError("live config: the watchdog must react within 200 ms")


class LiveLoop(DriveLoop):
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
        truth: TruthSource | Any = None,
        on_status: Any = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        cfg = config or LiveConfig()
        clock = clock or WallClock()
        self.controller = controller or CameraAvoidController(
            distances_m, sensor_range_m=(robot_spec or RobotSpec()).prox_range_m
        )
        self.camera_policy = CameraPolicy(predictor, self.controller, drive=cfg.drive == "avoid")
        self.recording: SessionRecording | None = None
        if writer is not None:
            self.recording = SessionRecording(
                writer, clock, self.request_stop, RecorderConfig(status=False)
            )
        spec = robot_spec or (writer.robot if writer is not None else RobotSpec())
        truth = truth if writer is not None and "truth" in writer.counts else None
        sensors = RobotSampler(robot, OdometryIntegrator(spec), clock, truth=truth)
        recording = [self.recording] if self.recording is not None else []
        super().__init__(
            clock,
            robot=robot,
            sensors=sensors,
            camera=camera,
            policy=self.camera_policy,
            observers=[*recording, *observers],
            config=LoopConfig(
                sensor_hz=cfg.sensor_hz,
                prox_hz=cfg.sensor_hz / cfg.prox_every,
                max_staleness_s=cfg.max_staleness_s,
                watchdog_period_s=cfg.watchdog_period_s,
                frame_poll_s=cfg.frame_poll_s,
                health_interval_s=cfg.health_interval_s,
                status_interval_s=cfg.status_interval_s,
            ),
            on_status=on_status,
        )

    @property
    def last_clearance_m(self) -> np.ndarray | None:
        """Per sensor, the distance to the obstacle the newest grid shows (inf: none)."""
        return self.camera_policy.last_clearance_m

    def run(self, duration_s: float | None = None) -> LiveResult:
        """Run until `duration_s`, request_stop(), a failed camera, an error or Ctrl-C;
        the motors are halted on every exit path; a write error is raised after."""
        if self.recording is not None:
            self.recording.start(threaded=True)
        try:
            return super().run(duration_s)
        finally:
            self._close_recording()

    def run_stepped(
        self, duration_s: float, poll_hz: float = 100.0, command_latency_s: float = 0.0
    ) -> LiveResult:
        """Deterministic single-threaded loop on a clock that advances when waited on.

        The camera is looked at `poll_hz` times a second (default 100, the simulator's
        physics rate: a camera whose frames arrive with jitter is then seen as the
        threaded loop sees it, each new frame once, soon after it arrives), sensors at
        `sensor_hz`, the watchdog every `watchdog_period_s`; a frame's command reaches the
        wheels `command_latency_s` after the loop got the frame.
        """
        if poll_hz <= 0:
            raise ValueError("need poll_hz > 0")
        self.cfg = replace(self.cfg, frame_poll_hz=poll_hz)
        if self.recording is not None:
            self.recording.start(threaded=False)
        try:
            return super().run_stepped(duration_s, command_latency_s)
        finally:
            self._close_recording()

    def _close_recording(self) -> None:
        if self.recording is not None:
            self.recording.finish()
            if self.recording.error is not None:
                raise self.recording.error
