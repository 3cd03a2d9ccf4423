"""The streams of a session, as one table: name, fields, dtypes, shapes and units.

Every stream of a session file is an HDF5 group of one dataset per field, all with one
row per sample, `t_ns` (int64 monotonic nanoseconds, non-decreasing) first. This table
is the one place a stream is spelled: the writer creates, fills and flushes the
datasets from it (`SessionWriter.write`), the reader reads any stream by name from it
(`SessionReader.read`), and what travels between the robot sampler, the session sink
and the observers (online learner, live view) is a `Record`: a stream name, a stamp
and named values, never a tuple read by position. Adding a stream is one `Stream`
entry here (or in a copy: `STREAMS.with_stream`) plus the code that produces its
records; `StreamBus` hands each record to whoever subscribed to its stream by name.

Shapes may name a dimension known only when a session is opened ("height", "width":
the camera's; "prox_sensors": the robot spec's short-range sensors; "truth_sensors":
the simulator's sensors; "grid_sensors",
"grid_distances": the detector's output grid); `StreamTable.resolve` fills them in.
Layout and meaning per field: docs/session_format.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EVENT_KIND_BYTES",
    "EVENT_MESSAGE_BYTES",
    "FORMAT",
    "STREAMS",
    "T_NS",
    "VERSION",
    "Columns",
    "Event",
    "Field",
    "Record",
    "Schema",
    "Stream",
    "StreamBus",
    "StreamTable",
    "record_from_tuple",
]

FORMAT = "robot-ssl/session"
VERSION = 1
EVENT_KIND_BYTES = 32
EVENT_MESSAGE_BYTES = 240

Dim = int | str
"""A trailing dimension: a number, or a name filled in when a session is opened."""


@dataclass(frozen=True)
class Field:
    """One dataset of a stream: numpy dtype (fixed-size strings are "S<bytes>": longer
    values are cut to fit), trailing shape per row, unit, meaning. `frame_format`: the
    field exists only in sessions of that frame format ("jpeg" or "raw")."""

    name: str
    dtype: str
    shape: tuple[Dim, ...] = ()
    unit: str = ""
    doc: str = ""
    frame_format: str | None = None


T_NS = Field("t_ns", "int64", (), "ns", "monotonic stamp of the row, non-decreasing")


@dataclass(frozen=True)
class Stream:
    """One stream (an HDF5 group): its fields after `t_ns`. A `required` stream is in
    every session (a finished file without it is refused); the others are opened on
    request and absent from sessions that did not record them."""

    name: str
    fields: tuple[Field, ...]
    doc: str = ""
    required: bool = False

    @property
    def all_fields(self) -> tuple[Field, ...]:
        """`t_ns` and the stream's own fields, in the order they are created on disk."""
        return (T_NS, *self.fields)

    def field_names(self, frame_format: str = "jpeg") -> tuple[str, ...]:
        """The names of the fields a session of `frame_format` stores, `t_ns` first."""
        return tuple(f.name for f in self.all_fields if f.frame_format in (None, frame_format))


Schema = dict[str, dict[str, tuple[np.dtype, tuple[int, ...]]]]
"""Resolved table of one session: stream -> field -> (dtype, trailing shape)."""


@dataclass(frozen=True)
class StreamTable:
    """The streams a session may hold, by name, in on-disk order."""

    streams: tuple[Stream, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise ValueError(f"stream names repeat: {names}")

    def __getitem__(self, name: str) -> Stream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.streams)

    def __iter__(self) -> Iterator[Stream]:
        return iter(self.streams)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.streams)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.streams if s.required)

    def with_stream(self, stream: Stream) -> StreamTable:
        """A copy with `stream` added at the end (a new stream: one entry)."""
        return StreamTable((*self.streams, stream))

    def resolve(
        self,
        frame_format: str,
        dims: Mapping[str, int],
        streams: Iterable[str] | None = None,
    ) -> Schema:
        """Dtypes and shapes of the required streams and of `streams` (all when None) for a
        session of `frame_format` whose named dimensions are `dims`, in table order."""
        wanted = set(self.names if streams is None else streams)
        unknown = wanted - set(self.names)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; the table has {self.names}")
        schema: Schema = {}
        for s in self.streams:
            if s.required or s.name in wanted:
                schema[s.name] = {
                    f.name: (np.dtype(f.dtype), _shape(f, dims))
                    for f in s.all_fields
                    if f.frame_format in (None, frame_format)
                }
        return schema


def _shape(f: Field, dims: Mapping[str, int]) -> tuple[int, ...]:
    try:
        return tuple(d if isinstance(d, int) else int(dims[d]) for d in f.shape)
    except KeyError as e:
        raise ValueError(f"field {f.name!r} needs the dimension {e.args[0]!r}") from None


STREAMS = StreamTable(
    (
        Stream(
            "camera",
            (
                Field(
                    "jpeg_offset", "int64", (), "byte", "where the frame lies in jpeg_data", "jpeg"
                ),
                Field("jpeg_size", "int64", (), "byte", "the frame's JPEG length", "jpeg"),
                Field("rgb", "uint8", ("height", "width", 3), "", "the frame, BGR", "raw"),
            ),
            "camera frames; records carry `jpeg` (bytes) or `image` (uint8 H x W x 3 BGR)",
            required=True,
        ),
        Stream(
            "proximity",
            (
                Field(
                    "horizontal",
                    "int16",
                    ("prox_sensors",),
                    "per kind",
                    "one reading per spec sensor: IR raw intensity; range mm (32767: no"
                    " return within range, -1: invalid); contact 0/1",
                ),
            ),
            "the short-range sensors of the robot spec (a Thymio: its 7 horizontal IR)",
            required=True,
        ),
        Stream(
            "wheels",
            (
                Field("speed", "int16", (2,), "raw", "measured (left, right)"),
                Field("target", "int16", (2,), "raw", "commanded (left, right)"),
            ),
            "wheel speeds",
            required=True,
        ),
        Stream(
            "odometry",
            (Field("pose", "float64", (3,), "m, m, rad", "x, y, theta in (-pi, pi]"),),
            "the pose integrated from the wheels",
            required=True,
        ),
        Stream(
            "events",
            (
                Field("kind", f"S{EVENT_KIND_BYTES}", (), "", "gap, reconnect, drop, fault..."),
                Field("message", f"S{EVENT_MESSAGE_BYTES}", (), "", "in words"),
            ),
            "what happened during recording",
            required=True,
        ),
        Stream(
            "truth",
            (
                Field("pose", "float64", (3,), "m, m, rad", "the true pose"),
                Field("prox_distance_m", "float32", ("truth_sensors",), "m", "true distances"),
            ),
            "simulator only, stamped with the true time",
        ),
        Stream(
            "frame_truth",
            (Field("exposure_t_ns", "int64", (), "ns", "the frame's true mid-exposure"),),
            "simulator only: per frame stamp; absent in sessions recorded before it existed",
        ),
        Stream(
            "acc",
            (
                Field("acc", "int16", (3,), "raw, ~23 per g", "the firmware's acc[0..2]"),
                Field(
                    "tap", "uint8", (), "", "1: the firmware's tap event fired since the last row"
                ),
            ),
            "accelerometer (16 Hz on a Thymio) and tap; absent in sessions before it existed",
        ),
        Stream(
            "contact_truth",
            (
                Field("point_m", "float64", (2,), "m", "contact point on the body, robot frame"),
                Field("world_m", "float64", (2,), "m", "the same point in the world frame"),
            ),
            "simulator only: one row per contact onset, stamped with the true time",
        ),
        Stream(
            "predictions",
            (
                Field("frame_index", "int64", (), "", "the camera frame predicted on"),
                Field("prob", "float32", ("grid_sensors", "grid_distances"), "", "P(obstacle)"),
            ),
            "live runs only: the detector's output per frame",
        ),
    )
)
"""The streams of a session file (schema version 1)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One row of a stream as it travels (sampler -> sink, observers): the stream's name,
    its stamp and its values by field name (`record.pose`, `record["pose"]`)."""

    stream: str
    t_ns: int
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, stream: str, t_ns: int, **values: Any) -> Record:
        return cls(stream, int(t_ns), values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in Record.__slots__:
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"{self.stream} record has no field {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def replace_t_ns(self, t_ns: int) -> Record:
        return Record(self.stream, int(t_ns), self.values)


@dataclass(frozen=True)
class Columns:
    """A whole stream as read from a session: `t_ns` (N,) and each field's (N, ...) array
    by name (`cols.pose`, `cols["pose"]`)."""

    stream: str
    arrays: Mapping[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("__") or name in ("stream", "arrays"):
            raise AttributeError(name)
        try:
            return self.arrays[name]
        except KeyError:
            raise AttributeError(f"stream {self.stream!r} has no field {name!r}") from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __len__(self) -> int:
        return len(self.arrays["t_ns"])


@dataclass(frozen=True)
class Event:
    """Something that happened during recording: a gap, a reconnect, a dropped frame."""

    t_ns: int
    kind: str
    message: str = ""


class StreamBus:
    """A small publish/subscribe of records by stream name: the session sink, the online
    learner and the live view each subscribe to the streams they need. Delivery is in
    the publisher's thread, in subscription order: subscribers must only queue."""

    def __init__(self, table: StreamTable = STREAMS) -> None:
        self.table = table
        self._by_stream: dict[str, list[Callable[[Record], Any]]] = {}

    def subscribe(self, callback: Callable[[Record], Any], streams: Iterable[str]) -> None:
        """Deliver every record of `streams` (names of the table) to `callback`."""
        for name in streams:
            if name not in self.table:
                raise ValueError(f"no stream {name!r} to subscribe to; streams: {self.table.names}")
            self._by_stream.setdefault(name, []).append(callback)

    def publish(self, record: Record) -> None:
        for callback in self._by_stream.get(record.stream, ()):
            callback(record)


# The tuples rows travelled as before records (kind, t_ns, values in table order...),
# for code written against them: kind -> (stream, field names).
_TUPLE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jpeg": ("camera", ("jpeg",)),
    "raw": ("camera", ("image",)),
    "frame": ("camera", ("image",)),
    "event": ("events", ("kind", "message")),
    "prediction": ("predictions", ("frame_index", "prob")),
}


def record_from_tuple(row: tuple, table: StreamTable = STREAMS) -> Record:
    """A record from a row tuple of the earlier form, ("wheels", t_ns, speed, target),
    ("event", t_ns, kind, message), ("jpeg", t_ns, bytes)...: values named by the table."""
    kind, t_ns, values = row[0], row[1], row[2:]
    if kind in _TUPLE_KINDS:
        stream, names = _TUPLE_KINDS[kind]
    elif kind in table:
        stream, names = kind, tuple(f.name for f in table[kind].fields)
    else:
        raise ValueError(f"unknown row kind {kind!r}")
    return Record(stream, int(t_ns), dict(zip(names, values)))
