"""The devices a verb works with, as typed configs: a robot (a Thymio on a serial port, a
virtual Thymio over TCP, none) and a camera (OpenCV device, video file, the Raspberry Pi
camera through picamera2, synthetic, none), each a small frozen dataclass with a `kind` and
one `open(dev, ...)` that opens it into a `Devices` stack (closed together on exit).

The simulated robot and camera (`SimRobotConfig`, `SimCameraConfig`) live in
robot_ssl.simlink.devices, which also holds the one parser of the command line's
spellings (`--robot sim`, `--camera 0`, ...): nothing here looks at a device's name.
`open_devices` opens a robot and a camera config, whatever their kind.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from robot_ssl.core.config import MAX_IMAGE_PX, MAX_SEED, bounded, check_bounds
from robot_ssl.core.errors import ConfigError

__all__ = [
    "CameraDevice",
    "CameraRequest",
    "Devices",
    "NoCameraConfig",
    "NoRobotConfig",
    "OpenCVDeviceConfig",
    "Picamera2Config",
    "RobotDevice",
    "RobotLink",
    "SyntheticCameraConfig",
    "TcpThymioConfig",
    "ThymioConfig",
    "VideoFileConfig",
    "open_devices",
    "warn_if_polling",
]


class Devices(contextlib.ExitStack):
    """Opened robot, camera (and simulator pieces); closes all of them on exit."""

    robot: Any = None
    camera: Any = None
    truth: Any = None
    clock: Any = None
    camera_fps: float | None = None
    camera_size: tuple[int, int] | None = None
    metadata: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.metadata = {}

    def camera_spec(self, requested: Any) -> Any:
        """The CameraSpec to record: `requested` with the size and rate of the camera
        that was opened (a camera may not deliver what was asked for)."""
        w, h = self.camera_size if self.camera_size is not None else (None, None)
        return requested.with_overrides(w, h, self.camera_fps or None)


class RobotDevice(Protocol):
    """A robot config: `kind` names it; `open` opens it into `dev` (and, for a simulated
    robot, the simulated `camera` of the same world)."""

    kind: ClassVar[str]

    @property
    def source(self) -> str:
        """The robot in the words of its spelling (`/dev/ttyACM0`, `sim:arena_boxes`)."""
        ...

    def open(self, dev: Devices, camera: CameraDevice, robot_spec: Any, camera_spec: Any) -> None:
        """Open the robot into `dev.robot` (closed with `dev`)."""
        ...


class CameraDevice(Protocol):
    """A camera config: `kind` names it; `open` opens it into `dev.camera`."""

    kind: ClassVar[str]

    @property
    def source(self) -> str:
        """The camera in the words of its spelling (`0`, `clip.avi`, `sim`)."""
        ...

    def open(self, dev: Devices, camera_spec: Any) -> None:
        """Open the camera into `dev.camera` (closed with `dev`)."""
        ...


# -- robots ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RobotLink:
    """How a Thymio (real or virtual) is talked to: `poll` its variables instead of
    uploading the onboard program, whose watchdog stops the motors after
    `robot_watchdog_ms` without a host command."""

    poll: bool = False
    robot_watchdog_ms: int = bounded(200, 20, 10_000)

    def __post_init__(self) -> None:
        check_bounds(self, "robot link", ConfigError)

    def options(self) -> dict[str, Any]:
        """ThymioRobot.open keywords (one place, for a real Thymio and a virtual one)."""
        from firmware_bridge.onboard import OnboardConfig

        return {
            "poll": self.poll,
            "onboard": OnboardConfig(max_staleness_ms=self.robot_watchdog_ms),
        }


def _open_thymio(dev: Devices, url: str | None, source: str, link: RobotLink) -> None:
    """A Thymio at `url` (None: the first Thymio serial port) into `dev`."""
    from robot_ssl.recording.recorder import DeviceUnavailable

    try:
        from firmware_bridge.errors import FirmwareBridgeError
        from firmware_bridge.thymio import ThymioRobot
    except ImportError as e:  # pragma: no cover - installation problem
        raise DeviceUnavailable(f"robot {source}: firmware_bridge unavailable: {e}") from None
    try:
        robot = ThymioRobot.open(url, **link.options())
    except FirmwareBridgeError as e:
        raise DeviceUnavailable(f"robot {source}: {e}") from None
    dev.callback(robot.close)
    dev.robot = robot
    dev.metadata["robot_source"] = source
    dev.metadata["robot_link"] = robot.mode


@dataclass(frozen=True)
class ThymioConfig:
    """A Thymio II on a serial port (`/dev/ttyACM0`, `COM3`, a pyserial URL) or, with
    `port` "auto", the first Thymio port found."""

    kind: ClassVar[str] = "thymio"
    port: str = "auto"
    link: RobotLink = field(default_factory=RobotLink)

    @property
    def source(self) -> str:
        return self.port

    def open(self, dev: Devices, camera: CameraDevice, robot_spec: Any, camera_spec: Any) -> None:
        _open_thymio(dev, None if self.port == "auto" else self.port, self.port, self.link)


@dataclass(frozen=True)
class TcpThymioConfig:
    """A (virtual) Thymio served over TCP: Aseba Playground, `robot-ssl sim serve --tcp`,
    a Thymio behind a serial-to-TCP bridge; spelled `socket://HOST:PORT` or `tcp:HOST:PORT`."""

    kind: ClassVar[str] = "tcp"
    host: str = "127.0.0.1"
    port: int = bounded(33333, 1, 65535)
    link: RobotLink = field(default_factory=RobotLink)

    def __post_init__(self) -> None:
        check_bounds(self, "robot", ConfigError)

    @property
    def source(self) -> str:
        """The pyserial URL firmware_bridge opens: socket://HOST:PORT."""
        return f"socket://{self.host}:{self.port}"

    def open(self, dev: Devices, camera: CameraDevice, robot_spec: Any, camera_spec: Any) -> None:
        _open_thymio(dev, self.source, self.source, self.link)


@dataclass(frozen=True)
class NoRobotConfig:
    """No robot (`record` of a camera alone)."""

    kind: ClassVar[str] = "none"
    source: ClassVar[str] = "none"

    def open(self, dev: Devices, camera: CameraDevice, robot_spec: Any, camera_spec: Any) -> None:
        return None


def warn_if_polling(robot: Any) -> None:
    """One line on stderr when a real robot is polled (`--poll`, or a node that cannot run
    the onboard program): nothing on the robot stops it when this process dies without
    closing the link (kill -9, a crash of the host), so it keeps driving. Called once both
    devices are open (a failure to open the camera stays a one-line error)."""
    import sys

    if getattr(robot, "mode", None) != "poll":
        return
    print(
        f"warning: polling the robot ({robot.mode_reason or '--poll'}): no onboard watchdog,"
        " so if this process is killed the robot keeps driving at its last wheel targets",
        file=sys.stderr,
        flush=True,
    )


# -- cameras ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraRequest:
    """What to ask of a camera: image size and frame rate (None: the camera's own), the
    pixel format (`MJPG`), and whether a video file restarts at its end."""

    width: int | None = bounded(None, 1, MAX_IMAGE_PX)
    height: int | None = bounded(None, 1, MAX_IMAGE_PX)
    fps: float | None = bounded(None, 0, 1000, min_inclusive=False)
    fourcc: str | None = None
    loop_video: bool = False

    def __post_init__(self) -> None:
        check_bounds(self, "camera", ConfigError)


def _open_opencv(dev: Devices, source: str | int, request: CameraRequest) -> None:
    from robot_ssl.recording.cameras import OpenCVCamera, OpenCVCameraConfig

    cam = OpenCVCamera(
        OpenCVCameraConfig(
            source,
            width=request.width,
            height=request.height,
            fps=request.fps,
            fourcc=request.fourcc,
            loop=request.loop_video,
        )
    )
    dev.callback(cam.close)
    dev.camera, dev.camera_fps = cam, cam.fps
    dev.camera_size = (cam.width, cam.height)
    dev.metadata["camera_source"] = str(source)


@dataclass(frozen=True)
class OpenCVDeviceConfig:
    """A camera OpenCV opens: a device index (0), a device path (/dev/video0), a
    GStreamer pipeline or a stream URL (rtsp://, http://)."""

    kind: ClassVar[str] = "opencv"
    source: int | str = 0
    request: CameraRequest = field(default_factory=CameraRequest)

    def open(self, dev: Devices, camera_spec: Any) -> None:
        _open_opencv(dev, self.source, self.request)


@dataclass(frozen=True)
class VideoFileConfig:
    """A video file (or an image sequence OpenCV reads, `frames/%04d.png`) played at its
    frame rate (or `request.fps`) in real time, standing in for a camera."""

    kind: ClassVar[str] = "file"
    path: str = ""
    request: CameraRequest = field(default_factory=CameraRequest)

    @property
    def source(self) -> str:
        return self.path

    def open(self, dev: Devices, camera_spec: Any) -> None:
        _open_opencv(dev, self.path, self.request)


@dataclass(frozen=True)
class SyntheticCameraConfig:
    """A paced synthetic camera (tests, benchmarks, demos): a scrolling texture."""

    kind: ClassVar[str] = "synthetic"
    width: int = bounded(640, 1, MAX_IMAGE_PX)
    height: int = bounded(480, 1, MAX_IMAGE_PX)
    fps: float = bounded(30.0, 0, 1000, min_inclusive=False)
    seed: int = bounded(0, 0, MAX_SEED)

    def __post_init__(self) -> None:
        check_bounds(self, "synthetic camera", ConfigError)

    @property
    def source(self) -> str:
        return f"synthetic:{self.width}x{self.height}@{self.fps:g}"

    def open(self, dev: Devices, camera_spec: Any) -> None:
        from robot_ssl.recording.cameras import SyntheticCamera

        cam = SyntheticCamera(self.width, self.height, self.fps, seed=self.seed)
        dev.callback(cam.close)
        dev.camera, dev.camera_fps = cam, cam.fps
        dev.camera_size = (cam.width, cam.height)
        dev.metadata["camera_source"] = self.source


@dataclass(frozen=True)
class Picamera2Config:
    """The Raspberry Pi camera (libcamera) through picamera2, spelled
    `picamera2[:WxH[@FPS]]`: frames stamped at the sensor's measured mid-exposure
    (robot_ssl.recording.picamera2_camera). The spelling opens camera 0; `camera_num` 1
    is a Raspberry Pi 5's second camera."""

    kind: ClassVar[str] = "picamera2"
    width: int = bounded(640, 1, MAX_IMAGE_PX)
    height: int = bounded(480, 1, MAX_IMAGE_PX)
    fps: float = bounded(30.0, 0, 1000, min_inclusive=False)
    camera_num: int = bounded(0, 0, 15)

    def __post_init__(self) -> None:
        check_bounds(self, "picamera2 camera", ConfigError)

    @property
    def source(self) -> str:
        return f"picamera2:{self.width}x{self.height}@{self.fps:g}"

    def open(self, dev: Devices, camera_spec: Any) -> None:
        from robot_ssl.recording.picamera2_camera import SENSOR_MID_EXPOSURE, Picamera2Camera

        cam = Picamera2Camera(self.width, self.height, self.fps, camera_num=self.camera_num)
        dev.callback(cam.close)
        dev.camera, dev.camera_fps = cam, cam.fps
        dev.camera_size = (cam.width, cam.height)
        dev.metadata.update(
            camera_source=self.source, camera_model=cam.model, camera_stamp=SENSOR_MID_EXPOSURE
        )


@dataclass(frozen=True)
class NoCameraConfig:
    """No camera (`record` of the robot's streams alone)."""

    kind: ClassVar[str] = "none"
    source: ClassVar[str] = "none"

    def open(self, dev: Devices, camera_spec: Any) -> None:
        return None


# -- both ------------------------------------------------------------------------------------


def open_devices(
    robot: RobotDevice, camera: CameraDevice, dev: Devices, robot_spec: Any, camera_spec: Any
) -> None:
    """Open `robot` and `camera` into `dev` (closed with it), whatever their kind: the
    robot first (a simulated one opens its world's camera too), then the camera unless
    the robot opened it. A polled real robot is said in one line once both are open."""
    robot.open(dev, camera, robot_spec, camera_spec)
    if dev.camera is None:
        camera.open(dev, camera_spec)
    if robot.kind in ("thymio", "tcp"):  # a simulated robot dies with this process
        warn_if_polling(dev.robot)
