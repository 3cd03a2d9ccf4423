"""Obstacle-avoidance controllers: pure functions of perception to wheel targets (raw units).

`CameraAvoidController` drives from the detector's (sensor, distance) grid alone;
`IRReactiveController` is the classic baseline that reacts to the proximity sensors.
Both share the same steering law so that a comparison measures perception only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AvoidConfig:
    """Steering law parameters; speeds in raw wheel units, distances in metres."""

    cruise_speed: int = 200
    turn_speed: int = 150
    stop_distance_m: float = 0.06  # closer than this (ahead of the sensors): turn in place
    slow_distance_m: float = 0.20  # start slowing down below this
    threshold: float = 0.5  # probability above which a cell counts as an obstacle
    min_turn_s: float = 0.6  # keep turning at least this long once started (no dithering)

    def __post_init__(self) -> None:
        if not 0 <= self.stop_distance_m < self.slow_distance_m:
            raise ValueError("need 0 <= stop_distance_m < slow_distance_m")


class _SteeringLaw:
    """Turns per-sensor clearances (left to right) into wheel targets with turn hysteresis."""

    def __init__(self, cfg: AvoidConfig) -> None:
        self.cfg = cfg
        self._turning_until_ns = -1
        self._turn_dir = 1  # +1 = turn left (counter-clockwise)

    def command(self, clearance_m: np.ndarray, t_ns: int) -> tuple[int, int]:
        cfg = self.cfg
        n = clearance_m.size
        left = float(clearance_m[: n // 2].min())
        right = float(clearance_m[(n + 1) // 2 :].min())
        ahead = float(clearance_m[max(n // 2 - 1, 0) : n // 2 + 2].min())
        if t_ns < self._turning_until_ns or ahead < cfg.stop_distance_m:
            if t_ns >= self._turning_until_ns:
                self._turn_dir = 1 if left >= right else -1
                self._turning_until_ns = t_ns + int(cfg.min_turn_s * 1e9)
            s = cfg.turn_speed * self._turn_dir
            return -s, s
        span = cfg.slow_distance_m - cfg.stop_distance_m
        speed = cfg.cruise_speed * float(np.clip((ahead - cfg.stop_distance_m) / span, 0.25, 1.0))
        # steer away from the nearer side, harder when it is close
        bias = np.clip((left - right) / cfg.slow_distance_m, -1.0, 1.0)
        turn = 0.5 * speed * bias if min(left, right) < cfg.slow_distance_m else 0.0
        return round(speed - turn), round(speed + turn)


class CameraAvoidController:
    """Camera-only avoidance from predicted obstacle probabilities (S sensors x D distances)."""

    def __init__(self, distances_m: np.ndarray, cfg: AvoidConfig | None = None) -> None:
        self.cfg = cfg or AvoidConfig()
        self.distances_m = np.asarray(distances_m, dtype=np.float64)
        self._law = _SteeringLaw(self.cfg)

    def clearance(self, prob: np.ndarray) -> np.ndarray:
        """Per sensor, the nearest distance whose probability exceeds the threshold (inf: none)."""
        hit = np.asarray(prob) > self.cfg.threshold
        first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        return np.where(first >= 0, self.distances_m[np.maximum(first, 0)], np.inf)

    def command(self, prob: np.ndarray, t_ns: int) -> tuple[int, int]:
        return self._law.command(self.clearance(prob), t_ns)


def ir_distance_m(
    proximity: np.ndarray, m: float = 4505.0, x0_cm: float = 0.03, c: float = 73.0
) -> np.ndarray:
    """Invert the IR response F(x) = m(c - x0^2)/(x^2 - 2 x0 x + c) (x in cm) to metres.

    Zero readings (nothing in range) give inf. Defaults are the Thymio/Enki model in
    DESIGN.md; real sensors depend on surface colour, so treat the result as rough.
    """
    f = np.asarray(proximity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = x0_cm**2 - c + m * (c - x0_cm**2) / f
        x_cm = x0_cm + np.sqrt(np.maximum(disc, 0.0))
    return np.where(f > 0, x_cm / 100.0, np.inf)


class IRReactiveController:
    """Baseline: the same steering law on distances read from the front IR sensors."""

    def __init__(
        self, cfg: AvoidConfig | None = None, front_indices: tuple[int, ...] = (0, 1, 2, 3, 4)
    ) -> None:
        self.cfg = cfg or AvoidConfig()
        self.front_indices = front_indices
        self._law = _SteeringLaw(self.cfg)

    def clearance(self, proximity: np.ndarray) -> np.ndarray:
        """Distance per front sensor from the inverted IR model (inf: nothing in range)."""
        return ir_distance_m(np.asarray(proximity)[list(self.front_indices)])

    def command(self, proximity: np.ndarray, t_ns: int) -> tuple[int, int]:
        return self._law.command(self.clearance(proximity), t_ns)
