"""The only way to the motors: the host watchdog every drive goes through.

It refuses a command whose perception basis (a frame's capture time, a reading's time)
is older than `max_staleness_s`, and stops the motors when the newest basis gets older
than that (camera stalled, inference stalled, sensor thread stalled). The loop checks
it every `watchdog_period_s`, so the motors stop at most `max_staleness_s +
watchdog_period_s` after the perception that last drove them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from robot_ssl.core.devices import Clock, Robot

__all__ = ["Watchdog"]


class Watchdog:
    """The only way to the motors: refuses stale commands, stops them when data go stale.

    `command(basis_t_ns, left, right)` sends wheel targets if the basis (capture time of
    the frame, or time of the reading, the command was computed from) is fresh.
    `check()` stops the motors once the newest basis is older than the limit, and
    `halt()` stops them for good (no command is accepted after it). One lock orders
    commands, checks and stops, so a command computed before a stop cannot overtake it.
    """

    def __init__(
        self,
        robot: Robot,
        clock: Clock,
        max_staleness_s: float,
        on_trip: Callable[[int, str], None] | None = None,
        *,
        refresh_s: float | None = None,
    ) -> None:
        self.robot = robot
        # unchanged targets are resent only this often (a keep-alive that spares a serial
        # link); None: every accepted command is sent
        self.refresh_ns = None if refresh_s is None else int(refresh_s * 1e9)
        self._sent_ns: int | None = None  # when the targets were last sent
        self.clock = clock
        self.limit_ns = int(max_staleness_s * 1e9)
        self.on_trip = on_trip
        self._lock = threading.RLock()
        self._basis_ns: int | None = None
        self._min_basis_ns: int | None = None  # set by rearm(): older perception is refused
        self.tripped = False
        self.halted = False
        self.trips = 0
        self.refused = 0  # commands refused because their basis was stale
        self.targets: tuple[int, int] = (0, 0)  # last wheel targets sent

    def fresh(self, basis_t_ns: int, now_ns: int) -> bool:
        return now_ns - basis_t_ns <= self.limit_ns

    def feed(self, basis_t_ns: int) -> None:
        """Note fresh perception without commanding (monitor mode): the watchdog then
        reports when perception stalls, although the motors are not driven."""
        with self._lock:
            self._basis_ns = basis_t_ns
            self.tripped = False

    def command(self, basis_t_ns: int, left: int, right: int) -> bool:
        """Send wheel targets if the basis is fresh and the loop is not halted."""
        with self._lock:
            if self.halted:
                return False
            stale = self._min_basis_ns is not None and basis_t_ns < self._min_basis_ns
            now = self.clock.now_ns()
            if stale or not self.fresh(basis_t_ns, now):
                self.refused += 1
                return False
            targets = (int(left), int(right))
            if not self._sent_recently(targets, now):
                self.robot.set_wheel_targets(*targets)
                self._sent_ns = now
            self.targets = targets
            self._basis_ns = basis_t_ns
            self.tripped = False
            return True

    def _sent_recently(self, targets: tuple[int, int], now_ns: int) -> bool:
        """True when these targets were sent within `refresh_s`: no need to send again."""
        if self.refresh_ns is None or self._sent_ns is None or targets != self.targets:
            return False
        return now_ns - self._sent_ns < self.refresh_ns

    def _zero(self) -> None:
        """Stop the motors now (raises when the robot is gone); the next command is sent."""
        self.robot.stop()
        self.targets = (0, 0)
        self._sent_ns = None

    def stop_motors(self) -> None:
        """Set the wheel targets to zero now (does not halt: commands may follow)."""
        with self._lock:
            self._zero()

    def check(self) -> bool:
        """Stop the motors if the newest basis is too old; True when tripped by this call."""
        with self._lock:
            now = self.clock.now_ns()
            last = self._basis_ns
            if self.halted or self.tripped or last is None or now - last <= self.limit_ns:
                return False
            self._zero()  # raises if the robot is gone: the caller logs and retries
            self.tripped = True
            self.trips += 1
        if self.on_trip is not None:
            self.on_trip(now, f"no fresh data for {(now - last) / 1e6:.0f} ms: motors stopped")
        return True

    def rearm(self, after_ns: int) -> None:
        """Stop the motors and refuse commands computed from perception older than
        `after_ns` (after a link loss: the robot may have kept or lost old targets, and
        what the loop saw before the gap is no basis for driving)."""
        with self._lock:
            self._min_basis_ns = after_ns
            self._basis_ns = None
            self._zero()

    def halt(self) -> None:
        """Stop the motors and refuse every later command (end of a run); idempotent."""
        with self._lock:
            self.halted = True
            self._zero()
