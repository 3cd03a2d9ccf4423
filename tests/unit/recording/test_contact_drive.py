"""The contact drive (robot_ssl.recording.contact_drive): straight on until the robot's own
rows say it touched something, back off, turn, go on; proximity never used."""

from __future__ import annotations

import numpy as np
import pytest

from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.streams import Record
from robot_ssl.recording.contact_drive import (
    THYMIO_SAFE_SPEED,
    ContactDriveConfig,
    ContactDriveController,
    contact_drive_controller,
)
from robot_ssl.recording.record import DRIVES, drive_controller
from robot_ssl.recording.recorder import RecorderError

DT_NS = 10_000_000  # wheel rows at 100 Hz


def run(ctrl: ContactDriveController, seconds: float, blocked, acc=None, prox: int = 0):
    """Drive `ctrl` against a plant: motors follow the targets with a 0.1 s lag and are held
    at 0 while `blocked(t_s, targets)`; `acc(t_s)` an accelerometer row every 1/16 s;
    every proximity reading `prox`. Returns (t_s, state, targets) per step."""
    motor = np.zeros(2)
    targets = (0, 0)
    out = []
    n = round(seconds * 1e9 / DT_NS)
    for i in range(n):
        t_ns = i * DT_NS
        t_s = t_ns / 1e9
        motor += (np.array(targets, float) - motor) * (1 - np.exp(-0.1))
        if blocked(t_s, targets):
            motor[:] = 0.0
        ctrl.on_row(Record.of("wheels", t_ns, speed=motor.round().astype(np.int16),
                              target=np.array(targets, np.int16)))  # fmt: skip
        if acc is not None and i % 6 == 0:
            a, tap = acc(t_s)
            ctrl.on_row(Record.of("acc", t_ns, acc=np.array(a, np.int16), tap=tap))
        targets = ctrl.command(np.full(7, prox, np.int16), t_ns)
        out.append((t_s, ctrl.state, targets))
    return out


def test_it_drives_straight_until_a_stall_then_backs_off_and_turns():
    ctrl = ContactDriveController(seed=1)
    wall_s = 3.0  # a wall stops the forward legs from 3 s on
    trace = run(ctrl, 8.0, lambda t, tg: t >= wall_s and tg[0] > 0 and tg[1] > 0)
    states = [s for _, s, _ in trace]
    first_back = states.index("back")
    assert all(s in ("pause", "forward") for s in states[:first_back])
    t_back = trace[first_back][0]
    assert wall_s < t_back < wall_s + 0.2 + 0.3 + 0.1  # stall_s, the pause, a row or two
    assert ctrl.stops >= 1 and len(ctrl.monitor.contacts) >= 1
    backing = [tg for _, s, tg in trace if s == "back"]
    assert backing and all(tg[0] == tg[1] < 0 for tg in backing)
    turning = [tg for _, s, tg in trace if s == "turn"]
    assert turning and all(tg[0] == -tg[1] != 0 for tg in turning)
    # every command it gave is a Thymio-safe speed
    assert max(max(abs(v) for v in tg) for _, _, tg in trace) <= THYMIO_SAFE_SPEED


def test_a_shock_alone_ends_a_leg_and_proximity_plays_no_part():
    ctrl = ContactDriveController(seed=2)

    def acc(t_s):
        return ((20, 0, 22), 0) if 2.0 <= t_s < 2.06 else ((0, 0, 22), 0)

    trace = run(ctrl, 3.0, lambda t, tg: False, acc=acc)
    assert ctrl.monitor.contacts.cause == ("shock",)
    assert "back" in [s for t, s, _ in trace if t > 2.0]
    # the same rows with every proximity sensor reading "touching" give the same commands
    loud = run(ContactDriveController(seed=2), 3.0, lambda t, tg: False, acc=acc, prox=5000)
    assert [tg for _, _, tg in loud] == [tg for _, _, tg in trace]


def test_a_leg_that_meets_nothing_ends_with_a_turn():
    ctrl = ContactDriveController(ContactDriveConfig(max_leg_s=2.0), seed=3)
    trace = run(ctrl, 4.0, lambda t, tg: False)
    assert "turn" in [s for _, s, _ in trace]
    assert ctrl.stops == 0 and len(ctrl.monitor.contacts) == 0


def test_the_drives_and_their_settings():
    assert "contact" in DRIVES
    robot = RobotSpec()
    assert isinstance(drive_controller("contact", robot, 0), ContactDriveController)
    assert drive_controller("none", robot, 0) is None
    ctrl = contact_drive_controller(robot, 5)
    assert ctrl.config.axle_length_m == robot.axle_length_m
    assert ctrl.status() == "contacts 0"
    with pytest.raises(RecorderError, match="cruise_speed"):
        ContactDriveConfig(cruise_speed=(100, 400))  # above the Thymio-safe speed
    with pytest.raises(RecorderError, match="low <= high"):
        ContactDriveConfig(back_duration_s=(1.0, 0.5))
