"""The session reader: a validated, read-only view of a session file (any stream by
name through the table of robot_ssl.io.streams), and the one decoder of its frames.

Unfinished and damaged files open with their intact rows (robot_ssl.io.session_recovery
finds them), or are refused in one line when nothing is intact.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.spec import CameraSpec, RobotSpec
from robot_ssl.io.session_errors import (
    DamagedFrameError,
    DamagedSessionError,
    InconsistentSessionError,
    NotASessionError,
    SessionError,
    UnsupportedVersionError,
)
from robot_ssl.io.session_recovery import (
    H5_ERRORS,
    StreamRecovery,
    global_heap_problem,
    h5_reason,
    intact_stream,
    open_h5,
    stream_length,
)
from robot_ssl.io.streams import (
    FORMAT,
    STREAMS,
    VERSION,
    Columns,
    Event,
    Record,
    Schema,
    StreamTable,
)

__all__ = ["IntactFrames", "SessionReader", "decode_jpeg", "report_damaged_frames"]

_LABELS_FORMAT = "robot-ssl/labels"  # robot_ssl.io.labels_file.FORMAT (not imported: no cycle)


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

    def __init__(self, path: str | os.PathLike, table: StreamTable = STREAMS) -> None:
        self.path = Path(path)
        self.table = table
        if not self.path.is_file():
            raise NotASessionError(f"{self.path}: no such file")
        self._file, self._opened = open_h5(self.path)
        try:
            self._validate()
        except SessionError:
            self._file.close()
            raise
        except H5_ERRORS as e:  # metadata damage outside the per-stream checks
            self._file.close()
            raise DamagedSessionError(f"{self.path}: damaged file: {h5_reason(e)}") from None
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
        except H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: root metadata is damaged ({h5_reason(e)}); nothing to recover"
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
            self.robot = RobotSpec.from_dict(
                json.loads(attrs["robot_spec"]), keep_unknown_kinds=True
            )
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
        except H5_ERRORS:
            self.finalized = False
            self.damage = self.damage or "damaged metadata"
            self._notes.append("finalized flag unreadable")
        self.recovered = self.damage is not None or not self.finalized
        self._lengths: dict[str, int] = {}
        self._recovery: dict[str, StreamRecovery] = {}
        self._lost: set[str] = set()
        try:
            names = list(f)
        except H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: root metadata is damaged ({h5_reason(e)}); nothing to recover"
            ) from None
        for stream in self.table.required:
            if stream not in names and not self.recovered:
                raise InconsistentSessionError(f"{self.path}: missing stream group /{stream}")
        streams = [s for s in names if s != "finalized"]
        for stream in [*streams, *(s for s in self.table.required if s not in names)]:
            try:
                if stream not in names:
                    raise KeyError("group missing")
                if not isinstance(f[stream], h5py.Group):
                    continue
                if not self.recovered:
                    try:
                        n = stream_length(f, stream, self.path, self._opened.size)
                        self._recovery[stream] = StreamRecovery(n, n)
                        self._lengths[stream] = n
                        continue
                    except H5_ERRORS:  # damaged metadata in a file that opened normally
                        self.damage = "damaged metadata"
                        self.recovered = True
                self._recovery[stream] = intact_stream(f, stream, self._opened.size)
            except H5_ERRORS as e:
                self.damage = self.damage or "damaged metadata"
                self.recovered = True
                self._recovery[stream] = StreamRecovery(0, None, f"unreadable ({h5_reason(e)})")
                self._lost.add(stream)
            self._lengths[stream] = self._recovery[stream].intact
        if self.damage is not None and not any(
            n for s, n in self._lengths.items() if s != "events"
        ):
            raise DamagedSessionError(
                f"{self.path}: {self._damage_text()}: no stream has an intact row;"
                " nothing to recover"
            )

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
        dtype, shape = self._schema().get(stream, {}).get(name, (np.float64, ()))
        return np.empty((0, *shape), dtype=dtype)

    def _schema(self) -> Schema:
        """The table resolved for this session (sizes the file does not say: 0)."""
        dims = {"height": self.camera.height, "width": self.camera.width}
        dims |= {"prox_sensors": self.robot.num_prox, "truth_sensors": self.robot.num_prox}
        dims |= {"grid_sensors": 0, "grid_distances": 0}
        return self.table.resolve(self.frame_format, dims)

    def read(self, stream: str) -> Columns | None:
        """Every intact row of `stream` as arrays by field name (`t_ns` first), or None
        when the session does not hold it. Fields are the table's for this frame format;
        a stream the table does not name gives the datasets its group holds."""
        if stream not in self._lengths:
            return None
        if stream in self.table:
            names = self.table[stream].field_names(self.frame_format)
        else:
            names = tuple(k for k in self._file[stream] if k != "jpeg_data")
            names = ("t_ns", *(k for k in names if k != "t_ns"))
        return Columns(stream, {name: self._read(stream, name) for name in names})

    def read_records(self, stream: str) -> Iterator[Record]:
        """The rows of `stream` one by one as records (none when the session lacks it)."""
        cols = self.read(stream)
        if cols is None:
            return
        names = [k for k in cols.arrays if k != "t_ns"]
        for i, t in enumerate(cols.t_ns.tolist()):
            yield Record(stream, t, {k: cols.arrays[k][i] for k in names})

    def _read(self, stream: str, name: str) -> np.ndarray:
        n = self._lengths[stream]
        if stream in self._lost or (n == 0 and self.damage is not None):
            return self._empty(stream, name)
        try:
            return self._file[stream][name][:n]
        except H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: cannot read /{stream}/{name}: {h5_reason(e)}"
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
        except H5_ERRORS as e:
            raise DamagedSessionError(
                f"{self.path}: cannot read frame {i}: {h5_reason(e)}"
            ) from None

    def frame(self, i: int) -> np.ndarray:
        """Decoded frame i as uint8 (H, W, 3) BGR."""
        if self.frame_format == "raw":
            i = self._check_index(i)
            try:
                return self._file["camera"]["rgb"][i]
            except H5_ERRORS as e:
                raise DamagedSessionError(
                    f"{self.path}: cannot read frame {i}: {h5_reason(e)}"
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
        c = self._columns("proximity")
        return c.t_ns, c.horizontal

    def wheels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_ns (K,), measured speed int16 (K, 2), target int16 (K, 2))."""
        c = self._columns("wheels")
        return c.t_ns, c.speed, c.target

    def odometry(self) -> tuple[np.ndarray, np.ndarray]:
        """(t_ns (K,), pose float64 (K, 3) x_m, y_m, theta_rad)."""
        c = self._columns("odometry")
        return c.t_ns, c.pose

    def truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Simulator truth (t_ns, pose (K, 3), prox_distance_m (K, S)), or None for real robots."""
        c = self.read("truth")
        return None if c is None else (c.t_ns, c.pose, c.prox_distance_m)

    def frame_truth(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Simulator truth per frame: (stamp t_ns (F,), true mid-exposure t_ns (F,)), or None
        (real robots, and simulated sessions recorded before it existed)."""
        c = self.read("frame_truth")
        return None if c is None else (c.t_ns, c.exposure_t_ns)

    def predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Live detector outputs (t_ns, frame_index, prob (P, S, D)), or None."""
        c = self.read("predictions")
        return None if c is None else (c.t_ns, c.frame_index, c.prob)

    def events(self) -> list[Event]:
        c = self._columns("events")
        return [
            Event(int(a), b.decode(errors="replace"), m.decode(errors="replace"))
            for a, b, m in zip(c.t_ns, c.kind, c.message)
        ]

    def _columns(self, stream: str) -> Columns:
        """A stream every session holds (a required one)."""
        cols = self.read(stream)
        assert cols is not None, stream
        return cols

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
