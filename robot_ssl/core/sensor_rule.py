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

__all__ = [
    "FREE",
    "INVALID_MM",
    "NO_RETURN_MM",
    "OBSTACLE",
    "UNKNOWN",
    "body_insets_m",
    "ir_equivalent",
    "presence",
]

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


# The Thymio II's IR response curve (Enki's: x in cm; sim.ir mirrors it):
# F(x) = m (c - x0^2) / (x^2 - 2 x0 x + c), m below x0.
_CURVE_X0_CM = 0.03
_CURVE_C_CM2 = 73.0


def ir_equivalent(readings: np.ndarray, robot: RobotSpec) -> np.ndarray:
    """Readings (N, S) of any kind as IR-like closeness (N, S) int16 in [0, prox_max]:
    what a Thymio IR sensor would read at the same distance, so that controllers tuned
    on IR readings (the wander drive's stop thresholds) drive a robot of any sensors.

    IR: the reading itself; range: the Thymio curve at the distance left between the
    body's outline and the return (a Thymio's IR sensors sit on its outline; a LiDAR
    sits inside the body: `body_insets_m`) when it is a return within the sensor's
    reach, else 0 (no return, invalid); contact: prox_max when pressed, else 0; an
    unknown kind: 0.
    """
    r = np.asarray(readings)
    m = float(robot.prox_max)
    kinds = np.array(robot.kinds, dtype=object)[None, :]
    reach_mm = np.asarray(robot.reaches_m(), np.float64)[None, :] * 1000.0
    inset_mm = body_insets_m(robot)[None, :] * 1000.0
    x_cm = np.maximum(r.astype(np.float64) - inset_mm, 0.0) / 10.0
    curve = (
        m
        * (_CURVE_C_CM2 - _CURVE_X0_CM**2)
        / (x_cm * x_cm - 2.0 * _CURVE_X0_CM * x_cm + _CURVE_C_CM2)
    )
    curve = np.where(x_cm < _CURVE_X0_CM, m, curve)
    range_value = np.where((r >= 0) & (r < reach_mm), curve, 0.0)
    out = np.where(kinds == "ir", r, 0.0)
    out = np.where(kinds == "range", range_value, out)
    out = np.where(kinds == "contact", np.where(r > 0, m, 0.0), out)
    return np.clip(np.rint(out), 0, m).astype(np.int16)


def body_insets_m(robot: RobotSpec) -> np.ndarray:
    """Per sensor (S,), how far its axis runs inside the body's disc (radius
    `body_radius_m` about the axle midpoint) before leaving it: 0 for a sensor on or
    outside the outline (a Thymio's IR), ~body radius for a scanner at the centre."""
    poses = np.asarray(robot.prox_poses(), np.float64)
    p, th = poses[:, :2], poses[:, 2]
    u = np.stack([np.cos(th), np.sin(th)], axis=1)
    pu = (p * u).sum(axis=1)
    disc = pu * pu - (p * p).sum(axis=1) + robot.body_radius_m**2
    return np.maximum(-pu + np.sqrt(np.maximum(disc, 0.0)), 0.0)
