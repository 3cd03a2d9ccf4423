"""The sensor_msgs/Range value of each sensor kind, and the wall-clock offset's rule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from robot_ssl.core.sensor_rule import ir_equivalent
from robot_ssl.core.spec import ProxSensor, RobotSpec, load_specs
from robot_ssl.interop.export_views import (
    IMU_TOPIC,
    SCAN_BEAMS,
    SCAN_TOPIC,
    imu_messages,
    ranges_m,
    scan_beams,
    scan_messages,
    scanner_origin,
    static_transforms,
)

ROOT = Path(__file__).resolve().parents[3]


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


def test_a_scanner_cut_into_sectors_is_one_laserscan():
    """lidar_bot's 11 range sectors share the scanner's origin: one 360-beam LaserScan in
    its own frame, each beam carrying its sector's range."""
    from robot_ssl.interop import ros_types as rt

    robot, camera = load_specs(ROOT / "data" / "robots" / "lidar_bot.yaml")
    assert scanner_origin(robot) == (-0.03, 0.0)
    owner = scan_beams(robot)
    assert set(owner.tolist()) - {-1} == set(range(11))  # every sector, not the bumper
    assert np.sum(owner == 2) in (17, 18, 19) and owner[SCAN_BEAMS // 2] == 2  # 0 rad: front
    readings = np.full((2, robot.num_prox), 32767, np.int16)
    readings[:, 2] = [100, 200]
    readings[:, -1] = 0  # the bumper
    types = rt.make_typestore().types

    def header(t_ns, frame):
        stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    msgs = list(scan_messages(types, np.array([1, 2]), readings, robot, header))
    assert [m[0] for m in msgs] == [SCAN_TOPIC] * 2
    scan = msgs[1][2]
    assert scan.header.frame_id == "range_scan" and scan.ranges.shape == (SCAN_BEAMS,)
    assert scan.ranges[SCAN_BEAMS // 2] == np.float32(0.2)
    assert np.isinf(scan.ranges[0]) and scan.range_max == 0.25
    tf = static_transforms(types, header(0, "base_link"), robot, camera).transforms
    assert tf[-1].child_frame_id == "range_scan" and tf[-1].transform.translation.x == -0.03
    thymio = RobotSpec()
    assert scanner_origin(thymio) is None
    assert list(scan_messages(types, np.array([1]), np.zeros((1, 7)), thymio, header)) == []


def test_the_accelerometer_is_an_imu_message_in_base_link_axes():
    """At rest (0, 0, 22): +1 g up; a head-on bump (acc[1] < 0): a deceleration along x;
    pushed to the right (acc[0] > 0): negative y. No orientation (covariance[0] = -1)."""
    from robot_ssl.interop import ros_types as rt

    types = rt.make_typestore().types

    def header(t_ns, frame):
        stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    acc = np.array([[0, 0, 22], [0, -11, 22], [11, 0, 22]], np.int16)
    msgs = list(imu_messages(types, np.array([1, 2, 3]), acc, header))
    assert [(topic, t) for topic, t, _ in msgs] == [(IMU_TOPIC, 1), (IMU_TOPIC, 2), (IMU_TOPIC, 3)]
    a = [
        (m.linear_acceleration.x, m.linear_acceleration.y, m.linear_acceleration.z)
        for *_, m in msgs
    ]
    g = 9.80665
    np.testing.assert_allclose(a, [[0, 0, g], [-g / 2, 0, g], [0, -g / 2, g]])
    assert msgs[0][2].header.frame_id == "base_link"
    assert msgs[0][2].orientation_covariance[0] == -1.0
