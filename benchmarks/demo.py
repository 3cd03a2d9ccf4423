"""The whole pipeline: `robot-ssl demo` (record, label, train, evaluate, export, replay,
closed loop), timed, with the held-out AUC it reports.

    python -m benchmarks demo [--quick] [--out out/demo]

A full run writes into out/demo, as `make demo` does, so that closed_loop and hard_suite
score its model; a quick run (the demo's --quick) writes into out/bench/demo_quick.
Target: the whole pipeline in under 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks import Parser
from benchmarks.results import Figure, Target

LABEL = "`demo` (`make demo`)"
TARGET_S = 15 * 60


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmarks demo", description=__doc__)
    p.add_argument("--out", type=Path, default=None, help="(out/demo; quick out/bench/demo_quick)")
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Run the demo in this process; its wall time and held-out mean AUC by band."""
    from robot_ssl.simlink.demo import DemoConfig, run_demo

    args = parser().parse_args(argv)
    out = args.out or Path("out/bench/demo_quick" if quick else "out/demo")
    t0 = time.perf_counter()
    run_demo(DemoConfig.quick() if quick else DemoConfig(), out)
    wall_s = time.perf_counter() - t0
    report = json.loads((out / "eval.json").read_text())
    bands = ", ".join(
        f"{band} cm {auc:.3f}" for band, auc in report["auc_by_band"].items() if auc is not None
    )
    return [
        Figure(
            "whole pipeline, 2 cores, sessions with the realistic clocks and the physical IR "
            "model" + (" (the demo's --quick)" if quick else ""),
            f"{int(wall_s // 60)} min {wall_s % 60:.0f} s; held-out mean AUC "
            f"{report['mean_auc']:.3f} ({bands}); report: {out / 'report.md'}",
            (Target("< 15 min", wall_s < TARGET_S),),
            {"wall_s": wall_s, "heldout_mean_auc": report["mean_auc"]},
        )
    ]
