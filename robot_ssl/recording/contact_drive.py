"""Contact drive for data collection: explore by touching, no proximity sensor at all.

The collection policy of "Learning to Fly by Crashing" (Gandhi et al. 2017) on the ground:
drive straight on at a speed drawn per leg, slow enough for a Thymio to touch things
unharmed, until the robot's own signals say it touched something (a stall, a shock, the
firmware's tap: `robot_ssl.core.contact.ContactMonitor`), then back off a little, turn in
place by a random angle and drive on. The proximity readings it is handed are ignored,
so the labels a session gives (`label --sources contact,traversal`) owe nothing to a range
sensor. Every state has a timeout: a leg that meets nothing ends with a turn, a back-off
that meets something behind ends at once.

The controller has the wander controller's interface (`command(proximity, t_ns) -> (left,
right)`, called on every wheel poll, every command through the recording loop's watchdog)
and is also an observer of the loop (`streams`, `on_row`): it feeds the monitor with the
"wheels" and "acc" rows the robot gave, before it is asked for the next command.

Pure: no clock, no robot, no I/O; deterministic for a seed and a row sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robot_ssl.core.config import bounded, check_bounds, check_field_types
from robot_ssl.core.contact import ContactConfig, ContactMonitor
from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.streams import Record
from robot_ssl.recording.recorder import RecorderError

__all__ = ["ContactDriveConfig", "ContactDriveController", "contact_drive_controller"]

THYMIO_SAFE_SPEED = 250
"""Raw wheel units (~8 cm/s): the fastest leg of the contact drive. A Thymio bumps into
walls at this speed without harm (its top speed is 500, ~16 cm/s)."""


@dataclass(frozen=True)
class ContactDriveConfig:
    """Speeds in raw wheel units, durations in seconds, angles in radians."""

    cruise_speed: tuple[int, int] = bounded((100, 220), 1, THYMIO_SAFE_SPEED)
    back_speed: int = bounded(150, 1, THYMIO_SAFE_SPEED)
    back_duration_s: tuple[float, float] = bounded((0.5, 1.0), 0, 10, min_inclusive=False)
    turn_speed: tuple[int, int] = bounded((100, 200), 1, THYMIO_SAFE_SPEED)
    turn_angle_rad: tuple[float, float] = bounded((0.5, math.pi), 0, 2 * math.pi)
    pause_s: tuple[float, float] = bounded((0.1, 0.3), 0, 10)
    """Standstill after a contact and before each leg: the contact's rows settle."""
    max_leg_s: float = bounded(20.0, 0, 600, min_inclusive=False)
    """A leg that meets nothing ends with a turn."""
    axle_length_m: float = bounded(0.0935, 0, 10, min_inclusive=False)
    speed_m_per_unit: float = bounded(0.000332, 0, 1, min_inclusive=False)
    contact: ContactConfig = field(default_factory=ContactConfig)

    def __post_init__(self) -> None:
        check_field_types(self, "contact_drive", RecorderError)
        check_bounds(self, "contact_drive", RecorderError)
        for name in ("cruise_speed", "back_duration_s", "turn_speed", "turn_angle_rad", "pause_s"):
            pair = getattr(self, name)
            if len(pair) != 2 or pair[0] > pair[1]:
                raise RecorderError(f"contact_drive.{name}: must be (low, high) with low <= high")


class ContactDriveController:
    """A small state machine: PAUSE -> FORWARD -(contact)-> PAUSE -> BACK -> TURN -> ..."""

    FORWARD, BACK, TURN, PAUSE = "forward", "back", "turn", "pause"
    streams = ("wheels", "acc")

    def __init__(self, config: ContactDriveConfig | None = None, seed: int = 0) -> None:
        self.config = config or ContactDriveConfig()
        self.rng = np.random.default_rng([int(seed), 0xC0DE])
        self.monitor = ContactMonitor(self.config.contact)
        self.state = self.PAUSE
        self._state_end_ns: int | None = None
        self._after_pause = self.FORWARD
        self._targets = (0, 0)
        self._fresh_contact = False
        self._state_start_ns = 0
        self.legs = 0  # forward legs started
        self.stops = 0  # legs ended by a contact

    # -- the loop's observer: rows in ------------------------------------------------------

    def on_row(self, row: Record) -> None:
        """A "wheels" or "acc" row of the robot, in the order it gave them."""
        v = row.values
        if row.stream == "wheels":
            found = self.monitor.wheels(row.t_ns, v["speed"], v["target"])
        elif row.stream == "acc":
            found = self.monitor.acc(row.t_ns, v["acc"], int(v["tap"]))
        else:
            return
        self._fresh_contact = self._fresh_contact or found is not None

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray | None) -> None:
        """Frames play no part in the contact drive."""

    def status(self) -> str:
        return f"contacts {len(self.monitor.contacts)}"

    # -- the policy: targets out -----------------------------------------------------------

    def _u(self, r: tuple[float, float]) -> float:
        return float(self.rng.uniform(r[0], r[1]))

    def _start(self, state: str, t_ns: int, duration_s: float, targets: tuple[int, int]) -> None:
        self.state = state
        self._state_start_ns = t_ns
        self._state_end_ns = t_ns + int(duration_s * 1e9)
        self._targets = targets

    def _start_pause(self, t_ns: int, then: str) -> None:
        self._after_pause = then
        self._start(self.PAUSE, t_ns, self._u(self.config.pause_s), (0, 0))

    def _start_forward(self, t_ns: int) -> None:
        c = self.config
        speed = round(self._u(c.cruise_speed))
        self.legs += 1
        self._start(self.FORWARD, t_ns, c.max_leg_s, (speed, speed))

    def _start_turn(self, t_ns: int) -> None:
        c = self.config
        speed = round(self._u(c.turn_speed))
        sign = 1 if self.rng.random() < 0.5 else -1
        omega = 2 * speed * c.speed_m_per_unit / c.axle_length_m
        duration = self._u(c.turn_angle_rad) / omega
        self._start(self.TURN, t_ns, duration, (-sign * speed, sign * speed))

    def _touched(self) -> bool:
        """A new contact since the last command, or a stall that began in this state and
        lasted as long as the rule asks (a contact merged into the previous one: backing
        into something just after touching something else)."""
        fresh, self._fresh_contact = self._fresh_contact, False
        since = self.monitor.stall_since_ns
        stalled = since is not None and since >= self._state_start_ns
        return fresh or (stalled and self.monitor.stall_s >= self.config.contact.stall_s)

    def command(self, proximity: np.ndarray | None, t_ns: int) -> tuple[int, int]:
        """Wheel targets (left, right) in raw units at t_ns; `proximity` is not used."""
        c = self.config
        t_ns = int(t_ns)
        if self._state_end_ns is None:
            self._start_pause(t_ns, self.FORWARD)
        expired = t_ns >= (self._state_end_ns or 0)
        touched = self._touched()
        if self.state == self.FORWARD:
            if touched or (expired and self.monitor.stall_s > 0):  # pushing as the leg ends
                self.stops += 1
                self._start_pause(t_ns, self.BACK)
            elif expired:
                self._start_turn(t_ns)
        elif self.state == self.PAUSE:
            if expired and self._after_pause == self.BACK:
                back = (-c.back_speed, -c.back_speed)
                self._start(self.BACK, t_ns, self._u(c.back_duration_s), back)
            elif expired:
                self._start_forward(t_ns)
        elif self.state == self.BACK:
            if expired or touched:  # something behind: turn now
                self._start_turn(t_ns)
        elif self.state == self.TURN and expired:
            self._start_pause(t_ns, self.FORWARD)
        return self._targets

    update = command  # alias: (proximity, t_ns) -> targets


def contact_drive_controller(robot: RobotSpec, seed: int) -> ContactDriveController:
    """The contact drive fitted to the robot's geometry."""
    return ContactDriveController(
        ContactDriveConfig(
            axle_length_m=robot.axle_length_m, speed_m_per_unit=robot.speed_m_per_unit
        ),
        seed=seed,
    )
