"""The rule that turns a short-range sensor's reading into obstacle, free or unknown.

One owner for every kind (docs/robots.md, docs/labelling.md): the labeller, the label
sources and the live view call `presence`, never their own comparison.

- "ir" (raw intensity, larger = nearer): obstacle when reading > threshold (the
  labeller's `LabelConfig.threshold`), else free. Never unknown: the Thymio firmware
  reads 0 with nothing in range.
- "range" (mm: sonar, time-of-flight, a LiDAR beam or sector): obstacle when
  0 <= reading < reach (the sensor's reach in mm), free when reading >= reach (32767,
  NO_RETURN_MM, is "no return within the sensor's range"), unknown when negative
  (INVALID_MM = -1: the sensor said its reading is invalid).
- "contact" (a bumper): obstacle when 1 (any positive reading), free when 0, unknown
  when negative.
- a kind this version does not know: unknown throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_ssl.core.spec import CONTACT_REACH_M, ProxSensor, RobotSpec

__all__ = ["FREE", "INVALID_MM", "NO_RETURN_MM", "OBSTACLE", "UNKNOWN", "presence"]

OBSTACLE, FREE, UNKNOWN = 1, 0, -1
NO_RETURN_MM = 32767
"""A range sensor's reading when nothing returns within its range (int16 maximum)."""
INVALID_MM = -1
"""A range sensor's reading that the sensor flagged invalid."""


def presence(
    readings: np.ndarray,
    sensors: Sequence[ProxSensor] | RobotSpec,
    threshold: float,
    *,
    reaches_m: Sequence[float] | None = None,
) -> np.ndarray:
    """Obstacle (1), free (0) or unknown (-1), int8 (N, S), of readings (N, S), one
    column per sensor in `sensors` (see the module docstring for the rule per kind).

    `threshold`: the IR rule's (raw units). The range rule's reach per sensor:
    `reaches_m` when given, else from a RobotSpec (`RobotSpec.reach_m`), else each
    sensor's own `range_m` (a range sensor without one and without a RobotSpec takes
    RobotSpec's default `prox_range_m`).
    """
    if isinstance(sensors, RobotSpec):
        if reaches_m is None:
            reaches_m = sensors.reaches_m()
        sensors = sensors.prox_sensors
    sensors = tuple(sensors)
    r = np.asarray(readings)
    if r.ndim != 2 or r.shape[1] != len(sensors):
        raise ValueError(f"readings must be (N, {len(sensors)}), got shape {r.shape}")
    if reaches_m is None:
        reaches_m = [_own_reach_m(s) for s in sensors]
    if len(reaches_m) != len(sensors):
        raise ValueError(f"{len(reaches_m)} reaches for {len(sensors)} sensors")
    kinds = np.array([s.kind for s in sensors], dtype=object)
    is_ir = (kinds == "ir")[None, :]
    is_range = (kinds == "range")[None, :]
    is_contact = (kinds == "contact")[None, :]
    reach_mm = np.asarray(reaches_m, np.float64)[None, :] * 1000.0
    out = np.full(r.shape, UNKNOWN, np.int8)
    out = np.where(is_ir, (r > threshold).astype(np.int8), out)
    range_cell = np.where(r < 0, UNKNOWN, np.where(r < reach_mm, OBSTACLE, FREE))
    out = np.where(is_range, range_cell, out)
    contact_cell = np.where(r < 0, UNKNOWN, np.where(r > 0, OBSTACLE, FREE))
    out = np.where(is_contact, contact_cell, out)
    return out.astype(np.int8)


def _own_reach_m(sensor: ProxSensor) -> float:
    if sensor.range_m is not None:
        return float(sensor.range_m)
    if sensor.kind == "contact":
        return CONTACT_REACH_M
    return float(RobotSpec().prox_range_m)
