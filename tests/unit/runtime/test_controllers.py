"""Avoidance controllers: the steering law, the camera grid and the IR baseline."""

import math

import numpy as np
import pytest

from robot_ssl.live.controllers import (
    AvoidConfig,
    CameraAvoidController,
    IRReactiveController,
    SteeringLaw,
    ir_distance_m,
)

D = np.round(np.arange(31) * 0.01, 2)  # the default grid: 0..0.30 m


def grid(first_hit: dict[int, float]) -> np.ndarray:
    """A (5, 31) probability grid: sensor s sees an obstacle from distance first_hit[s] on."""
    g = np.zeros((5, len(D)), np.float32)
    for s, d in first_hit.items():
        g[s, d - 1e-9 <= D] = 0.9
    return g


def f_ir(x_m: float, m: float = 4505.0, x0: float = 0.03, c: float = 73.0) -> float:
    x = x_m * 100
    return m * (c - x0**2) / (x * x - 2 * x0 * x + c)


def test_clear_grid_cruises():
    ctrl = CameraAvoidController(D, AvoidConfig.for_camera(240))
    assert np.all(np.isinf(ctrl.clearance(grid({}))))
    assert ctrl.command(grid({}), 0) == (240, 240)


def test_obstacle_ahead_far_slows_near_turns():
    ctrl = CameraAvoidController(D)
    far = ctrl.command(grid({1: 0.2, 2: 0.2, 3: 0.2}), 0)  # ~0.34 m ahead of the sensors
    assert 0 < far[0] < 200 and far[0] == far[1]  # straight on, slower
    ctrl2 = CameraAvoidController(D)
    nearer = ctrl2.command(grid({1: 0.1, 2: 0.1, 3: 0.1}), 0)
    assert 0 < nearer[0] < far[0]
    ctrl3 = CameraAvoidController(D)
    left, right = ctrl3.command(grid({1: 0.01, 2: 0.0, 3: 0.01}), 0)  # about to hit
    assert left == -right and abs(left) == ctrl3.cfg.turn_speed  # turns in place


def test_turns_towards_the_freer_side_and_keeps_turning():
    ctrl = CameraAvoidController(D)
    blocked_left = grid({0: 0.0, 1: 0.0, 2: 0.01, 3: 0.015})
    left, right = ctrl.command(blocked_left, 0)
    assert left > 0 > right  # clockwise: away from the obstacle on the left
    # Clear right after: the turn lasts at least min_turn_s, in the same direction.
    assert ctrl.command(grid({}), int(0.2e9)) == (left, right)
    assert ctrl.command(grid({}), int(0.6e9)) == (200, 200)
    assert ctrl.law.turns == 1


def test_turn_ends_only_when_ahead_is_clear_with_margin():
    law = SteeringLaw(AvoidConfig(stop_distance_m=0.2, slow_distance_m=0.4, min_turn_s=0.0))
    first = law.command(np.array([1, 1, 0.1, 1, 1]), 0)
    assert first[0] == -first[1] != 0 and law.turning
    assert law.command(np.array([1, 1, 0.21, 1, 1]), 1) == first  # 0.21 < stop + margin
    wheels = law.command(np.array([1, 1, 0.3, 1, 1]), 2)
    assert not law.turning and wheels[0] > 0 and wheels[1] > 0


def test_side_obstacle_steers_away_while_driving():
    ctrl = CameraAvoidController(D)
    left, right = ctrl.command(grid({0: 0.1}), 0)  # something front-left, not ahead
    assert left > right > 0  # veer right
    ctrl = CameraAvoidController(D)
    left, right = ctrl.command(grid({4: 0.1}), 0)
    assert right > left > 0  # veer left


def test_camera_reacts_earlier_than_ir():
    cam, ir = AvoidConfig.for_camera(), AvoidConfig.for_ir()
    assert cam.stop_distance_m > 0.14 >= ir.stop_distance_m  # camera turns before IR can see
    assert cam.slow_distance_m > ir.slow_distance_m
    c = CameraAvoidController(D)
    assert c.clearance(grid({2: 0.0}))[2] == pytest.approx(0.14)  # seen now: within IR range
    assert c.clearance(grid({2: 0.3}))[2] == pytest.approx(0.44)


def test_ir_distance_inverts_the_response_model():
    for x in (0.01, 0.05, 0.10, 0.14):
        assert ir_distance_m(np.array([f_ir(x)]))[0] == pytest.approx(x, abs=1e-4)
    assert math.isinf(ir_distance_m(np.array([0]))[0])


def test_ir_controller_cruise_slow_turn():
    ir = IRReactiveController(AvoidConfig.for_ir(180))
    assert ir.command(np.zeros(7, np.int16), 0) == (180, 180)
    slow = ir.command(np.array([0, 0, round(f_ir(0.12)), 0, 0, 0, 0]), 0)
    assert 0 < slow[0] < 180 and slow[0] == slow[1]
    turn = IRReactiveController().command(np.array([0, 0, round(f_ir(0.04)), 0, 0, 0, 0]), 0)
    assert turn[0] == -turn[1] != 0
    # back sensors are ignored
    assert ir.command(np.array([0, 0, 0, 0, 0, 4000, 4000]), 0) == (180, 180)


def test_avoid_config_checks():
    with pytest.raises(ValueError):
        AvoidConfig(stop_distance_m=0.3, slow_distance_m=0.2)
    with pytest.raises(ValueError):
        AvoidConfig(min_speed_fraction=0.0)
    with pytest.raises(ValueError):
        AvoidConfig(turn_speed=0)
    assert AvoidConfig.for_ir(100, stop_distance_m=0.05).stop_distance_m == 0.05


def test_fewer_sensors_all_count_as_ahead():
    law = SteeringLaw(AvoidConfig())
    assert law.command(np.array([np.inf]), 0) == (200, 200)
    left, right = law.command(np.array([0.1]), 0)
    assert left == -right != 0


def test_obstacle_memory_keeps_what_left_the_view():
    ctrl = CameraAvoidController(D)
    ctrl.command(grid({0: 0.14}), 0, pose=np.zeros(3))  # seen front-left, 0.28 m away
    turned = np.array([0.0, 0.0, math.radians(-40)])  # turned right in place: now beside
    d = ctrl.memory.distances(turned, int(0.5e9))
    assert d[0] == pytest.approx(0.303, abs=0.005) and np.isinf(d[1:]).all()
    left, right = ctrl.command(grid({}), int(0.5e9), pose=turned)  # the camera sees nothing
    assert left > right > 0  # the remembered obstacle on the left still steers it right
    assert CameraAvoidController(D).command(grid({}), 0) == (200, 200)  # no pose: no memory
    assert np.isinf(ctrl.memory.distances(turned, int(2.6e9))).all()  # forgotten after 2 s
    moved_past = np.array([0.5, 0.0, 0.0])  # the obstacle is now behind the axle
    ctrl.command(grid({0: 0.14}), int(3e9), pose=np.zeros(3))
    assert np.isinf(ctrl.memory.distances(moved_past, int(3.1e9))).all()


def test_ir_controller_remembers_too():
    ir = IRReactiveController()
    ir.command(np.array([0, 0, 0, 0, round(f_ir(0.05)), 0, 0]), 0, pose=np.zeros(3))
    assert np.isfinite(ir.memory.distances(np.zeros(3), 1)[4])


def test_far_detections_are_not_remembered_and_smoothing_damps_flicker():
    ctrl = CameraAvoidController(D, AvoidConfig.for_camera(smoothing=0.5))
    ctrl.command(grid({2: 0.25}), 0, pose=np.zeros(3))  # 0.39 m: beyond memory_range_m
    assert len(ctrl.memory) == 0
    ctrl = CameraAvoidController(D, AvoidConfig.for_camera(smoothing=0.5))
    ctrl.command(grid({}), 1, pose=np.zeros(3))
    flicker = grid({1: 0.0, 2: 0.0, 3: 0.0})  # p = 0.9 for one frame: 0.45 after smoothing
    assert ctrl.command(flicker, 2, pose=np.zeros(3)) == (200, 200)
    assert ctrl.command(flicker, 3, pose=np.zeros(3))[0] < 200  # 0.675 when it persists
