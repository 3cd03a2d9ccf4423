"""A bag cut short imports what is intact and says so: bags written by rosbags' own
writers (ROS 1 plain and compressed, ROS 2 MCAP and sqlite3 storage, a plain .mcap, a
bare .db3), cut at several byte offsets, then `robot-ssl import` through the real CLI;
nothing intact is exit 2."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from robot_bags import ros_header, straight_odometry
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from robot_ssl.interop import ros_types as rt
from robot_ssl.interop.bag_recovery import BagRecoveryError, open_intact
from robot_ssl.io.session import SessionReader

CLI = [sys.executable, "-m", "robot_ssl"]
N_ODOM = 200  # 10 s at 20 Hz
N_FRAMES = 100  # 10 s at 10 Hz


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def _messages(store, ros1: bool):
    """(topic, msgtype, t_ns, message) in time order: JPEG frames at 10 Hz, odometry at
    20 Hz (x = 0.01 m per message, so the recovered prefix is checkable)."""
    ty = store.types
    t0 = 1_700_000_000 * 10**9

    def header(t_ns: int, frame: str):
        return ros_header(ty, t_ns, frame, ros1)

    rng = np.random.default_rng(0)
    for i in range(N_ODOM):
        t = t0 + i * 50_000_000
        if i % 2 == 0:
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            jpeg = cv2.imencode(".jpg", image)[1].reshape(-1)
            msg = ty["sensor_msgs/msg/CompressedImage"](
                header=header(t, "cam"), format="jpeg", data=jpeg
            )
            yield "/cam/compressed", "sensor_msgs/msg/CompressedImage", t, msg
        odom = straight_odometry(ty, header(t, "odom"), 0.01 * i)
        yield "/odom", "nav_msgs/msg/Odometry", t, odom


def write_bag(path: Path, kind: str) -> Path:
    """A bag of `kind` ("ros1", "ros1-lz4", "ros1-bz2", "mcap-folder", "sqlite-folder");
    returns the file to cut (for a ROS 2 folder, its .mcap or .db3 storage file)."""
    if kind.startswith("ros1"):
        store = get_typestore(Stores.ROS1_NOETIC)
        writer = Writer1(path)
        if kind != "ros1":
            writer.set_compression(Writer1.CompressionFormat[kind.split("-")[1].upper()])
        writer.chunk_threshold = 64 * 1024  # several chunks, as a long recording has
        serialize = store.serialize_ros1
    else:
        store = get_typestore(Stores.ROS2_HUMBLE)
        plugin = StoragePlugin.SQLITE3 if kind == "sqlite-folder" else StoragePlugin.MCAP
        writer = Writer(path, version=9, storage_plugin=plugin)
        serialize = store.serialize_cdr
    with writer as w:
        conns = {}
        for topic, msgtype, t, msg in _messages(store, ros1=kind.startswith("ros1")):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], t, serialize(msg, msgtype))
    if kind.startswith("ros1"):
        return path
    return path / f"{path.name}.{'db3' if kind == 'sqlite-folder' else 'mcap'}"


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {
        kind: write_bag(root / (kind + (".bag" if kind.startswith("ros1") else "")), kind)
        for kind in ("ros1", "ros1-lz4", "ros1-bz2", "mcap-folder", "sqlite-folder")
    }


@pytest.mark.parametrize("kind", ["ros1", "ros1-lz4", "ros1-bz2", "mcap-folder", "sqlite-folder"])
def test_the_intact_prefix_is_every_message_before_the_cut(bags, tmp_path, kind):
    """At any cut the reader gives the first messages of the whole bag, exactly, and more
    of them the later the cut."""
    store = rt.make_typestore()
    src = bags[kind]
    suffix = src.suffix
    xs_full = None
    counts = []
    for fraction in (1.0, 0.97, 0.8, 0.6, 0.4, 0.2, 0.1, 0.03):
        cut = _cut(src, tmp_path / f"cut{suffix}", fraction)
        if kind not in ("ros1", "mcap-folder") and fraction <= 0.1:
            try:  # a compressed chunk cut before its first whole block gives nothing,
                # a .db3 cut within its schema and index pages too
                reader = open_intact(cut, store)
            except BagRecoveryError:
                counts.append(0)
                continue
        else:
            reader = open_intact(cut, store)
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics["/odom"] == "nav_msgs/msg/Odometry"
        xs = [
            reader.deserialize(raw, c.msgtype).pose.pose.position.x
            for c, _, raw in reader.messages()
            if c.topic == "/odom"
        ]
        if xs_full is None:
            xs_full = xs
            assert len(xs) == N_ODOM
        assert xs == xs_full[: len(xs)]
        counts.append(reader.message_count)
        reader.close()
    assert counts == sorted(counts, reverse=True)
    if kind in ("ros1", "mcap-folder"):  # uncompressed: a cut loses what follows it only
        assert 0 < counts[-1] < counts[3] < counts[0]
    if kind == "sqlite-folder":  # a .db3 cut loses its rows past the cut, about
        total = counts[0]
        for fraction, count in zip((0.8, 0.6, 0.4, 0.2), counts[2:6], strict=True):
            assert abs(count / total - fraction) < 0.1, (fraction, counts)


def test_a_deep_db3_cut_early_keeps_the_rows_under_its_lost_interior_pages(tmp_path):
    """A .db3 whose messages b-tree grew a third level: the interior page over its first
    leaves was written when the tree grew, far into the file, so a cut before it leaves
    those leaves intact but unreachable through the tree. Every intact leaf is read."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    ty = store.types
    n = 1200  # one ~3 KB scan per 4 KiB leaf page: more leaves than one interior page holds
    with Writer(tmp_path / "deep", version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection("/scan", "sensor_msgs/msg/LaserScan", typestore=store)
        for i in range(n):
            t = 1_700_000_000 * 10**9 + i * 100_000_000
            msg = ty["sensor_msgs/msg/LaserScan"](
                header=ros_header(ty, t, "scan", False),
                angle_min=0.0,
                angle_max=6.28,
                angle_increment=0.00872,
                time_increment=0.0,
                scan_time=0.1,
                range_min=0.1,
                range_max=10.0,
                ranges=np.full(720, float(i), np.float32),
                intensities=np.zeros(0, np.float32),
            )
            w.write(conn, t, store.serialize_cdr(msg, "sensor_msgs/msg/LaserScan"))
    src = tmp_path / "deep" / "deep.db3"
    for fraction in (0.9, 0.5, 0.25, 0.1):
        reader = open_intact(_cut(src, tmp_path / "cut.db3", fraction), rt.make_typestore())
        first = [reader.deserialize(raw, c.msgtype).ranges[0] for c, _, raw in reader.messages()]
        assert first == list(range(len(first)))  # the first messages, in order
        assert abs(len(first) / n - fraction) < 0.03, (fraction, len(first))
        assert reader.duration_s == pytest.approx(0.1 * (len(first) - 1))
        reader.close()


@pytest.mark.parametrize(
    "kind",
    [
        "ros1",
        "ros1-lz4",
        "mcap-folder",
        "mcap-file",
        "sqlite-folder",
        "db3-file",
        "db3-no-metadata",
    ],
)
@pytest.mark.parametrize("fraction", [0.35, 0.75])
def test_import_of_a_cut_bag_says_how_much_it_recovered(bags, tmp_path, kind, fraction):
    if kind in ("mcap-folder", "sqlite-folder"):  # the ROS 2 folder, metadata intact,
        bag = tmp_path / "folder"  # its storage cut
        shutil.copytree(bags[kind].parent, bag)
        _cut(bags[kind], bag / bags[kind].name, fraction)
    elif kind == "mcap-file":
        bag = _cut(bags["mcap-folder"], tmp_path / "plain.mcap", fraction)
    elif kind == "db3-file":
        bag = _cut(bags["sqlite-folder"], tmp_path / "bare.db3", fraction)
    elif kind == "db3-no-metadata":  # a recorder killed before it wrote metadata.yaml
        bag = tmp_path / "folder"
        bag.mkdir()
        _cut(bags["sqlite-folder"], bag / "folder_0.db3", fraction)
    else:
        bag = _cut(bags[kind], tmp_path / "cut.bag", fraction)
    out = tmp_path / "o.h5"
    r = cli("import", bag, out, "--camera", "/cam/compressed", "--odom", "/odom")
    assert r.returncode == 0, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    m = re.search(r"cut short.*intact part, (\d+) messages over ([\d.]+) s", r.stderr)
    assert m, r.stderr
    with SessionReader(out) as s:
        t, pose = s.odometry()
        frames = s.num_frames
        assert 0 < len(t) < N_ODOM and 0 < frames < N_FRAMES
        assert int(m.group(1)) == len(t) + frames
        assert float(m.group(2)) == pytest.approx((t[-1] - t[0]) / 1e9, abs=0.06)
        np.testing.assert_allclose(pose[:, 0], 0.01 * np.arange(len(t)))
        assert s.frame(frames - 1).shape == (48, 64, 3)  # the last frame decodes


@pytest.mark.parametrize(
    ("kind", "size"),  # cut in the header; a .db3 also after its tables' first pages
    [("ros1", 40), ("mcap-folder", 40), ("sqlite-folder", 40), ("sqlite-folder", 6 * 4096)],
)
def test_a_bag_with_nothing_intact_is_one_line_and_exit_2(bags, tmp_path, kind, size):
    bag = tmp_path / f"cut{bags[kind].suffix}"
    bag.write_bytes(bags[kind].read_bytes()[:size])
    with pytest.raises(BagRecoveryError, match="no message in it is intact"):
        open_intact(bag, rt.make_typestore())
    r = cli("import", bag, tmp_path / "o.h5", "--odom", "/odom")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "no message in it is intact" in r.stderr
    assert not (tmp_path / "o.h5").exists()
