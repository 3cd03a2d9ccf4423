"""The simulated devices (`SimRobotConfig`, `SimCameraConfig`) and the one parser of the
command line's device spellings (`parse_devices`): `--robot sim[:WORLD]` (in-process, or
with `--sim-link pty|tcp` a virtual Thymio speaking Aseba), `/dev/ttyACM0`, `auto`,
`socket://HOST:PORT` or `tcp:HOST:PORT`, `none`; `--camera 0`, `/dev/video0`, a pipeline
or URL, a video file, `synthetic[:WxH[@FPS]]`, `picamera2[:WxH[@FPS]]` (the Raspberry Pi
camera), `sim`, `none`. Everything else chooses devices by their typed config's `kind`;
`open_devices` opens a robot and a camera config.

`sim` is imported only when a simulated device is opened, so a robot that records from
its own Thymio and camera never loads the simulator.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robot_ssl.core.config import MAX_SEED, bounded, check_bounds
from robot_ssl.core.errors import ConfigError, RobotSSLError
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.recording.device_setup import (
    CameraDevice,
    CameraRequest,
    Devices,
    NoCameraConfig,
    NoRobotConfig,
    OpenCVDeviceConfig,
    Picamera2Config,
    RobotDevice,
    RobotLink,
    SyntheticCameraConfig,
    TcpThymioConfig,
    ThymioConfig,
    VideoFileConfig,
    open_devices,
)
from robot_ssl.simlink.simulator import make_simulator, sim_metadata

__all__ = [
    "DeviceOptions",
    "DeviceSpellingError",
    "SimCameraConfig",
    "SimRobotConfig",
    "open_devices",
    "open_virtual_thymio",
    "parse_camera",
    "parse_devices",
    "parse_robot",
]

SIM_LINKS = ("direct", "pty", "tcp")


class DeviceSpellingError(RobotSSLError):
    """A `--robot` / `--camera` spelling that names no device, or two that do not fit."""


@dataclass(frozen=True)
class SimCameraConfig:
    """The camera of the simulated robot's world (needs a `SimRobotConfig`, which opens
    it); `request` may change its image size and frame rate."""

    kind: ClassVar[str] = "sim"
    source: ClassVar[str] = "sim"
    request: CameraRequest = field(default_factory=CameraRequest)

    def open(self, dev: Devices, camera_spec: Any) -> None:
        raise DeviceSpellingError("the simulated camera needs the simulated robot (--robot sim)")


@dataclass(frozen=True)
class SimRobotConfig:
    """The simulator in `world` (a scenario name or file; None: drawn from `seed`), in
    real time: in-process (`link` "direct") or served as a virtual Thymio II on a
    pseudo-terminal or TCP and talked to through firmware_bridge (`link` "pty"/"tcp",
    with `robot_link`), exactly as a real robot is."""

    kind: ClassVar[str] = "sim"
    world: str | None = None
    seed: int = bounded(0, 0, MAX_SEED)
    link: str = "direct"
    robot_link: RobotLink = field(default_factory=RobotLink)

    def __post_init__(self) -> None:
        check_bounds(self, "simulated robot", ConfigError)
        if self.link not in SIM_LINKS:
            raise ConfigError(f"simulated robot.link: one of {SIM_LINKS}, not {self.link!r}")

    @property
    def source(self) -> str:
        """The spelling: `sim` or `sim:WORLD`."""
        return "sim" if self.world is None else f"sim:{self.world}"

    def open(self, dev: Devices, camera: CameraDevice, robot_spec: Any, camera_spec: Any) -> None:
        """The simulator, and its camera when `camera` is a `SimCameraConfig`."""
        sim_camera = isinstance(camera, SimCameraConfig)
        if sim_camera:
            r = camera.request
            camera_spec = camera_spec.with_overrides(r.width, r.height, r.fps)
        if self.link == "direct":
            _open_sim(self, dev, robot_spec, camera_spec, sim_camera)
        else:
            _open_virtual_thymio_devices(self, dev, robot_spec, camera_spec, sim_camera)


@dataclass(frozen=True)
class DeviceOptions:
    """How the spelled devices are opened (the options beside `--robot` and `--camera`):
    `sim_link` for a simulated robot, `link` for a Thymio, `request` for a camera."""

    sim_link: str = "direct"
    link: RobotLink = field(default_factory=RobotLink)
    request: CameraRequest = field(default_factory=CameraRequest)


# -- the one parser of the spellings ---------------------------------------------------------

_TCP = re.compile(r"(?:socket://|tcp:)(?P<host>[^:/?]+):(?P<port>\d+)/?")


def parse_robot(text: str, *, seed: int = 0, options: DeviceOptions = DeviceOptions()) -> Any:
    """The robot config `text` spells: `none`, `sim[:WORLD]`, `socket://HOST:PORT` or
    `tcp:HOST:PORT`, else a Thymio serial port (`auto`: the first one found)."""
    text = text.strip()
    if not text:
        raise DeviceSpellingError("--robot: empty (a serial port, socket://HOST:PORT, sim, none)")
    if text == "none":
        return NoRobotConfig()
    if text == "sim" or text.startswith("sim:"):
        world = text.partition(":")[2] or None
        return SimRobotConfig(world, seed, options.sim_link, options.link)
    if text.startswith(("socket://", "tcp:")):
        m = _TCP.fullmatch(text)
        if m is None or not 1 <= int(m["port"]) <= 65535:
            raise DeviceSpellingError(
                f"--robot {text}: expected socket://HOST:PORT or tcp:HOST:PORT"
            )
        return TcpThymioConfig(m["host"], int(m["port"]), options.link)
    return ThymioConfig(text, options.link)


def parse_camera(text: str, *, seed: int = 0, options: DeviceOptions = DeviceOptions()) -> Any:
    """The camera config `text` spells: `none`, `sim`, `synthetic[:WxH[@FPS]]`,
    `picamera2[:WxH[@FPS]]` (the Raspberry Pi camera), a device index or path, a
    GStreamer pipeline (has `!`) or stream URL, else a video file."""
    from robot_ssl.recording.cameras import parse_synthetic
    from robot_ssl.recording.picamera2_camera import parse_picamera2

    text = text.strip()
    r = options.request
    if not text:
        raise DeviceSpellingError("--camera: empty (0, /dev/video0, a video file, sim, none)")
    if text == "none":
        return NoCameraConfig()
    if text == "sim":
        return SimCameraConfig(r)
    synthetic = parse_synthetic(text)
    if synthetic is not None:
        w, h, fps = synthetic
        return SyntheticCameraConfig(r.width or w, r.height or h, r.fps or fps, seed)
    picamera2 = parse_picamera2(text)
    if picamera2 is not None:
        w, h, fps = picamera2
        return Picamera2Config(r.width or w, r.height or h, r.fps or fps)
    if text.isdigit():
        return OpenCVDeviceConfig(int(text), r)
    if text.startswith("/dev/") or "!" in text or "://" in text:
        return OpenCVDeviceConfig(text, r)
    return VideoFileConfig(text, r)


def parse_devices(
    robot: str, camera: str, *, seed: int = 0, options: DeviceOptions = DeviceOptions()
) -> tuple[RobotDevice, CameraDevice]:
    """The (robot, camera) configs of `--robot ROBOT --camera CAMERA` and the options
    beside them; refuses a simulated camera without the simulated robot, and `--sim-link`
    without a simulated robot (one line)."""
    if options.sim_link not in SIM_LINKS:
        raise DeviceSpellingError(f"--sim-link: one of {', '.join(SIM_LINKS)}")
    r = parse_robot(robot, seed=seed, options=options)
    c = parse_camera(camera, seed=seed, options=options)
    simulated = isinstance(r, SimRobotConfig)
    if isinstance(c, SimCameraConfig) and not simulated:
        raise DeviceSpellingError(
            "--camera sim needs --robot sim[:WORLD] (one simulated world; for a virtual "
            "Thymio on a pty add --sim-link pty)"
        )
    if options.sim_link != "direct" and not simulated:
        raise DeviceSpellingError("--sim-link needs --robot sim[:WORLD]")
    return r, c


# -- opening the simulated devices -----------------------------------------------------------


def _open_virtual_thymio_devices(
    cfg: SimRobotConfig, dev: Devices, robot_spec: Any, camera_spec: Any, sim_camera: bool
) -> None:
    from robot_ssl.recording.recorder import DeviceUnavailable

    try:
        robot, camera, sim = dev.enter_context(
            open_virtual_thymio(
                cfg.world,
                cfg.seed,
                robot_spec=robot_spec,
                camera_spec=camera_spec,
                transport=cfg.link,
                robot_options=cfg.robot_link.options(),
            )
        )
    except RobotSSLError:
        raise
    except Exception as e:  # SimError, FirmwareBridgeError
        raise DeviceUnavailable(f"virtual Thymio: {e}") from None
    dev.robot, dev.truth = robot, sim.robot.truth
    dev.metadata.update(
        world=sim.world.name,
        seed=cfg.seed,
        simulated=True,
        robot_source=robot.link.url,
        robot_link=robot.mode,
    )
    # the VirtualThymio keeps its own robot clocks: only the camera's and the truth's here
    meta = sim_metadata(sim, camera=sim_camera)
    meta.pop("sim_robot_timing")
    dev.metadata.update(meta)
    if sim_camera:
        dev.camera = camera
        dev.camera_fps = camera.fps
        dev.camera_size = (camera_spec.width, camera_spec.height)
        dev.metadata["camera_source"] = "sim"


def _open_sim(
    cfg: SimRobotConfig, dev: Devices, robot_spec: Any, camera_spec: Any, sim_camera: bool
) -> None:
    """The simulator in-process, stepped in real time by a background thread.

    Its clock starts at time.monotonic_ns(), so simulated timestamps run on with
    the real camera's when the camera is not the simulator's.
    """
    import threading

    from robot_ssl.recording.recorder import DeviceUnavailable

    try:  # the CLI may wire the simulator, the library never does
        from sim.errors import SimError
    except ImportError as e:  # pragma: no cover - installation problem
        raise DeviceUnavailable(f"the simulator is not available: {e}") from None
    try:
        sim = make_simulator(
            cfg.world,
            cfg.seed,
            split="train",
            robot_spec=robot_spec,
            camera_spec=camera_spec,
            camera=sim_camera,
            start_ns=time.monotonic_ns(),
            realtime=True,
        )
        world = sim.world
    except SimError as e:
        raise DeviceUnavailable(f"simulator: {e}") from None
    sim.advance_to(time.monotonic_ns())  # catch up the set-up time: sim time = monotonic
    stop = threading.Event()
    stepper = threading.Thread(target=sim.run_realtime, args=(stop,), name="sim", daemon=True)
    stepper.start()
    dev.callback(stepper.join, 2.0)
    dev.callback(stop.set)
    dev.callback(sim.robot.close)
    dev.robot, dev.clock, dev.truth = sim.robot, sim.clock, sim.robot.truth
    dev.metadata.update(
        world=world.name,
        seed=cfg.seed,
        simulated=True,
        robot_source=cfg.source,
        **sim_metadata(sim),
    )
    if sim.camera is not None:
        dev.camera = sim.camera
        dev.camera_fps = sim.camera.fps
        dev.camera_size = (sim.camera_params.width, sim.camera_params.height)
        dev.metadata["camera_source"] = "sim"


@contextlib.contextmanager
def open_virtual_thymio(
    world: Any = None,
    seed: int = 0,
    *,
    split: str = "train",
    robot_spec: RobotSpec | None = None,
    camera_spec: CameraSpec | None = None,
    transport: str = "pty",
    time_scale: float = 1.0,
    robot_options: dict[str, Any] | None = None,
    layout: str = "playground",
) -> Iterator[tuple[Any, Any, Any]]:
    """A simulated Thymio II behind the Aseba protocol, opened like a real one.

    Yields (robot, camera, sim): `robot` is a firmware_bridge ThymioRobot connected over
    a pseudo-terminal (`transport="pty"`, a /dev/pts/N path like a USB serial port) or
    TCP (`"tcp"`, socket://127.0.0.1:PORT), `camera` the SimCamera of the same
    simulation, stepped in real time by the VirtualThymio. The simulator's clock starts
    at time.monotonic_ns(), so frame and reading timestamps share one clock. The robot
    runs the onboard program like a real Thymio unless `robot_options` says `poll`
    (ThymioRobot.open keywords). `layout` is the Thymio it is on the wire ("playground"
    or "firmware14"). Everything is closed (motors stopped first) on exit.
    """
    from firmware_bridge.thymio import ThymioRobot
    from sim.virtual_thymio import VirtualThymio

    if transport not in ("pty", "tcp"):
        raise ValueError(f"transport must be 'pty' or 'tcp', not {transport!r}")
    sim = make_simulator(
        world,
        seed,
        split=split,
        robot_spec=robot_spec,
        camera_spec=camera_spec,
        camera=True,
        start_ns=time.monotonic_ns(),
        stream=False,  # the VirtualThymio is the robot: it reads the simulator directly
    )
    # Building the simulator (renderer, textures) took a while: catch its clock up with
    # the wall clock (the robot stands still) so frames and readings share one clock.
    sim.advance_to(time.monotonic_ns())
    with VirtualThymio(sim, time_scale=time_scale, layout=layout) as vt:
        if transport == "pty":
            url = vt.serve_pty()
        else:
            host, port = vt.serve_tcp("127.0.0.1", 0)
            url = f"socket://{host}:{port}"
        robot = ThymioRobot.open(url, **(robot_options or {}))
        try:
            yield robot, sim.camera, sim
        finally:
            robot.close()
