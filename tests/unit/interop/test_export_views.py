"""The sensor_msgs/Range value of each sensor kind, and the wall-clock offset's rule."""

from __future__ import annotations

import math

import numpy as np

from robot_ssl.core.sensor_rule import ir_equivalent
from robot_ssl.core.spec import ProxSensor, RobotSpec
from robot_ssl.interop.export_views import ranges_m


def _robot() -> RobotSpec:
    return RobotSpec(
        prox_sensors=(
            ProxSensor("scan", 0.0, 0.0, 0.0, kind="range", fov_rad=0.3, range_m=0.25),
            ProxSensor("bumper", 0.1, 0.0, 0.0, kind="contact", fov_rad=math.pi),
            ProxSensor("ir", 0.06, 0.0, 0.0),
        ),
        front_sensor_indices=(0, 2),
    )


def test_range_kind_is_metres_no_return_inf_invalid_nan():
    r = ranges_m(np.array([[250, 0, 0], [32767, 1, 0], [-1, 0, 0]], np.int16), _robot())
    assert r.dtype == np.float32 and r.shape == (3, 3)
    assert r[0, 0] == np.float32(0.25) and r[1, 0] == np.inf and np.isnan(r[2, 0])


def test_contact_kind_is_rep117_minus_inf_pressed():
    r = ranges_m(np.array([[0, 1, 0], [0, 0, 0]], np.int16), _robot())
    assert r[0, 1] == -np.inf and r[1, 1] == np.inf


def test_ir_kind_inverts_the_thymio_curve():
    """An IR reading maps to the distance at which the curve of sensor_rule gives it back
    (a range sensor on the outline at that distance reads the same IR equivalent)."""
    robot = _robot()
    readings = np.array([[0, 0, v] for v in (0, 500, 1500, 3000, 4505)], np.int16)
    r = ranges_m(readings, robot)[:, 2]
    assert r[0] == np.inf and np.all(np.diff(r[1:]) < 0)  # closer as the reading grows
    sensor = ProxSensor("x", 0.08, 0.0, 0.0, kind="range", range_m=0.5)  # on the outline
    as_range = RobotSpec(prox_sensors=(sensor,), front_sensor_indices=(0,))
    back = ir_equivalent(np.round(r[1:, None] * 1000).astype(np.int16), as_range)[:, 0]
    np.testing.assert_allclose(back, readings[1:, 2], atol=40)
