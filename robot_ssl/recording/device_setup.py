"""Opening the devices a CLI verb works with: a robot (Thymio URL or the simulator) and
a camera (OpenCV source, synthetic, or the simulator's), closed together on exit.

Shared by `record` and `run`, so both accept the same `--robot` / `--camera` values.
The simulator is wired in here, in the CLI layer; library modules never import `sim`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from typing import Any


class Devices(contextlib.ExitStack):
    """Opened robot, camera (and simulator pieces); closes all of them on exit."""

    robot: Any = None
    camera: Any = None
    truth: Any = None
    clock: Any = None
    camera_fps: float | None = None
    camera_size: tuple[int, int] | None = None
    metadata: dict[str, Any]


def open_robot(args: argparse.Namespace, dev: Devices) -> None:
    from robot_ssl.recording.recorder import DeviceUnavailable

    source = args.robot
    if source == "none":
        return
    if source == "sim" or source.startswith("sim:"):
        raise DeviceUnavailable("internal: the simulator is opened by open_sim")
    try:
        from firmware_bridge.errors import FirmwareBridgeError
        from firmware_bridge.thymio import ThymioRobot
    except ImportError as e:  # pragma: no cover - installation problem
        raise DeviceUnavailable(f"robot {source}: firmware_bridge unavailable: {e}") from None
    try:
        robot = ThymioRobot.open(None if source == "auto" else source)
    except FirmwareBridgeError as e:
        raise DeviceUnavailable(f"robot {source}: {e}") from None
    dev.callback(robot.close)
    dev.robot = robot
    dev.metadata["robot_source"] = source


def open_camera(args: argparse.Namespace, dev: Devices) -> None:
    from robot_ssl.recording.cameras import (
        OpenCVCamera,
        OpenCVCameraConfig,
        SyntheticCamera,
        parse_synthetic,
    )

    source = args.camera
    if source == "none":
        return
    synth = parse_synthetic(source)
    if synth is not None:
        w, h, fps = synth
        cam = SyntheticCamera(args.width or w, args.height or h, args.fps or fps, seed=args.seed)
        dev.camera_fps = cam.fps
    else:
        cam = OpenCVCamera(
            OpenCVCameraConfig(
                source,
                width=args.width,
                height=args.height,
                fps=args.fps,
                fourcc=args.fourcc,
                loop=args.loop_video,
            )
        )
        dev.camera_fps = cam.fps
    dev.callback(cam.close)
    dev.camera = cam
    dev.camera_size = (cam.width, cam.height)
    dev.metadata["camera_source"] = source


def open_sim(args: argparse.Namespace, dev: Devices, robot_spec, camera_spec) -> None:
    """The simulator in-process, stepped in real time by a background thread.

    Its clock starts at time.monotonic_ns(), so simulated timestamps run on with
    the real camera's when `--camera` is not `sim`. `sim` alone draws a world
    from `--seed`; `sim:WORLD` loads a scenario by name or file.
    """
    import threading
    import time

    from robot_ssl.recording.recorder import DeviceUnavailable

    try:  # the CLI may wire the simulator, the library never does
        from robot_ssl.cli.sim import make_simulator
        from sim.errors import SimError
    except ImportError as e:  # pragma: no cover - installation problem
        raise DeviceUnavailable(f"the simulator is not available: {e}") from None
    changes = {"width": args.width, "height": args.height, "fps": args.fps}
    camera_spec = dataclasses.replace(camera_spec, **{k: v for k, v in changes.items() if v})
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
    dev.metadata.update(world=world.name, seed=args.seed, simulated=True, robot_source=args.robot)
    if sim.camera is not None:
        dev.camera = sim.camera
        dev.camera_fps = sim.camera.fps
        dev.camera_size = (sim.camera_params.width, sim.camera_params.height)
        dev.metadata["camera_source"] = "sim"
