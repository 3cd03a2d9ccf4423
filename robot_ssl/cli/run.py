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

Options are generated from `RunConfig` (robot_ssl/live/run.py), one per field, nested
ones as `--live.sensor-hz X`, `--avoid.cruise-speed N`, `--learn.lr X`; the README's
`--drive`, `--speed`, `--duration`, `--max-staleness-ms`, `--learn DIR` are aliases. In-process:
`robot_ssl.live.run.run(RunConfig(...))`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robot_ssl.cli.config_fields import Flag

if TYPE_CHECKING:
    from robot_ssl.live.run import RunConfig

HELP = "live obstacle detection on the robot (monitor or avoid)"


def _milliseconds(text: str) -> float:
    """`--max-staleness-ms MS` as seconds."""
    from robot_ssl.cli import argtypes as t

    return t.finite_float(0, 180, min_inclusive=False)(text) / 1e3


def _flags() -> dict[str, Flag]:
    """RunConfig's fields as the README spells them (every other one: --field-name)."""
    from robot_ssl.cli.argtypes import device_flags

    return {
        "model": Flag(required=True, metavar="M", help="model: .onnx, .pt or TorchScript"),
        **device_flags(none=False),
        "live.drive": Flag(
            aliases=("--drive",),
            choices=("monitor", "avoid"),
            help="'monitor': report and log only, never move; 'avoid': drive, slowing and "
            "turning away from obstacles seen by the camera",
        ),
        "live.max_staleness_s": Flag(
            aliases=("--max-staleness-ms",),
            alias_parse={"--max-staleness-ms": _milliseconds},
            help="watchdog: stop when the newest command's frame is older (--max-staleness-ms:"
            " in ms)",
        ),
        "live.realtime_priority": Flag(
            help="the drive loop's threads on real-time round-robin scheduling at this priority"
            " when the OS allows it (root, CAP_SYS_NICE or an rtprio limit: docs/live.md), so"
            " that no other program on the robot's cores delays them; 0: normal priority"
        ),
        "avoid.cruise_speed": Flag(aliases=("--speed",), metavar="UNITS", help="cruise speed"),
        "record": Flag(metavar="OUT.h5", help="record a session file"),
        "overwrite": Flag(help="replace --record's file if it exists"),
        "duration_s": Flag(aliases=("--duration",), metavar="S", help="stop after S s"),
        "seed": Flag(help="simulator seed (with --robot sim)"),
        "spec": Flag(metavar="FILE", help="robot/camera description (YAML or JSON)"),
        "allow_viewpoint_mismatch": Flag(
            help="use the model although it was trained with another camera viewpoint (size, "
            "field of view, mount, pitch) than this camera's: its probabilities are then "
            "unreliable"
        ),
        "threads": Flag(help="inference threads"),
        "jpeg_quality": Flag(help="recorded JPEG quality"),
        "view": Flag(
            const=9090,
            metavar="PORT",
            help="serve a live Rerun view (camera, predicted grid, map, IR, latency, learner) "
            "to browsers on the network: web page on PORT (9090 when not given), the URL to "
            "open is printed (needs the view extra)",
        ),
        "view_grpc_port": Flag(
            metavar="PORT",
            help="with --view: the port of the view's data (Rerun gRPC; default 9876); give "
            "each of two live views on one machine its own --view PORT and --view-grpc-port",
        ),
        "view_save": Flag(metavar="FILE.rrd", help="also write the live view to a file"),
        "learn.out_dir": Flag(
            aliases=("--learn",),
            metavar="DIR",
            help="learn while driving: label frames online and fine-tune the model (a .pt "
            "checkpoint) in a background thread (--threads threads); checkpoints in DIR "
            "(--learn.lr, --learn.ema, ...: the learner's settings)",
        ),
        "learn.threads": Flag(
            help="the learner's torch threads: 1 or --threads (torch's count is per process, "
            "so the learner uses run's --threads)"
        ),
        "status": Flag(help="live status line on stderr (default: when stderr is a terminal)"),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.argtypes import add_device_config_options
    from robot_ssl.live.run import RunConfig

    add_device_config_options(p, RunConfig, _flags(), "robot-ssl run")


def config_from(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of a parsed command line, its devices parsed from their spelling."""
    from robot_ssl.cli.argtypes import device_config_from
    from robot_ssl.live.run import RunConfig

    return device_config_from(args, RunConfig)


def run(args: argparse.Namespace) -> int:
    from robot_ssl.live.run import run as run_live

    return run_live(config_from(args)).exit_status
