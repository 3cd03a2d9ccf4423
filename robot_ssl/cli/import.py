"""`robot-ssl import BAG OUT.h5`: a ROS 1 bag, a ROS 2 bag (sqlite3 or MCAP) or an MCAP file
as a session (robot_ssl/interop/import_bag.py; in-process: `import_bag(BagImport(...))`).

Options are generated from `BagImport`, one per field.
"""

from __future__ import annotations

import argparse

from robot_ssl.cli.config_fields import Flag

HELP = "import a ROS 1/ROS 2 bag or an MCAP file as a session"


def _flags() -> dict[str, Flag]:
    return {
        "bag": Flag(positional=True, metavar="BAG", help=".bag, ROS 2 bag folder, .mcap or .db3"),
        "out": Flag(positional=True, metavar="OUT.h5", help="the session to write"),
        "camera": Flag(
            metavar="TOPIC", help="sensor_msgs Image or CompressedImage topic ('' for none)"
        ),
        "odom": Flag(
            metavar="TOPIC", help="nav_msgs/Odometry or robot_ssl_msgs/Pose2DStamped topic"
        ),
        "proximity": Flag(metavar="TOPIC", help="robot_ssl_msgs/Proximity topic"),
        "stamps": Flag(
            choices=("header", "receive"), help="stamp rows by header stamps or receive times"
        ),
        "spec": Flag(
            metavar="FILE", help="robot/camera spec YAML (default: the bag's, else defaults)"
        ),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.interop.import_bag import BagImport

    add_config_options(p, BagImport, _flags(), prog="robot-ssl import")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.interop.import_bag import BagImport, import_bag

    path = import_bag(config_from_args(BagImport, args))
    print(f"wrote {path}")
    return 0
