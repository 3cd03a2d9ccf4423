"""Wander controller for data collection: proximity readings + time -> wheel targets.

It reproduces the paper's data collection: drive straight at a speed drawn per
leg, keep going while the obstacle is still far, stop when the front sensors read
"close" (a threshold drawn per leg, so it stops at varied distances), back off a
little, spin in place by a random angle (away from the obstacle more often than
not), and drive again. Straight legs give the long straight approaches the
self-supervised labels need; random turn angles make the robot meet obstacles
head on and at angles. Some legs are gentle arcs. Every state has a timeout, so
the robot never stays stuck (against something the sensors cannot see, say).

Pure: no clock, no robot, no I/O; deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_ssl.core.config import check_field_types
from robot_ssl.core.sensor_rule import ir_equivalent
from robot_ssl.core.spec import RobotSpec
from robot_ssl.recording.recorder import RecorderError

__all__ = ["KindAwareWander", "WanderConfig", "WanderController", "wander_controller"]


@dataclass(frozen=True)
class WanderConfig:
    """Speeds in raw wheel units, thresholds in raw proximity units, durations in seconds."""

    cruise_speed: tuple[int, int] = (120, 400)
    stop_threshold: tuple[int, int] = (1800, 3800)  # front reading that ends a leg (~10..3 cm)
    back_speed: int = 150
    back_duration_s: tuple[float, float] = (0.2, 0.8)
    rear_stop_threshold: int = 1500  # stop backing when a rear sensor reads this
    turn_speed: tuple[int, int] = (120, 300)
    turn_angle_rad: tuple[float, float] = (0.35, math.pi)
    turn_away_probability: float = 0.75  # turn away from the side that reads closer
    arc_probability: float = 0.15  # share of legs that are gentle arcs instead of straight
    arc_max_ratio: float = 0.12  # max (right - left) / (right + left) on arcs
    pause_s: tuple[float, float] = (0.0, 0.4)  # standstill between manoeuvres
    max_leg_s: float = 15.0  # a leg that never meets anything ends anyway
    stall_reading: int = 700  # a front reading this high that stops rising...
    stall_s: float = 1.0  # ...for this long means "blocked" (dark obstacle, sliding contact)
    front_sensors: tuple[int, ...] = (0, 1, 2, 3, 4)
    rear_sensors: tuple[int, ...] = (5, 6)
    axle_length_m: float = 0.0935  # to turn spins into angles
    speed_m_per_unit: float = 0.000332

    def __post_init__(self) -> None:
        check_field_types(self, "wander", RecorderError)
        for name in ("cruise_speed", "stop_threshold", "turn_speed"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise RecorderError(f"wander: {name} must be (low, high) with 0 < low <= high")
        if self.axle_length_m <= 0 or self.speed_m_per_unit <= 0:
            raise RecorderError("wander: axle_length_m and speed_m_per_unit must be > 0")


class WanderController:
    """A small state machine: FORWARD -> (PAUSE) -> BACK -> TURN -> (PAUSE) -> FORWARD."""

    FORWARD, BACK, TURN, PAUSE = "forward", "back", "turn", "pause"

    def __init__(self, config: WanderConfig | None = None, seed: int = 0) -> None:
        self.config = config or WanderConfig()
        self.rng = np.random.default_rng([int(seed), 0x3A4D])
        self.state = self.PAUSE
        self._state_end_ns: int | None = None
        self._after_pause = self.FORWARD
        self._targets = (0, 0)
        self._threshold = 0
        self._turn_sign = 1
        self._pending_prox = np.zeros(0, np.int16)
        self._peak, self._peak_ns = 0, 0
        self.legs = 0  # forward legs started
        self.stops = 0  # legs ended by an obstacle

    def _u(self, r: tuple[float, float]) -> float:
        return float(self.rng.uniform(r[0], r[1]))

    def _start(self, state: str, t_ns: int, duration_s: float, targets: tuple[int, int]) -> None:
        self.state = state
        self._state_end_ns = t_ns + int(duration_s * 1e9)
        self._targets = targets

    def _start_forward(self, t_ns: int) -> None:
        c = self.config
        speed = round(self._u(c.cruise_speed))
        left = right = speed
        if self.rng.random() < c.arc_probability:
            k = self._u((-c.arc_max_ratio, c.arc_max_ratio))
            left, right = round(speed * (1 - k)), round(speed * (1 + k))
        self._threshold = round(self._u(c.stop_threshold))
        self._peak, self._peak_ns = 0, t_ns
        self.legs += 1
        self._start(self.FORWARD, t_ns, c.max_leg_s, (left, right))

    def _start_back(self, t_ns: int, proximity: np.ndarray) -> None:
        c = self.config
        front = proximity[list(c.front_sensors)].astype(float)
        # Which side is closer: weights +1 (leftmost front sensor) .. -1 (rightmost).
        w = np.linspace(1.0, -1.0, len(front))
        side = float((front * w).sum())  # > 0: obstacle more on the left
        away = -1 if side > 0 else 1  # turn right (-1) when the obstacle is on the left
        if self.rng.random() > c.turn_away_probability:
            away = -away
        self._turn_sign = away
        self._start(self.BACK, t_ns, self._u(c.back_duration_s), (-c.back_speed, -c.back_speed))

    def _start_turn(self, t_ns: int) -> None:
        c = self.config
        speed = round(self._u(c.turn_speed))
        angle = self._u(c.turn_angle_rad)
        omega = 2 * speed * c.speed_m_per_unit / c.axle_length_m
        s = self._turn_sign
        self._start(self.TURN, t_ns, angle / omega, (-s * speed, s * speed))

    def _start_pause(self, t_ns: int, then: str) -> None:
        self._after_pause = then
        self._start(self.PAUSE, t_ns, self._u(self.config.pause_s), (0, 0))

    def command(self, proximity: np.ndarray, t_ns: int) -> tuple[int, int]:
        """Wheel targets (left, right) in raw units for the readings at t_ns."""
        prox = np.asarray(proximity)
        c = self.config
        t_ns = int(t_ns)
        if self._state_end_ns is None:
            self._start_pause(t_ns, self.FORWARD)
        expired = t_ns >= (self._state_end_ns or 0)
        front_max = int(prox[list(c.front_sensors)].max()) if len(prox) else 0
        if self.state == self.FORWARD:
            if front_max > self._peak * 1.02 + 5:
                self._peak, self._peak_ns = front_max, t_ns
            stalled = front_max >= c.stall_reading and t_ns - self._peak_ns > c.stall_s * 1e9
            if front_max >= self._threshold or stalled:
                self.stops += 1
                self._start_pause(t_ns, self.BACK)
                self._pending_prox = prox.copy()
            elif expired:
                self._turn_sign = 1 if self.rng.random() < 0.5 else -1
                self._start_turn(t_ns)
        elif self.state == self.PAUSE:
            if expired:
                if self._after_pause == self.BACK:
                    self._start_back(t_ns, self._pending_prox if self._pending_prox.size else prox)
                else:
                    self._start_forward(t_ns)
        elif self.state == self.BACK:
            rear = int(prox[list(c.rear_sensors)].max()) if c.rear_sensors else 0
            if expired or rear >= c.rear_stop_threshold:
                self._start_turn(t_ns)
        elif self.state == self.TURN and expired:
            self._start_pause(t_ns, self.FORWARD)
        return self._targets

    update = command  # alias: (proximity, t_ns) -> targets


class KindAwareWander(WanderController):
    """The wander controller on a robot with other sensors than IR: each reading is
    first turned into what an IR sensor would read at that distance
    (robot_ssl.core.sensor_rule.ir_equivalent), so the IR-tuned thresholds apply."""

    def __init__(self, config: WanderConfig, seed: int, robot: RobotSpec) -> None:
        super().__init__(config, seed=seed)
        self.robot = robot
        self._last: tuple[bytes, np.ndarray] | None = None  # readings refresh at ~10 Hz

    def command(self, proximity: np.ndarray, t_ns: int) -> tuple[int, int]:
        prox = np.asarray(proximity)
        if prox.size == self.robot.num_prox:
            key = prox.tobytes()
            if self._last is None or self._last[0] != key:
                self._last = (key, ir_equivalent(prox.reshape(1, -1), self.robot)[0])
            prox = self._last[1]
        return super().command(prox, t_ns)

    update = command


def wander_controller(robot: RobotSpec, seed: int) -> WanderController:
    """The wander controller fitted to the robot's sensors and geometry."""
    front = tuple(robot.front_sensor_indices)
    config = WanderConfig(
        front_sensors=front,
        rear_sensors=tuple(i for i in range(robot.num_prox) if i not in front),
        axle_length_m=robot.axle_length_m,
        speed_m_per_unit=robot.speed_m_per_unit,
    )
    if all(kind == "ir" for kind in robot.kinds):
        return WanderController(config, seed=seed)
    return KindAwareWander(config, seed, robot)
