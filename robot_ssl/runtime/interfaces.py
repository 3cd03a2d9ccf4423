"""The parts a drive loop is made of, by shape: sensors, policy, observers.

Devices are `robot_ssl.core.devices.Robot`, `Camera` (whose `health()` the loop asks)
and `Clock`. The loop imports none of what fills these parts: the robot's sampler
(`robot_ssl.recording.sampler.RobotSampler`), the policies (wander, IR-reactive,
camera avoid: `robot_ssl.runtime.policies` adapts the controllers) and the observers
(session recording, online learner, live view) are handed to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robot_ssl.io.streams import Record

__all__ = [
    "TRIGGERS",
    "Emit",
    "Observer",
    "Perception",
    "Policy",
    "Predictor",
    "Sample",
    "Sensors",
    "Situation",
]

Emit = Callable[[Record], None]  # takes one session record

# When a policy decides: on every wheel poll, on every proximity refresh, on every new frame.
TRIGGERS = ("wheels", "proximity", "frame")


class Sample(Protocol):
    """One good robot read (robot_ssl.recording.sampler.RobotSample fits)."""

    t_ns: int  # when the reading was taken
    proximity: np.ndarray  # raw proximity values (the newest, even when not recorded)
    pose: np.ndarray  # odometry (x_m, y_m, theta_rad)
    reconnected: bool  # the first good read after a gap


class Sensors(Protocol):
    """Reads the robot and emits its session rows (robot_ssl.recording.sampler.RobotSampler).

    `targets` gives the wheel targets to record; the loop sets it to the watchdog's."""

    targets: Callable[[], tuple[int, int]]
    read_failures: int
    gaps: int

    @property
    def in_gap(self) -> bool: ...

    def attach(self) -> None: ...

    def detach(self) -> None: ...

    def step(self, emit: Emit, wheels: bool = True, proximity: bool = True) -> Sample | None: ...

    def final_step(self, emit: Emit) -> Sample | None: ...

    def failed(self, emit: Emit, error: BaseException) -> None: ...


class Predictor(Protocol):
    """A detector runtime: uint8 BGR images (B, H, W, 3) of any size -> probabilities (B, S, D)."""

    def preprocess(self, images_bgr: np.ndarray) -> np.ndarray: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Perception:
    """What a frame-triggered policy made of one frame."""

    prob: np.ndarray | None  # the detector's grid (recorded, shown to the observers)
    stages_s: dict[str, float] = field(default_factory=dict)  # wall time per latency stage


@dataclass(frozen=True)
class Situation:
    """What a policy decides from: now, the perception the command rests on, the robot's
    newest state. The watchdog refuses the command when `basis_t_ns` is stale."""

    t_ns: int  # clock time of the decision
    basis_t_ns: int  # capture time of the frame, or time of the reading, decided on
    proximity: np.ndarray | None  # newest proximity reading (None before the first)
    pose: np.ndarray | None  # odometry pose (None before the first read)
    perception: Perception | None  # the frame's (frame-triggered policies only)


class Policy(Protocol):
    """Decides wheel targets (raw units) from what the loop sampled; never touches the robot
    (every command goes through the loop's watchdog).

    `trigger` (one of TRIGGERS) says when `decide` is called; a "frame" policy's
    `perceive` runs first on each new frame. `decide` returning None sends nothing but
    notes the perception as fresh (monitoring). A policy that wants both senses (say,
    seeking contact: camera to approach, proximity to confirm) triggers on frames and
    reads `Situation.proximity`, or on proximity and keeps its last perception.
    """

    trigger: str

    def perceive(self, image_bgr: np.ndarray) -> Perception: ...

    def decide(self, situation: Situation) -> tuple[int, int] | None: ...

    def status(self) -> str: ...


class Observer(Protocol):
    """What watches the loop without ever commanding the motors: the session recording,
    learning while driving (robot_ssl.learning.online.OnlineLearning), the live view
    (robot_ssl.live.rerun_log). It subscribes to session streams by name (`streams`,
    e.g. ("odometry", "proximity"): their records, robot_ssl.io.streams.Record, come to
    `on_row`; the loop's events are "events" records) and sees every new frame with its
    prediction (None without a detector); the loop's threads call it, so it only queues
    what it gets. It may stop the run with the loop's `request_stop` (a full disk)."""

    streams: tuple[str, ...]

    def on_row(self, row: Record) -> None: ...

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray | None) -> None: ...

    def status(self) -> str: ...
