"""Bags of a TurtleBot-like robot, written with rosbags' own writers from a simulated
session (a test and benchmark helper: no part of the library).

`write_lidar_bot_bag(session, world, out, storage)` turns a `robot-ssl sim record`
session into what such a robot logs: the camera as sensor_msgs/CompressedImage (the
session's JPEGs, at its frame rate), a 360-beam sensor_msgs/LaserScan at `scan_hz` cast
from the simulator's true pose against the world's obstacles (1 cm noise, 1 % of beams
NaN, nothing within range_max as +inf), nav_msgs/Odometry at 20 Hz (the session's
odometry, twist from the measured wheels), geometry_msgs/Twist commands at 10 Hz (the
wheels' targets), a bumper at 10 Hz (pressed when an obstacle lies within 5 mm of the
body's front half) and /tf_static base_link -> base_scan. Header stamps are the
sensors'; log times come 2-20 ms later, so the log order is not the stamp order.

storage: "ros1" (.bag, noetic types; the bumper a custom kobuki-like BumperEvent whose
definition the bag carries, read with --bumper TOPIC:state), "sqlite3" (ROS 2 .db3) or
"mcap" (ROS 2 MCAP); in ROS 2 the bumper is std_msgs/Bool.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from robot_ssl.core.spec import RobotSpec
from robot_ssl.io.session import SessionReader
from robot_ssl.simlink.simulator import resolve_world
from sim.raycast import RayCaster

CAMERA = "/camera/image_raw/compressed"
SCAN = "/scan"
ODOM = "/odom"
CMD_VEL = "/cmd_vel"
BUMPER = "/bumper"
BUMPER_EVENT = "kobuki_msgs/msg/BumperEvent"
BUMPER_EVENT_MSG = "uint8 LEFT=0\nuint8 CENTER=1\nuint8 RIGHT=2\nuint8 bumper\nuint8 state\n"
TF_MESSAGE_MSG = "geometry_msgs/TransformStamped[] transforms\n"
SCAN_RANGE_MIN_M = 0.02
SCAN_RANGE_MAX_M = 3.5
BEAMS = 360
SCANNER_X_M = -0.03  # the scanner behind the axle midpoint (data/robots/lidar_bot.yaml)

TOPIC_MAP = {
    "camera": CAMERA,
    "scan": SCAN,
    "bumper": BUMPER,
    "odom": ODOM,
    "cmd_vel": CMD_VEL,
}
"""The --topics map of these bags (ROS 1: bumper BUMPER + ":state")."""


def topic_map(storage: str) -> dict[str, str]:
    return {**TOPIC_MAP, "bumper": BUMPER + ":state"} if storage == "ros1" else dict(TOPIC_MAP)


def _interp_pose(t: np.ndarray, pt: np.ndarray, pose: np.ndarray) -> np.ndarray:
    th = np.unwrap(pose[:, 2])
    return np.stack(
        [np.interp(t, pt, pose[:, 0]), np.interp(t, pt, pose[:, 1]), np.interp(t, pt, th)], 1
    )


class _Scanner:
    """360 beams from a pose against the world's obstacles (all heights)."""

    def __init__(self, world: str) -> None:
        g = resolve_world(world, 0).geometry()
        self.caster = RayCaster(g.segments, g.circles)
        self.angles = np.arange(BEAMS) * (2 * math.pi / BEAMS)

    def ranges(self, pose: np.ndarray, x_m: float = 0.0) -> np.ndarray:
        """Beam distances from the point x_m ahead of `pose` (robot frame's x axis)."""
        a = pose[2] + self.angles
        dirs = np.stack([np.cos(a), np.sin(a)], 1)
        xy = pose[:2] + x_m * np.array([math.cos(pose[2]), math.sin(pose[2])])
        org = np.repeat(xy[None, :], BEAMS, 0)
        t, _ = self.caster.cast(org, dirs)
        return t


def _messages(
    session: Path, world: str, store: Any, ros1: bool, scan_hz: float, seed: int
) -> Iterator[tuple[str, str, int, Any]]:
    """(topic, msgtype, log t_ns, message) in no particular order."""
    ty = store.types
    rng = np.random.default_rng(seed)

    def header(t_ns: int, frame: str) -> Any:
        stamp = ty["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
        if ros1:
            return ty["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame)
        return ty["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    def late(t_ns: int) -> int:
        return int(t_ns + rng.integers(2_000_000, 20_000_000))

    def vec(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Any:
        return ty["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)

    def quat(yaw: float) -> Any:
        return ty["geometry_msgs/msg/Quaternion"](
            x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)
        )

    with SessionReader(session) as r:
        robot = RobotSpec.from_dict(_json(r._file.attrs["robot_spec"]), keep_unknown_kinds=True)
        cam_t = r.camera_t_ns.copy()
        jpegs = [r.jpeg(i) for i in range(r.num_frames)]
        truth = r.truth()
        assert truth is not None, "a simulated session with truth"
        tt, tpose, _ = truth
        ot, opose = r.odometry()
        wt, wspeed, wtarget = r.wheels()
    t0 = 1_700_000_000 * 10**9  # stamps as a real robot's clock (seconds since 1970)
    start, end = int(tt[0]), int(tt[-1])
    tf = ty["geometry_msgs/msg/TransformStamped"](
        header=header(t0 + start, "base_link"),
        child_frame_id="base_scan",
        transform=ty["geometry_msgs/msg/Transform"](
            translation=vec(SCANNER_X_M), rotation=quat(0.0)
        ),
    )
    yield (
        "/tf_static",
        "tf2_msgs/msg/TFMessage",
        t0 + start,
        ty["tf2_msgs/msg/TFMessage"](transforms=[tf]),
    )
    for t, jpeg in zip(cam_t, jpegs, strict=True):
        msg = ty["sensor_msgs/msg/CompressedImage"](
            header=header(t0 + int(t), "camera"), format="jpeg", data=np.frombuffer(jpeg, np.uint8)
        )
        yield CAMERA, "sensor_msgs/msg/CompressedImage", late(t0 + int(t)), msg
    scanner = _Scanner(world)
    scan_t = np.arange(start, end, int(1e9 / scan_hz))
    for t, pose in zip(scan_t, _interp_pose(scan_t, tt, tpose), strict=True):
        ranges = scanner.ranges(pose, SCANNER_X_M) + rng.normal(0, 0.01, BEAMS)
        ranges[ranges > SCAN_RANGE_MAX_M] = np.inf
        ranges[rng.random(BEAMS) < 0.01] = np.nan
        msg = ty["sensor_msgs/msg/LaserScan"](
            header=header(t0 + int(t), "base_scan"),
            angle_min=0.0,
            angle_max=float(2 * math.pi * (BEAMS - 1) / BEAMS),
            angle_increment=float(2 * math.pi / BEAMS),
            time_increment=0.0,
            scan_time=1.0 / scan_hz,
            range_min=SCAN_RANGE_MIN_M,
            range_max=SCAN_RANGE_MAX_M,
            ranges=ranges.astype(np.float32),
            intensities=np.zeros(0, np.float32),
        )
        yield SCAN, "sensor_msgs/msg/LaserScan", late(t0 + int(t)), msg
    odom_t = np.arange(start, end, 50_000_000)
    poses = _interp_pose(odom_t, ot, opose)
    k = np.clip(np.searchsorted(wt, odom_t, side="right") - 1, 0, len(wt) - 1)
    lr = wspeed[k].astype(np.float64) * robot.speed_m_per_unit
    v, w = lr.mean(1), (lr[:, 1] - lr[:, 0]) / robot.axle_length_m
    z36 = np.zeros(36)
    for t, p, vi, wi in zip(odom_t, poses, v, w, strict=True):
        msg = ty["nav_msgs/msg/Odometry"](
            header=header(t0 + int(t), "odom"),
            child_frame_id="base_link",
            pose=ty["geometry_msgs/msg/PoseWithCovariance"](
                pose=ty["geometry_msgs/msg/Pose"](
                    position=ty["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=0.0),
                    orientation=quat(p[2]),
                ),
                covariance=z36,
            ),
            twist=ty["geometry_msgs/msg/TwistWithCovariance"](
                twist=ty["geometry_msgs/msg/Twist"](linear=vec(vi), angular=vec(z=wi)),
                covariance=z36,
            ),
        )
        yield ODOM, "nav_msgs/msg/Odometry", late(t0 + int(t)), msg
    cmd_t = np.arange(start, end, 100_000_000)
    k = np.clip(np.searchsorted(wt, cmd_t, side="right") - 1, 0, len(wt) - 1)
    lr = wtarget[k].astype(np.float64) * robot.speed_m_per_unit
    for t, vi, wi in zip(
        cmd_t, lr.mean(1), (lr[:, 1] - lr[:, 0]) / robot.axle_length_m, strict=True
    ):
        msg = ty["geometry_msgs/msg/Twist"](linear=vec(vi), angular=vec(z=wi))
        yield CMD_VEL, "geometry_msgs/msg/Twist", late(t0 + int(t)), msg
    front = np.cos(scanner.angles) > 0  # the body's front half
    for t, pose in zip(cmd_t, _interp_pose(cmd_t, tt, tpose), strict=True):
        pressed = bool(scanner.ranges(pose)[front].min() <= robot.body_radius_m + 0.005)
        if ros1:
            msg = ty[BUMPER_EVENT](bumper=1, state=int(pressed))
            yield BUMPER, BUMPER_EVENT, late(t0 + int(t)), msg
        else:
            yield (
                BUMPER,
                "std_msgs/msg/Bool",
                late(t0 + int(t)),
                ty["std_msgs/msg/Bool"](data=pressed),
            )


def _json(text: Any) -> dict:
    import json

    return json.loads(text)


def write_lidar_bot_bag(
    session: Path, world: str, out: Path, storage: str, scan_hz: float = 5.0, seed: int = 0
) -> Path:
    """The TurtleBot-like robot's bag of `session` (recorded in `world`) at `out`:
    a .bag file (ros1) or a ROS 2 bag folder (sqlite3, mcap). Returns `out`."""
    ros1 = storage == "ros1"
    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    if ros1:
        store.register(get_types_from_msg(BUMPER_EVENT_MSG, BUMPER_EVENT))
    if "tf2_msgs/msg/TFMessage" not in store.types:  # not among rosbags' noetic types
        store.register(get_types_from_msg(TF_MESSAGE_MSG, "tf2_msgs/msg/TFMessage"))
    rows = sorted(_messages(session, world, store, ros1, scan_hz, seed), key=lambda m: m[2])
    if ros1:
        writer: Any = Writer1(out)
    else:
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(out, version=9, storage_plugin=plugin)
    with writer as w:
        conns: dict[str, Any] = {}
        for topic, msgtype, t, msg in rows:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            data = store.serialize_ros1(msg, msgtype) if ros1 else store.serialize_cdr(msg, msgtype)
            w.write(conns[topic], t, data)
    return out


RANGE_BAG_T0_NS = 1_700_000_000 * 10**9


def write_range_bag(out: Path) -> Path:
    """A small ROS 2 MCAP bag of a sonar robot with no spec: two sensor_msgs/Range topics
    (/sonar/left at 10 Hz, frame sonar_left, reading 0.10 m, then +inf from 1 s on, then
    nothing after 2 s; /sonar/right at 20 Hz, frame sonar_right, 0.30 m, one NaN at
    0.5 s), /tf_static placing both (sonar_left through a mount frame) and /tf
    odom -> base_link at 20 Hz driving straight at 0.1 m/s, for 3 s."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    ty = store.types

    def header(t_ns: int, frame: str) -> Any:
        stamp = ty["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
        return ty["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    def tf(t_ns: int, parent: str, child: str, x: float, y: float, yaw: float) -> Any:
        return ty["geometry_msgs/msg/TransformStamped"](
            header=header(t_ns, parent),
            child_frame_id=child,
            transform=ty["geometry_msgs/msg/Transform"](
                translation=ty["geometry_msgs/msg/Vector3"](x=x, y=y, z=0.05),
                rotation=ty["geometry_msgs/msg/Quaternion"](
                    x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)
                ),
            ),
        )

    def sonar(t_ns: int, frame: str, r: float) -> Any:
        return ty["sensor_msgs/msg/Range"](
            header=header(t_ns, frame),
            radiation_type=0,
            field_of_view=0.5,
            min_range=0.02,
            max_range=2.0,
            range=r,
        )

    t0 = RANGE_BAG_T0_NS
    rows: list[tuple[str, str, int, Any]] = []
    static = [
        tf(t0, "base_link", "sonar_mount", 0.05, 0.0, 0.0),
        tf(t0, "sonar_mount", "sonar_left", 0.0, 0.04, math.pi / 4),
        tf(t0, "base_link", "sonar_right", 0.05, -0.04, -math.pi / 4),
    ]
    rows.append(
        (
            "/tf_static",
            "tf2_msgs/msg/TFMessage",
            t0,
            ty["tf2_msgs/msg/TFMessage"](transforms=static),
        )
    )
    for i in range(20):  # 10 Hz for 2 s, then silent
        t = t0 + i * 100_000_000
        rows.append(
            (
                "/sonar/left",
                "sensor_msgs/msg/Range",
                t,
                sonar(t, "sonar_left", 0.10 if i < 10 else math.inf),
            )
        )
    for i in range(60):
        t = t0 + i * 50_000_000
        r = math.nan if i == 10 else 0.30
        rows.append(("/sonar/right", "sensor_msgs/msg/Range", t, sonar(t, "sonar_right", r)))
        pose = tf(t, "odom", "base_link", 0.005 * i, 0.0, 0.0)
        rows.append(
            ("/tf", "tf2_msgs/msg/TFMessage", t, ty["tf2_msgs/msg/TFMessage"](transforms=[pose]))
        )
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns: dict[str, Any] = {}
        for topic, msgtype, t, msg in sorted(rows, key=lambda r: r[2]):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], t, store.serialize_cdr(msg, msgtype))
    return out


def ros_header(ty: Any, t_ns: int, frame: str, ros1: bool) -> Any:
    """A std_msgs/Header stamped `t_ns` (ROS 1 headers carry a sequence number too)."""
    stamp = ty["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
    extra = {"seq": 0} if ros1 else {}
    return ty["std_msgs/msg/Header"](stamp=stamp, frame_id=frame, **extra)


def straight_odometry(ty: Any, header: Any, x_m: float) -> Any:
    """A nav_msgs/Odometry at (x_m, 0) heading along x, standing still: the pose tests
    read back after a round trip or a cut."""
    z3 = ty["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return ty["nav_msgs/msg/Odometry"](
        header=header,
        child_frame_id="base_link",
        pose=ty["geometry_msgs/msg/PoseWithCovariance"](
            pose=ty["geometry_msgs/msg/Pose"](
                position=ty["geometry_msgs/msg/Point"](x=x_m, y=0.0, z=0.0),
                orientation=ty["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
            covariance=np.zeros(36),
        ),
        twist=ty["geometry_msgs/msg/TwistWithCovariance"](
            twist=ty["geometry_msgs/msg/Twist"](linear=z3, angular=z3),
            covariance=np.zeros(36),
        ),
    )
