"""The messages generated from the stream table: one type per stream without a message of
its own, one ROS field per table field, and a row that survives serialisation exactly."""

from __future__ import annotations

import numpy as np

from robot_ssl.interop import ros_types as rt
from robot_ssl.io.streams import STREAMS, Field, Stream

DIMS = {"truth_sensors": 4, "grid_sensors": 5, "grid_distances": 10}


def _row(stream: Stream, rng: np.random.Generator) -> dict:
    """Random values of each field, NaN and extremes among the floats and ints."""
    out = {}
    for f in stream.fields:
        dtype = np.dtype(f.dtype)
        shape = tuple(d if isinstance(d, int) else DIMS[d] for d in f.shape)
        if dtype.kind == "S":
            out[f.name] = "caf\u00e9".encode()
        elif dtype.kind == "f":
            v = rng.normal(size=shape).astype(dtype)
            if v.size:
                v.flat[0] = np.nan
            out[f.name] = v if shape else dtype.type(v)
        else:
            info = np.iinfo(dtype)
            v = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
            out[f.name] = v if shape else dtype.type(v)
    return out


def test_every_table_stream_without_its_own_message_gets_a_generated_type():
    names = {s.name for s in rt.table_streams()}
    assert names == set(STREAMS.names) - set(rt.OWN_TYPE_STREAMS)
    assert {"acc", "truth", "frame_truth", "contact_truth", "predictions"} <= names
    assert rt.table_type("contact_truth") == "robot_ssl_msgs/msg/ContactTruth"
    assert rt.table_definition(STREAMS["acc"]) == (
        "std_msgs/Header header\nint16[] acc\nuint8 tap\n"
    )
    assert "float32[] prob" in rt.table_definition(STREAMS["predictions"])


def test_a_row_of_each_stream_survives_cdr_exactly():
    store = rt.make_typestore()
    ty = store.types
    rng = np.random.default_rng(0)
    for stream in rt.table_streams():
        row = _row(stream, rng)
        stamp = ty["builtin_interfaces/msg/Time"](sec=1, nanosec=2)
        header = ty["std_msgs/msg/Header"](stamp=stamp, frame_id="base_link")
        msgtype = rt.table_type(stream.name)
        raw = store.serialize_cdr(rt.table_message(ty, stream, header, row), msgtype)
        back = rt.table_values(store.deserialize_cdr(raw, msgtype), stream, DIMS)
        for f in stream.fields:
            a, b = np.asarray(row[f.name]), np.asarray(back[f.name], dtype=f.dtype)
            assert (a.shape, a.tobytes()) == (b.shape, b.tobytes()), (stream.name, f.name)


def test_a_string_field_becomes_a_ros_string_and_comes_back_as_its_bytes():
    notes = Stream("notes", (Field("text", "S16"), Field("level", "int8")))
    assert rt.table_definition(notes) == "std_msgs/Header header\nstring text\nint8 level\n"
    values = rt.table_values(type("M", (), {"text": "caf\u00e9", "level": -3})(), notes, {})
    assert values == {"text": "caf\u00e9".encode(), "level": -3}
