"""`robot-ssl sim`: the included simulator from the command line.

    robot-ssl sim record --minutes 10 --seed 3 out/sim3.h5            # world from the seed
    robot-ssl sim record --world corridor --minutes 5 --seed 1 c.h5   # a named world
    robot-ssl sim serve --world arena_boxes --port 33333              # a virtual Thymio
    robot-ssl sim show cluttered --out out/show                       # map + camera PNGs
    robot-ssl sim worlds                                              # list named worlds
    robot-ssl sim generate --seed 7 --split heldout heldout7.yaml     # write a world file

`sim record` runs the simulation as fast as the CPU allows on its simulated clock
(proximity 10 Hz on the robot's own phase, wheels/odometry 100 Hz as streamed by the
onboard program, truth 50 Hz, camera at --fps, stamped at delivery: 80 ms after
mid-exposure with jitter, 1 % lost; --ideal-clocks for the old aligned clocks), drives
the robot with the wander controller (`--drive contact`: by touching, no proximity
used) and writes a standard session through the project's recorder and session writer,
with simulator truth. The same seed gives the
same data. The output appears only when complete (written beside it, then renamed).

The wiring of `sim` to `robot_ssl` is in robot_ssl.simlink; this module parses
arguments and calls it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

HELP = "simulator: record sessions, serve a virtual Thymio, show worlds"


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
    rec.add_argument(
        "--drive",
        choices=("wander", "contact"),
        default="wander",
        help="'wander' explores with the IR sensors (default); 'contact' by touching: "
        "straight on until a stall, shock or tap, back off, turn (no proximity used)",
    )
    rec.add_argument(
        "--random-start",
        action="store_true",
        help="start at a free pose drawn from --seed, not the world's start pose (drives of "
        "one world with different seeds then start apart)",
    )
    rec.add_argument("--frame-format", choices=("jpeg", "raw"), default="jpeg")
    rec.add_argument("--jpeg-quality", type=t.JPEG_QUALITY, default=90)
    rec.add_argument("--overwrite", action="store_true", help="replace OUT.h5 if it exists")
    rec.add_argument("--no-progress", action="store_true", help="no progress bar")
    clocks = rec.add_argument_group(
        "clocks",
        "the robot's and the camera's clocks (defaults: a Raspberry Pi camera through "
        "OpenCV, a Thymio streaming over USB; see docs/simulator.md)",
    )
    clocks.add_argument(
        "--camera-latency-ms",
        type=t.non_negative_float(),
        default=None,
        metavar="MS",
        help="mid-exposure to the frame's stamp, mean (default 80)",
    )
    clocks.add_argument(
        "--camera-jitter-ms",
        type=t.non_negative_float(),
        default=None,
        metavar="MS",
        help="std of the stamp's jitter (default 8)",
    )
    clocks.add_argument(
        "--exposure-ms",
        type=t.non_negative_float(),
        default=None,
        metavar="MS",
        help="shutter time, for motion blur (default 20)",
    )
    clocks.add_argument(
        "--drop-rate",
        type=t.finite_float(min=0, max=1, max_inclusive=False),
        default=None,
        metavar="P",
        help="share of frames lost, in [0, 1) (default 0.01)",
    )
    clocks.add_argument(
        "--ideal-clocks",
        action="store_true",
        help="frames stamped at exposure, none lost, no blur; proximity polled on the "
        "recorder's 10 Hz grid (the old simulator)",
    )
    rec.add_argument(
        "--ir-model",
        choices=("physical", "enki"),  # sim.ir.IR_MODELS
        default=None,
        help="proximity response model (default physical)",
    )

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
    serve.add_argument(
        "--layout",
        choices=("playground", "firmware14"),  # sim.thymio_description.LAYOUTS
        default="playground",
        help="Thymio described on the wire: Aseba Playground's or a firmware-14 robot's",
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


def _specs(spec_path: str | None, width=None, height=None, fps=None) -> tuple[Any, Any]:
    from robot_ssl.core.spec import CameraSpec, RobotSpec, load_specs

    robot, camera = load_specs(spec_path) if spec_path else (RobotSpec(), CameraSpec())
    return robot, camera.with_overrides(width, height, fps)


# --------------------------------------------------------------------------- commands


def _record(args: argparse.Namespace) -> int:
    from robot_ssl.simlink.simulator import record_session

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
        camera_latency_ms=args.camera_latency_ms,
        camera_jitter_ms=args.camera_jitter_ms,
        exposure_ms=args.exposure_ms,
        drop_rate=args.drop_rate,
        ideal_clocks=args.ideal_clocks,
        ir_model=args.ir_model,
        drive=args.drive,
        start_pose="random" if args.random_start else None,
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
    from robot_ssl.simlink.simulator import show_world

    robot, camera = _specs(args.spec, args.width, args.height)
    paths, (x, y, th) = show_world(
        args.world,
        args.seed,
        args.out,
        split=args.split,
        robot_spec=robot,
        camera_spec=camera,
        start_pose=args.pose,
        wander_s=args.wander,
    )
    print(
        f"{paths[0]}\n{paths[1]}\npose x={x:.3f} m y={y:.3f} m theta={th:.3f} rad", file=sys.stderr
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from robot_ssl.simlink.simulator import SimCommandError, serve_virtual_thymio

    if not args.port and not args.pty:
        raise SimCommandError("nothing to serve on: give --port and/or --pty")
    robot, camera = _specs(args.spec)

    def announce(url: str, world: str) -> None:
        print(f"virtual Thymio on {url} (world {world})", file=sys.stderr, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve_virtual_thymio(
            args.world,
            args.seed,
            split=args.split,
            robot_spec=robot,
            camera_spec=camera,
            host=args.host,
            port=args.port,
            pty=args.pty,
            time_scale=args.time_scale,
            duration_s=args.duration,
            announce=announce,
            layout=args.layout,
        )
    return 0


def _worlds(args: argparse.Namespace) -> int:
    from robot_ssl.simlink.simulator import named_worlds

    rows, folder = named_worlds()
    for name, w in rows:
        print(
            f"{name:<20} {w.split:<8} {w.arena.width_m:.1f} x {w.arena.depth_m:.1f} m, "
            f"{len(w.obstacles)} obstacles"
        )
    print(f"(in {folder}; any other YAML file works too)", file=sys.stderr)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from robot_ssl.simlink.simulator import write_generated_world

    w = write_generated_world(args.out, args.seed, args.split, args.name)
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
    from robot_ssl.simlink.simulator import sim_errors

    with sim_errors():
        return _COMMANDS[args.sim_command](args)
