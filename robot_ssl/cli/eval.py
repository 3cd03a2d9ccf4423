"""`robot-ssl eval`: ROC AUC per (sensor, distance) of a detector on labelled sessions.

Every EvalConfig field (robot_ssl/learning/eval_config.py) is an option, generated from
the dataclass; the README's `--json`, `--out`, `--labels`, `--threads`, `--quiet`,
`--no-cache` are aliases. In-process: `robot_ssl.learning.evaluate.evaluate_config(cfg)`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robot_ssl.cli.config_fields import Flag

if TYPE_CHECKING:
    from robot_ssl.learning.eval_config import EvalConfig

HELP = "evaluate a detector: ROC AUC per (sensor, distance)"


def _flags() -> dict[str, Flag]:
    """EvalConfig's fields as the README spells them (every other one: --field-name)."""
    from robot_ssl.cli.argtypes import data_flags
    from robot_ssl.learning.train_config import default_cache_dir

    return {
        "model": Flag(
            required=True, metavar="M", help="checkpoint (.pt), TorchScript (.ts) or ONNX (.onnx)"
        ),
        **data_flags(default_cache_dir()),
        "json_out": Flag(aliases=("--json",), metavar="OUT", help="write the JSON report here"),
        "out_dir": Flag(
            aliases=("--out",),
            metavar="DIR",
            help="write report.json, auc_heatmap.png, auc_vs_distance.png",
        ),
        "bootstrap": Flag(help="bootstrap replicates (0: none)"),
        "block_s": Flag(
            metavar="S",
            help="block bootstrap: resample contiguous S-second blocks of each session "
            "(frames at 30 fps are not independent; 0: resample single frames)",
        ),
        "bootstrap_unit": Flag(
            choices=("block", "session"),
            help="what the bootstrap resamples: S-second blocks of each session (block), or "
            "whole sessions, per world (session: several recorded drives of each world)",
        ),
        "truth": Flag(
            help="also score against simulator truth (sessions that have it), per world and band"
        ),
        "num_threads": Flag(aliases=("--threads",), help="inference threads (runtime default)"),
        "progress": Flag(off=("--quiet",), help="progress bars and the table"),
        "allow_viewpoint_mismatch": Flag(
            help="use the model although it was trained with another camera viewpoint (size, "
            "field of view, mount, pitch) than the sessions': its probabilities are then "
            "unreliable"
        ),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.learning.eval_config import EvalConfig

    add_config_options(parser, EvalConfig, _flags(), prog="robot-ssl eval")


def config_from(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig of a parsed command line (frames cached by default, as for train)."""
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.learning.eval_config import EvalConfig
    from robot_ssl.learning.train_config import default_cache_dir

    return config_from_args(EvalConfig, args, cli_defaults={"cache_dir": str(default_cache_dir())})


def run(args: argparse.Namespace) -> int:
    from robot_ssl.learning.evaluate import run_eval

    run_eval(config_from(args))
    return 0
