"""Label budget, seeded: hard-suite AUC against truth after 1, 2, 5, 10 and 30 minutes of labels.

    python -m benchmarks label_budget --work out/bench/label_budget        # the full study
    python -m benchmarks label_budget --device cuda                        # on a GPU
    python -m benchmarks label_budget --budgets 2 --methods scratch pretrained_default supervised
    python -m benchmarks label_budget --quick   # 1 and 2 min, 2 methods + supervised, 2 seeds

Data: the training pool of benchmarks.hard_suite (6 training-look worlds x 5
min = 30 minutes of driving, recorded and labelled when missing). A budget of B
minutes keeps the labels of the first B/6 minutes of every session, so each
budget sees every world; the hard suite (12 unseen worlds) is the test set.

Methods (`--methods` picks some), each trained on the same frames of a budget:
- `paper`: the paper's network from scratch (the baseline);
- `scratch`: the default network from scratch;
- `consistency`: scratch with the state-consistency loss (`train --consistency-weight`,
  CONSISTENCY_WEIGHT: frames a short straight drive apart must agree, Nava et al.);
- `uncertainty`: scratch on the pool relabelled with UNCERTAINTY_REPLAYS odometry
  replays (`label --uncertainty-replays`): each label's confidence weighs its cell in
  the loss. The labels go to WORK/pool_uncertainty_<replays>/ (the pool's sessions stay
  where they are), written once when missing (16 s per 5-minute session on one core,
  9 s of it the nominal labels: 1.5 minutes for the pool);
- `pretrained_<task>`, one per pretext task of robot_ssl.learning.pretrain_config.TASKS
  (patch, denoise, odometry, rotation, views), and `pretrained_default` (DEFAULT_TASKS
  combined): the default network whose encoder `robot-ssl pretrain` first trained on
  every frame of the pool, labelled or not (all 30 minutes are available to it);
- `supervised`: the default network from scratch on the simulator's truth labels of
  the same frames and cells (`train --targets truth`), the stand-in for perfect human
  annotation. Every other method learns from the auto-labels: they are the
  self-supervised ones.

Seeds (`--seeds N`, default 3: seeds 0..N-1): every (budget, method, seed) is one run,
trained with that seed (weights, order, augmentation; the frames are the budget's), and
pretraining runs once per (task set, seed), with that seed, kept in WORK/pretrain/. Each
run sees max(--min-samples, its labelled frames) samples: one epoch of 30 minutes, and as
many gradient steps as 10 minutes take for the smaller budgets, with no validation split
(there is no label to spare at 1 minute); its final weights are scored on the hard suite
against truth, with a 10 s block-bootstrap interval. Every run is written to
WORK/label_budget.json as it ends (a rerun skips the runs already there: an interrupted
study resumes).

Summaries (summarise(), in the same file): per (budget, method) the mean over seeds
with a 95 % t-interval over seeds (the runs' bootstrap intervals are kept beside); per
budget "self-supervised reaches X % of supervised" (the best self-supervised method's
mean over supervised's); the best pretraining's gain over scratch at 2 minutes and
whether their intervals are apart. Written to WORK/label_budget.json ("summary"),
WORK/label_budget.png (AUC against budget, one line per method, t-interval error bars)
and printed as a Markdown table.

Targets (issue 27): at 2 minutes the best pretraining beats scratch by >= 0.03 (mean
of >= 3 seeds, intervals apart); at 30 minutes self-supervised reaches >= 98 % of
supervised. A point not measured gives no verdict.

Cost: 11 methods x 5 budgets x 3 seeds = 165 training runs (about 100 000 samples per
method and seed over the 5 budgets), each scored on the hard suite (32 000 frames and the
bootstrap), and 6 task sets x 3 seeds = 18 pretraining epochs on the pool's 54 000
frames. Not measured in full; estimated from train_speed (the default network trains
about 800 samples/s on 2 cores) and the quick run: 4 to 8 hours on the 2-core
development machine, most of it scoring and pretraining. `--quick` took 8 minutes there
with one thread while other work loaded the cores. To go faster: `--device cuda`
(training and pretraining on the GPU; scoring stays on the CPU), or several processes
on disjoint `--methods` sharing one --work once a first run has recorded its pool and
hard suite (runs are merged into label_budget.json; a last rerun, which skips every run
already there, summarises them all).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

from benchmarks import Parser
from benchmarks.hard_suite import HARD_WORLDS, POOL_WORLDS, HardSuite, record_sessions
from benchmarks.results import Figure, Target
from robot_ssl.learning.pretrain_config import DEFAULT_TASKS, TASKS

METHODS = (
    "paper",
    "scratch",
    "consistency",
    "uncertainty",
    *(f"pretrained_{t}" for t in TASKS),
    "pretrained_default",
    "supervised",
)
"""Every method, in the order of the table and the plot (scratch's variants beside it)."""
CONSISTENCY_WEIGHT = 1.0
"""`consistency`'s weight of the state-consistency term: the docs recommend none, and 1
weighs it as the BCE it is added to (pretraining's task weights are 1 too)."""
UNCERTAINTY_REPLAYS = 16
"""`uncertainty`'s odometry replays per label (the label option's default is 0: off)."""
QUICK_METHODS = ("scratch", "pretrained_rotation", "supervised")
"""--quick's methods: one from scratch, one pretrained (the cheapest task), supervised."""
CONFIDENCE = 0.95
GAIN_BUDGET_MIN = 2.0
GAIN_TARGET = 0.03
SHARE_BUDGET_MIN = 30.0
SHARE_TARGET = 0.98


@dataclass(frozen=True)
class Method:
    """How a method trains: network, the pretext tasks of its encoder (() from scratch), its
    targets ("labels": the auto-labels, self-supervised; "truth": supervised), the weight
    of the state-consistency loss (0: off) and the odometry replays of its labels'
    confidence (0: the pool's labels, every cell weighs 1)."""

    name: str
    arch: str = "default"
    tasks: tuple[str, ...] = ()
    targets: str = "labels"
    consistency_weight: float = 0.0
    label_replays: int = 0

    @property
    def pretrained(self) -> bool:
        return bool(self.tasks)

    @property
    def self_supervised(self) -> bool:
        return self.targets == "labels"

    @classmethod
    def named(cls, name: str) -> Method:
        """The Method of a name of METHODS (ValueError for any other)."""
        if name == "paper":
            return cls(name, arch="paper")
        if name == "scratch":
            return cls(name)
        if name == "consistency":
            return cls(name, consistency_weight=CONSISTENCY_WEIGHT)
        if name == "uncertainty":
            return cls(name, label_replays=UNCERTAINTY_REPLAYS)
        if name == "supervised":
            return cls(name, targets="truth")
        if name == "pretrained_default":
            return cls(name, tasks=DEFAULT_TASKS)
        task = name.removeprefix("pretrained_")
        if name.startswith("pretrained_") and task in TASKS:
            return cls(name, tasks=(task,))
        raise ValueError(f"unknown method {name!r}: one of {', '.join(METHODS)}")


# -- the summary maths (pure) ------------------------------------------------------------------


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile (0.5 < p < 1) of Student's t with `df` >= 1 degrees of freedom.

    Exact for integer df (Abramowitz and Stegun 26.7.3-4: the two-sided probability
    A(t|df) as a finite series in theta = atan(t / sqrt(df))), inverted by bisection;
    numpy has no t distribution and scipy is not a dependency."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"need 0.5 < p < 1 and df >= 1, got p={p}, df={df}")

    def two_sided(t: float) -> float:
        theta = math.atan(t / math.sqrt(df))
        s, c = math.sin(theta), math.cos(theta)
        if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2.4/3.5 cos^4 + ...))
            term, total = 1.0, 1.0 if df > 1 else 0.0
            for k in range(1, (df - 1) // 2):
                term *= (2 * k) / (2 * k + 1) * c * c
                total += term
            return 2 / math.pi * (theta + s * c * total)
        term, total = 1.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1.3/2.4 cos^4 + ...)
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c * c
            total += term
        return s * total

    target, lo, hi = 2 * p - 1, 0.0, 1.0
    while two_sided(hi) < target:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if two_sided(mid) < target else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class SeedStats:
    """The mean of one figure over seeds and its t-interval (None with fewer than 2 seeds)."""

    mean: float
    n: int
    ci: tuple[float, float] | None


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> SeedStats:
    """Mean and two-sided `confidence` t-interval (mean +- t * sd / sqrt(n)) over seeds."""
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("need at least one value")
    mean = float(x.mean())
    if len(x) < 2:
        return SeedStats(mean, 1, None)
    half = t_quantile(0.5 + confidence / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return SeedStats(mean, len(x), (mean - half, mean + half))


def intervals_apart(a: SeedStats | None, b: SeedStats | None) -> bool | None:
    """Whether the intervals of `a` and `b` do not overlap (None: one of them has none)."""
    if a is None or b is None or a.ci is None or b.ci is None:
        return None
    return a.ci[0] > b.ci[1] or b.ci[0] > a.ci[1]


@dataclass(frozen=True)
class Point:
    """One (budget, method) of the study: its runs' AUCs and bootstrap intervals, by seed."""

    budget_min: float
    method: str
    seeds: tuple[int, ...]
    aucs: tuple[float, ...]
    run_cis: tuple[tuple[float, float] | None, ...]

    @property
    def stats(self) -> SeedStats:
        return seed_interval(self.aucs)


def points_of(runs: Iterable[dict[str, Any]]) -> dict[tuple[float, str], Point]:
    """The runs of label_budget.json grouped by (budget, method), seeds in order.
    Runs of the earlier, unseeded format (no "method") are left out."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in runs:
        if "method" in r and "seed" in r:
            groups.setdefault((float(r["budget_min"]), r["method"]), []).append(r)
    points = {}
    for key, rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        points[key] = Point(
            key[0],
            key[1],
            tuple(int(r["seed"]) for r in rs),
            tuple(float(r["truth_auc"]) for r in rs),
            tuple(None if r.get("truth_auc_ci") is None else tuple(r["truth_auc_ci"]) for r in rs),
        )
    return points


@dataclass(frozen=True)
class Share:
    """Self-supervised against supervised at one budget: the best self-supervised method
    (highest mean over seeds) and its mean over supervised's."""

    budget_min: float
    best: str
    ratio: float


def share_of_supervised(points: dict[tuple[float, str], Point], budget_min: float) -> Share | None:
    """ "Self-supervised reaches X % of supervised" at `budget_min` (None: a point missing)."""
    sup = points.get((budget_min, "supervised"))
    own = [p for (b, m), p in points.items() if b == budget_min and Method.named(m).self_supervised]
    if sup is None or not own or sup.stats.mean <= 0:
        return None
    best = max(own, key=lambda p: p.stats.mean)
    return Share(budget_min, best.method, best.stats.mean / sup.stats.mean)


@dataclass(frozen=True)
class Gain:
    """The best pretraining (highest mean) against scratch at one budget."""

    budget_min: float
    best: str
    gain: float
    apart: bool | None  # the two t-intervals do not overlap (None: fewer than 2 seeds)

    def met(self, target: float = GAIN_TARGET) -> bool | None:
        """The issue's verdict: gain >= target with intervals apart (None: not measurable)."""
        if self.apart is None:
            return None
        return self.gain >= target and self.apart


def pretraining_gain(points: dict[tuple[float, str], Point], budget_min: float) -> Gain | None:
    """The best pretrained method's mean minus scratch's at `budget_min` (None: missing)."""
    scratch = points.get((budget_min, "scratch"))
    pre = [p for (b, m), p in points.items() if b == budget_min and Method.named(m).pretrained]
    if scratch is None or not pre:
        return None
    best = max(pre, key=lambda p: p.stats.mean)
    gain = best.stats.mean - scratch.stats.mean
    return Gain(budget_min, best.method, gain, intervals_apart(best.stats, scratch.stats))


def summarise(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The study's summary as JSON: points (mean, t-interval, runs' AUCs and bootstrap
    intervals), share of supervised per budget, pretraining gain per budget."""
    points = points_of(runs)
    budgets = sorted({b for b, _ in points})
    out_points = []
    for p in points.values():
        s = p.stats
        out_points.append(
            {
                "budget_min": p.budget_min,
                "method": p.method,
                "seeds": list(p.seeds),
                "truth_auc_mean": s.mean,
                "truth_auc_t_ci": None if s.ci is None else list(s.ci),
                "run_truth_auc": list(p.aucs),
                "run_truth_auc_bootstrap_ci": [None if c is None else list(c) for c in p.run_cis],
            }
        )
    shares = {f"{b:g}": share_of_supervised(points, b) for b in budgets}
    gains = {f"{b:g}": pretraining_gain(points, b) for b in budgets}
    return {
        "confidence": CONFIDENCE,
        "points": out_points,
        "share_of_supervised": {
            k: None if s is None else {"best": s.best, "ratio": s.ratio} for k, s in shares.items()
        },
        "pretraining_gain": {
            k: None if g is None else {"best": g.best, "gain": g.gain, "apart": g.apart}
            for k, g in gains.items()
        },
    }


# -- training and scoring ----------------------------------------------------------------------


class Encoders:
    """The pool's pretrained encoders, one per (task set, seed), trained on first use and
    kept in WORK/pretrain/<tasks>_s<seed>/ (a finished one is reused)."""

    def __init__(self, paths: list[Path], work: Path, args: argparse.Namespace) -> None:
        self.paths, self.work, self.args = paths, work, args
        self._data: Any = None

    def get(self, method: Method, seed: int) -> tuple[Path, float]:
        """(encoder.pt, seconds spent pretraining it now: 0 when it was there)."""
        from robot_ssl.learning.pretrain import PretrainConfig, load_pretrain_data, pretrain

        name = "default" if method.tasks == DEFAULT_TASKS else "+".join(method.tasks)
        out = self.work / "pretrain" / f"{name}_s{seed}"
        if _finished_epochs(out) >= self.args.pretrain_epochs:
            return out / "encoder.pt", 0.0
        cfg = PretrainConfig(
            data=tuple(str(p) for p in self.paths),
            out_dir=str(out),
            tasks=method.tasks,
            epochs=self.args.pretrain_epochs,
            seed=seed,
            num_threads=self.args.threads,
            device=self.args.device,
            overwrite=True,
            progress=False,
        )
        if self._data is None:  # every frame of the pool, decoded once for all encoders
            self._data = load_pretrain_data(cfg)
        t0 = time.perf_counter()
        history = pretrain(cfg, self._data)
        took = time.perf_counter() - t0
        print(
            f"pretrained {name} seed {seed}: {len(self._data)} frames x "
            f"{cfg.epochs} epoch(s) in {took:.0f} s: {history[-1]}",
            flush=True,
        )
        return out / "encoder.pt", took


def _finished_epochs(out: Path) -> int:
    """Epochs a pretraining run in `out` finished (its metrics.json; 0 when none)."""
    try:
        history = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return 0
    if not (out / "encoder.pt").exists():
        return 0
    return len(history) if isinstance(history, list) else 0


def uncertainty_labels(paths: Sequence[Path], work: Path, replays: int, jobs: int) -> Path:
    """WORK/pool_uncertainty_<replays>/, the folder of the pool's labels with `replays`
    odometry replays: the sessions whose labels are missing there are labelled in-process
    as `robot-ssl label --uncertainty-replays N --out FOLDER` does (the pool's rule
    otherwise, no coverage plots), in `jobs` processes."""
    from robot_ssl.core.label_grid import LabelConfig
    from robot_ssl.io.labels_file import default_labels_path
    from robot_ssl.simlink.sim_sessions import label_quietly

    folder = work / f"pool_uncertainty_{replays}"
    missing = [p for p in paths if not default_labels_path(p, folder).exists()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rule = LabelConfig(uncertainty_replays=replays)
        label_quietly(missing, jobs=jobs, out=str(folder), plot=False, rule=rule)
        print(
            f"labelled {len(missing)} pool session(s) with {replays} odometry replays "
            f"into {folder} in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return folder


class PoolLabels:
    """The pool's sessions as each method trains on them: the auto-labels, the simulator's
    truth (supervised), or the auto-labels with their confidence from odometry replays
    (uncertainty); each set made and loaded once, on first use."""

    def __init__(self, sessions: list[Any], paths: list[Path], work: Path, jobs: int) -> None:
        self.paths, self.work, self.jobs = paths, work, jobs
        self._sets: dict[tuple[str, int], list[Any]] = {("labels", 0): sessions}

    def get(self, method: Method) -> list[Any]:
        """The SessionData list `method` trains on."""
        key = (method.targets, method.label_replays)
        if key not in self._sets:
            self._sets[key] = self._load(method)
        return self._sets[key]

    def _load(self, method: Method) -> list[Any]:
        from robot_ssl.learning.truth_grid import with_truth_targets

        base = self._sets["labels", 0]
        if method.label_replays:
            base = self._with_replays(base, method.label_replays)
        return [with_truth_targets(s) for s in base] if method.targets == "truth" else base

    def _with_replays(self, base: list[Any], replays: int) -> list[Any]:
        """The pool labelled with `replays` replays; images shared with `base` where the
        frames are the same (the nominal labels are: only the confidence is new)."""
        from dataclasses import replace

        from robot_ssl.learning.dataset import load_sessions

        folder = uncertainty_labels(self.paths, self.work, replays, self.jobs)
        loaded = load_sessions(
            self.paths, labels_dir=folder, cache_dir=self.work / "cache", progress=False
        )
        return [
            replace(s, images=b.images) if np.array_equal(s.frame_index, b.frame_index) else s
            for s, b in zip(loaded, base)
        ]


def budget_frames(sessions: list[Any], share_s: float, method: Method) -> Any:
    """The FrameSet of a budget: the first `share_s` seconds of labels of every session,
    with the frames' odometry poses when `method` trains with the consistency loss (as
    `train` adds them to the frames it splits itself)."""
    from dataclasses import replace

    from robot_ssl.learning.consistency import frame_poses
    from robot_ssl.learning.dataset import FrameSet

    subsets = [s.subset(s.times_s() < share_s) for s in sessions]
    frames = FrameSet.from_sessions(subsets)
    if method.consistency_weight > 0:
        frames = replace(frames, poses=np.concatenate([frame_poses(s) for s in subsets]))
    return frames


def run_key(budget_min: float, method: str, seed: int) -> str:
    return f"{budget_min:g}_{method}_s{seed}"


def load_runs(path: Path) -> dict[str, Any]:
    """The runs of a label_budget.json ({} when there is none yet)."""
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()).get("runs", {}))


def save_runs(path: Path, runs: dict[str, Any], summary: dict[str, Any] | None = None) -> dict:
    """Write `runs` merged into the runs already in `path` (another process of the study
    may have added some: processes on disjoint --methods can share one WORK), atomically,
    so that an interrupted study leaves a readable file; returns the merged runs."""
    from robot_ssl.core.outputs import atomic_output

    merged = {**load_runs(path), **runs}
    doc: dict[str, Any] = {"argv": sys.argv[1:], "runs": merged}
    if summary is not None:
        doc["summary"] = summary
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
    return merged


# -- outputs -----------------------------------------------------------------------------------


def plot(points: dict[tuple[float, str], Point], path: Path) -> None:
    """AUC against budget, one line per method, t-interval error bars (slightly offset
    along x so that the bars of close methods stay apart)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    methods = [m for m in METHODS if any(k[1] == m for k in points)]
    markers = "so^vD<>pPX*h"
    for i, m in enumerate(methods):
        ps = sorted((p for (_, pm), p in points.items() if pm == m), key=lambda p: p.budget_min)
        shift = 1.0 + 0.025 * (i - (len(methods) - 1) / 2)
        x = [p.budget_min * shift for p in ps]
        y = [p.stats.mean for p in ps]
        err = [
            (0.0, 0.0)
            if p.stats.ci is None
            else (p.stats.mean - p.stats.ci[0], p.stats.ci[1] - p.stats.mean)
            for p in ps
        ]
        style = "--" if m in ("paper", "supervised") else "-"
        ax.errorbar(
            x,
            y,
            yerr=np.array(err).T if err else None,
            fmt=markers[i % len(markers)] + style,
            capsize=3,
            label=m,
        )
    budgets = sorted({b for b, _ in points})
    ax.set_xscale("log")
    ax.set_xticks(budgets, labels=[f"{b:g}" for b in budgets])
    ax.minorticks_off()
    ax.set(
        xlabel="minutes of labelled driving",
        ylabel="mean ROC AUC vs truth (hard suite)",
        title=f"label budget: mean over seeds, {CONFIDENCE:.0%} t-intervals",
    )
    ax.set_ylim(top=min(1.0, ax.get_ylim()[1]))  # an AUC is at most 1 (t-intervals are not)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _cell(p: Point | None) -> str:
    if p is None:
        return "n/a"
    s = p.stats
    ci = "" if s.ci is None else f" [{s.ci[0]:.3f}, {s.ci[1]:.3f}]"
    return f"{s.mean:.3f}{ci} (n={s.n})"


def table(points: dict[tuple[float, str], Point], budgets: list[float]) -> str:
    """Markdown: a row per budget, a column per method, and self-supervised / supervised."""
    methods = [m for m in METHODS if any(k[1] == m for k in points)]
    lines = ["| min | " + " | ".join(methods) + " | self-sup. / sup. |"]
    lines.append("|---" * (len(methods) + 2) + "|")
    for b in budgets:
        share = share_of_supervised(points, b)
        ratio = "n/a" if share is None else f"{share.ratio:.1%} ({share.best})"
        cells = [_cell(points.get((b, m))) for m in methods]
        lines.append(f"| {b:g} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def figures(
    points: dict[tuple[float, str], Point], budgets: list[float], png: Path
) -> list[Figure]:
    """The README's row: mean AUC per budget and method, the two issue-27 targets."""
    methods = [m for m in METHODS if any(k[1] == m for k in points)]
    per = "; ".join(
        f"{b:g} min: "
        + " / ".join(
            "n/a" if (b, m) not in points else f"{points[b, m].stats.mean:.3f}" for m in methods
        )
        for b in budgets
    )
    gain = pretraining_gain(points, GAIN_BUDGET_MIN)
    share = share_of_supervised(points, SHARE_BUDGET_MIN)
    seeds = sorted({p.stats.n for p in points.values()})
    best = max(points.values(), key=lambda p: p.stats.mean, default=None)
    gain_note = (
        ""
        if gain is None
        else f"{gain.best} {gain.gain:+.3f}, intervals "
        + {True: "apart", False: "overlap", None: "not measured (1 seed)"}[gain.apart]
    )
    values: dict[str, float | None] = {
        "pretraining_gain_2_min": None if gain is None else gain.gain,
        "share_of_supervised_30_min": None if share is None else share.ratio,
        "best_truth_auc": None if best is None else best.stats.mean,
    }
    for b in budgets:
        s = share_of_supervised(points, b)
        values[f"share_of_supervised_{b:g}_min"] = None if s is None else s.ratio
        for m in methods:
            p = points.get((b, m))
            values[f"truth_auc_{b:g}_min_{m}"] = None if p is None else p.stats.mean
    return [
        Figure(
            f"{'/'.join(f'{b:g}' for b in budgets)} min of labels (spread over "
            f"{len(POOL_WORLDS)} training worlds), hard suite against truth, mean of "
            f"{'/'.join(map(str, seeds))} seeds with {CONFIDENCE:.0%} t-intervals; "
            + " / ".join(methods),
            f"{per} (plot: {png})",
            (
                Target(
                    f"best pretraining +{GAIN_TARGET:g} over scratch at {GAIN_BUDGET_MIN:g} min, "
                    "intervals apart",
                    None if gain is None else gain.met(),
                    gain_note,
                ),
                Target(
                    f"self-supervised >= {SHARE_TARGET:.0%} of supervised at "
                    f"{SHARE_BUDGET_MIN:g} min",
                    None if share is None else share.ratio >= SHARE_TARGET,
                    "" if share is None else f"{share.ratio:.1%} ({share.best})",
                ),
            ),
            values,
        )
    ]


# -- the benchmark -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmarks label_budget",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--work", type=Path, default=Path("out/bench/label_budget"))
    p.add_argument("--pool", type=Path, help="folder of the training pool (default WORK/pool)")
    p.add_argument("--hard", type=Path, help="folder of the hard suite (default WORK/hard)")
    p.add_argument("--budgets", type=float, nargs="+", default=None, help="(1 2 5 10 30)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None, help="(all)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per point (3)")
    p.add_argument("--min-samples", type=int, default=15_000)
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="training and pretraining device (auto: cuda when available)",
    )
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument(
        "--summarise",
        action="store_true",
        help="train nothing: summarise the runs already in WORK for --budgets x --methods "
        "(points with no run are left out), so that a study run in parts can be stored",
    )
    return p


def train_missing(
    args: argparse.Namespace, runs: dict[str, Any], out_json: Path, quick: bool
) -> dict:
    """Train and score every (budget, method, seed) of `args` not in `runs` yet, saving
    each into `out_json` as it finishes; returns the runs."""
    import torch

    from robot_ssl.learning.dataset import load_sessions
    from robot_ssl.learning.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    work = args.work
    pool = args.pool or work / "pool"
    hard = args.hard or work / "hard"
    cache = work / "cache"
    paths = record_sessions(POOL_WORLDS, 0.5 if quick else 5.0, 3, pool)
    record_sessions(HARD_WORLDS[:2] if quick else HARD_WORLDS, 0.5 if quick else 1.5, 5, hard)
    sessions = load_sessions(paths, cache_dir=cache, progress=False)
    pool_labels = PoolLabels(sessions, paths, work, args.threads)
    suite = HardSuite(hard, cache_dir=cache)
    encoders = Encoders(paths, work, args)

    methods = [Method.named(m) for m in METHODS if m in args.methods]
    for budget in args.budgets:
        share_s = 60.0 * budget / len(sessions)
        for method in methods:
            frames = budget_frames(pool_labels.get(method), share_s, method)
            samples = max(args.min_samples, len(frames))
            epochs = math.ceil(samples / len(frames))
            for seed in range(args.seeds):
                key = run_key(budget, method.name, seed)
                if key in runs:
                    continue
                init, pretrain_s = encoders.get(method, seed) if method.pretrained else (None, 0.0)
                cfg = TrainConfig(
                    out_dir=str(work / "runs" / key),
                    arch=method.arch,
                    epochs=epochs,
                    val_fraction=0.0,
                    patience=None,
                    init=None if init is None else str(init),
                    targets=method.targets,
                    consistency_weight=method.consistency_weight,
                    seed=seed,
                    num_threads=args.threads,
                    device=args.device,
                    overwrite=True,
                    progress=False,
                )
                t0 = time.perf_counter()
                result = train(cfg, data=(frames, None))
                train_s = time.perf_counter() - t0
                score = suite.score(result.last_path, args.bootstrap, args.threads)
                runs[key] = {
                    "budget_min": budget,
                    "method": method.name,
                    "seed": seed,
                    "labelled_frames": len(frames),
                    "epochs": epochs,
                    "train_s": train_s,
                    "pretrain_s": pretrain_s,
                    "consistency_weight": method.consistency_weight,
                    "label_replays": method.label_replays,
                    **score,
                }
                lo, hi = score["truth_auc_ci"]
                print(
                    f"{budget:4g} min  {method.name:20s} seed {seed}  {len(frames):6d} frames x "
                    f"{epochs:3d} epochs {train_s:6.0f} s  AUC vs truth {score['truth_auc']:.3f} "
                    f"[{lo:.3f}, {hi:.3f}]",
                    flush=True,
                )
                runs = save_runs(out_json, runs)
    return runs


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Train every (budget, method, seed), score each on the hard suite, summarise.
    Quick: 1 and 2 min, QUICK_METHODS, 2 seeds, 0.5-minute sessions, in WORK/quick."""
    args = parser().parse_args(argv)
    if quick:
        args.work, args.min_samples, args.bootstrap = args.work / "quick", 300, 20
    args.budgets = args.budgets or ([1.0, 2.0] if quick else [1.0, 2.0, 5.0, 10.0, 30.0])
    args.methods = args.methods or list(QUICK_METHODS if quick else METHODS)
    args.seeds = args.seeds or (2 if quick else 3)
    if args.seeds < 1 or args.min_samples < 1 or args.pretrain_epochs < 1:
        parser().error("--seeds, --min-samples and --pretrain-epochs must be >= 1")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    out_json = work / "label_budget.json"
    runs = load_runs(out_json)
    if not args.summarise:
        runs = train_missing(args, runs, out_json, quick)
    runs = load_runs(out_json) | runs
    chosen = [
        r
        for r in runs.values()
        if r.get("method") in args.methods
        and r.get("budget_min") in args.budgets
        and r.get("seed", args.seeds) < args.seeds
    ]
    save_runs(out_json, runs, summarise(chosen))
    points = points_of(chosen)
    png = work / "label_budget.png"
    plot(points, png)
    print("\n" + table(points, args.budgets))
    for b in args.budgets:
        gain = pretraining_gain(points, b)
        if gain is not None:
            apart = {True: "apart", False: "overlap", None: "n/a"}[gain.apart]
            print(
                f"best pretraining - scratch at {b:g} min: {gain.best} {gain.gain:+.3f} "
                f"(intervals {apart})"
            )
    figs = figures(points, args.budgets, png)
    for t in figs[0].targets:
        print(f"target {t.text() if t.met is not None else t.name + ': not measured'}")
    print(f"results: {out_json}, {png}")
    return figs
