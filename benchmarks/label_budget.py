"""Label budget: hard-suite AUC against truth after 1, 2, 5, 10 and 30 minutes of labels.

    python -m benchmarks label_budget --work out/bench/label_budget
    python -m benchmarks label_budget --budgets 1 2 --pretrain-epochs 1   # shorter
    python -m benchmarks label_budget --quick   # 1 and 2 min, 2 hard worlds, in WORK/quick

Data: the training pool of benchmarks.hard_suite (6 training-look worlds x 5
min = 30 minutes of driving, recorded and labelled when missing). A budget of B
minutes keeps the labels of the first B/6 minutes of every session, so each
budget sees every world; the hard suite (12 unseen worlds) is the test set.

Networks, for every budget:
- `paper`: the paper's network from scratch (the baseline);
- `scratch`: the default network from scratch;
- `pretrained`: the default network whose encoder was first trained by
  `robot-ssl pretrain` (patch position, denoising, odometry) on every frame of
  the pool, labelled or not: all 30 minutes are available for pretraining.

Each run sees max(--min-samples, its labelled frames) samples: one epoch of
30 minutes, and as many gradient steps as 10 minutes take for the smaller budgets, with no validation
split (there is no label to spare at 1 minute); its final weights are scored.
Results are written after every run to WORK/label_budget.json (a rerun skips
the runs already there), with WORK/label_budget.png and a Markdown table.

Target (issue 15): at 2 minutes the pretrained network beats the one trained
from scratch by >= 0.03 AUC against truth.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

from benchmarks import Parser
from benchmarks.hard_suite import HARD_WORLDS, POOL_WORLDS, HardSuite, record_sessions
from benchmarks.results import Figure, Target

NETS = ("paper", "scratch", "pretrained")


def pretrain_encoder(paths: list[Path], work: Path, epochs: int, threads: int) -> Path:
    """The pool's encoder.pt (kept when already there)."""
    from robot_ssl.learning.pretrain import PretrainConfig, pretrain

    encoder = work / "pretrain" / "encoder.pt"
    if not encoder.exists():
        t0 = time.perf_counter()
        history = pretrain(
            PretrainConfig(
                data=tuple(str(p) for p in paths),
                out_dir=str(encoder.parent),
                epochs=epochs,
                num_threads=threads,
                overwrite=True,
                progress=False,
            )
        )
        print(f"pretrained {epochs} epoch(s) in {time.perf_counter() - t0:.0f} s: {history[-1]}")
    return encoder


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for net, style in zip(NETS, ("s--", "o-", "^-")):
        rows = sorted((r["budget_min"], r) for r in results.values() if r["net"] == net)
        if not rows:
            continue
        x = [b for b, _ in rows]
        y = [r["truth_auc"] for _, r in rows]
        lo = [r["truth_auc"] - r["truth_auc_ci"][0] for _, r in rows]
        hi = [r["truth_auc_ci"][1] - r["truth_auc"] for _, r in rows]
        ax.errorbar(x, y, yerr=[lo, hi], fmt=style, capsize=3, label=net)
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 5, 10, 30], labels=["1", "2", "5", "10", "30"])
    ax.set(
        xlabel="minutes of labelled driving",
        ylabel="mean ROC AUC vs truth (hard suite)",
        title="label budget: 12 unseen hard worlds",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def table(results: dict[str, Any], budgets: list[float]) -> str:
    lines = ["| minutes of labels | paper (baseline) | default, scratch | default, pretrained |"]
    lines.append("|---|---|---|---|")
    for b in budgets:
        cells = []
        for net in NETS:
            r = results.get(f"{b:g}_{net}")
            cells.append(
                "n/a"
                if r is None
                else f"{r['truth_auc']:.3f} [{r['truth_auc_ci'][0]:.3f}, {r['truth_auc_ci'][1]:.3f}]"
            )
        lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmarks label_budget",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--work", type=Path, default=Path("out/bench/label_budget"))
    p.add_argument("--pool", type=Path, help="folder of the training pool (default WORK/pool)")
    p.add_argument("--hard", type=Path, help="folder of the hard suite (default WORK/hard)")
    p.add_argument("--budgets", type=float, nargs="+", default=[1, 2, 5, 10, 30])
    p.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    p.add_argument("--min-samples", type=int, default=15_000)
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=200)
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Train every (budget, net), score each on the hard suite; quick: a smaller version."""
    args = parser().parse_args(argv)
    if quick:
        args.work, args.budgets, args.min_samples, args.bootstrap = (
            args.work / "quick",
            [1.0, 2.0],
            500,
            20,
        )

    import torch

    from robot_ssl.learning.dataset import FrameSet, load_sessions
    from robot_ssl.learning.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    pool = args.pool or work / "pool"
    hard = args.hard or work / "hard"
    cache = work / "cache"
    paths = record_sessions(POOL_WORLDS, 0.5 if quick else 5.0, 3, pool)
    record_sessions(HARD_WORLDS[:2] if quick else HARD_WORLDS, 0.5 if quick else 1.5, 5, hard)
    sessions = load_sessions(paths, cache_dir=cache, progress=False)
    suite = HardSuite(hard, cache_dir=cache)
    encoder = None
    if "pretrained" in args.nets:
        encoder = pretrain_encoder(paths, work, args.pretrain_epochs, args.threads)

    out_json = work / "label_budget.json"
    results: dict[str, Any] = {}
    if out_json.exists():
        results = json.loads(out_json.read_text()).get("runs", {})
    for budget in args.budgets:
        share_s = 60.0 * budget / len(sessions)
        frames = FrameSet.from_sessions([s.subset(s.times_s() < share_s) for s in sessions])
        samples = max(args.min_samples, len(frames))
        epochs = math.ceil(samples / len(frames))
        for net in args.nets:
            key = f"{budget:g}_{net}"
            if key in results:
                continue
            cfg = TrainConfig(
                out_dir=str(work / "runs" / key),
                arch="paper" if net == "paper" else "default",
                epochs=epochs,
                val_fraction=0.0,
                patience=None,
                init=str(encoder) if net == "pretrained" else None,
                num_threads=args.threads,
                overwrite=True,
                progress=False,
            )
            t0 = time.perf_counter()
            result = train(cfg, data=(frames, None))
            train_s = time.perf_counter() - t0
            score = suite.score(result.last_path, args.bootstrap, args.threads)
            results[key] = {
                "budget_min": budget,
                "net": net,
                "labelled_frames": len(frames),
                "epochs": epochs,
                "train_s": train_s,
                **score,
            }
            print(
                f"{budget:4g} min  {net:10s} {len(frames):6d} frames x {epochs:3d} epochs "
                f"{train_s:6.0f} s  AUC vs truth {score['truth_auc']:.3f} "
                f"[{score['truth_auc_ci'][0]:.3f}, {score['truth_auc_ci'][1]:.3f}]",
                flush=True,
            )
            out_json.write_text(json.dumps({"argv": sys.argv[1:], "runs": results}, indent=1))
    gain = None
    s2, p2 = results.get("2_scratch"), results.get("2_pretrained")
    if s2 and p2:
        gain = p2["truth_auc"] - s2["truth_auc"]
    summary = {"argv": sys.argv[1:], "runs": results, "pretrained_gain_at_2_min": gain}
    out_json.write_text(json.dumps(summary, indent=1) + "\n")
    plot(results, work / "label_budget.png")
    print("\n" + table(results, args.budgets))
    if gain is not None:
        verdict = "met" if gain >= 0.03 else "MISSED"
        print(f"\npretrained - scratch at 2 min: {gain:+.3f} (target >= +0.03: {verdict})")
    print(f"results: {out_json}, {work / 'label_budget.png'}")
    return figures(results, args.budgets, gain, work / "label_budget.png")


def figures(
    results: dict[str, Any], budgets: list[float], gain: float | None, png: Path
) -> list[Figure]:
    """The README's row: AUC per budget and net, the pretraining gain at 2 min, the best."""

    def auc(key: str) -> str:
        r = results.get(key)
        return "n/a" if r is None else f"{r['truth_auc']:.3f}"

    per = "; ".join(
        f"{b:g} min: " + " / ".join(auc(f"{b:g}_{net}") for net in NETS) for b in budgets
    )
    best = max(results.values(), key=lambda r: r["truth_auc"], default=None)
    best_auc = None if best is None else best["truth_auc"]
    return [
        Figure(
            f"{'/'.join(f'{b:g}' for b in budgets)} min of labels (spread over "
            f"{len(POOL_WORLDS)} training worlds), hard suite against truth; paper / default "
            "from scratch / default pretrained (`pretrain` on all frames of the pool)",
            f"{per} (plot: {png})",
            (
                Target(
                    "pretrained +0.03 at 2 min",
                    None if gain is None else gain >= 0.03,
                    "" if gain is None else f"{gain:+.3f}",
                ),
                Target(
                    "hard suite >= 0.95",
                    None if best_auc is None else best_auc >= 0.95,
                    "" if best_auc is None else f"{best_auc:.3f}",
                ),
            ),
            {"pretrained_gain_at_2_min": gain, "best_truth_auc": best_auc},
        )
    ]
