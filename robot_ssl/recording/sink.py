"""The one writer of a session: rows from any thread go in, in order, and the JPEG
encoding and HDF5 flushes happen in the sink's own thread, off the caller's (inference,
sensor) threads. Used by the recorder and the live loop.

`SessionSink.emit(record)` takes records of any stream its writer holds
(robot_ssl.io.streams.Record: a camera record carries `image` or `jpeg`; row tuples of
the earlier form are converted by the table). It subscribes to a `StreamBus` by the
writer's stream names (`subscribe`). Threaded, it
never blocks and never raises: rows are queued, and when the queue is full a row is
dropped and counted. Unthreaded (`threaded=False`, for loops stepped on a simulated
clock), it writes at once and raises. Per stream, a row stamped before its predecessor
is dropped (counted) rather than corrupting the file's time order; events are kept,
stamped no earlier than the previous event. The first write error stops the sink;
`close()` writes what was queued, flushes, and raises it.

Hooks for the recorder: `on_written(row)` after each row leaves the queue (frame
accounting) and `periodic()` at least every 0.2 s in the sink's thread (disk checks,
"frames dropped" events written with `write_now`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from robot_ssl.io.session import SessionWriteError, SessionWriter
from robot_ssl.io.streams import Record, StreamBus, record_from_tuple
from robot_ssl.recording.sampler import write_row

__all__ = ["SessionSink"]

_STOP = object()


class SessionSink:
    """The single writer of a session (use as a context manager or close())."""

    def __init__(
        self,
        writer: SessionWriter,
        *,
        max_queued: int = 4096,
        flush_interval_s: float = 0.5,
        threaded: bool = True,
        on_written: Callable[[Record], None] | None = None,
        periodic: Callable[[], None] | None = None,
    ) -> None:
        self.writer = writer
        self.flush_interval_s = flush_interval_s
        self.on_written = on_written
        self.periodic = periodic
        self.dropped_full = 0  # rows not queued: the queue was full (the writer lags)
        self.dropped_order = 0  # rows not written: stamped before their predecessor
        self.error: SessionWriteError | None = None
        self._last_t: dict[str, int] = {}
        self._last_flush_ns: int | None = None
        self._q: queue.Queue = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="session-sink", daemon=True)
            self._thread.start()

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams the session holds: what the sink takes."""
        return self.writer.streams

    def subscribe(self, bus: StreamBus) -> None:
        """Take every record of the session's streams published on `bus`."""
        bus.subscribe(self.emit, self.streams)

    def emit(self, row: Record | tuple) -> bool:
        """Queue one record (threaded: any thread, never blocks; False when dropped), or
        write it now (unthreaded: raises SessionWriteError)."""
        if not isinstance(row, Record):
            row = record_from_tuple(row, self.writer.table)
        if self._thread is None:
            self.write_now(row)
            return True
        if self.error is not None:
            return False
        try:
            self._q.put_nowait(row)
            return True
        except queue.Full:
            self.dropped_full += 1
            return False

    @property
    def dropped(self) -> int:
        """Rows not written: queue full or out of order."""
        return self.dropped_full + self.dropped_order

    def write_now(self, row: Record | tuple) -> None:
        """Write one record in the calling thread: the sink's (hooks) or, unthreaded, the
        caller's. Raises SessionWriteError."""
        record = row if isinstance(row, Record) else record_from_tuple(row, self.writer.table)
        last = self._last_t.get(record.stream)
        if last is not None and record.t_ns < last:
            if record.stream != "events":  # stamped before its predecessor: never corrupt order
                self.dropped_order += 1
                return
            record = record.replace_t_ns(last)  # events from several threads: keep them in order
        self._last_t[record.stream] = record.t_ns
        write_row(self.writer, record)

    def maybe_flush(self, now_ns: int) -> None:
        """Flush the writer when `flush_interval_s` has passed since the last flush on the
        caller's clock: the wall clock (threaded) or the simulated one (stepped), so the
        file grows in time order, a flush every 0.5 s of the recording whatever the speed.
        Raises SessionWriteError."""
        if self._last_flush_ns is None:
            self._last_flush_ns = now_ns
        elif now_ns - self._last_flush_ns >= self.flush_interval_s * 1e9:
            self.writer.flush()
            self._last_flush_ns = now_ns

    def _run(self) -> None:
        wait_s = min(self.flush_interval_s, 0.2)
        self.maybe_flush(time.monotonic_ns())
        while True:
            try:
                row = self._q.get(timeout=wait_s)
            except queue.Empty:
                row = None
            if row is _STOP:
                return
            if row is not None and self.on_written is not None:
                self.on_written(row)
            if self.error is not None:
                continue  # drain: the file takes nothing more
            try:
                if row is not None:
                    self.write_now(row)
                if self.periodic is not None:
                    self.periodic()
                self.maybe_flush(time.monotonic_ns())
            except SessionWriteError as e:
                self.error = e
            except Exception as e:  # a bug must not kill the thread silently
                self.error = SessionWriteError(f"session sink: {type(e).__name__}: {e}")

    def close(self, raise_error: bool = True) -> None:
        """Write what is queued, stop the thread, flush; raises the first write error
        (with `raise_error`; else it stays in `error`)."""
        if self._thread is not None and self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join()
        if self.error is None:
            try:
                self.writer.flush()
            except SessionWriteError as e:
                self.error = e
        if self.error is not None and raise_error:
            raise self.error

    def __enter__(self) -> SessionSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
