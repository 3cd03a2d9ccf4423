"""What `export` adds for a person looking at a session in Foxglove, beside the exact
streams `import` reads back: wall-clock stamps, the robot's frames, each sensor as a
sensor_msgs/Range and the label and prediction grids as images.

- Wall clock: a session's stamps are monotonic nanoseconds (since the computer booted),
  which Foxglove would show as January 1970. The export adds `wall_offset_ns` to every
  stamp (header and log time): the session's `start_time_utc` (written when its file was
  opened, with its first record) minus its first stamp; a session without a start time
  takes its file's modification time minus its duration; a session whose stamps are
  already wall clock (after 2001, e.g. imported from a bag) keeps them (offset 0). The
  offset travels in `/robot_ssl/spec` and `import` subtracts it: the round trip stays exact.
- Frames: `/tf_static` base_link -> camera (the camera spec's mount: x, y, z, pitched down
  by pitch_rad; x forward as base_link, not the optical convention) and base_link -> each
  proximity sensor (named as in the robot spec, x along its axis).
- Sensors: `/robot_ssl/range/<sensor>` sensor_msgs/Range in the sensor's frame, per kind:
  "range" the reading in metres (32767 no return: +inf, negative invalid: NaN, REP 117);
  "contact" REP 117's contact form (min_range = max_range = the reach; -inf pressed,
  +inf free); "ir" the distance at which a Thymio IR sensor reads the value (the inverse
  of core.sensor_rule's curve: a display aid, not a calibration; 0: +inf). field_of_view
  is the spec's fov_rad, max_range its reach. The raw readings stay on
  /robot_ssl/proximity.
- A scanner: when two or more range sensors share one origin (a LiDAR cut into sectors,
  data/robots/lidar_bot.yaml), `/robot_ssl/scan` sensor_msgs/LaserScan in frame
  `range_scan` at that origin, SCAN_BEAMS beams over the full turn, each beam inside a
  sensor's sector carrying that sensor's range (its nearest return; a sensor of no width
  its nearest beam), NaN outside every sector.
- Grids: `/robot_ssl/labels/grid` (from the labels file beside the session, when there
  is one) and `/robot_ssl/predictions/grid` (the session's `predictions` stream, when
  there is one), sensor_msgs/CompressedImage PNG, one per labelled frame or prediction:
  one row per sensor of the grid (top: its first sensor), one column per distance (left:
  nearest), CELL_PX pixels a cell. Labels: green free, red obstacle, grey unknown;
  predictions: from green (0) to red (1).
- Accelerometer: `/robot_ssl/imu` sensor_msgs/Imu in base_link, one per `acc` row, the
  firmware's acc as REP 145's specific force (at rest +9.8 m/s^2 up): the Thymio's axes
  (x left, y back, z down; it reads apparent gravity, g - a) turned into base_link's
  (x forward, y left, z up) and scaled by ACC_UNITS_PER_G, a display aid, not a
  calibration; no orientation or angular velocity (covariance[0] = -1). The raw values
  and the tap stay on /robot_ssl/acc.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robot_ssl.core.sensor_rule import _CURVE_C_CM2, _CURVE_X0_CM
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.labels_file import default_labels_path, read_labels
from robot_ssl.io.session import SessionReader

__all__ = [
    "ACC_UNITS_PER_G",
    "IMU_TOPIC",
    "LABELS_GRID_TOPIC",
    "PREDICTIONS_GRID_TOPIC",
    "RANGE_TOPIC",
    "SCAN_TOPIC",
    "TF_STATIC_TOPIC",
    "grid_images",
    "imu_messages",
    "range_messages",
    "scan_messages",
    "static_transforms",
    "wall_offset_ns",
]

TF_STATIC_TOPIC = "/tf_static"
RANGE_TOPIC = "/robot_ssl/range/{}"
SCAN_TOPIC = "/robot_ssl/scan"
SCAN_FRAME = "range_scan"
SCAN_BEAMS = 360
"""Beams of the LaserScan view, over the full turn."""
LABELS_GRID_TOPIC = "/robot_ssl/labels/grid"
PREDICTIONS_GRID_TOPIC = "/robot_ssl/predictions/grid"
WALL_CLOCK_MIN_NS = 10**18
"""Stamps from here on (2001-09-09) are wall clock already."""
IMU_TOPIC = "/robot_ssl/imu"
ACC_UNITS_PER_G = 22.0
"""Accelerometer counts per g: a resting Thymio reads about 22 (MMA7660 nominal 21.3)."""
G_M_S2 = 9.80665
CELL_PX = 4
"""Pixels per grid cell, each way, in the grid images."""
_NO_RETURN = 32767
_INFRARED, _ULTRASOUND = 1, 0


def wall_offset_ns(reader: SessionReader, path: Path) -> int:
    """Nanoseconds to add to the session's stamps to make them wall clock (module doc)."""
    start = reader.start_ns
    if start is None or start >= WALL_CLOCK_MIN_NS:
        return 0
    if reader.start_time_utc:
        wall = datetime.fromisoformat(reader.start_time_utc)
        if wall.tzinfo is None:
            wall = wall.replace(tzinfo=timezone.utc)
        wall_ns = (wall - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
        wall_ns *= 1000
    else:
        wall_ns = path.stat().st_mtime_ns - round(reader.duration_s * 1e9)
    return wall_ns - start


def _quaternion(types: Any, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0) -> Any:
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return types["geometry_msgs/msg/Quaternion"](
        x=sr * cp * cy - cr * sp * sy,
        y=cr * sp * cy + sr * cp * sy,
        z=cr * cp * sy - sr * sp * cy,
        w=cr * cp * cy + sr * sp * sy,
    )


def static_transforms(types: Any, header: Any, robot: RobotSpec, camera: CameraSpec) -> Any:
    """tf2_msgs/TFMessage: base_link -> camera and -> each proximity sensor."""
    frames = [("camera", camera.x_m, camera.y_m, camera.z_m, camera.pitch_rad, 0.0)]
    frames += [(s.name, s.x_m, s.y_m, 0.0, 0.0, s.theta_rad) for s in robot.prox_sensors]
    origin = scanner_origin(robot)
    if origin is not None:
        frames.append((SCAN_FRAME, origin[0], origin[1], 0.0, 0.0, 0.0))
    transforms = [
        types["geometry_msgs/msg/TransformStamped"](
            header=header,
            child_frame_id=name,
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
                rotation=_quaternion(types, pitch=pitch, yaw=yaw),
            ),
        )
        for name, x, y, z, pitch, yaw in frames
    ]
    return types["tf2_msgs/msg/TFMessage"](transforms=transforms)


def ranges_m(readings: np.ndarray, robot: RobotSpec) -> np.ndarray:
    """float32 (N, S): each reading as a sensor_msgs/Range `range` (module doc), per kind."""
    r = np.asarray(readings, dtype=np.float64)
    kinds = np.array([s.kind for s in robot.prox_sensors], dtype=object)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.where(r == _NO_RETURN, np.inf, np.where(r < 0, np.nan, r / 1000.0))
        # the Thymio curve m (C - x0^2) / ((x - x0)^2 + C - x0^2), x in cm, inverted
        k = _CURVE_C_CM2 - _CURVE_X0_CM**2
        ir_cm = _CURVE_X0_CM + np.sqrt(np.maximum(k * (robot.prox_max / r - 1.0), 0.0))
        ir = np.where(r > 0, ir_cm / 100.0, np.inf)
    contact = np.where(r > 0, -np.inf, np.inf)
    out = np.where(kinds == "range", metres, np.nan)
    out = np.where(kinds == "ir", ir, out)
    out = np.where(kinds == "contact", contact, out)
    return np.broadcast_to(out, r.shape).astype(np.float32)


def range_messages(types: Any, t_ns: np.ndarray, readings: np.ndarray, robot: RobotSpec, header):
    """(topic, t_ns, sensor_msgs/Range) per reading of each sensor; `header(t_ns, frame)`
    makes the stamped header."""
    values = ranges_m(readings, robot)
    reaches = robot.reaches_m()
    Range = types["sensor_msgs/msg/Range"]
    for j, sensor in enumerate(robot.prox_sensors):
        topic = RANGE_TOPIC.format(sensor.name)
        contact = sensor.kind == "contact"
        kind = _INFRARED if sensor.kind == "ir" else _ULTRASOUND
        lo = float(reaches[j]) if contact else 0.0
        for t, value in zip(t_ns, values[:, j]):
            msg = Range(
                header=header(int(t), sensor.name),
                radiation_type=kind,
                field_of_view=float(sensor.fov_rad),
                min_range=lo,
                max_range=float(reaches[j]),
                range=float(value),
            )
            yield topic, int(t), msg


def scanner_origin(robot: RobotSpec) -> tuple[float, float] | None:
    """(x, y) shared by all range sensors when there are two or more, else None."""
    spots = {(s.x_m, s.y_m) for s in robot.prox_sensors if s.kind == "range"}
    count = sum(s.kind == "range" for s in robot.prox_sensors)
    return next(iter(spots)) if count >= 2 and len(spots) == 1 else None


def scan_beams(robot: RobotSpec) -> np.ndarray:
    """int64 (SCAN_BEAMS,): the sensor column each beam shows, -1 for none (beam k at
    angle -pi + k * 2 pi / SCAN_BEAMS)."""
    angles = -math.pi + np.arange(SCAN_BEAMS) * (2 * math.pi / SCAN_BEAMS)
    owner = np.full(SCAN_BEAMS, -1, np.int64)
    for j, s in enumerate(robot.prox_sensors):
        if s.kind != "range":
            continue
        off = np.abs((angles - s.theta_rad + math.pi) % (2 * math.pi) - math.pi)
        inside = off <= s.fov_rad / 2 if s.fov_rad > 0 else off == off.min()
        owner[inside] = j
    return owner


def scan_messages(types: Any, t_ns: np.ndarray, readings: np.ndarray, robot: RobotSpec, header):
    """(topic, t_ns, sensor_msgs/LaserScan) per proximity row, when the robot has a
    scanner (scanner_origin); nothing otherwise."""
    if scanner_origin(robot) is None:
        return
    owner = scan_beams(robot)
    values = ranges_m(readings, robot)
    beams = np.where(owner[None, :] >= 0, values[:, np.maximum(owner, 0)], np.nan)
    reach = max(robot.reaches_m()[j] for j in set(owner.tolist()) if j >= 0)
    step = 2 * math.pi / SCAN_BEAMS
    LaserScan = types["sensor_msgs/msg/LaserScan"]
    for t, row in zip(t_ns, np.ascontiguousarray(beams, dtype=np.float32)):
        yield (
            SCAN_TOPIC,
            int(t),
            LaserScan(
                header=header(int(t), SCAN_FRAME),
                angle_min=-math.pi,
                angle_max=-math.pi + (SCAN_BEAMS - 1) * step,
                angle_increment=step,
                time_increment=0.0,
                scan_time=0.0,
                range_min=0.0,
                range_max=float(reach),
                ranges=row,
                intensities=np.zeros(0, np.float32),
            ),
        )


_LABEL_COLOURS = np.array([[128, 128, 128], [60, 180, 60], [40, 40, 220]], np.uint8)  # BGR


def _png(bgr: np.ndarray) -> np.ndarray:
    big = np.repeat(np.repeat(bgr, CELL_PX, axis=0), CELL_PX, axis=1)
    return cv2.imencode(".png", big)[1].reshape(-1)


def grid_images(reader: SessionReader, session: Path):
    """(topic, t_ns, PNG bytes as uint8 array) of the label grid (labels file beside the
    session) and the prediction grid (the predictions stream), each present or not."""
    labels_path = default_labels_path(session)
    if labels_path.exists():
        labels = read_labels(labels_path)
        for t, grid in zip(labels.t_ns, labels.labels):
            yield LABELS_GRID_TOPIC, int(t), _png(_LABEL_COLOURS[grid.astype(np.int64) + 1])
    predictions = reader.predictions()
    if predictions is not None:
        t_ns, _, prob = predictions
        for t, p in zip(t_ns, prob):
            p = np.clip(np.nan_to_num(np.asarray(p, np.float32)), 0.0, 1.0)
            bgr = np.stack([np.full_like(p, 40), 200 * (1 - p), 220 * p], axis=-1)
            yield PREDICTIONS_GRID_TOPIC, int(t), _png(bgr.astype(np.uint8))


def imu_messages(types: Any, t_ns: np.ndarray, acc: np.ndarray, header):
    """(topic, t_ns, sensor_msgs/Imu) per accelerometer row (module doc): base_link's
    (x, y, z) = (acc[1], -acc[0], acc[2]) * g / ACC_UNITS_PER_G."""
    a = np.asarray(acc, np.float64).reshape(-1, 3)
    xyz = np.stack([a[:, 1], -a[:, 0], a[:, 2]], axis=1) * (G_M_S2 / ACC_UNITS_PER_G)
    unknown = np.zeros(9, np.float64)
    unknown[0] = -1.0
    Imu, Vector3 = types["sensor_msgs/msg/Imu"], types["geometry_msgs/msg/Vector3"]
    still = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
    for t, (x, y, z) in zip(t_ns, xyz.tolist()):
        yield (
            IMU_TOPIC,
            int(t),
            Imu(
                header=header(int(t), "base_link"),
                orientation=still,
                orientation_covariance=unknown,
                angular_velocity=Vector3(x=0.0, y=0.0, z=0.0),
                angular_velocity_covariance=unknown,
                linear_acceleration=Vector3(x=x, y=y, z=z),
                linear_acceleration_covariance=np.zeros(9, np.float64),
            ),
        )
