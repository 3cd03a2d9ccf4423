import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session import (
    InconsistentSessionError,
    NotASessionError,
    SessionReader,
    SessionWriteError,
    SessionWriter,
    UnsupportedVersionError,
)
from robot_ssl.io.streams import STREAMS, Field, Record, Stream

CAM = CameraSpec(width=64, height=48)


def make_image(i: int) -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([(x * 4 + i) % 256, (y * 5) % 256, np.full_like(x, i * 7 % 256)], axis=-1)
    return img.astype(np.uint8)


@pytest.mark.parametrize("frame_format", ["jpeg", "raw"])
@pytest.mark.parametrize("extras", [False, True])
def test_round_trip_every_stream(tmp_path, frame_format, extras):
    path = tmp_path / "s.h5"
    robot = RobotSpec(speed_m_per_unit=0.0003)
    kwargs = {"truth_sensors": 7, "prediction_shape": (5, 31)} if extras else {}
    rng = np.random.default_rng(0)
    prox = rng.integers(0, 4500, (20, 7)).astype(np.int16)
    with SessionWriter(
        path, robot, CAM, frame_format=frame_format, metadata={"world": "w1"}, **kwargs
    ) as w:
        for i in range(20):
            t = 1_000_000_000 + i * 33_000_000
            w.write_frame(t, make_image(i))
            w.write_proximity(t + 1, prox[i])
            w.write_wheels(t + 2, [i, -i], [10, -10])
            w.write_odometry(t + 3, [i * 0.01, -i * 0.02, 0.1 * i])
            if extras:
                w.write_truth(t + 4, [i, 0, 0], np.arange(7) * 0.01)
                w.write_prediction(t + 5, i, np.full((5, 31), i / 20))
        w.write_event(t, "gap", "robot unplugged")
        assert w.counts["camera"] == 20
    with SessionReader(path) as r:
        assert not r.recovered
        assert r.robot == robot and r.camera == CAM
        assert r.metadata == {"world": "w1"}
        assert r.num_frames == 20
        assert r.camera_t_ns[3] == 1_000_000_000 + 3 * 33_000_000
        img = r.frame(5)
        if frame_format == "raw":
            assert np.array_equal(img, make_image(5))
        else:
            assert np.abs(img.astype(int) - make_image(5)).mean() < 3
            assert r.jpeg(5)[:2] == b"\xff\xd8"
        t, p = r.proximity()
        assert np.array_equal(p, prox) and t.dtype == np.int64
        t, speed, target = r.wheels()
        assert speed[7].tolist() == [7, -7] and target[7].tolist() == [10, -10]
        _, pose = r.odometry()
        assert np.allclose(pose[4], [0.04, -0.08, 0.4])
        assert [(e.kind, e.message) for e in r.events()] == [("gap", "robot unplugged")]
        assert r.frame_index_at(1_000_000_000 + 34_000_000) == 1
        if extras:
            _, tp, dist = r.truth()
            assert tp[3].tolist() == [3, 0, 0] and dist.shape == (20, 7)
            _, fi, prob = r.predictions()
            assert fi[9] == 9 and prob.shape == (20, 5, 31)
        else:
            assert r.truth() is None and r.predictions() is None
        assert r.duration_s == pytest.approx((19 * 33_000_000 + 5 * extras + 3 - 0) / 1e9, abs=1e-8)


# The on-disk layout of schema version 1, per dataset: (dtype, trailing shape, rows a
# chunk). Sessions already recorded have it; the table must keep producing it.
LAYOUT_V1 = {
    "camera/jpeg_data": ("|u1", (), 262144),
    "camera/jpeg_offset": ("<i8", (), 512),
    "camera/jpeg_size": ("<i8", (), 512),
    "camera/rgb": ("|u1", (48, 64, 3), 1),
    "camera/t_ns": ("<i8", (), 512),
    "events/kind": ("|S32", (), 128),
    "events/message": ("|S240", (), 32),
    "events/t_ns": ("<i8", (), 512),
    "frame_truth/exposure_t_ns": ("<i8", (), 512),
    "frame_truth/t_ns": ("<i8", (), 512),
    "odometry/pose": ("<f8", (3,), 170),
    "odometry/t_ns": ("<i8", (), 512),
    "predictions/frame_index": ("<i8", (), 512),
    "predictions/prob": ("<f4", (5, 31), 32),
    "predictions/t_ns": ("<i8", (), 512),
    "proximity/horizontal": ("<i2", (7,), 292),
    "proximity/t_ns": ("<i8", (), 512),
    "truth/pose": ("<f8", (3,), 170),
    "truth/prox_distance_m": ("<f4", (7,), 146),
    "truth/t_ns": ("<i8", (), 512),
    "wheels/speed": ("<i2", (2,), 1024),
    "wheels/t_ns": ("<i8", (), 512),
    "wheels/target": ("<i2", (2,), 1024),
}


@pytest.mark.parametrize("frame_format", ["jpeg", "raw"])
def test_the_table_writes_the_version_1_layout(tmp_path, frame_format):
    """Every dataset the table-driven writer creates has the dtype, shape and chunking of
    the files recorded before the table existed (readers of those files, recovery)."""
    path = tmp_path / "s.h5"
    with SessionWriter(
        path, camera=CAM, frame_format=frame_format, truth_sensors=7, prediction_shape=(5, 31)
    ):
        pass
    found = {}
    with h5py.File(path, "r") as f:
        for stream in f:
            if isinstance(f[stream], h5py.Group):
                for name, ds in f[stream].items():
                    found[f"{stream}/{name}"] = (ds.dtype.str, ds.shape[1:], ds.chunks[0])
    other = "/rgb" if frame_format == "jpeg" else "/jpeg_"
    assert found == {k: v for k, v in LAYOUT_V1.items() if other not in k}


def test_a_new_stream_is_one_table_entry(tmp_path):
    """A stream added to a copy of the table is written and read by the generic code,
    with no change to the writer or the reader (docs/session_format.md)."""
    contacts = Stream(
        "contacts",
        (
            Field("bumper", "int8", (2,), "", "front left, front right pressed"),
            Field("force_n", "float32", (), "N", "contact force"),
            Field("source", "S8", (), "", "what sensed it"),
        ),
        "a contact sensor",
    )
    table = STREAMS.with_stream(contacts)
    path = tmp_path / "s.h5"
    with SessionWriter(path, camera=CAM, streams=["contacts"], table=table) as w:
        for i in range(40):
            w.write(
                Record.of(
                    "contacts", i * 1000, bumper=[i % 2, 0], force_n=i / 4, source="bumper!!!"
                )
            )
        w.write(Record.of("proximity", 5, horizontal=np.arange(7)))
        with pytest.raises(SessionWriteError, match="no field 'forse_n'"):
            w.write(Record.of("contacts", 10**6, bumper=[0, 0], force_n=0, source="", forse_n=1))
        with pytest.raises(SessionWriteError, match="without its field 'force_n'"):
            w.write(Record.of("contacts", 10**6, bumper=[0, 0], source=""))
        with pytest.raises(SessionWriteError, match="'lidar' was not declared"):
            w.write(Record.of("lidar", 10**6, ranges=[1.0]))
    with SessionReader(path, table=table) as r:
        c = r.read("contacts")
        assert list(c.arrays) == ["t_ns", "bumper", "force_n", "source"]
        assert c.bumper.dtype == np.int8 and c.bumper.shape == (40, 2)
        assert np.allclose(c.force_n, np.arange(40) / 4) and c.source[0] == b"bumper!!"
        rows = list(r.read_records("contacts"))
        assert len(rows) == 40 and rows[3].t_ns == 3000 and rows[3].bumper.tolist() == [1, 0]
        assert r.read("proximity").horizontal.tolist() == [list(range(7))]
        assert r.read("truth") is None
    with SessionReader(path) as r:  # a reader whose table lacks it reads it all the same
        assert r.streams["contacts"] == 40
        assert r.read("contacts").force_n[-1] == pytest.approx(39 / 4)


def test_sessions_without_later_streams_open(tmp_path):
    """Sessions recorded before a stream existed (frame_truth, predictions) open; the
    stream reads as absent."""
    path = tmp_path / "s.h5"
    with SessionWriter(path, camera=CAM, truth_sensors=7) as w:
        for i in range(5):
            w.write_truth(i, [i, 0, 0], np.ones(7))
            w.write_frame_truth(i, i - 1)
    _tamper(path, lambda f: f.__delitem__("frame_truth"))
    with SessionReader(path) as r:
        assert not r.recovered
        assert r.frame_truth() is None and r.read("frame_truth") is None
        assert r.predictions() is None
        assert r.truth()[1][:, 0].tolist() == [0, 1, 2, 3, 4]


def test_writer_refuses_existing_and_backwards_time(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w:
        w.write_proximity(100, np.zeros(7))
        with pytest.raises(SessionWriteError, match="before previous"):
            w.write_proximity(99, np.zeros(7))
    with pytest.raises(SessionWriteError, match="exists"):
        SessionWriter(path)


def test_not_a_session(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(NotASessionError, match="not an HDF5"):
        SessionReader(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(NotASessionError, match="not a robot-ssl session"):
        SessionReader(other)
    with pytest.raises(NotASessionError, match="no such file"):
        SessionReader(tmp_path / "missing.h5")


def _tamper(path: Path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


def _small_session(path: Path) -> Path:
    with SessionWriter(path) as w:
        for i in range(5):
            w.write_proximity(i * 100, np.full(7, i))
    return path


def test_newer_version_rejected(tmp_path):
    path = _small_session(tmp_path / "s.h5")
    _tamper(path, lambda f: f.attrs.__setitem__("version", 99))
    with pytest.raises(UnsupportedVersionError, match="99"):
        SessionReader(path)


def test_decreasing_timestamps_rejected(tmp_path):
    path = _small_session(tmp_path / "s.h5")

    def swap(f):
        f["proximity/t_ns"][1] = 1000

    _tamper(path, swap)
    with pytest.raises(InconsistentSessionError, match="proximity/t_ns decreases at row 2"):
        SessionReader(path)


def test_length_mismatch_rejected(tmp_path):
    path = _small_session(tmp_path / "s.h5")
    _tamper(path, lambda f: f["proximity/horizontal"].resize((3, 7)))
    with pytest.raises(InconsistentSessionError, match="length mismatch"):
        SessionReader(path)


def test_bad_spec_rejected(tmp_path):
    path = _small_session(tmp_path / "s.h5")
    _tamper(path, lambda f: f.attrs.__setitem__("robot_spec", json.dumps({"bogus": 1})))
    with pytest.raises(InconsistentSessionError, match="bogus"):
        SessionReader(path)
