"""`robot-ssl pretrain`: self-supervised pretraining of the detector's encoder on every frame.

robot-ssl pretrain --data sessions/ --out runs/pre --epochs 10 --tasks patch,denoise,odometry
robot-ssl train --data sessions/ --out runs/r1 --init runs/pre/encoder.pt
"""

from __future__ import annotations

import argparse

HELP = "self-supervised pretraining of the detector's encoder (no labels needed)"
CONFIG_FIELDS = True  # every PretrainConfig field: --patch-size N, --noise-std X, ...


def _config_for_help() -> tuple[type, object]:
    from robot_ssl.learning.pretrain import PretrainConfig

    return PretrainConfig, PretrainConfig(data=("SESSIONS",), out_dir="RUN_DIR")


def _tasks(text: str) -> tuple[str, ...]:
    """'patch,denoise' -> ('patch', 'denoise'); names are checked by PretrainConfig."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t
    from robot_ssl.cli.config_fields import add_config_help

    add_config_help(parser, _config_for_help, "robot-ssl pretrain")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "outputs: RUN_DIR/{encoder.pt,metrics.json}; then train --init RUN_DIR/encoder.pt"
    )
    parser.add_argument(
        "--data", nargs="+", required=True, metavar="PATH", help="session files or folders"
    )
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder")
    parser.add_argument(
        "--tasks",
        type=_tasks,
        default=("patch", "denoise", "odometry"),
        metavar="T1,T2",
        help="pretext tasks, comma-separated: patch, denoise, odometry (default: all three)",
    )
    parser.add_argument("--arch", choices=("default", "paper"), default="default")
    parser.add_argument("--epochs", type=t.positive_int(), default=10)
    parser.add_argument("--batch-size", type=t.positive_int(), default=64)
    parser.add_argument("--lr", type=t.positive_float(), default=2e-3, help="peak learning rate")
    parser.add_argument("--width", type=t.INPUT_SIZE, default=80, help="network input width")
    parser.add_argument("--height", type=t.INPUT_SIZE, default=64, help="network input height")
    parser.add_argument("--seed", type=t.SEED, default=0)
    parser.add_argument("--threads", type=t.THREADS, help="torch threads")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace encoder.pt in RUN_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.cli.config_fields import apply_config_fields
    from robot_ssl.learning.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(
        data=tuple(args.data),
        out_dir=args.out,
        tasks=args.tasks,
        arch=args.arch,
        input_width=args.width,
        input_height=args.height,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        min_lr=min(1e-4, args.lr),
        seed=args.seed,
        num_threads=args.threads,
        device=args.device,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    cfg = apply_config_fields(PretrainConfig, cfg, args.config_fields, "robot-ssl pretrain")
    history = pretrain(cfg)
    last = history[-1]
    losses = "  ".join(f"{k} {last[k]:.4f}" for k in cfg.tasks if k in last)
    print(f"{len(history)} epochs: {losses}; encoder in {cfg.out_dir}/encoder.pt")
    return 0
