"""`robot-ssl calibrate SESSION --spec SPEC.yaml [--straight-m L | --turn]`: camera latency
and wheel-speed factor from a short calibration session, written into the robot's spec
(robot_ssl/labelling/calibrate.py; procedure for a real robot: docs/calibration.md).

Options are generated from `CalibrateConfig`, one per field. In-process:
`robot_ssl.labelling.calibrate.calibrate(CalibrateConfig(...))`.
"""

from __future__ import annotations

import argparse

from robot_ssl.cli.config_fields import Flag

HELP = "calibrate the camera latency and wheel-speed factor from a session"


def _flags() -> dict[str, Flag]:
    """CalibrateConfig's fields as the README spells them."""
    from robot_ssl.labelling.calibrate import TURN_CORRECTS

    return {
        "session": Flag(positional=True, metavar="SESSION", help="a calibration session (.h5)"),
        "spec": Flag(required=True, metavar="SPEC.yaml", help="robot/camera spec file to update"),
        "straight_m": Flag(
            metavar="L",
            help="the session is one straight run of L metres, measured on the floor",
        ),
        "turn": Flag(help="the session has turns on the spot between stops"),
        "turn_corrects": Flag(
            choices=TURN_CORRECTS,
            help="with --turn: scale speed_m_per_unit or axle_length_m (when the speed was "
            "already calibrated on a straight run)",
        ),
        "dry_run": Flag(help="print the new values, write nothing"),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.labelling.calibrate import CalibrateConfig

    add_config_options(
        p, CalibrateConfig, _flags(), exclusive=[("straight_m", "turn")], prog="robot-ssl calibrate"
    )


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.labelling.calibrate import CalibrateConfig, calibrate

    return calibrate(config_from_args(CalibrateConfig, args))
