"""Session files: HDF5 recordings of camera frames and robot streams (schema version 1).

The public face of the session modules, each with one job:
- robot_ssl.io.streams: the table of streams (names, fields, dtypes, shapes, units),
  records, the stream bus;
- robot_ssl.io.session_writer: `SessionWriter`, SWMR appends that survive a kill;
- robot_ssl.io.session_reader: `SessionReader`, validation, the frame decoder;
- robot_ssl.io.session_recovery: what an unfinished or damaged file still holds;
- robot_ssl.io.session_errors: the errors.
Layout and guarantees: docs/session_format.md.
"""

from __future__ import annotations

from robot_ssl.io.session_errors import (
    DamagedFrameError,
    DamagedSessionError,
    InconsistentSessionError,
    NotASessionError,
    SessionError,
    SessionWriteError,
    UnsupportedVersionError,
)
from robot_ssl.io.session_reader import (
    IntactFrames,
    SessionReader,
    decode_jpeg,
    report_damaged_frames,
)
from robot_ssl.io.session_recovery import StreamRecovery, global_heap_problem
from robot_ssl.io.session_writer import SessionWriter
from robot_ssl.io.streams import (
    EVENT_KIND_BYTES,
    EVENT_MESSAGE_BYTES,
    FORMAT,
    STREAMS,
    VERSION,
    Columns,
    Event,
    Record,
)

__all__ = [
    "EVENT_KIND_BYTES",
    "EVENT_MESSAGE_BYTES",
    "FORMAT",
    "STREAMS",
    "VERSION",
    "Columns",
    "DamagedFrameError",
    "DamagedSessionError",
    "Event",
    "InconsistentSessionError",
    "IntactFrames",
    "NotASessionError",
    "Record",
    "SessionError",
    "SessionReader",
    "SessionWriteError",
    "SessionWriter",
    "StreamRecovery",
    "UnsupportedVersionError",
    "decode_jpeg",
    "global_heap_problem",
    "report_damaged_frames",
]
