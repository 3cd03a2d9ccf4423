"""Opening the devices a CLI verb works with: a robot (Thymio URL or the simulator) and
a camera (OpenCV source, synthetic, or the simulator's), closed together on exit.

Shared by `record` and `run`, so both accept the same `--robot` / `--camera` values.
The simulator's devices are opened by robot_ssl.simlink.devices.
"""

from __future__ import annotations

import argparse
import contextlib
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

    def camera_spec(self, requested: Any) -> Any:
        """The CameraSpec to record: `requested` with the size and rate of the camera
        that was opened (a camera may not deliver what was asked for)."""
        w, h = self.camera_size if self.camera_size is not None else (None, None)
        return requested.with_overrides(w, h, self.camera_fps or None)


def thymio_options(args: argparse.Namespace) -> dict[str, Any]:
    """ThymioRobot.open keywords from `--poll` and `--robot-watchdog-ms` (one place, for a
    real Thymio and the virtual one)."""
    from firmware_bridge.onboard import OnboardConfig

    return {
        "poll": bool(getattr(args, "poll", False)),
        "onboard": OnboardConfig(max_staleness_ms=int(getattr(args, "robot_watchdog_ms", 200))),
    }


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
        robot = ThymioRobot.open(None if source == "auto" else source, **thymio_options(args))
    except FirmwareBridgeError as e:
        raise DeviceUnavailable(f"robot {source}: {e}") from None
    dev.callback(robot.close)
    dev.robot = robot
    dev.metadata["robot_source"] = source
    dev.metadata["robot_link"] = robot.mode


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
