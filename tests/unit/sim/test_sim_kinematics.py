"""Differential-drive kinematics against closed forms; collisions never let the body through."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.kinematics import DiffDrive, DriveParams, integrate_arc, resolve_penetration
from sim.raycast import point_distances
from sim.simulator import Simulator
from sim.world import Arena, Box, Cylinder, Wall, World

DT = 0.01
K = DriveParams().speed_m_per_unit
AXLE = DriveParams().axle_length_m


def free_drive(params: DriveParams, pose=(0.0, 0.0, 0.0)) -> DiffDrive:
    return DiffDrive(
        params, np.zeros((0, 4)), np.zeros((0, 3)), np.array(pose), np.random.default_rng(0)
    )


def run(drive: DiffDrive, left: int, right: int, seconds: float) -> None:
    drive.set_targets(left, right)
    for _ in range(round(seconds / DT)):
        drive.step(DT)


def test_straight_line_matches_closed_form():
    d = free_drive(DriveParams.ideal(), pose=(0.1, -0.2, 0.3))
    run(d, 300, 300, 2.0)
    dist = 300 * K * 2.0
    np.testing.assert_allclose(
        d.pose, [0.1 + dist * math.cos(0.3), -0.2 + dist * math.sin(0.3), 0.3], atol=1e-12
    )


def test_circle_matches_closed_form():
    d = free_drive(DriveParams.ideal())
    left, right, t = 100, 300, 3.0
    v = 0.5 * (left + right) * K
    w = (right - left) * K / AXLE
    run(d, left, right, t)
    r = v / w
    expected = [
        r * math.sin(w * t),
        r * (1 - math.cos(w * t)),
        math.atan2(math.sin(w * t), math.cos(w * t)),
    ]
    np.testing.assert_allclose(d.pose, expected, atol=1e-9)


def test_spin_in_place():
    d = free_drive(DriveParams.ideal(), pose=(0.5, 0.5, 0.0))
    run(d, -200, 200, 1.5)
    w = 400 * K / AXLE
    assert d.pose[:2] == pytest.approx([0.5, 0.5], abs=1e-12)
    assert d.pose[2] == pytest.approx(math.atan2(math.sin(w * 1.5), math.cos(w * 1.5)), abs=1e-9)


def test_arc_integration_is_exact_under_subdivision():
    pose = np.array([0.2, 0.1, -0.4])
    one = integrate_arc(pose, 0.12, 1.7, 0.5)
    many = pose
    for _ in range(50):
        many = integrate_arc(many, 0.12, 1.7, 0.01)
    np.testing.assert_allclose(one, many, atol=1e-12)


def test_targets_are_clipped_and_motor_lags():
    p = DriveParams.ideal(motor_time_constant_s=0.1)
    d = free_drive(p)
    d.set_targets(900, -900)
    assert list(d.targets) == [500, -500]
    d.set_targets(400, 400)
    for _ in range(10):  # one time constant
        d.step(DT)
    assert d.motor[0] == pytest.approx(400 * (1 - math.exp(-1.0)), rel=1e-9)


def test_measured_speed_is_noisy_int16_and_slip_moves_the_truth():
    d = free_drive(DriveParams(motor_time_constant_s=0.0))
    run(d, 300, 300, 0.5)
    meas = []
    for _ in range(200):
        d.step(DT)
        meas.append(d.measured.copy())
    meas = np.array(meas)
    assert meas.dtype == np.int16
    assert 2 < meas.std(axis=0).mean() < 30
    assert abs(meas.mean() - 300) < 5
    # Slip and per-wheel bias: the true path is not the ideal straight line.
    assert abs(d.pose[1]) > 1e-4 or abs(d.pose[2]) > 1e-4


def _odometry_error(seed: int, drive: DriveParams | None = None) -> float:
    """End-point error (m) of odometry integrated from the measured speeds after 20 s of
    driving (straight, then an arc), against the simulator's true pose."""
    from robot_ssl.core.odometry import integrate_wheel_odometry
    from robot_ssl.core.spec import RobotSpec

    sim = Simulator(
        World(arena=Arena(20.0, 20.0)),
        seed=seed,
        camera=None,
        drive=drive,
        start_pose=(-8.0, 0.0, 0.0),
    )
    t, speeds = [], []
    sim.robot.set_wheel_targets(300, 300)
    for i in range(1000):  # 20 s at 50 Hz, with one turn in the middle
        if i == 500:
            sim.robot.set_wheel_targets(150, 300)
        r = sim.robot.read()
        t.append(r.t_ns)
        speeds.append(r.wheel_speed)
        sim.clock.sleep_until_ns(r.t_ns + 20_000_000)
    poses, _ = integrate_wheel_odometry(
        np.array(t), np.array(speeds), RobotSpec(), initial_pose=np.array([-8.0, 0.0, 0.0])
    )
    return float(np.hypot(*(poses[-1, :2] - sim.truth().pose[:2])))


def test_odometry_is_exact_without_noise():
    """No slip, no lag, no measurement noise: odometry and truth agree to the int16
    quantisation of the measured speeds (0.11% of 2 m here); a wrong speed factor, axle
    length or integration scheme of even 1% fails."""
    travelled = 20 * 300 * K
    assert _odometry_error(0, DriveParams.ideal()) / travelled < 0.003


def test_odometry_drifts_realistically():
    """With the default slip and noise, odometry drifts by one to a few per cent of the
    distance (measured: 1.1-1.5% over seeds 0-3), like a Thymio's: neither exact nor absurd."""
    travelled = 20 * 300 * K
    errors = [_odometry_error(seed) for seed in range(4)]
    assert 0.005 < np.median(errors) / travelled < 0.05


@pytest.mark.parametrize("collision", ["slide", "stop"])
def test_never_passes_through_walls(collision):
    world = World(
        arena=Arena(2.0, 2.0),
        obstacles=(
            Wall(-0.5, -0.5, 0.5, -0.5, thickness_m=0.01, height_m=0.2),
            Cylinder(0.5, 0.5, 0.05, 0.2),
            Box(-0.5, 0.5, 0.2, 0.1, 0.1, yaw_rad=0.6),
        ),
    )
    geo = world.geometry()
    params = DriveParams(collision=collision)
    r = params.body_radius_m
    for start, targets in [
        ((0.0, -0.2, -math.pi / 2), (500, 500)),  # head on into the thin wall
        ((0.0, -0.2, -1.2), (500, 480)),  # at an angle
        ((0.2, 0.2, math.pi / 4), (500, 500)),  # into the cylinder
        ((-0.2, 0.2, 2.5), (500, 500)),  # into the box
        ((0.0, 0.0, 0.0), (500, 500)),  # into the arena wall
    ]:
        sim = Simulator(world, seed=1, drive=params, camera=None, start_pose=start)
        sim.robot.set_wheel_targets(*targets)
        for _ in range(3000):  # 30 s pushing
            sim.step()
            d, _ = point_distances(sim.drive.body_center(), geo.segments, geo.circles)
            assert d.min() >= r - 1e-6
        assert sim.drive.contacts > 0


def test_resolve_penetration_in_a_corner():
    segs = np.array([[0, 0, 1, 0], [0, 0, 0, 1]], float)
    c, touched, clearance = resolve_penetration(
        np.array([0.05, 0.03]), 0.08, segs, np.zeros((0, 3))
    )
    assert touched and clearance == 0.0
    assert c == pytest.approx([0.08, 0.08], abs=1e-6)
