"""The sensor logger: robot + camera (+ simulator truth) into one session file.

`Recorder` is the drive loop (robot_ssl.runtime.loop.DriveLoop) with a
`SessionRecording` observer, and, when it drives, a proximity policy (wander: `record
--drive wander`) whose every command goes through the loop's watchdog:

- `Recorder.run(duration_s)` — on the wall clock (a real robot, a camera, the
  simulator in real time): the loop's sensor thread polls the robot at the wheel rate
  (proximity at its own), its main thread picks up new camera frames; the recording
  JPEG-encodes them in one thread and writes in another (the session sink). Queues are
  bounded: when the writer lags, frames are dropped and counted, memory never grows. A
  fault in one source (robot unplugged, camera dead) is logged as an event and the
  other streams go on; a write error (disk full) ends the recording with all that was
  flushed readable.
- `Recorder.run_stepped(duration_s)` — single-threaded, on a clock that advances the
  simulation when waited on: a fixed schedule (wheels and truth at `wheels_hz`,
  proximity at `prox_hz`, camera at `camera_fps`) makes the data a pure function of
  the seed, and it runs as fast as the CPU allows.

Both write wheels + live odometry, proximity, camera frames and events; `truth`
(simulator only) is written at the wheel rate. The motors are stopped on every exit
path when the recorder drives; a recorder that does not drive never touches them.
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
from robot_ssl.io.session import SessionWriteError, SessionWriter
from robot_ssl.io.streams import Record
from robot_ssl.recording.sampler import RobotSampler, TruthSource, event
from robot_ssl.recording.sink import SessionSink
from robot_ssl.runtime.loop import DriveLoop, LoopConfig, LoopCrashed
from robot_ssl.runtime.policies import ProximityPolicy

__all__ = [
    "Controller",
    "DeviceUnavailable",
    "Recorder",
    "RecorderConfig",
    "RecorderError",
    "RecordingStats",
    "SessionRecording",
    "TruthSource",
]


class RecorderError(RobotSSLError):
    """The recorder was configured inconsistently."""


class DeviceUnavailable(RecorderError):
    """A robot or camera could not be opened: reported before anything is recorded."""


class Controller(Protocol):
    """Drives the robot while recording: proximity readings -> wheel targets (raw units).

    `robot_ssl.recording.wander.WanderController` (what `robot-ssl record --drive wander`
    uses) and `robot_ssl.live.controllers.IRReactiveController` fit. A controller that
    also has an observer's `streams`, `on_row`, `on_frame` and `status`
    (`robot_ssl.recording.contact_drive.ContactDriveController`: wheels and acc rows) is
    subscribed to the rows it names, which reach it before each command.
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


_STOP = object()  # end-of-stream marker on the encoder's queue
_DISK_CHECK_NS = 200_000_000


class SessionRecording:
    """Loop observer that writes a session: every record the loop emits, every new frame
    (JPEG-encoded with `jpeg_quality`) and, when the writer has a predictions stream,
    the frame's prediction. The caller opens and closes the writer.

    `start(threaded)` before the run: threaded, frames wait in a bounded queue for an
    encoder thread and rows in the session sink's queue (drops counted, never
    blocking the loop); unthreaded (stepped runs), everything is written at once. A
    write error or a disk under `min_free_bytes` asks the loop to stop (`stop(reason)`);
    `finish(message)` after the run writes the last event, flushes and keeps the first
    write error in `error` (nothing raises into the loop).
    """

    def __init__(
        self,
        writer: SessionWriter,
        clock: Clock,
        stop: Callable[[str], None],
        config: RecorderConfig,
        jpeg_quality: int | None = None,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.stop = stop
        self.config = config
        self.jpeg_quality = int(jpeg_quality or config.jpeg_quality or writer.jpeg_quality)
        self.predictions = "predictions" in writer.counts
        self.streams = tuple(writer.streams)  # every stream the session holds
        self.error: SessionWriteError | None = None
        self.frames_dropped = 0  # new frames not written because the encoder/writer lagged
        self.rows_dropped = 0  # rows not queued (the writer lags)
        self.max_frames_queued = 0  # high-water mark of encoded frames waiting for the writer
        self.disk_full = False
        self._sink: SessionSink | None = None
        self._frame_q: queue.Queue = queue.Queue(maxsize=config.frame_queue_size)
        self._encoder: threading.Thread | None = None
        self._lock = threading.Lock()
        self._frames_queued = 0
        self._frame_index = 0  # of the next frame written (predictions refer to it)
        self._last_disk_check_ns: int | None = None
        self._dropped_noted = 0
        self._next_dropped_note = 0.0
        self._started_wall = time.monotonic()
        self._status_prev: tuple[float, dict[str, int]] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, threaded: bool, description: str | None = None) -> None:
        """Open the sink (and the encoder thread); write "recording_started" with
        `description` when given."""
        cfg = self.config
        self._started_wall = time.monotonic()
        if threaded:
            self._sink = SessionSink(
                self.writer,
                max_queued=cfg.write_queue_rows + cfg.write_queue_frames,
                flush_interval_s=cfg.flush_interval_s,
                on_written=self._on_written,
                periodic=self._writer_periodic,
            )
            self._next_dropped_note = time.monotonic() + cfg.flush_interval_s
            self._encoder = threading.Thread(target=self._encoder_loop, name="rec-encode")
            self._encoder.daemon = True
            self._encoder.start()
        else:
            self._sink = SessionSink(
                self.writer, threaded=False, flush_interval_s=cfg.flush_interval_s
            )
        if description is not None:
            self.on_row(event(self.clock.now_ns(), "recording_started", description))
        self._check_disk(self.on_row)

    def finish(self, message: str | None = None) -> None:
        """Write "recording_stopped" with `message` when given, drain the queues, flush."""
        if message is not None:
            self.on_row(event(self.clock.now_ns(), "recording_stopped", message))
        sink = self._sink
        if sink is None:
            return
        if self._encoder is not None:
            self._put_stop()
            self._encoder.join(timeout=5.0)
        sink.close(raise_error=False)  # writes what is queued
        self.error = self.error or sink.error

    # -- the observer ------------------------------------------------------------------

    def on_row(self, row: Record) -> None:
        sink = self._sink
        if sink is None or self.error is not None:
            return
        if sink.error is not None:  # threaded: the sink's thread met it
            self._failed(sink.error)
            return
        try:
            if not sink.emit(row):
                self.rows_dropped += 1
        except SessionWriteError as e:  # unthreaded: written now
            self._failed(e)
            return
        if self._encoder is None:
            self._stepped_upkeep()

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray | None) -> None:
        if self._sink is None or self.error is not None:
            return
        ready_ns = self.clock.now_ns()  # when the prediction was ready
        if self._encoder is None:
            try:
                self._write_frame(t_ns, image_bgr, prob, ready_ns)
            except SessionWriteError as e:
                self._failed(e)
                return
            self._stepped_upkeep()
            return
        try:
            self._frame_q.put_nowait((t_ns, image_bgr, prob, ready_ns))
        except queue.Full:
            self._count_dropped()

    def status(self) -> str:
        """Elapsed, rate per stream since the last call, drops, file size."""
        now = time.monotonic()
        counts = self.writer.counts
        prev, self._status_prev = self._status_prev, (now, counts)
        elapsed = now - self._started_wall
        parts = [f"rec {int(elapsed // 60):02d}:{elapsed % 60:04.1f}"]
        for stream, short in {"camera": "cam", "proximity": "prox", "wheels": "wheels"}.items():
            rate = 0.0  # no interval yet
            if prev is not None and now > prev[0]:
                rate = (counts.get(stream, 0) - prev[1].get(stream, 0)) / (now - prev[0])
            parts.append(f"{short} {rate:5.1f} Hz")
        parts.append(f"dropped {self.frames_dropped}")
        parts.append(f"{self.writer.size_bytes / 1e6:.1f} MB")
        return "  ".join(parts)

    # -- frames ------------------------------------------------------------------------

    def _encode(self, t_ns: int, image: np.ndarray) -> Record:
        if self.writer.frame_format != "jpeg":
            return Record.of("camera", t_ns, image=image)
        import cv2

        ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise SessionWriteError("JPEG encoding failed")
        return Record.of("camera", t_ns, jpeg=enc.tobytes())

    def _write_frame(
        self, t_ns: int, image: np.ndarray, prob: np.ndarray | None, ready_ns: int
    ) -> bool:
        """Encode and hand on one frame and its prediction; False when the sink dropped it."""
        assert self._sink is not None
        if not self._sink.emit(self._encode(t_ns, image)):
            return False
        if self.predictions and prob is not None:
            row = Record.of(
                "predictions", max(ready_ns, t_ns), frame_index=self._frame_index, prob=prob
            )
            self._sink.emit(row)
        self._frame_index += 1
        return True

    def _encoder_loop(self) -> None:
        slots = self.config.write_queue_frames
        while True:
            item = self._frame_q.get()
            if item is _STOP:
                return
            with self._lock:
                full = self._frames_queued >= slots
                if not full:
                    self._frames_queued += 1
                    self.max_frames_queued = max(self.max_frames_queued, self._frames_queued)
            if full:  # the writer lags: drop before spending CPU on encoding
                self._count_dropped()
                continue
            try:
                queued = self._write_frame(*item)
            except SessionWriteError:
                queued = False
            if not queued:
                self._count_dropped()
                with self._lock:
                    self._frames_queued -= 1

    def _count_dropped(self) -> None:
        with self._lock:
            self.frames_dropped += 1

    def _put_stop(self) -> None:
        # The encoder may be blocked on nothing but the queue: make room rather than wait.
        while True:
            try:
                self._frame_q.put(_STOP, timeout=0.1)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._frame_q.get_nowait()

    def _on_written(self, row: Record) -> None:
        # the sink took an encoded frame off its queue: a slot for the encoder
        if row.stream == "camera":
            with self._lock:
                self._frames_queued -= 1

    # -- upkeep: flushes, disk, failures ----------------------------------------------

    def _writer_periodic(self) -> None:
        """In the sink's thread: the disk check, and a note of frames dropped lately."""
        assert self._sink is not None
        self._check_disk(self._sink.write_now)  # before every flush: statvfs is cheap
        if time.monotonic() >= self._next_dropped_note:
            self._next_dropped_note = time.monotonic() + self.config.flush_interval_s
            dropped = self.frames_dropped
            if dropped > self._dropped_noted:
                message = f"{dropped - self._dropped_noted} frames dropped (writer lagging)"
                self._sink.write_now(event(self.clock.now_ns(), "frames_dropped", message))
                self._dropped_noted = dropped

    def _stepped_upkeep(self) -> None:
        """Unthreaded: flush every flush_interval_s and check the disk every 0.2 s of the
        (simulated) clock."""
        assert self._sink is not None
        now = self.clock.now_ns()
        try:
            self._sink.maybe_flush(now)
            if self._last_disk_check_ns is None or now - self._last_disk_check_ns >= _DISK_CHECK_NS:
                self._last_disk_check_ns = now
                self._check_disk(self._sink.write_now)
        except SessionWriteError as e:
            self._failed(e)

    def _check_disk(self, write: Callable[[Record], object]) -> None:
        """Stop cleanly while the disk still has `min_free_bytes` left after what the
        writer holds (SessionWriter.headroom_bytes, the writer's own guard): a write that
        fails half-way can leave an HDF5 file that no longer opens, so never get there."""
        if self.disk_full:
            return
        free = self.writer.headroom_bytes()
        reserve = self.config.min_free_bytes
        if free is not None and free < reserve:
            self.disk_full = True
            message = (
                f"{max(free, 0) / 1e6:.1f} MB left (reserve {reserve / 1e6:.1f} MB): "
                "recording stopped"
            )
            write(event(self.clock.now_ns(), "disk_full", message))
            self.stop(f"disk full: {message}")

    def _failed(self, error: SessionWriteError) -> None:
        if self.error is None:
            self.error = error
            self.stop(f"write failed: {error}")


class Recorder(DriveLoop):
    """Records one session from a robot and a camera into a `SessionWriter`.

    `robot` or `camera` may be None (camera-only or robot-only sessions). The caller
    owns the devices and the writer (opens and closes them); the recorder flushes the
    writer and, when it drives (`controller`), stops the motors.
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
        cfg = config or RecorderConfig()
        clock = clock or WallClock()
        self.config = cfg
        self.writer = writer
        self.controller = controller
        self.status_stream = status_stream if status_stream is not None else sys.stderr
        self.camera_fps = float(cfg.camera_fps or writer.camera.fps)
        self.recording = SessionRecording(writer, clock, self.request_stop, cfg)
        odometry = OdometryIntegrator(writer.robot, max_gap_ns=cfg.max_odometry_gap_ns)
        sensors = None if robot is None else RobotSampler(robot, odometry, clock, truth=truth)
        policy = None
        if controller is not None:
            policy = ProximityPolicy(
                lambda prox, t_ns, pose: controller.command(prox, t_ns), "wheels"
            )
        super().__init__(
            clock,
            robot=robot,
            sensors=sensors,
            camera=camera,
            policy=policy,
            # a controller that reads the robot's own rows (the contact drive) is also an
            # observer: it gets each step's rows before it is asked for the next command
            observers=[self.recording, *([controller] if hasattr(controller, "on_row") else [])],
            config=LoopConfig(
                sensor_hz=cfg.wheels_hz,
                prox_hz=cfg.prox_hz,
                target_refresh_s=cfg.target_refresh_s,
                frame_poll_s=min(max(1.0 / (3.0 * self.camera_fps), 0.002), 0.02),
                frame_poll_hz=self.camera_fps,
                camera_stall_s=cfg.camera_stall_s,
                robot_retry_s=cfg.robot_retry_s,
                status_interval_s=cfg.status_interval_s,
                final_read=False,  # rows on the schedule only: `sim record` is reproducible
            ),
            on_status=self._print_status if self._status_enabled() else None,
            frame_truth=truth is not None,
        )

    @property
    def driving(self) -> bool:
        """True when the recorder commands the motors."""
        return self.controller is not None

    @property
    def stats(self) -> RecordingStats:
        """Counters so far, with current counts and file size."""
        rec, result = self.recording, self.result
        sensors = self.sensors
        sink_order = rec._sink.dropped_order if rec._sink is not None else 0
        return RecordingStats(
            elapsed_s=result.duration_s,
            counts=self.writer.counts,
            frames_dropped=rec.frames_dropped,
            frames_missed=result.frames_missed,
            rows_dropped=rec.rows_dropped + sink_order,
            robot_read_failures=sensors.read_failures if sensors is not None else 0,
            robot_gaps=sensors.gaps if sensors is not None else 0,
            camera_failed=result.camera_failed,
            disk_full=rec.disk_full,
            max_frames_queued=rec.max_frames_queued,
            size_bytes=self.writer.size_bytes,
            stop_reason=result.stop_reason,
        )

    def run(self, duration_s: float | None = None) -> RecordingStats:
        """Record on the wall clock until `duration_s`, request_stop() or a write error.

        Returns the stats; raises SessionWriteError (disk full...) after stopping the
        threads and the motors, with everything flushed before readable; a part that
        raised is a RecorderError. KeyboardInterrupt also stops cleanly (re-raised).
        """
        self.recording.start(threaded=True, description=self._description("threaded"))
        try:
            super().run(duration_s)
        except LoopCrashed as e:
            raise RecorderError(f"recording stopped: {e}") from e.__cause__
        finally:
            self._finish_recording()
        return self.stats

    def run_stepped(self, duration_s: float, command_latency_s: float = 0.0) -> RecordingStats:
        """Deterministic single-threaded recording on a clock that steps the simulation.

        Schedule from the start time t0 (integer ns, no drift): robot poll (wheels,
        odometry, truth, control) every 1/wheels_hz, proximity every 1/prox_hz (on the
        same poll when both are due), camera every 1/camera_fps. Ends after
        `duration_s` of clock time or request_stop(). Raises SessionWriteError (disk
        full) after stopping the motors.
        """
        self.recording.start(threaded=False, description=self._description("stepped"))
        try:
            super().run_stepped(duration_s, command_latency_s)
        finally:
            self._finish_recording()
        return self.stats

    def _finish_recording(self) -> None:
        """The last event and flush; the first write error raised (after the motors)."""
        s = self.stats
        self.recording.finish(
            f"{s.stop_reason or 'interrupted'}; frames dropped {s.frames_dropped}, "
            f"missed {s.frames_missed}, robot gaps {s.robot_gaps}"
        )
        if self.on_status is not None:
            self._print_status(self.status_line())
            print(file=self.status_stream, flush=True)
        if self.recording.error is not None:
            raise self.recording.error

    def _description(self, mode: str) -> str:
        parts = [mode]
        if self.robot is not None:
            parts.append(f"prox {self.config.prox_hz:g} Hz, wheels {self.config.wheels_hz:g} Hz")
            parts.append("driving" if self.driving else "not driving")
        if self.camera is not None:
            parts.append(f"camera ~{self.camera_fps:g} fps")
        return ", ".join(parts)

    def _status_enabled(self) -> bool:
        if self.config.status is not None:
            return self.config.status
        isatty = getattr(self.status_stream, "isatty", None)
        return bool(isatty and isatty())

    def _print_status(self, line: str) -> None:
        robot_gaps = self.sensors.gaps if self.sensors is not None else 0
        if robot_gaps:
            down = self.sensors is not None and self.sensors.in_gap
            line += f"  robot gaps {robot_gaps}" + (" (down)" if down else "")
        if self.result.camera_failed:
            line += "  camera FAILED"
        print("\r" + line + "\x1b[K", end="", file=self.status_stream, flush=True)
