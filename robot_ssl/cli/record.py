"""`robot-ssl record`: record a session from a robot (or the simulator) and a camera.

    robot-ssl record --robot /dev/ttyACM0 --camera 0 --duration 600 --drive wander run1.h5
    robot-ssl record --robot socket://127.0.0.1:33333 --camera clip.avi --drive none s.h5
    robot-ssl record --robot sim --camera sim --duration 60 sim.h5

Devices are opened (and checked) before the output file is created, so a
missing robot or camera costs one line and exit status 2, and leaves nothing
behind. Ctrl-C or SIGTERM stops the recording and finalises the file; the
motors stop on every exit path when the recorder drove them. With --overwrite
an existing OUT.h5 is replaced only when the new session is complete (it is
written beside it as ``.OUT.h5.tmp-PID.h5`` until then), so a crash or a
kill -9 during the recording leaves the old session intact.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robot_ssl.cli.config_fields import Flag

if TYPE_CHECKING:
    from robot_ssl.recording.record import RecordConfig

HELP = "record a session from a robot (or the simulator) and a camera"


def _flags() -> dict[str, Flag]:
    """RecordConfig's fields as the README spells them (every other one: --field-name)."""
    from robot_ssl.cli.argtypes import device_flags
    from robot_ssl.recording.record import DRIVES

    return {
        "out": Flag(positional=True, metavar="OUT.h5", help="session file to write"),
        **device_flags(none=True),
        "duration_s": Flag(aliases=("--duration",), metavar="S", help="stop after S s"),
        "drive": Flag(
            choices=DRIVES,
            help="'wander': explore with the IR sensors while recording; 'contact': explore "
            "by touching (stall, shock, tap; no proximity); 'none': something else drives",
        ),
        "spec": Flag(metavar="FILE", help="robot/camera description (YAML or JSON)"),
        "prox_hz": Flag(help="proximity rate"),
        "wheels_hz": Flag(help="wheel speed rate"),
        "jpeg_quality": Flag(help="JPEG quality"),
        "seed": Flag(help="simulator and wander seed"),
        "min_free_mb": Flag(help="stop cleanly when the disk has less than this left"),
        "overwrite": Flag(help="replace OUT.h5 if it exists"),
        "status": Flag(help="status line on stderr (default: when stderr is a terminal)"),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.argtypes import add_device_config_options
    from robot_ssl.recording.record import RecordConfig

    add_device_config_options(p, RecordConfig, _flags(), "robot-ssl record")


def config_from(args: argparse.Namespace) -> RecordConfig:
    """The RecordConfig of a parsed command line, its devices parsed from their spelling."""
    from robot_ssl.cli.argtypes import device_config_from
    from robot_ssl.recording.record import RecordConfig

    return device_config_from(args, RecordConfig)


def run(args: argparse.Namespace) -> int:
    from robot_ssl.recording.record import record

    return record(config_from(args)).exit_status
