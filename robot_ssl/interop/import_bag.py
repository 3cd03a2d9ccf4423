"""`robot-ssl import BAG OUT.h5`: a ROS 1 bag, a ROS 2 bag (sqlite3 or MCAP folder) or a
plain MCAP file as a session, read with rosbags' AnyReader (no ROS install).

Topics come from the job: the camera (sensor_msgs/Image or CompressedImage; optional: a
session without frames is still a session; so is the proximity: a default topic the bag
lacks is skipped, a topic named by the user must be there), the pose (robot_ssl_msgs/Pose2DStamped, or
nav_msgs/Odometry: theta from the quaternion's yaw), the proximity readings
(robot_ssl_msgs/Proximity) and, when present, the wheels and the events `export`
writes. Each stream is sorted by stamp: header stamps or receive (log) times. The robot
and camera specs come from the spec file given, else from the bag's `/robot_ssl/spec`
(what `export` writes), else the defaults. A missing topic or a message type the import
cannot read is one line; a bag cut short imports what is intact and says so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from robot_ssl.core.config import bounded, check_bounds
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.outputs import atomic_output
from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs
from robot_ssl.interop import ros_types as rt
from robot_ssl.interop.bag_streams import RawSensors, bag_robot, proximity_rows, wheel_rows
from robot_ssl.interop.bag_tf import quat_yaw, transform_planar
from robot_ssl.interop.bag_topics import load_topic_map
from robot_ssl.io.session import STREAMS, SessionWriter

if TYPE_CHECKING:  # rosbags is the optional `interop` extra: imported when used
    from rosbags.highlevel import AnyReader

    from robot_ssl.interop.bag_recovery import IntactReader

__all__ = ["BagImport", "BagImportError", "import_bag"]

STAMPS = ("header", "receive")
_CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_POSE_TYPES = (rt.POSE2D_STAMPED, "nav_msgs/msg/Odometry")
_TWIST_TYPES = ("geometry_msgs/msg/Twist", "geometry_msgs/msg/TwistStamped")
_TF_TYPE = "tf2_msgs/msg/TFMessage"


class BagImportError(RobotSSLError):
    """A bag that cannot be imported as asked: missing topic, unknown type, unreadable."""


@dataclass(frozen=True)
class BagImport:
    """What `import_bag` does: `bag` (a .bag file, a ROS 2 bag folder, a .mcap or .db3
    file) to the session `out` (.h5). `camera` "" imports no frames; `spec` a YAML spec
    file (robot and camera) instead of the bag's own or the defaults.

    Another robot's sensors (docs/interop.md): `range` sensor_msgs/Range topics, `scan`
    a sensor_msgs/LaserScan cut into the spec's range sensors, `bumper` contact topics
    (TOPIC or TOPIC:FIELD), `odom_tf` "PARENT:CHILD" (the pose from /tf instead of
    `odom`), `cmd_vel` the commands (wheels targets); `topics` a YAML map of these
    options (bag_topics); `base_frame` the robot frame /tf_static poses sensors in; a
    sensor reading is stale after `stale_periods` of its topic's median period, a
    command after `cmd_timeout_s`."""

    bag: str
    out: str
    camera: str = rt.CAMERA_TOPIC
    odom: str = rt.POSE_TOPIC
    proximity: str = rt.PROXIMITY_TOPIC
    stamps: str = "header"
    spec: str | None = None
    range: tuple[str, ...] = ()
    scan: str = ""
    bumper: tuple[str, ...] = ()
    odom_tf: str = ""
    cmd_vel: str = ""
    topics: str | None = None
    base_frame: str = "base_link"
    stale_periods: float = bounded(3.0, 1.0, 1000.0)
    cmd_timeout_s: float = bounded(0.5, 0.0, 60.0, min_inclusive=False)

    def __post_init__(self) -> None:
        check_bounds(self, "import", BagImportError)
        if self.odom_tf and self.odom_tf.count(":") != 1:
            raise BagImportError(f"--odom-tf must be PARENT:CHILD, not {self.odom_tf!r}")
        if self.stamps not in STAMPS:
            raise BagImportError(f"stamps must be one of {STAMPS}, not {self.stamps!r}")


@dataclass
class _Streams:
    """Rows per session stream as (t_ns, values), before sorting."""

    camera: list[tuple[int, Any]]
    proximity: list[tuple[int, Any]]
    wheels: list[tuple[int, Any]]
    odometry: list[tuple[int, Any]]
    events: list[tuple[int, Any]]
    spec: dict[str, Any] | None = None
    sensors: RawSensors = field(default_factory=RawSensors)
    twist: list[tuple[int, float, float]] = field(default_factory=list)
    cmd_vel: list[tuple[int, float, float]] = field(default_factory=list)
    tables: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    truncated: str | None = None


def import_bag(job: BagImport) -> Path:
    """Read `job.bag`, write the session `job.out`; returns its path."""
    job = with_topic_map(job)
    bag = Path(job.bag)
    if not bag.exists():
        raise BagImportError(f"{bag}: no such file or folder")
    streams = _read(job, bag)
    robot, camera, metadata = _specs(job, streams.spec)
    if streams.sensors.any:
        if not (job.spec or streams.spec):
            robot = bag_robot(robot, streams.sensors, job.base_frame, BagImportError)
        t, values = proximity_rows(
            robot, streams.sensors, job.base_frame, job.stale_periods, BagImportError
        )
        streams.proximity = list(zip(t.tolist(), values, strict=True))
    if job.cmd_vel:
        streams.wheels = wheel_rows(
            robot, streams.odometry, streams.twist, streams.cmd_vel, job.cmd_timeout_s
        )
    camera = _fit_camera(camera, streams, given=bool(job.spec or streams.spec))
    metadata = {**metadata, "imported_from": bag.name, "import_stamps": job.stamps}
    out = Path(job.out)
    with atomic_output(out) as tmp:
        tmp.unlink()
        names, dims = _table_layout(streams)
        try:
            writer = SessionWriter(
                tmp,
                robot,
                camera,
                frame_format=_frame_format(streams),
                metadata=metadata,
                streams=names,
                dims=dims,
            )
        except ValueError as e:  # a table stream's dimension neither the spec nor a row says
            raise BagImportError(f"{bag}: {e}") from None
        with writer:
            _write(writer, streams, robot.num_prox)
            _write_tables(writer, streams, dims)
    if streams.truncated:
        print(f"robot-ssl import: warning: {streams.truncated}", file=sys.stderr)
    return out


def _read(job: BagImport, bag: Path) -> _Streams:
    from rosbags.highlevel import AnyReader  # the optional `interop` extra: said in one line

    recovered = None
    try:
        reader = AnyReader([bag], default_typestore=rt.make_typestore())
        reader.open()
    except Exception as e:  # rosbags' reader errors, a damaged index, an unknown suffix
        reader = recovered = _intact_part(bag, e)
    try:
        streams = _read_open(job, reader)
    finally:
        reader.close()
    if recovered is not None:
        streams.truncated = recovered.summary()
    _to_session_clock(streams)
    return streams


def _to_session_clock(streams: _Streams) -> None:
    """Undo `export`'s wall-clock offset (carried in its spec) on the streams it writes,
    so that a round trip gives back the session's own stamps."""
    offset = int((streams.spec or {}).get("wall_offset_ns", 0))
    if offset:
        for rows in (streams.camera, streams.proximity, streams.wheels, streams.odometry):
            rows[:] = [(t - offset, v) for t, v in rows]
        streams.events[:] = [(t - offset, v) for t, v in streams.events]
        for rows in streams.tables.values():
            rows[:] = [(t - offset, v) for t, v in rows]


def _intact_part(bag: Path, error: Exception) -> IntactReader:
    """A bag rosbags refuses whole (cut short: no index, no summary) read up to its cut;
    one line when nothing of it is intact or it is no bag at all."""
    from robot_ssl.interop.bag_recovery import BagRecoveryError, open_intact

    try:
        return open_intact(bag, rt.make_typestore())
    except (BagRecoveryError, OSError) as e:
        raise BagImportError(f"{bag}: not a readable bag: {error} ({e})") from None


def with_topic_map(job: BagImport) -> BagImport:
    """`job` with its --topics map applied: each key fills its option where the command
    line left the default."""
    if not job.topics:
        return job
    defaults = {f.name: f.default for f in fields(BagImport)}
    mapped = load_topic_map(job.topics, BagImportError)
    return replace(job, **{k: v for k, v in mapped.items() if getattr(job, k) == defaults[k]})


def _topics(reader: AnyReader) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections}


def _check(topics: dict[str, str], topic: str, option: str, types: tuple[str, ...]) -> None:
    """One line when `topic` is not in the bag or not of one of `types`."""
    if topic not in topics:
        raise BagImportError(
            f"no topic {topic!r} in the bag (give {option} TOPIC); topics: "
            + ", ".join(sorted(topics))
        )
    if topics[topic] not in types:
        raise BagImportError(
            f"topic {topic!r} is {topics[topic]}, which {option} cannot read "
            f"(expected {' or '.join(types)})"
        )


def _read_open(job: BagImport, reader: AnyReader) -> _Streams:
    topics = _topics(reader)
    wanted = _sensor_topics(job, topics)
    if job.odom_tf:
        _check(topics, rt.TF_TOPIC, "--odom-tf", (_TF_TYPE,))
        wanted[rt.TF_TOPIC] = "odom_tf"
    else:
        _check(topics, job.odom, "--odom", _POSE_TYPES)
        wanted[job.odom] = "odometry"
    sensors = bool(job.range or job.scan or job.bumper)
    for topic, option, default, types, kind in (
        (
            "" if sensors and job.proximity == rt.PROXIMITY_TOPIC else job.proximity,
            "--proximity",
            rt.PROXIMITY_TOPIC,
            (rt.PROXIMITY,),
            "proximity",
        ),
        (_camera_topic(job, topics), "--camera", rt.CAMERA_TOPIC, _CAMERA_TYPES, "camera"),
    ):
        if topic and (topic != default or topic in topics):  # a default may be absent
            _check(topics, topic, option, types)
            wanted[topic] = kind
    for stream in rt.table_streams():  # acc, truth, predictions...: as export writes them
        if topics.get(rt.table_topic(stream.name)) == rt.table_type(stream.name):
            wanted[rt.table_topic(stream.name)] = "table:" + stream.name
    for topic, kind in ((rt.WHEELS_TOPIC, "wheels"), (rt.EVENTS_TOPIC, "events")):
        if topics.get(topic) in (rt.WHEELS, "std_msgs/msg/String"):
            wanted.setdefault(topic, kind)
    if topics.get(rt.SPEC_TOPIC) == "std_msgs/msg/String":
        wanted[rt.SPEC_TOPIC] = "spec"
    streams = _Streams([], [], [], [], [])
    streams.sensors.scan_topic = job.scan
    conns = [c for c in reader.connections if c.topic in wanted]
    try:
        for conn, log_t_ns, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            t_ns = _stamp(job, msg, log_t_ns)
            kind = wanted[conn.topic]
            if not _take_sensor(job, streams, kind, conn.topic, msg, conn.msgtype, t_ns):
                _take(streams, kind, msg, conn.msgtype, t_ns)
    except BagImportError:  # a message the options cannot read: not damage
        raise
    except Exception as e:  # a bag cut short: keep what was read before the damage
        streams.truncated = f"{job.bag} is damaged or cut short ({e}); imported what precedes it"
    return streams


def _camera_topic(job: BagImport, topics: dict[str, str]) -> str:
    """The job's camera topic; in place of the default, when the bag lacks it, the raw
    frames' topic of an export of a raw session (a bag that carries /robot_ssl/spec)."""
    if (
        job.camera == rt.CAMERA_TOPIC
        and job.camera not in topics
        and rt.SPEC_TOPIC in topics
        and topics.get(rt.RAW_CAMERA_TOPIC) == "sensor_msgs/msg/Image"
    ):
        return rt.RAW_CAMERA_TOPIC
    return job.camera


def _sensor_topics(job: BagImport, topics: dict[str, str]) -> dict[str, str]:
    """The kind of each sensor and command topic the job names (checked: present, of a
    type the option reads); /tf_static when the bag has it (sensor poses)."""
    wanted: dict[str, str] = {}
    for topic in job.range:
        _check(topics, topic, "--range", ("sensor_msgs/msg/Range",))
        wanted[topic] = "range"
    if job.scan:
        _check(topics, job.scan, "--scan", ("sensor_msgs/msg/LaserScan",))
        wanted[job.scan] = "scan"
    for spelling in job.bumper:
        topic, _, name = spelling.partition(":")
        if topic not in topics:
            _check(topics, topic, "--bumper", ())
        wanted[topic] = "bumper:" + (name or "data")
    if job.cmd_vel:
        _check(topics, job.cmd_vel, "--cmd-vel", _TWIST_TYPES)
        wanted[job.cmd_vel] = "cmd_vel"
    if topics.get("/tf_static") == _TF_TYPE:
        wanted["/tf_static"] = "tf_static"
    return wanted


def _field(msg: Any, path: str, topic: str) -> Any:
    """`msg.a.b` for path "a.b"; one line naming the field when the message lacks it."""
    value = msg
    for part in path.split("."):
        if not hasattr(value, part):
            names = ", ".join(
                f for f in getattr(msg, "__dataclass_fields__", {}) if f.islower() and f[0] != "_"
            )
            raise BagImportError(
                f"--bumper {topic}:{path}: the message has no field {part!r} (fields: {names})"
            )
        value = getattr(value, part)
    return value


def _take_sensor(
    job: BagImport, streams: _Streams, kind: str, topic: str, msg: Any, msgtype: str, t_ns: int
) -> bool:
    """Keep one sensor, tf or command message (bag_streams.RawSensors); False for
    another kind."""
    raw = streams.sensors
    frame = getattr(getattr(msg, "header", None), "frame_id", "")
    if kind == "range":
        row = (t_ns, msg.range, msg.min_range, msg.max_range, frame, msg.field_of_view)
        raw.ranges.setdefault(topic, []).append(row)
    elif kind == "scan":
        ranges = np.asarray(msg.ranges, np.float32)
        a0, inc = float(msg.angle_min), float(msg.angle_increment)
        raw.scan.append((t_ns, ranges, a0, inc, msg.range_min, msg.range_max, frame))
    elif kind.startswith("bumper:"):
        value = _field(msg, kind.partition(":")[2], topic)
        pressed = np.any(np.asarray(value)) if not isinstance(value, str) else value != ""
        raw.bumpers.setdefault(topic, []).append((t_ns, int(bool(pressed)), frame))
    elif kind == "tf_static":
        for tf in msg.transforms:
            parent, child = tf.header.frame_id.lstrip("/"), tf.child_frame_id.lstrip("/")
            raw.static[child] = (parent, transform_planar(tf.transform))
    elif kind == "odom_tf":
        parent, child = job.odom_tf.split(":")
        for tf in msg.transforms:
            if (tf.header.frame_id.lstrip("/"), tf.child_frame_id.lstrip("/")) == (
                parent.lstrip("/"),
                child.lstrip("/"),
            ):
                t = t_ns if job.stamps == "receive" else _header_ns(tf.header)
                streams.odometry.append((t, np.array(transform_planar(tf.transform))))
    elif kind == "cmd_vel":
        twist = msg.twist if msgtype.endswith("TwistStamped") else msg
        streams.cmd_vel.append((t_ns, float(twist.linear.x), float(twist.angular.z)))
    else:
        return False
    return True


def _header_ns(header: Any) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def _stamp(job: BagImport, msg: Any, log_t_ns: int) -> int:
    header = getattr(msg, "header", None)
    if job.stamps == "receive" or header is None:
        return int(log_t_ns)
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def _take(streams: _Streams, kind: str, msg: Any, msgtype: str, t_ns: int) -> None:
    """Turn one message into the row of its session stream."""
    if kind == "camera":
        streams.camera.append((t_ns, _frame(msg, msgtype)))
    elif kind == "proximity":
        streams.proximity.append((t_ns, np.asarray(msg.values, dtype=np.int16)))
    elif kind == "wheels":
        streams.wheels.append((t_ns, (np.asarray(msg.speed), np.asarray(msg.target))))
    elif kind == "odometry":
        streams.odometry.append((t_ns, _pose(msg, msgtype)))
        if msgtype == "nav_msgs/msg/Odometry":
            twist = msg.twist.twist
            streams.twist.append((t_ns, float(twist.linear.x), float(twist.angular.z)))
    elif kind == "events":
        streams.events.append((t_ns, _event(msg.data)))
    elif kind.startswith("table:"):  # converted once the spec's dimensions are known
        streams.tables.setdefault(kind.partition(":")[2], []).append((t_ns, msg))
    elif kind == "spec" and streams.spec is None:
        streams.spec = json.loads(msg.data)


def _frame(msg: Any, msgtype: str) -> dict[str, Any]:
    """A camera record's values: the JPEG bytes as they are, or a raw image as BGR."""
    if msgtype == "sensor_msgs/msg/CompressedImage":
        fmt = msg.format.lower()
        if "jpeg" not in fmt and "jpg" not in fmt:
            raise BagImportError(f"compressed image format {msg.format!r}: only JPEG is read")
        return {"jpeg": bytes(msg.data)}
    data = np.asarray(msg.data, dtype=np.uint8)
    h, w, enc = int(msg.height), int(msg.width), msg.encoding
    if enc in ("bgr8", "rgb8"):
        image = data.reshape(h, int(msg.step))[:, : w * 3].reshape(h, w, 3)
        return {"image": image[:, :, ::-1].copy() if enc == "rgb8" else image}
    if enc == "mono8":
        gray = data.reshape(h, int(msg.step))[:, :w]
        return {"image": np.repeat(gray[:, :, None], 3, axis=2)}
    raise BagImportError(f"image encoding {enc!r}: only bgr8, rgb8 and mono8 are read")


def _pose(msg: Any, msgtype: str) -> np.ndarray:
    if msgtype == rt.POSE2D_STAMPED:
        return np.array([msg.x, msg.y, msg.theta], dtype=np.float64)
    p = msg.pose.pose.position
    return np.array([p.x, p.y, quat_yaw(msg.pose.pose.orientation)], dtype=np.float64)


def _event(text: str) -> tuple[str, str]:
    try:
        d = json.loads(text)
        return str(d["kind"]), str(d.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return "ros", text


def _specs(job: BagImport, spec: dict[str, Any] | None) -> tuple[RobotSpec, CameraSpec, dict]:
    """The spec file's, else the bag's own (from export), else the defaults."""
    if job.spec:
        robot, camera = load_specs(job.spec)
        return robot, camera, {}
    if spec:
        return (
            RobotSpec.from_dict(spec["robot_spec"]),
            CameraSpec.from_dict(spec["camera_spec"]),
            dict(spec.get("metadata", {})),
        )
    return RobotSpec(), CameraSpec(), {}


def _frame_size(values: dict[str, Any]) -> tuple[int, int] | None:
    """(width, height) of one camera record's frame; None when it does not decode."""
    if "image" in values:
        h, w = values["image"].shape[:2]
        return w, h
    image = cv2.imdecode(np.frombuffer(values["jpeg"], np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else (image.shape[1], image.shape[0])


def _fit_camera(camera: CameraSpec, streams: _Streams, given: bool) -> CameraSpec:
    """The camera spec at the frames' size: the default spec takes the bag's size (its
    field of view stays the default's: give --spec for the real one); a spec given or
    carried by the bag must match it."""
    if not streams.camera:
        return camera
    size = _frame_size(streams.camera[0][1])
    if size is None or size == (camera.width, camera.height):
        return camera
    if given:
        raise BagImportError(
            f"the camera's frames are {size[0]}x{size[1]}, the spec says "
            f"{camera.width}x{camera.height}"
        )
    return camera.with_overrides(width=size[0], height=size[1])


def _sorted(rows: list[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """Rows in stamp order (stable: equal stamps keep the bag's order)."""
    return iter(sorted(rows, key=lambda r: r[0]))


def _write(writer: SessionWriter, s: _Streams, num_prox: int) -> None:
    for t_ns, values in _sorted(s.camera):
        if "jpeg" in values:
            writer.write_jpeg(t_ns, values["jpeg"])
        else:
            writer.write_frame(t_ns, values["image"])
    for t_ns, values in _sorted(s.proximity):
        if values.shape != (num_prox,):
            raise BagImportError(
                f"proximity message of {values.size} values: the spec has {num_prox} sensors"
            )
        writer.write_proximity(t_ns, values)
    for t_ns, (speed, target) in _sorted(s.wheels):
        writer.write_wheels(t_ns, speed, target)
    for t_ns, pose in _sorted(s.odometry):
        writer.write_odometry(t_ns, pose)
    for t_ns, (kind, message) in _sorted(s.events):
        writer.write_event(t_ns, kind, message)


def _frame_format(streams: _Streams) -> str:
    """The session's frame format: raw for an export of a raw session (its spec says so,
    no frame is JPEG), whose frames come back bit for bit; else jpeg (the raw frames of
    other bags are encoded)."""
    raw = (streams.spec or {}).get("frame_format") == "raw"
    return "raw" if raw and all("image" in v for _, v in streams.camera) else "jpeg"


def _table_layout(streams: _Streams) -> tuple[list[str], dict[str, int]]:
    """The table streams to open (those the bag's spec says the session held, even
    empty, and those with messages) and their named dimensions: the spec's, else a
    one-dimensional field's length in the first message."""
    spec = streams.spec or {}
    own = {s.name for s in rt.table_streams()}
    names = [str(n) for n in spec.get("table_streams", ()) if n in own]
    names += [n for n in streams.tables if n not in names]
    dims = {str(k): int(v) for k, v in spec.get("dims", {}).items()}
    for name, rows in streams.tables.items():
        for f in STREAMS[name].fields:
            if rows and len(f.shape) == 1 and isinstance(f.shape[0], str):
                dims.setdefault(f.shape[0], len(getattr(rows[0][1], f.name)))
    return names, dims


def _write_tables(writer: SessionWriter, s: _Streams, dims: dict[str, int]) -> None:
    """The generated messages' rows (ros_types.table_values), each stream in stamp order."""
    for name, rows in s.tables.items():
        stream = STREAMS[name]
        for t_ns, msg in _sorted(rows):
            try:
                values = rt.table_values(msg, stream, dims)
            except ValueError as e:
                raise BagImportError(f"{rt.table_topic(name)}: {e}") from None
            writer.append(name, t_ns, values)
