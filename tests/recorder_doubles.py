"""Devices and writers for the recorder tests: a scripted robot, a camera that dies, a slow writer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionWriter
from robot_ssl.recording.cameras import SyntheticCamera


@dataclass(frozen=True)
class Reading:
    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray


class FakeRobot:
    """Drives at its targets; proximity from a seeded RNG; can be 'unplugged' for a while."""

    def __init__(self, clock=None, seed: int = 0, speed=(100, 100)) -> None:
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.speed = np.array(speed, dtype=np.int16)
        self.targets: list[tuple[int, int]] = []
        self.stops = 0
        self.reads = 0
        self.down: tuple[float, float] | None = None  # monotonic window when read() fails
        self.lock = threading.Lock()

    def now(self) -> int:
        return self.clock.now_ns() if self.clock else time.monotonic_ns()

    def read(self) -> Reading:
        if self.down is not None and self.down[0] <= time.monotonic() < self.down[1]:
            time.sleep(0.05)
            raise TimeoutError("no reply (unplugged)")
        self.reads += 1
        prox = self.rng.integers(0, 4000, 7).astype(np.int16)
        return Reading(self.now(), prox, self.speed.copy())

    def set_wheel_targets(self, left: int, right: int) -> None:
        self.targets.append((left, right))

    def stop(self) -> None:
        self.stops += 1
        self.targets.append((0, 0))

    def close(self) -> None:
        pass


def _writer(path, **kw) -> SessionWriter:
    return SessionWriter(path, camera=CameraSpec(width=64, height=48, fps=30.0), **kw)


def _rate(t_ns: np.ndarray) -> float:
    return (len(t_ns) - 1) / ((t_ns[-1] - t_ns[0]) / 1e9)


class DyingCamera:
    """Frames for a while, then read() raises (a driver error)."""

    def __init__(self, frames: int) -> None:
        self.inner = SyntheticCamera(64, 48, 30)
        self.frames = frames

    def read(self):
        f = self.inner.read()
        if f is not None and f.index >= self.frames:
            raise OSError("VIDIOC_DQBUF: No such device")
        return f

    def health(self):
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


class SlowWriter(SessionWriter):
    """A writer that takes 0.15 s per frame (a slow SD card)."""

    def write_jpeg(self, t_ns, jpeg) -> None:
        time.sleep(0.15)
        super().write_jpeg(t_ns, jpeg)
