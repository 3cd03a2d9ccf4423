"""`robot-ssl replay SESSION`: a video of a session with trajectory, labels and predictions.

Options are generated from `ReplayJob` (robot_ssl/live/replay_job.py), one per field; the
learner's settings as `--learn.lr X` (`--learn DIR`: where it learns into). In-process:
`robot_ssl.live.replay_job.replay(ReplayJob(...))`.
"""

from __future__ import annotations

import argparse

from robot_ssl.cli.config_fields import Flag

HELP = "replay a session (trajectory, camera, labels, predictions) to a video"


def _flags() -> dict[str, Flag]:
    """ReplayJob's fields as the README spells them (every other one: --field-name)."""
    return {
        "session": Flag(positional=True, metavar="SESSION", help="session file (.h5)"),
        "model": Flag(help="detector (checkpoint .pt, TorchScript or ONNX) to overlay"),
        "allow_viewpoint_mismatch": Flag(
            help="use the model although it was trained with another camera viewpoint (size, "
            "field of view, mount, pitch) than this camera's: its probabilities are then "
            "unreliable"
        ),
        "labels": Flag(
            help="labels file of this session (default: <session>.labels.h5 when it exists);"
            " labels of another session (size, SHA-256) are refused"
        ),
        "video": Flag(help="output video (.mp4 or .avi); default <session>.replay.mp4"),
        "rerun": Flag(
            metavar="FILE.rrd",
            help="write a Rerun recording (camera, grids, trajectory, IR readings) instead of "
            "a video",
        ),
        "speed": Flag(help="playback speed factor"),
        "max_frames": Flag(help="stop after this many frames"),
        "window": Flag(
            help="show in a window at recorded timing (needs an OpenCV build with GUI and a "
            "display)"
        ),
        "live": Flag(
            help="feed recorded frames through the live loop at recorded timing (needs --model)"
        ),
        "learn.out_dir": Flag(
            aliases=("--learn",),
            metavar="DIR",
            help="with --live: label frames online and fine-tune the model (a .pt checkpoint) "
            "while replaying; checkpoints go to DIR/online_last.pt (--learn.lr, ...: the "
            "learner's settings)",
        ),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.live.replay_job import ReplayJob

    add_config_options(p, ReplayJob, _flags(), prog="robot-ssl replay")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.live.replay_job import ReplayJob, replay

    return replay(config_from_args(ReplayJob, args))
