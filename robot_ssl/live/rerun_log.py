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


def _in_low_priority_thread(start: Callable[[], None]) -> None:
    """Call `start` in a thread of lower CPU priority and wait for it (its exception is
    raised here): the threads Rerun starts there (its batcher, the gRPC and web servers,
    which encode and send the data to every viewer) inherit that priority, so that the
    drive loop's threads come first when the CPU is short."""
    errors: list[BaseException] = []

    def run() -> None:
        _lower_priority()
        try:
            start()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, name="rerun-start")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _lower_priority(niceness: int = 10) -> None:
    """Give the calling thread less CPU than the drive loop's threads when both want it
    (Linux: a thread's own nice value); elsewhere nothing changes."""
    import os

    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


@dataclass(frozen=True)
class _Frame:
    """A frame queued for the view's thread, with its prediction (None: no detector)."""

    t_ns: int
    image: np.ndarray
    prob: np.ndarray | None


@dataclass(frozen=True)
class _Labels:
    """The newest online labels queued for the view's thread, and how many came."""

    t_ns: int
    labels: np.ndarray
    count: int


class RerunLiveView:
    """The live view of `run --view`: a loop observer that logs to Rerun from its own thread.

    What the loop hands it (frames with predictions, proximity rows, labels) is only
    queued, and dropped (counted in `dropped`) when the queue is full: the drive loop
    never waits for the view. A thread of lower CPU priority logs at most `image_hz`
    camera frames a second (JPEG) with the predicted grid (a PNG panel, cells over the
    image through `camera` and on the map) and the newest odometry pose, every proximity
    reading, and once a second the trajectory (a point per `path_step_m` travelled), the
    loop's latency and the learner's state (when `attach` gave them); the layout is
    :func:`view_blueprint`. `serve=True` serves the web viewer on
    `web_port` and the data on `grpc_port` (any origin may connect) to any browser on the
    network; `url` is the page to open there (robot_ssl.live.view_io). A port already
    taken is a ViewError before anything is served. `save` also writes a `.rrd` (whole
    at `close`, or not at all: a write error stops the attached loop and `check_saved`
    raises it).
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
    ) -> None:
        self.rr = _rerun()
        self.robot = robot
        self.sensor_indices = np.asarray(sensor_indices)
        self.distances_m = np.asarray(distances_m)
        self.cells = cell_positions_m(robot, self.sensor_indices, self.distances_m)
        self.camera = camera or CameraSpec()
        self._image_cells: tuple[tuple[int, ...], np.ndarray, np.ndarray] | None = None
        self.names = [s.name for s in robot.prox_sensors]
        self.image_period_ns = round(1e9 / image_hz)
        self.image_width_px = image_width_px
        self.url: str | None = None
        self._sources: list[Any] = []
        self._rrd = RrdFile(save, on_error=self._save_failed) if save is not None else None
        try:
            _in_low_priority_thread(lambda: self._start_sinks(serve, web_port, grpc_port))
        except BaseException:
            if self._rrd is not None:
                self._rrd.abort()
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="rerun-view", daemon=True)
        self._t0: int | None = None
        self._last_image_ns: int | None = None
        self.path_step_m = path_step_m
        self._path: list[np.ndarray] = []
        self._odometry: np.ndarray | None = None  # the newest pose (the loop's thread sets it)
        self._pose: np.ndarray | None = None  # the pose of the frame being logged
        self.logged = 0
        self.dropped = 0

    def _start_sinks(self, serve: bool, web_port: int, grpc_port: int) -> None:
        """The recording; the gRPC server (any origin) and the web viewer when serving; the
        file when saving. The server keeps SERVER_MEMORY of the newest data for viewers
        that connect later, and sends a new viewer the newest first: the page shows the
        robot now, not its history replayed from the start."""
        rr, sinks = self.rr, []
        self.rec = rr.RecordingStream(APP_ID)
        if serve:
            check_port_free(web_port, "--view PORT")
            check_port_free(grpc_port, "--view-grpc-port")
            sinks.append(
                rr.GrpcServerSink(
                    port=grpc_port,
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
            if serve:
                host = reachable_host()
                rr.serve_web_viewer(
                    web_port=web_port, open_browser=False, connect_to=grpc_url(host, grpc_port)
                )
                self.url = viewer_url(host, web_port, grpc_port)
        except RuntimeError as e:  # a port taken since the check, a file Rerun cannot open
            raise ViewError(f"cannot start the live view: {str(e).splitlines()[0]}") from None

    def _save_failed(self, error: Exception) -> None:
        """The `.rrd` cannot be written (a full disk): end the run rather than drive on."""
        for source in self._sources:
            if hasattr(source, "request_stop"):
                source.request_stop(f"live view: {error}")

    def attach(self, *sources: Any) -> None:
        """Things whose state is logged once a second: a loop (`stats`), a learner."""
        self._sources += [s for s in sources if s is not None]

    def start(self) -> None:
        """Send the layout (a labels tab and a learner plot when a learner is attached),
        then start logging."""
        learning = any(getattr(s, "learner", None) is not None for s in self._sources)
        blueprint = view_blueprint(
            grids=("predicted", "labels") if learning else ("predicted",),
            series=("ir", "latency", "learner") if learning else ("ir", "latency"),
            history_s=30.0,
        )
        self.rec.send_blueprint(blueprint)
        _log_map_frame(self.rr, self.rec)
        self.rec.log("ir", self.rr.SeriesLines(names=self.names), static=True)
        for grid in ("predicted", "labels") if learning else ("predicted",):
            body = _body_outline(self.rr, self.robot.body_radius_m)
            self.rec.log(f"camera/{grid}/body", body, static=True)
        self._thread.start()

    def close(self) -> None:
        """Log what is queued, then end the stream; a saved `.rrd` is renamed into place
        (or removed after a write error: see `check_saved`)."""
        with contextlib.suppress(queue.Full):  # a view thread that hangs: not waited for
            self._queue.put(None, timeout=2.0)
        if self._thread.ident is not None:  # started
            self._thread.join(10.0)
        with contextlib.suppress(RuntimeError):  # a viewer that does not take the data
            self.rec.flush(timeout_sec=10.0)
        if self._rrd is None:
            return
        self.rec.disconnect()  # closes the file sink: the end of the stream
        if self._thread.ident is None:  # never started (the devices failed): no file
            self._rrd.abort()
            return
        with contextlib.suppress(OutputError):  # kept in self._rrd.error
            self._rrd.finish()

    def check_saved(self) -> None:
        """Raise the OutputError that kept the `.rrd` from being written, if any (after the
        motors stopped and the summary was printed)."""
        if self._rrd is not None:
            self._rrd.check()

    def status(self) -> str:
        return f"view {self.url.split('?')[0]}" if self.url else ""

    # -- the observer side (the loop's threads): queue only --------------------------------

    streams = ("odometry", "proximity")  # the session streams the view draws

    def _offer(self, item: object) -> None:
        """Queue `item` for the view's thread, or drop it when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def on_row(self, row: Record) -> None:
        """A proximity record queued for the view's thread; an odometry pose kept as the
        newest (drawn with the next frame); a record of another stream ignored."""
        if row.stream == "proximity":
            self._offer(row)
        elif row.stream == "odometry":
            self._odometry = np.asarray(row.pose, np.float64)

    def on_frame(self, t_ns: int, image_bgr: np.ndarray, prob: np.ndarray | None = None) -> None:
        if self._last_image_ns is not None and t_ns - self._last_image_ns < self.image_period_ns:
            return
        self._last_image_ns = t_ns
        self._offer(_Frame(t_ns, image_bgr, prob))

    def on_labels(self, labels: list) -> None:
        if labels:
            self._offer(_Labels(labels[-1].t_ns, labels[-1].labels, len(labels)))

    # -- the view's thread --------------------------------------------------------------

    def _time(self, t_ns: int) -> None:
        if self._t0 is None:
            self._t0 = int(t_ns)
        self.rec.set_time("session_time", duration=(int(t_ns) - self._t0) / 1e9)

    def _run(self) -> None:
        import time

        _lower_priority()
        rr, next_state = self.rr, time.monotonic() + 1.0
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._time(item.t_ns)
            if isinstance(item, _Frame):
                self._log_frame(item.image, item.prob)
            elif isinstance(item, _Labels):
                colours = _cell_colours(None, item.labels)
                self.rec.log("camera/labels", _grid_points(rr, self.cells, colours))
                self.rec.log("learner/labelled_frames", rr.Scalars(float(item.count)))
            elif item.stream == "proximity":  # one row, a line per sensor
                values = np.asarray(item.horizontal, np.float64)[: len(self.names)]
                self.rec.log("ir", rr.Scalars(values))

            self.logged += 1
            if time.monotonic() >= next_state:
                next_state = time.monotonic() + 1.0
                self._log_state()

    def _log_pose(self) -> None:
        """The newest odometry pose as the robot's place on the map; a trajectory point
        when the robot moved `path_step_m` since the last one."""
        pose = self._odometry
        if pose is None:
            return
        self._pose = pose
        self.rec.log("map/robot", self.rr.Points2D([pose[:2]], radii=0.055))
        if not self._path or np.hypot(*(pose[:2] - self._path[-1])) >= self.path_step_m:
            self._path.append(pose[:2].copy())

    def _log_frame(self, image: np.ndarray, prob: np.ndarray | None) -> None:
        import cv2

        rr = self.rr
        self._log_pose()
        if image.shape[1] > self.image_width_px:
            height = round(image.shape[0] * self.image_width_px / image.shape[1])
            image = cv2.resize(image, (self.image_width_px, height), interpolation=cv2.INTER_AREA)
        # raw, not JPEG: a browser decodes a JPEG on its main thread, and one without a GPU
        # then falls seconds behind the robot (measured: 9 s after 30 s at 10 Hz)
        self.rec.log("camera/image", rr.Image(image, color_model="BGR"))
        if prob is None:
            return
        colours = _cell_colours(prob, None)
        self.rec.log("camera/predicted", _grid_points(rr, self.cells, colours))
        if self._image_cells is None or self._image_cells[0] != image.shape:
            self._image_cells = (image.shape, *_image_cells(self.camera, self.cells, image.shape))
        _, uv, seen = self._image_cells
        self.rec.log("camera/image/cells", _image_points(rr, uv, colours[seen], image.shape))
        if self._pose is not None:
            xy = _cells_on_map(self.cells, self._pose)
            self.rec.log("map/cells", rr.Points2D(xy, colors=colours, radii=0.004))

    def _log_state(self) -> None:
        rr = self.rr
        if len(self._path) > 1:
            self.rec.log("map/odometry", rr.LineStrips2D([np.array(self._path)]))
        for source in self._sources:
            stats = getattr(source, "latency", None)  # the drive loop's LatencyStats
            if hasattr(stats, "summary"):
                e2e = stats.summary().get("end_to_end")
                if e2e:
                    self.rec.log("latency/end_to_end_median_ms", rr.Scalars(e2e["median_ms"]))
                    self.rec.log("latency/end_to_end_p99_ms", rr.Scalars(e2e["p99_ms"]))
            learner = getattr(source, "learner", None)
            if learner is not None and learner.losses:
                self.rec.log("learner/loss", rr.Scalars(float(np.mean(list(learner.losses)[-20:]))))
                self.rec.log("learner/steps", rr.Scalars(float(learner.steps)))
