"""`robot-ssl demo`: the whole pipeline on the simulator, with a report (robot_ssl.simlink.demo)."""

from __future__ import annotations

import argparse
from dataclasses import replace

HELP = "the whole pipeline on the simulator (record, label, train, eval, drive), with a report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from robot_ssl.cli import argtypes as t

    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--quick", action="store_true", help="a small run that checks every step")
    p.add_argument(
        "--jobs", type=t.positive_int(), default=None, help="parallel recordings (default: 2)"
    )
    p.add_argument("--epochs", type=t.positive_int(), default=None, help="training epochs")
    p.add_argument("--keep", action="store_true", help="reuse sessions already in OUT")


def run(args: argparse.Namespace) -> int:
    from robot_ssl.simlink.demo import DemoConfig, run_demo

    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    if args.jobs is not None or args.epochs is not None:
        cfg = replace(cfg, jobs=args.jobs or cfg.jobs, epochs=args.epochs or cfg.epochs)
    return run_demo(cfg, args.out, keep=args.keep)
