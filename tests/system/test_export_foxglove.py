"""What `robot-ssl export` adds for Foxglove, checked with readers other than ours: the
`mcap` library (schemas, channels, message counts, as Foxglove indexes a file), its ROS 2
decoder (mcap-ros2-support, the definitions the file carries) and rosbags reading the
file back: wall-clock stamps, /tf_static, one sensor_msgs/Range topic per sensor, the
label and prediction grids as PNG images; `import` still gives back the exact stamps."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs
from robot_ssl.interop import ros_types as rt
from robot_ssl.interop.export_views import CELL_PX, IMU_TOPIC, ranges_m
from robot_ssl.io.session import SessionReader, SessionWriter

CLI = [sys.executable, "-m", "robot_ssl"]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A 6-second simulated session and its labels file beside it."""
    path = tmp_path_factory.mktemp("fox") / "s.h5"
    r = cli(
        "sim", "record", "--minutes", "0.1", "--width", "80", "--height", "60",
        "--no-progress", path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("label", path)
    assert r.returncode == 0, r.stderr
    assert path.with_suffix(".labels.h5").is_file()
    return path


def _mcap_summary(path: Path) -> tuple[dict[str, str], dict[str, int], dict[str, list]]:
    """(topic -> schema name, topic -> message count, topic -> decoded messages) read by
    the mcap library and its ROS 2 decoder."""
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        schemas = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        counts = {
            summary.channels[cid].topic: n
            for cid, n in summary.statistics.channel_message_counts.items()
        }
        decoded: dict[str, list] = {}
        for _, channel, message, ros in reader.iter_decoded_messages():
            decoded.setdefault(channel.topic, []).append((message.log_time, ros))
    return schemas, counts, decoded


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_foxglove_sees_wall_clock_frames_ranges_and_grids(labelled, tmp_path):
    out = tmp_path / "s.mcap"
    r = cli("export", labelled, out)
    assert r.returncode == 0, r.stderr
    schemas, counts, decoded = _mcap_summary(out)
    with SessionReader(labelled) as s:
        robot = RobotSpec.from_dict(json.loads(s._file.attrs["robot_spec"]))
        t_prox, prox = s.proximity()
        start_ns, n_frames = s.start_ns, s.num_frames
        start_utc = datetime.fromisoformat(s.start_time_utc)
    # wall clock: the first message is the session's start time, to the microsecond
    first_log = min(m[0][0] for m in decoded.values())
    start_wall = datetime.fromtimestamp(first_log / 1e9, timezone.utc)
    assert abs((start_wall - start_utc).total_seconds()) < 1e-5
    offset = first_log - start_ns
    odom = decoded[rt.ODOM_TOPIC]
    assert [_stamp_ns(m) - offset for _, m in odom] == [t - offset for t, _ in odom]
    # the static frames: camera and every sensor, from the spec
    assert schemas["/tf_static"] == "tf2_msgs/msg/TFMessage" and counts["/tf_static"] == 1
    tf = decoded["/tf_static"][0][1].transforms
    assert [t.child_frame_id for t in tf] == ["camera", *(p.name for p in robot.prox_sensors)]
    assert {t.header.frame_id for t in tf} == {"base_link"}
    cam = CameraSpec()
    assert tf[0].transform.translation.z == pytest.approx(cam.z_m)
    assert 2 * np.arcsin(tf[0].transform.rotation.y) == pytest.approx(cam.pitch_rad)
    # one Range topic per sensor, one message per proximity row, in the sensor's frame
    values = ranges_m(prox, robot)
    for j, sensor in enumerate(robot.prox_sensors):
        topic = f"/robot_ssl/range/{sensor.name}"
        assert schemas[topic] == "sensor_msgs/msg/Range"
        assert counts[topic] == len(t_prox)
        msgs = [m for _, m in decoded[topic]]
        assert {m.header.frame_id for m in msgs} == {sensor.name}
        assert [_stamp_ns(m) - offset for m in msgs] == t_prox.tolist()
        np.testing.assert_array_equal(np.array([m.range for m in msgs], np.float32), values[:, j])
    assert np.isfinite(values).any() and np.isinf(values).any()  # near and far both shown
    # the label grid: one PNG per labelled frame, sensors x distances cells
    assert schemas["/robot_ssl/labels/grid"] == "sensor_msgs/msg/CompressedImage"
    assert counts["/robot_ssl/labels/grid"] == n_frames
    msg = decoded["/robot_ssl/labels/grid"][-1][1]
    image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    assert msg.format == "png" and image.shape == (5 * CELL_PX, 31 * CELL_PX, 3)
    # rosbags reads the same file, every topic
    with AnyReader([out], default_typestore=rt.make_typestore()) as reader:
        seen = {c.topic: 0 for c in reader.connections}
        for conn, _, raw in reader.messages():
            reader.deserialize(raw, conn.msgtype)
            seen[conn.topic] += 1
    assert seen == counts
    # each other stream of the table as its generated type (decoded above from the
    # definition the file carries), the accelerometer also as sensor_msgs/Imu
    with SessionReader(labelled) as s:
        rows = {n: len(s.read(n)) for n in s.streams if n not in rt.OWN_TYPE_STREAMS}
    assert rows["acc"] > 0 and rows["truth"] > 0
    for name, n in rows.items():
        topic = rt.table_topic(name)
        assert (schemas.get(topic), counts.get(topic)) == (
            (rt.table_type(name), n) if n else (None, None)
        )
    assert (schemas[IMU_TOPIC], counts[IMU_TOPIC]) == ("sensor_msgs/msg/Imu", rows["acc"])


def test_prediction_grid_and_rosbag2_and_stamps_back(tmp_path):
    """A session with predictions (as `run` writes them) and no start time: the grid is
    exported, the stamps are from the file's time, and `import` gives them back exactly;
    the same as a ROS 2 bag (sqlite3), read by rosbags."""
    robot, camera = RobotSpec(), CameraSpec(width=64, height=48)
    path = tmp_path / "p.h5"
    rng = np.random.default_rng(1)
    with SessionWriter(path, robot, camera, prediction_shape=(5, 31)) as w:
        for k in range(20):
            t = 5_000_000_000 + k * 100_000_000
            image = rng.integers(0, 255, (48, 64, 3), np.uint8)
            w.write_jpeg(t, cv2.imencode(".jpg", image)[1].tobytes())
            w.write_prediction(t + 1, k, rng.random((5, 31)).astype(np.float32))
            w.write_odometry(t, [0.01 * k, 0.0, 0.0])
            prox = np.zeros(robot.num_prox, np.int16)
            prox[0] = 1000 + 100 * k
            w.write_proximity(t + 2, prox)
    with h5py.File(path, "a") as f:
        del f.attrs["start_time_utc"]
    bag = tmp_path / "p_bag"
    r = cli("export", path, bag, "--format", "rosbag2")
    assert r.returncode == 0, r.stderr
    with AnyReader([bag], default_typestore=rt.make_typestore()) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        grids, ranges, logs = [], [], []
        for conn, log_t, raw in reader.messages():
            logs.append(log_t)
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/robot_ssl/predictions/grid":
                grids.append(cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), 1))
            if conn.topic == f"/robot_ssl/range/{robot.prox_sensors[0].name}":
                ranges.append(msg.range)
    assert len(grids) == 20 and grids[0].shape == (5 * CELL_PX, 31 * CELL_PX, 3)
    assert sum(t.startswith("/robot_ssl/range/") for t in topics) == robot.num_prox
    readings = np.zeros((20, robot.num_prox), np.int16)
    readings[:, 0] = 1000 + 100 * np.arange(20)
    np.testing.assert_array_equal(np.float32(ranges), ranges_m(readings, robot)[:, 0])
    assert np.all(np.diff(ranges) < 0)
    mtime_ns = path.stat().st_mtime_ns
    assert abs(min(logs) + 1_900_000_002 - mtime_ns) < 1e6  # file time minus duration
    back = tmp_path / "back.h5"
    r = cli("import", bag, back)
    assert r.returncode == 0, r.stderr
    with SessionReader(path) as a, SessionReader(back) as b:
        np.testing.assert_array_equal(a.camera_t_ns, b.camera_t_ns)
        for x, y in zip(a.odometry(), b.odometry(), strict=True):
            np.testing.assert_array_equal(x, y)
        for x, y in zip(a.proximity(), b.proximity(), strict=True):
            np.testing.assert_array_equal(x, y)


def test_a_lidar_robot_exports_its_sectors_as_one_laserscan(tmp_path):
    """A TurtleBot-like spec (11 range sectors of one LiDAR, a bumper): Range per sensor,
    one LaserScan per row in the scanner's frame, decoded by the mcap library."""
    robot, camera = load_specs(ROOT / "data" / "robots" / "lidar_bot.yaml")
    path = tmp_path / "l.h5"
    with SessionWriter(path, robot, camera) as w:
        for k in range(5):
            prox = np.full(robot.num_prox, 32767, np.int16)
            prox[2], prox[-1] = 100 + 10 * k, k % 2
            w.write_proximity(1_000_000_000 + k * 100_000_000, prox)
            w.write_odometry(1_000_000_000 + k * 100_000_000, [0.0, 0.0, 0.0])
    out = tmp_path / "l.mcap"
    r = cli("export", path, out)
    assert r.returncode == 0, r.stderr
    schemas, counts, decoded = _mcap_summary(out)
    assert (
        schemas["/robot_ssl/scan"] == "sensor_msgs/msg/LaserScan" and counts["/robot_ssl/scan"] == 5
    )
    scans = [m for _, m in decoded["/robot_ssl/scan"]]
    assert [s.ranges[180] for s in scans] == pytest.approx([0.1, 0.11, 0.12, 0.13, 0.14])
    assert {s.header.frame_id for s in scans} == {"range_scan"}
    bumper = [m.range for _, m in decoded["/robot_ssl/range/bumper_front"]]
    assert bumper == [np.inf, -np.inf, np.inf, -np.inf, np.inf]
    tf = decoded["/tf_static"][0][1].transforms
    assert "range_scan" in [t.child_frame_id for t in tf]
