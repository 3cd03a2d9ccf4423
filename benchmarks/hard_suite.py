"""Data and scoring shared by the learning benchmarks (train_speed.py, label_budget.py).

- The training pool: sessions in training-look worlds, recorded and labelled with the
  command line (robot_ssl.simlink.sim_sessions), skipped when already there.
- The hard suite: the 12 held-out `hard_*` worlds of data/worlds (issue 15), one
  session each, scored against simulator truth with `robot-ssl eval --truth`'s code.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from robot_ssl.simlink.demo import DemoConfig
from sim.world import list_worlds

POOL_WORLDS = DemoConfig().train_worlds[:6]
"""The training pool: the demo's first six training worlds."""
HARD_WORLDS = tuple(sorted(n for n in list_worlds() if n.startswith("hard_")))
"""The 12 held-out `hard_*` worlds of data/worlds."""


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
