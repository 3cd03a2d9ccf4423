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
        "range": Flag(
            metavar="TOPIC",
            help="sensor_msgs/Range topics (--range A B): the spec's range sensors, by "
            "frame_id, else in order",
        ),
        "scan": Flag(
            metavar="TOPIC",
            help="sensor_msgs/LaserScan topic, cut into the spec's other range sensors by sector",
        ),
        "bumper": Flag(
            metavar="TOPIC[:FIELD]",
            help="contact topics (--bumper A B:state): a Bool-like message's data, or FIELD",
        ),
        "odom_tf": Flag(metavar="PARENT:CHILD", help="the pose from /tf instead of --odom"),
        "cmd_vel": Flag(
            metavar="TOPIC",
            help="geometry_msgs Twist or TwistStamped: the wheels' targets (stall detection)",
        ),
        "topics": Flag(metavar="MAP.yaml", help="these options as a YAML map (options win)"),
        "base_frame": Flag(metavar="FRAME", help="the robot frame /tf_static poses sensors in"),
        "stale_periods": Flag(
            metavar="N", help="a sensor reading is stale after N of its topic's periods"
        ),
        "cmd_timeout_s": Flag(metavar="S", help="a command older than this targets 0"),
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
