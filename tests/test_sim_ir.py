"""Proximity sensors: Enki's response curve at known distances, range limit, noise, truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.ir import IRParams, IRSensors, ir_response
from sim.simulator import Simulator
from sim.world import Arena, Box, Surface, World


def enki(x_cm: float) -> float:
    m, x0, c = 4505.0, 0.03, 73.0
    if x_cm < x0:
        return m
    if x_cm > 14.0:
        return 0.0
    return m * (c - x0 * x0) / (x_cm * x_cm - 2 * x0 * x_cm + c)


def sensors(world: World, **kw) -> IRSensors:
    g = world.geometry()
    return IRSensors(
        IRParams(**kw), g.segments, g.segments_height_m, g.segments_reflectance,
        g.circles, g.circle_height_m, g.circle_reflectance,
    )  # fmt: skip


def test_response_function_matches_the_model():
    for x_cm in [0.0, 0.02, 0.5, 1, 2, 4, 6, 8, 10, 12, 13.9, 14.0, 14.01, 20, 100]:
        assert ir_response(x_cm / 100) == pytest.approx(enki(x_cm), rel=1e-12)
    assert ir_response(0.15) == 0.0


# A wall at x = 0.5 (the arena's east wall); the robot faces it.
WALL_WORLD = World(arena=Arena(1.0, 1.0, surface=Surface(ir_reflectance=1.0)))


@pytest.mark.parametrize("d_cm", [0.5, 1, 2, 3, 5, 7, 9, 11, 13, 13.9])
def test_front_sensor_reads_the_curve_facing_a_wall(d_cm):
    ir = sensors(WALL_WORLD, noise_std=0.0)
    x_sensor = 0.08  # front centre sensor, 8 cm ahead of the axle
    pose = np.array([0.5 - d_cm / 100 - x_sensor, 0.0, 0.0])
    values = ir.values(pose)
    assert values.dtype == np.int16
    assert values[2] == round(enki(d_cm))
    assert values[5] == values[6] == 0  # rear sensors see nothing


@pytest.mark.parametrize("d_cm", [14.5, 20, 40])
def test_zero_beyond_the_range(d_cm):
    ir = sensors(WALL_WORLD, noise_std=3.0)
    pose = np.array([0.5 - d_cm / 100 - 0.08, 0.0, 0.0])
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert ir.values(pose, rng)[2] == 0  # nothing in range: exactly 0, noise or not


def test_angled_sensor_and_reflectance():
    dark = World(arena=Arena(1.0, 1.0, surface=Surface(ir_reflectance=0.5)))
    ir_white, ir_dark = sensors(WALL_WORLD, noise_std=0.0), sensors(dark, noise_std=0.0)
    pose = np.array([0.5 - 0.05 - 0.08, 0.0, 0.0])
    assert ir_dark.values(pose)[2] == round(0.5 * enki(5.0))
    # Rotate so that sensor 1 (19 deg left) faces the wall squarely at 4 cm.
    x, y, th = 0.0756, 0.0261, math.radians(19)
    pose = np.array([0.0, 0.0, -th])
    c, s = math.cos(-th), math.sin(-th)
    sx = pose[0] + c * x - s * y
    pose[0] += 0.5 - 0.04 - sx
    assert ir_white.values(pose)[1] == round(enki(4.0))


def test_noise_level_and_low_obstacles_unseen():
    ir = sensors(WALL_WORLD, noise_std=3.0)
    pose = np.array([0.5 - 0.06 - 0.08, 0.0, 0.0])
    rng = np.random.default_rng(1)
    v = np.array([ir.values(pose, rng)[2] for _ in range(2000)], float)
    assert v.mean() == pytest.approx(enki(6.0), abs=0.5)
    assert v.std() == pytest.approx(3.0, rel=0.1)
    low = World(arena=Arena(3.0, 3.0), obstacles=(Box(0.2, 0.0, 0.1, 0.3, 0.02),))
    pose = np.array([0.2 - 0.05 - 0.04 - 0.08, 0.0, 0.0])  # 4 cm from a 2 cm high box
    assert sensors(low, noise_std=0.0).values(pose)[2] == 0
    tall = World(arena=Arena(3.0, 3.0), obstacles=(Box(0.2, 0.0, 0.1, 0.3, 0.1),))
    assert sensors(tall, noise_std=0.0).values(pose)[2] == round(enki(4.0))


def test_true_distances_along_the_axes():
    ir = sensors(WALL_WORLD)
    pose = np.array([0.1, 0.0, 0.0])
    d = ir.true_distances(pose)
    assert d[2] == pytest.approx(0.5 - 0.18)
    assert d[5] == pytest.approx(0.1 + 0.5 - 0.03)  # rear sensors look at the west wall
    assert d[0] == pytest.approx((0.5 - 0.1 - 0.063) / math.cos(math.radians(38)))


def test_proximity_updates_at_10_hz_in_the_simulator():
    sim = Simulator(WALL_WORLD, seed=0, camera=None, start_pose=(0.3, 0.0, 0.0))
    sim.robot.set_wheel_targets(-100, -100)  # back away slowly: readings change
    changes = []
    last = sim.robot.read().proximity
    for _ in range(100):  # 1 s
        sim.step()
        r = sim.robot.read()
        if not np.array_equal(r.proximity, last):
            changes.append(r.t_ns)
        last = r.proximity
    assert len(changes) >= 5
    assert all(t % 100_000_000 == 0 for t in changes)
