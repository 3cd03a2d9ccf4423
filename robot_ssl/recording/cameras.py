"""Cameras for recording: OpenCV capture (device, pipeline or video file) and a synthetic source
(the Raspberry Pi camera through picamera2 is robot_ssl.recording.picamera2_camera).

Both capture in their own thread and keep only the newest frame, so a reader
never gets a stale image and a slow consumer never makes the driver buffer
pile up. Each frame is stamped with `time.monotonic_ns()` the moment capture
returns (the same clock as the robot streams). `health()` reports frames
captured, read failures and the age of the newest frame, so a recorder can
tell a stalled or failed camera from a slow one.

Opening is strict: a camera that does not exist, cannot be opened or gives
no frame within `open_timeout_s` raises `CameraNotFound`/`CameraError` at
construction, before anything is recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_ssl.core.config import check_field_types
from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "CameraError",
    "CameraHealth",
    "CameraNotFound",
    "CapturedFrame",
    "OpenCVCamera",
    "OpenCVCameraConfig",
    "SyntheticCamera",
    "parse_sized_source",
    "parse_synthetic",
]


class CameraError(RobotSSLError):
    """A camera could not be opened or stopped delivering frames."""


class CameraNotFound(CameraError):
    """No camera at the given index, path, URL or pipeline (or it gave no frame)."""


@dataclass(frozen=True)
class CapturedFrame:
    """One captured image (satisfies `robot_ssl.core.devices.Frame`)."""

    t_ns: int  # capture time, time.monotonic_ns() (picamera2: the sensor's mid-exposure)
    image: np.ndarray  # uint8 (H, W, 3) BGR
    index: int  # 0, 1, 2, ... in capture order


@dataclass(frozen=True)
class CameraHealth:
    """What a recorder needs to tell a healthy camera from a stalled or failed one."""

    frames_captured: int
    failures: int  # reads that returned no image, over the whole run
    last_frame_age_s: float | None  # None before the first frame
    failed: bool  # the capture thread gave up (or the video file ended)
    error: str = ""  # why it failed, one line


class _CaptureThread:
    """Newest-frame slot plus counters shared by the capture thread and readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: CapturedFrame | None = None
        self._count = 0
        self._failures = 0
        self._error = ""
        self._failed = False
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _publish(self, image: np.ndarray, t_ns: int) -> None:
        with self._lock:
            self._frame = CapturedFrame(t_ns, image, self._count)
            self._count += 1
        self._first.set()

    def _fail(self, message: str) -> None:
        with self._lock:
            self._failed = True
            self._error = message
        self._first.set()  # wake an opener waiting for the first frame

    def read(self) -> CapturedFrame | None:
        """The newest frame (None before the first); never blocks."""
        with self._lock:
            return self._frame

    def health(self) -> CameraHealth:
        with self._lock:
            age = None
            if self._frame is not None:
                age = (time.monotonic_ns() - self._frame.t_ns) / 1e9
            return CameraHealth(self._count, self._failures, age, self._failed, self._error)

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Ask the capture thread to end and wait for it; True when it has ended."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=timeout_s)
        return t is None or not t.is_alive()


class _ThreadedCamera:
    """Camera protocol over a `_CaptureThread` (subclasses start the thread)."""

    _slot: _CaptureThread

    def read(self) -> CapturedFrame | None:
        """The newest frame (None before the first); never blocks."""
        return self._slot.read()

    def health(self) -> CameraHealth:
        """Frames captured, failures, newest frame's age, failed flag."""
        return self._slot.health()

    def close(self) -> None:
        """Stop the capture thread; idempotent."""
        self._slot.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# OpenCV


@dataclass
class OpenCVCameraConfig:
    """Where to capture from and how.

    `source` is a device index (0 or "0"), a device path ("/dev/video0"), a
    GStreamer pipeline (anything containing "!", ending in an appsink), a URL
    (rtsp://, http://) or a video file. Video files are played at their own
    frame rate (or `fps` when given), paced in real time, so they stand in
    for a camera in demos and tests.
    """

    source: str | int = 0
    width: int | None = None  # requested capture size (devices); None keeps the default
    height: int | None = None
    fps: float | None = None  # requested rate (devices) or playback rate (files)
    fourcc: str | None = None  # e.g. "MJPG" to get a USB camera's compressed mode
    loop: bool = False  # restart a video file at its end instead of failing
    open_timeout_s: float = 5.0  # the first frame must arrive within this
    stall_timeout_s: float = 2.0  # no frame for this long (while reads fail) -> failed
    max_consecutive_failures: int = 50  # failed reads in a row -> failed

    def __post_init__(self) -> None:
        if isinstance(self.source, str) and self.source.strip().isdigit():
            self.source = int(self.source.strip())
        check_field_types(self, "camera", CameraError)  # integer sizes, finite rates and timeouts
        if self.width is not None and self.width <= 0:
            raise CameraError("camera: width must be > 0")
        if self.height is not None and self.height <= 0:
            raise CameraError("camera: height must be > 0")
        if self.fps is not None and self.fps <= 0:
            raise CameraError("camera: fps must be > 0")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise CameraError(f"camera: fourcc must have 4 characters, not {self.fourcc!r}")
        if self.open_timeout_s <= 0 or self.stall_timeout_s <= 0:
            raise CameraError("camera: timeouts must be > 0")

    @property
    def kind(self) -> str:
        """'index', 'device', 'pipeline', 'url' or 'file'."""
        s = self.source
        if isinstance(s, int):
            return "index"
        if "!" in s:
            return "pipeline"
        if re.match(r"^[a-z][a-z0-9+.-]*://", s):
            return "url"
        if s.startswith("/dev/"):
            return "device"
        return "file"


class OpenCVCamera(_ThreadedCamera):
    """`cv2.VideoCapture` in a background thread that keeps only the newest frame.

    Raises `CameraNotFound` at construction when the source does not exist or
    gives no frame within `open_timeout_s`. Live sources are read as fast as
    the driver delivers; video files are paced to their frame rate, each frame
    stamped when it is due. After `max_consecutive_failures` failed reads (or
    `stall_timeout_s` without a frame) the camera is marked failed in
    `health()` and the thread ends; `read()` keeps returning the last frame.
    """

    def __init__(self, config: OpenCVCameraConfig | str | int) -> None:
        import cv2  # only the OpenCV camera imports cv2 for capture

        self._cv2 = cv2
        self.config = (
            config if isinstance(config, OpenCVCameraConfig) else OpenCVCameraConfig(config)
        )
        self._slot = _CaptureThread()
        self._cap = self._open()
        self._file_fps = self._playback_fps()
        self._slot._thread = threading.Thread(
            target=self._loop, name=f"camera-{self.config.source}", daemon=True
        )
        self._slot._thread.start()
        if not self._slot._first.wait(self.config.open_timeout_s):
            self.close()
            raise CameraNotFound(
                f"camera {self.describe()}: opened but gave no frame in "
                f"{self.config.open_timeout_s:g} s"
            )
        health = self._slot.health()
        if health.frames_captured == 0:
            self.close()
            raise CameraNotFound(f"camera {self.describe()}: {health.error or 'gave no frame'}")
        first = self._slot.read()
        assert first is not None
        self.height, self.width = first.image.shape[:2]

    def describe(self) -> str:
        """The source as a person would name it."""
        c = self.config
        return f"{c.kind} {c.source!r}" if c.kind != "index" else f"index {c.source}"

    @property
    def fps(self) -> float | None:
        """Nominal frame rate: the file's (or the requested) rate; None when the driver won't say."""
        if self._file_fps is not None:
            return self._file_fps
        if self.config.fps is not None:
            return self.config.fps
        fps = float(self._cap.get(self._cv2.CAP_PROP_FPS) or 0.0)
        return fps if 0 < fps < 1000 else None

    def _open(self):
        cv2 = self._cv2
        c = self.config
        kind = c.kind
        if kind == "index":
            linux = sys.platform.startswith("linux")
            if linux and not Path(f"/dev/video{c.source}").exists():
                raise CameraNotFound(
                    f"camera index {c.source}: /dev/video{c.source} does not exist"
                )
            cap = cv2.VideoCapture(int(c.source), cv2.CAP_V4L2 if linux else cv2.CAP_ANY)
        elif kind == "device":
            path = Path(str(c.source))
            if not path.exists():
                raise CameraNotFound(f"camera {path}: no such device")
            if not stat.S_ISCHR(path.stat().st_mode):
                raise CameraNotFound(f"camera {path}: not a video device")
            if not os.access(path, os.R_OK | os.W_OK):
                raise CameraNotFound(f"camera {path}: permission denied (join the 'video' group)")
            cap = cv2.VideoCapture(str(path), cv2.CAP_V4L2)
        elif kind == "pipeline":
            if "GStreamer:                   YES" not in cv2.getBuildInformation():
                raise CameraNotFound(
                    "camera: a GStreamer pipeline needs OpenCV built with GStreamer "
                    "(this build has none; install the distribution's python3-opencv)"
                )
            cap = cv2.VideoCapture(str(c.source), cv2.CAP_GSTREAMER)
        elif kind == "url":
            cap = cv2.VideoCapture(str(c.source), cv2.CAP_FFMPEG)
        else:
            path = Path(str(c.source))
            if not path.is_file():
                raise CameraNotFound(
                    f"camera {c.source!r}: no such video file (and not an index, /dev path, "
                    "URL or GStreamer pipeline)"
                )
            cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise CameraNotFound(f"camera {self.describe()}: cannot be opened")
        if kind in ("index", "device"):
            if c.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
            if c.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            if c.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            if c.fps:
                cap.set(cv2.CAP_PROP_FPS, c.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
        return cap

    def _playback_fps(self) -> float | None:
        if self.config.kind != "file":
            return None
        if self.config.fps is not None:
            return self.config.fps
        fps = float(self._cap.get(self._cv2.CAP_PROP_FPS) or 0.0)
        return fps if 0 < fps < 1000 else 30.0

    def _loop(self) -> None:
        slot, c, cv2 = self._slot, self.config, self._cv2
        period_ns = int(1e9 / self._file_fps) if self._file_fps else 0
        next_due = time.monotonic_ns()
        consecutive = 0
        last_ok = time.monotonic()
        try:
            while not slot._stop.is_set():
                if period_ns:
                    ok, image = self._cap.read()
                else:  # live: stamp when the driver hands the frame over, before decoding
                    ok, image = self._cap.grab(), None
                    t_ns = time.monotonic_ns()
                    if ok:
                        ok, image = self._cap.retrieve()
                if period_ns:  # a file: hold each frame until it is due
                    if not ok and c.loop and slot._count > 0:
                        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, image = self._cap.read()
                    if not ok:
                        slot._fail("video file ended" if slot._count else "video file has no frame")
                        return
                    delay = (next_due - time.monotonic_ns()) / 1e9
                    if delay > 0 and slot._stop.wait(delay):
                        return
                    next_due = max(next_due + period_ns, time.monotonic_ns() - period_ns)
                    t_ns = time.monotonic_ns()
                if ok and image is not None:
                    consecutive = 0
                    last_ok = time.monotonic()
                    if image.ndim == 2:
                        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                    slot._publish(image, t_ns)
                    continue
                consecutive += 1
                with slot._lock:
                    slot._failures += 1
                if (
                    consecutive >= c.max_consecutive_failures
                    or time.monotonic() - last_ok > c.stall_timeout_s
                ):
                    slot._fail(f"{consecutive} failed reads in a row (unplugged?)")
                    return
                slot._stop.wait(0.01)
        except Exception as e:  # a driver exception must not kill the process silently
            slot._fail(f"capture error: {e}".splitlines()[0])

    def close(self) -> None:
        """Stop the capture thread and release the device; idempotent."""
        if self._slot.stop():  # never release under a blocked read()
            with contextlib.suppress(Exception):
                self._cap.release()


# --------------------------------------------------------------------------------------
# Synthetic


class SyntheticCamera(_ThreadedCamera):
    """A paced camera that draws frames in its own thread (benchmarks, tests, demos).

    Frames are a textured scene scrolling sideways with the frame number
    written on it, so JPEG sizes and encode times resemble a real camera's
    more than a flat or pure-noise image would. `fail_after_frames` makes the
    camera stop and report failure after that many frames (fault tests).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        *,
        seed: int = 0,
        fail_after_frames: int | None = None,
    ) -> None:
        if width <= 0 or height <= 0 or fps <= 0:
            raise CameraError("synthetic camera: width, height and fps must be > 0")
        import cv2

        self._cv2 = cv2
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.fail_after_frames = fail_after_frames
        rng = np.random.default_rng(seed)
        # Smooth coloured texture plus fine noise, twice as wide as a frame so it can scroll.
        small = rng.integers(0, 256, (max(height // 16, 2), max(width // 8, 2), 3), np.uint8)
        base = cv2.resize(small, (2 * width, height), interpolation=cv2.INTER_CUBIC)
        noise = rng.integers(-4, 5, base.shape, dtype=np.int16)  # sensor-like grain
        self._base = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        self._slot = _CaptureThread()
        self._slot._thread = threading.Thread(target=self._loop, name="camera-synth", daemon=True)
        self._slot._thread.start()

    def describe(self) -> str:
        return f"synthetic {self.width}x{self.height} @ {self.fps:g} fps"

    def _render(self, index: int) -> np.ndarray:
        shift = (index * 4) % self.width
        image = np.ascontiguousarray(self._base[:, shift : shift + self.width])
        self._cv2.putText(
            image, str(index), (10, 40), self._cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2
        )
        return image

    def _loop(self) -> None:
        slot = self._slot
        period_ns = round(1e9 / self.fps)
        start = time.monotonic_ns()
        k = 0
        while not slot._stop.is_set():
            if self.fail_after_frames is not None and slot._count >= self.fail_after_frames:
                slot._fail("synthetic failure")
                return
            image = self._render(k)
            due = start + k * period_ns
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0 and slot._stop.wait(delay):
                return
            slot._publish(image, time.monotonic_ns())
            k += 1
            behind = (time.monotonic_ns() - start) // period_ns
            if behind > k + 1:  # fell behind (paused process): skip, as a real camera would
                k = int(behind)


def parse_synthetic(source: str) -> tuple[int, int, float] | None:
    """(width, height, fps) for 'synthetic[:WxH[@FPS]]', None for any other source."""
    return parse_sized_source("synthetic", source)


def parse_sized_source(name: str, source: str) -> tuple[int, int, float] | None:
    """(width, height, fps) for 'NAME[:WxH[@FPS]]' (640x480 at 30 by default), None
    for any other source; CameraError in one line for a NAME: that does not fit."""
    source = source.strip()
    if source != name and not source.startswith(f"{name}:"):
        return None
    m = re.fullmatch(re.escape(name) + r"(?::(\d+)x(\d+)(?:@(\d+(?:\.\d*)?))?)?", source)
    if m is None:
        raise CameraError(f"camera {source!r}: expected {name}[:WxH[@FPS]], e.g. 160x120@20")
    w = int(m.group(1) or 640)
    h = int(m.group(2) or 480)
    fps = float(m.group(3) or 30.0)
    if not (1 <= w <= 8192 and 1 <= h <= 8192 and 0 < fps <= 1000):
        raise CameraError(f"camera {source!r}: size 1..8192 and 0 < fps <= 1000 needed")
    return w, h, fps
