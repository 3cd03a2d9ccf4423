"""`robot-ssl record`: record a session from a robot (or the simulator) and a camera.

    robot-ssl record --robot /dev/ttyACM0 --camera 0 --duration 600 --drive wander run1.h5
    robot-ssl record --robot socket://127.0.0.1:33333 --camera clip.avi --drive none s.h5
    robot-ssl record --robot sim --camera sim --duration 60 sim.h5

Devices are opened (and checked) before the output file is created, so a
missing robot or camera costs one line and exit status 2, and leaves nothing
behind. Ctrl-C or SIGTERM stops the recording and finalises the file; the
motors stop on every exit path when the recorder drove them. With --overwrite
an existing OUT.h5 is replaced only when the new session is complete (it is
written beside it as ``.OUT.h5.tmp-PID.h5`` until then), so a crash or a
kill -9 during the recording leaves the old session intact.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from robot_ssl.recording.device_setup import Devices

HELP = "record a session from a robot (or the simulator) and a camera"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t

    p.add_argument("out", metavar="OUT.h5", help="session file to write")
    p.add_argument(
        "--robot",
        required=True,
        metavar="URL|sim[:WORLD]|none",
        help="serial device (/dev/ttyACM0), pyserial URL (socket://host:33333), 'auto' (first "
        "Thymio port), 'sim[:WORLD]' (the simulator in-process, real time) or 'none'",
    )
    p.add_argument(
        "--camera",
        required=True,
        metavar="SRC|sim|synthetic|none",
        help="device index (0), /dev/videoN, GStreamer pipeline, URL, video file (played at "
        "its frame rate), 'sim' (needs --robot sim), 'synthetic[:WxH[@FPS]]' or 'none'",
    )
    p.add_argument(
        "--duration", type=t.positive_float(), default=None, metavar="S", help="stop after S s"
    )
    p.add_argument(
        "--drive",
        choices=("wander", "none"),
        default="none",
        help="'wander': explore with the IR sensors while recording; 'none': something else "
        "drives (default)",
    )
    t.add_camera_options(p)
    t.add_robot_link_options(p)
    t.add_sim_link_option(p)
    p.add_argument("--spec", default=None, help="robot/camera description (YAML or JSON)")
    p.add_argument(
        "--prox-hz", type=t.positive_float(), default=10.0, help="proximity rate (default 10)"
    )
    p.add_argument(
        "--wheels-hz",
        type=t.positive_float(),
        default=50.0,
        help="wheel speed rate (default 50)",
    )
    p.add_argument(
        "--jpeg-quality", type=t.JPEG_QUALITY, default=90, help="JPEG quality (default 90)"
    )
    p.add_argument("--seed", type=t.SEED, default=0, help="simulator seed (with --robot sim)")
    p.add_argument(
        "--min-free-mb",
        type=t.non_negative_float(),
        default=32.0,
        help="stop cleanly when the disk has less than this left (default 32)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    p.add_argument(
        "--status",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="status line on stderr (default: when stderr is a terminal)",
    )


def _controller(args: argparse.Namespace, dev: Devices, robot_spec) -> Any:
    if args.drive == "none":
        return None
    if dev.robot is None:
        from robot_ssl.recording.recorder import RecorderError

        raise RecorderError("--drive wander needs a robot")
    from robot_ssl.recording.wander import wander_controller

    return wander_controller(robot_spec, args.seed)


def run(args: argparse.Namespace) -> int:
    from robot_ssl.core.outputs import free_bytes, replacing_output
    from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs
    from robot_ssl.io.session import SessionWriteError, SessionWriter
    from robot_ssl.recording.recorder import Recorder, RecorderConfig, RecorderError
    from robot_ssl.runtime.stopping import stop_on_signals
    from robot_ssl.simlink.devices import is_sim, open_devices

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SessionWriteError(f"{out} exists (pass --overwrite to replace it)")
    if args.duration is not None and args.duration <= 0:
        raise RecorderError("--duration must be > 0")
    if args.camera == "sim" and not args.robot.startswith("sim"):
        raise RecorderError("--camera sim needs --robot sim[:WORLD] (one simulated world)")
    if args.sim_link != "direct" and not is_sim(args.robot):
        raise RecorderError("--sim-link needs --robot sim[:WORLD]")
    robot_spec, camera_spec = load_specs(args.spec) if args.spec else (RobotSpec(), CameraSpec())
    config = RecorderConfig(
        prox_hz=args.prox_hz,
        wheels_hz=args.wheels_hz,
        jpeg_quality=args.jpeg_quality,
        status=args.status,
        min_free_bytes=int(args.min_free_mb * 1e6),
    )
    free = free_bytes(out.absolute())
    if free is not None and free < config.min_free_bytes:
        raise RecorderError(
            f"only {max(free, 0) / 1e6:.1f} MB free for {out} (need --min-free-mb "
            f"{args.min_free_mb:g}): free some space first"
        )
    with Devices() as dev:
        dev.metadata = {"recorded_by": "robot-ssl record", "drive": args.drive}
        open_devices(args, dev, robot_spec, camera_spec, sim_link=args.sim_link)
        if dev.robot is None and dev.camera is None:
            raise RecorderError("nothing to record: --robot none and --camera none")
        camera_spec = dev.camera_spec(camera_spec)  # what the camera really delivers
        controller = _controller(args, dev, robot_spec)
        with replacing_output(out, args.overwrite) as target:
            writer = SessionWriter(
                target,
                robot=robot_spec,
                camera=camera_spec,
                jpeg_quality=args.jpeg_quality,
                metadata=dev.metadata,
                truth_sensors=robot_spec.num_prox if dev.truth is not None else None,
                flush_interval_s=config.flush_interval_s,
                overwrite=args.overwrite,
            )
            try:
                recorder = Recorder(
                    dev.robot,
                    dev.camera,
                    writer,
                    config,
                    clock=dev.clock,
                    controller=controller,
                    truth=dev.truth,
                )
                with stop_on_signals(recorder):
                    stats = recorder.run(args.duration)
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    writer.close()
                raise
            writer.close()
    c = stats.counts
    print(
        f"recorded {stats.elapsed_s:.1f} s to {out}: {c.get('camera', 0)} frames "
        f"({stats.frames_dropped} dropped), {c.get('proximity', 0)} proximity, "
        f"{c.get('wheels', 0)} wheel rows, {stats.robot_gaps} robot gaps, "
        f"{out.stat().st_size / 1e6:.1f} MB ({stats.stop_reason})",
        file=sys.stderr,
    )
    if stats.disk_full:
        print(f"robot-ssl record: {stats.stop_reason}; {out} is complete", file=sys.stderr)
        return 1
    return 0
