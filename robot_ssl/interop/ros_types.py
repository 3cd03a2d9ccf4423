"""The ROS message types a session travels as, and the typestore that knows them.

Standard types where ROS has one (sensor_msgs/CompressedImage, nav_msgs/Odometry,
tf2_msgs/TFMessage, std_msgs/String); custom `robot_ssl_msgs` types, defined once here as
.msg text, for what ROS has no exact type for: the raw proximity readings, the wheel
speeds, and a stamped 2D pose whose theta survives a round trip bit for bit (a
quaternion does not: 2 * atan2(z, w) differs in the last bit for ~8 % of angles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rosbags is the optional `interop` extra: imported when used
    from rosbags.typesys.store import Typestore

__all__ = [
    "CAMERA_TOPIC",
    "EVENTS_TOPIC",
    "MSG_DEFINITIONS",
    "ODOM_TOPIC",
    "POSE_TOPIC",
    "PROXIMITY_TOPIC",
    "SPEC_TOPIC",
    "TF_TOPIC",
    "WHEELS_TOPIC",
    "make_typestore",
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
PROXIMITY_TOPIC = "/robot_ssl/proximity"
WHEELS_TOPIC = "/robot_ssl/wheels"
POSE_TOPIC = "/robot_ssl/pose"
ODOM_TOPIC = "/odom"
TF_TOPIC = "/tf"
EVENTS_TOPIC = "/robot_ssl/events"
SPEC_TOPIC = "/robot_ssl/spec"


def make_typestore() -> Typestore:
    """ROS 2 Humble's types plus the custom `robot_ssl_msgs` ones."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict = {}
    for name, text in MSG_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
