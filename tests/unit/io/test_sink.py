"""SessionSink: one writer thread for rows from many threads (real HDF5 files)."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from robot_ssl.io.session import SessionReader, SessionWriteError, SessionWriter
from robot_ssl.io.streams import Record, StreamBus
from robot_ssl.recording.sampler import event
from robot_ssl.recording.sink import SessionSink


def test_rows_from_three_threads_land_in_order(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter(path, prediction_shape=(5, 31)) as w, SessionSink(w) as sink:
        img = np.zeros((240, 320, 3), np.uint8)

        def sensors() -> None:
            for i in range(200):
                t = 1_000_000 * (i + 1)
                sink.emit(("wheels", t, np.array([i, i], np.int16), np.zeros(2, np.int16)))
                sink.emit(("proximity", t, np.full(7, i, np.int16)))

        def frames() -> None:
            for i in range(20):
                sink.emit(("frame", 10_000_000 * (i + 1), img))
                sink.emit(
                    ("prediction", 10_000_000 * (i + 1), i, np.full((5, 31), 0.5, np.float32))
                )

        def events() -> None:
            for i in range(30):
                sink.emit(("event", 5_000_000 * (30 - i), "watchdog_stop", str(i)))  # backwards

        threads = [threading.Thread(target=f) for f in (sensors, frames, events)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sink.dropped == 0
    with SessionReader(path) as r:
        assert r.streams["wheels"] == 200 and r.streams["camera"] == 20
        t, idx, prob = r.predictions()
        assert list(idx) == list(range(20)) and prob.shape == (20, 5, 31)
        ev = r.events()
        assert len(ev) == 30 and all(a.t_ns <= b.t_ns for a, b in itertools.pairwise(ev))


def test_an_out_of_order_row_is_dropped_not_written(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter(path) as w, SessionSink(w) as sink:
        for t in (3, 1, 4):
            sink.emit(("proximity", t, np.zeros(7, np.int16)))
    assert sink.dropped == 1
    with SessionReader(path) as r:
        assert list(r.proximity()[0]) == [3, 4]


def test_a_write_error_is_raised_by_close(tmp_path):
    w = SessionWriter(tmp_path / "s.h5")
    sink = SessionSink(w)
    w.close()  # the file takes nothing more: the sink's first write fails
    sink.emit(("proximity", 1, np.zeros(7, np.int16)))
    with pytest.raises(SessionWriteError, match="closed"):
        sink.close()
    sink.emit(("proximity", 2, np.zeros(7, np.int16)))  # after an error: ignored, no raise


def test_observers_subscribe_by_stream_name(tmp_path):
    """One bus: the sink takes the session's streams, an observer only what it named;
    records carry their values by name."""
    path = tmp_path / "s.h5"
    seen: list[Record] = []
    bus = StreamBus()
    with SessionWriter(path) as w, SessionSink(w, threaded=False) as sink:
        sink.subscribe(bus)
        bus.subscribe(seen.append, ["odometry"])
        for i in range(10):
            t = 1_000_000 * (i + 1)
            bus.publish(Record.of("odometry", t, pose=[i * 0.1, 0.0, 0.0]))
            bus.publish(Record.of("proximity", t, horizontal=np.full(7, i, np.int16)))
            bus.publish(event(t, "tick", f"row {i}"))
        # no predictions stream in this session: the sink did not subscribe to it
        bus.publish(Record.of("predictions", 2, frame_index=0, prob=np.zeros((5, 31))))
        with pytest.raises(ValueError, match="no stream 'odometri'"):
            bus.subscribe(seen.append, ["odometri"])
    assert [r.stream for r in seen] == ["odometry"] * 10
    assert seen[4].pose == [0.4, 0.0, 0.0] and seen[4].t_ns == 5_000_000
    with pytest.raises(AttributeError, match="no field 'horizontal'"):
        _ = seen[0].horizontal
    with SessionReader(path) as r:
        assert r.streams["odometry"] == r.streams["proximity"] == r.streams["events"] == 10
        assert r.predictions() is None
        assert r.events()[3].message == "row 3"
        assert r.read("odometry").pose[9, 0] == pytest.approx(0.9)
