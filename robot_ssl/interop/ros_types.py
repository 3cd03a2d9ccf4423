"""The ROS message types a session travels as, and the typestore that knows them.

Standard types where ROS has one (sensor_msgs/CompressedImage, nav_msgs/Odometry,
tf2_msgs/TFMessage, std_msgs/String); custom `robot_ssl_msgs` types, defined once here as
.msg text, for what ROS has no exact type for: the raw proximity readings, the wheel
speeds, and a stamped 2D pose whose theta survives a round trip bit for bit (a
quaternion does not: 2 * atan2(z, w) differs in the last bit for ~8 % of angles).

Every other stream of the session table (io.streams: acc, truth, frame_truth,
contact_truth, predictions, and any stream added there later) travels as a message
generated from its fields (`table_definition`): `robot_ssl_msgs/msg/<Stream>` (CamelCase
of the stream's name) on `/robot_ssl/<stream>`, a std_msgs/Header (the row's stamp) and
one ROS field per table field of the same name and dtype (int16 -> int16, float32 ->
float32, "S<n>" -> string...), a field of any shape flattened to an array `T[]`: the
named dimensions that shape it back travel in `/robot_ssl/spec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_ssl.io.streams import STREAMS, Field, Stream, StreamTable

if TYPE_CHECKING:  # rosbags is the optional `interop` extra: imported when used
    from rosbags.typesys.store import Typestore

__all__ = [
    "CAMERA_TOPIC",
    "EVENTS_TOPIC",
    "MSG_DEFINITIONS",
    "ODOM_TOPIC",
    "OWN_TYPE_STREAMS",
    "POSE_TOPIC",
    "PROXIMITY_TOPIC",
    "RAW_CAMERA_TOPIC",
    "SPEC_TOPIC",
    "TF_TOPIC",
    "WHEELS_TOPIC",
    "make_typestore",
    "table_definition",
    "table_message",
    "table_streams",
    "table_topic",
    "table_type",
    "table_values",
]

PROXIMITY = "robot_ssl_msgs/msg/Proximity"
WHEELS = "robot_ssl_msgs/msg/Wheels"
POSE2D_STAMPED = "robot_ssl_msgs/msg/Pose2DStamped"

MSG_DEFINITIONS: dict[str, str] = {
    PROXIMITY: "std_msgs/Header header\nint16[] values\n",
    WHEELS: "std_msgs/Header header\nint16[] speed\nint16[] target\n",
    POSE2D_STAMPED: "std_msgs/Header header\nfloat64 x\nfloat64 y\nfloat64 theta\n",
}
"""The custom messages, as .msg text: raw readings (int16, robot units), wheels measured
and commanded (left, right), the pose x [m], y [m], theta [rad]."""

# The topics `export` writes and `import` reads by default.
CAMERA_TOPIC = "/camera/image/compressed"
RAW_CAMERA_TOPIC = "/camera/image_raw"
PROXIMITY_TOPIC = "/robot_ssl/proximity"
WHEELS_TOPIC = "/robot_ssl/wheels"
POSE_TOPIC = "/robot_ssl/pose"
ODOM_TOPIC = "/odom"
TF_TOPIC = "/tf"
EVENTS_TOPIC = "/robot_ssl/events"
SPEC_TOPIC = "/robot_ssl/spec"

OWN_TYPE_STREAMS = ("camera", "proximity", "wheels", "odometry", "events")
"""The table's streams that travel as the messages above; every other one as its
generated type (`table_type`)."""

_STRING = "string"


def table_streams(table: StreamTable = STREAMS) -> tuple[Stream, ...]:
    """The streams of `table` that travel as generated messages, in table order."""
    return tuple(s for s in table if s.name not in OWN_TYPE_STREAMS)


def table_type(stream: str) -> str:
    """The generated message type of `stream`: "contact_truth" -> .../ContactTruth."""
    return "robot_ssl_msgs/msg/" + "".join(w.capitalize() for w in stream.split("_"))


def table_topic(stream: str) -> str:
    return f"/robot_ssl/{stream}"


def _ros_type(f: Field) -> str:
    dtype = np.dtype(f.dtype)
    name = _STRING if dtype.kind == "S" else "bool" if dtype.kind == "b" else dtype.name
    return name if not f.shape else f"{name}[]"


def table_definition(stream: Stream) -> str:
    """The .msg text of `stream`'s generated type: a header, then its fields."""
    lines = ["std_msgs/Header header", *(f"{_ros_type(f)} {f.name}" for f in stream.fields)]
    return "\n".join(lines) + "\n"


def table_message(types: Any, stream: Stream, header: Any, values: Mapping[str, Any]) -> Any:
    """One row of `stream` (values by field name, as read from a session) as its message:
    strings decoded as UTF-8 (a byte that is not: U+FFFD), arrays flattened."""
    out: dict[str, Any] = {}
    for f in stream.fields:
        v = values[f.name]
        if np.dtype(f.dtype).kind == "S":
            out[f.name] = bytes(v).decode("utf-8", "replace")
        elif f.shape:
            out[f.name] = np.ascontiguousarray(v, dtype=f.dtype).reshape(-1)
        else:
            out[f.name] = np.asarray(v, dtype=f.dtype)[()]
    return types[table_type(stream.name)](header=header, **out)


def table_values(msg: Any, stream: Stream, dims: Mapping[str, int]) -> dict[str, Any]:
    """The row values of a generated message, each field in its table dtype and shape
    (named dimensions from `dims`); KeyError naming a dimension `dims` lacks,
    ValueError when a field's size does not fit."""
    out: dict[str, Any] = {}
    for f in stream.fields:
        v = getattr(msg, f.name)
        if np.dtype(f.dtype).kind == "S":
            out[f.name] = v.encode("utf-8")
        elif f.shape:
            shape = tuple(d if isinstance(d, int) else int(dims[d]) for d in f.shape)
            out[f.name] = np.asarray(v, dtype=f.dtype).reshape(shape)
        else:
            out[f.name] = v
    return out


def make_typestore() -> Typestore:
    """ROS 2 Humble's types plus the custom `robot_ssl_msgs` ones (those above and one
    per table stream)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict = {}
    definitions = {**MSG_DEFINITIONS}
    definitions |= {table_type(s.name): table_definition(s) for s in table_streams()}
    for name, text in definitions.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
