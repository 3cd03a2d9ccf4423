"""Another robot's sensor and command topics as the session's proximity and wheels rows.

`import_bag` collects the raw messages (`RawSensors`); this module decides which spec
sensor each topic fills and builds the rows:

- `--range TOPIC`: the spec's range sensor named by the messages' header.frame_id, else
  the next range sensor in spec order that no other topic claimed;
- `--scan TOPIC`: every range sensor no --range topic claimed, each the nearest return
  among the beams within its sector (bag_sensors.scan_sectors); the beams' angles are
  turned into the robot frame by the scanner frame's /tf_static pose (none: aligned);
- `--bumper TOPIC[:FIELD]`: the spec's contact sensors, by frame_id name, else in order.

Sensor poses: the spec's (a --spec file, or the bag's own /robot_ssl/spec) always win.
With no spec, the sensors are built from the bag: each --range topic a range sensor
named by its frame_id, each --bumper a contact sensor, posed by /tf_static (base frame
-> sensor frame); a frame /tf_static does not place is one line (give --spec). A --scan
needs a spec: its sectors are the spec's range sensors.

`--cmd-vel TOPIC` gives the wheels stream: at each odometry row, the measured wheel
speeds from the odometry's twist (or the poses' finite differences when the pose comes
from tf) and the target from the latest command younger than `cmd_timeout_s` (0 after:
a ROS base stops when its commands stop).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from robot_ssl.core.spec import ProxSensor, RobotSpec
from robot_ssl.interop.bag_sensors import (
    SensorSource,
    merge_sources,
    range_mm,
    scan_sectors,
    sector_masks,
    twist_to_wheel_units,
)
from robot_ssl.interop.bag_tf import Planar, static_pose

__all__ = ["RawSensors", "bag_robot", "proximity_rows", "wheel_rows"]


@dataclass
class RawSensors:
    """The sensor topics' messages as read: per --range topic rows (t_ns, range_m,
    min_m, max_m, frame_id, fov_rad); the scan's rows (t_ns, ranges (B,), angle_min,
    angle_increment, range_min, range_max, frame_id); per --bumper topic rows (t_ns,
    0/1, frame_id); the static tf tree (child -> (parent, pose))."""

    ranges: dict[str, list[tuple]] = field(default_factory=dict)
    scan: list[tuple] = field(default_factory=list)
    scan_topic: str = ""
    bumpers: dict[str, list[tuple]] = field(default_factory=dict)
    static: dict[str, tuple[str, Planar]] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.ranges or self.scan_topic or self.bumpers)


def _frame(rows: list[tuple], i: int) -> str:
    return str(rows[0][i]).lstrip("/") if rows else ""


def bag_robot(robot: RobotSpec, raw: RawSensors, base_frame: str, error: type) -> RobotSpec:
    """`robot` with the sensors the bag's --range and --bumper topics name, posed by
    /tf_static (the import's spec when none was given); the label grid's sensors are the
    forward-facing ones."""
    if raw.scan_topic:
        raise error(f"--scan {raw.scan_topic}: give --spec (its range sensors are the sectors)")
    sensors = []
    for kind, topics in (("range", raw.ranges), ("contact", raw.bumpers)):
        for topic, rows in topics.items():
            frame = _frame(rows, 4 if kind == "range" else 2) or topic.strip("/")
            pose = static_pose(raw.static, base_frame, frame)
            if pose is None:
                raise error(
                    f"{topic}: no /tf_static transform from {base_frame} to {frame!r} "
                    "places the sensor (give --spec, or --base-frame)"
                )
            fov = float(rows[0][5]) if kind == "range" and rows else 0.0
            sensors.append(ProxSensor(frame, *pose, kind=kind, fov_rad=min(max(fov, 0.0), 6.28)))
    front = tuple(i for i, s in enumerate(sensors) if math.cos(s.theta_rad) > 0)
    return dataclasses.replace(
        robot, name="imported", prox_sensors=tuple(sensors), front_sensor_indices=front or (0,)
    )


def _claim(robot: RobotSpec, kind: str, frames: dict[str, str], what: str, error: type):
    """Column per topic: the sensor of `kind` named by the topic's frame, else the next
    one unclaimed in spec order."""
    idx = [i for i, s in enumerate(robot.prox_sensors) if s.kind == kind]
    names = {robot.prox_sensors[i].name: i for i in idx}
    claimed = {t: names[f] for t, f in frames.items() if f in names}
    free = [i for i in idx if i not in claimed.values()]
    for topic in frames:
        if topic not in claimed:
            if not free:
                raise error(
                    f"{what} {topic}: the spec has no {kind} sensor left for it "
                    f"({len(idx)} {kind} sensors: {', '.join(names) or 'none'})"
                )
            claimed[topic] = free.pop(0)
    return claimed, free


def _stamps(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([r[0] for r in rows], np.int64)
    order = np.argsort(t, kind="stable")
    return t[order], order


def proximity_rows(
    robot: RobotSpec, raw: RawSensors, base_frame: str, stale_periods: float, error: type
) -> tuple[np.ndarray, np.ndarray]:
    """The proximity stream (t_ns (M,), int16 (M, num_prox)) from the sensor topics."""
    ranges, free = _claim(
        robot, "range", {t: _frame(r, 4) for t, r in raw.ranges.items()}, "--range", error
    )
    bumpers, _ = _claim(
        robot, "contact", {t: _frame(r, 2) for t, r in raw.bumpers.items()}, "--bumper", error
    )
    sources = []
    for topic, rows in raw.ranges.items():
        if not rows:
            continue
        t, order = _stamps(rows)
        a = np.array([r[1:4] for r in rows], np.float64)[order]
        sources.append(
            SensorSource(topic, t, range_mm(a[:, 0], a[:, 1], a[:, 2])[:, None], (ranges[topic],))
        )
    for topic, rows in raw.bumpers.items():
        if rows:
            t, order = _stamps(rows)
            v = np.array([r[1] for r in rows], np.int16)[order, None]
            sources.append(SensorSource(topic, t, v, (bumpers[topic],)))
    if raw.scan_topic and raw.scan:
        if not free:
            raise error(f"--scan {raw.scan_topic}: the spec has no range sensor left for it")
        sources.append(_scan_source(robot, raw, free, base_frame))
    return merge_sources(sources, robot.num_prox, stale_periods)


def _scan_source(robot: RobotSpec, raw: RawSensors, cols: list[int], base_frame: str):
    """The scan cut into sensors `cols` by sector; masks per beam geometry."""
    sensors = [robot.prox_sensors[i] for i in cols]
    centres = np.array([s.theta_rad for s in sensors])
    fovs = np.array([s.fov_rad for s in sensors])
    t, order = _stamps(raw.scan)
    out = np.empty((len(order), len(cols)), np.int16)
    masks: dict[tuple, np.ndarray] = {}
    for k, j in enumerate(order):
        _, ranges, a0, inc, lo, hi, frame = raw.scan[j]
        key = (len(ranges), a0, inc, frame)
        if key not in masks:
            yaw = (static_pose(raw.static, base_frame, str(frame).lstrip("/")) or (0, 0, 0))[2]
            angles = yaw + a0 + inc * np.arange(len(ranges))
            masks[key] = sector_masks(angles, centres, fovs)
        out[k] = scan_sectors(range_mm(ranges, lo, hi)[None, :], masks[key])[0]
    return SensorSource(raw.scan_topic, t, out, tuple(cols))


def wheel_rows(
    robot: RobotSpec,
    odom: list[tuple[int, np.ndarray]],
    twist: list[tuple[int, float, float]],
    cmd: list[tuple[int, float, float]],
    cmd_timeout_s: float,
) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """Wheels rows (t_ns, (speed, target)) at the odometry's stamps (see the module)."""
    if not odom:
        return []
    odom = sorted(odom, key=lambda r: r[0])
    t = np.array([r[0] for r in odom], np.int64)
    if twist:
        tw = sorted(twist, key=lambda r: r[0])
        v, w = np.array([r[1] for r in tw]), np.array([r[2] for r in tw])
    else:  # poses only (tf): finite differences, the first row repeats the second's
        pose = np.array([r[1] for r in odom], np.float64)
        dt = np.maximum(np.diff(t) / 1e9, 1e-9)
        d = np.diff(pose, axis=0)
        heading = pose[:-1, 2]
        v = (d[:, 0] * np.cos(heading) + d[:, 1] * np.sin(heading)) / dt
        w = np.array([math.remainder(a, 2 * math.pi) for a in d[:, 2]]) / dt
        v, w = (np.r_[x[:1], x] if len(x) else np.zeros(1) for x in (v, w))
    speed = twist_to_wheel_units(v, w, robot.axle_length_m, robot.speed_m_per_unit)
    cmd = sorted(cmd, key=lambda r: r[0])
    ct = np.array([r[0] for r in cmd], np.int64)
    cv = np.array([[r[1], r[2]] for r in cmd], np.float64).reshape(-1, 2)
    i = np.searchsorted(ct, t, side="right") - 1
    if len(ct):
        fresh = (i >= 0) & (t - ct[np.maximum(i, 0)] <= cmd_timeout_s * 1e9)
        vw = np.where(fresh[:, None], cv[np.maximum(i, 0)], 0.0)
    else:
        vw = np.zeros((len(t), 2))
    target = twist_to_wheel_units(vw[:, 0], vw[:, 1], robot.axle_length_m, robot.speed_m_per_unit)
    n = min(len(t), len(speed))
    return [(int(t[k]), (speed[k], target[k])) for k in range(n)]
