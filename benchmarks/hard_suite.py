"""The hard suite: data and scoring shared by the learning benchmarks, and a benchmark itself.

    python -m benchmarks hard_suite [--quick] [--model out/demo/model.onnx]

As a benchmark it scores a model (the demo's by default) against truth on the suite, as
`robot-ssl eval --truth` does. Shared with train_speed, label_budget, online_learning:

- The training pool: sessions in training-look worlds, recorded and labelled with the
  command line (robot_ssl.simlink.sim_sessions), skipped when already there.
- The hard suite: the 12 held-out `hard_*` worlds of data/worlds (issue 15), one
  session each, scored against simulator truth with `robot-ssl eval --truth`'s code.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import Parser
from benchmarks.results import Figure, Target
from robot_ssl.simlink.demo import DemoConfig
from sim.world import list_worlds

POOL_WORLDS = DemoConfig().train_worlds[:6]
"""The training pool: the demo's first six training worlds."""
HARD_WORLDS = tuple(sorted(n for n in list_worlds() if n.startswith("hard_")))
"""The 12 held-out `hard_*` worlds of data/worlds."""
LABEL = "`hard_suite` (`eval --truth`)"
DEFAULT_MODEL = Path("out/demo/model.onnx")


def record_sessions(
    worlds: tuple[str, ...], minutes: float, seed: int, folder: Path, jobs: int = 2
) -> list[Path]:
    """One labelled session per world in `folder` (existing ones are kept)."""
    from robot_ssl.simlink.sim_sessions import labelled_session, world_name

    folder.mkdir(parents=True, exist_ok=True)

    def one(world: str) -> Path:
        path = folder / f"{world_name(world)}.h5"
        return labelled_session(world, minutes, seed, path, folder / "worlds")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, worlds))


DRIVES = 3
"""Recorded drives per world in the hard suite's scoring (issue 27)."""
DRIVE_MINUTES = 3.0
DRIVE_SEED0 = 100
"""Drive k of a world has seed DRIVE_SEED0 + k and a random start pose drawn from it."""


def record_drives(
    worlds: tuple[str, ...],
    folder: Path,
    drives: int = DRIVES,
    minutes: float = DRIVE_MINUTES,
    jobs: int = 2,
) -> dict[str, list[Path]]:
    """`drives` labelled sessions per world, `folder/<world>_d<k>.h5`, each from its own
    seed and random start pose (existing ones are kept): {world: [paths]}."""
    from robot_ssl.simlink.sim_sessions import labelled_session, world_name

    folder.mkdir(parents=True, exist_ok=True)
    jobs_list = [(w, k) for w in worlds for k in range(drives)]

    def one(job: tuple[str, int]) -> Path:
        world, k = job
        path = folder / f"{world_name(world)}_d{k}.h5"
        return labelled_session(
            world, minutes, DRIVE_SEED0 + k, path, folder / "worlds", start_pose="random"
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        paths = list(pool.map(one, jobs_list))
    out: dict[str, list[Path]] = {w: [] for w in worlds}
    for (world, _), path in zip(jobs_list, paths):
        out[world].append(path)
    return out


class HardSuite:
    """The hard suite's frames and truth, loaded once, scoring any number of models."""

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        from robot_ssl.learning.evaluate import load_eval_data

        self.frames, self.targets = load_eval_data(
            [folder], cache_dir=cache_dir, progress=False, truth=True
        )

    def score(self, model: Path, n_bootstrap: int = 200, threads: int = 2) -> dict[str, Any]:
        """Mean AUC against truth (and the auto-labels) with intervals, per world and band."""
        from robot_ssl.learning.evaluate import evaluate

        report = evaluate(
            model,
            [],
            frames=self.frames,
            targets=self.targets,
            truth=True,
            n_bootstrap=n_bootstrap,
            num_threads=threads,
            progress=False,
        )
        t = report["truth"]
        return {
            "truth_auc": t["overall"]["truth"]["mean_auc"],
            "truth_auc_ci": t["overall"]["truth"]["mean_auc_ci"],
            "truth_auc_by_band": t["overall"]["truth"]["auc_by_band"],
            "labels_auc": t["overall"]["labels"]["mean_auc"],
            "truth_auc_by_world": {
                w: g["truth"]["mean_auc"] if g["truth"] else None for w, g in t["by_world"].items()
            },
        }


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmarks hard_suite", description=__doc__)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model to score (.onnx, .pt)")
    p.add_argument("--work", type=Path, default=Path("out/bench/hard_suite"))
    p.add_argument("--bootstrap", type=int, default=None, help="(200; quick 20)")
    p.add_argument("--threads", type=int, default=2)
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """The model's mean AUC against truth on the suite (recorded when missing).
    Quick: 2 worlds of 0.5 min, in WORK/quick."""
    args = parser().parse_args(argv)
    if not args.model.is_file():
        print(f"hard_suite skipped: no model at {args.model} (`make demo`)", file=sys.stderr)
        return []
    worlds, minutes = (HARD_WORLDS[:2], 0.5) if quick else (HARD_WORLDS, 1.5)
    folder = args.work / ("quick" if quick else "hard")
    record_sessions(worlds, minutes, 5, folder)
    suite = HardSuite(folder, cache_dir=args.work / "cache")
    score = suite.score(args.model, args.bootstrap or (20 if quick else 200), args.threads)
    by_world = sorted(
        ((auc, w.removeprefix("hard_")) for w, auc in score["truth_auc_by_world"].items() if auc),
    )
    lo, hi = score["truth_auc_ci"]
    print(f"hard suite ({len(worlds)} worlds): mean AUC vs truth {score['truth_auc']:.3f}")
    return [
        Figure(
            f"`{args.model.name}` on {len(worlds)} `hard_*` worlds, {minutes:g} min each, "
            "10 s block bootstrap",
            f"mean AUC vs truth **{score['truth_auc']:.3f}** [{lo:.3f}, {hi:.3f}] (vs auto-labels "
            f"{score['labels_auc']:.3f}); worst: "
            + ", ".join(f"{w} {a:.3f}" for a, w in by_world[:4])
            + "; best: "
            + ", ".join(f"{w} {a:.3f}" for a, w in by_world[::-1][:2]),
            (Target(">= 0.95 (issue 15)", score["truth_auc"] >= 0.95),),
            {"truth_mean_auc": score["truth_auc"], "labels_mean_auc": score["labels_auc"]},
        )
    ]
