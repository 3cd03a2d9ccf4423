"""Session files: HDF5 recordings of camera frames and robot streams (schema version 1).

The writer appends multi-rate streams in batches and flushes them periodically
in HDF5 SWMR mode, so a writer killed at any instant (SIGKILL, power cut)
leaves a file that opens and holds everything up to the last flush. The reader
validates the file and gives numpy arrays and decoded frames; truncated files and
files with damaged HDF5 metadata open with their intact rows, or are refused in
one line when nothing is intact. Layout and guarantees: docs/session_format.md.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.outputs import free_bytes

FORMAT = "robot-ssl/session"
VERSION = 1
EVENT_KIND_BYTES = 32
EVENT_MESSAGE_BYTES = 240
# HDF5 reserves a whole chunk in the file when its first row is flushed and fills it in
# place. Small chunks (4 KiB of rows, 256 KiB of JPEG) keep the file in time order, so a
# cut at X % of the bytes keeps about X % of the frames, and the reservation small: 4096
# rows a chunk for every field (events' 240-byte messages too) reserved 2 MB at the
# first flush, most of a short session's first half.
_CHUNK_BYTES = 4 << 10
_MIN_ROWS_PER_CHUNK = 32  # wide rows (events, predictions): not a chunk per row
_JPEG_CHUNK_BYTES = 256 << 10

__all__ = [
    "FORMAT",
    "VERSION",
    "DamagedFrameError",
    "DamagedSessionError",
    "Event",
    "InconsistentSessionError",
    "IntactFrames",
    "NotASessionError",
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


class SessionError(RobotSSLError):
    """Base class of session file errors."""


class NotASessionError(SessionError):
    """The file is missing, not HDF5, or not a robot-ssl session."""


class UnsupportedVersionError(SessionError):
    """The session was written by a newer schema version than this reader knows."""


class InconsistentSessionError(SessionError):
    """The session's streams contradict each other (lengths, timestamp order)."""


class DamagedSessionError(SessionError):
    """The file is damaged (truncated, unreadable HDF5 metadata) beyond recovery: no data
    stream has an intact row, or the root metadata is gone."""


class DamagedFrameError(InconsistentSessionError):
    """One frame's stored JPEG bytes do not decode, or decode to another size than the
    session's camera; the other frames are usable (see IntactFrames)."""


class SessionWriteError(SessionError):
    """Writing failed (disk full, file exists, I/O error); data flushed before stays readable."""


@dataclass(frozen=True)
class Event:
    """Something that happened during recording: a gap, a reconnect, a dropped frame."""

    t_ns: int
    kind: str
    message: str = ""


# Stream name -> field name -> (dtype, trailing shape). Shapes with None are filled at open.
def _schema(
    frame_format: str,
    frame_shape: tuple[int, int, int],
    truth_sensors: int | None,
    prediction_shape: tuple[int, int] | None,
) -> dict[str, dict[str, tuple[Any, tuple[int, ...]]]]:
    camera: dict[str, tuple[Any, tuple[int, ...]]] = {"t_ns": (np.int64, ())}
    if frame_format == "jpeg":
        camera["jpeg_offset"] = (np.int64, ())
        camera["jpeg_size"] = (np.int64, ())
    else:
        camera["rgb"] = (np.uint8, frame_shape)
    schema = {
        "camera": camera,
        "proximity": {"t_ns": (np.int64, ()), "horizontal": (np.int16, (7,))},
        "wheels": {"t_ns": (np.int64, ()), "speed": (np.int16, (2,)), "target": (np.int16, (2,))},
        "odometry": {"t_ns": (np.int64, ()), "pose": (np.float64, (3,))},
        "events": {
            "t_ns": (np.int64, ()),
            "kind": (f"S{EVENT_KIND_BYTES}", ()),
            "message": (f"S{EVENT_MESSAGE_BYTES}", ()),
        },
    }
    if truth_sensors is not None:
        schema["truth"] = {
            "t_ns": (np.int64, ()),
            "pose": (np.float64, (3,)),
            "prox_distance_m": (np.float32, (truth_sensors,)),
        }
        # the true mid-exposure instant of each frame, keyed by the frame's stamp
        schema["frame_truth"] = {"t_ns": (np.int64, ()), "exposure_t_ns": (np.int64, ())}
    if prediction_shape is not None:
        schema["predictions"] = {
            "t_ns": (np.int64, ()),
            "frame_index": (np.int64, ()),
            "prob": (np.float32, tuple(prediction_shape)),
        }
    return schema


def _chunk_rows(dtype: Any, shape: tuple[int, ...]) -> int:
    """Rows per chunk of a field: about `_CHUNK_BYTES` a chunk, at least 32 rows."""
    row_bytes = np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64))
    return max(_MIN_ROWS_PER_CHUNK, _CHUNK_BYTES // max(row_bytes, 1))


class SessionWriter:
    """Append-only writer of one session file; use as a context manager.

    Rows are buffered in memory and appended every `flush_interval_s` (and on
    close), so a crash loses at most that much. Thread-safe: sources may write
    from their own threads. All timestamps are int64 monotonic nanoseconds and
    must not decrease within a stream.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        robot: RobotSpec | None = None,
        camera: CameraSpec | None = None,
        *,
        frame_format: str = "jpeg",
        jpeg_quality: int = 90,
        metadata: dict[str, Any] | None = None,
        truth_sensors: int | None = None,
        prediction_shape: tuple[int, int] | None = None,
        flush_interval_s: float = 0.5,
        overwrite: bool = False,
        reserve_bytes: int = 2 << 20,
    ) -> None:
        if frame_format not in ("jpeg", "raw"):
            raise ValueError(f"frame_format must be 'jpeg' or 'raw', not {frame_format!r}")
        self.path = Path(path)
        self.robot = robot or RobotSpec()
        self.camera = camera or CameraSpec()
        self.frame_format = frame_format
        self.jpeg_quality = int(jpeg_quality)
        self.flush_interval_s = float(flush_interval_s)
        self.reserve_bytes = int(reserve_bytes)
        self._lock = threading.RLock()
        self._closed = False
        self._failed: SessionWriteError | None = None
        if self.path.exists() and not overwrite:
            raise SessionWriteError(f"{self.path} exists (pass overwrite=True to replace it)")
        frame_shape = (self.camera.height, self.camera.width, 3)
        self._schema = _schema(frame_format, frame_shape, truth_sensors, prediction_shape)
        self._buf: dict[str, dict[str, list]] = {
            s: {f: [] for f in fields} for s, fields in self._schema.items()
        }
        self._jpeg_buf: list[bytes] = []
        self._jpeg_bytes = 0  # buffered, not yet in /camera/jpeg_data
        self._jpeg_total = 0  # all JPEG bytes written: the next frame's offset
        self._last_t: dict[str, int] = {}
        self._counts = dict.fromkeys(self._schema, 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(self.path, "w", libver="latest")
            self._create(metadata or {})
            self._file.swmr_mode = True
        except OSError as e:
            raise SessionWriteError(f"cannot create {self.path}: {e}") from None
        self._last_flush = time.monotonic()

    def _create(self, metadata: dict[str, Any]) -> None:
        f = self._file
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["robot_name"] = self.robot.name
        f.attrs["robot_spec"] = json.dumps(self.robot.to_dict())
        f.attrs["camera_spec"] = json.dumps(self.camera.to_dict())
        f.attrs["start_time_utc"] = datetime.now(timezone.utc).isoformat()
        f.attrs["clock"] = "monotonic_ns"
        f.attrs["frame_format"] = self.frame_format
        f.attrs["jpeg_quality"] = self.jpeg_quality
        f.attrs["metadata"] = json.dumps(metadata)
        # handles kept for the flushes (a lookup by name costs ~0.1 ms, 20 a flush)
        self._datasets: dict[str, h5py.Dataset] = {}
        for stream, fields in self._schema.items():
            g = f.create_group(stream)
            for name, (dtype, shape) in fields.items():
                rows = 1 if name == "rgb" else _chunk_rows(dtype, shape)
                self._datasets[f"{stream}/{name}"] = g.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=dtype,
                    chunks=(rows, *shape),
                )
        if self.frame_format == "jpeg":
            self._datasets["camera/jpeg_data"] = f["camera"].create_dataset(
                "jpeg_data",
                shape=(0,),
                maxshape=(None,),
                dtype=np.uint8,
                chunks=(_JPEG_CHUNK_BYTES,),
            )
        # Set to 1 by close(): a file with 0 here was not finalised (the writer died).
        f.create_dataset("finalized", data=np.int8(0))

    # -- appending -----------------------------------------------------------------------

    def _append(self, stream: str, t_ns: int, **values: Any) -> None:
        with self._lock:
            if self._failed is not None:
                raise self._failed
            if self._closed:
                raise SessionWriteError(f"{self.path} is closed")
            if stream not in self._schema:
                raise SessionWriteError(
                    f"stream {stream!r} was not declared when {self.path.name} was opened"
                )
            t = int(t_ns)
            last = self._last_t.get(stream)
            if last is not None and t < last:
                raise SessionWriteError(f"{stream}: timestamp {t} ns is before previous {last} ns")
            self._last_t[stream] = t
            buf = self._buf[stream]
            buf["t_ns"].append(t)
            for k, v in values.items():
                buf[k].append(v)

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def write_frame(self, t_ns: int, image_bgr: np.ndarray) -> None:
        """Append one camera frame (uint8 H x W x 3, BGR); JPEG-encoded when the format is jpeg."""
        image = np.asarray(image_bgr)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        if self.frame_format == "jpeg":
            ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise SessionWriteError("JPEG encoding failed")
            self.write_jpeg(t_ns, enc.tobytes())
        else:
            expected = (self.camera.height, self.camera.width, 3)
            if image.shape != expected:
                raise ValueError(f"raw frame shape {image.shape} != camera spec {expected}")
            self._append("camera", t_ns, rgb=image)
            self._maybe_flush()

    def write_jpeg(self, t_ns: int, jpeg: bytes) -> None:
        """Append one already-encoded JPEG frame (encode off the capture thread)."""
        if self.frame_format != "jpeg":
            raise SessionWriteError("write_jpeg needs frame_format='jpeg'")
        with self._lock:
            offset = self._jpeg_total
            self._append("camera", t_ns, jpeg_offset=offset, jpeg_size=len(jpeg))
            self._jpeg_buf.append(bytes(jpeg))
            self._jpeg_bytes += len(jpeg)
            self._jpeg_total += len(jpeg)
            self._maybe_flush()

    def write_proximity(self, t_ns: int, horizontal: np.ndarray) -> None:
        """Append one reading of the 7 horizontal proximity sensors (raw int16)."""
        self._append("proximity", t_ns, horizontal=np.asarray(horizontal, dtype=np.int16))
        self._maybe_flush()

    def write_wheels(self, t_ns: int, speed: np.ndarray, target: np.ndarray) -> None:
        """Append measured and commanded wheel speeds (left, right), raw units."""
        self._append(
            "wheels",
            t_ns,
            speed=np.asarray(speed, dtype=np.int16),
            target=np.asarray(target, dtype=np.int16),
        )
        self._maybe_flush()

    def write_odometry(self, t_ns: int, pose: np.ndarray) -> None:
        """Append one odometry pose (x_m, y_m, theta_rad)."""
        self._append("odometry", t_ns, pose=np.asarray(pose, dtype=np.float64))
        self._maybe_flush()

    def write_event(self, t_ns: int, kind: str, message: str = "") -> None:
        """Append an event (gap, reconnect, dropped frames...); strings are truncated to fit."""
        kind_b = kind.encode()[:EVENT_KIND_BYTES]
        msg_b = message.encode()[:EVENT_MESSAGE_BYTES]
        self._append("events", t_ns, kind=kind_b, message=msg_b)
        self._maybe_flush()

    def write_truth(self, t_ns: int, pose: np.ndarray, prox_distance_m: np.ndarray) -> None:
        """Append simulator truth: true pose and true distance along each sensor axis."""
        self._append(
            "truth",
            t_ns,
            pose=np.asarray(pose, dtype=np.float64),
            prox_distance_m=np.asarray(prox_distance_m, dtype=np.float32),
        )
        self._maybe_flush()

    def write_frame_truth(self, t_ns: int, exposure_t_ns: int) -> None:
        """Append simulator truth for the frame stamped t_ns: its true mid-exposure time."""
        self._append("frame_truth", t_ns, exposure_t_ns=int(exposure_t_ns))
        self._maybe_flush()

    def write_prediction(self, t_ns: int, frame_index: int, prob: np.ndarray) -> None:
        """Append a detector output for camera frame `frame_index` (probabilities S x D)."""
        self._append(
            "predictions",
            t_ns,
            frame_index=int(frame_index),
            prob=np.asarray(prob, dtype=np.float32),
        )
        self._maybe_flush()

    # -- flushing ------------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Rows written per stream so far (flushed or buffered)."""
        with self._lock:
            return {s: self._counts[s] + len(self._buf[s]["t_ns"]) for s in self._schema}

    @property
    def size_bytes(self) -> int:
        """Current size of the file on disk."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def flush(self) -> None:
        """Append buffered rows to the file and flush it to the OS (SWMR-consistent)."""
        with self._lock:
            if self._closed or self._failed is not None:
                return
            try:
                self._check_space()
                self._flush_locked()
            except SessionWriteError as e:
                # nothing was written: the file is intact, close it cleanly
                self._failed = e
                self._closed = True
                self._file.close()
                raise
            except (OSError, RuntimeError) as e:  # h5py reports some write errors as RuntimeError
                self._failed = SessionWriteError(_describe_os_error(e, self.path))
                self._abandon()
                raise self._failed from None
            self._last_flush = time.monotonic()

    def _pending_bytes(self) -> int:
        n = self._jpeg_bytes
        for stream, fields in self._schema.items():
            rows = len(self._buf[stream]["t_ns"])
            for dtype, shape in fields.values():
                n += rows * np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64))
        return n

    def headroom_bytes(self) -> int | None:
        """Bytes the disk (or RLIMIT_FSIZE) leaves once the buffered rows and the
        `reserve_bytes` for HDF5's own metadata are written; None when unknown. The one
        disk-space guard: the writer refuses a flush below 0, the recorder stops cleanly
        below its `min_free_bytes`."""
        free = free_bytes(self.path)
        if free is None:
            return None
        with self._lock:
            return free - self._pending_bytes() - self.reserve_bytes

    def _check_space(self) -> None:
        """Refuse to start a flush the disk cannot hold: a write cut short by a full disk
        can leave an HDF5 file that no longer opens, so stop while it is still intact."""
        headroom = self.headroom_bytes()
        if headroom is not None and headroom < 0:
            free = headroom + self._pending_bytes() + self.reserve_bytes
            raise SessionWriteError(
                f"disk full while writing {self.path} ({free // 1024} KiB free, "
                f"{(free - headroom) // 1024} KiB needed); data flushed before stays readable"
            )

    def _flush_locked(self) -> None:
        f = self._file
        if self._jpeg_buf:
            blob = np.frombuffer(b"".join(self._jpeg_buf), dtype=np.uint8)
            ds = self._datasets["camera/jpeg_data"]
            n = ds.shape[0]
            ds.resize((n + blob.size,))
            ds[n:] = blob
            ds.flush()
            self._jpeg_buf.clear()
            self._jpeg_bytes = 0
        # Data before timestamps: a reader trusts t_ns's length, so it never sees a row
        # whose other fields are missing.
        for stream, fields in self._schema.items():
            buf = self._buf[stream]
            rows = len(buf["t_ns"])
            if rows == 0:
                continue
            n = self._counts[stream]
            for name in [*[k for k in fields if k != "t_ns"], "t_ns"]:
                dtype, shape = fields[name]
                arr = np.asarray(buf[name], dtype=dtype).reshape(rows, *shape)
                ds = self._datasets[f"{stream}/{name}"]
                ds.resize((n + rows, *shape))
                ds[n : n + rows] = arr
                ds.flush()
                buf[name].clear()
            self._counts[stream] = n + rows
        f.flush()

    def _abandon(self) -> None:
        """Close the HDF5 handle after a failed write without trying to write more."""
        self._closed = True
        with contextlib.suppress(Exception):  # the file is already known to be broken
            self._file.close()

    def close(self) -> None:
        """Flush everything, mark the file finalised and close it; idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self._check_space()
            except SessionWriteError as e:
                self._failed = e
                self._closed = True
                self._file.close()
                raise
            try:
                self._flush_locked()
                self._file["finalized"][()] = np.int8(1)
                self._file.close()
            except (OSError, RuntimeError) as e:
                self._failed = SessionWriteError(_describe_os_error(e, self.path))
                self._abandon()
                raise self._failed from None
            self._closed = True

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_os_error(e: OSError, path: Path) -> str:
    if e.errno == errno.ENOSPC or "No space" in str(e):
        return f"disk full while writing {path}; data flushed before stays readable"
    return f"write to {path} failed: {e}"


# Errors h5py raises for HDF5 metadata it cannot read: checksum mismatches ("incorrect
# metadata checksum"), bad signatures, object headers or indexes past the end of a
# truncated file. Caught per stream so that one damaged object does not hide the rest.
_H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError)


class _DamageFound(RuntimeError):
    """Raised inside the strict checks when a dataset turns out damaged: recheck carefully."""


_REQUIRED_STREAMS = ("camera", "proximity", "wheels", "odometry", "events")
_LABELS_FORMAT = "robot-ssl/labels"  # robot_ssl.io.labels_file.FORMAT (not imported: no cycle)


def _h5_reason(e: BaseException) -> str:
    """The first line of an HDF5 error, without h5py's "Unable to ... (" wrapping."""
    text = str(e).strip().strip("'\"").splitlines()[0] if str(e).strip() else type(e).__name__
    if "(" in text and text.endswith(")"):
        text = text[text.index("(") + 1 : -1]
    return text.replace(" after all read attempts", "")[:160]


@dataclass(frozen=True)
class StreamRecovery:
    """How much of one stream an unfinished or damaged file still holds."""

    intact: int  # rows the reader gives (an intact prefix)
    stored: int | None  # rows the file's metadata says were written (None: unreadable)
    note: str = ""  # why rows were lost, empty when none were

    @property
    def complete(self) -> bool:
        return self.stored is not None and self.intact >= self.stored and not self.note


@dataclass(frozen=True)
class _Opened:
    """How `_open_h5` opened the file: `damage` is "truncated file" when it is shorter than
    HDF5's recorded end (`size` of `expected_size` bytes)."""

    swmr: bool = False
    damage: str | None = None
    size: int = 0
    expected_size: int | None = None


class SessionReader:
    """Validated, read-only view of a session file; use as a context manager.

    Files whose writer died (not finalised) and damaged files (truncated: an
    interrupted copy, a full SD card, a power cut; unreadable HDF5 metadata)
    open too: each stream is cut to its intact prefix (rows whose every field,
    and JPEG bytes, are really in the file), `recovered` is True and
    `recovery_reason` / `recovery_summary` / `stream_recovery` say what is left.
    A damaged file with no intact row in any data stream, or without readable
    root metadata, raises `DamagedSessionError`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotASessionError(f"{self.path}: no such file")
        self._file, self._opened = _open_h5(self.path)
        try:
            self._validate()
        except SessionError:
            self._file.close()
            raise
        except _H5_ERRORS as e:  # metadata damage outside the per-stream checks
            self._file.close()
            raise DamagedSessionError(f"{self.path}: damaged file: {_h5_reason(e)}") from None
        except BaseException:
            self._file.close()
            raise

    def _validate(self) -> None:
        f = self._file
        problem = global_heap_problem(self.path)
        if problem is not None:
            raise DamagedSessionError(
                f"{self.path}: root metadata is damaged ({problem}); nothing to recover"
            )
        try:
            attrs = dict(f.attrs)
        except _H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: root metadata is damaged ({_h5_reason(e)}); nothing to recover"
            ) from None
        fmt = attrs.get("format")
        fmt = fmt.decode(errors="replace") if isinstance(fmt, bytes) else fmt
        if fmt == _LABELS_FORMAT:
            raise NotASessionError(f"{self.path}: a labels file, not a session")
        if fmt != FORMAT:
            raise NotASessionError(f"{self.path}: not a robot-ssl session (no format={FORMAT!r})")
        try:
            version = int(attrs.get("version", -1))
        except (TypeError, ValueError):
            version = -1
        if version > VERSION:
            raise UnsupportedVersionError(
                f"{self.path}: session version {version} is newer than supported {VERSION}"
            )
        if version < 1:
            raise NotASessionError(f"{self.path}: invalid session version {version}")
        try:
            self.robot = RobotSpec.from_dict(json.loads(attrs["robot_spec"]))
            self.camera = CameraSpec.from_dict(json.loads(attrs["camera_spec"]))
            self.metadata: dict[str, Any] = json.loads(attrs.get("metadata", "{}"))
        except (KeyError, ValueError, TypeError, RobotSSLError) as e:
            raise InconsistentSessionError(f"{self.path}: bad spec attributes: {e}") from None
        self.frame_format = str(attrs.get("frame_format", "jpeg"))
        self.start_time_utc = str(attrs.get("start_time_utc", ""))
        #: "truncated file" or "damaged metadata" when the file is damaged, else None
        self.damage: str | None = self._opened.damage
        self._notes: list[str] = []  # damage outside the streams
        try:
            self.finalized = "finalized" in f and int(f["finalized"][()]) == 1
        except _H5_ERRORS:
            self.finalized = False
            self.damage = self.damage or "damaged metadata"
            self._notes.append("finalized flag unreadable")
        self.recovered = self.damage is not None or not self.finalized
        self._lengths: dict[str, int] = {}
        self._recovery: dict[str, StreamRecovery] = {}
        self._lost: set[str] = set()
        try:
            names = list(f)
        except _H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: root metadata is damaged ({_h5_reason(e)}); nothing to recover"
            ) from None
        for stream in _REQUIRED_STREAMS:
            if stream not in names and not self.recovered:
                raise InconsistentSessionError(f"{self.path}: missing stream group /{stream}")
        streams = [s for s in names if s != "finalized"]
        for stream in [*streams, *(s for s in _REQUIRED_STREAMS if s not in names)]:
            try:
                if stream not in names:
                    raise KeyError("group missing")
                if not isinstance(f[stream], h5py.Group):
                    continue
                if not self.recovered:
                    try:
                        n = self._stream_length(stream)
                        self._recovery[stream] = StreamRecovery(n, n)
                        self._lengths[stream] = n
                        continue
                    except _H5_ERRORS:  # damaged metadata in a file that opened normally
                        self.damage = "damaged metadata"
                        self.recovered = True
                self._recovery[stream] = self._intact_stream(stream)
            except _H5_ERRORS as e:
                self.damage = self.damage or "damaged metadata"
                self.recovered = True
                self._recovery[stream] = StreamRecovery(0, None, f"unreadable ({_h5_reason(e)})")
                self._lost.add(stream)
            self._lengths[stream] = self._recovery[stream].intact
        if self.damage is not None and not any(
            n for s, n in self._lengths.items() if s != "events"
        ):
            raise DamagedSessionError(
                f"{self.path}: {self._damage_text()}: no stream has an intact row;"
                " nothing to recover"
            )

    def _stream_length(self, stream: str) -> int:
        """Rows of a stream in a finalised, undamaged file; raises on any inconsistency."""
        g = self._file[stream]
        datasets = {name: g[name] for name in g}
        lengths = {name: ds.shape[0] for name, ds in datasets.items() if name != "jpeg_data"}
        if "t_ns" not in lengths:
            raise InconsistentSessionError(f"{self.path}: /{stream} has no t_ns")
        n = lengths["t_ns"]
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise InconsistentSessionError(
                f"{self.path}: /{stream} length mismatch: t_ns has {n} rows, {bad}"
            )
        if stream == "camera" and "jpeg_offset" in g and n > 0:
            end = int(g["jpeg_offset"][n - 1] + g["jpeg_size"][n - 1])
            if end > g["jpeg_data"].shape[0]:
                raise InconsistentSessionError(
                    f"{self.path}: /camera/jpeg_data is shorter than its index"
                )
        t = g["t_ns"][:n]
        if n > 1 and np.any(np.diff(t) < 0):
            i = int(np.argmax(np.diff(t) < 0))
            raise InconsistentSessionError(f"{self.path}: /{stream}/t_ns decreases at row {i + 1}")
        for name, ds in datasets.items():  # every chunk indexed and inside the file (~5 us each)
            _, why = _intact_rows(ds, self._opened.size)
            if why:
                raise _DamageFound(f"/{stream}/{name}: {why}")
        return n

    def _intact_stream(self, stream: str) -> StreamRecovery:
        """The intact row prefix of a stream of an unfinished or damaged file.

        Never trusts a raw read blindly: HDF5 returns zeros for data past the end
        of a truncated file, so each field counts only rows whose chunk (or part
        of an unfiltered chunk) lies inside the file; camera frames also need
        their JPEG bytes there; and rows after a decrease of t_ns (unwritten
        zeros) are dropped.
        """
        g = self._file[stream]
        size = self._opened.size
        names = [k for k in g if k != "jpeg_data"]
        if "t_ns" not in names:
            return StreamRecovery(0, None, "no t_ns dataset")
        stored: int | None = None
        n: int | None = None
        lost: dict[str, list[str]] = {}  # why -> fields
        for name in names:
            try:
                ds = g[name]
                rows = ds.shape[0]
                if name == "t_ns":
                    stored = rows
                intact, why = _intact_rows(ds, size)
            except _H5_ERRORS as e:
                intact, why = 0, f"unreadable ({_h5_reason(e)})"
            if why:
                lost.setdefault(why, []).append(name)
            n = intact if n is None else min(n, intact)
        n = n or 0
        notes = [f"{', '.join(fields)}: {why}" for why, fields in lost.items()]
        if stream == "camera" and "jpeg_offset" in names and n > 0:
            try:
                nbytes, why = _intact_rows(g["jpeg_data"], size)
            except _H5_ERRORS as e:
                nbytes, why = 0, f"unreadable ({_h5_reason(e)})"
            off = g["jpeg_offset"][:n]
            length = g["jpeg_size"][:n]
            bad = (off < 0) | (length <= 0) | (off + length > nbytes)
            if bad.any():
                n = int(np.argmax(bad))
                notes.append(f"jpeg_data: {why}" if why else "JPEG bytes missing")
        if n > 1:
            dec = np.diff(g["t_ns"][:n]) < 0
            if dec.any():
                n = int(np.argmax(dec)) + 1
                notes.append("t_ns decreases (rows never written)")
        return StreamRecovery(n, stored, "; ".join(notes))

    # -- recovery ------------------------------------------------------------------------

    @property
    def recovery_reason(self) -> str | None:
        """Why the file needed recovery: the damage, "writer did not finish", or None."""
        if self.damage is not None:
            return self._damage_text()
        return None if self.finalized else "writer did not finish"

    def _damage_text(self) -> str:
        o = self._opened
        if self.damage == "truncated file" and o.expected_size:
            return f"truncated file ({o.size} of {o.expected_size} bytes)"
        return str(self.damage)

    @property
    def stream_recovery(self) -> dict[str, StreamRecovery]:
        """Per stream: rows intact, rows stored, why rows were lost."""
        return dict(self._recovery)

    @property
    def recovery_summary(self) -> str | None:
        """One line: why recovered and how much is intact (None for an intact, finished file).

        e.g. "truncated file (4448701 of 4943002 bytes), 181 of ~181 frames intact;
        cut: truth 0 of 301 rows, events 0 of 2 rows".
        """
        reason = self.recovery_reason
        if not self.recovered or reason is None:
            return None
        cam = self._recovery.get("camera")
        if cam is None or cam.stored is None:
            frames = "camera unreadable"
        else:
            frames = f"{cam.intact} of ~{cam.stored} frames intact"
        cut = [
            f"{s} {r.intact} of {'?' if r.stored is None else r.stored} rows"
            for s, r in self._recovery.items()
            if s != "camera" and not r.complete
        ]
        return (
            f"{reason}, {frames}"
            + ("; cut: " + ", ".join(cut) if cut else "")
            + "".join(f"; {note}" for note in self._notes)
        )

    # -- streams -------------------------------------------------------------------------

    @property
    def streams(self) -> dict[str, int]:
        """Row count per stream present in the file (intact rows of a recovered file)."""
        return dict(self._lengths)

    def _empty(self, stream: str, name: str) -> np.ndarray:
        """An empty array shaped like /stream/name, for a stream whose metadata is lost."""
        frame_shape = (self.camera.height, self.camera.width, 3)
        fields = _schema(self.frame_format, frame_shape, self.robot.num_prox, (0, 0))
        dtype, shape = fields.get(stream, {}).get(name, (np.float64, ()))
        return np.empty((0, *shape), dtype=dtype)

    def _read(self, stream: str, name: str) -> np.ndarray:
        n = self._lengths[stream]
        if stream in self._lost or (n == 0 and self.damage is not None):
            return self._empty(stream, name)
        try:
            return self._file[stream][name][:n]
        except _H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: cannot read /{stream}/{name}: {_h5_reason(e)}"
            ) from None

    @property
    def camera_t_ns(self) -> np.ndarray:
        return self._read("camera", "t_ns")

    @property
    def num_frames(self) -> int:
        return self._lengths["camera"]

    def jpeg(self, i: int) -> bytes:
        """The stored JPEG bytes of frame i (jpeg sessions only)."""
        if self.frame_format != "jpeg":
            raise SessionError(f"{self.path}: frames are stored raw, not as JPEG")
        i = self._check_index(i)
        try:
            g = self._file["camera"]
            off, size = int(g["jpeg_offset"][i]), int(g["jpeg_size"][i])
            return g["jpeg_data"][off : off + size].tobytes()
        except _H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: cannot read frame {i}: {_h5_reason(e)}"
            ) from None

    def frame(self, i: int) -> np.ndarray:
        """Decoded frame i as uint8 (H, W, 3) BGR."""
        if self.frame_format == "raw":
            i = self._check_index(i)
            try:
                return self._file["camera"]["rgb"][i]
            except _H5_ERRORS as e:
                raise DamagedSessionError(
                    f"{self.path}: cannot read frame {i}: {_h5_reason(e)}"
                ) from None
        img = decode_jpeg(self.jpeg(i), self.frame_shape)
        if img is None:
            height, width = self.frame_shape
            raise DamagedFrameError(
                f"{self.path}: frame {i} is a damaged JPEG (not a {width}x{height} image)"
            )
        return img

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(height, width) of every frame: the camera spec's; a stored JPEG of another
        size is a damaged frame."""
        return self.camera.height, self.camera.width

    def _check_index(self, i: int) -> int:
        n = self.num_frames
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range (session has {n} frames)")
        return i % n

    def frame_index_at(self, t_ns: int) -> int:
        """Index of the newest frame captured at or before t_ns (0 if t_ns is before all)."""
        return max(int(np.searchsorted(self.camera_t_ns, t_ns, side="right")) - 1, 0)

    def proximity(self) -> tuple[np.ndarray, np.ndarray]:
        """(t_ns (M,), horizontal int16 (M, 7))."""
        return self._read("proximity", "t_ns"), self._read("proximity", "horizontal")

    def wheels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_ns (K,), measured speed int16 (K, 2), target int16 (K, 2))."""
        return (
            self._read("wheels", "t_ns"),
            self._read("wheels", "speed"),
            self._read("wheels", "target"),
        )

    def odometry(self) -> tuple[np.ndarray, np.ndarray]:
        """(t_ns (K,), pose float64 (K, 3) x_m, y_m, theta_rad)."""
        return self._read("odometry", "t_ns"), self._read("odometry", "pose")

    def truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Simulator truth (t_ns, pose (K, 3), prox_distance_m (K, S)), or None for real robots."""
        if "truth" not in self._lengths:
            return None
        return (
            self._read("truth", "t_ns"),
            self._read("truth", "pose"),
            self._read("truth", "prox_distance_m"),
        )

    def frame_truth(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Simulator truth per frame: (stamp t_ns (F,), true mid-exposure t_ns (F,)), or None
        (real robots, and simulated sessions recorded before it existed)."""
        if "frame_truth" not in self._lengths:
            return None
        return self._read("frame_truth", "t_ns"), self._read("frame_truth", "exposure_t_ns")

    def predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Live detector outputs (t_ns, frame_index, prob (P, S, D)), or None."""
        if "predictions" not in self._lengths:
            return None
        return (
            self._read("predictions", "t_ns"),
            self._read("predictions", "frame_index"),
            self._read("predictions", "prob"),
        )

    def events(self) -> list[Event]:
        t = self._read("events", "t_ns")
        kinds = self._read("events", "kind")
        msgs = self._read("events", "message")
        return [
            Event(int(a), b.decode(errors="replace"), c.decode(errors="replace"))
            for a, b, c in zip(t, kinds, msgs)
        ]

    # -- summary -------------------------------------------------------------------------

    def time_range_ns(self) -> tuple[int, int] | None:
        """(first, last) timestamp over all data streams, or None for an empty session."""
        firsts, lasts = [], []
        for stream, n in self._lengths.items():
            if n and stream != "events":
                t = self._read(stream, "t_ns")
                firsts.append(int(t[0]))
                lasts.append(int(t[-1]))
        return (min(firsts), max(lasts)) if firsts else None

    @property
    def start_ns(self) -> int | None:
        """The session's first timestamp over every stream (events too), or None when empty."""
        firsts = [int(self._read(s, "t_ns")[0]) for s, n in self._lengths.items() if n]
        return min(firsts) if firsts else None

    @property
    def duration_s(self) -> float:
        r = self.time_range_ns()
        return 0.0 if r is None else (r[1] - r[0]) / 1e9

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- decoding frames: the one decoder, damaged frames skipped and counted ------------------


def decode_jpeg(jpeg: bytes, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """A stored JPEG frame as uint8 BGR (H, W, 3), or None when it is damaged: bytes
    that do not decode, or an image of another (height, width) than `shape`.

    The one decoder of session frames (SessionReader.frame, the dataset's threaded
    decoding), so that every verb agrees on which frames are damaged.
    """
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None or (shape is not None and image.shape[:2] != tuple(shape)):
        return None
    return image


def _stderr_note(message: str) -> None:
    print(f"robot-ssl: {message}", file=sys.stderr)


def report_damaged_frames(
    path: str | os.PathLike,
    damaged: int,
    total: int,
    what: str = "frames",
    note: Callable[[str], None] | None = None,
) -> None:
    """Report the `damaged` of `total` frames of a session that a verb skipped: one line
    to `note` (default: stderr) when some were, `DamagedSessionError` when all were
    (nothing of the session is usable)."""
    if damaged <= 0:
        return
    if damaged >= total:
        raise DamagedSessionError(f"{path}: all {total} {what} are damaged JPEGs; nothing to use")
    (note or _stderr_note)(
        f"{Path(path).name}: {damaged} of {total} {what} are damaged JPEGs, skipped"
    )


@dataclass
class IntactFrames:
    """The frames of an open session with the damaged ones skipped and counted once
    each: `get(i)` is frame i or None, `report()` the one line (or the refusal)."""

    reader: SessionReader
    tried: set[int] = field(default_factory=set)
    damaged: set[int] = field(default_factory=set)

    def get(self, i: int) -> np.ndarray | None:
        """Decoded frame i, or None when it is damaged (decoded once: later calls for a
        damaged frame return None at once)."""
        i = int(i)
        self.tried.add(i)
        if i in self.damaged:
            return None
        try:
            return self.reader.frame(i)
        except DamagedFrameError:
            self.damaged.add(i)
            return None

    def report(self, what: str = "frames", note: Callable[[str], None] | None = None) -> None:
        """See report_damaged_frames, over the frames tried so far."""
        report_damaged_frames(self.reader.path, len(self.damaged), len(self.tried), what, note)


_GHEAP_SCAN_BYTES = 1 << 16  # the writer stores the root attributes first: their heap is here


def global_heap_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the HDF5 global heap at the start of `path`, or None.

    h5py keeps string attributes (the session's format, specs, metadata) in
    HDF5's global heap, the one metadata structure without a checksum; on some
    damaged heaps HDF5 loops forever. Walk each heap collection in the file's
    first 64 KiB the way HDF5 will before letting HDF5 read it.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_GHEAP_SCAN_BYTES)
            start = 0
            while (at := head.find(b"GCOL", start)) >= 0:
                start = at + 4
                if len(head) < at + 16 or head[at + 4] != 1:  # version 1, else not a heap
                    continue
                total = int.from_bytes(head[at + 8 : at + 16], "little")
                if total < 4096 or at + total > size:
                    return f"global heap at byte {at}: bad size {total}"
                fh.seek(at)
                heap = fh.read(total)
                p = 16
                while p + 16 <= total:
                    index = int.from_bytes(heap[p : p + 2], "little")
                    length = int.from_bytes(heap[p + 8 : p + 16], "little")
                    need = 16 + (length + 7) // 8 * 8 if index else length
                    if need <= 0 or p + need > total:
                        return f"global heap at byte {at}: damaged object at byte {at + p}"
                    p += need
    except OSError:
        return None
    return None


def _intact_rows(ds: h5py.Dataset, file_size: int) -> tuple[int, str]:
    """(rows of `ds` that really lie in a file of `file_size` bytes, why fewer than stored).

    Chunked datasets count chunks in order while each is allocated and inside the
    file; of an unfiltered chunk cut by the end of the file, the rows before the
    cut count too. A chunk-index lookup that fails (index past the end, damaged)
    ends the count there.
    """
    n = int(ds.shape[0]) if ds.shape else 1
    if n == 0:
        return 0, ""
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
    if layout == h5py.h5d.COMPACT:
        return n, ""
    if layout == h5py.h5d.CONTIGUOUS:
        off = ds.id.get_offset()
        rows = 0 if off is None else min(n, max(0, (file_size - off) // max(row_bytes, 1)))
        return rows, "" if rows == n else "past the end of the file"
    chunks = ds.chunks
    raw = dcpl.get_nfilters() == 0
    # Chunk grid over the trailing dimensions: our writer's chunks span whole rows (one cell).
    trailing = [range(0, s, c) for s, c in zip(ds.shape[1:], chunks[1:])]
    whole_rows = tuple(chunks[1:]) == tuple(ds.shape[1:])
    intact = 0
    for start in range(0, n, chunks[0]):
        want = min(chunks[0], n - start)
        fits = want
        for rest in itertools.product(*trailing):
            try:
                info = ds.id.get_chunk_info_by_coord((start, *rest))
            except _H5_ERRORS as e:
                return intact, f"chunk index unreadable ({_h5_reason(e)})"
            if info.byte_offset is None:
                return intact, "chunk never written"
            if info.byte_offset + info.size <= file_size:
                continue
            part = (file_size - info.byte_offset) // max(row_bytes, 1)
            fits = min(fits, max(0, part) if raw and whole_rows else 0)
        intact += fits
        if fits < want:
            return intact, "past the end of the file"
    return intact, ""


_attempts_setter: Any = None


def _metadata_read_attempts_setter() -> Any:
    """HDF5's H5Pset_metadata_read_attempts from the library h5py runs on, or None.

    h5py does not expose it. In SWMR read mode HDF5 retries a metadata read that
    fails its checksum up to 100 times with growing sleeps, which on a truncated
    file (metadata past the end reads as zeros) takes minutes per object; with
    one attempt the error comes at once.
    """
    global _attempts_setter
    if _attempts_setter is not None:
        return _attempts_setter or None
    import ctypes
    import glob

    candidates: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:  # h5py's copy (Linux)
        for line in maps:
            p = line.split()[-1] if "/" in line else ""
            if os.path.basename(p).startswith("libhdf5") and "_hl" not in p:
                candidates.append(p)
    pkg = Path(h5py.__file__).parent
    for pattern in ("../h5py.libs/libhdf5-*", ".dylibs/libhdf5*", "hdf5.dll"):
        candidates += sorted(glob.glob(str(pkg / pattern)))
    _attempts_setter = False
    for c in dict.fromkeys(candidates):
        try:
            fn = ctypes.CDLL(c).H5Pset_metadata_read_attempts
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
        fn.restype = ctypes.c_int
        _attempts_setter = fn
        break
    return _attempts_setter or None


def _open_swmr(path: Path, attempts: int) -> h5py.File | None:
    """SWMR read with at most `attempts` metadata read attempts (None when not settable)."""
    setter = _metadata_read_attempts_setter()
    if setter is None:
        return None
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if setter(fapl.id, attempts) < 0:
        return None
    flags = h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ
    return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))


def _open_h5(path: Path) -> tuple[h5py.File, _Opened]:
    """Open read-only. A file still (or last) open for writing opens in SWMR read mode; so
    does a truncated one (SWMR skips HDF5's end-of-file check), marked damaged."""
    size = path.stat().st_size
    try:
        return h5py.File(path, "r"), _Opened(size=size)
    except OSError as e:
        first = str(e)
    if "signature" in first:
        raise NotASessionError(f"{path}: not an HDF5 file")
    truncated = "truncated file" in first
    if not (truncated or "already open for write" in first or "file locking" in first.lower()):
        raise NotASessionError(f"{path}: cannot open: {_h5_reason(first)}")
    expected = None
    if truncated:
        m = re.search(r"stored_eof = (\d+)", first)
        expected = int(m.group(1)) if m else None
    opened = _Opened(True, "truncated file" if truncated else None, size, expected)
    try:
        # A live writer's file may need a few attempts; a truncated one never recovers.
        f = _open_swmr(path, 1 if truncated else 10)
        if f is None and not truncated:
            f = h5py.File(path, "r", swmr=True)
    except OSError as e:
        what = "truncated session" if truncated else "recovered session"
        raise NotASessionError(f"{path}: cannot open {what}: {_h5_reason(e)}") from None
    if f is None:
        raise DamagedSessionError(
            f"{path}: truncated file ({size} of {expected} bytes); cannot open it for"
            " recovery (HDF5's metadata read attempts are not settable here)"
        )
    return f, opened
