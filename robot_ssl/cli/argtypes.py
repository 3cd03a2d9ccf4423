"""argparse types for numeric options: finite and in range, else a one-line usage error.

    p.add_argument("--duration", type=finite_float(min=0, min_inclusive=False))
    $ robot-ssl record --duration nan ...
    robot-ssl record: error: argument --duration: must be a finite number > 0, got 'nan'

argparse prints the usage and that line and exits with status 2. The range words
come from `robot_ssl.core.config.describe_range`, as in the config dataclasses' checks.
An option that sets a config field takes its bounds from the field (`for_field`), so
they are written once; the shared limits (`MAX_THREADS`, ...) come from core.config.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from robot_ssl.core.config import (
    MAX_BOOTSTRAP,
    MAX_IMAGE_PX,
    MAX_INPUT_PX,
    MAX_SEED,
    MAX_THREADS,
    describe_range,
    field_bounds,
    in_range,
    number_kind,
)

__all__ = [
    "BOOTSTRAP",
    "IMAGE_SIZE",
    "INPUT_SIZE",
    "JPEG_QUALITY",
    "PORT",
    "SEED",
    "THREADS",
    "finite_float",
    "for_field",
    "int_range",
    "non_negative_float",
    "positive_float",
    "positive_int",
]


def finite_float(
    min: float | None = None,
    max: float | None = None,
    *,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> Callable[[str], float]:
    """A type that parses a finite float within the bounds (nan and inf never pass)."""
    bounds = dict(min=min, max=max, min_inclusive=min_inclusive, max_inclusive=max_inclusive)
    what = describe_range(**bounds)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not in_range(value, **bounds):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "finite_float"
    return parse


def int_range(min: int | None = None, max: int | None = None) -> Callable[[str], int]:
    """A type that parses a decimal integer in min..max (either bound may be open)."""
    what = describe_range(integer=True, min=min, max=max)

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not in_range(value, integer=True, min=min, max=max):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = "int_range"
    return parse


def positive_float() -> Callable[[str], float]:
    """finite_float > 0: durations, rates, tolerances."""
    return finite_float(min=0, min_inclusive=False)


def non_negative_float() -> Callable[[str], float]:
    """finite_float >= 0."""
    return finite_float(min=0)


def positive_int() -> Callable[[str], int]:
    """int_range >= 1: counts, sizes, epochs."""
    return int_range(min=1)


def for_field(cls: type, name: str) -> Callable[[str], float]:
    """The type of an option that sets field `name` of config dataclass `cls`: an integer
    or a float, as annotated, within the bounds declared on the field (`bounded`)."""
    bounds = field_bounds(cls, name)
    if bounds is None:
        raise ValueError(f"{cls.__name__}.{name} declares no bounds")
    integer, _, _ = number_kind(cls, name)
    if integer:
        return int_range(bounds.min, bounds.max)
    return finite_float(**bounds.kwargs())


SEED = int_range(0, MAX_SEED)
"""Random seeds (numpy's SeedSequence takes non-negative integers)."""

THREADS = int_range(1, MAX_THREADS)
"""Threads and processes."""

BOOTSTRAP = int_range(0, MAX_BOOTSTRAP)
"""Bootstrap replicates (0: none)."""

PORT = int_range(0, 65535)
"""TCP ports (0: none or any, per option)."""

IMAGE_SIZE = int_range(1, MAX_IMAGE_PX)
"""Camera image widths and heights in pixels."""

INPUT_SIZE = int_range(1, MAX_INPUT_PX)
"""Network input widths and heights in pixels."""

JPEG_QUALITY = int_range(1, 100)
"""JPEG quality, as OpenCV's IMWRITE_JPEG_QUALITY."""


def _link_flags(prefix: str = "") -> dict:
    """How `RobotLink`'s fields (`DeviceOptions.link`) are spelled: `--poll`,
    `--robot-watchdog-ms` (shared by `record`, `run` and `robot probe`)."""
    from robot_ssl.cli.config_fields import Flag

    return {
        prefix + "poll": Flag(
            help="poll the robot's variables instead of uploading the onboard program that "
            "streams every proximity refresh and stops the motors when the host falls silent"
        ),
        prefix + "robot_watchdog_ms": Flag(
            metavar="MS",
            help="the onboard program stops the motors after MS ms without a host command",
        ),
    }


def add_device_options(p: argparse.ArgumentParser) -> None:
    """The options beside `--robot` and `--camera` (shared by `record` and `run`), one per
    field of `DeviceOptions`: `--sim-link`, `--poll`, `--robot-watchdog-ms`, `--width`,
    `--height`, `--fps`, `--fourcc`, `--loop-video`."""
    from robot_ssl.cli.config_fields import Flag, add_config_options
    from robot_ssl.simlink.devices import SIM_LINKS, DeviceOptions

    flags = {
        "sim_link": Flag(
            choices=SIM_LINKS,
            help="with --robot sim: talk to the simulated robot directly (default) or as a "
            "virtual Thymio over a pseudo-terminal or TCP, through firmware_bridge",
        ),
        "link": Flag(flatten=True),
        **_link_flags("link."),
        "request": Flag(flatten=True),
        "request.width": Flag(help="camera width to request"),
        "request.height": Flag(help="camera height to request"),
        "request.fps": Flag(help="camera frame rate to request"),
        "request.fourcc": Flag(help="camera pixel format, e.g. MJPG"),
        "request.loop_video": Flag(help="restart a video file at its end"),
    }
    add_config_options(p, DeviceOptions, flags, namespace="dev")


def devices_from(args: argparse.Namespace, robot: str, camera: str, seed: int) -> tuple:
    """The typed (robot, camera) configs of `--robot ROBOT --camera CAMERA` and the device
    options given (robot_ssl.simlink.devices.parse_devices, the one parser of spellings)."""
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.simlink.devices import DeviceOptions, parse_devices

    options = config_from_args(DeviceOptions, args, namespace="dev")
    return parse_devices(robot, camera, seed=seed, options=options)


def add_device_config_options(
    p: argparse.ArgumentParser, cls: type, flags: dict, prog: str
) -> None:
    """The options of a config that drives devices (`record`, `run`): its fields, then
    the device options shared by both."""
    from robot_ssl.cli.config_fields import add_config_options

    add_config_options(p, cls, flags, prog=prog)
    add_device_options(p)


def device_config_from(args: argparse.Namespace, cls: type):
    """The config `cls` (RecordConfig, RunConfig) of a parsed command line: its devices
    parsed from their spelling, nested fields (`--live.sensor-hz`) set on top."""
    from robot_ssl.cli.config_fields import given_fields, with_fields

    given = given_fields(args)
    robot, camera = devices_from(
        args, given.pop("robot"), given.pop("camera"), given.get("seed", 0)
    )
    top = {k: v for k, v in given.items() if "." not in k}
    cfg = cls(robot=robot, camera=camera, **top)
    return with_fields(cfg, {k: v for k, v in given.items() if "." in k})


def device_flags(*, none: bool) -> dict:
    """`--robot` and `--camera` as `record` and `run` spell them (`none`: the "none" device
    is offered, as `record` allows; `run` always drives a robot and watches a camera)."""
    from robot_ssl.cli.config_fields import Flag

    robot = "'sim[:WORLD]' (the simulator in-process, real time)"
    camera = "'synthetic[:WxH[@FPS]]' or 'sim' (needs --robot sim)"
    return {
        "robot": Flag(
            required=True,
            parse=str,
            metavar="URL|sim[:WORLD]" + ("|none" if none else ""),
            help="serial device (/dev/ttyACM0), socket://host:33333 or tcp:host:33333 (a "
            f"virtual Thymio), 'auto' (first Thymio port), {robot}"
            + (" or 'none'" if none else ""),
        ),
        "camera": Flag(
            required=True,
            parse=str,
            metavar="SRC|sim|synthetic" + ("|none" if none else ""),
            help="device index (0), /dev/videoN, GStreamer pipeline, URL, video file (played "
            f"at its frame rate), picamera2[:WxH[@FPS]], {camera}" + (" or 'none'" if none else ""),
        ),
    }


def data_flags(default_cache: str) -> dict:
    """The training data options shared by `train` and `eval`: sessions, their labels
    folder and the decoded-frame cache."""
    from robot_ssl.cli.config_fields import Flag

    return {
        "data": Flag(required=True, metavar="PATH", help="session files or folders"),
        "labels_dir": Flag(
            aliases=("--labels",),
            metavar="DIR",
            help="folder of <stem>.labels.h5 (default: beside each session)",
        ),
        "cache_dir": Flag(
            off=("--no-cache",),
            metavar="DIR",
            help=f"cache of decoded frames ({default_cache} unless given; --no-cache: none)",
        ),
    }


def add_robot_link_options(p: argparse.ArgumentParser) -> None:
    """`robot probe`'s link options: the `link` part of `DeviceOptions` (a `RobotLink`),
    spelled as for `record` and `run`."""
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.recording.device_setup import RobotLink

    add_config_options(p, RobotLink, _link_flags(), namespace="dev")


def robot_link_from(args: argparse.Namespace):
    """The `RobotLink` of `add_robot_link_options`' options."""
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.recording.device_setup import RobotLink

    return config_from_args(RobotLink, args, namespace="dev")
