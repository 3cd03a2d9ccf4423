"""Session files: HDF5 recordings of camera frames and robot streams (schema version 1).

The writer appends multi-rate streams in batches and flushes them periodically
in HDF5 SWMR mode, so a writer killed at any instant (SIGKILL, power cut)
leaves a file that opens and holds everything up to the last flush. The reader
validates the file and gives numpy arrays and decoded frames. Layout and
guarantees: docs/session_format.md.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from robot_ssl.errors import RobotSSLError
from robot_ssl.spec import CameraSpec, RobotSpec

FORMAT = "robot-ssl/session"
VERSION = 1
EVENT_KIND_BYTES = 32
EVENT_MESSAGE_BYTES = 240
_ROWS_PER_CHUNK = 4096
_JPEG_CHUNK_BYTES = 1 << 20

__all__ = [
    "FORMAT",
    "VERSION",
    "Event",
    "InconsistentSessionError",
    "NotASessionError",
    "SessionError",
    "SessionReader",
    "SessionWriteError",
    "SessionWriter",
    "UnsupportedVersionError",
]


class SessionError(RobotSSLError):
    """Base class of session file errors."""


class NotASessionError(SessionError):
    """The file is missing, not HDF5, or not a robot-ssl session."""


class UnsupportedVersionError(SessionError):
    """The session was written by a newer schema version than this reader knows."""


class InconsistentSessionError(SessionError):
    """The session's streams contradict each other (lengths, timestamp order)."""


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
    if prediction_shape is not None:
        schema["predictions"] = {
            "t_ns": (np.int64, ()),
            "frame_index": (np.int64, ()),
            "prob": (np.float32, tuple(prediction_shape)),
        }
    return schema


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
        for stream, fields in self._schema.items():
            g = f.create_group(stream)
            for name, (dtype, shape) in fields.items():
                rows = 1 if name == "rgb" else _ROWS_PER_CHUNK
                g.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=dtype,
                    chunks=(rows, *shape),
                )
        if self.frame_format == "jpeg":
            f["camera"].create_dataset(
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

    def _check_space(self) -> None:
        """Refuse to start a flush the disk cannot hold: a write cut short by a full disk
        can leave an HDF5 file that no longer opens, so stop while it is still intact."""
        need = self._pending_bytes() + self.reserve_bytes
        free = shutil.disk_usage(self.path.parent).free
        if free < need:
            raise SessionWriteError(
                f"disk full while writing {self.path} ({free // 1024} KiB free, {need // 1024} KiB"
                " needed); data flushed before stays readable"
            )

    def _flush_locked(self) -> None:
        f = self._file
        if self._jpeg_buf:
            blob = np.frombuffer(b"".join(self._jpeg_buf), dtype=np.uint8)
            ds = f["camera/jpeg_data"]
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
            g = f[stream]
            n = self._counts[stream]
            for name in [*[k for k in fields if k != "t_ns"], "t_ns"]:
                dtype, shape = fields[name]
                arr = np.asarray(buf[name], dtype=dtype).reshape(rows, *shape)
                ds = g[name]
                ds.resize((n + rows, *shape))
                ds[n:] = arr
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


class SessionReader:
    """Validated, read-only view of a session file; use as a context manager.

    Files whose writer died (not finalised) open too: each stream is cut to the
    rows whose every field was flushed, and `recovered` is True.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotASessionError(f"{self.path}: no such file")
        self._file = _open_h5(self.path)
        try:
            self._validate()
        except Exception:
            self._file.close()
            raise

    def _validate(self) -> None:
        f = self._file
        if f.attrs.get("format") != FORMAT:
            raise NotASessionError(f"{self.path}: not a robot-ssl session (no format={FORMAT!r})")
        version = int(f.attrs.get("version", -1))
        if version > VERSION:
            raise UnsupportedVersionError(
                f"{self.path}: session version {version} is newer than supported {VERSION}"
            )
        if version < 1:
            raise NotASessionError(f"{self.path}: invalid session version {version}")
        try:
            self.robot = RobotSpec.from_dict(json.loads(f.attrs["robot_spec"]))
            self.camera = CameraSpec.from_dict(json.loads(f.attrs["camera_spec"]))
            self.metadata: dict[str, Any] = json.loads(f.attrs.get("metadata", "{}"))
        except (KeyError, ValueError, RobotSSLError) as e:
            raise InconsistentSessionError(f"{self.path}: bad spec attributes: {e}") from None
        self.frame_format = str(f.attrs.get("frame_format", "jpeg"))
        self.start_time_utc = str(f.attrs.get("start_time_utc", ""))
        self.recovered = not ("finalized" in f and int(f["finalized"][()]) == 1)
        self._lengths: dict[str, int] = {}
        for stream in ("camera", "proximity", "wheels", "odometry", "events"):
            if stream not in f:
                raise InconsistentSessionError(f"{self.path}: missing stream group /{stream}")
        for stream in f:
            if isinstance(f[stream], h5py.Group):
                self._lengths[stream] = self._stream_length(stream)
        for stream, n in self._lengths.items():
            t = f[stream]["t_ns"][:n]
            if n > 1 and np.any(np.diff(t) < 0):
                i = int(np.argmax(np.diff(t) < 0))
                raise InconsistentSessionError(
                    f"{self.path}: /{stream}/t_ns decreases at row {i + 1}"
                )

    def _stream_length(self, stream: str) -> int:
        g = self._file[stream]
        lengths = {name: ds.shape[0] for name, ds in g.items() if name != "jpeg_data"}
        if "t_ns" not in lengths:
            raise InconsistentSessionError(f"{self.path}: /{stream} has no t_ns")
        n = lengths["t_ns"]
        if self.recovered:
            n = min(lengths.values())
            if stream == "camera" and "jpeg_offset" in g and n > 0:
                end = g["jpeg_offset"][:n] + g["jpeg_size"][:n]
                n = int(np.searchsorted(end > g["jpeg_data"].shape[0], True))
        else:
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
        return n

    # -- streams -------------------------------------------------------------------------

    @property
    def streams(self) -> dict[str, int]:
        """Row count per stream present in the file."""
        return dict(self._lengths)

    def _read(self, stream: str, name: str) -> np.ndarray:
        return self._file[stream][name][: self._lengths[stream]]

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
        g = self._file["camera"]
        off, size = int(g["jpeg_offset"][i]), int(g["jpeg_size"][i])
        return g["jpeg_data"][off : off + size].tobytes()

    def frame(self, i: int) -> np.ndarray:
        """Decoded frame i as uint8 (H, W, 3) BGR."""
        if self.frame_format == "raw":
            return self._file["camera"]["rgb"][self._check_index(i)]
        img = cv2.imdecode(np.frombuffer(self.jpeg(i), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise InconsistentSessionError(f"{self.path}: frame {i} is not a valid JPEG")
        return img

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
                t = self._file[stream]["t_ns"]
                firsts.append(int(t[0]))
                lasts.append(int(t[n - 1]))
        return (min(firsts), max(lasts)) if firsts else None

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


def _open_h5(path: Path) -> h5py.File:
    """Open read-only; fall back to SWMR read for a file still (or last) open for writing."""
    try:
        return h5py.File(path, "r")
    except OSError as e:
        first = str(e)
    if "already open for write" in first or "file locking" in first.lower():
        try:
            return h5py.File(path, "r", swmr=True)
        except OSError as e:
            raise NotASessionError(f"{path}: cannot open recovered session: {e}") from None
    if "signature" in first or "file signature not found" in first:
        raise NotASessionError(f"{path}: not an HDF5 file")
    raise NotASessionError(f"{path}: cannot open: {first.splitlines()[0]}")
