"""A session as a Rerun recording (`replay --rerun FILE.rrd`): what the robot saw and believed.

Entities, on the timelines `session_time` (seconds from the first frame) and `frame`:

- `camera/image`: each camera frame (its JPEG, as recorded); `camera/image/cells` the
  grid cells where they lie on the floor in that image (pinhole projection with the
  session's camera spec), coloured like `map/cells`;
- `camera/labels`, `camera/predicted`: the robot-centric grid panels of the replay
  video (labels; predicted probabilities with the labels as rings);
- `map/odometry`, `map/truth` (simulated sessions): the trajectories, top-down;
  `map/robot` the pose at each frame; `map/cells` the grid cells on the floor,
  coloured by predicted probability (or by label without a model);
- `ir/<sensor>`: each proximity reading, one series per spec sensor of any kind and
  number (IR raw, range mm, contact 0/1: docs/robots.md); `wheels/left`,
  `wheels/right`: measured speeds;
- `latency/prediction_ms` (sessions recorded by `run`): frame to prediction ready.

Rerun (rerun-sdk, the `view` extra) is imported only here; the file appears only
when complete.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_ssl.core.geometry import interpolate_poses
from robot_ssl.core.outputs import OutputError
from robot_ssl.core.spec import CameraSpec
from robot_ssl.io.session import SessionReader
from robot_ssl.io.streams import Record
from robot_ssl.live.replay import ReplayError, ReplayGrids
from robot_ssl.live.view_io import (
    DEFAULT_GRPC_PORT,
    DEFAULT_WEB_PORT,
    RrdFile,
    ViewError,
    check_port_free,
    grpc_url,
    reachable_host,
    viewer_url,
)
from robot_ssl.live.viz import FREE, OBSTACLE, cell_positions_m, draw_grid_panel
from robot_ssl.runtime.priority import normal

__all__ = ["RerunLiveView", "write_rerun"]

APP_ID = "robot-ssl"
SERVER_MEMORY = "256MiB"  # the live view's history kept for viewers (about 3 min)


def _rerun() -> Any:
    try:
        import rerun as rr
    except ImportError:
        raise ReplayError(
            "--rerun needs the Rerun SDK: pip install 'robot-ssl[view]' (rerun-sdk)"
        ) from None
    return rr


def _blueprint_module() -> Any:
    import rerun.blueprint as rrb

    return rrb


def view_blueprint(
    grids: Sequence[str] = ("predicted",),
    series: Sequence[str] = ("ir", "latency"),
    history_s: float | None = None,
) -> Any:
    """The layout a person beside the robot reads, the same every run (instead of Rerun's
    guessed grid, which changes from run to run, hides the map and gives each IR sensor
    a panel of its own):

        +------------------------------+--------------------+
        |                              | map (odometry,     |
        |  camera/image with the grid  |  robot, cells)     |
        |  cells drawn on the floor    +--------------------+
        |                              | camera/<grids> tabs |
        +------------------------------+--------------------+
        | <series> tabs: all IR sensors in one plot, latency, ... |
        +----------------------------------------------------------+

    `grids` are the robot-centric grid panels under `camera/` (tabs, the first shown);
    `series` the roots of the time-series tabs (one plot each, every entity below it a
    line); `history_s` the seconds of history the plots show (None: all). The side
    panels start collapsed so that the views get the page."""
    rrb = _blueprint_module()
    time_ranges = None
    if history_s is not None:
        time_ranges = rrb.VisibleTimeRange(
            "session_time",
            start=rrb.TimeRangeBoundary.cursor_relative(seconds=-history_s),
            end=rrb.TimeRangeBoundary.cursor_relative(),
        )
    camera = rrb.Spatial2DView(origin="camera/image", name="camera")
    # from the root, so that the transform logged at "map" (+y up) applies
    world = rrb.Spatial2DView(origin="/", contents=["+ /map/**"], name="map")
    panels = [rrb.Spatial2DView(origin=f"camera/{g}", name=f"{g} grid") for g in grids]
    right = rrb.Vertical(world, rrb.Tabs(*panels)) if panels else world
    plots = [rrb.TimeSeriesView(origin=s, name=s, time_ranges=time_ranges) for s in series]
    return rrb.Blueprint(
        rrb.Vertical(
            rrb.Horizontal(camera, right, column_shares=[3, 2]),
            rrb.Tabs(*plots),
            row_shares=[4, 1],
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="collapsed"),
        auto_views=False,
    )


def _log_map_frame(rr: Any, rec: Any) -> None:
    """The map's axes as the robot's odometry frame is drawn on paper: +x right, +y up."""
    rec.log("map", rr.Transform3D(scale=[1.0, -1.0, 1.0]), static=True)


def _rgb(bgr: tuple[int, int, int]) -> np.ndarray:
    return np.array(bgr[::-1], np.float64)


def _cell_colours(prob: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray:
    """(S*D, 3) uint8 RGB: probability blends free to obstacle; labels without a model."""
    free, obstacle = _rgb(FREE), _rgb(OBSTACLE)
    if prob is not None:
        p = np.clip(np.asarray(prob, np.float64).reshape(-1, 1), 0, 1)
        return (free * (1 - p) + obstacle * p).astype(np.uint8)
    lab = np.asarray(labels).reshape(-1)
    out = np.full((lab.size, 3), 90, np.uint8)
    out[lab == 0], out[lab == 1] = free.astype(np.uint8), obstacle.astype(np.uint8)
    return out


def _image_cells(
    camera: CameraSpec, cells_m: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (K, 2) in an image of `shape` of the grid cells (robot frame, m)
    that the camera sees, and the flat indices of those cells."""
    uv = camera.floor_pixels(cells_m.reshape(-1, 2))
    uv *= (shape[1] / camera.width, shape[0] / camera.height)  # the frame as delivered
    # NaN (behind the camera) compares False, so those cells drop out too
    inside = (uv >= -0.5).all(axis=1) & (uv < (shape[1] - 0.5, shape[0] - 0.5)).all(axis=1)
    keep = np.flatnonzero(inside)
    return uv[keep], keep


def _cells_on_map(cells_m: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(S*D, 2) positions in the odometry frame of the grid cells (robot frame, m) at `pose`."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return cells_m.reshape(-1, 2) @ np.array([[c, s], [-s, c]]) + pose[:2]


def _image_points(rr: Any, uv: np.ndarray, colours: np.ndarray, shape: tuple[int, ...]) -> Any:
    return rr.Points2D(uv, colors=colours, radii=max(1.0, shape[1] / 160))


def write_rerun(
    reader: SessionReader,
    out_path: str | Path,
    grids: ReplayGrids | None = None,
    max_frames: int | None = None,
    panel_px: int = 240,
) -> dict[str, int]:
    """Write the session (and `grids`) to `out_path` as a Rerun recording; rows per entity."""
    rr = _rerun()
    if reader.num_frames == 0:
        raise ReplayError(f"{reader.path}: session has no camera frames")
    out_path = Path(out_path)
    ct = reader.camera_t_ns
    t0 = int(ct[0])
    n = reader.num_frames if max_frames is None else min(max_frames, reader.num_frames)
    odo_t, odo_pose = reader.odometry()
    robot = reader.robot
    counts: dict[str, int] = {}

    def seconds(t_ns: np.ndarray) -> np.ndarray:
        return (np.asarray(t_ns, np.int64) - t0) / 1e9

    with RrdFile(out_path) as rrd:  # a full disk: OutputError, no file
        rec = rr.RecordingStream(APP_ID, recording_id=f"{reader.path.stem}")
        rrd.attach(rr, rec)
        try:
            rec.send_blueprint(
                view_blueprint(
                    grids=("predicted", "labels") if grids is not None else (),
                    series=("ir", "wheels", "latency"),
                )
            )
            _log_map_frame(rr, rec)
            if len(odo_t) > 1:
                rec.log("map/odometry", rr.LineStrips2D([odo_pose[:, :2]]), static=True)
            truth = reader.truth()
            if truth is not None and len(truth[0]) > 1:
                rec.log("map/truth", rr.LineStrips2D([truth[1][:, :2]]), static=True)
            # streams of scalars: one column each
            prox_t, prox = reader.proximity()
            names = [s.name for s in robot.prox_sensors]
            for s in range(min(prox.shape[1], len(names))):
                rec.send_columns(
                    f"ir/{names[s]}",
                    indexes=[rr.TimeColumn("session_time", duration=seconds(prox_t))],
                    columns=rr.Scalars.columns(scalars=prox[:, s].astype(np.float64)),
                )
                counts[f"ir/{names[s]}"] = len(prox_t)
            wheel_t, speed, _ = reader.wheels()
            for k, side in enumerate(("left", "right")):
                rec.send_columns(
                    f"wheels/{side}",
                    indexes=[rr.TimeColumn("session_time", duration=seconds(wheel_t))],
                    columns=rr.Scalars.columns(scalars=speed[:, k].astype(np.float64)),
                )
            if reader.streams.get("predictions"):
                pt, pidx, _ = reader.predictions()
                lat_ms = (pt - ct[np.clip(pidx, 0, len(ct) - 1)]) / 1e6
                rec.send_columns(
                    "latency/prediction_ms",
                    indexes=[rr.TimeColumn("session_time", duration=seconds(pt))],
                    columns=rr.Scalars.columns(scalars=lat_ms.astype(np.float64)),
                )
            # per frame: image, pose, grids
            pose_at = (
                interpolate_poses(odo_t, odo_pose, ct[:n])
                if len(odo_t) > 1
                else np.full((n, 3), np.nan)
            )
            s_idx = grids.sensor_indices if grids is not None else None
            cells = cell_positions_m(robot, s_idx, grids.distances_m) if grids else None
            shape = (reader.camera.height, reader.camera.width)  # frames are stored so
            uv, seen = _image_cells(reader.camera, cells, shape) if grids else (None, None)
            for i in range(n):
                rrd.check()  # the disk is full: stop now, not after encoding the rest
                rec.set_time("session_time", duration=float(seconds(ct[i])))
                rec.set_time("frame", sequence=i)
                rec.log("camera/image", _frame_archetype(rr, reader, i))
                pose = pose_at[i]
                if np.all(np.isfinite(pose)):
                    rec.log("map/robot", rr.Points2D([pose[:2]], radii=0.055))
                if grids is None:
                    continue
                lab, prob = grids.labels.get(i), grids.prob.get(i)
                if lab is not None:
                    panel = draw_grid_panel(
                        panel_px, robot, s_idx, grids.distances_m, labels=lab, title="labels"
                    )
                    rec.log("camera/labels", rr.Image(panel, color_model="BGR"))
                if prob is not None:
                    panel = draw_grid_panel(
                        panel_px, robot, s_idx, grids.distances_m, labels=lab, prob=prob,
                        title="predicted",
                    )  # fmt: skip
                    rec.log("camera/predicted", rr.Image(panel, color_model="BGR"))
                if prob is None and lab is None:
                    continue
                colours = _cell_colours(prob, lab)
                rec.log("camera/image/cells", _image_points(rr, uv, colours[seen], shape))
                if np.all(np.isfinite(pose)):
                    xy = _cells_on_map(cells, pose)
                    rec.log("map/cells", rr.Points2D(xy, colors=colours, radii=0.004))
        finally:
            rec.flush()
            rec.disconnect()
    counts["camera/image"] = n
    return counts


def _frame_archetype(rr: Any, reader: SessionReader, i: int) -> Any:
    """The recorded JPEG as is (no re-encoding), or the raw frame."""
    if getattr(reader, "frame_format", "jpeg") == "jpeg":
        return rr.EncodedImage(contents=bytes(reader.jpeg(i)), media_type="image/jpeg")
    return rr.Image(reader.frame(i), color_model="BGR")


def _grid_points(rr: Any, cells_m: np.ndarray, colours: np.ndarray) -> Any:
    """The robot-centric grid as coloured points, the robot at the origin facing up (a 2D
    view draws +y down: the robot's x, ahead, is -y there and its y, left, is -x). A few
    hundred bytes a frame, drawn sharp at any size, where a drawn panel is a 170 kB image."""
    xy = cells_m.reshape(-1, 2)
    return rr.Points2D(np.stack([-xy[:, 1], -xy[:, 0]], axis=1), colors=colours, radii=0.006)


def _body_outline(rr: Any, radius_m: float) -> Any:
    """The robot's outline around the origin of a grid view."""
    a = np.linspace(0, 2 * np.pi, 49)
    return rr.LineStrips2D([np.stack([radius_m * np.cos(a), radius_m * np.sin(a)], axis=1)])


@dataclass(frozen=True)
class _Frame:
    """A frame for the view, with its prediction (None: no detector) and the newest
    odometry pose when it came (None: none yet)."""

    t_ns: int
    image: np.ndarray
    prob: np.ndarray | None
    pose: np.ndarray | None = None


@dataclass(frozen=True)
class _Labels:
    """The newest online labels for the view, and how many came."""

    t_ns: int
    labels: np.ndarray
    count: int


@dataclass(frozen=True)
class _State:
    """Once a second: the loop's capture-to-command latency and the learner's state."""

    e2e_median_ms: float | None = None
    e2e_p99_ms: float | None = None
    loss: float | None = None
    steps: int | None = None


@dataclass(frozen=True)
class _ViewSettings:
    """What the view's process needs to log (picklable: it crosses the process boundary)."""

    robot: Any
    sensor_indices: np.ndarray
    distances_m: np.ndarray
    serve: bool
    web_port: int
    grpc_port: int
    save: str | None
    image_width_px: int
    camera: CameraSpec
    path_step_m: float


class _ViewLogger:
    """The logging half of the live view, in the view's own process: Rerun's recording,
    its sinks (servers, file), the layout, and what each item becomes."""

    def __init__(self, s: _ViewSettings, on_save_error: Callable[[Exception], None]) -> None:
        self.rr = _rerun()
        self.s = s
        self.cells = cell_positions_m(s.robot, s.sensor_indices, s.distances_m)
        self.names = [p.name for p in s.robot.prox_sensors]
        self._image_cells: tuple[tuple[int, ...], np.ndarray, np.ndarray] | None = None
        self._t0: int | None = None
        self._path: list[np.ndarray] = []
        self._pose: np.ndarray | None = None  # the pose of the frame being logged
        self.url: str | None = None
        self.logged = 0
        self._rrd = RrdFile(s.save, on_error=on_save_error) if s.save is not None else None
        try:
            self._start_sinks()
        except BaseException:
            if self._rrd is not None:
                self._rrd.abort()
            raise

    def _start_sinks(self) -> None:
        """The recording; the gRPC server (any origin) and the web viewer when serving; the
        file when saving. The server keeps SERVER_MEMORY of the newest data for viewers
        that connect later, and sends a new viewer the newest first: the page shows the
        robot now, not its history replayed from the start."""
        rr, s, sinks = self.rr, self.s, []
        self.rec = rr.RecordingStream(APP_ID)
        if s.serve:
            check_port_free(s.web_port, "--view PORT")
            check_port_free(s.grpc_port, "--view-grpc-port")
            sinks.append(
                rr.GrpcServerSink(
                    port=s.grpc_port,
                    cors_allow_origin=["*"],
                    server_memory_limit=SERVER_MEMORY,
                    newest_first=True,
                )
            )
        try:
            if self._rrd is not None:
                self._rrd.attach(rr, self.rec, *sinks)
            else:
                self.rec.set_sinks(*sinks)
            if s.serve:
                host = reachable_host()
                rr.serve_web_viewer(
                    web_port=s.web_port,
                    open_browser=False,
                    connect_to=grpc_url(host, s.grpc_port),
                )
                self.url = viewer_url(host, s.web_port, s.grpc_port)
        except RuntimeError as e:  # a port taken since the check, a file Rerun cannot open
            raise ViewError(f"cannot start the live view: {str(e).splitlines()[0]}") from None

    def start(self, learning: bool) -> None:
        """The layout (a labels tab and a learner plot when learning), the static parts."""
        rr = self.rr
        grids = ("predicted", "labels") if learning else ("predicted",)
        blueprint = view_blueprint(
            grids=grids,
            series=("ir", "latency", "learner") if learning else ("ir", "latency"),
            history_s=30.0,
        )
        self.rec.send_blueprint(blueprint)
        _log_map_frame(rr, self.rec)
        self.rec.log("ir", rr.SeriesLines(names=self.names), static=True)
        for grid in grids:
            body = _body_outline(rr, self.s.robot.body_radius_m)
            self.rec.log(f"camera/{grid}/body", body, static=True)

    def close(self, started: bool) -> str | None:
        """End the stream; a saved `.rrd` renamed into place (or removed: never started, a
        write error). The write error's message, if any."""
        with contextlib.suppress(RuntimeError):  # a viewer that does not take the data
            self.rec.flush(timeout_sec=10.0)
        if self._rrd is None:
            return None
        self.rec.disconnect()  # closes the file sink: the end of the stream
        if not started:  # the devices failed before the loop started: no file
            self._rrd.abort()
            return None
        try:
            self._rrd.finish()
        except OutputError as e:
            return str(e)
        return None

    def _time(self, t_ns: int) -> None:
        if self._t0 is None:
            self._t0 = int(t_ns)
        self.rec.set_time("session_time", duration=(int(t_ns) - self._t0) / 1e9)

    def log(self, item: Any) -> None:
        """One item as the entities of docs/live.md."""
        rr = self.rr
        if isinstance(item, _State):
            self._log_state(item)
            return
        self._time(item.t_ns)
        if isinstance(item, _Frame):
            self._log_frame(item)
        elif isinstance(item, _Labels):
            colours = _cell_colours(None, item.labels)
            self.rec.log("camera/labels", _grid_points(rr, self.cells, colours))
            self.rec.log("learner/labelled_frames", rr.Scalars(float(item.count)))
        elif item.stream == "proximity":  # one row, a line per sensor
            values = np.asarray(item.horizontal, np.float64)[: len(self.names)]
            self.rec.log("ir", rr.Scalars(values))
        self.logged += 1

    def _log_pose(self, pose: np.ndarray | None) -> None:
        """The newest odometry pose as the robot's place on the map; a trajectory point
        when the robot moved `path_step_m` since the last one."""
        if pose is None:
            return
        self._pose = pose
        self.rec.log("map/robot", self.rr.Points2D([pose[:2]], radii=0.055))
        if not self._path or np.hypot(*(pose[:2] - self._path[-1])) >= self.s.path_step_m:
            self._path.append(pose[:2].copy())

    def _log_frame(self, frame: _Frame) -> None:
        import cv2

        rr, image, width = self.rr, frame.image, self.s.image_width_px
        self._log_pose(frame.pose)
        if image.shape[1] > width:
            height = round(image.shape[0] * width / image.shape[1])
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        # raw, not JPEG: a browser decodes a JPEG on its main thread, and one without a GPU
        # then falls seconds behind the robot (measured: 9 s after 30 s at 10 Hz)
        self.rec.log("camera/image", rr.Image(image, color_model="BGR"))
        if frame.prob is None:
            return
        colours = _cell_colours(frame.prob, None)
        self.rec.log("camera/predicted", _grid_points(rr, self.cells, colours))
        if self._image_cells is None or self._image_cells[0] != image.shape:
            cells = _image_cells(self.s.camera, self.cells, image.shape)
            self._image_cells = (image.shape, *cells)
        _, uv, seen = self._image_cells
        self.rec.log("camera/image/cells", _image_points(rr, uv, colours[seen], image.shape))
        if self._pose is not None:
            xy = _cells_on_map(self.cells, self._pose)
            self.rec.log("map/cells", rr.Points2D(xy, colors=colours, radii=0.004))

    def _log_state(self, state: _State) -> None:
        rr = self.rr
        if len(self._path) > 1:
            self.rec.log("map/odometry", rr.LineStrips2D([np.array(self._path)]))
        if state.e2e_median_ms is not None and state.e2e_p99_ms is not None:
            self.rec.log("latency/end_to_end_median_ms", rr.Scalars(state.e2e_median_ms))
            self.rec.log("latency/end_to_end_p99_ms", rr.Scalars(state.e2e_p99_ms))
        if state.loss is not None:
            self.rec.log("learner/loss", rr.Scalars(state.loss))
            self.rec.log("learner/steps", rr.Scalars(float(state.steps or 0)))


def _view_process(conn: Any, settings: _ViewSettings, niceness: int) -> None:
    """The view's process: start the sinks, answer ("ready", url) or ("error", class name,
    message), then log what comes until ("close", started), answered by ("closed", the
    save's error or None, items logged). A save error is sent when it happens
    (("save_failed", message)). Ctrl-C is the parent's to handle: ignored here; a parent
    that dies ends this process (its pipe closes)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    normal(niceness)  # this thread and every thread Rerun starts from it (not real-time)
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock, contextlib.suppress(OSError):
            conn.send(message)

    try:
        logger = _ViewLogger(settings, lambda e: send(("save_failed", str(e))))
    except Exception as e:
        send(("error", type(e).__name__, str(e)))
        return
    send(("ready", logger.url))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            with contextlib.suppress(Exception):
                logger.close(started=True)
            return
        kind, payload = message
        if kind == "item":
            logger.log(payload)
        elif kind == "start":
            logger.start(payload)
        elif kind == "close":
            error = logger.close(payload)
            send(("closed", error, logger.logged))
            return


_ERRORS = {"ViewError": ViewError, "ReplayError": ReplayError, "OutputError": OutputError}


class RerunLiveView:
    """The live view of `run --view`: a loop observer that logs to Rerun in its own process.

    What the loop hands it (frames with predictions, proximity rows, labels) is only
    queued, and dropped (counted in `dropped`) when the queue is full: the drive loop
    never waits for the view. A thread of this process sends the queue through a pipe to
    the view's process, which runs at a lower CPU priority (nice 10) with Rerun's
    servers: the encoding, the servers and whatever a browser asks of them never hold
    this process's GIL or a lock the loop takes (a thread that does, preempted by a
    browser rendering beside the robot, stalled the loop past its watchdog:
    docs/live.md). The view logs at most `image_hz` camera frames a second (raw, at
    most `image_width_px` wide) with the predicted grid (points, cells over the image
    through `camera` and on the map) and the newest odometry pose, every proximity
    reading, and once a second the trajectory (a point per `path_step_m` travelled), the
    loop's latency and the learner's state (when `attach` gave them); the layout is
    :func:`view_blueprint`. `serve=True` serves the web viewer on `web_port` and the data
    on `grpc_port` (any origin may connect) to any browser on the network; `url` is the
    page to open there (robot_ssl.live.view_io). A port already taken is a ViewError
    before anything is served. `save` also writes a `.rrd` (whole at `close`, or not at
    all: a write error stops the attached loop and `check_saved` raises it).
    """

    def __init__(
        self,
        robot: Any,
        sensor_indices: np.ndarray,
        distances_m: np.ndarray,
        *,
        serve: bool = False,
        web_port: int = DEFAULT_WEB_PORT,
        grpc_port: int = DEFAULT_GRPC_PORT,
        save: str | Path | None = None,
        image_hz: float = 5.0,
        image_width_px: int = 320,
        camera: CameraSpec | None = None,
        queue_size: int = 64,
        path_step_m: float = 0.01,
        niceness: int = 10,
    ) -> None:
        import importlib.util
        import multiprocessing

        if importlib.util.find_spec("rerun") is None:
            _rerun()  # the one-line ReplayError
        self.image_period_ns = round(1e9 / image_hz)
        self.url: str | None = None
        self._sources: list[Any] = []
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._odometry: np.ndarray | None = None  # the newest pose (the loop's thread sets it)
        self._last_image_ns: int | None = None
        self._started = False
        self._save_error: OutputError | None = None
        self._broken: str | None = None  # the view's process failed: nothing more is sent
        self.logged = 0
        self.dropped = 0
        settings = _ViewSettings(
            robot=robot,
            sensor_indices=np.asarray(sensor_indices),
            distances_m=np.asarray(distances_m),
            serve=serve,
            web_port=web_port,
            grpc_port=grpc_port,
            save=str(save) if save is not None else None,
            image_width_px=image_width_px,
            camera=camera or CameraSpec(),
            path_step_m=path_step_m,
        )
        # spawn, not fork: this process has threads (a fork copies their locks as held)
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_view_process, args=(child, settings, niceness), name="robot-ssl-view"
        )
        self._process.daemon = True
        self._process.start()
        child.close()
        try:
            answer = self._conn.recv() if self._conn.poll(120.0) else ("error", "", "no answer")
        except (EOFError, OSError):
            answer = ("error", "", f"its process ended (exit status {self._process.exitcode})")
        if answer[0] != "ready":
            self._process.join(5.0)
            _, name, message = answer
            raise _ERRORS.get(name, ViewError)(
                message if name in _ERRORS else f"cannot start the live view: {message}"
            )
        self.url = answer[1]
        self._thread = threading.Thread(target=self._send_loop, name="rerun-view", daemon=True)

    def _save_failed(self, message: str) -> None:
        """The `.rrd` cannot be written (a full disk): end the run rather than drive on."""
        self._save_error = OutputError(message)
        for source in self._sources:
            if hasattr(source, "request_stop"):
                source.request_stop(f"live view: {message}")

    def attach(self, *sources: Any) -> None:
        """Things whose state is logged once a second: a loop (`latency`), a learner."""
        self._sources += [s for s in sources if s is not None]

    def start(self) -> None:
        """Send the layout (a labels tab and a learner plot when a learner is attached),
        then start logging."""
        learning = any(getattr(s, "learner", None) is not None for s in self._sources)
        self._send(("start", learning))
        self._started = True
        self._thread.start()

    def _send(self, message: tuple) -> None:
        if self._broken is not None:
            return
        try:
            self._conn.send(message)
        except OSError as e:  # the view's process died: the robot drives on without it
            self._broken = f"{type(e).__name__}: {e}"

    def _receive(self) -> list[tuple]:
        """Messages from the view's process so far (a save error acted on at once)."""
        out = []
        with contextlib.suppress(EOFError, OSError):
            while self._conn.poll():
                message = self._conn.recv()
                if message[0] == "save_failed":
                    self._save_failed(message[1])
                else:
                    out.append(message)
        return out

    def _send_loop(self) -> None:
        """This process's side: the queue to the pipe, the state once a second. A normal
        priority thread that only pickles and writes (a low-priority thread here could be
        preempted holding the GIL, and the loop would wait for it)."""
        import time

        next_state = time.monotonic() + 1.0
        while True:
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = ()
            self._receive()
            if item is None:
                return
            if item != ():
                self._send(("item", item))
            if time.monotonic() >= next_state:
                next_state = time.monotonic() + 1.0
                self._send(("item", self._state()))

    def _state(self) -> _State:
        e2e, loss, steps = None, None, None
        for source in self._sources:
            stats = getattr(source, "latency", None)  # the drive loop's LatencyStats
            if hasattr(stats, "summary"):
                e2e = stats.summary().get("end_to_end") or e2e
            learner = getattr(source, "learner", None)
            if learner is not None and learner.losses:
                loss = float(np.mean(list(learner.losses)[-20:]))
                steps = int(learner.steps)
        return _State(
            e2e["median_ms"] if e2e else None, e2e["p99_ms"] if e2e else None, loss, steps
        )

    def close(self) -> None:
        """Log what is queued, then end the stream; a saved `.rrd` is renamed into place
        (or removed after a write error: see `check_saved`)."""
        import time

        with contextlib.suppress(queue.Full):  # a sending thread that hangs: not waited for
            self._queue.put(None, timeout=2.0)
        if self._thread.ident is not None:  # started
            self._thread.join(10.0)
        self._send(("close", self._started))
        deadline = time.monotonic() + 60.0  # the flush (10 s) and the file (30 s) at most
        while self._broken is None and self._process.is_alive() and time.monotonic() < deadline:
            for message in self._receive():
                if message[0] == "closed":
                    if message[1] is not None:
                        self._save_error = OutputError(message[1])
                    self.logged = message[2]
                    deadline = 0.0
            time.sleep(0.02)
        self._receive()
        self._process.join(5.0)
        if self._process.is_alive():  # pragma: no cover - a view that hangs
            self._process.kill()
        self._conn.close()

    def check_saved(self) -> None:
        """Raise the OutputError that kept the `.rrd` from being written, if any (after the
        motors stopped and the summary was printed)."""
        if self._save_error is not None:
            raise self._save_error

    def status(self) -> str:
        return f"view {self.url.split('?')[0]}" if self.url else ""

    # -- the observer side (the loop's threads): queue only --------------------------------

    streams = ("odometry", "proximity")  # the session streams the view draws

    def _offer(self, item: object) -> None:
        """Queue `item` for the sending thread, or drop it when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def on_row(self, row: Record) -> None:
        """A proximity record queued for the view; an odometry pose kept as the newest
        (drawn with the next frame); a record of another stream ignored."""
        if row.stream == "proximity":
            self._offer(row)
        elif row.stream == "odometry":
            self._odometry = np.asarray(row.pose, np.float64)

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray | None = None) -> None:
        if self._last_image_ns is not None and t_ns - self._last_image_ns < self.image_period_ns:
            return
        self._last_image_ns = t_ns
        self._offer(_Frame(t_ns, image_bgr, prob, self._odometry))

    def on_labels(self, labels: list) -> None:
        if labels:
            self._offer(_Labels(labels[-1].t_ns, labels[-1].labels, len(labels)))
