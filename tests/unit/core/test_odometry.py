import numpy as np
import pytest

from robot_ssl.core.geometry import wrap_angle
from robot_ssl.core.odometry import OdometryIntegrator, integrate_wheel_odometry
from robot_ssl.core.spec import RobotSpec

ROBOT = RobotSpec()
rng = np.random.default_rng(1)


def irregular_times(seconds: float, rate_hz: float) -> np.ndarray:
    dt = rng.uniform(0.5, 1.5, int(seconds * rate_hz)) / rate_hz
    return np.round(np.cumsum(np.concatenate([[0.0], dt])) * 1e9).astype(np.int64)


def test_straight_line_closed_form():
    t = irregular_times(10, 100)
    speed = np.full((t.size, 2), 200)
    poses, gaps = integrate_wheel_odometry(t, speed, ROBOT)
    v = 200 * ROBOT.speed_m_per_unit
    assert not gaps
    assert np.allclose(poses[:, 0], v * (t - t[0]) / 1e9, atol=1e-12)
    assert np.allclose(poses[:, 1:], 0, atol=1e-12)


def test_circle_closed_form():
    t = irregular_times(20, 50)
    left, right = 100, 300
    speed = np.tile([left, right], (t.size, 1))
    poses, _ = integrate_wheel_odometry(t, speed, ROBOT)
    vl, vr = left * ROBOT.speed_m_per_unit, right * ROBOT.speed_m_per_unit
    v, w = (vl + vr) / 2, (vr - vl) / ROBOT.axle_length_m
    r = v / w
    th = w * (t - t[0]) / 1e9
    assert np.allclose(poses[:, 0], r * np.sin(th), atol=1e-9)
    assert np.allclose(poses[:, 1], r * (1 - np.cos(th)), atol=1e-9)
    assert np.allclose(wrap_angle(poses[:, 2] - th), 0, atol=1e-9)


def test_spin_in_place():
    t = irregular_times(5, 100)
    speed = np.tile([-150, 150], (t.size, 1))
    poses, _ = integrate_wheel_odometry(t, speed, ROBOT)
    w = 2 * 150 * ROBOT.speed_m_per_unit / ROBOT.axle_length_m
    assert np.allclose(poses[:, :2], 0, atol=1e-12)
    assert np.allclose(wrap_angle(poses[:, 2] - w * (t - t[0]) / 1e9), 0, atol=1e-9)


def test_gaps_are_not_integrated_and_reported():
    t = np.array([0, 10, 20, 2_000, 2_010], dtype=np.int64) * 1_000_000
    speed = np.full((5, 2), 300)
    poses, gaps = integrate_wheel_odometry(t, speed, ROBOT, max_gap_ns=500_000_000)
    v = 300 * ROBOT.speed_m_per_unit
    assert [(g.start_ns, g.end_ns) for g in gaps] == [(20_000_000, 2_000_000_000)]
    assert poses[3, 0] == pytest.approx(poses[2, 0])
    assert poses[4, 0] - poses[3, 0] == pytest.approx(v * 0.01)


def test_incremental_matches_batch():
    t = irregular_times(3, 50)
    speed = rng.integers(-300, 300, (t.size, 2))
    batch, _ = integrate_wheel_odometry(t, speed, ROBOT)
    odo = OdometryIntegrator(ROBOT)
    live = np.array([odo.update(int(a), b)[0] for a, b in zip(t, speed)])
    assert np.allclose(live, batch, atol=1e-9)


def test_rejects_non_increasing_time():
    with pytest.raises(ValueError):
        integrate_wheel_odometry(np.array([0, 5, 5]), np.zeros((3, 2)), ROBOT)
