"""A test double of picamera2, the Raspberry Pi camera library (libcamera), following the
API of The Picamera2 Library manual as far as robot-ssl uses it: `Picamera2(camera_num)`,
`Picamera2.global_camera_info()`, `create_video_configuration(main=, controls=,
buffer_count=)`, `configure`, `start`, `capture_request()` returning a request with
`make_array("main")`, `get_metadata()` and `release()`, `stop`, `close`.

Only the tests put its folder (tests/doubles) on `sys.path` or `PYTHONPATH`: picamera2
needs libcamera and a camera, which no test machine has.

A camera of the double runs like a Raspberry Pi camera on its own clock: frame k's
first row ends its exposure (start of frame) at start + k x frame period on
CLOCK_MONOTONIC, is stamped `SensorTimestamp` with that instant on CLOCK_BOOTTIME (as
libcamera stamps it), and is handed over `latency_ms` later (readout, ISP). A
`capture_request()` waits for the next frame; frames a slow reader left behind past
`buffer_count` are dropped, as libcamera recycles their buffers. Every frame handed
over is logged in `Picamera2.log` (its true mid-exposure and its delivery, both on
CLOCK_MONOTONIC) for the tests to compare with.

The scene is a red left half and a blue right half; "RGB888" arrays are B, G, R in
memory order, as libcamera's RGB888 is. Environment variables make the faults the
tests need:

- `PICAMERA2_DOUBLE_CAMERAS`: how many cameras libcamera finds (1);
- `PICAMERA2_DOUBLE_FAIL_AFTER`: `capture_request()` raises after this many frames;
- `PICAMERA2_DOUBLE_EXPOSURE_US`: the exposure time (20000);
- `PICAMERA2_DOUBLE_LATENCY_MS`: start of frame to delivery (50).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["BLUE_BGR", "RED_BGR", "CompletedRequest", "Delivered", "Picamera2"]

RED_BGR = (20, 30, 200)  # the scene's left half as B, G, R
BLUE_BGR = (210, 40, 10)  # its right half

_in_use: set[int] = set()  # cameras held by an open Picamera2 (libcamera allows one)
_lock = threading.Lock()


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


@dataclass(frozen=True)
class Delivered:
    """One frame handed over: its true mid-exposure and delivery, CLOCK_MONOTONIC ns."""

    mid_exposure_ns: int
    delivered_ns: int


class CompletedRequest:
    """A captured frame's buffers and metadata, until `release()`."""

    def __init__(self, image: np.ndarray, metadata: dict[str, Any]) -> None:
        self._image = image
        self._metadata = metadata
        self._released = False

    def make_array(self, name: str) -> np.ndarray:
        """A copy of stream `name`'s image (only "main" is configured here)."""
        if self._released:
            raise RuntimeError("make_array after release()")
        if name != "main":
            raise KeyError(name)
        return self._image.copy()

    def get_metadata(self) -> dict[str, Any]:
        if self._released:
            raise RuntimeError("get_metadata after release()")
        return dict(self._metadata)

    def release(self) -> None:
        self._released = True


class Picamera2:
    """One camera of the double (see the module docstring)."""

    log: ClassVar[list[Delivered]] = []  # every frame handed over by the newest camera

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= len(self.global_camera_info()):
            raise IndexError("list index out of range")
        with _lock:
            if camera_num in _in_use:
                raise RuntimeError("Failed to acquire camera: Device or resource busy")
            _in_use.add(camera_num)
        self.camera_num = camera_num
        self._config: dict[str, Any] | None = None
        self._started = False
        self._closed = False
        self._next = 0
        self._t0_ns = 0
        self._boot_minus_mono_ns = 0

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        n = _env_int("PICAMERA2_DOUBLE_CAMERAS", 1) or 0
        return [
            {
                "Model": "imx708_wide",
                "Location": 2,
                "Rotation": 180,
                "Id": f"/base/i2c@{i}",
                "Num": i,
            }
            for i in range(n)
        ]

    def create_video_configuration(
        self, main: dict | None = None, controls: dict | None = None, buffer_count: int = 6
    ) -> dict[str, Any]:
        main = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        return {
            "use_case": "video",
            "buffer_count": buffer_count,
            "main": main,
            "controls": {"FrameRate": 30.0, **(controls or {})},
        }

    def configure(self, config: dict[str, Any]) -> None:
        if self._started:
            raise RuntimeError("Camera must be stopped before configuring")
        if config["main"]["format"] != "RGB888":
            raise ValueError("the double delivers RGB888 only")
        self._config = config

    def start(self) -> None:
        if self._config is None:
            raise RuntimeError("Camera has not been configured")
        self._started = True
        self._t0_ns = time.monotonic_ns()
        boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self._boot_minus_mono_ns = boot - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        Picamera2.log = []

    def capture_request(self) -> CompletedRequest:
        """The next frame, when it is handed over (blocks like the real one)."""
        if not self._started or self._closed:
            raise RuntimeError("Camera is not running")
        assert self._config is not None
        fail_after = _env_int("PICAMERA2_DOUBLE_FAIL_AFTER", None)
        if fail_after is not None and len(Picamera2.log) >= fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        period_ns = round(1e9 / float(self._config["controls"]["FrameRate"]))
        latency_ns = (_env_int("PICAMERA2_DOUBLE_LATENCY_MS", 50) or 0) * 1_000_000
        exposure_us = _env_int("PICAMERA2_DOUBLE_EXPOSURE_US", 20000) or 0
        newest = (time.monotonic_ns() - self._t0_ns - latency_ns) // period_ns
        k = max(self._next, newest - self._config["buffer_count"] + 1)
        self._next = k + 1
        sof_ns = self._t0_ns + (k + 1) * period_ns  # end of the first row's exposure
        delay_s = (sof_ns + latency_ns - time.monotonic_ns()) / 1e9
        if delay_s > 0:
            time.sleep(delay_s)
        Picamera2.log.append(Delivered(sof_ns - exposure_us * 500, time.monotonic_ns()))
        metadata = {
            "SensorTimestamp": sof_ns + self._boot_minus_mono_ns,
            "ExposureTime": exposure_us,
            "FrameDuration": period_ns // 1000,
            "AnalogueGain": 2.0,
        }
        return CompletedRequest(self._scene(), metadata)

    def _scene(self) -> np.ndarray:
        assert self._config is not None
        w, h = self._config["main"]["size"]
        image = np.empty((h, w, 3), np.uint8)
        image[:, : w // 2] = RED_BGR
        image[:, w // 2 :] = BLUE_BGR
        return image

    def stop(self) -> None:
        self._started = False

    def close(self) -> None:
        self.stop()
        if not self._closed:
            self._closed = True
            with _lock:
                _in_use.discard(self.camera_num)
