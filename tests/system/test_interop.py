"""ROS bags and MCAP in and out: `robot-ssl export S.h5 OUT.mcap` / `--format rosbag2` and
`robot-ssl import BAG OUT.h5` through the real CLI, on a simulated session and on bags
written by rosbags' own writers (a bag "recorded by someone else")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from robot_bags import ros_header, straight_odometry
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session import STREAMS, Record, SessionReader, SessionWriter

CLI = [sys.executable, "-m", "robot_ssl"]


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """A 6-second simulated session, 80x60 JPEG frames, driven into contact: it holds
    truth, frame_truth, acc and contact_truth besides the required streams."""
    path = tmp_path_factory.mktemp("interop") / "s.h5"
    r = cli(
        "sim",
        "record",
        "--drive",
        "contact",
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
    """Everything a round trip must keep, read from a session: every stream of the table
    it holds, every field as (dtype, shape, bytes), the JPEG bytes and the specs."""
    with SessionReader(path) as r:
        held = {}
        for name in r.streams:
            cols = r.read(name)
            held[name] = {k: (a.dtype, a.shape, a.tobytes()) for k, a in cols.arrays.items()}
        return {
            "streams": held,
            "jpegs": [r.jpeg(i) for i in range(r.num_frames)] if r.frame_format == "jpeg" else [],
            "robot": r._file.attrs["robot_spec"],
            "camera": r._file.attrs["camera_spec"],
        }


def _round_trip(session: Path, tmp_path: Path, fmt: str, name: str) -> tuple[dict, dict]:
    """Export `session` as `fmt`, import it back: (the original's streams, the copy's)."""
    out = tmp_path / name
    r = cli("export", session, out, "--format", fmt)
    assert r.returncode == 0, r.stderr
    assert out.is_file() if fmt == "mcap" else (out / "metadata.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporaries left
    back = tmp_path / "back.h5"
    r = cli("import", out, back)
    assert r.returncode == 0, r.stderr
    return _streams(session), _streams(back)


def _assert_equal_streams(a: dict, b: dict) -> None:
    """The same streams, each with the same fields, dtypes, shapes and bytes (NaN too)."""
    assert list(a["streams"]) == list(b["streams"])
    for name, fields in a["streams"].items():
        assert name in STREAMS, name
        assert list(fields) == list(b["streams"][name]), name
        for field, (dtype, shape, data) in fields.items():
            assert (dtype, shape) == b["streams"][name][field][:2], (name, field)
            assert data == b["streams"][name][field][2], (name, field)  # exactly
    assert a["jpegs"] == b["jpegs"]  # the stored JPEG bytes, unchanged
    assert (a["robot"], a["camera"]) == (b["robot"], b["camera"])  # the specs travel along


@pytest.mark.parametrize(("fmt", "name"), [("mcap", "s.mcap"), ("rosbag2", "s_bag")])
def test_export_then_import_gives_back_equal_streams(session, tmp_path, fmt, name):
    a, b = _round_trip(session, tmp_path, fmt, name)
    assert len(a["jpegs"]) > 100
    held = {"truth", "frame_truth", "acc", "contact_truth"}
    assert held <= set(a["streams"]), list(a["streams"])
    assert all(len(np.frombuffer(a["streams"][s]["t_ns"][2], np.int64)) for s in held)
    _assert_equal_streams(a, b)


def _every_stream(path: Path, frame_format: str) -> Path:
    """A session holding every stream of the table: predictions on a 5 x 10 grid with
    NaN among the probabilities, truth for 4 sensors (not the robot's 7: the dimension
    travels on its own), contact_truth opened but empty, 12 frames of `frame_format`."""
    optional = [s.name for s in STREAMS if not s.required]
    rng = np.random.default_rng(3)
    camera = CameraSpec().with_overrides(width=80, height=60)
    with SessionWriter(
        path,
        RobotSpec(),
        camera,
        frame_format=frame_format,
        streams=optional,
        dims={"truth_sensors": 4},
        prediction_shape=(5, 10),
    ) as w:
        for i in range(12):
            t = 1_000_000_000 + i * 33_333_333
            w.write_frame(t, rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
            w.write_frame_truth(t, t - 4_000_000)
            prob = rng.random((5, 10), dtype=np.float32)
            prob[i % 5, i % 10] = np.nan
            w.write_prediction(t + 20_000_000, i, prob)
        for i in range(40):
            t = 1_000_000_000 + i * 10_000_000
            w.write_proximity(t, rng.integers(0, 4500, 7, dtype=np.int16))
            w.write_wheels(t, rng.integers(-500, 500, 2), rng.integers(-500, 500, 2))
            w.write_odometry(t, rng.normal(size=3))
            w.write_truth(t, rng.normal(size=3), rng.random(4, dtype=np.float32))
            w.write(Record.of("acc", t, acc=rng.integers(-30, 30, 3), tap=i % 7 == 0))
        w.write_event(1_000_000_000, "note", "every stream, once")
    return path


@pytest.mark.parametrize(
    ("fmt", "name", "frames"),
    [("mcap", "all.mcap", "jpeg"), ("rosbag2", "all_bag", "jpeg"), ("mcap", "all.mcap", "raw")],
)
def test_a_session_of_every_stream_round_trips_exactly(tmp_path_factory, fmt, name, frames):
    session = _every_stream(tmp_path_factory.mktemp("every") / "all.h5", frames)
    a, b = _round_trip(session, tmp_path_factory.mktemp("out"), fmt, name)
    assert set(a["streams"]) == set(STREAMS.names)  # the fixture holds them all
    assert ("rgb" in a["streams"]["camera"]) == (frames == "raw")  # raw frames stay raw
    assert a["streams"]["contact_truth"]["t_ns"][1] == (0,)  # one empty, kept empty
    assert a["streams"]["predictions"]["prob"][1] == (12, 5, 10)
    assert a["streams"]["truth"]["prox_distance_m"][1] == (40, 4)
    _assert_equal_streams(a, b)


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
        return ros_header(ty, t_ns, frame, ros1)

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
        odom = straight_odometry(ty, header(t, "odom"), 0.01 * i)
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


def test_a_run_recorded_session_with_predictions_round_trips_exactly(onnx_model, tmp_path):
    """What `run` records (predictions, truth, acc; frame_truth and contact_truth opened
    and empty) comes back equal through export and import."""
    live = tmp_path / "rec" / "live.h5"
    r = cli(
        "run", "--model", onnx_model, "--robot", "sim", "--camera", "sim", "--drive", "avoid",
        "--record", live, "--duration", "3",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (tmp_path / "out").mkdir()
    a, b = _round_trip(live, tmp_path / "out", "mcap", "live.mcap")
    assert len(np.frombuffer(a["streams"]["predictions"]["t_ns"][2], np.int64)) > 10
    assert {"truth", "acc", "frame_truth", "contact_truth"} <= set(a["streams"])
    _assert_equal_streams(a, b)
