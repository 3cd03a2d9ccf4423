"""The sensor logger: robot + camera (+ simulator truth) into one session file.

Two ways to run the same recording logic:

- `Recorder.run(duration_s)` — threaded, on the wall clock (a real robot, a
  camera, the simulator in real time). One thread polls the robot at the
  wheel rate (proximity every few polls), one picks up new camera frames,
  one JPEG-encodes them, one writes. Queues are bounded: when the writer
  lags, frames are dropped and counted, memory never grows. A fault in one
  source (robot unplugged, camera dead) is logged as an event and the other
  streams go on; a write error (disk full) ends the recording with all that
  was flushed readable.
- `Recorder.run_stepped(duration_s)` — single-threaded, on a clock that
  advances the simulation when waited on (`Clock.sleep_until_ns`). A fixed
  schedule (wheels and truth at `wheels_hz`, proximity at `prox_hz`, camera
  at `camera_fps`) makes the data a pure function of the seed, and it runs as
  fast as the CPU allows.

Both write wheels + live odometry, proximity, camera frames and events;
`truth` (simulator only) is written at the wheel rate. When a controller is
given the recorder drives (wheel targets from proximity readings) and stops
the motors on every exit path.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import numpy as np

from robot_ssl.core.config import check_numbers
from robot_ssl.core.devices import Camera, Clock, Robot, WallClock
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.odometry import DEFAULT_MAX_GAP_NS, OdometryIntegrator
from robot_ssl.core.schedule import run_schedule
from robot_ssl.io.session import SessionWriteError, SessionWriter
from robot_ssl.io.streams import Record
from robot_ssl.recording.sampler import RobotSampler, TruthSource, event
from robot_ssl.recording.sink import SessionSink

__all__ = [
    "Controller",
    "DeviceUnavailable",
    "Recorder",
    "RecorderConfig",
    "RecorderError",
    "RecordingStats",
    "TruthSource",
]


class RecorderError(RobotSSLError):
    """The recorder was configured inconsistently."""


class DeviceUnavailable(RecorderError):
    """A robot or camera could not be opened: reported before anything is recorded."""


class Controller(Protocol):
    """Drives the robot while recording: proximity readings -> wheel targets (raw units).

    `robot_ssl.recording.wander.WanderController` (what `robot-ssl record --drive wander`
    uses) and `robot_ssl.live.controllers.IRReactiveController` fit.
    """

    def command(self, proximity: np.ndarray, t_ns: int) -> tuple[int, int]: ...


@dataclass
class RecorderConfig:
    """Rates, queue bounds and fault handling of a recording."""

    prox_hz: float = 10.0  # Thymio firmware updates prox.horizontal at 10 Hz
    wheels_hz: float = 50.0  # measured speeds (and odometry, truth, control) at this rate
    camera_fps: float | None = None  # stepped schedule / poll hint; None: the writer's camera fps
    jpeg_quality: int | None = None  # None: the writer's quality
    flush_interval_s: float = 0.5  # the writer thread flushes at least this often
    frame_queue_size: int = 4  # raw frames waiting for the JPEG encoder
    write_queue_frames: int = 30  # encoded frames waiting for the writer (~1 s at 30 fps)
    write_queue_rows: int = 4096  # robot rows and events waiting for the writer
    robot_retry_s: float = 0.2  # pause between reads while the robot is gone
    target_refresh_s: float = 0.5  # resend unchanged wheel targets this often (keep-alive)
    camera_stall_s: float = 2.0  # no new frame for this long -> "camera_stalled" event
    max_odometry_gap_ns: int = DEFAULT_MAX_GAP_NS
    min_free_bytes: int = 32 * 2**20  # stop (cleanly) when the disk has less than this left
    status: bool | None = None  # status line on `status_stream`; None: when it is a terminal
    status_interval_s: float = 0.5

    def __post_init__(self) -> None:
        positive = dict(min=0, min_inclusive=False)
        check_numbers(
            self,
            "recorder config",
            RecorderError,
            {
                "prox_hz": positive,
                "wheels_hz": positive,
                "camera_fps": dict(optional=True, **positive),
                "jpeg_quality": dict(optional=True, integer=True, min=1, max=100),
                "flush_interval_s": positive,
                "frame_queue_size": dict(integer=True, min=1),
                "write_queue_frames": dict(integer=True, min=1),
                "write_queue_rows": dict(integer=True, min=1),
                "robot_retry_s": positive,
                "target_refresh_s": positive,
                "camera_stall_s": positive,
                "max_odometry_gap_ns": dict(integer=True, min=1),
                "min_free_bytes": dict(integer=True, min=0),
                "status_interval_s": positive,
            },
        )
        if self.status is not None and not isinstance(self.status, bool):
            raise RecorderError(
                f"recorder config.status: must be true, false or null, got {self.status!r}"
            )
        if self.prox_hz <= 0 or self.wheels_hz <= 0:
            raise RecorderError("prox_hz and wheels_hz must be > 0")
        if self.camera_fps is not None and self.camera_fps <= 0:
            raise RecorderError("camera_fps must be > 0")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise RecorderError("jpeg_quality must be in 1..100")
        if min(self.frame_queue_size, self.write_queue_frames, self.write_queue_rows) < 1:
            raise RecorderError("queue sizes must be >= 1")
        if min(self.flush_interval_s, self.robot_retry_s, self.camera_stall_s) <= 0:
            raise RecorderError("intervals must be > 0")
        if self.min_free_bytes < 0:
            raise RecorderError("min_free_bytes must be >= 0")


@dataclass
class RecordingStats:
    """What happened during a recording (also summarised in the "recording_stopped" event)."""

    elapsed_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # rows written per stream
    frames_dropped: int = 0  # new frames not written because the encoder/writer lagged
    frames_missed: int = 0  # frames the camera captured that the recorder never saw
    rows_dropped: int = 0  # robot rows/events not written (write queue full or out of order)
    robot_read_failures: int = 0
    robot_gaps: int = 0
    camera_failed: bool = False
    disk_full: bool = False  # stopped early to keep `min_free_bytes` free
    max_frames_queued: int = 0  # high-water mark of encoded frames waiting for the writer
    size_bytes: int = 0
    stop_reason: str = ""


_STOP = object()  # end-of-stream marker on the queues
_DISK_CHECK_NS = 200_000_000


class Recorder:
    """Records one session from a robot and a camera into a `SessionWriter`.

    `robot` or `camera` may be None (camera-only or robot-only sessions). The
    caller owns the devices and the writer (opens and closes them); the
    recorder flushes the writer and, when it drove, stops the motors.
    """

    def __init__(
        self,
        robot: Robot | None,
        camera: Camera | None,
        writer: SessionWriter,
        config: RecorderConfig | None = None,
        *,
        clock: Clock | None = None,
        controller: Controller | None = None,
        truth: TruthSource | None = None,
        status_stream: TextIO | None = None,
    ) -> None:
        if robot is None and controller is not None:
            raise RecorderError("a controller needs a robot to drive")
        if robot is None and camera is None:
            raise RecorderError("nothing to record: no robot and no camera")
        self.robot = robot
        self.camera = camera
        self.writer = writer
        self.config = config or RecorderConfig()
        self.clock = clock or WallClock()
        self.controller = controller
        self.truth = truth
        self.status_stream = status_stream if status_stream is not None else sys.stderr
        cfg = self.config
        self.camera_fps = float(cfg.camera_fps or writer.camera.fps)
        self.jpeg_quality = int(cfg.jpeg_quality or writer.jpeg_quality)
        self.odometry = OdometryIntegrator(writer.robot, max_gap_ns=cfg.max_odometry_gap_ns)
        self._stats = RecordingStats()
        self._stop_requested = False  # set from signal handlers: a plain flag is signal-safe
        self._stop_reason: str | None = None
        self._disk_full = False
        self._stop = threading.Event()
        self._sink: SessionSink | None = None  # the session's writer, made by run/run_stepped
        self._counter_lock = threading.Lock()
        # robot state (robot thread only)
        self._targets = (0, 0)
        self._targets_sent_ns: int | None = None
        self._sampler = (
            None
            if robot is None
            else RobotSampler(
                robot, self.odometry, self.clock, targets=lambda: self._targets, truth=truth
            )
        )
        # camera state (camera thread only)
        self._last_index = -1
        self._last_new_frame_ns: int | None = None
        self._camera_stalled = False
        self._camera_dead = camera is None
        # writer state (writer thread, or the stepped loop)
        self._frames_queued = 0
        self._next_dropped_note = 0.0
        self._dropped_noted = 0
        # threaded plumbing
        self._frame_q: queue.Queue = queue.Queue(maxsize=cfg.frame_queue_size)
        self._crash: tuple[str, BaseException] | None = None
        self._started_ns = 0
        self._started_wall = 0.0

    # ------------------------------------------------------------------ public

    @property
    def driving(self) -> bool:
        """True when the recorder commands the motors."""
        return self.controller is not None

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask a running recording to finish and finalise (safe from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_requested = True

    @property
    def stats(self) -> RecordingStats:
        """Counters so far (a copy with current counts and file size)."""
        s = self._stats
        with self._counter_lock:
            out = RecordingStats(**{k: getattr(s, k) for k in s.__dataclass_fields__})
        if self._sink is not None:
            out.rows_dropped += self._sink.dropped_order
        if self._sampler is not None:
            out.robot_read_failures = self._sampler.read_failures
            out.robot_gaps = self._sampler.gaps
        out.counts = self.writer.counts
        out.size_bytes = self.writer.size_bytes
        return out

    # ------------------------------------------------------------------ shared logic

    def _count(self, name: str, n: int = 1) -> None:
        with self._counter_lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)

    @property
    def _fatal(self) -> SessionWriteError | None:
        """The first write error of the session (threaded: found by the sink's thread)."""
        return self._sink.error if self._sink is not None else None

    def _event(self, emit: Callable[[tuple], None], t_ns: int, kind: str, message: str) -> None:
        emit(event(t_ns, kind, message))

    def _robot_step(self, emit: Callable[[tuple], None], do_wheels: bool, do_prox: bool) -> bool:
        """One robot poll: read, record, drive. False when the robot did not answer."""
        sample = self._sampler.step(emit, do_wheels, do_prox)
        if sample is None:
            return False
        if sample.reconnected:
            self._targets_sent_ns = None  # resend targets now: the robot may have reset them
        if self.controller is not None and do_wheels:
            robot = self.robot
            assert robot is not None
            left, right = self.controller.command(sample.proximity, sample.t_ns)
            targets = (int(left), int(right))
            now = self.clock.now_ns()
            stale = (
                self._targets_sent_ns is None
                or now - self._targets_sent_ns >= self.config.target_refresh_s * 1e9
            )
            if targets != self._targets or stale:
                try:
                    robot.set_wheel_targets(*targets)
                except Exception as e:
                    self._sampler.failed(emit, e)
                    return False
                self._targets, self._targets_sent_ns = targets, now
        return True

    def _camera_step(
        self, emit_frame: Callable[[int, np.ndarray], None], emit: Callable[[tuple], None]
    ) -> None:
        """Look for a new frame; hand it on, or log a failure / stall."""
        camera = self.camera
        assert camera is not None
        now = self.clock.now_ns()
        try:
            frame = camera.read()
            health = camera.health() if hasattr(camera, "health") else None
        except Exception as e:
            self._camera_died(emit, now, f"{type(e).__name__}: {e}".splitlines()[0])
            return
        if frame is None or frame.index <= self._last_index:
            if health is not None and health.failed:
                self._camera_died(emit, now, health.error or "camera failed")
                return
            since = (
                self._last_new_frame_ns if self._last_new_frame_ns is not None else self._started_ns
            )
            if not self._camera_stalled and now - since > self.config.camera_stall_s * 1e9:
                self._camera_stalled = True
                self._event(
                    emit, now, "camera_stalled", f"no new frame for {(now - since) / 1e9:.1f} s"
                )
            return
        if self._camera_stalled:
            self._camera_stalled = False
            self._event(emit, now, "camera_resumed", "frames again")
        if self._last_index >= 0 and frame.index > self._last_index + 1:
            self._count("frames_missed", frame.index - self._last_index - 1)
        self._last_index = frame.index
        self._last_new_frame_ns = now
        emit_frame(int(frame.t_ns), frame.image)
        exposure_ns = getattr(frame, "exposure_t_ns", None)  # simulated cameras only
        if exposure_ns is not None and self.truth is not None:
            emit(Record.of("frame_truth", frame.t_ns, exposure_t_ns=int(exposure_ns)))

    def _camera_died(self, emit: Callable[[tuple], None], t_ns: int, message: str) -> None:
        self._camera_dead = True
        with self._counter_lock:
            self._stats.camera_failed = True
        self._event(emit, t_ns, "camera_failed", f"{message}; other streams go on")

    def _encode(self, t_ns: int, image: np.ndarray) -> Record:
        if self.writer.frame_format != "jpeg":
            return Record.of("camera", t_ns, image=image)
        import cv2

        ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise SessionWriteError("JPEG encoding failed")
        return Record.of("camera", t_ns, jpeg=enc.tobytes())

    def _drain_link_events(self, emit: Callable[[tuple], None]) -> None:
        if self._sampler is not None:
            self._sampler.drain_link_events(emit)

    def _begin(self, emit: Callable[[tuple], None], mode: str) -> None:
        self._started_ns = self.clock.now_ns()
        self._started_wall = time.monotonic()
        if self._sampler is not None:
            self._sampler.attach()
        parts = [mode]
        if self.robot is not None:
            parts.append(f"prox {self.config.prox_hz:g} Hz, wheels {self.config.wheels_hz:g} Hz")
            parts.append("driving" if self.driving else "not driving")
        if self.camera is not None:
            parts.append(f"camera ~{self.camera_fps:g} fps")
        self._event(emit, self._started_ns, "recording_started", ", ".join(parts))
        self._check_disk(emit)

    def _end(self, emit: Callable[[tuple], None], reason: str) -> None:
        s = self.stats
        self._event(
            emit,
            self.clock.now_ns(),
            "recording_stopped",
            f"{reason}; frames dropped {s.frames_dropped}, missed {s.frames_missed}, "
            f"robot gaps {s.robot_gaps}",
        )

    def _stop_motors(self) -> None:
        if self.driving and self.robot is not None:
            with contextlib.suppress(Exception):  # the robot may be the thing that failed
                self.robot.stop()
            self._targets = (0, 0)

    def _finish_stats(self, reason: str) -> RecordingStats:
        with self._counter_lock:
            self._stats.stop_reason = reason
            self._stats.elapsed_s = time.monotonic() - self._started_wall
        if self._sampler is not None:
            self._sampler.detach()
        return self.stats

    # ------------------------------------------------------------------ stepped mode

    def run_stepped(self, duration_s: float) -> RecordingStats:
        """Deterministic single-threaded recording on a clock that steps the simulation.

        Schedule from the start time t0 (integer ns, no drift): robot poll
        (wheels, odometry, truth, control) every 1/wheels_hz, proximity every
        1/prox_hz (on the same poll when both are due), camera every
        1/camera_fps. Ends after `duration_s` of clock time or request_stop().
        Raises SessionWriteError (disk full) after stopping the motors.
        """
        self._sink = SessionSink(
            self.writer, threaded=False, flush_interval_s=self.config.flush_interval_s
        )
        emit = self._sink.emit
        periods = {
            "wheels": 1e9 / self.config.wheels_hz,
            "prox": 1e9 / self.config.prox_hz,
            "camera": 1e9 / self.camera_fps,
        }
        if self.robot is None:
            del periods["wheels"], periods["prox"]
        if self.camera is None:
            del periods["camera"]
        self._begin(emit, "stepped")
        last_disk_check = self._started_ns

        def encode_and_write(t_ns: int, image: np.ndarray) -> None:
            emit(self._encode(t_ns, image))

        def on_tick(t: int, now_due: frozenset[str]) -> None:
            nonlocal last_disk_check
            self._drain_link_events(emit)
            if now_due & {"wheels", "prox"}:
                self._robot_step(emit, "wheels" in now_due, "prox" in now_due)
            if "camera" in now_due and not self._camera_dead:
                self._camera_step(encode_and_write, emit)
            if t - last_disk_check >= _DISK_CHECK_NS:
                last_disk_check = t
                self._check_disk(emit)
            self._sink.maybe_flush(t)  # every flush_interval_s of clock time

        try:
            reason = run_schedule(
                self.clock, duration_s, periods, on_tick, lambda: self._stop_requested
            )
            if self._stop_requested:
                reason = self._stop_reason or "stop requested"
            self._end(emit, reason)
            self.writer.flush()
        finally:
            self._stop_motors()
        return self._finish_stats(reason)

    # ------------------------------------------------------------------ threaded mode

    def run(self, duration_s: float | None = None) -> RecordingStats:
        """Record on the wall clock until `duration_s`, request_stop() or a write error.

        Returns the stats; raises SessionWriteError (disk full...) after
        stopping the threads and the motors, with everything flushed before
        readable. KeyboardInterrupt also stops cleanly (and is re-raised).
        """
        cfg = self.config
        self._sink = SessionSink(
            self.writer,
            max_queued=cfg.write_queue_rows + cfg.write_queue_frames,
            flush_interval_s=cfg.flush_interval_s,
            on_written=self._on_written,
            periodic=self._writer_periodic,
        )
        self._next_dropped_note = time.monotonic() + cfg.flush_interval_s
        self._begin(self._emit_row, "threaded")
        threads = []
        if self.robot is not None:
            threads.append(
                threading.Thread(
                    target=self._guard(self._robot_loop), name="rec-robot", daemon=True
                )
            )
        if self.camera is not None:
            threads.append(
                threading.Thread(
                    target=self._guard(self._camera_loop), name="rec-camera", daemon=True
                )
            )
            threads.append(
                threading.Thread(
                    target=self._guard(self._encoder_loop), name="rec-encode", daemon=True
                )
            )
        end = None if duration_s is None else time.monotonic() + duration_s
        reason = "stopped"
        show_status = self._status_enabled()
        interrupted: BaseException | None = None
        for t in threads:
            t.start()
        try:
            next_status = time.monotonic()
            while True:
                if self._stop_requested and self._fatal is None and self._crash is None:
                    reason = self._stop_reason or "stop requested"
                    break
                if self._fatal is not None:
                    reason = f"write failed: {self._fatal}"
                    break
                if self._crash is not None:
                    reason = f"{self._crash[0]} crashed: {self._crash[1]!r}"
                    break
                now = time.monotonic()
                if end is not None and now >= end:
                    reason = f"duration {duration_s:g} s reached"
                    break
                if show_status and now >= next_status:
                    next_status = now + self.config.status_interval_s
                    self._print_status()
                time.sleep(min(0.05, max(0.0, end - now) if end is not None else 0.05))
        except KeyboardInterrupt as e:
            reason, interrupted = "interrupted", e
        finally:
            self._stop.set()
            for t in threads:
                t.join(timeout=5.0)
            self._stop_motors()
            self._end(self._emit_row, reason)
            self._sink.close(raise_error=False)  # writes what is queued; error: self._fatal
            if show_status:
                self._print_status()
                print(file=self.status_stream, flush=True)
        stats = self._finish_stats(reason)
        if self._fatal is not None:
            raise self._fatal
        if self._crash is not None:
            name, error = self._crash
            raise RecorderError(f"recording stopped: {name} failed: {error!r}") from error
        if interrupted is not None:
            raise interrupted
        return stats

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        """Wrap a thread body: an unexpected exception stops the recording instead of
        silently killing one stream; run() re-raises it as a RecorderError."""

        def body() -> None:
            try:
                target()
            except BaseException as e:
                if self._crash is None:
                    self._crash = (threading.current_thread().name, e)
                self._stop_requested = True

        return body

    def _put_stop(self, q: queue.Queue) -> None:
        # The consumer may be gone (write failure): make room rather than block forever.
        while True:
            try:
                q.put(_STOP, timeout=0.1)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()

    def _emit_row(self, item: tuple) -> None:
        if not self._sink.emit(item):
            self._count("rows_dropped")

    def _robot_loop(self) -> None:
        cfg = self.config
        wheels_period = int(1e9 / cfg.wheels_hz)
        prox_period = int(1e9 / cfg.prox_hz)
        start = time.monotonic_ns()
        next_w = next_p = start
        try:
            while not self._stop.is_set():
                wake = min(next_w, next_p)
                delay = (wake - time.monotonic_ns()) / 1e9
                if delay > 0 and self._stop.wait(delay):
                    break
                now = time.monotonic_ns()
                do_w, do_p = now >= next_w, now >= next_p
                self._drain_link_events(self._emit_row)
                ok = self._robot_step(self._emit_row, do_w, do_p)
                # next deadline on the fixed grid; skip ticks that passed (no bursts)
                now = time.monotonic_ns()
                if do_w:
                    next_w += wheels_period * max(1, (now - next_w) // wheels_period + 1)
                if do_p:
                    next_p += prox_period * max(1, (now - next_p) // prox_period + 1)
                if not ok and self._stop.wait(cfg.robot_retry_s):
                    break
        finally:
            self._stop_motors()

    def _camera_loop(self) -> None:
        poll_s = min(max(1.0 / (3.0 * self.camera_fps), 0.002), 0.02)
        try:
            while not self._stop.is_set() and not self._camera_dead:
                self._camera_step(self._enqueue_frame, self._emit_row)
                self._stop.wait(poll_s)
        finally:
            self._put_stop(self._frame_q)

    def _enqueue_frame(self, t_ns: int, image: np.ndarray) -> None:
        try:
            self._frame_q.put_nowait((t_ns, image))
        except queue.Full:
            self._count("frames_dropped")

    def _encoder_loop(self) -> None:
        slots = self.config.write_queue_frames
        while True:
            item = self._frame_q.get()
            if item is _STOP:
                return
            with self._counter_lock:
                full = self._frames_queued >= slots
                if not full:
                    self._frames_queued += 1
                    self._stats.max_frames_queued = max(
                        self._stats.max_frames_queued, self._frames_queued
                    )
            if full:  # the writer lags: drop before spending CPU on encoding
                self._count("frames_dropped")
                continue
            try:
                queued = self._sink.emit(self._encode(*item))
            except SessionWriteError:
                queued = False
            if not queued:
                self._count("frames_dropped")
                with self._counter_lock:
                    self._frames_queued -= 1

    def _on_written(self, row: Record) -> None:
        # the sink took an encoded frame off its queue: a slot for the encoder
        if row.stream == "camera":
            with self._counter_lock:
                self._frames_queued -= 1

    def _writer_periodic(self) -> None:
        """In the sink's thread: the disk check, and a note of frames dropped lately."""
        self._check_disk(self._sink.write_now)  # before every flush: statvfs is cheap
        if time.monotonic() >= self._next_dropped_note:
            self._next_dropped_note = time.monotonic() + self.config.flush_interval_s
            dropped = self._stats.frames_dropped
            if dropped > self._dropped_noted:
                message = f"{dropped - self._dropped_noted} frames dropped (writer lagging)"
                self._sink.write_now(event(self.clock.now_ns(), "frames_dropped", message))
                self._dropped_noted = dropped

    def _check_disk(self, emit: Callable[[tuple], None]) -> None:
        """Stop cleanly while the disk still has `min_free_bytes` left after what the
        writer holds (SessionWriter.headroom_bytes, the writer's own guard): a write that
        fails half-way can leave an HDF5 file that no longer opens, so never get there."""
        if self._disk_full:
            return
        free = self.writer.headroom_bytes()
        if free is not None and free < self.config.min_free_bytes:
            self._disk_full = True
            message = (
                f"{max(free, 0) / 1e6:.1f} MB left (reserve {self.config.min_free_bytes / 1e6:.1f}"
                " MB): recording stopped"
            )
            with self._counter_lock:
                self._stats.disk_full = True
            self._event(emit, self.clock.now_ns(), "disk_full", message)
            self._stop_reason = f"disk full: {message}"
            self._stop_requested = True

    # ------------------------------------------------------------------ status

    def _status_enabled(self) -> bool:
        if self.config.status is not None:
            return self.config.status
        isatty = getattr(self.status_stream, "isatty", None)
        return bool(isatty and isatty())

    def status_line(self) -> str:
        """One line: elapsed, rate per stream since the last call, drops, gaps, file size."""
        now = time.monotonic()
        counts = self.writer.counts
        prev = getattr(self, "_status_prev", None)
        self._status_prev = (now, counts)
        elapsed = now - self._started_wall
        names = {"camera": "cam", "proximity": "prox", "wheels": "wheels"}
        parts = [f"rec {int(elapsed // 60):02d}:{elapsed % 60:04.1f}"]
        for stream, short in names.items():
            if prev is None or now <= prev[0]:
                rate = 0.0  # no interval yet
            else:
                rate = (counts.get(stream, 0) - prev[1].get(stream, 0)) / (now - prev[0])
            parts.append(f"{short} {rate:5.1f} Hz")
        s = self.stats
        parts.append(f"dropped {s.frames_dropped}")
        if s.robot_gaps:
            down = self._sampler is not None and self._sampler.in_gap
            parts.append(f"robot gaps {s.robot_gaps}" + (" (down)" if down else ""))
        if s.camera_failed:
            parts.append("camera FAILED")
        parts.append(f"{self.writer.size_bytes / 1e6:.1f} MB")
        return "  ".join(parts)

    def _print_status(self) -> None:
        print("\r" + self.status_line() + "\x1b[K", end="", file=self.status_stream, flush=True)
