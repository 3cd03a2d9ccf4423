"""Learning while driving: AUC against truth every 30 s, collisions and latency, with and without it.

    python -m benchmarks online_learning --models today=out/bench/train_speed/run_today/best.pt
    python -m benchmarks online_learning --models a=A.pt b=B.pt --worlds hard_tiles --minutes 2
    python -m benchmarks online_learning --quick   # 1 world, 1 min, 1 fixed seed, 5 s latency

Without --models: the demo's (demo=out/demo/run/best.pt) and label_budget's 5-minute model
(s5=out/bench/label_budget/runs/5_scratch_s0/last.pt), those that exist.

For each start model (trained on other worlds) and each unseen hard world:
- `learn`: the camera-only loop drives the simulated robot for `--minutes` with the
  learner attached (robot_ssl.learning.online: online labels, replay buffer, one
  torch thread), paced at real time so that the learner gets the compute a robot's
  computer would give it; every 30 s of driving the live weights are saved;
- `fixed`: the same drive without learning (same world, seed and speed), and with
  `--fixed-seeds` more seeds (unpaced, cheap): the collision baseline is their mean.
Each snapshot (and the start model at 0 s) is scored against simulator truth on a
*different* session of that world (the hard suite's, benchmarks/hard_suite.py), so
the score is what the robot would see next time it comes by, not what it trained on.
Collisions per 10 minutes come from both drives, per half of the run.

Latency (`--latency-s`, threaded loop on the wall clock, `realtime_trial`): capture to
command with ONNX Runtime (what `run` uses without --learn), with PyTorch, and with
PyTorch while the learner trains on a full buffer.

Targets (issue 16): AUC against truth up by >= 0.05 within 5 minutes; p99 capture to
command within 20% of the figure without learning; no collisions added.
Results: WORK/online_learning.json and .png, printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

from benchmarks import Parser
from benchmarks.hard_suite import HARD_WORLDS, HardSuite, record_sessions
from benchmarks.results import Figure, Target

DEFAULT_MODELS = {
    "demo": Path("out/demo/run/best.pt"),
    "s5": Path("out/bench/label_budget/runs/5_scratch_s0/last.pt"),
}


def _save_weights(predictor: Any, path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in predictor.module.state_dict().items()}
    torch.save({"model": state, "model_config": predictor.config.to_dict()}, path)
    return path


def calibrated_offset_s(labels_path: Path) -> float:
    """The camera offset the labeller estimated on another drive of the world: what
    `robot-ssl calibrate` would have written into the robot's spec."""
    from robot_ssl.io.labels_file import read_labels

    return read_labels(labels_path).camera_offset.applied_s


def drive(
    model: Path,
    world: str,
    args: argparse.Namespace,
    work: Path,
    learn: bool,
    offset_s: float,
    seed: int,
) -> dict:
    """One drive; with `learn`, snapshots every `--every-s` (paths in the result)."""
    from robot_ssl.learning.online import LearnConfig, learning_for
    from robot_ssl.learning.torch_predictor import load_any_predictor
    from robot_ssl.simlink.closed_loop import closed_loop_trial

    snapshots: list[tuple[float, str]] = []
    if learn:
        config = LearnConfig(lr=args.lr, ema=args.ema)
        predictor, learning = learning_for(
            model, work / "learner", camera_offset_s=offset_s, config=config, seed=seed
        )
        learning.start()

        def mark(t_s: float) -> None:
            snapshots.append((t_s, str(_save_weights(predictor, work / f"t{t_s:04.0f}.pt"))))

        observers, pace = [learning], 1.0
    else:
        predictor, learning, mark, observers, pace = load_any_predictor(model), None, None, (), None
    try:
        result = closed_loop_trial(
            world,
            seed,
            "camera",
            args.speed,
            args.minutes,
            predictor,
            observers=observers,
            pace=pace,
            mark_every_s=args.every_s if learn else None,
            on_mark=mark,
        )
    finally:
        if learning is not None:
            learning.close()
    result["snapshots"] = snapshots
    if learning is not None:
        result["learner"] = {
            "steps": learning.learner.steps,
            "labelled": learning.labels_seen,
            "kept": learning.buffer.counts(),
            "error": learning.learner.error,
        }
    return result


def latency(model: Path, pool: Path, seconds: float) -> dict[str, Any]:
    """p50/p99 capture to command: ONNX, PyTorch, PyTorch with the learner busy."""
    from robot_ssl.learning.dataset import load_sessions
    from robot_ssl.learning.online import learning_for
    from robot_ssl.learning.torch_predictor import load_any_predictor, open_predictor
    from robot_ssl.simlink.closed_loop import realtime_trial

    out: dict[str, Any] = {}
    onnx, _ = open_predictor(model, 1)
    cases = {"onnx": (onnx, None), "torch": (load_any_predictor(model, num_threads=1), None)}
    predictor, learning = learning_for(model, None)
    frames = load_sessions([pool], progress=False)[0]
    for image, labels in zip(frames.images[::3], frames.labels[::3]):  # a full buffer
        learning.buffer.add(image, labels)
    cases["torch + learning"] = (predictor, learning)
    for name, (pred, learn) in cases.items():
        if learn is not None:
            learn.start()
        try:
            r = realtime_trial(
                pred, "hard_tiles", 3, seconds, observers=[learn] if learn is not None else ()
            )
        finally:
            if learn is not None:
                learn.close()
        e2e = r["latency"]["end_to_end"]
        out[name] = {
            "median_ms": e2e["median_ms"],
            "p99_ms": e2e["p99_ms"],
            "frames": r["frames"],
            "learner_steps": learn.learner.steps if learn is not None else 0,
        }
        print(f"latency {name:18s} median {e2e['median_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms")
    return out


def collision_summary(trial: dict) -> dict[str, Any]:
    """Collisions of one drive: count, when (s), per 10 minutes, per metre driven."""
    path_m = trial["path_speed_m_s"] * trial["minutes"] * 60.0
    return {
        "seed": trial["seed"],
        "count": trial["collisions"],
        "times_s": [round(c[0], 1) for c in trial["collision_poses"]],
        "per_10min": trial["collisions_per_10min"],
        "path_m": path_m,
        "per_m": trial["collisions"] / path_m if path_m > 0 else float("nan"),
        "forward_speed_m_s": trial["mean_forward_speed_m_s"],
    }


def per_half(trial: dict, half_s: float) -> list[float]:
    """Collisions per 10 minutes in the first and the second half of a drive."""
    times = np.array([c[0] for c in trial["collision_poses"]], float)
    return [
        float((times < half_s).sum() * 600.0 / half_s),
        float((times >= half_s).sum() * 600.0 / half_s),
    ]


def plot(results: dict[str, Any], path: Path) -> None:
    """AUC against truth over driving time; metres driven and collisions, learn vs fixed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2)
    for i, (key, r) in enumerate(results.items()):
        t = [p["t_s"] / 60 for p in r["auc_over_time"]]
        y = [p["truth_auc"] for p in r["auc_over_time"]]
        colour = ax.plot(t, y, "o-", label=f"{key}: learn")[0].get_color()
        ax.axhline(r["auc_over_time"][0]["truth_auc"], ls="--", color=colour, lw=0.8)
        learn, fixed = r["drives"]["learn"], r["drives"]["fixed"]
        paths = [learn["path_m"], float(np.mean([f["path_m"] for f in fixed]))]
        counts = [learn["count"], float(np.mean([f["count"] for f in fixed]))]
        for j, (x, hatch) in enumerate(((i - 0.2, None), (i + 0.2, "//"))):
            bx.bar(x, paths[j], 0.38, color=colour, alpha=1.0 if j == 0 else 0.35, hatch=hatch)
            bx.annotate(f"{counts[j]:g}", (x, paths[j]), ha="center", va="bottom", fontsize=8)
        bx.plot([i + 0.2] * len(fixed), [f["path_m"] for f in fixed], "k.", ms=4)
    ax.set(
        xlabel="minutes of driving in the world",
        ylabel="mean ROC AUC vs truth (another drive)",
        title="learning while driving (dashed: the start model)",
    )
    ax.legend(fontsize=7)
    bx.set_xticks(range(len(results)), [k.replace(" / ", "\n") for k in results], fontsize=8)
    bx.set(
        ylabel="metres driven",
        title="metres driven, learn (solid) vs without (hatched, mean; dots: seeds);\n"
        "numbers: collisions",
    )
    for a in (ax, bx):
        a.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmarks online_learning",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--work", type=Path, default=Path("out/bench/online_learning"))
    p.add_argument("--models", nargs="+", default=None, metavar="NAME=CHECKPOINT")
    p.add_argument("--worlds", nargs="+", default=["hard_tiles", "hard_shadow"])
    p.add_argument("--hard", type=Path, help="folder of the hard suite (default WORK/hard)")
    p.add_argument("--pool", type=Path, help="a labelled session to fill the latency buffer")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--every-s", type=float, default=30.0)
    p.add_argument("--speed", type=int, default=150)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fixed-seeds", type=int, default=3, help="drives without learning")
    p.add_argument("--lr", type=float, default=3e-4, help="the learner's (LearnConfig.lr)")
    p.add_argument("--ema", type=float, default=0.99, help="LearnConfig.ema")
    p.add_argument("--latency-s", type=float, default=60.0, help="0: skip the latency runs")
    p.add_argument("--bootstrap", type=int, default=200)
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Drive with and without learning per (model, world), score snapshots, then latency."""
    p = parser()
    args = p.parse_args(argv)
    if args.fixed_seeds < 1:
        p.error("--fixed-seeds must be >= 1")
    if args.models is None:
        args.models = [f"{k}={v}" for k, v in DEFAULT_MODELS.items() if v.is_file()]
        if not args.models:
            print("online_learning skipped: no start model (`make demo`, or --models)")
            return []
    if quick:
        args.worlds, args.minutes, args.every_s = args.worlds[:1], 1.0, 30.0
        args.fixed_seeds, args.latency_s, args.bootstrap = 1, 5.0, 20
        args.work = args.work / "quick"

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    hard = args.hard or work / "hard"
    record_sessions(tuple(w for w in HARD_WORLDS if w in args.worlds), 1.5, 5, hard)
    models = dict(m.split("=", 1) for m in args.models)
    results: dict[str, Any] = {}
    for world in args.worlds:
        suite = HardSuite(hard / f"{world}.h5")
        for name, model in models.items():
            key = f"{name} / {world}"
            run_dir = work / name / world
            t0 = time.perf_counter()
            offset_s = calibrated_offset_s(hard / f"{world}.labels.h5")
            learned = drive(Path(model), world, args, run_dir, True, offset_s, args.seed)
            fixed_drives = [  # the first has the learning drive's seed
                drive(Path(model), world, args, run_dir, False, offset_s, args.seed + k)
                for k in range(args.fixed_seeds)
            ]
            fixed = fixed_drives[0]
            fixed_all = [collision_summary(t) for t in fixed_drives]
            curve = [{"t_s": 0.0, **suite.score(Path(model), args.bootstrap)}]
            for t_s, snap in learned["snapshots"]:
                curve.append({"t_s": t_s, **suite.score(Path(snap), args.bootstrap)})

            results[key] = {
                "auc_over_time": [
                    {k: c[k] for k in ("t_s", "truth_auc", "truth_auc_ci", "labels_auc")}
                    for c in curve
                ],
                "auc_gain": curve[-1]["truth_auc"] - curve[0]["truth_auc"],
                "best_gain": max(c["truth_auc"] for c in curve) - curve[0]["truth_auc"],
                "collisions_per_10min": {
                    "learn": learned["collisions_per_10min"],
                    "fixed": fixed["collisions_per_10min"],
                    "learn_by_half": per_half(learned, args.minutes * 30.0),
                    "fixed_by_half": per_half(fixed, args.minutes * 30.0),
                },
                "speed_m_s": {
                    "learn": learned["mean_forward_speed_m_s"],
                    "fixed": fixed["mean_forward_speed_m_s"],
                },
                "drives": {"learn": collision_summary(learned), "fixed": fixed_all},
                "fixed_mean": {
                    k: float(np.mean([f[k] for f in fixed_all]))
                    for k in ("per_10min", "per_m", "forward_speed_m_s")
                },
                "learner": learned["learner"],
                "camera_offset_s": offset_s,
                "wall_s": time.perf_counter() - t0,
            }
            r = results[key]
            aucs = " ".join(f"{c['truth_auc']:.3f}" for c in curve)
            print(
                f"{key}: AUC vs truth every {args.every_s:g} s: {aucs} (gain {r['auc_gain']:+.3f}); "
                f"collisions / 10 min learn {r['collisions_per_10min']['learn']:.1f}, "
                f"fixed {r['collisions_per_10min']['fixed']:.1f} (mean of {len(fixed_all)} seeds "
                f"{r['fixed_mean']['per_10min']:.1f}); speed cm/s learn "
                f"{100 * r['speed_m_s']['learn']:.2f}, fixed {100 * r['fixed_mean']['forward_speed_m_s']:.2f}; "
                f"learner {r['learner']}",
                flush=True,
            )
            (work / "online_learning.json").write_text(json.dumps({"runs": results}, indent=1))
    out: dict[str, Any] = {"argv": sys.argv[1:], "runs": results}
    if args.latency_s > 0:
        pool = args.pool or hard / f"{args.worlds[0]}.h5"
        out["latency"] = latency(Path(next(iter(models.values()))), pool, args.latency_s)
        lat = out["latency"]
        out["p99_ratio"] = lat["torch + learning"]["p99_ms"] / lat["onnx"]["p99_ms"]
    (work / "online_learning.json").write_text(json.dumps(out, indent=1) + "\n")
    plot(results, work / "online_learning.png")
    print(f"results: {work / 'online_learning.json'}, {work / 'online_learning.png'}")
    return figures(out, args)


def figures(out: dict[str, Any], args: argparse.Namespace) -> list[Figure]:
    """The README's row: AUC gains, collisions and metres driven, latency, targets."""
    runs = out["runs"]
    gains = {k: r["auc_gain"] for k, r in runs.items()}
    auc = "; ".join(
        f"{k.replace(' / hard_', '/')} {r['auc_over_time'][0]['truth_auc']:.3f} -> "
        f"{r['auc_over_time'][-1]['truth_auc']:.3f} ({r['auc_gain']:+.3f}, best "
        f"{r['best_gain']:+.3f})"
        for k, r in runs.items()
    )
    drives = "; ".join(
        f"{k.replace(' / hard_', '/')} {r['drives']['learn']['count']} / "
        f"{r['fixed_mean']['per_10min'] * args.minutes / 10:.1f}, "
        f"{r['drives']['learn']['path_m']:.1f} / "
        f"{float(np.mean([f['path_m'] for f in r['drives']['fixed']])):.1f} m"
        for k, r in runs.items()
    )
    text = (
        f"AUC vs truth, start -> after {args.minutes:g} min: {auc}. Collisions in "
        f"{args.minutes:g} min, learn / without (mean of {args.fixed_seeds} seeds), metres "
        f"driven: {drives}"
    )
    lat, ratio = out.get("latency"), out.get("p99_ratio")
    if lat:
        text += "; capture to command, median / p99: " + ", ".join(
            f"{k} {v['median_ms']:.1f} / {v['p99_ms']:.1f} ms" for k, v in lat.items()
        )
    added = sum(
        r["drives"]["learn"]["count"] - r["fixed_mean"]["per_10min"] * args.minutes / 10
        for r in runs.values()
    )
    return [
        Figure(
            f"`run --learn` in {len(args.worlds)} unseen hard worlds x {len(runs) // max(len(args.worlds), 1)} "
            f"start models; {args.minutes:g} min of camera-only driving at {args.speed} units, "
            f"paced at real time; every {args.every_s:g} s the live weights scored against truth "
            "on another session of the world",
            text,
            (
                Target(
                    f"+0.05 AUC within {args.minutes:g} min",
                    all(g >= 0.05 for g in gains.values()),
                    ", ".join(f"{g:+.3f}" for g in gains.values()),
                ),
                Target(
                    "p99 within 20%",
                    None if ratio is None else ratio <= 1.2,
                    "" if ratio is None else f"{ratio:.2f}x",
                ),
                Target("no collisions added", added <= 0, f"{added:+.1f} in all drives"),
            ),
            {"p99_ratio": ratio, **{f"auc_gain {k}": g for k, g in gains.items()}},
        )
    ]
