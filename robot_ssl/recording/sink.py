"""One thread that owns a SessionWriter: rows from any thread go in, in order, and the
JPEG encoding and HDF5 flushes happen there, off the caller's (inference) thread.

`SessionSink.emit(row)` never blocks and never raises: rows (see
robot_ssl.recording.sampler.Row, plus ("frame", t_ns, image_bgr) and
("prediction", t_ns, frame_index, prob)) are queued; when the queue is full the row is
dropped and counted. Per stream, a row stamped before its predecessor is dropped
(counted) rather than corrupting the file's time order; events are kept, stamped no
earlier than the previous event. The first write error stops the sink; `close()`
flushes what was queued and re-raises it.
"""

from __future__ import annotations

import queue
import threading
import time

from robot_ssl.io.session import SessionWriteError, SessionWriter
from robot_ssl.recording.sampler import Row, write_row

__all__ = ["SessionSink"]

_STOP = object()


class SessionSink:
    """The single writer thread of a session (use as a context manager or close())."""

    def __init__(
        self, writer: SessionWriter, *, max_queued: int = 4096, flush_interval_s: float = 0.5
    ) -> None:
        self.writer = writer
        self.flush_interval_s = flush_interval_s
        self.dropped = 0  # rows not written: queue full or out of order
        self.error: SessionWriteError | None = None
        self._q: queue.Queue = queue.Queue(maxsize=max_queued)
        self._last_t: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="session-sink", daemon=True)
        self._thread.start()

    def emit(self, row: Row) -> None:
        """Queue one row for writing (any thread; never blocks)."""
        if self.error is not None:
            return
        try:
            self._q.put_nowait(row)
        except queue.Full:
            self.dropped += 1

    def _write(self, row: Row) -> None:
        kind, t_ns = row[0], int(row[1])
        stream = {"frame": "camera", "jpeg": "camera", "raw": "camera"}.get(kind, kind)
        last = self._last_t.get(stream)
        if last is not None and t_ns < last:
            if kind != "event":
                self.dropped += 1
                return
            t_ns = last
        self._last_t[stream] = t_ns
        if kind == "frame":
            write_row(self.writer, ("raw", t_ns, row[2]))  # write_frame encodes when jpeg
        elif kind == "prediction":
            self.writer.write_prediction(t_ns, int(row[2]), row[3])
        else:
            write_row(self.writer, (kind, t_ns, *row[2:]))

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_interval_s
        while True:
            try:
                row = self._q.get(timeout=self.flush_interval_s)
            except queue.Empty:
                row = None
            if row is _STOP:
                return
            if self.error is not None:
                continue  # drain: the file takes nothing more
            try:
                if row is not None:
                    self._write(row)
                if time.monotonic() >= next_flush:
                    self.writer.flush()
                    next_flush = time.monotonic() + self.flush_interval_s
            except SessionWriteError as e:
                self.error = e
            except Exception as e:  # a bug must not kill the thread silently
                self.error = SessionWriteError(f"session sink: {type(e).__name__}: {e}")

    def close(self) -> None:
        """Write what is queued, stop the thread, flush; raises the first write error."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join()
        if self.error is None:
            try:
                self.writer.flush()
            except SessionWriteError as e:
                self.error = e
        if self.error is not None:
            raise self.error

    def __enter__(self) -> SessionSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
