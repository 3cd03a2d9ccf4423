"""The Raspberry Pi camera through picamera2 (libcamera), each frame stamped with the
middle of its exposure as the sensor measured it, on the session's clock.

On the current Raspberry Pi OS a camera on the CSI connector is a libcamera device:
OpenCV's capture does not reach it without a compatibility shim (`libcamerify`), and a
frame read through OpenCV can only be stamped when it arrives, 30-150 ms after its
exposure (docs/labelling.md, "Camera latency"). picamera2 hands each frame over with its
request metadata (The Picamera2 Library manual, "capture_request", "Camera controls and
metadata"):

- `SensorTimestamp` (int, ns): when the first row of the frame reached the receiver.
  Raspberry Pi's maintainers say the pixels are sent at the end of the exposure, so the
  stamp is later than the start of the exposure by the exposure time
  (https://github.com/raspberrypi/picamera2/issues/821). Its clock is CLOCK_BOOTTIME:
  libcamera's control reference, `SensorTimestamp` in src/libcamera/control_ids_core.yaml
  ("a monotonically increasing counter since the system boot time, as defined by the
  Linux-specific CLOCK_BOOTTIME clock id").
- `ExposureTime` (int, µs): the frame's shutter time.

A frame's time in this project is the middle of its exposure (the simulator's
`/frame_truth/exposure_t_ns`, the instant the labeller matches a frame with the poses
of: docs/session_format.md), on `time.monotonic_ns()`'s clock (CLOCK_MONOTONIC, the
session's `clock`, `robot_ssl.core.devices.WallClock`). So each frame is stamped

    t_ns = SensorTimestamp - ExposureTime * 1000 / 2 + (CLOCK_MONOTONIC - CLOCK_BOOTTIME)

the offset between the two clocks measured with `time.clock_gettime_ns` at each frame
(it grows by the time the system was suspended; 0 on a Pi that never sleeps). The
middle is the first row's: a rolling shutter exposes the last row one readout time
(up to a frame period) later. Sessions recorded with this camera say so in their
metadata (`camera_stamp`: `SENSOR_MID_EXPOSURE`), and the labeller applies no
estimated delay to them (it reports the estimate as a check).

picamera2 is imported when a camera is opened, never at import, so the robot's
install runs without it; it comes with Raspberry Pi OS (`python3-picamera2`), not
from PyPI. The tests run against a double that follows the manual's API
(tests/doubles/picamera2): picamera2 needs libcamera and a camera, which CI has not.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import numpy as np

from robot_ssl.recording.cameras import (
    CameraError,
    CameraNotFound,
    _CaptureThread,
    _ThreadedCamera,
    parse_sized_source,
)

__all__ = [
    "SENSOR_MID_EXPOSURE",
    "Picamera2Camera",
    "boottime_to_monotonic_ns",
    "mid_exposure_ns",
    "parse_picamera2",
]

#: session metadata `camera_stamp` of frames stamped at the sensor's mid-exposure
SENSOR_MID_EXPOSURE = "sensor_mid_exposure"

_INSTALL_HINT = (
    "on Raspberry Pi OS: sudo apt install python3-picamera2, and a venv made with "
    "python3 -m venv --system-site-packages"
)


def boottime_to_monotonic_ns() -> int:
    """CLOCK_MONOTONIC minus CLOCK_BOOTTIME now (ns, <= 0: the time suspended, negated).

    Each clock is read between two reads of the other; the tightest of three tries
    is kept, so the offset is good to a microsecond or so."""
    best: tuple[int, int] | None = None
    for _ in range(3):
        m0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, (m0 + m1) // 2 - boot)
    assert best is not None
    return best[1]


def mid_exposure_ns(sensor_timestamp_ns: int, exposure_us: float, boot_to_mono_ns: int) -> int:
    """A frame's mid-exposure on CLOCK_MONOTONIC from its picamera2 metadata: the
    exposure starts `exposure_us` before `sensor_timestamp_ns` (CLOCK_BOOTTIME, end of
    the first row's exposure) and its middle is half of that later."""
    start_ns = int(sensor_timestamp_ns) - round(float(exposure_us) * 1000.0)
    return start_ns + round(float(exposure_us) * 500.0) + int(boot_to_mono_ns)


def parse_picamera2(source: str) -> tuple[int, int, float] | None:
    """(width, height, fps) for 'picamera2[:WxH[@FPS]]' (640x480 at 30 by default),
    None for any other source."""
    return parse_sized_source("picamera2", source)


def _import_picamera2() -> Any:
    """The Picamera2 class, or CameraNotFound in one line (not installed, or broken)."""
    try:
        from picamera2 import Picamera2
    except ImportError as e:
        raise CameraNotFound(
            f"camera picamera2: cannot import picamera2 ({_first_line(e)}); {_INSTALL_HINT}"
        ) from None
    except Exception as e:  # a broken install (libcamera or numpy mismatch) raises others
        hint = ""
        if "binary incompatibility" in str(e):  # the OS's simplejpeg, built for numpy 1
            hint = " (the venv's numpy is not the OS's: pip install --force-reinstall simplejpeg)"
        raise CameraNotFound(
            f"camera picamera2: importing picamera2 failed: {_first_line(e)}{hint}"
        ) from None
    return Picamera2


def _first_line(error: BaseException) -> str:
    """An exception as one line (its type when it has no message)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Picamera2Camera(_ThreadedCamera):
    """A libcamera camera (`camera_num`: 0, the first) read with picamera2 in a
    background thread that keeps only the newest frame, BGR, stamped at its measured
    mid-exposure (module docstring).

    Asks for `width` x `height` RGB888 frames (BGR in memory, OpenCV's order) at `fps`
    in a video configuration with `buffer_count` buffers. Raises `CameraNotFound` at
    construction when picamera2 is missing, libcamera sees no camera, the camera cannot
    be opened or gives no frame within `open_timeout_s`. A capture that raises marks the
    camera failed in `health()` (with the reason) and ends the thread; `read()` keeps
    returning the last frame.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        *,
        camera_num: int = 0,
        buffer_count: int = 4,
        open_timeout_s: float = 5.0,
    ) -> None:
        if width <= 0 or height <= 0 or fps <= 0 or camera_num < 0 or buffer_count < 1:
            raise CameraError("camera picamera2: width, height, fps and buffer_count must be > 0")
        self.camera_num, self.fps = int(camera_num), float(fps)
        self.width, self.height = int(width), int(height)
        self.model = ""  # the sensor, from global_camera_info() ("imx708_wide", ...)
        self._cam = self._open(buffer_count)
        self._slot = _CaptureThread()
        self._slot._thread = threading.Thread(
            target=self._loop, name=f"camera-picamera2-{camera_num}", daemon=True
        )
        self._slot._thread.start()
        if not self._slot._first.wait(open_timeout_s) or self._slot.read() is None:
            error = self._slot.health().error or f"gave no frame in {open_timeout_s:g} s"
            self.close()
            raise CameraNotFound(f"camera {self.describe()}: {error}")
        first = self._slot.read()
        assert first is not None
        self.height, self.width = first.image.shape[:2]  # what the camera delivers

    def describe(self) -> str:
        """The camera as a person would name it."""
        model = f" ({self.model})" if self.model else ""
        return f"picamera2 {self.camera_num}{model} {self.width}x{self.height} @ {self.fps:g} fps"

    def _open(self, buffer_count: int) -> Any:
        """The started Picamera2 (video configuration, RGB888 main stream)."""
        picamera2 = _import_picamera2()
        cameras = list(picamera2.global_camera_info())
        if not cameras:
            raise CameraNotFound(
                "camera picamera2: libcamera finds no camera (is the ribbon cable seated? "
                "`rpicam-hello --list-cameras` lists them)"
            )
        if self.camera_num >= len(cameras):
            raise CameraNotFound(
                f"camera picamera2 {self.camera_num}: libcamera finds {len(cameras)} camera(s)"
            )
        self.model = str(cameras[self.camera_num].get("Model", ""))
        try:
            cam = picamera2(self.camera_num)
        except Exception as e:  # busy (another process holds it), driver errors
            raise CameraNotFound(
                f"camera {self.describe()}: cannot be opened: {_first_line(e)}"
            ) from None
        try:
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": self.fps},
                buffer_count=buffer_count,
            )
            cam.configure(config)
            cam.start()
        except Exception as e:
            with contextlib.suppress(Exception):
                cam.close()
            raise CameraNotFound(
                f"camera {self.describe()}: cannot be started: {_first_line(e)}"
            ) from None
        return cam

    def _capture(self) -> tuple[np.ndarray, int]:
        """The next frame (BGR, a copy the camera no longer owns) and its mid-exposure."""
        request = self._cam.capture_request()
        try:
            array = request.make_array("main")
            metadata = request.get_metadata()
        finally:
            request.release()  # the buffer goes back to the camera at once
        missing = [k for k in ("SensorTimestamp", "ExposureTime") if k not in metadata]
        if missing:
            raise CameraError(f"no {' or '.join(missing)} in the request metadata")
        image = np.ascontiguousarray(array[..., :3]).copy()
        t_ns = mid_exposure_ns(
            metadata["SensorTimestamp"], metadata["ExposureTime"], boottime_to_monotonic_ns()
        )
        return image, t_ns

    def _loop(self) -> None:
        slot = self._slot
        try:
            while not slot._stop.is_set():
                image, t_ns = self._capture()
                slot._publish(image, t_ns)
        except Exception as e:  # a capture error ends the camera, never the process
            slot._fail(f"capture error: {_first_line(e)}")

    def close(self) -> None:
        """Stop the capture thread, then the camera; idempotent."""
        if self._slot.stop():  # never stop the camera under a blocked capture_request()
            with contextlib.suppress(Exception):
                self._cam.stop()
            with contextlib.suppress(Exception):
                self._cam.close()
