"""Device interfaces the stack codes against (structural: implementations need not import this).

`firmware_bridge` (a real Thymio or Aseba Playground) and `sim` (the simulator)
satisfy these by shape. All timestamps are int64 nanoseconds of one monotonic
clock (`time.monotonic_ns()` on a real robot, the simulated clock in `sim`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class RobotReading(Protocol):
    """One synchronous read of the robot's sensors."""

    t_ns: int  # when the reading was taken (monotonic ns)
    proximity: np.ndarray  # int16 (num_prox,), raw firmware values
    wheel_speed: np.ndarray  # int16 (2,), measured (left, right), raw units


class Frame(Protocol):
    """One camera image with its capture time."""

    t_ns: int  # capture time (monotonic ns); the measured mid-exposure where the camera says it
    image: np.ndarray  # uint8 (H, W, 3), BGR (OpenCV order)
    index: int  # capture counter: a new frame has a larger index


@runtime_checkable
class Robot(Protocol):
    """A differential-drive robot with proximity sensors."""

    def read(self) -> RobotReading:
        """Read proximity and measured wheel speeds now (blocking, with a timeout)."""
        ...

    def set_wheel_targets(self, left: int, right: int) -> None:
        """Command wheel speeds in raw units (clipped to the robot's range)."""
        ...

    def stop(self) -> None:
        """Set both wheel targets to zero."""
        ...

    def close(self) -> None:
        """Stop the motors and release the device; idempotent."""
        ...


class CameraHealth(Protocol):
    """Whether a camera gave up (robot_ssl.recording.cameras.CameraHealth fits)."""

    failed: bool  # the camera will deliver no more frames
    error: str  # why, one line ('' when healthy)


@runtime_checkable
class Camera(Protocol):
    """A camera that always offers its newest frame."""

    def read(self) -> Frame | None:
        """The newest frame (None before the first); never blocks for long."""
        ...

    def health(self) -> CameraHealth:
        """Whether it failed (the drive loop checks it; a camera that cannot fail says
        `failed=False`); never blocks."""
        ...

    def close(self) -> None:
        """Release the device; idempotent."""
        ...


@runtime_checkable
class Clock(Protocol):
    """Monotonic time source; the simulator's clock advances the simulation when waited on."""

    def now_ns(self) -> int: ...

    def sleep_until_ns(self, t_ns: int) -> None: ...


class WallClock:
    """The real monotonic clock."""

    def now_ns(self) -> int:
        import time

        return time.monotonic_ns()

    def sleep_until_ns(self, t_ns: int) -> None:
        import time

        dt = (t_ns - time.monotonic_ns()) / 1e9
        if dt > 0:
            time.sleep(dt)
