"""Labels files (`<session>.labels.h5`, format robot-ssl/labels, version 1): write, read, check.

A labels file is derived data: it names the session it came from (path, size,
sha256) and never lives inside it. Writing goes to a temporary file in the
target directory that replaces the target only once complete, so a crash never
leaves a half-written labels file. Reading validates the format, the version
and every dataset's shape and type, and raises a precise `LabelsFileError`
subclass otherwise. Layout (docs/CONTRACTS.md, docs/labelling.md):

    attrs    format="robot-ssl/labels", version=1, session_path,
             session_size_bytes, session_sha256, config (JSON of LabelConfig),
             camera_offset (JSON of CameraOffset; absent in files written before the
             camera-latency correction, read as "none": nothing applied)
    confidence float32 (N, S, D) in [0, 1], optional: written only by labelling with
             uncertainty_replays > 0 (absent: every label fully trusted, 1.0)
    source uint8 (N, S, D), optional: each cell's label source, 0 unknown, 1 "ir"
             (proximity), 2 "contact", 3 "traversal" (core.label_grid.SOURCE_CODES;
             absent in files labelled before the sources: every known cell is "ir")
    frame_index int64 (N,)   t_ns int64 (N,)
    labels int8 (N, S, D) {-1, 0, 1}   readings int16 (N, S, D) (-1 unknown)
    match_t_ns int64 (N, D) (-1 unknown)   match_offset float32 (N, D, 3) (NaN unknown)
    sensor_indices int64 (S,)   distances_m float64 (D,)
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.label_grid import (
    SOURCE_CODES,
    CameraOffset,
    LabelConfig,
    LabelConfigError,
    LabelGrid,
    LabelStats,
    label_stats,
)
from robot_ssl.core.outputs import OutputError, atomic_output

__all__ = [
    "FORMAT",
    "VERSION",
    "InconsistentLabelsError",
    "LabelSet",
    "LabelsFileError",
    "LabelsMismatchError",
    "LabelsWriteError",
    "NotALabelsFileError",
    "SessionIdentity",
    "UnsupportedLabelsVersionError",
    "check_labels_of",
    "default_labels_path",
    "identify_session",
    "is_labels_file",
    "read_labels",
    "require_sessions",
    "skip_labels_files",
    "write_labels",
]

FORMAT = "robot-ssl/labels"
VERSION = 1
_HASH_BLOCK = 1 << 20


class LabelsFileError(RobotSSLError):
    """Base class of the errors about labels files."""


class NotALabelsFileError(LabelsFileError):
    """The file is missing, not HDF5, or not a robot-ssl labels file."""


class UnsupportedLabelsVersionError(LabelsFileError):
    """The labels file has a format version this code does not read."""


class InconsistentLabelsError(LabelsFileError):
    """A dataset is missing or has the wrong shape or type."""


class LabelsMismatchError(LabelsFileError):
    """The labels were computed from a different session (size or hash differs)."""


class LabelsWriteError(LabelsFileError):
    """The labels file could not be written (disk full, permissions, target is the session)."""


@dataclass(frozen=True)
class SessionIdentity:
    """Which session file the labels came from: absolute path, size and SHA-256 of its bytes."""

    path: str
    size_bytes: int
    sha256: str

    def check(self, session_path: str | Path, *, full_hash: bool = True) -> None:
        """Raise LabelsMismatchError unless `session_path` has this size (and hash)."""
        other = identify_session(session_path) if full_hash else None
        size = other.size_bytes if other else Path(session_path).stat().st_size
        if size != self.size_bytes:
            raise LabelsMismatchError(
                f"{session_path}: size {size} differs from the labelled session's {self.size_bytes}"
            )
        if other is not None and other.sha256 != self.sha256:
            raise LabelsMismatchError(f"{session_path}: content differs from the labelled session")


def check_labels_of(labels: LabelSet, labels_path: str | Path, session: str | Path) -> str | None:
    """LabelsMismatchError (one line) unless the labels in `labels_path` were computed from
    `session` (size and SHA-256, as recorded in the labels file): labels of another session
    drawn over this one's frames would mislead. A warning to print when the file records no
    hash (written by a tool that did not compute it): the check was impossible."""
    ident = labels.session
    if not ident.sha256 or ident.size_bytes < 0:
        return f"warning: {labels_path} records no session identity: not checked against {session}"
    try:
        ident.check(session)
    except LabelsMismatchError:
        if Path(ident.path).name == Path(session).name:  # same file, other bytes
            raise LabelsMismatchError(
                f"{labels_path}: {session} changed since it was labelled (then {ident.size_bytes}"
                f" bytes, sha256 {ident.sha256[:12]}: damaged, cut or re-recorded?); label it"
                " again (robot-ssl label)"
            ) from None
        raise LabelsMismatchError(
            f"{labels_path}: labels of another session ({Path(ident.path).name},"
            f" {ident.size_bytes} bytes, sha256 {ident.sha256[:12]}), not of {session}; label"
            " this session (robot-ssl label) or give its own labels file"
        ) from None
    return None


def identify_session(path: str | Path) -> SessionIdentity:
    """Size and SHA-256 of a session file (read in 1 MiB blocks)."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(_HASH_BLOCK):
                digest.update(block)
        size = path.stat().st_size
    except OSError as e:
        raise LabelsFileError(f"cannot read session {path}: {e.strerror}") from None
    return SessionIdentity(str(path.resolve()), size, digest.hexdigest())


def default_labels_path(session_path: str | Path, out_dir: str | Path | None = None) -> Path:
    """`run1.h5` -> `run1.labels.h5`, next to the session or inside `out_dir`."""
    session_path = Path(session_path)
    name = session_path.with_suffix("").name + ".labels.h5"
    return (Path(out_dir) if out_dir is not None else session_path.parent) / name


LABELS_SUFFIX = ".labels.h5"


def is_labels_file(path: str | Path) -> bool:
    """True when `path` is a labels file rather than a session.

    The one test every verb that takes sessions uses (`skip_labels_files`): an
    HDF5 file whose root says format="robot-ssl/labels", or, when its format
    cannot be read, a name ending in `.labels.h5` (a session named so is still a
    session).
    """
    from robot_ssl.io.session import global_heap_problem

    path = Path(path)
    try:
        if global_heap_problem(path) is not None:  # HDF5 could hang reading its attributes
            raise OSError("damaged global heap")
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except Exception:  # missing, not HDF5, damaged, open for writing: decide by the name
        return path.name.endswith(LABELS_SUFFIX)
    fmt = fmt.decode(errors="replace") if isinstance(fmt, bytes) else fmt
    if fmt == FORMAT:
        return True
    return fmt != "robot-ssl/session" and path.name.endswith(LABELS_SUFFIX)


def skip_labels_files(
    paths: Iterable[str | Path], note: Callable[[str], None] | None = None
) -> list:
    """`paths` given as sessions without the labels files among them (a glob like
    `dir/*.h5` matches the `<session>.labels.h5` beside each session); each one
    skipped is reported to `note` (default: a line on stderr)."""
    if note is None:

        def note(message: str) -> None:
            print(f"robot-ssl: {message}", file=sys.stderr)

    kept = []
    for p in paths:
        if is_labels_file(p):
            note(f"skipping {p}: a labels file, not a session")
        else:
            kept.append(p)
    return kept


def require_sessions(paths: Sequence[str | Path], doing: str, verb: str) -> list:
    """`skip_labels_files` for a verb: notes "robot-ssl VERB: skipping ..." on stderr,
    and one error when nothing but labels files is left ("no sessions to DOING")."""
    notes: list[str] = []
    kept = skip_labels_files(paths, notes.append)
    if not kept:
        if len(paths) == 1:
            raise LabelsFileError(f"{paths[0]}: a labels file, not a session")
        raise LabelsFileError(f"no sessions to {doing}: every file given is a labels file")
    for message in notes:
        print(f"robot-ssl {verb}: {message}", file=sys.stderr)
    return kept


@dataclass(frozen=True)
class LabelSet:
    """Everything in a labels file: the label grid of one session, its config and origin.

    Row i describes camera frame `frame_index[i]` stamped `t_ns[i]` (the session's own
    stamp, so that datasets join on it; the labels describe the frame's exposure at
    `t_ns - camera_offset.applied_s`); see `robot_ssl.labelling.labeller.LabelGrid` for
    the meaning of each array.
    """

    frame_index: np.ndarray
    t_ns: np.ndarray
    labels: np.ndarray
    readings: np.ndarray
    match_t_ns: np.ndarray
    match_offset: np.ndarray
    sensor_indices: np.ndarray
    distances_m: np.ndarray
    config: LabelConfig
    session: SessionIdentity
    camera_offset: CameraOffset = field(default_factory=CameraOffset)
    confidence: np.ndarray | None = None  # float32 (N, S, D); None: all 1.0
    source: np.ndarray | None = None  # uint8 (N, S, D) SOURCE_CODES; None: all "ir"

    @classmethod
    def from_grid(
        cls,
        grid: LabelGrid,
        config: LabelConfig,
        session: SessionIdentity,
        frame_index: np.ndarray | None = None,
        camera_offset: CameraOffset | None = None,
        confidence: np.ndarray | None = None,
    ) -> LabelSet:
        """Attach config, session identity, the camera offset applied and the labels'
        confidence (None: none computed) to a computed grid (frames 0..N-1 by default;
        offset: none)."""
        if frame_index is None:
            frame_index = np.arange(grid.num_frames, dtype=np.int64)
        return cls(
            source=grid.source,
            frame_index=np.asarray(frame_index, dtype=np.int64),
            t_ns=grid.t_ns,
            labels=grid.labels,
            readings=grid.readings,
            match_t_ns=grid.match_t_ns,
            match_offset=grid.match_offset,
            sensor_indices=grid.sensor_indices,
            distances_m=grid.distances_m,
            config=config,
            session=session,
            camera_offset=camera_offset if camera_offset is not None else CameraOffset(),
            confidence=confidence,
        )

    def cell_weights(self) -> np.ndarray:
        """float32 (N, S, D): each label's confidence, 1.0 everywhere when none was stored."""
        if self.confidence is None:
            return np.ones(self.labels.shape, dtype=np.float32)
        return self.confidence

    def cell_sources(self) -> np.ndarray:
        """uint8 (N, S, D): each cell's label source code (SOURCE_CODES, 0 unknown); a
        file without source codes labelled every known cell from proximity ("ir")."""
        if self.source is None:
            return np.where(self.labels >= 0, SOURCE_CODES["ir"], 0).astype(np.uint8)
        return self.source

    @property
    def exposure_t_ns(self) -> np.ndarray:
        """(N,) the frames' exposure times as labelled: t_ns - camera_offset.applied_s."""
        return self.t_ns - round(self.camera_offset.applied_s * 1e9)

    @property
    def num_frames(self) -> int:
        return int(self.frame_index.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, sensors, distances)."""
        n, s, d = self.labels.shape
        return int(n), int(s), int(d)

    def stats(self) -> LabelStats:
        return label_stats(self.labels)

    def validate(self) -> None:
        """Raise InconsistentLabelsError unless every array has the documented shape and type."""
        s, d = self.sensor_indices.shape[0], self.distances_m.shape[0]
        n = self.frame_index.shape[0]
        expected = {
            "frame_index": ((n,), np.int64),
            "t_ns": ((n,), np.int64),
            "labels": ((n, s, d), np.int8),
            "readings": ((n, s, d), np.int16),
            "match_t_ns": ((n, d), np.int64),
            "match_offset": ((n, d, 3), np.float32),
            "sensor_indices": ((s,), np.int64),
            "distances_m": ((d,), np.float64),
        }
        for name, (shape, dtype) in expected.items():
            a = getattr(self, name)
            if a.shape != shape or a.dtype != dtype:
                raise InconsistentLabelsError(
                    f"{name}: expected {np.dtype(dtype).name} {shape}, got {a.dtype.name} {a.shape}"
                )
        if tuple(self.sensor_indices.tolist()) != self.config.sensor_indices:
            raise InconsistentLabelsError("sensor_indices differ from the config's")
        if not np.allclose(self.distances_m, self.config.distances_m, rtol=0, atol=1e-12):
            raise InconsistentLabelsError("distances_m differ from the config's")
        if n and (self.labels.min() < -1 or self.labels.max() > 1):
            raise InconsistentLabelsError("labels must be in {-1, 0, 1}")
        c = self.confidence
        if c is not None and (c.shape != (n, s, d) or c.dtype != np.float32):
            raise InconsistentLabelsError(
                f"confidence: expected float32 {(n, s, d)}, got {c.dtype.name} {c.shape}"
            )
        if c is not None and c.size and not (np.all(c >= 0) and np.all(c <= 1)):
            raise InconsistentLabelsError("confidence must be in [0, 1]")
        src = self.source
        if src is not None:
            if src.shape != (n, s, d) or src.dtype != np.uint8:
                raise InconsistentLabelsError(
                    f"source: expected uint8 {(n, s, d)}, got {src.dtype.name} {src.shape}"
                )
            if src.size and src.max() > max(SOURCE_CODES.values()):
                raise InconsistentLabelsError(
                    f"source codes must be in 0..{max(SOURCE_CODES.values())}"
                )
            if np.any((src > 0) != (self.labels >= 0)):
                raise InconsistentLabelsError("source must name a source exactly where known")


_DATASETS = (
    "frame_index",
    "t_ns",
    "labels",
    "readings",
    "match_t_ns",
    "match_offset",
    "sensor_indices",
    "distances_m",
)
_COMPRESSED = {"labels", "readings", "match_t_ns", "match_offset", "confidence", "source"}
_OPTIONAL = ("confidence", "source")  # absent in files labelled without them


def write_labels(path: str | Path, labels: LabelSet, *, compression: str | None = "gzip") -> Path:
    """Write `labels` to `path` atomically (temporary file in the same directory, then rename).

    Refuses to write over the session file itself. Returns the path written.
    """
    path = Path(path)
    labels.validate()
    target = path.resolve()
    if target == Path(labels.session.path).resolve():
        raise LabelsWriteError(f"{path}: refusing to overwrite the session with its labels")
    try:
        with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["session_path"] = labels.session.path
            f.attrs["session_size_bytes"] = labels.session.size_bytes
            f.attrs["session_sha256"] = labels.session.sha256
            f.attrs["config"] = labels.config.to_json()
            f.attrs["camera_offset"] = labels.camera_offset.to_json()
            for name in _DATASETS + _OPTIONAL:
                data = getattr(labels, name)
                if data is None:
                    continue
                opts = {}
                if compression and name in _COMPRESSED and data.size:
                    opts = {"compression": compression, "shuffle": True}
                f.create_dataset(name, data=data, **opts)
    except OutputError as e:  # the folder cannot be written: "cannot write to DIR: reason"
        raise LabelsWriteError(str(e)) from None
    except OSError as e:
        raise LabelsWriteError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def _attr_str(f: h5py.File, name: str, path: Path) -> str:
    if name not in f.attrs:
        raise InconsistentLabelsError(f"{path}: attribute {name!r} is missing")
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def read_labels(path: str | Path) -> LabelSet:
    """Read and validate a labels file; raise a LabelsFileError subclass on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise NotALabelsFileError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise NotALabelsFileError(f"{path}: not an HDF5 file") from None
    with f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != FORMAT:
            raise NotALabelsFileError(f"{path}: not a labels file (format={fmt!r})")
        version = f.attrs.get("version")
        try:
            version_int = int(version)
        except (TypeError, ValueError):
            raise InconsistentLabelsError(f"{path}: bad version attribute {version!r}") from None
        if version_int != VERSION:
            raise UnsupportedLabelsVersionError(
                f"{path}: labels format version {version_int}, this code reads version {VERSION}"
            )
        try:
            config = LabelConfig.from_json(_attr_str(f, "config", path))
        except LabelConfigError as e:
            raise InconsistentLabelsError(f"{path}: bad config: {e}") from None
        try:
            session = SessionIdentity(
                path=_attr_str(f, "session_path", path),
                size_bytes=int(f.attrs.get("session_size_bytes", -1)),
                sha256=_attr_str(f, "session_sha256", path),
            )
        except (TypeError, ValueError):
            raise InconsistentLabelsError(f"{path}: bad session_size_bytes attribute") from None
        camera_offset = CameraOffset()  # files from before the correction: none applied
        if "camera_offset" in f.attrs:
            try:
                camera_offset = CameraOffset.from_json(_attr_str(f, "camera_offset", path))
            except (LabelConfigError, TypeError) as e:
                raise InconsistentLabelsError(f"{path}: bad camera_offset: {e}") from None
        arrays = {}
        for name in _DATASETS:
            obj = f.get(name)
            if not isinstance(obj, h5py.Dataset):
                raise InconsistentLabelsError(f"{path}: dataset {name!r} is missing")
            arrays[name] = obj[()]
        for name in _OPTIONAL:
            obj = f.get(name)
            arrays[name] = obj[()] if isinstance(obj, h5py.Dataset) else None
    labels = LabelSet(config=config, session=session, camera_offset=camera_offset, **arrays)
    try:
        labels.validate()
    except InconsistentLabelsError as e:
        raise InconsistentLabelsError(f"{path}: {e}") from None
    return labels
