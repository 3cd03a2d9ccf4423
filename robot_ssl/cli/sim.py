"""`robot-ssl sim`: the included simulator from the command line.

    robot-ssl sim record --minutes 10 --seed 3 out/sim3.h5            # world from the seed
    robot-ssl sim record --world corridor --minutes 5 --seed 1 c.h5   # a named world
    robot-ssl sim serve --world arena_boxes --port 33333              # a virtual Thymio
    robot-ssl sim show cluttered --out out/show                       # map + camera PNGs
    robot-ssl sim worlds                                              # list named worlds
    robot-ssl sim generate --seed 7 --split heldout heldout7.yaml     # write a world file

`sim record` runs the simulation as fast as the CPU allows on its simulated clock
(proximity 10 Hz, wheels/odometry/truth 50 Hz, camera at --fps), drives the robot
with the wander controller and writes a standard session through the project's
recorder and session writer, with simulator truth. The same seed gives the same
data. The output appears only when complete (written beside it, then renamed).

This is the only place that wires `sim` to `robot_ssl`: the simulator takes plain
parameters, built here from RobotSpec / CameraSpec.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any

from robot_ssl.core.errors import RobotSSLError

HELP = "simulator: record sessions, serve a virtual Thymio, show worlds"


class SimCommandError(RobotSSLError):
    """A simulator command failed (bad world, bad option); printed as one line."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t

    sub = p.add_subparsers(dest="sim_command", metavar="COMMAND")
    sub.required = True

    def world_args(q: argparse.ArgumentParser, positional: bool = False) -> None:
        help_world = (
            "world: a name in data/worlds (see `sim worlds`), a YAML file, or omitted "
            "for a world generated from --seed"
        )
        if positional:
            q.add_argument("world", nargs="?", default=None, help=help_world)
        else:
            q.add_argument("--world", default=None, help=help_world)
        q.add_argument("--seed", type=t.SEED, default=0, help="simulation (and world) seed")
        q.add_argument(
            "--split",
            choices=("train", "heldout"),
            default="train",
            help="palette/texture set of generated worlds (default train)",
        )
        q.add_argument("--spec", default=None, help="robot/camera description (YAML or JSON)")

    rec = sub.add_parser("record", help="record a simulated session (faster than real time)")
    rec.add_argument("out", metavar="OUT.h5", help="session file to write")
    world_args(rec)
    rec.add_argument("--minutes", type=t.positive_float(), required=True, help="simulated minutes")
    rec.add_argument("--width", type=t.IMAGE_SIZE, default=None, help="image width (default: spec)")
    rec.add_argument(
        "--height", type=t.IMAGE_SIZE, default=None, help="image height (default: spec)"
    )
    rec.add_argument(
        "--fps", type=t.positive_float(), default=None, help="frame rate (default: spec)"
    )
    rec.add_argument("--frame-format", choices=("jpeg", "raw"), default="jpeg")
    rec.add_argument("--jpeg-quality", type=t.JPEG_QUALITY, default=90)
    rec.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    rec.add_argument("--no-progress", action="store_true", help="no progress bar")

    serve = sub.add_parser("serve", help="serve a simulated Thymio over the Aseba protocol")
    world_args(serve)
    serve.add_argument("--port", type=t.PORT, default=33333, help="TCP port (0: none)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--pty", action="store_true", help="also serve on a pseudo-terminal")
    serve.add_argument(
        "--time-scale", type=t.positive_float(), default=1.0, help="sim seconds per second"
    )
    serve.add_argument(
        "--duration", type=t.positive_float(), default=None, help="stop after S seconds"
    )

    show = sub.add_parser("show", help="write a top-down map PNG and a camera view PNG")
    world_args(show, positional=True)
    show.add_argument("--out", default=".", help="output directory (default: here)")
    show.add_argument(
        "--width", type=t.IMAGE_SIZE, default=None, help="image width (default: spec)"
    )
    show.add_argument(
        "--height", type=t.IMAGE_SIZE, default=None, help="image height (default: spec)"
    )
    show.add_argument(
        "--pose",
        type=t.finite_float(),
        nargs=3,
        metavar=("X", "Y", "THETA"),
        help="robot pose (m, rad)",
    )
    show.add_argument(
        "--wander",
        type=t.non_negative_float(),
        default=0.0,
        metavar="S",
        help="wander S seconds first",
    )

    sub.add_parser("worlds", help="list the named worlds")

    gen = sub.add_parser("generate", help="write a generated world as YAML")
    gen.add_argument("out", metavar="OUT.yaml")
    gen.add_argument("--seed", type=t.SEED, default=0)
    gen.add_argument("--split", choices=("train", "heldout"), default="train")
    gen.add_argument("--name", default=None, help="world name (default gen_<split>_<seed>)")


# --------------------------------------------------------------------------- wiring


def sim_params(robot_spec: Any, camera_spec: Any) -> tuple[Any, Any, Any]:
    """(DriveParams, IRParams, CameraParams) of the simulator from RobotSpec / CameraSpec."""
    from sim.camera import CameraParams
    from sim.ir import IRParams
    from sim.kinematics import DriveParams

    drive = DriveParams(
        axle_length_m=robot_spec.axle_length_m,
        speed_m_per_unit=robot_spec.speed_m_per_unit,
        max_speed_units=robot_spec.max_speed_units,
        body_radius_m=robot_spec.body_radius_m,
    )
    ir = IRParams(
        poses=tuple(robot_spec.prox_poses()),
        range_m=robot_spec.prox_range_m,
        m=float(robot_spec.prox_max),
    )
    camera = CameraParams(
        width=camera_spec.width,
        height=camera_spec.height,
        hfov_rad=camera_spec.hfov_rad,
        fx=camera_spec.fx,
        fy=camera_spec.fy,
        cx=camera_spec.cx,
        cy=camera_spec.cy,
        x_m=camera_spec.x_m,
        y_m=camera_spec.y_m,
        z_m=camera_spec.z_m,
        pitch_rad=camera_spec.pitch_rad,
        fps=camera_spec.fps,
    )
    return drive, ir, camera


def wander_controller(robot_spec: Any, seed: int) -> Any:
    """The wander controller fitted to the robot's sensors and geometry."""
    from sim.controller import WanderConfig, WanderController

    front = tuple(robot_spec.front_sensor_indices)
    return WanderController(
        WanderConfig(
            front_sensors=front,
            rear_sensors=tuple(i for i in range(robot_spec.num_prox) if i not in front),
            axle_length_m=robot_spec.axle_length_m,
            speed_m_per_unit=robot_spec.speed_m_per_unit,
        ),
        seed=seed,
    )


def make_simulator(
    world: Any = None,
    seed: int = 0,
    *,
    split: str = "heldout",
    robot_spec: Any = None,
    camera_spec: Any = None,
    camera: bool = True,
    start_ns: int = 0,
    realtime: bool = False,
    start_pose: Any = None,
) -> Any:
    """A Simulator for `world` (a World, a name or file, or None: generated from `seed` in
    `split`) with the robot's and camera's parameters from the specs (Thymio defaults)."""
    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from sim.simulator import Simulator

    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    if world is None or isinstance(world, (str, Path)):
        world = resolve_world(str(world) if world is not None else None, seed, split)
    drive, ir, cam = sim_params(robot_spec, camera_spec)
    return Simulator(
        world,
        seed=seed,
        drive=drive,
        ir=ir,
        camera=cam if camera else None,
        start_ns=start_ns,
        realtime=realtime,
        start_pose=start_pose,
    )


def resolve_world(world: str | None, seed: int, split: str = "train") -> Any:
    """A named/file world, or one generated from the seed."""
    from sim.world import load_world
    from sim.worldgen import WorldGenConfig, generate_world

    if world:
        return load_world(world)
    return generate_world(seed, WorldGenConfig(split=split))


def _specs(spec_path: str | None, width=None, height=None, fps=None) -> tuple[Any, Any]:
    from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs

    robot, camera = load_specs(spec_path) if spec_path else (RobotSpec(), CameraSpec())
    changes = {k: v for k, v in (("width", width), ("height", height), ("fps", fps)) if v}
    return robot, dataclasses.replace(camera, **changes) if changes else camera


class _ProgressClock:
    """The simulator's clock, advancing a progress bar in simulated seconds."""

    def __init__(self, clock: Any, bar: Any) -> None:
        self.clock = clock
        self.bar = bar
        self._shown_ns = clock.now_ns()

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def sleep_until_ns(self, t_ns: int) -> None:
        self.clock.sleep_until_ns(t_ns)
        now = self.clock.now_ns()
        if now - self._shown_ns >= 250_000_000:
            self.bar.update((now - self._shown_ns) / 1e9)
            self._shown_ns = now


def record_session(
    out: str | os.PathLike,
    *,
    world: str | None = None,
    seed: int = 0,
    minutes: float = 1.0,
    split: str = "train",
    robot_spec: Any = None,
    camera_spec: Any = None,
    frame_format: str = "jpeg",
    jpeg_quality: int = 90,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """Record `minutes` of simulated wandering into the session file `out`; returns the
    recorder's RecordingStats. The file appears only when complete."""
    from tqdm import tqdm

    from robot_ssl.core.spec import CameraSpec, RobotSpec
    from robot_ssl.io.outputs import atomic_output
    from robot_ssl.io.session import SessionWriteError, SessionWriter
    from robot_ssl.recording.recorder import Recorder, RecorderConfig

    out = Path(out)
    if out.exists() and not overwrite:
        raise SessionWriteError(f"{out} exists (pass --overwrite to replace it)")
    if not minutes > 0 or not math.isfinite(minutes):
        raise SimCommandError("--minutes must be > 0")
    robot_spec = robot_spec or RobotSpec()
    camera_spec = camera_spec or CameraSpec()
    sim = make_simulator(world, seed, split=split, robot_spec=robot_spec, camera_spec=camera_spec)
    w = sim.world
    metadata = {
        "world": w.name,
        "seed": seed,
        "source": "sim",
        "split": w.split,
        "recorded_by": "robot-ssl sim record",
    }
    duration_s = minutes * 60.0
    # written beside `out` under a temporary name, renamed when complete; removed on any
    # error, Ctrl-C or SIGTERM (robot_ssl.io.outputs)
    with atomic_output(out) as tmp:
        writer = SessionWriter(
            tmp,
            robot=robot_spec,
            camera=camera_spec,
            frame_format=frame_format,
            jpeg_quality=jpeg_quality,
            metadata=metadata,
            truth_sensors=robot_spec.num_prox,
            overwrite=True,
        )
        bar = tqdm(
            total=round(duration_s, 3),
            unit="sim s",
            disable=not progress,
            desc=f"sim {w.name}",
            bar_format=(
                "{l_bar}{bar}| {n:.0f}/{total:.0f} sim s [{elapsed}<{remaining}, {rate_fmt}]"
            ),
        )
        try:
            recorder = Recorder(
                sim.robot,
                sim.camera,
                writer,
                RecorderConfig(
                    camera_fps=sim.camera_params.fps, jpeg_quality=jpeg_quality, status=False
                ),
                clock=_ProgressClock(sim.clock, bar),
                controller=wander_controller(robot_spec, seed),
                truth=sim.robot.truth,
            )
            stats = recorder.run_stepped(duration_s)
            writer.close()
            bar.update(max(0.0, bar.total - bar.n))
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise
        finally:
            bar.close()
    return stats


# --------------------------------------------------------------------------- commands


def _record(args: argparse.Namespace) -> int:
    robot, camera = _specs(args.spec, args.width, args.height, args.fps)
    stats = record_session(
        args.out,
        world=args.world,
        seed=args.seed,
        minutes=args.minutes,
        split=args.split,
        robot_spec=robot,
        camera_spec=camera,
        frame_format=args.frame_format,
        jpeg_quality=args.jpeg_quality,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    c = stats.counts
    print(
        f"recorded {args.minutes * 60:g} simulated s in {stats.elapsed_s:.1f} s "
        f"({args.minutes * 60 / max(stats.elapsed_s, 1e-9):.1f}x real time) to {args.out}: "
        f"{c.get('camera', 0)} frames, {c.get('proximity', 0)} proximity, "
        f"{c.get('wheels', 0)} wheel rows, {stats.size_bytes / 1e6:.1f} MB",
        file=sys.stderr,
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from robot_ssl.io.outputs import atomic_output, check_writable
    from sim.topdown import draw_topdown

    robot, camera = _specs(args.spec, args.width, args.height)
    sim = make_simulator(
        args.world,
        args.seed,
        split=args.split,
        robot_spec=robot,
        camera_spec=camera,
        start_pose=args.pose,
    )
    w = sim.world
    trajectory = [sim.pose]
    if args.wander > 0:
        ctrl = wander_controller(robot, args.seed)
        end = sim.clock.now_ns() + int(args.wander * 1e9)
        while sim.clock.now_ns() < end:
            r = sim.robot.read()
            sim.robot.set_wheel_targets(*ctrl.command(r.proximity, r.t_ns))
            sim.clock.sleep_until_ns(r.t_ns + 20_000_000)
            trajectory.append(sim.pose)
    out = check_writable(args.out)  # one line and exit 2 when the folder cannot be written
    top = draw_topdown(
        w,
        sim.pose,
        ir=sim.ir,
        body_radius_m=sim.drive_params.body_radius_m,
        hfov_rad=sim.camera_params.hfov_rad,
        camera_x_m=sim.camera_params.x_m,
        trajectory=np.array(trajectory) if len(trajectory) > 1 else None,
    )
    view = sim.renderer.render(sim.pose, sim.t_s, np.random.default_rng([args.seed, 0xC0]))
    paths = (out / f"{w.name}_topdown.png", out / f"{w.name}_camera.png")
    for path, img in zip(paths, (top, view)):
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise SimCommandError(f"cannot encode {path}")
        with atomic_output(path) as tmp:
            tmp.write_bytes(png.tobytes())
    x, y, th = sim.pose
    print(
        f"{paths[0]}\n{paths[1]}\npose x={x:.3f} m y={y:.3f} m theta={th:.3f} rad", file=sys.stderr
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import threading

    from sim.virtual_thymio import VirtualThymio

    robot, camera = _specs(args.spec)
    sim = make_simulator(
        args.world, args.seed, split=args.split, robot_spec=robot, camera_spec=camera, camera=False
    )
    w = sim.world
    if not args.port and not args.pty:
        raise SimCommandError("nothing to serve on: give --port and/or --pty")
    stop = threading.Event()
    with VirtualThymio(sim, time_scale=args.time_scale) as vt:
        if args.port:
            host, port = vt.serve_tcp(args.host, args.port)
            print(f"virtual Thymio on socket://{host}:{port} (world {w.name})", file=sys.stderr)
        if args.pty:
            print(f"virtual Thymio on {vt.serve_pty()} (world {w.name})", file=sys.stderr)
        sys.stderr.flush()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait(args.duration)
    return 0


def _worlds(args: argparse.Namespace) -> int:
    from sim.world import WORLDS_DIR, list_worlds, load_world

    for name in list_worlds():
        w = load_world(name)
        print(
            f"{name:<20} {w.split:<8} {w.arena.width_m:.1f} x {w.arena.depth_m:.1f} m, "
            f"{len(w.obstacles)} obstacles"
        )
    print(f"(in {WORLDS_DIR}; any other YAML file works too)", file=sys.stderr)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from robot_ssl.io.outputs import atomic_output
    from sim.world import save_world
    from sim.worldgen import WorldGenConfig, generate_world

    w = generate_world(args.seed, WorldGenConfig(split=args.split), name=args.name)
    with atomic_output(args.out) as tmp:  # one line and exit 2 when it cannot be written
        save_world(w, tmp)
    print(f"{args.out}: {w.name}, {len(w.obstacles)} obstacles", file=sys.stderr)
    return 0


_COMMANDS = {
    "record": _record,
    "serve": _serve,
    "show": _show,
    "worlds": _worlds,
    "generate": _generate,
}


def run(args: argparse.Namespace) -> int:
    from sim.errors import SimError

    try:
        return _COMMANDS[args.sim_command](args)
    except SimError as e:
        raise SimCommandError(str(e)) from None
