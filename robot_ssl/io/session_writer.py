"""The session writer: appends multi-rate streams (the table of robot_ssl.io.streams)
to an HDF5 file in SWMR mode, so that a writer killed at any instant leaves a file that
opens and holds everything up to its last flush. Layout: docs/session_format.md.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from robot_ssl.core.outputs import free_bytes
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session_errors import SessionWriteError
from robot_ssl.io.streams import FORMAT, STREAMS, VERSION, Record, StreamTable

__all__ = ["SessionWriter"]

# HDF5 reserves a whole chunk in the file when its first row is flushed and fills it in
# place. Small chunks (4 KiB of rows, 256 KiB of JPEG) keep the file in time order, so a
# cut at X % of the bytes keeps about X % of the frames, and the reservation small: 4096
# rows a chunk for every field (events' 240-byte messages too) reserved 2 MB at the
# first flush, most of a short session's first half.
_CHUNK_BYTES = 4 << 10
_MIN_ROWS_PER_CHUNK = 32  # wide rows (events, predictions): not a chunk per row
_JPEG_CHUNK_BYTES = 256 << 10


def _converter(dtype: np.dtype, shape: tuple[int, ...]) -> Callable[[Any], Any]:
    """How a value of a field is buffered: fixed-size strings encoded and cut to fit,
    scalars as Python numbers, arrays as arrays of the field's dtype."""
    if dtype.kind == "S":
        size = dtype.itemsize
        return lambda v: (v.encode() if isinstance(v, str) else bytes(v))[:size]
    if not shape:
        return int if dtype.kind in "iub" else float
    return functools.partial(np.asarray, dtype=dtype)


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

    The session holds the required streams of `table` and the optional ones named in
    `streams`, their named dimensions given in `dims` ("height" and "width" come from
    the camera). `truth_sensors` opens "truth" and "frame_truth" (dimension
    "truth_sensors"); `prediction_shape` (S, D) opens "predictions". Any stream is
    written with `write(Record)`; the `write_*` methods are its typed spellings.
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
        streams: Iterable[str] = (),
        dims: Mapping[str, int] | None = None,
        table: StreamTable = STREAMS,
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
        self.table = table
        self._schema = table.resolve(
            frame_format,
            self._dims(dims or {}, truth_sensors, prediction_shape),
            self._optional(streams, truth_sensors, prediction_shape),
        )
        self._buf: dict[str, dict[str, list]] = {
            s: {f: [] for f in fields} for s, fields in self._schema.items()
        }
        # per stream: its fields after t_ns as (name, conversion, buffer), for `append`
        self._fields = {
            s: tuple(
                (n, _converter(dtype, shape), self._buf[s][n])
                for n, (dtype, shape) in fields.items()
                if n != "t_ns"
            )
            for s, fields in self._schema.items()
            if s != "camera"
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

    def _dims(
        self,
        dims: Mapping[str, int],
        truth_sensors: int | None,
        prediction_shape: tuple[int, int] | None,
    ) -> dict[str, int]:
        """The named dimensions of the session's fields: the camera's, `dims`, and those
        given by `truth_sensors` and `prediction_shape`."""
        out = {"height": self.camera.height, "width": self.camera.width}
        out |= {"prox_sensors": self.robot.num_prox, **dims}
        if truth_sensors is not None:
            out["truth_sensors"] = int(truth_sensors)
        if prediction_shape is not None:
            out["grid_sensors"], out["grid_distances"] = map(int, prediction_shape)
        return out

    @staticmethod
    def _optional(
        streams: Iterable[str],
        truth_sensors: int | None,
        prediction_shape: tuple[int, int] | None,
    ) -> list[str]:
        """The optional streams to open: `streams`, plus what the shortcuts name."""
        out = list(streams)
        if truth_sensors is not None:
            out += ["truth", "frame_truth"]
        if prediction_shape is not None:
            out.append("predictions")
        return out

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams this session holds, in on-disk order."""
        return tuple(self._schema)

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
        """Buffer one camera row (its stored fields by name)."""
        buf = self._buf[stream]
        with self._lock:
            self._stamp(stream, t_ns)
            for k, v in values.items():
                buf[k].append(v)

    def _stamp(self, stream: str, t_ns: int) -> None:
        """Buffer the `t_ns` of a new row of `stream` (under the lock): refused once the
        writer failed or closed, and when it is before the stream's previous one."""
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise SessionWriteError(f"{self.path} is closed")
        t = int(t_ns)
        last = self._last_t.get(stream)
        if last is not None and t < last:
            raise SessionWriteError(f"{stream}: timestamp {t} ns is before previous {last} ns")
        self._last_t[stream] = t
        self._buf[stream]["t_ns"].append(t)

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

    def write(self, record: Record) -> None:
        """Append one record of any stream the session holds: values by field name,
        converted to the table's dtypes (strings encoded and cut to fit). A camera
        record carries `jpeg` (encoded bytes) or `image` (BGR, encoded here when the
        format is jpeg)."""
        if record.stream == "camera":
            if "jpeg" in record.values:
                self.write_jpeg(record.t_ns, record.values["jpeg"])
            else:
                self.write_frame(record.t_ns, record.values["image"])
            return
        self.append(record.stream, record.t_ns, record.values)

    def append(self, stream: str, t_ns: int, values: Mapping[str, Any]) -> None:
        """Append one row of `stream` (not camera: see write_frame, write_jpeg) from its
        values by field name; a missing or unknown field is a SessionWriteError."""
        fields = self._fields.get(stream)
        if fields is None:
            raise SessionWriteError(
                "camera rows: write_frame or write_jpeg"
                if stream == "camera"
                else f"stream {stream!r} was not declared when {self.path.name} was opened"
            )
        if len(values) != len(fields):
            self._refuse_fields(stream, values)
        try:  # all converted before any is buffered: no half row
            row = [convert(values[name]) for name, convert, _ in fields]
        except KeyError:
            self._refuse_fields(stream, values)
        with self._lock:
            self._stamp(stream, t_ns)
            for (_, _, buf), value in zip(fields, row):
                buf.append(value)
        self._maybe_flush()

    def _refuse_fields(self, stream: str, values: Mapping[str, Any]) -> None:
        """Raise the SessionWriteError naming a field `values` lacks or has too many."""
        names = [name for name, _, _ in self._fields[stream]]
        missing = [n for n in names if n not in values]
        if missing:
            raise SessionWriteError(f"{stream} row without its field {missing[0]!r}")
        extra = [n for n in values if n not in names]
        raise SessionWriteError(f"{stream} has no field {extra[0]!r}")

    def write_proximity(self, t_ns: int, horizontal: np.ndarray) -> None:
        """Append one reading of the 7 horizontal proximity sensors (raw int16)."""
        self.append("proximity", t_ns, {"horizontal": horizontal})

    def write_wheels(self, t_ns: int, speed: np.ndarray, target: np.ndarray) -> None:
        """Append measured and commanded wheel speeds (left, right), raw units."""
        self.append("wheels", t_ns, {"speed": speed, "target": target})

    def write_odometry(self, t_ns: int, pose: np.ndarray) -> None:
        """Append one odometry pose (x_m, y_m, theta_rad)."""
        self.append("odometry", t_ns, {"pose": pose})

    def write_event(self, t_ns: int, kind: str, message: str = "") -> None:
        """Append an event (gap, reconnect, dropped frames...); strings are truncated to fit."""
        self.append("events", t_ns, {"kind": kind, "message": message})

    def write_truth(self, t_ns: int, pose: np.ndarray, prox_distance_m: np.ndarray) -> None:
        """Append simulator truth: true pose and true distance along each sensor axis."""
        self.append("truth", t_ns, {"pose": pose, "prox_distance_m": prox_distance_m})

    def write_frame_truth(self, t_ns: int, exposure_t_ns: int) -> None:
        """Append simulator truth for the frame stamped t_ns: its true mid-exposure time."""
        self.append("frame_truth", t_ns, {"exposure_t_ns": exposure_t_ns})

    def write_prediction(self, t_ns: int, frame_index: int, prob: np.ndarray) -> None:
        """Append a detector output for camera frame `frame_index` (probabilities S x D)."""
        self.append("predictions", t_ns, {"frame_index": frame_index, "prob": prob})

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
