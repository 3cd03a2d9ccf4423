"""`robot-ssl train`: train the long-range obstacle detector on labelled sessions.

Single process:   robot-ssl train --data sessions/ --out runs/r1
Several processes (DistributedDataParallel; gloo on CPU, nccl on GPU):
                  torchrun --nproc_per_node=2 -m robot_ssl train --data sessions/ --out runs/r1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

HELP = "train the long-range obstacle detector"
CONFIG_FIELDS = True  # every TrainConfig field: --warmup-steps N, --augment.noise-std X, ...


def default_cache_dir() -> Path:
    """Where decoded, resized frames are cached between runs ($XDG_CACHE_HOME/robot-ssl/frames)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "robot-ssl" / "frames"


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --labels, --cache-dir, --no-cache (shared by train and eval)."""
    parser.add_argument(
        "--data", nargs="+", required=True, metavar="PATH", help="session files or folders"
    )
    parser.add_argument(
        "--labels", metavar="DIR", help="folder of <stem>.labels.h5 (default: beside each session)"
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"cache of decoded frames (default: {default_cache_dir()})",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not cache decoded frames")


def cache_dir_from(args: argparse.Namespace) -> str | None:
    if args.no_cache:
        return None
    return str(args.cache_dir or default_cache_dir())


def _model_fields(items: list[str]) -> dict[str, object]:
    """{key: value} from --model-field KEY=VALUE items (values parsed as YAML)."""
    import yaml

    from robot_ssl.cli.config_fields import ConfigFieldError

    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigFieldError(f"--model-field: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigFieldError(f"--model-field {key}: not a value: {text!r}") from None
    return out


def _config_for_help() -> tuple[type, object]:
    from robot_ssl.learning.train import TrainConfig

    return TrainConfig, TrainConfig(data=("SESSIONS",), out_dir="RUN_DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t
    from robot_ssl.cli.config_fields import add_config_help

    add_config_help(parser, _config_for_help, "robot-ssl train")
    parser.add_argument(
        "--model-field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a ModelConfig field (TrainConfig.model), e.g. widths=[16,24,32,48] or dropout=0.1 "
        "(YAML value; repeatable)",
    )

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "multi-process: torchrun --nproc_per_node=2 -m robot_ssl train --data ... --out ...\n"
        "outputs: RUN_DIR/{best.pt,last.pt,metrics.csv,metrics.json,curves.png,config.json}"
    )
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    parser.add_argument("--arch", choices=("default", "paper"), default="default")
    # defaults as in TrainConfig (not imported here: it needs torch, the robot install has none)
    parser.add_argument("--epochs", type=t.positive_int(), default=10)
    parser.add_argument("--batch-size", type=t.positive_int(), default=64)
    parser.add_argument(
        "--lr", type=t.positive_float(), default=2e-3, help="peak learning rate (AdamW)"
    )
    parser.add_argument("--weight-decay", type=t.non_negative_float(), default=0.01)
    parser.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine")
    parser.add_argument(
        "--pos-weight", type=t.positive_float(), help="weight of positive cells in the loss"
    )
    parser.add_argument("--width", type=t.INPUT_SIZE, default=80, help="network input width")
    parser.add_argument("--height", type=t.INPUT_SIZE, default=64, help="network input height")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--val-worlds", nargs="+", metavar="WORLD", help="validation worlds")
    split.add_argument(
        "--val-fraction",
        type=t.finite_float(0, 1, max_inclusive=False),
        default=0.2,
        help="fraction of sessions, worlds or time blocks for validation",
    )
    parser.add_argument(
        "--split-by",
        choices=("session", "world", "block"),
        default="block",
        help="validation: whole sessions, whole worlds, or 30 s time blocks of every session",
    )
    parser.add_argument("--no-augment", action="store_true", help="no augmentation at all")
    parser.add_argument("--no-flip", action="store_true", help="no horizontal flip")
    parser.add_argument(
        "--init",
        metavar="ENCODER.pt",
        help="start from the encoder weights of `robot-ssl pretrain` (same arch and widths)",
    )
    parser.add_argument("--seed", type=t.SEED, default=0)
    parser.add_argument("--threads", type=t.THREADS, help="torch threads per process")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt")
    resume.add_argument("--overwrite", action="store_true", help="replace a run in RUN_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def print_recovered_notes(data: list[str], verb: str) -> None:
    """One line on stderr per recovered (damaged) session among `data`: what is
    trained or evaluated on is then only the intact part of it."""
    from robot_ssl.io.session_summary import recovered_notes

    for note in recovered_notes(data):
        print(f"robot-ssl {verb}: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import apply_config_fields
    from robot_ssl.learning.train import AugmentConfig, TrainConfig, train

    cfg = TrainConfig(
        data=tuple(args.data),
        out_dir=args.out,
        labels_dir=args.labels,
        cache_dir=cache_dir_from(args),
        arch=args.arch,
        input_width=args.width,
        input_height=args.height,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        min_lr=min(1e-4, args.lr),  # default; --min-lr sets it
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        pos_weight=args.pos_weight,
        augment=AugmentConfig(enabled=not args.no_augment, hflip=not args.no_flip),
        val_worlds=tuple(args.val_worlds or ()),
        val_fraction=args.val_fraction,
        split_by=args.split_by,
        seed=args.seed,
        num_threads=args.threads,
        device=args.device,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        init=args.init,
    )
    cfg = apply_config_fields(TrainConfig, cfg, args.config_fields, "robot-ssl train")
    if args.model_field:
        cfg = dataclasses.replace(cfg, model={**cfg.model, **_model_fields(args.model_field)})
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:
        print_recovered_notes(args.data, "train")
    result = train(cfg)
    if main_rank and result.history and "val_loss" not in result.history[-1]:
        print(
            "robot-ssl train: no validation set (--val-fraction 0, or nothing left to split"
            " off): best.pt is the epoch with the lowest training loss, not a validated score",
            file=sys.stderr,
        )
    if main_rank:
        print(
            f"best epoch {result.best_epoch}: score {result.best_score:.4f}; "
            f"{result.train_time_s:.1f} s; checkpoints in {result.out_dir}"
        )
    return 0
