"""`robot-ssl export S.h5 OUT.mcap`: a session as an MCAP file (or, with format "rosbag2",
a ROS 2 bag in sqlite3) of ROS 2 messages, which Foxglove opens and `import` reads back.

Every message is stamped with the session's `t_ns` moved to wall clock (header stamp
and log time alike; `export_views.wall_offset_ns`, carried in the spec so that `import`
moves it back): the camera as sensor_msgs/CompressedImage (the stored JPEG bytes, unchanged; raw
sessions as sensor_msgs/Image bgr8), the proximity readings, the wheels and the 2D pose
as the custom types of `ros_types`, the pose again as nav_msgs/Odometry and as a
tf2_msgs/TFMessage (odom -> base_link), events as std_msgs/String (JSON kind, message),
every other stream of the table the session holds (acc, truth, frame_truth,
contact_truth, predictions...) as the message `ros_types` generates from its fields, on
`/robot_ssl/<stream>`, and the robot and camera specs, the metadata, the table streams
held and their named dimensions as one std_msgs/String (JSON) on `/robot_ssl/spec`, so
that an import restores them. For Foxglove (`export_views`): the robot's static frames
on /tf_static, each sensor as sensor_msgs/Range (a scanner's sectors also as one
LaserScan), the accelerometer as sensor_msgs/Imu, the label and prediction grids as PNG
images. The output is written beside and renamed: a failure (a full disk) leaves nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.outputs import OutputError, atomic_output, write_error
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.interop import export_views as views
from robot_ssl.interop import ros_types as rt
from robot_ssl.io.session import STREAMS, Columns, SessionReader

__all__ = ["FORMATS", "SessionExport", "export_session"]

FORMATS = ("mcap", "rosbag2")


@dataclass(frozen=True)
class SessionExport:
    """What `export_session` does: `session` (.h5) to `out` in `format` ("mcap": one
    .mcap file; "rosbag2": a ROS 2 bag folder, sqlite3 storage)."""

    session: str
    out: str
    format: str = "mcap"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise OutputError(f"format must be one of {FORMATS}, not {self.format!r}")


def export_session(job: SessionExport) -> Path:
    """Write the session as `job.format` at `job.out`; returns the path written."""
    out = Path(job.out)
    with SessionReader(job.session) as reader:
        if job.format == "mcap":
            with atomic_output(out) as tmp:
                work = tmp.with_name(tmp.name + ".d")
                try:
                    work.mkdir()
                    _write_bag(reader, work / out.stem, "mcap", out)
                    os.replace(work / out.stem / f"{out.stem}.mcap", tmp)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        else:
            _export_folder(reader, out)
    return out


def _export_folder(reader: SessionReader, out: Path) -> None:
    """A ROS 2 bag folder written beside `out` and renamed to it (refused if it exists)."""
    if out.exists():
        raise OutputError(f"{out} exists: remove it or name another folder")
    work = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)
        _write_bag(reader, work / out.name, "sqlite3", out)
        os.replace(work / out.name, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_bag(reader: SessionReader, path: Path, storage: str, target: Path) -> None:
    """All streams of `reader` into a new rosbag2 at `path` (`storage` "mcap" or
    "sqlite3"); an OSError (a full disk) becomes one OutputError line naming `target`,
    the file the user asked for, not the temporary folder beside it."""
    from rosbags.rosbag2 import StoragePlugin, Writer  # the optional `interop` extra

    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    store = rt.make_typestore()
    try:
        with Writer(path, version=9, storage_plugin=plugin) as writer:
            out = _Out(writer, store, views.wall_offset_ns(reader, Path(reader.path)))
            tables = _table_columns(reader)
            _write_spec(out, reader, tables)
            _write_camera(out, reader)
            _write_streams(out, reader)
            _write_tables(out, tables)
            _write_views(out, reader)
    except OSError as e:
        raise write_error(target, e) from None
    except Exception as e:  # sqlite3 / rosbags errors of a full disk are not OSErrors
        if "full" in str(e) or "space" in str(e):
            raise OutputError(f"cannot write {target}: disk full") from None
        raise


class _Out:
    """The writer, its typestore and one connection per topic, added on first use."""

    def __init__(self, writer: Any, store: Any, offset_ns: int) -> None:
        self.writer = writer
        self.store = store
        self.types = store.types
        self.offset_ns = offset_ns
        self._conns: dict[str, Any] = {}

    def write(self, topic: str, msgtype: str, t_ns: int, msg: Any) -> None:
        conn = self._conns.get(topic)
        if conn is None:
            conn = self.writer.add_connection(topic, msgtype, typestore=self.store)
            self._conns[topic] = conn
        t = int(t_ns) + self.offset_ns
        self.writer.write(conn, t, self.store.serialize_cdr(msg, msgtype))

    def header(self, t_ns: int, frame_id: str) -> Any:
        t = int(t_ns) + self.offset_ns
        stamp = self.types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
        return self.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def string(self, text: str) -> Any:
        return self.types["std_msgs/msg/String"](data=text)


def _table_columns(reader: SessionReader) -> dict[str, Columns]:
    """The streams the session holds that travel as generated messages, read whole."""
    held = reader.streams
    tables = {}
    for stream in rt.table_streams():
        cols = reader.read(stream.name) if stream.name in held else None
        if cols is not None:
            tables[stream.name] = cols
    return tables


def _table_dims(tables: dict[str, Columns]) -> dict[str, int]:
    """The named dimensions of the streams' fields ("truth_sensors": 7...), as held."""
    dims: dict[str, int] = {}
    for name, cols in tables.items():
        for f in STREAMS[name].fields:
            shape = cols[f.name].shape[1:]
            dims |= {d: int(n) for d, n in zip(f.shape, shape) if isinstance(d, str)}
    return dims


def _write_spec(out: _Out, reader: SessionReader, tables: dict[str, Columns]) -> None:
    attrs = reader._file.attrs
    spec = {
        "robot_spec": json.loads(attrs["robot_spec"]),
        "camera_spec": json.loads(attrs["camera_spec"]),
        "metadata": json.loads(attrs.get("metadata", "{}")),
        "frame_format": str(attrs.get("frame_format", "jpeg")),
        "wall_offset_ns": out.offset_ns,
        "table_streams": list(tables),
        "dims": _table_dims(tables),
    }
    t0 = reader.start_ns or 0
    out.write(rt.SPEC_TOPIC, "std_msgs/msg/String", t0, out.string(json.dumps(spec)))


def _write_camera(out: _Out, reader: SessionReader) -> None:
    """Each frame: its JPEG bytes as they are stored, or a raw frame as bgr8 Image."""
    raw = str(reader._file.attrs.get("frame_format", "jpeg")) == "raw"
    for i, t_ns in enumerate(reader.camera_t_ns):
        header = out.header(t_ns, "camera")
        if raw:
            image = reader.frame(i)
            h, w = image.shape[:2]
            msg = out.types["sensor_msgs/msg/Image"](
                header=header,
                height=h,
                width=w,
                encoding="bgr8",
                is_bigendian=0,
                step=w * 3,
                data=np.ascontiguousarray(image).reshape(-1),
            )
            out.write(rt.RAW_CAMERA_TOPIC, "sensor_msgs/msg/Image", t_ns, msg)
        else:
            data = np.frombuffer(reader.jpeg(i), dtype=np.uint8)
            msg = out.types["sensor_msgs/msg/CompressedImage"](
                header=header, format="jpeg", data=data
            )
            out.write(rt.CAMERA_TOPIC, "sensor_msgs/msg/CompressedImage", t_ns, msg)


def _write_streams(out: _Out, reader: SessionReader) -> None:
    """Proximity, wheels, the pose (three ways) and the events."""
    t, horizontal = reader.proximity()
    for t_ns, values in zip(t, horizontal):
        msg = out.types[rt.PROXIMITY](header=out.header(t_ns, "base_link"), values=values)
        out.write(rt.PROXIMITY_TOPIC, rt.PROXIMITY, t_ns, msg)
    t, speed, target = reader.wheels()
    for t_ns, s, g in zip(t, speed, target):
        msg = out.types[rt.WHEELS](header=out.header(t_ns, "base_link"), speed=s, target=g)
        out.write(rt.WHEELS_TOPIC, rt.WHEELS, t_ns, msg)
    t, pose = reader.odometry()
    for t_ns, (x, y, theta) in zip(t, pose):
        _write_pose(out, int(t_ns), float(x), float(y), float(theta))
    for event in reader.events():
        text = json.dumps({"kind": event.kind, "message": event.message})
        out.write(rt.EVENTS_TOPIC, "std_msgs/msg/String", event.t_ns, out.string(text))


def _write_tables(out: _Out, tables: dict[str, Columns]) -> None:
    """Each table stream's rows as its generated message (ros_types.table_message)."""
    for name, cols in tables.items():
        stream, msgtype, topic = STREAMS[name], rt.table_type(name), rt.table_topic(name)
        names = [f.name for f in stream.fields]
        for i, t_ns in enumerate(cols.t_ns.tolist()):
            values = {n: cols[n][i] for n in names}
            msg = rt.table_message(out.types, stream, out.header(t_ns, "base_link"), values)
            out.write(topic, msgtype, t_ns, msg)


def _write_pose(out: _Out, t_ns: int, x: float, y: float, theta: float) -> None:
    """The pose as the exact Pose2DStamped, as nav_msgs/Odometry and as a transform."""
    ty = out.types
    out.write(
        rt.POSE_TOPIC,
        rt.POSE2D_STAMPED,
        t_ns,
        ty[rt.POSE2D_STAMPED](header=out.header(t_ns, "odom"), x=x, y=y, theta=theta),
    )
    q = ty["geometry_msgs/msg/Quaternion"](
        x=0.0, y=0.0, z=math.sin(theta / 2), w=math.cos(theta / 2)
    )
    point = ty["geometry_msgs/msg/Point"](x=x, y=y, z=0.0)
    zeros = np.zeros(36, dtype=np.float64)
    zero3 = ty["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    odom = ty["nav_msgs/msg/Odometry"](
        header=out.header(t_ns, "odom"),
        child_frame_id="base_link",
        pose=ty["geometry_msgs/msg/PoseWithCovariance"](
            pose=ty["geometry_msgs/msg/Pose"](position=point, orientation=q), covariance=zeros
        ),
        twist=ty["geometry_msgs/msg/TwistWithCovariance"](
            twist=ty["geometry_msgs/msg/Twist"](linear=zero3, angular=zero3), covariance=zeros
        ),
    )
    out.write(rt.ODOM_TOPIC, "nav_msgs/msg/Odometry", t_ns, odom)
    transform = ty["geometry_msgs/msg/TransformStamped"](
        header=out.header(t_ns, "odom"),
        child_frame_id="base_link",
        transform=ty["geometry_msgs/msg/Transform"](
            translation=ty["geometry_msgs/msg/Vector3"](x=x, y=y, z=0.0), rotation=q
        ),
    )
    out.write(
        rt.TF_TOPIC,
        "tf2_msgs/msg/TFMessage",
        t_ns,
        ty["tf2_msgs/msg/TFMessage"](transforms=[transform]),
    )


def _write_views(out: _Out, reader: SessionReader) -> None:
    """What Foxglove shows beside the exact streams (export_views): static frames, each
    sensor as Range, the accelerometer as Imu, the label and prediction grids."""
    attrs = reader._file.attrs
    robot = RobotSpec.from_dict(json.loads(attrs["robot_spec"]))
    camera = CameraSpec.from_dict(json.loads(attrs["camera_spec"]))
    t0 = reader.start_ns or 0
    tf = views.static_transforms(out.types, out.header(t0, "base_link"), robot, camera)
    out.write(views.TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", t0, tf)
    t, readings = reader.proximity()
    if readings.shape[1:] == (robot.num_prox,):
        for topic, t_ns, msg in views.range_messages(out.types, t, readings, robot, out.header):
            out.write(topic, "sensor_msgs/msg/Range", t_ns, msg)
        for topic, t_ns, msg in views.scan_messages(out.types, t, readings, robot, out.header):
            out.write(topic, "sensor_msgs/msg/LaserScan", t_ns, msg)
    acc = reader.read("acc")
    if acc is not None:
        for topic, t_ns, msg in views.imu_messages(out.types, acc.t_ns, acc.acc, out.header):
            out.write(topic, "sensor_msgs/msg/Imu", t_ns, msg)
    image = out.types["sensor_msgs/msg/CompressedImage"]
    for topic, t_ns, png in views.grid_images(reader, Path(reader.path)):
        msg = image(header=out.header(t_ns, "base_link"), format="png", data=png)
        out.write(topic, "sensor_msgs/msg/CompressedImage", t_ns, msg)
