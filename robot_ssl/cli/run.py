"""`robot-ssl run`: live obstacle detection on the robot (monitor) or camera-only avoidance.

    robot-ssl run --model model.onnx --robot /dev/ttyACM0 --camera 0               # monitor
    robot-ssl run --model model.onnx --robot /dev/ttyACM0 --camera 0 --drive avoid --record live.h5
    robot-ssl run --model model.onnx --robot sim:arena_boxes --camera sim --drive avoid --duration 60
    robot-ssl run --model model.onnx --robot sim --camera sim --sim-link pty --drive avoid

One thread captures, preprocesses, infers and acts; a sensor thread reads the robot
(wheels, odometry, proximity) and a watchdog thread stops the motors within 200 ms
when frames or inferences go stale (robot_ssl/live/loop.py). `monitor` never moves the
robot; `avoid` drives it with the camera alone (CameraAvoidController). Ctrl-C or
SIGTERM stop the motors at once and end the run cleanly (exit 0); the motors are
also stopped on errors and at interpreter exit. With `--record`, the session file
gets frames, predictions, proximity, wheels (speed and target), odometry and events
(watchdog stops), so live runs can be labelled and used for training later.

The model: an ONNX file runs on ONNX Runtime (single thread); a checkpoint (.pt) is
exported to ONNX in a temporary folder when onnx and onnxruntime are installed, and
otherwise run with PyTorch; a TorchScript file runs with PyTorch.

`--robot sim[:WORLD] --camera sim` runs the simulator in-process in real time.
`--sim-link pty` (or `tcp`) serves that simulated robot as a virtual Thymio II and
talks to it through firmware_bridge, exactly as to a real robot, with the camera
rendered from the same simulation. (A virtual Thymio served by another process,
`robot-ssl sim serve --pty`, has no camera: use `--sim-link pty` instead.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from robot_ssl.core.errors import RobotSSLError

HELP = "live obstacle detection on the robot (monitor or avoid)"
CONFIG_FIELDS = True  # every RunConfig field: --live.sensor-hz X, --avoid.cruise-speed N, ...


class RunError(RobotSSLError):
    """Bad options for `robot-ssl run` (printed as one line, exit status 2)."""


def _config_for_help() -> tuple[type, object]:
    from robot_ssl.live.loop import RunConfig

    return RunConfig, RunConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t
    from robot_ssl.cli.config_fields import add_config_help
    from robot_ssl.live.controllers import AvoidConfig

    add_config_help(p, _config_for_help, "robot-ssl run")

    p.add_argument("--model", required=True, metavar="M", help="model: .onnx, .pt or TorchScript")
    p.add_argument(
        "--allow-viewpoint-mismatch",
        action="store_true",
        help="use the model although it was trained with another camera viewpoint (size, "
        "field of view, mount, pitch) than this camera's: its probabilities are then unreliable",
    )
    p.add_argument(
        "--robot",
        required=True,
        metavar="URL|sim[:WORLD]",
        help="serial device (/dev/ttyACM0), pyserial URL (socket://host:33333), 'auto' (first "
        "Thymio port) or 'sim[:WORLD]' (the simulator in-process, real time)",
    )
    p.add_argument(
        "--camera",
        required=True,
        metavar="DEV|sim",
        help="device index (0), /dev/videoN, GStreamer pipeline, URL, video file, "
        "'synthetic[:WxH[@FPS]]' or 'sim' (needs --robot sim)",
    )
    p.add_argument(
        "--drive",
        choices=("monitor", "avoid"),
        default="monitor",
        help="'monitor': report and log only, never move (default); 'avoid': drive, slowing "
        "and turning away from obstacles seen by the camera",
    )
    p.add_argument("--record", metavar="OUT.h5", default=None, help="record a session file")
    p.add_argument("--overwrite", action="store_true", help="replace --record's file if it exists")
    p.add_argument(
        "--duration", type=t.positive_float(), default=None, metavar="S", help="stop after S s"
    )
    p.add_argument(
        "--speed",
        type=t.for_field(AvoidConfig, "cruise_speed"),
        default=200,
        metavar="UNITS",
        help="cruise speed, raw units (200)",
    )
    p.add_argument("--seed", type=t.SEED, default=0, help="simulator seed (with --robot sim)")
    t.add_sim_link_option(p)
    p.add_argument("--spec", default=None, help="robot/camera description (YAML or JSON)")
    t.add_camera_options(p)
    t.add_robot_link_options(p)
    p.add_argument(
        "--max-staleness-ms",
        type=t.finite_float(0, 180, min_inclusive=False),
        default=150.0,
        help="watchdog: stop when the newest command's frame is older (default 150)",
    )
    p.add_argument("--threads", type=t.THREADS, default=1, help="inference threads (default 1)")
    p.add_argument("--jpeg-quality", type=t.JPEG_QUALITY, default=90, help="recorded JPEG quality")
    p.add_argument(
        "--view",
        nargs="?",
        const=9090,
        type=t.int_range(1, 65535),
        metavar="PORT",
        help="serve a live Rerun view (camera, predicted grid, map, IR, latency, learner) to "
        "browsers on the network: web page on PORT (default 9090), the URL to open is printed "
        "(needs the view extra)",
    )
    p.add_argument(
        "--view-grpc-port",
        type=t.int_range(1, 65535),
        default=None,
        metavar="PORT",
        help="with --view: the port of the view's data (Rerun gRPC; default 9876); give each "
        "of two live views on one machine its own --view PORT and --view-grpc-port",
    )
    p.add_argument("--view-save", metavar="FILE.rrd", help="also write the live view to a file")
    p.add_argument(
        "--learn",
        metavar="DIR",
        help="learn while driving: label frames online and fine-tune the model (a .pt "
        "checkpoint) in a background thread (--threads threads); checkpoints in DIR",
    )
    p.add_argument(
        "--status",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live status line on stderr (default: when stderr is a terminal)",
    )


# --------------------------------------------------------------------------- model


# --------------------------------------------------------------------------- devices


# --------------------------------------------------------------------------- exit paths


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


# --------------------------------------------------------------------------- command


def _check_view_options(args: argparse.Namespace) -> None:
    """The live view's ports and --view-save file, checked before the model loads and the
    robot moves: one line and exit 2 when a port is taken or the file cannot be written."""
    from robot_ssl.live.view_io import DEFAULT_GRPC_PORT, check_port_free, check_save_target

    if args.view_grpc_port is not None and args.view is None:
        raise RunError("--view-grpc-port needs --view")
    if args.view is not None:
        grpc_port = args.view_grpc_port or DEFAULT_GRPC_PORT
        if grpc_port == args.view:
            raise RunError(f"--view and --view-grpc-port are both {grpc_port}: give two ports")
        check_port_free(args.view, "--view PORT")
        check_port_free(grpc_port, "--view-grpc-port")
    if args.view_save:
        check_save_target(args.view_save)


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import apply_config_fields
    from robot_ssl.core.outputs import replacing_output
    from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs
    from robot_ssl.inference.predictor import grid_distances, grid_shape
    from robot_ssl.inference.viewpoint import check_model_camera
    from robot_ssl.io.session import SessionWriteError, SessionWriter
    from robot_ssl.learning.torch_predictor import open_predictor
    from robot_ssl.live.controllers import AvoidConfig, CameraAvoidController
    from robot_ssl.live.loop import LiveConfig, LiveLoop, RunConfig
    from robot_ssl.recording.device_setup import Devices
    from robot_ssl.runtime.stopping import stop_at_exit, stop_on_signals
    from robot_ssl.simlink.devices import is_sim, open_devices

    if args.duration is not None and not args.duration > 0:
        raise RunError("--duration must be > 0")
    if not 0 <= args.speed <= 32767:
        raise RunError("--speed must be in 0..32767 raw units")
    if args.camera == "sim" and not is_sim(args.robot):
        raise RunError(
            "--camera sim needs --robot sim[:WORLD] (one simulated world; for a virtual "
            "Thymio on a pty add --sim-link pty)"
        )
    if args.sim_link != "direct" and not is_sim(args.robot):
        raise RunError("--sim-link needs --robot sim[:WORLD]")
    out = Path(args.record) if args.record else None
    if out is not None and out.exists() and not args.overwrite:
        raise SessionWriteError(f"{out} exists (pass --overwrite to replace it)")
    _check_view_options(args)
    try:
        settings = RunConfig(
            LiveConfig(drive=args.drive, max_staleness_s=args.max_staleness_ms / 1e3),
            AvoidConfig.for_camera(args.speed),
        )
        settings = apply_config_fields(RunConfig, settings, args.config_fields, "robot-ssl run")
    except ValueError as e:
        raise RunError(str(e)) from None
    config = settings.live
    robot_spec, camera_spec = load_specs(args.spec) if args.spec else (RobotSpec(), CameraSpec())
    learning = None
    if args.learn:
        from robot_ssl.learning.online import LearnConfig, learning_for

        predictor, learning = learning_for(
            args.model,
            args.learn,
            camera_offset_s=camera_spec.time_offset_s,
            config=LearnConfig(threads=args.threads),
            seed=args.seed,
        )
        model_line = f"{Path(args.model).name} (PyTorch, learning into {args.learn})"
    else:
        predictor, model_line = open_predictor(args.model, args.threads)
    check_model_camera(
        predictor,
        camera_spec,
        f"the camera of {args.spec or 'the default spec'}",
        allow=args.allow_viewpoint_mismatch,
        prog="robot-ssl run",
        model_name=str(args.model),
    )
    distances = grid_distances(predictor)
    status = _status_printer(sys.stderr.isatty() if args.status is None else args.status)
    view = None
    if args.view is not None or args.view_save:
        from robot_ssl.live.rerun_log import RerunLiveView
        from robot_ssl.live.view_io import DEFAULT_GRPC_PORT, DEFAULT_WEB_PORT

        cfg = predictor.config
        view = RerunLiveView(
            robot_spec,
            cfg.sensor_indices if cfg.sensor_indices is not None else range(5),
            distances,
            serve=args.view is not None,
            web_port=args.view or DEFAULT_WEB_PORT,
            grpc_port=args.view_grpc_port or DEFAULT_GRPC_PORT,
            save=args.view_save,
            camera=camera_spec,
        )
        if learning is not None:
            learning.on_labels = view.on_labels

    with Devices() as dev:
        if view is not None:
            dev.callback(view.close)  # also when the devices fail: the .rrd is not left half
        open_devices(args, dev, robot_spec, camera_spec, sim_link=args.sim_link)
        if dev.robot is None or dev.camera is None:
            raise RunError("run needs both a robot and a camera")
        camera_spec = dev.camera_spec(camera_spec)  # what the camera really delivers
        writer = None
        if out is not None:
            model_cfg = getattr(predictor.config, "to_dict", lambda: {})()
            target = dev.enter_context(replacing_output(out, args.overwrite))
            writer = SessionWriter(
                target,
                robot=robot_spec,
                camera=camera_spec,
                jpeg_quality=args.jpeg_quality,
                metadata={
                    **dev.metadata,
                    "recorded_by": "robot-ssl run",
                    "drive": args.drive,
                    "model": str(args.model),
                    "model_config": model_cfg,
                    "cruise_speed": args.speed,
                },
                truth_sensors=robot_spec.num_prox if dev.truth is not None else None,
                prediction_shape=grid_shape(predictor),
                overwrite=args.overwrite,
            )
            dev.callback(writer.close)
        controller = CameraAvoidController(
            distances,
            settings.avoid,
            sensor_range_m=robot_spec.prox_range_m,
        )
        loop = LiveLoop(
            dev.robot,
            dev.camera,
            predictor,
            distances,
            config,
            clock=dev.clock,
            writer=writer,
            robot_spec=robot_spec,
            controller=controller,
            truth=dev.truth,
            on_status=status,
            observers=[o for o in (learning, view) if o is not None],
        )
        print(
            f"robot-ssl run: {args.drive} with {model_line}, robot {args.robot}"
            f"{'' if args.sim_link == 'direct' or not is_sim(args.robot) else ' via ' + args.sim_link}"
            f", camera {args.camera}; Ctrl-C stops",
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
            result = loop.run(args.duration)
        final = getattr(dev.robot, "targets", None)
    if status is not None and sys.stderr.isatty():
        sys.stderr.write("\n")
    _print_summary(result, final, out)
    if learning is not None:
        print(learning.end_line(), file=sys.stderr)
        learning.check_saved()  # after the motors stopped: exit 2 when the learning is lost
    if view is not None:
        view.check_saved()  # exit 2 when the .rrd could not be written (none is left)
    return 1 if result.stop_reason.startswith("camera failed") else 0


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
