"""Replay a recorded session: top-down trajectory, camera frame, label and predicted grids.

`render_replay` writes a video (one output frame per camera frame, at the recorded
rate times `speed`): `.mp4` in H.264 (PyAV's libx264, yuv420p, fast start), which
browsers and GitHub play; any other suffix as Motion JPEG through OpenCV. `SessionCamera` and `SessionRobot` play a session back through
the device protocols on a replay clock so that the live loop runs on recorded data.
Damaged frames (robot_ssl.io.session.IntactFrames) are skipped and counted, never
drawn or fed to the loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robot_ssl.core.errors import RobotSSLError
from robot_ssl.core.geometry import compose, interpolate_poses, inverse
from robot_ssl.core.outputs import atomic_output
from robot_ssl.io.session import IntactFrames, SessionReader
from robot_ssl.live.viz import OBSTACLE, TopDownView, draw_grid_panel, put_text

DEFAULT_DISTANCES_M = np.round(np.arange(0.0, 0.305, 0.01), 2)
DEFAULT_SENSORS = np.arange(5)


class ReplayError(RobotSSLError):
    """A replay cannot be produced (no frames, unwritable video)."""


@dataclass(frozen=True)
class ReplayGrids:
    """What to overlay per frame: labels (N, S, D) and/or probabilities (N, S, D), by frame."""

    sensor_indices: np.ndarray
    distances_m: np.ndarray
    labels: dict[int, np.ndarray]
    prob: dict[int, np.ndarray]


def prox_hits_m(
    reader: SessionReader, odometry: tuple[np.ndarray, np.ndarray], max_range_m: float = 0.1
) -> np.ndarray:
    """(x, y) of proximity detections, placed from the given odometry poses."""
    t, prox = reader.proximity()
    ot, opose = odometry
    if len(t) == 0 or len(ot) < 2:
        return np.zeros((0, 2))
    pose = interpolate_poses(ot, opose, t, max_gap_ns=500_000_000)
    sensors = np.array(reader.robot.prox_poses())
    hits = []
    for s in range(min(prox.shape[1], len(sensors))):
        on = (prox[:, s] > 0) & np.isfinite(pose[:, 0])
        if not on.any():
            continue
        sx, sy, sth = sensors[s]
        p = pose[on]
        r = max_range_m * (1.0 - np.clip(prox[on, s] / 4500.0, 0, 1))
        c, si = np.cos(p[:, 2]), np.sin(p[:, 2])
        hx = p[:, 0] + c * sx - si * sy + r * np.cos(p[:, 2] + sth)
        hy = p[:, 1] + si * sx + c * sy + r * np.sin(p[:, 2] + sth)
        hits.append(np.column_stack([hx, hy]))
    return np.concatenate(hits) if hits else np.zeros((0, 2))


def iter_replay_frames(
    reader: SessionReader,
    grids: ReplayGrids | None,
    panel_px: int = 320,
    intact: IntactFrames | None = None,
) -> Iterator[np.ndarray]:
    """Composite BGR frames: camera | top-down map | label grid | predicted grid; damaged
    frames are skipped (counted in `intact`)."""
    for _, image in _replay_frames(reader, grids, panel_px, intact):
        yield image


def _replay_frames(
    reader: SessionReader,
    grids: ReplayGrids | None,
    panel_px: int = 320,
    intact: IntactFrames | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, composite) of every intact frame (see iter_replay_frames)."""
    intact = intact or IntactFrames(reader)
    ct = reader.camera_t_ns
    ot, opose = reader.odometry()
    truth = reader.truth()
    paths = [opose]
    true_at = None
    if truth is not None and len(truth[0]) > 1:
        tt, tpose, _ = truth
        true_at = interpolate_poses(tt, tpose, ct)
        if len(ot):
            # odometry starts at the origin: draw it from the true pose at its first sample
            start = interpolate_poses(tt, tpose, ot[:1])[0]
            if np.all(np.isfinite(start)):
                opose = compose(compose(start, inverse(opose[0])), opose)
        paths = [opose, tpose]
    odo_at = interpolate_poses(ot, opose, ct) if len(ot) > 1 else np.full((len(ct), 3), np.nan)
    view = TopDownView(panel_px, paths)
    if true_at is not None:
        view.draw_path(truth[1], (160, 160, 160))
    view.draw_path(opose, (200, 120, 0))
    view.draw_points(prox_hits_m(reader, (ot, opose)), OBSTACLE)
    s_idx = grids.sensor_indices if grids else DEFAULT_SENSORS
    d_m = grids.distances_m if grids else DEFAULT_DISTANCES_M
    for i in range(reader.num_frames):
        cam = intact.get(i)
        if cam is None:  # a damaged frame: skipped, counted in `intact`
            continue
        h = panel_px
        w = round(cam.shape[1] * h / cam.shape[0])
        cam = cv2.resize(cam, (w, h), interpolation=cv2.INTER_NEAREST)
        # one line each: the outlined texts must not run into each other
        put_text(cam, f"frame {i}", (6, 18))
        put_text(cam, f"t = {(ct[i] - ct[0]) / 1e9:.2f} s", (6, 38))
        poses = {"odom": (odo_at[i], (200, 120, 0))}
        if true_at is not None:
            poses["true"] = (true_at[i], (90, 90, 90))
        panels = [cam, view.frame(poses)]
        if grids is not None:
            lab = grids.labels.get(i)
            prob = grids.prob.get(i)
            if grids.labels:
                panels.append(
                    draw_grid_panel(h, reader.robot, s_idx, d_m, labels=lab, title="labels")
                )
            if grids.prob:
                panels.append(
                    draw_grid_panel(
                        h, reader.robot, s_idx, d_m, labels=lab, prob=prob, title="predicted"
                    )
                )
        yield i, np.concatenate(panels, axis=1)


class VideoSink:
    """BGR frames into a video file: H.264 MP4 through PyAV, or Motion JPEG through OpenCV.

    `path` is written as given (callers pass a temporary name and rename it when
    done); `container` names the format ("mp4" or "avi"), independent of the name.
    Frames of odd width or height are padded by one pixel (yuv420p needs even sizes).
    """

    def __init__(self, path: Path, container: str, fps: float, size: tuple[int, int]) -> None:
        self.width, self.height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self._count = 0
        self._cv = None
        self._av = None
        if container == "mp4":
            from fractions import Fraction

            import av

            rate = Fraction(fps).limit_denominator(1001)
            self._av = av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"})
            self._stream = self._av.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = self.width, self.height
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "23", "preset": "veryfast"}
            self._stream.codec_context.time_base = 1 / rate
        else:
            fourcc = cv2.VideoWriter_fourcc(*"MJPG")
            self._cv = cv2.VideoWriter(str(path), fourcc, fps, (self.width, self.height))
            if not self._cv.isOpened():
                raise ReplayError(f"cannot open a video writer for {path}")

    def write(self, img: np.ndarray) -> None:
        pad_y, pad_x = self.height - img.shape[0], self.width - img.shape[1]
        if pad_x or pad_y:
            img = cv2.copyMakeBorder(img, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        if self._cv is not None:
            self._cv.write(img)
            return
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        frame.pts = self._count
        self._count += 1
        for packet in self._stream.encode(frame):
            self._av.mux(packet)

    def close(self) -> None:
        if self._cv is not None:
            self._cv.release()
        if self._av is not None:
            try:
                for packet in self._stream.encode():  # flush the encoder's delayed frames
                    self._av.mux(packet)
            finally:
                self._av.close()
                self._av = None


def render_replay(
    reader: SessionReader,
    out_path: str | Path,
    grids: ReplayGrids | None = None,
    speed: float = 1.0,
    max_frames: int | None = None,
    progress: Callable[[int], None] | None = None,
    intact: IntactFrames | None = None,
) -> int:
    """Write the replay video; returns the number of frames written. Damaged frames are
    skipped and counted in `intact`; a session with none intact is refused."""
    if reader.num_frames == 0:
        raise ReplayError(f"{reader.path}: session has no camera frames")
    ct = reader.camera_t_ns
    fps = (len(ct) - 1) / ((ct[-1] - ct[0]) / 1e9) if len(ct) > 1 and ct[-1] > ct[0] else 10.0
    fps *= speed
    out_path = Path(out_path)
    n = 0
    intact = intact or IntactFrames(reader)
    # the folder is created; the video appears only when complete (nothing is left on error)
    with atomic_output(out_path) as tmp:
        writer = None
        container = "mp4" if out_path.suffix.lower() == ".mp4" else "avi"
        try:
            for img in iter_replay_frames(reader, grids, intact=intact):
                if writer is None:
                    writer = VideoSink(tmp, container, fps, (img.shape[1], img.shape[0]))
                writer.write(img)
                n += 1
                if progress is not None:
                    progress(1)
                if max_frames is not None and n >= max_frames:
                    break
        finally:
            if writer is not None:
                writer.close()
        if n == 0:
            intact.report()  # every frame damaged: refused in one line
            raise ReplayError(f"{out_path}: no frames to write")
    return n


def show_replay(
    reader: SessionReader,
    grids: ReplayGrids | None = None,
    speed: float = 1.0,
    max_frames: int | None = None,
    intact: IntactFrames | None = None,
) -> int:
    """Show the replay in a window at recorded timing (q or Esc quits); returns frames shown
    (damaged frames skipped, counted in `intact`)."""
    ct = reader.camera_t_ns
    t0 = time.monotonic()
    n = 0
    try:
        for i, img in _replay_frames(reader, grids, intact=intact):
            cv2.imshow("robot-ssl replay", img)
            due = t0 + (int(ct[i]) - int(ct[0])) / 1e9 / speed
            key = cv2.waitKey(max(1, int((due - time.monotonic()) * 1000))) & 0xFF
            n += 1
            if key in (ord("q"), 27) or (max_frames is not None and n >= max_frames):
                break
    except cv2.error as e:
        raise ReplayError(
            "no window available (OpenCV without GUI support or no display); use --video"
        ) from e
    finally:
        with contextlib.suppress(cv2.error):
            cv2.destroyAllWindows()
    return n


# -- playing a session back through the device protocols -----------------------------------


class ReplayClock:
    """Session time that advances with wall time times `speed`, from the session's start."""

    def __init__(self, start_ns: int, speed: float = 1.0) -> None:
        self.start_ns = start_ns
        self.speed = speed
        self._wall0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return self.start_ns + int((time.monotonic_ns() - self._wall0) * self.speed)

    def sleep_until_ns(self, t_ns: int) -> None:
        dt = (t_ns - self.now_ns()) / self.speed / 1e9
        if dt > 0:
            time.sleep(dt)


@dataclass(frozen=True)
class _Frame:
    t_ns: int
    image: np.ndarray
    index: int


@dataclass(frozen=True)
class _Reading:
    t_ns: int
    proximity: np.ndarray
    wheel_speed: np.ndarray


@dataclass(frozen=True)
class _Health:
    failed: bool = False
    error: str = ""


class SessionCamera:
    """Camera protocol over a session: the newest recorded frame at the clock's time
    (None while that frame is damaged: skipped, counted in `intact`)."""

    def __init__(
        self, reader: SessionReader, clock: ReplayClock, intact: IntactFrames | None = None
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.t_ns = reader.camera_t_ns
        self.intact = intact or IntactFrames(reader)

    def read(self) -> _Frame | None:
        i = int(np.searchsorted(self.t_ns, self.clock.now_ns(), side="right")) - 1
        if i < 0:
            return None
        image = self.intact.get(i)
        return None if image is None else _Frame(int(self.t_ns[i]), image, i)

    def health(self) -> _Health:
        """A session's frames never fail: the replay ends with the session."""
        return _Health()

    def close(self) -> None:
        pass


class SessionRobot:
    """Robot protocol over a session: recorded readings; wheel commands are kept, not acted on."""

    def __init__(self, reader: SessionReader, clock: ReplayClock) -> None:
        self.clock = clock
        self.pt, self.prox = reader.proximity()
        self.num_prox = reader.robot.num_prox  # the spec's sensors, of any kind and number
        self.wt, self.speed, _ = reader.wheels()
        self.targets: list[tuple[int, int]] = []

    def read(self) -> _Reading:
        now = self.clock.now_ns()
        ip = max(int(np.searchsorted(self.pt, now, side="right")) - 1, 0)
        iw = max(int(np.searchsorted(self.wt, now, side="right")) - 1, 0)
        prox = self.prox[ip] if len(self.prox) else np.zeros(self.num_prox, np.int16)
        speed = self.speed[iw] if len(self.speed) else np.zeros(2, np.int16)
        return _Reading(now, prox, speed)

    def set_wheel_targets(self, left: int, right: int) -> None:
        self.targets.append((int(left), int(right)))

    def stop(self) -> None:
        self.set_wheel_targets(0, 0)

    def close(self) -> None:
        self.stop()


class _FrameLimit:
    """Loop observer that asks the loop to stop once it has processed `max_frames` frames
    (the loop's thread calls on_frame right after each frame, so it stops at exactly that)."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.frames = 0
        self.loop = None  # set once the loop exists

    streams: tuple[str, ...] = ()  # frames only: no session stream

    def on_row(self, row: object) -> None:
        pass

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray) -> None:
        self.frames += 1
        if self.frames >= self.max_frames and self.loop is not None:
            self.loop.request_stop(f"{self.max_frames} frames processed")

    def status(self) -> str:
        return ""


def replay_live(
    reader: SessionReader,
    predictor,
    speed: float = 1.0,
    drive: str = "monitor",
    observers=(),
    on_status=None,
    max_frames: int | None = None,
    intact: IntactFrames | None = None,
):
    """Run the live loop (threaded, as on the robot) on a session's frames at recorded timing.

    Returns the loop's LiveResult; wheel commands go to a SessionRobot, never to hardware.
    `observers` (started and closed by the caller: learning, a live view) watch it. The
    loop stops after `max_frames` processed frames when given; damaged frames are
    skipped and counted in `intact`.
    """
    from robot_ssl.live.loop import LiveConfig, LiveLoop

    if reader.num_frames == 0:
        raise ReplayError(f"{reader.path}: session has no camera frames")
    ct = reader.camera_t_ns
    clock = ReplayClock(int(ct[0]), speed)
    robot = SessionRobot(reader, clock)
    camera = SessionCamera(reader, clock, intact)
    limit = _FrameLimit(max_frames) if max_frames is not None else None
    cfg = predictor.config
    distances = np.asarray(cfg.distances_m) if cfg.distances_m is not None else DEFAULT_DISTANCES_M
    loop = LiveLoop(
        robot,
        camera,
        predictor,
        distances,
        LiveConfig(drive=drive),
        clock=clock,
        robot_spec=reader.robot,
        observers=[*observers, limit] if limit is not None else observers,
        on_status=on_status,
    )
    if limit is not None:
        limit.loop = loop
    duration_s = (int(ct[-1]) - int(ct[0])) / 1e9 / speed + 0.05
    return loop.run(duration_s)
