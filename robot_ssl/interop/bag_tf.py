"""Planar transforms from a bag's tf: a quaternion's yaw, the static tree's sensor poses.

The session is planar (x, y, theta), so each tf transform is kept as (x, y, yaw) of the
child in the parent frame. `static_pose` walks /tf_static from a sensor's frame up to
the robot's base frame, composing on the way (base_link -> laser_mount -> laser).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Planar", "compose", "quat_yaw", "static_pose", "transform_planar"]

Planar = tuple[float, float, float]
"""(x_m, y_m, yaw_rad) of a child frame in its parent's."""


def quat_yaw(q: Any) -> float:
    """Yaw (rad, in (-pi, pi]) of a quaternion with fields x, y, z, w."""
    yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
    return yaw if yaw > -math.pi else math.pi


def transform_planar(tf: Any) -> Planar:
    """A geometry_msgs/Transform as (x, y, yaw)."""
    return float(tf.translation.x), float(tf.translation.y), quat_yaw(tf.rotation)


def compose(a: Planar, b: Planar) -> Planar:
    """Pose b (in frame A) expressed in a's parent: a then b."""
    c, s = math.cos(a[2]), math.sin(a[2])
    yaw = math.remainder(a[2] + b[2], 2 * math.pi)
    return a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], yaw


def static_pose(edges: dict[str, tuple[str, Planar]], base: str, frame: str) -> Planar | None:
    """`frame`'s pose in `base` through the static tree `edges` (child -> (parent, pose));
    None when the chain from `frame` does not reach `base`."""
    pose: Planar = (0.0, 0.0, 0.0)
    seen = set()
    while frame != base:
        if frame not in edges or frame in seen:
            return None
        seen.add(frame)
        parent, step = edges[frame]
        pose = compose(step, pose)
        frame = parent
    return pose
