"""`robot-ssl pretrain`: self-supervised pretraining of the detector's encoder on every frame.

robot-ssl pretrain --data sessions/ --out runs/pre --epochs 10 --tasks patch,denoise,odometry
robot-ssl train --data sessions/ --out runs/r1 --init runs/pre/encoder.pt

Every PretrainConfig field (robot_ssl/learning/pretrain_config.py) is an option, generated
from the dataclass: `--patch-size 12`, `--noise-std 0.05`; the README's `--out`,
`--threads`, `--width`, `--quiet` are aliases. In-process:
`robot_ssl.learning.pretrain.pretrain(PretrainConfig(...))`.
"""

from __future__ import annotations

import argparse
import os

from robot_ssl.cli.config_fields import Flag

HELP = "self-supervised pretraining of the detector's encoder (no labels needed)"


def _tasks(text: str) -> tuple[str, ...]:
    """'patch,denoise' -> ('patch', 'denoise'); names are checked by PretrainConfig."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _flags() -> dict[str, Flag]:
    """PretrainConfig's fields as the README spells them (every other one: --field-name)."""
    from robot_ssl.inference.model_config import ARCHS

    return {
        "data": Flag(required=True, metavar="PATH", help="session files or folders"),
        "out_dir": Flag(aliases=("--out",), required=True, metavar="RUN_DIR", help="output"),
        "tasks": Flag(
            parse=_tasks,
            metavar="T1,T2",
            help="pretext tasks, comma-separated: patch, denoise, odometry, rotation, views",
        ),
        "arch": Flag(choices=ARCHS),
        "input_width": Flag(aliases=("--width",), help="network input width"),
        "input_height": Flag(aliases=("--height",), help="network input height"),
        "model": Flag(
            name="--model-field",
            help="a ModelConfig field, e.g. widths=[16,24,32,48] (YAML value; repeatable)",
        ),
        "lr": Flag(help="peak learning rate"),
        "min_lr": Flag(help="where the schedule ends (default: 1e-4, or lr when lower)"),
        "num_threads": Flag(aliases=("--threads",), help="torch threads"),
        "device": Flag(choices=("auto", "cpu", "cuda")),
        "overwrite": Flag(help="replace encoder.pt in RUN_DIR"),
        "progress": Flag(off=("--quiet",), help="progress bars"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli.config_fields import add_config_options
    from robot_ssl.learning.pretrain_config import PretrainConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "outputs: RUN_DIR/{encoder.pt,metrics.json}; then train --init RUN_DIR/encoder.pt"
    )
    add_config_options(parser, PretrainConfig, _flags(), prog="robot-ssl pretrain")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import config_from_args
    from robot_ssl.learning.pretrain import pretrain
    from robot_ssl.learning.pretrain_config import PretrainConfig

    cfg = config_from_args(PretrainConfig, args)
    history = pretrain(cfg)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun: rank 0 reports
        return 0
    last = history[-1]
    losses = "  ".join(f"{k} {last[k]:.4f}" for k in cfg.tasks if k in last)
    print(f"{len(history)} epochs: {losses}; encoder in {cfg.out_dir}/encoder.pt")
    return 0
