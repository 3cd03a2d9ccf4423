"""ROS bags and MCAP in and out: `robot-ssl export S.h5 OUT.mcap` / `--format rosbag2` and
`robot-ssl import BAG OUT.h5` through the real CLI, on a simulated session and on bags
written by rosbags' own writers (a bag "recorded by someone else")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robot_ssl.io.session import SessionReader

CLI = [sys.executable, "-m", "robot_ssl"]


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """A 6-second simulated session, 80x60 JPEG frames."""
    path = tmp_path_factory.mktemp("interop") / "s.h5"
    r = cli(
        "sim",
        "record",
        "--minutes",
        "0.1",
        "--width",
        "80",
        "--height",
        "60",
        "--no-progress",
        path,
    )
    assert r.returncode == 0, r.stderr
    return path


def _streams(path: Path) -> dict:
    """Everything a round trip must keep, read from a session."""
    with SessionReader(path) as r:
        return {
            "camera_t_ns": r.camera_t_ns.copy(),
            "jpegs": [r.jpeg(i) for i in range(r.num_frames)],
            "proximity": r.proximity(),
            "wheels": r.wheels(),
            "odometry": r.odometry(),
            "events": r.events(),
            "robot": r._file.attrs["robot_spec"],
            "camera": r._file.attrs["camera_spec"],
        }


@pytest.mark.parametrize(("fmt", "name"), [("mcap", "s.mcap"), ("rosbag2", "s_bag")])
def test_export_then_import_gives_back_equal_streams(session, tmp_path, fmt, name):
    out = tmp_path / name
    r = cli("export", session, out, "--format", fmt)
    assert r.returncode == 0, r.stderr
    assert out.is_file() if fmt == "mcap" else (out / "metadata.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporaries left
    back = tmp_path / "back.h5"
    r = cli("import", out, back)
    assert r.returncode == 0, r.stderr
    a, b = _streams(session), _streams(back)
    assert len(a["jpegs"]) > 100
    assert a["jpegs"] == b["jpegs"]  # the stored JPEG bytes, unchanged
    np.testing.assert_array_equal(a["camera_t_ns"], b["camera_t_ns"])
    for stream in ("proximity", "wheels", "odometry"):
        for x, y in zip(a[stream], b[stream], strict=True):
            np.testing.assert_array_equal(x, y)  # exactly: stamps and values
    assert a["events"] == b["events"]
    assert (a["robot"], a["camera"]) == (b["robot"], b["camera"])  # the specs travel along


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(session, mount_tmpfs):
    disk = mount_tmpfs("256k")
    r = cli("export", session, disk / "s.mcap")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert f"cannot write {disk / 's.mcap'}: no space left" in r.stderr, r.stderr  # not a temp
    assert list(disk.iterdir()) == []


def _foreign_messages(store, ros1: bool):
    """(topic, msgtype, t_ns, message): 20 raw rgb8 frames at 10 Hz and odometry at 20 Hz,
    as a robot that is not a Thymio would log them (header stamps in seconds since 1970)."""
    ty = store.types
    t0 = 1_700_000_000 * 10**9

    def header(t_ns: int, frame: str):
        stamp = ty["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
        if ros1:
            return ty["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame)
        return ty["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    rng = np.random.default_rng(0)
    for i in range(20):
        t = t0 + i * 100_000_000
        data = rng.integers(0, 255, 48 * 64 * 3, dtype=np.uint8)
        img = ty["sensor_msgs/msg/Image"](
            header=header(t, "cam"),
            height=48,
            width=64,
            encoding="rgb8",
            is_bigendian=0,
            step=64 * 3,
            data=data,
        )
        yield "/camera/image_raw", "sensor_msgs/msg/Image", t, img
    for i in range(40):
        t = t0 + i * 50_000_000
        z3 = ty["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
        odom = ty["nav_msgs/msg/Odometry"](
            header=header(t, "odom"),
            child_frame_id="base_link",
            pose=ty["geometry_msgs/msg/PoseWithCovariance"](
                pose=ty["geometry_msgs/msg/Pose"](
                    position=ty["geometry_msgs/msg/Point"](x=0.01 * i, y=0.0, z=0.0),
                    orientation=ty["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
                covariance=np.zeros(36),
            ),
            twist=ty["geometry_msgs/msg/TwistWithCovariance"](
                twist=ty["geometry_msgs/msg/Twist"](linear=z3, angular=z3),
                covariance=np.zeros(36),
            ),
        )
        yield "/odom", "nav_msgs/msg/Odometry", t, odom


def _write_foreign_ros2(path: Path) -> Path:
    """A ROS 2 bag in MCAP storage; returns its .mcap file."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for topic, msgtype, t, msg in _foreign_messages(store, ros1=False):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], t, store.serialize_cdr(msg, msgtype))
    return path / f"{path.name}.mcap"


def _write_foreign_ros1(path: Path) -> Path:
    store = get_typestore(Stores.ROS1_NOETIC)
    with Writer1(path) as w:
        conns = {}
        for topic, msgtype, t, msg in _foreign_messages(store, ros1=True):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], t, store.serialize_ros1(msg, msgtype))
    return path


def _check_foreign_import(bag: Path, out: Path) -> None:
    r = cli("import", bag, out, "--camera", "/camera/image_raw", "--odom", "/odom")
    assert r.returncode == 0, r.stderr
    r = cli("info", out)
    assert r.returncode == 0, r.stderr
    counts = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()[-6:]}
    assert (counts["camera"], counts["odometry"]) == ("20", "40"), r.stdout
    with SessionReader(out) as s:
        assert s.frame(0).shape == (48, 64, 3)
        t, pose = s.odometry()
        np.testing.assert_array_equal(np.diff(t), 50_000_000)
        np.testing.assert_allclose(pose[-1], [0.39, 0.0, 0.0])


def test_an_mcap_recorded_by_someone_else_imports_and_info_reads_it(tmp_path):
    _check_foreign_import(_write_foreign_ros2(tmp_path / "other"), tmp_path / "o.h5")


def test_a_ros1_bag_imports_and_info_reads_it(tmp_path):
    _check_foreign_import(_write_foreign_ros1(tmp_path / "other.bag"), tmp_path / "o.h5")


def test_a_missing_topic_is_one_line(tmp_path):
    bag = _write_foreign_ros2(tmp_path / "other")
    r = cli("import", bag, tmp_path / "o.h5", "--odom", "/nope")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "'/nope'" in r.stderr and "/odom" in r.stderr
    assert not (tmp_path / "o.h5").exists()
    r = cli("import", bag, tmp_path / "o.h5", "--odom", "/camera/image_raw")
    assert r.returncode == 2 and "sensor_msgs/msg/Image" in r.stderr
    assert r.stderr.count("\n") == 1


def test_label_runs_on_an_imported_session(session, tmp_path):
    bag = tmp_path / "s.mcap"
    assert cli("export", session, bag).returncode == 0
    assert cli("import", bag, tmp_path / "back.h5").returncode == 0
    r = cli("label", tmp_path / "back.h5", "--out", tmp_path / "labels")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "labels" / "back.labels.h5").is_file()
