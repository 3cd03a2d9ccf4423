"""`robot-ssl run` as a library function: `run(RunConfig(...))`, live obstacle detection on
the robot (`live.drive` "monitor") or camera-only avoidance ("avoid").

One thread captures, preprocesses, infers and acts; a sensor thread reads the robot and a
watchdog stops the motors within 200 ms when frames or inferences go stale
(robot_ssl/live/loop.py). Ctrl-C or SIGTERM stop the motors at once and end the run
cleanly; the motors are also stopped on errors and at interpreter exit. With `record`,
the session file gets frames, predictions, proximity, wheels, odometry and events.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from robot_ssl.core.config import MAX_DURATION_S, MAX_SEED, MAX_THREADS, bounded, check_bounds
from robot_ssl.core.errors import RobotSSLError
from robot_ssl.learning.learn_config import LearnConfig
from robot_ssl.live.controllers import AvoidConfig
from robot_ssl.live.loop import LiveConfig
from robot_ssl.recording.device_setup import (
    CameraDevice,
    NoCameraConfig,
    NoRobotConfig,
    RobotDevice,
)

__all__ = ["RunConfig", "RunError", "RunResult", "run"]


class RunError(RobotSSLError):
    """Bad settings for `robot-ssl run` (printed as one line, exit status 2)."""


@dataclass(frozen=True)
class RunConfig:
    """What `robot-ssl run` does: drive (or watch) `robot` with the detector `model` (.onnx,
    .pt or TorchScript) seeing through `camera`.

    `live` the loop (drive mode, watchdog, rates), `avoid` the camera steering law;
    `record` a session file to write (`overwrite` an existing one); `duration_s` (None:
    until stopped); `spec` the robot/camera description file (None: the defaults);
    `threads` inference (and learning) threads; `view` a web port for the live Rerun view
    (`view_grpc_port` its data port, `view_save` a .rrd file); `learn` learning while
    driving (with `learn.out_dir` a folder to learn into; its torch threads are `threads`:
    torch's count is per process); `status` a status line on stderr (None: when it is a
    terminal).
    """

    model: str = ""
    robot: RobotDevice = field(default_factory=NoRobotConfig)
    camera: CameraDevice = field(default_factory=NoCameraConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    avoid: AvoidConfig = field(default_factory=AvoidConfig.for_camera)
    record: str | None = None
    overwrite: bool = False
    duration_s: float | None = bounded(None, 0, MAX_DURATION_S, min_inclusive=False)
    seed: int = bounded(0, 0, MAX_SEED)
    spec: str | None = None
    allow_viewpoint_mismatch: bool = False
    threads: int = bounded(1, 1, MAX_THREADS)
    jpeg_quality: int = bounded(90, 1, 100)
    view: int | None = bounded(None, 1, 65535)
    view_grpc_port: int | None = bounded(None, 1, 65535)
    view_save: str | None = None
    learn: LearnConfig = field(default_factory=LearnConfig)
    status: bool | None = None

    def __post_init__(self) -> None:
        check_bounds(self, "run", RunError)
        if self.learn.threads not in (1, self.threads):  # one count: torch's is per process
            raise RunError(
                f"learn.threads {self.learn.threads} is not threads {self.threads}: the learner"
                " and the predictor share torch's threads (give --threads)"
            )


@dataclass(frozen=True)
class RunResult:
    """The loop's result and the exit status `robot-ssl run` gives (1: the camera failed)."""

    result: Any
    exit_status: int


def _check(cfg: RunConfig) -> None:
    """What can be refused before the model loads and the robot moves: no model, a device
    missing, an existing record file, the live view's ports and file."""
    from robot_ssl.io.session import SessionWriteError
    from robot_ssl.live.view_io import DEFAULT_GRPC_PORT, check_port_free, check_save_target

    if not cfg.model:
        raise RunError("--model is required")
    if cfg.robot.kind == "none" or cfg.camera.kind == "none":
        raise RunError("run needs both a robot and a camera")
    if cfg.record and Path(cfg.record).exists() and not cfg.overwrite:
        raise SessionWriteError(f"{cfg.record} exists (pass --overwrite to replace it)")
    if cfg.view_grpc_port is not None and cfg.view is None:
        raise RunError("--view-grpc-port needs --view")
    if cfg.view is not None:
        grpc_port = cfg.view_grpc_port or DEFAULT_GRPC_PORT
        if grpc_port == cfg.view:
            raise RunError(f"--view and --view-grpc-port are both {grpc_port}: give two ports")
        check_port_free(cfg.view, "--view PORT")
        check_port_free(grpc_port, "--view-grpc-port")
    if cfg.view_save:
        check_save_target(cfg.view_save)


def _status_printer(enabled: bool) -> Any:
    if not enabled:
        return None
    tty = sys.stderr.isatty()

    def show(line: str) -> None:
        if tty:
            sys.stderr.write("\r\x1b[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return show


def _open_model(cfg: RunConfig, camera_offset_s: float) -> tuple[Any, Any, str]:
    """(predictor, online learning or None, the model's line for the start message)."""
    from robot_ssl.learning.torch_predictor import open_predictor

    if not cfg.learn.out_dir:
        predictor, line = open_predictor(cfg.model, cfg.threads)
        return predictor, None, line
    from robot_ssl.learning.online import learning_for

    out_dir = cfg.learn.out_dir
    predictor, learning = learning_for(
        cfg.model,
        out_dir,
        camera_offset_s=camera_offset_s,
        config=replace(cfg.learn, threads=cfg.threads),
        seed=cfg.seed,
    )
    return predictor, learning, f"{Path(cfg.model).name} (PyTorch, learning into {out_dir})"


def _live_view(cfg: RunConfig, predictor: Any, distances: Any, robot_spec, camera_spec) -> Any:
    if cfg.view is None and not cfg.view_save:
        return None
    from robot_ssl.live.rerun_log import RerunLiveView
    from robot_ssl.live.view_io import DEFAULT_GRPC_PORT, DEFAULT_WEB_PORT

    model_cfg = predictor.config
    return RerunLiveView(
        robot_spec,
        model_cfg.sensor_indices if model_cfg.sensor_indices is not None else range(5),
        distances,
        serve=cfg.view is not None,
        web_port=cfg.view or DEFAULT_WEB_PORT,
        grpc_port=cfg.view_grpc_port or DEFAULT_GRPC_PORT,
        save=cfg.view_save,
        camera=camera_spec,
    )


def _priority(cfg: RunConfig) -> int:
    """The loop's real-time priority (threads opened inside inherit it: the devices', the
    loop's), 0 while learning with several torch threads: their pool, shared by predictor
    and learner, would train at real-time priority."""
    if cfg.learn.out_dir and cfg.threads > 1:
        return 0
    return cfg.live.realtime_priority


def _describe(cfg: RunConfig) -> str:
    """`robot sim via pty, camera sim`: the devices as spelled, for the start line."""
    link = getattr(cfg.robot, "link", "direct") if cfg.robot.kind == "sim" else "direct"
    via = "" if link == "direct" else f" via {link}"
    return f"robot {cfg.robot.source}{via}, camera {cfg.camera.source}"


def run(cfg: RunConfig) -> RunResult:
    """Run `cfg`: check what can be checked, load the model (refusing one trained with
    another camera viewpoint unless allowed), open the devices, drive until the duration,
    a signal or a failure, stop the motors; prints the summary line on stderr."""
    from robot_ssl.core.outputs import replacing_output
    from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs
    from robot_ssl.inference.predictor import grid_distances, grid_shape
    from robot_ssl.inference.viewpoint import check_model_camera
    from robot_ssl.io.session import SessionWriter
    from robot_ssl.live.controllers import CameraAvoidController
    from robot_ssl.live.loop import LiveLoop
    from robot_ssl.recording.device_setup import Devices, open_devices
    from robot_ssl.recording.sampler import robot_streams, truth_streams
    from robot_ssl.runtime.priority import realtime_thread
    from robot_ssl.runtime.stopping import stop_at_exit, stop_on_signals

    _check(cfg)
    out = Path(cfg.record) if cfg.record else None
    robot_spec, camera_spec = load_specs(cfg.spec) if cfg.spec else (RobotSpec(), CameraSpec())
    predictor, learning, model_line = _open_model(cfg, camera_spec.time_offset_s)
    check_model_camera(
        predictor,
        camera_spec,
        f"the camera of {cfg.spec or 'the default spec'}",
        allow=cfg.allow_viewpoint_mismatch,
        prog="robot-ssl run",
        model_name=str(cfg.model),
    )
    distances = grid_distances(predictor)
    status = _status_printer(sys.stderr.isatty() if cfg.status is None else cfg.status)
    view = _live_view(cfg, predictor, distances, robot_spec, camera_spec)
    if view is not None and learning is not None:
        learning.on_labels = view.on_labels

    with realtime_thread(_priority(cfg)) as priority_line, Devices() as dev:
        if view is not None:
            dev.callback(view.close)  # also when the devices fail: the .rrd is not left half
        open_devices(cfg.robot, cfg.camera, dev, robot_spec, camera_spec)
        camera_spec = dev.camera_spec(camera_spec)  # what the camera really delivers
        writer = None
        if out is not None:
            model_cfg = getattr(predictor.config, "to_dict", lambda: {})()
            target = dev.enter_context(replacing_output(out, cfg.overwrite))
            writer = SessionWriter(
                target,
                robot=robot_spec,
                camera=camera_spec,
                jpeg_quality=cfg.jpeg_quality,
                metadata={
                    **dev.metadata,
                    "recorded_by": "robot-ssl run",
                    "drive": cfg.live.drive,
                    "model": str(cfg.model),
                    "model_config": model_cfg,
                    "cruise_speed": cfg.avoid.cruise_speed,
                },
                truth_sensors=robot_spec.num_prox if dev.truth is not None else None,
                prediction_shape=grid_shape(predictor),
                streams=(
                    *robot_streams(dev.robot),
                    *truth_streams(dev.truth),
                ),  # acc, contact truth
                overwrite=cfg.overwrite,
            )
            dev.callback(writer.close)
        controller = CameraAvoidController(
            distances, cfg.avoid, sensor_range_m=robot_spec.prox_range_m
        )
        loop = LiveLoop(
            dev.robot,
            dev.camera,
            predictor,
            distances,
            cfg.live,
            clock=dev.clock,
            writer=writer,
            robot_spec=robot_spec,
            controller=controller,
            truth=dev.truth,
            on_status=status,
            observers=[o for o in (learning, view) if o is not None],
        )
        print(
            f"robot-ssl run: {cfg.live.drive} with {model_line}, {_describe(cfg)}; loop at"
            f" {priority_line}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        if learning is not None:
            learning.start()
            dev.callback(learning.close)  # after the loop, also on error: the last checkpoint
        if view is not None:
            view.attach(loop, learning)
            view.start()
            if view.url:
                print(f"robot-ssl run: live view at {view.url}", file=sys.stderr, flush=True)
        with stop_at_exit(dev.robot), stop_on_signals(loop):
            result = loop.run(cfg.duration_s)
        final = getattr(dev.robot, "targets", None)
    if status is not None and sys.stderr.isatty():
        sys.stderr.write("\n")
    _print_summary(result, final, out)
    if learning is not None:
        print(learning.end_line(), file=sys.stderr)
        learning.check_saved()  # after the motors stopped: exit 2 when the learning is lost
    if view is not None:
        view.check_saved()  # exit 2 when the .rrd could not be written (none is left)
    return RunResult(result, 1 if result.stop_reason.startswith("camera failed") else 0)


def _print_summary(result: Any, final_targets: Any, out: Path | None) -> None:
    motors = ""
    if final_targets and result.motors_stopped:
        motors = f"; motors stopped, wheel targets {tuple(final_targets)}"
    elif final_targets:  # the robot did not take the stop: say so, do not claim it
        motors = (
            f"; motors NOT confirmed stopped: the robot did not answer the stop"
            f" ({result.stop_error}); last wheel targets sent {tuple(final_targets)}"
        )
    print(
        result.summary() + motors + (f"; recorded {out}" if out is not None else ""),
        file=sys.stderr,
    )
