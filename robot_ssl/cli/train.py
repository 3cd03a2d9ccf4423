"""`robot-ssl train`: train the long-range obstacle detector on labelled sessions.

Every TrainConfig field is an option, generated from the dataclass (cli/config_fields.py):
`--warmup-steps 50`, `--augment.noise-std 0.05`, `--model-field widths=[8,8,8,8]`; the
README's spellings (`--out`, `--threads`, `--quiet`, `--no-flip`, ...) are aliases.
In-process: `robot_ssl.learning.train.run_train(TrainConfig(...))` (the verb: notes and
result line) or `robot_ssl.learning.train.train(cfg)` (the training alone).

Single process:   robot-ssl train --data sessions/ --out runs/r1
Several processes (DistributedDataParallel; gloo on CPU, nccl on GPU):
                  torchrun --nproc_per_node=2 -m robot_ssl train --data sessions/ --out runs/r1
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from robot_ssl.cli.config_fields import Flag

if TYPE_CHECKING:
    from robot_ssl.learning.train_config import TrainConfig

HELP = "train the long-range obstacle detector"


def _flags() -> dict[str, Flag]:
    """TrainConfig's fields as the README spells them (every other field: --field-name)."""
    from robot_ssl.cli.argtypes import data_flags
    from robot_ssl.inference.model_config import ARCHS
    from robot_ssl.learning.train_config import (
        SCHEDULES,
        SPLIT_GROUPS,
        TARGETS,
        default_cache_dir,
    )

    return {
        **data_flags(default_cache_dir()),
        "out_dir": Flag(aliases=("--out",), required=True, metavar="RUN_DIR", help="run folder"),
        "arch": Flag(choices=ARCHS),
        "input_width": Flag(aliases=("--width",), help="network input width"),
        "input_height": Flag(aliases=("--height",), help="network input height"),
        "model": Flag(
            name="--model-field",
            help="a ModelConfig field, e.g. widths=[16,24,32,48] or dropout=0.1 "
            "(YAML value; repeatable)",
        ),
        "lr": Flag(help="peak learning rate (AdamW)"),
        "min_lr": Flag(help="where the schedule ends (default: 1e-4, or lr when lower)"),
        "schedule": Flag(choices=SCHEDULES),
        "pos_weight": Flag(help="weight of positive cells in the loss"),
        "augment.enabled": Flag(off=("--no-augment",), help="augmentation at all"),
        "augment.hflip": Flag(off=("--no-flip",), help="horizontal flip"),
        "val_worlds": Flag(metavar="WORLD", help="validation worlds"),
        "val_fraction": Flag(help="fraction of sessions, worlds or time blocks for validation"),
        "split_by": Flag(
            choices=SPLIT_GROUPS,
            help="validation: whole sessions, whole worlds, or time blocks of every session",
        ),
        "num_threads": Flag(aliases=("--threads",), help="torch threads per process"),
        "device": Flag(choices=("auto", "cpu", "cuda")),
        "resume": Flag(help="continue RUN_DIR/last.pt"),
        "overwrite": Flag(help="replace a run in RUN_DIR"),
        "progress": Flag(off=("--quiet",), help="progress bars"),
        "init": Flag(
            metavar="ENCODER.pt",
            help="start from the encoder weights of `robot-ssl pretrain` (same arch and widths)",
        ),
        "targets": Flag(
            choices=TARGETS,
            help="train on the auto-labels, or on the simulator's truth of the same frames",
        ),
        "consistency_weight": Flag(
            help="weight of the state-consistency loss between frames a short drive apart",
        ),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.learning.train_config import TrainConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "multi-process: torchrun --nproc_per_node=2 -m robot_ssl train --data ... --out ...\n"
        "outputs: RUN_DIR/{best.pt,last.pt,metrics.csv,metrics.json,curves.png,config.json}"
    )
    add_config_options(
        parser,
        TrainConfig,
        _flags(),
        exclusive=[("val_worlds", "val_fraction"), ("resume", "overwrite")],
        prog="robot-ssl train",
    )


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of a parsed command line: the fields given, the rest as the
    dataclass says, except the frame cache, which the command line keeps by default."""
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.learning.train_config import TrainConfig, default_cache_dir

    return config_from_args(TrainConfig, args, cli_defaults={"cache_dir": str(default_cache_dir())})


def run(args: argparse.Namespace) -> int:
    from robot_ssl.learning.train import run_train

    run_train(config_from(args))
    return 0
