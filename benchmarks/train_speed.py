"""Training speed: today's `train` defaults against the earlier ones, on the same data, in one run.

    python -m benchmarks train_speed --work out/bench/train_speed
    python -m benchmarks train_speed --minutes 2.5   # 10 min of data, faster
    python -m benchmarks train_speed --quick         # 2 x 1 min, 2 hard worlds, today only

Data: 4 sessions of `--minutes` each (default 5: 20 minutes of driving) in
training-look worlds, recorded and labelled with the command line when missing.
Held-out score: mean ROC AUC against simulator truth on the hard suite
(benchmarks.hard_suite: 12 unseen worlds, 1.5 min each), with block-bootstrap
intervals, and against the suite's auto-labels.

Runs, in this order, in this process, on `--threads` threads, on frames
decoded once beforehand (decoding is not counted; each run splits them its own way):
- `earlier`: the defaults before issue 15 (30 epochs, cosine, validation on a
  random 20% of the sessions, best epoch kept, contiguous NCHW weights);
- `today`: `TrainConfig()` as shipped (10 epochs, validation on 30 s time
  blocks of every session, channels-last weights);
- `paper` today: the paper network with today's defaults, the baseline;
- `patience3` (on request): today's defaults with an early stop after 3 epochs
  without a better validation AUC.

Target (issue 15): today reaches the earlier held-out AUC in half the time.
Results: WORK/train_speed.json, printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

from benchmarks import Parser
from benchmarks.hard_suite import HARD_WORLDS, POOL_WORLDS, HardSuite, record_sessions
from benchmarks.results import Figure, Target


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmarks train_speed",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--work", type=Path, default=Path("out/bench/train_speed"))
    p.add_argument("--pool", type=Path, help="folder of the training sessions (default WORK/pool)")
    p.add_argument("--hard", type=Path, help="folder of the hard suite (default WORK/hard)")
    p.add_argument("--minutes", type=float, default=5.0, help="minutes per training session")
    p.add_argument("--sessions", type=int, default=4, help="training sessions (worlds)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--runs", nargs="+", default=None, help="(earlier today paper; quick today)")
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Train each configuration on the same frames, score each on the hard suite."""
    args = parser().parse_args(argv)
    args.runs = args.runs or (["today"] if quick else ["earlier", "today", "paper"])

    import torch

    from robot_ssl.learning.dataset import load_sessions
    from robot_ssl.learning.train import TrainConfig, split_frames, train

    torch.set_num_threads(args.threads)
    work = args.work / "quick" if quick else args.work
    pool = args.pool or work / "pool"
    hard = args.hard or work / "hard"
    cache = work / "cache"
    if quick:  # 2 sessions of 1 min, 2 hard worlds of 0.5 min
        args.sessions, args.minutes, args.bootstrap = 2, 1.0, 20
        paths = record_sessions(POOL_WORLDS[:2], 1.0, 3, pool)
        record_sessions(HARD_WORLDS[:2], 0.5, 5, hard)
    else:
        paths = record_sessions(POOL_WORLDS[: args.sessions], max(args.minutes, 5.0), 3, pool)
        record_sessions(HARD_WORLDS, 1.5, 5, hard)
    t0 = time.perf_counter()
    loaded = load_sessions(paths, cache_dir=cache, progress=False)
    # the first `minutes` of each session (all runs get the same frames)
    sessions = [s.subset(s.times_s() < 60.0 * args.minutes) for s in loaded]
    load_s = time.perf_counter() - t0
    suite = HardSuite(hard, cache_dir=cache)
    n = sum(len(s) for s in sessions)
    print(
        f"data: {len(sessions)} sessions x {args.minutes:g} min, {n} labelled frames, "
        f"decoded in {load_s:.1f} s (once, not counted below); hard suite {len(suite.frames)}"
    )

    base = dict(
        data=tuple(str(s) for s in paths),
        num_threads=args.threads,
        overwrite=True,
        progress=False,
    )
    configs = {
        "earlier": TrainConfig(
            **base,
            out_dir=str(work / "run_earlier"),
            epochs=30,
            split_by="session",
            patience=None,
            channels_last=False,
        ),
        "today": TrainConfig(**base, out_dir=str(work / "run_today")),
        "paper": TrainConfig(**base, out_dir=str(work / "run_paper"), arch="paper"),
        "patience3": TrainConfig(**base, out_dir=str(work / "run_patience3"), patience=3),
    }
    results: dict[str, dict] = {}
    for name in args.runs:
        cfg = configs[name]
        t0 = time.perf_counter()
        result = train(cfg, data=split_frames(cfg, sessions))
        wall_s = time.perf_counter() - t0
        score = suite.score(result.best_path, args.bootstrap, args.threads)
        results[name] = {
            "arch": cfg.arch,
            "wall_s": wall_s,
            "train_time_s": result.train_time_s,
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "val_auc": result.best_score,
            **score,
        }
        r = results[name]
        print(
            f"{name:8s} {r['arch']:8s} {wall_s:7.1f} s  {r['epochs_run']:2d} epochs "
            f"(best {r['best_epoch']})  hard suite vs truth {r['truth_auc']:.3f} "
            f"[{r['truth_auc_ci'][0]:.3f}, {r['truth_auc_ci'][1]:.3f}]  "
            f"vs labels {r['labels_auc']:.3f}",
            flush=True,
        )
    out_json = work / "train_speed.json"
    if out_json.exists():  # runs of an earlier call are kept (one JSON per work folder)
        results = {**json.loads(out_json.read_text()).get("runs", {}), **results}
    out = {"argv": sys.argv[1:], "threads": args.threads, "runs": results}
    if "earlier" in results and "today" in results:
        e, t = results["earlier"], results["today"]
        out["speedup"] = e["wall_s"] / t["wall_s"]
        out["auc_change"] = t["truth_auc"] - e["truth_auc"]
        # "the same AUC": today's point estimate inside the earlier run's interval, or above
        out["target_met"] = bool(out["speedup"] >= 2.0 and t["truth_auc"] >= e["truth_auc_ci"][0])
        print(
            f"\nspeed-up {out['speedup']:.2f}x; AUC vs truth {t['truth_auc']:.3f} vs "
            f"{e['truth_auc']:.3f} ({out['auc_change']:+.3f}); target (>= 2x at the same "
            f"AUC): {'met' if out['target_met'] else 'MISSED'}"
        )
    work.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"results: {out_json}")
    return figures(out, args)


def figures(out: dict, args: argparse.Namespace) -> list[Figure]:
    """The README's row: wall time and hard-suite AUC of each run, and the verdict."""
    runs = out["runs"]
    base = runs.get("earlier", {}).get("wall_s")
    names = {"earlier": "earlier", "today": "today", "patience3": "with `--patience 3`"}
    names["paper"] = "paper network"
    parts = []
    for name, r in runs.items():
        speed = (
            f" ({base / r['wall_s']:.1f}x faster)"
            if base and name in ("today", "patience3")
            else ""
        )
        lo, hi = r["truth_auc_ci"]
        parts.append(
            f"{names.get(name, name)} {r['wall_s']:.0f} s{speed}, AUC {r['truth_auc']:.3f} "
            f"[{lo:.3f}, {hi:.3f}]"
        )
    return [
        Figure(
            f"{args.sessions} training worlds x {args.minutes:g} min, scored on the hard suite "
            "against truth; earlier defaults (30 epochs, session split) vs today's (10 epochs, "
            "30 s time-block validation, channels-last)",
            "; ".join(parts),
            (Target("same AUC in half the time", out.get("target_met")),),
            {"speedup": out.get("speedup"), "auc_change": out.get("auc_change")},
        )
    ]
