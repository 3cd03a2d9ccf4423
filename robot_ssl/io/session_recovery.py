"""Recovery of session files that a writer did not finish or that were damaged.

How a file is opened (normally, in SWMR read mode for a live or dead writer's file,
with one metadata read attempt for a truncated one), which rows of each stream are
really in the file (`intact_rows`, `intact_stream`), the strict checks of a finished
file (`stream_length`), and the walk of HDF5's global heap that keeps a damaged one
from hanging HDF5 (`global_heap_problem`). The reader (session_reader) decides with
these what a session holds; docs/session_format.md says what is kept and why.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robot_ssl.io.session_errors import (
    DamagedSessionError,
    InconsistentSessionError,
    NotASessionError,
)

__all__ = [
    "H5_ERRORS",
    "DamageFound",
    "Opened",
    "StreamRecovery",
    "global_heap_problem",
    "h5_reason",
    "intact_rows",
    "intact_stream",
    "open_h5",
    "stream_length",
]


# Errors h5py raises for HDF5 metadata it cannot read: checksum mismatches ("incorrect
# metadata checksum"), bad signatures, object headers or indexes past the end of a
# truncated file. Caught per stream so that one damaged object does not hide the rest.
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError)


class DamageFound(RuntimeError):
    """Raised inside the strict checks when a dataset turns out damaged: recheck carefully."""


def h5_reason(e: BaseException) -> str:
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
class Opened:
    """How `open_h5` opened the file: `damage` is "truncated file" when it is shorter than
    HDF5's recorded end (`size` of `expected_size` bytes)."""

    swmr: bool = False
    damage: str | None = None
    size: int = 0
    expected_size: int | None = None


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


def intact_rows(ds: h5py.Dataset, file_size: int) -> tuple[int, str]:
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
            except H5_ERRORS as e:
                return intact, f"chunk index unreadable ({h5_reason(e)})"
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


def open_h5(path: Path) -> tuple[h5py.File, Opened]:
    """Open read-only. A file still (or last) open for writing opens in SWMR read mode; so
    does a truncated one (SWMR skips HDF5's end-of-file check), marked damaged."""
    size = path.stat().st_size
    try:
        return h5py.File(path, "r"), Opened(size=size)
    except OSError as e:
        first = str(e)
    if "signature" in first:
        raise NotASessionError(f"{path}: not an HDF5 file")
    truncated = "truncated file" in first
    if not (truncated or "already open for write" in first or "file locking" in first.lower()):
        raise NotASessionError(f"{path}: cannot open: {h5_reason(first)}")
    expected = None
    if truncated:
        m = re.search(r"stored_eof = (\d+)", first)
        expected = int(m.group(1)) if m else None
    opened = Opened(True, "truncated file" if truncated else None, size, expected)
    try:
        # A live writer's file may need a few attempts; a truncated one never recovers.
        f = _open_swmr(path, 1 if truncated else 10)
        if f is None and not truncated:
            f = h5py.File(path, "r", swmr=True)
    except OSError as e:
        what = "truncated session" if truncated else "recovered session"
        raise NotASessionError(f"{path}: cannot open {what}: {h5_reason(e)}") from None
    if f is None:
        raise DamagedSessionError(
            f"{path}: truncated file ({size} of {expected} bytes); cannot open it for"
            " recovery (HDF5's metadata read attempts are not settable here)"
        )
    return f, opened


def stream_length(f: h5py.File, stream: str, path: Path, file_size: int) -> int:
    """Rows of a stream in a finalised, undamaged file; raises on any inconsistency."""
    g = f[stream]
    datasets = {name: g[name] for name in g}
    lengths = {name: ds.shape[0] for name, ds in datasets.items() if name != "jpeg_data"}
    if "t_ns" not in lengths:
        raise InconsistentSessionError(f"{path}: /{stream} has no t_ns")
    n = lengths["t_ns"]
    bad = {k: v for k, v in lengths.items() if v != n}
    if bad:
        raise InconsistentSessionError(
            f"{path}: /{stream} length mismatch: t_ns has {n} rows, {bad}"
        )
    if stream == "camera" and "jpeg_offset" in g and n > 0:
        end = int(g["jpeg_offset"][n - 1] + g["jpeg_size"][n - 1])
        if end > g["jpeg_data"].shape[0]:
            raise InconsistentSessionError(f"{path}: /camera/jpeg_data is shorter than its index")
    t = g["t_ns"][:n]
    if n > 1 and np.any(np.diff(t) < 0):
        i = int(np.argmax(np.diff(t) < 0))
        raise InconsistentSessionError(f"{path}: /{stream}/t_ns decreases at row {i + 1}")
    for name, ds in datasets.items():  # every chunk indexed and inside the file (~5 us each)
        _, why = intact_rows(ds, file_size)
        if why:
            raise DamageFound(f"/{stream}/{name}: {why}")
    return n


def intact_stream(f: h5py.File, stream: str, file_size: int) -> StreamRecovery:
    """The intact row prefix of a stream of an unfinished or damaged file.

    Never trusts a raw read blindly: HDF5 returns zeros for data past the end
    of a truncated file, so each field counts only rows whose chunk (or part
    of an unfiltered chunk) lies inside the file; camera frames also need
    their JPEG bytes there; and rows after a decrease of t_ns (unwritten
    zeros) are dropped.
    """
    g = f[stream]
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
            intact, why = intact_rows(ds, file_size)
        except H5_ERRORS as e:
            intact, why = 0, f"unreadable ({h5_reason(e)})"
        if why:
            lost.setdefault(why, []).append(name)
        n = intact if n is None else min(n, intact)
    n = n or 0
    notes = [f"{', '.join(fields)}: {why}" for why, fields in lost.items()]
    if stream == "camera" and "jpeg_offset" in names and n > 0:
        try:
            nbytes, why = intact_rows(g["jpeg_data"], file_size)
        except H5_ERRORS as e:
            nbytes, why = 0, f"unreadable ({h5_reason(e)})"
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
