"""The simulator simulates whatever sensors a robot description lists (sim_params): the
LiDAR robot's 360 beams in sectors and its bumper, its truth, fast enough to record."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_ssl.core.spec import RobotSpec, load_specs
from robot_ssl.simlink.closed_loop import OraclePredictor, closed_loop_trial
from robot_ssl.simlink.simulator import SimCommandError, make_simulator, sim_params
from sim.range_sensors import NO_RETURN_MM
from sim.world import Arena, World
from tests.paths import REPO


def test_the_lidar_robot_simulates_every_sensor_it_lists_quickly():
    robot, camera = load_specs(REPO / "data" / "robots" / "lidar_bot.yaml")
    _, ir, _ = sim_params(robot, camera)
    assert ir.kinds == robot.kinds and ir.reach_m == robot.reaches_m()
    world = World(arena=Arena(1.0, 1.0))
    sim = make_simulator(world, camera=False, robot_spec=robot, start_pose=(0.0, 0.0, 0.0))
    assert sim.ir._others.num_rays == 360 + 180  # LiDAR beams + the bumper's arc
    reading = sim.ir.values(sim.pose)
    assert reading.shape == (robot.num_prox,)
    # the 1 m arena's walls are 0.5 m from the centre, beyond the 0.25 m reach
    assert (reading[:11] == NO_RETURN_MM).all() and reading[11] == 0
    truth = sim.ir.sensed_distances(sim.pose)
    assert truth[2] == pytest.approx(0.53, rel=1e-4)  # scanner 3 cm behind, beams +-0.5 deg
    poses = np.column_stack([np.linspace(-0.3, 0.3, 500), np.zeros(500), np.zeros(500)])
    start = time.perf_counter()
    values = sim.ir.values_at(poses)
    elapsed = time.perf_counter() - start
    front = values[:, 2]
    gap = 0.53 - poses[:, 0]  # the scanner's distance to the front wall
    assert (front[gap < 0.248] < NO_RETURN_MM).all() and (front[gap > 0.252] == NO_RETURN_MM).all()
    np.testing.assert_allclose(front[gap < 0.248], gap[gap < 0.248] * 1000, atol=0.6)
    assert elapsed < 2.0  # 500 poses x 540 rays


def test_the_thymio_ring_stays_all_ir():
    _, ir, _ = sim_params(*load_specs(REPO / "data" / "robots" / "thymio.yaml"))
    assert ir.kinds == () and not ir.mixed and ir.num_sensors == 7


def test_a_spec_naming_an_unknown_kind_cannot_be_simulated():
    d = RobotSpec().to_dict()
    d["prox_sensors"][0]["kind"] = "radar"
    robot = RobotSpec.from_dict(d, keep_unknown_kinds=True)
    with pytest.raises(
        SimCommandError, match="cannot simulate sensor 'front_left': unknown kind 'radar'"
    ):
        sim_params(robot, load_specs(REPO / "data" / "robots" / "thymio.yaml")[1])


def test_closed_loop_runs_the_lidar_robot_with_its_oracle_and_ir_baseline():
    robot, camera = load_specs(REPO / "data" / "robots" / "lidar_bot.yaml")
    world = World(arena=Arena(1.0, 1.0))
    sim = make_simulator(world, camera=False, robot_spec=robot, start_pose=(0.0, 0.0, 0.0))
    grid = OraclePredictor(sim, np.array([0.0, 0.1, 0.2, 0.3])).grid(np.zeros(3))
    # the front wall is 0.53 m from the scanner: within its 0.25 m reach from d = 0.29 on
    np.testing.assert_array_equal(grid[2], [0, 0, 0, 1])
    result = closed_loop_trial(world, 1, "ir", minutes=0.2, robot_spec=robot, camera_spec=camera)
    assert result["commands"] > 50 and result["mean_forward_speed_m_s"] > 0.0
