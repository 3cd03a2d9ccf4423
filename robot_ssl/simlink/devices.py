"""The simulator as devices: `--robot sim[:WORLD]` in-process or as a virtual Thymio on a
pty or TCP, `--camera sim`; and the one `open_devices` that `record` and `run` share.

`sim` is imported only when a simulated device is asked for, so a robot that records
from its own Thymio and camera never loads the simulator.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.recording.device_setup import (
    Devices,
    open_camera,
    open_robot,
    thymio_options,
    warn_if_polling,
)
from robot_ssl.simlink.simulator import make_simulator, sim_metadata

__all__ = ["is_sim", "open_devices", "open_sim", "open_virtual_thymio"]


def is_sim(robot: str) -> bool:
    """True for `--robot sim` and `--robot sim:WORLD`."""
    return robot == "sim" or robot.startswith("sim:")


def open_devices(
    args: Any, dev: Devices, robot_spec: Any, camera_spec: Any, sim_link: str = "direct"
) -> None:
    """Open the robot and the camera named by `args.robot` / `args.camera` into `dev`
    (closed with it): a Thymio URL or `sim[:WORLD]` (in-process, or with `sim_link`
    "pty"/"tcp" a virtual Thymio speaking Aseba), an OpenCV source, `synthetic` or `sim`.
    The one place that knows device names, shared by `record` and `run`."""
    dev.metadata = dev.metadata if hasattr(dev, "metadata") else {}
    if is_sim(args.robot) and sim_link != "direct":
        _open_virtual_thymio_devices(args, dev, robot_spec, camera_spec)
    elif is_sim(args.robot):
        open_sim(args, dev, robot_spec, camera_spec)
    else:
        open_robot(args, dev)
    if dev.camera is None:
        open_camera(args, dev)
    if not is_sim(args.robot):  # a simulated robot dies with this process
        warn_if_polling(dev.robot)


def _open_virtual_thymio_devices(
    args: Any, dev: Devices, robot_spec: Any, camera_spec: Any
) -> None:
    from robot_ssl.recording.recorder import DeviceUnavailable

    camera_spec = camera_spec.with_overrides(args.width, args.height, args.fps)
    world = args.robot.partition(":")[2] or None
    try:
        robot, camera, sim = dev.enter_context(
            open_virtual_thymio(
                world,
                args.seed,
                robot_spec=robot_spec,
                camera_spec=camera_spec,
                transport=args.sim_link,
                robot_options=thymio_options(args),
            )
        )
    except RobotSSLError:
        raise
    except Exception as e:  # SimError, FirmwareBridgeError
        raise DeviceUnavailable(f"virtual Thymio: {e}") from None
    dev.robot, dev.truth = robot, sim.robot.truth
    dev.metadata.update(
        world=sim.world.name,
        seed=args.seed,
        simulated=True,
        robot_source=robot.link.url,
        robot_link=robot.mode,
    )
    # the VirtualThymio keeps its own robot clocks: only the camera's and the truth's here
    meta = sim_metadata(sim, camera=args.camera == "sim")
    meta.pop("sim_robot_timing")
    dev.metadata.update(meta)
    if args.camera == "sim":
        dev.camera = camera
        dev.camera_fps = camera.fps
        dev.camera_size = (camera_spec.width, camera_spec.height)
        dev.metadata["camera_source"] = "sim"


def open_sim(args: Any, dev: Devices, robot_spec: Any, camera_spec: Any) -> None:
    """The simulator in-process, stepped in real time by a background thread.

    Its clock starts at time.monotonic_ns(), so simulated timestamps run on with
    the real camera's when `--camera` is not `sim`. `sim` alone draws a world
    from `--seed`; `sim:WORLD` loads a scenario by name or file.
    """
    import threading
    import time

    from robot_ssl.recording.recorder import DeviceUnavailable

    try:  # the CLI may wire the simulator, the library never does
        from robot_ssl.simlink.simulator import make_simulator
        from sim.errors import SimError
    except ImportError as e:  # pragma: no cover - installation problem
        raise DeviceUnavailable(f"the simulator is not available: {e}") from None
    camera_spec = camera_spec.with_overrides(args.width, args.height, args.fps)
    try:
        sim = make_simulator(
            args.robot.partition(":")[2] or None,
            args.seed,
            split="train",
            robot_spec=robot_spec,
            camera_spec=camera_spec,
            camera=args.camera == "sim",
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
        seed=args.seed,
        simulated=True,
        robot_source=args.robot,
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
