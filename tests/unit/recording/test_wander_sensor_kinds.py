"""The wander drive on robots of other sensors than IR: readings turned into what a
Thymio IR sensor would read (sensor_rule.ir_equivalent) before its IR-tuned thresholds."""

from __future__ import annotations

import numpy as np
from paths import REPO

from robot_ssl.core.sensor_rule import NO_RETURN_MM
from robot_ssl.core.spec import RobotSpec, load_specs
from robot_ssl.recording.wander import KindAwareWander, WanderController, wander_controller

MS_NS = 1_000_000


def _drive(ctrl: WanderController, readings: np.ndarray, start_ms: int, n: int) -> list[str]:
    states = []
    for k in range(n):
        ctrl.command(readings, (start_ms + 10 * k) * MS_NS)
        states.append(ctrl.state)
    return states


def test_the_thymio_keeps_the_plain_controller():
    ctrl = wander_controller(RobotSpec(), seed=0)
    assert type(ctrl) is WanderController


def test_a_lidar_robot_drives_on_when_clear_and_backs_off_near_a_wall():
    robot, _ = load_specs(REPO / "data" / "robots" / "lidar_bot.yaml")
    ctrl = wander_controller(robot, seed=0)
    assert isinstance(ctrl, KindAwareWander)
    clear = np.full(robot.num_prox, NO_RETURN_MM, np.int16)
    clear[11] = 0  # bumper released
    states = _drive(ctrl, clear, 0, 300)  # 3 s of nothing in reach
    assert states[-1] == ctrl.FORWARD
    near = clear.copy()
    near[2] = 140  # 1 cm beyond the front of the body (the scanner sits 0.13 m inside it)
    states = _drive(ctrl, near, 3000, 50)
    assert states[0] == ctrl.PAUSE and ctrl.BACK in states  # the leg ended at once
    bumped = clear.copy()
    bumped[11] = 1
    fresh = wander_controller(robot, seed=0)
    _drive(fresh, clear, 0, 300)
    states = _drive(fresh, bumped, 3000, 200)  # the bumper alone ends the leg too
    assert states[0] == fresh.PAUSE and fresh.BACK in states
