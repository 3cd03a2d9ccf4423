"""Label sources: a detector trained with no proximity at all against IR labels and all sources.

    python -m benchmarks label_sources --work out/bench/label_sources
    python -m benchmarks label_sources --quick   # 2 worlds x 0.5 min, 1 epoch, in WORK/quick

Data: a pool of contact-seeking drives (`sim record --drive contact`: straight on until
a contact or a stall, back off, turn; the collection policy of Gandhi et al.'s
"Learning to Fly by Crashing") in the training-look worlds of benchmarks.hard_suite,
recorded once and labelled three ways with `label --sources`:

- `ir`: the proximity sensors alone (the project's rule until issue 25);
- `no_proximity`: `contact,traversal`: a detected contact labels the approach, the
  body's swept footprint labels free floor; no proximity reading is used;
- `all`: `ir,contact,traversal`.

The same default network is trained on each (same frames, same epochs, no validation
split, last weights), then scored against simulator truth on the hard suite (the 12
unseen `hard_*` worlds, recorded with the wander drive, shared with
benchmarks.hard_suite), per band and per sensor. The centre cells are those of the
front-centre sensor, the one a frontal contact labels (on a Thymio the contact source
labels no other sensor: docs/labelling.md).

Learning curve: the no-proximity detector trained on the first quarter, half and
all of every pool session, against the number of true contacts in those frames
(Gandhi et al.'s AUC against crashes).

LiDAR robot: `data/robots/lidar_bot.yaml` (a TurtleBot-like robot whose short-range
sensors are sectors of a simulated 360-beam scan) wandering in the same worlds,
labelled from its sectors, scored on hard worlds recorded with the same robot.

Targets (issue 25): the no-proximity detector's centre cells reach a mean AUC
against truth >= 0.85; all sources beat IR alone by >= 0.01 (mean AUC). Results:
WORK/label_sources.json and WORK/label_sources.png.
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
from benchmarks.hard_suite import HARD_WORLDS, POOL_WORLDS
from benchmarks.results import Figure, Target

SOURCE_SETS = {
    "ir": ("ir",),
    "no_proximity": ("contact", "traversal"),
    "all": ("ir", "contact", "traversal"),
}
CENTRE = (2,)  # front_center: the sensor a frontal contact labels (docs/labelling.md)
LIDAR_SPEC = Path("data/robots/lidar_bot.yaml")
FRACTIONS = (0.25, 0.5)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmarks label_sources", description=__doc__)
    p.add_argument("--work", type=Path, default=Path("out/bench/label_sources"))
    p.add_argument("--hard", type=Path, default=Path("out/bench/hard_suite/hard"))
    p.add_argument("--minutes", type=float, default=3.0, help="per pool world (3)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-lidar", action="store_true", help="leave out the LiDAR robot")
    p.add_argument("--no-curve", action="store_true", help="leave out the learning curve")
    return p


def _record(worlds, minutes, seed, folder: Path, **options: Any) -> list[Path]:
    """Sessions of `minutes` in `worlds` (kept when already there), not labelled."""
    from robot_ssl.simlink.sim_sessions import SimRecording, record_sessions, world_arg, world_name

    folder.mkdir(parents=True, exist_ok=True)
    todo, paths = [], []
    for w in worlds:
        path = folder / f"{world_name(w)}.h5"
        paths.append(path)
        if not path.exists():
            opts = tuple(options.items())
            todo.append(SimRecording(world_arg(w, folder / "worlds"), minutes, seed, path, opts))
    record_sessions(todo, jobs=2)
    return paths


def _label(paths: list[Path], out: Path, sources: tuple[str, ...]) -> None:
    from robot_ssl.core.label_grid import LabelConfig
    from robot_ssl.io.labels_file import LABELS_SUFFIX
    from robot_ssl.simlink.sim_sessions import label_quietly

    todo = [p for p in paths if not (out / (p.stem + LABELS_SUFFIX)).exists()]
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        label_quietly(todo, out=str(out), rule=LabelConfig(sources=sources))


def _true_contacts(path: Path, until_s: float) -> int:
    """Contact onsets the simulator recorded in the first `until_s` of the session."""
    from robot_ssl.io.session import SessionReader

    with SessionReader(path) as r:
        c = r.read("contact_truth")
        cam = r.read("camera")
    if c is None or len(cam) == 0:
        return 0
    return int(((c.t_ns - cam.t_ns[0]) / 1e9 < until_s).sum())


def _score(model: Path, frames, targets, bootstrap: int, threads: int) -> dict[str, Any]:
    from robot_ssl.learning.evaluate import evaluate

    report = evaluate(
        model,
        [],
        frames=frames,
        targets=targets,
        truth=True,
        n_bootstrap=bootstrap,
        num_threads=threads,
        progress=False,
    )
    t = report["truth"]["overall"]["truth"]
    by_sensor = t["auc_by_sensor"]
    centre = [by_sensor[i] for i in CENTRE if i < len(by_sensor) and by_sensor[i] is not None]
    return {
        "truth_auc": t["mean_auc"],
        "truth_auc_ci": t["mean_auc_ci"],
        "auc_by_band": t["auc_by_band"],
        "auc_by_sensor": by_sensor,
        "centre_auc": float(sum(centre) / len(centre)) if centre else None,
    }


def _train(frames, out: Path, epochs: int, threads: int) -> Path:
    from robot_ssl.learning.train import TrainConfig, train

    cfg = TrainConfig(
        out_dir=str(out),
        epochs=epochs,
        val_fraction=0.0,
        patience=None,
        num_threads=threads,
        overwrite=True,
        progress=False,
    )
    return Path(train(cfg, data=(frames, None)).last_path)


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Record, label three ways, train, score; quick: 2 worlds of 0.5 min, 1 epoch."""
    args = parser().parse_args(argv)
    pool_worlds, hard_worlds, minutes, hard_minutes = POOL_WORLDS, HARD_WORLDS, args.minutes, 1.5
    if quick:
        args.work, args.hard = args.work / "quick", args.work / "quick" / "hard"
        pool_worlds, hard_worlds, minutes, hard_minutes = POOL_WORLDS[:2], HARD_WORLDS[:2], 0.5, 0.5
        args.epochs, args.bootstrap = 1, 10

    import torch

    from benchmarks.hard_suite import record_sessions as record_labelled
    from robot_ssl.learning.dataset import FrameSet, load_sessions
    from robot_ssl.learning.evaluate import load_eval_data

    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    out_json = work / "label_sources.json"
    results: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {}

    def save() -> None:
        out_json.write_text(json.dumps(results, indent=1) + "\n")

    record_labelled(hard_worlds, hard_minutes, 5, args.hard)
    hard_frames, hard_targets = load_eval_data(
        [args.hard], cache_dir=work / "cache", progress=False, truth=True
    )
    pool = _record(pool_worlds, minutes, 3, work / "pool", drive="contact")
    runs = results.setdefault("runs", {})
    sessions_by_set = {}
    for name, sources in SOURCE_SETS.items():
        labels = work / "labels" / name
        _label(pool, labels, sources)
        sessions_by_set[name] = load_sessions(pool, labels_dir=labels, progress=False)
        if name in runs:
            continue
        frames = FrameSet.from_sessions(sessions_by_set[name])
        t0 = time.perf_counter()
        model = _train(frames, work / "runs" / name, args.epochs, args.threads)
        runs[name] = {
            "sources": list(sources),
            "frames": len(frames),
            "train_s": time.perf_counter() - t0,
            **_score(model, hard_frames, hard_targets, args.bootstrap, args.threads),
        }
        print(
            f"{name:13s} AUC vs truth {runs[name]['truth_auc']:.3f} centre "
            f"{runs[name]['centre_auc']:.3f}",
            flush=True,
        )
        save()
    full_s = 60.0 * minutes
    contacts_full = sum(_true_contacts(p, math.inf) for p in pool)
    runs["no_proximity"]["true_contacts"] = contacts_full
    if not args.no_curve:
        curve = results.setdefault("curve", {})
        for frac in FRACTIONS:
            key = f"{frac:g}"
            if key in curve:
                continue
            subset = [
                s.subset(s.times_s() < frac * full_s) for s in sessions_by_set["no_proximity"]
            ]
            model = _train(
                FrameSet.from_sessions(subset),
                work / "runs" / f"curve_{key}",
                args.epochs,
                args.threads,
            )
            curve[key] = {
                "fraction": frac,
                "true_contacts": sum(_true_contacts(p, frac * full_s) for p in pool),
                **_score(model, hard_frames, hard_targets, args.bootstrap, args.threads),
            }
            save()
        curve["1"] = {"fraction": 1.0, "true_contacts": contacts_full, **runs["no_proximity"]}
    if not args.no_lidar and "lidar" not in runs:
        from robot_ssl.core.spec import load_specs

        robot, camera = load_specs(LIDAR_SPEC)
        lidar_pool = _record(
            pool_worlds, minutes, 3, work / "lidar_pool", robot_spec=robot, camera_spec=camera
        )
        lidar_hard = _record(
            hard_worlds, hard_minutes, 5, work / "lidar_hard", robot_spec=robot, camera_spec=camera
        )
        _label(lidar_pool, work / "labels" / "lidar", ("ir",))
        _label(lidar_hard, work / "lidar_hard", ("ir",))
        lidar_frames, lidar_targets = load_eval_data(
            [work / "lidar_hard"], cache_dir=work / "cache", progress=False, truth=True
        )
        sessions = load_sessions(lidar_pool, labels_dir=work / "labels" / "lidar", progress=False)
        frames = FrameSet.from_sessions(sessions)
        model = _train(frames, work / "runs" / "lidar", args.epochs, args.threads)
        runs["lidar"] = {
            "sensors": robot.num_prox,
            "frames": len(frames),
            **_score(model, lidar_frames, lidar_targets, args.bootstrap, args.threads),
        }
        save()
    results["argv"] = sys.argv[1:]
    save()
    png = work / "label_sources.png" if quick else Path("docs/img/label_sources.png")
    plot(results, png)
    return figures(results, png, len(hard_worlds), minutes * len(pool_worlds))


def plot(results: dict[str, Any], path: Path) -> None:
    """Left: AUC per sensor for each source set; right: no-proximity AUC against contacts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    runs = results["runs"]
    names = [n for n in (*SOURCE_SETS, "lidar") if n in runs]
    n_sensors = max(len(runs[n]["auc_by_sensor"]) for n in names)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ys = [v if v is not None else math.nan for v in runs[name]["auc_by_sensor"]]
        ax.bar([j + i * width for j in range(len(ys))], ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(n_sensors)], range(n_sensors))
    ax.set_xlabel("sensor of the label grid (Thymio: 2 is the front centre)")
    ax.set_ylim(0.4, 1.08)
    ax.set_ylabel("mean AUC against truth (hard suite)")
    ax.legend(fontsize=8, loc="upper center", ncol=4)
    ax.set_title("label sources, per sensor")
    curve = sorted(results.get("curve", {}).values(), key=lambda r: r["true_contacts"])
    if curve:
        ax2.plot(
            [r["true_contacts"] for r in curve],
            [r["truth_auc"] for r in curve],
            "o-",
            label="all cells",
        )
        ax2.plot(
            [r["true_contacts"] for r in curve],
            [r["centre_auc"] for r in curve],
            "s--",
            label="centre cells",
        )
        ax2.axhline(0.85, color="grey", lw=0.8, ls=":")
        ax2.set_xlabel("true contacts in the training drives")
        ax2.set_ylabel("AUC against truth")
        ax2.set_title("no proximity: AUC against contacts")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def figures(results: dict[str, Any], png: Path, n_hard: int, pool_min: float) -> list[Figure]:
    runs = results["runs"]

    def auc(name: str, key: str = "truth_auc") -> float | None:
        r = runs.get(name)
        return None if r is None else r[key]

    ir, nop, all_ = auc("ir"), auc("no_proximity"), auc("all")
    centre = auc("no_proximity", "centre_auc")
    gain = None if ir is None or all_ is None else all_ - ir
    curve = sorted(results.get("curve", {}).values(), key=lambda r: r["true_contacts"])
    curve_text = ", ".join(f"{r['true_contacts']} {r['centre_auc']:.3f}" for r in curve)
    lidar = runs.get("lidar")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731

    def bands(name: str) -> str:
        r = runs.get(name)
        return (
            ""
            if r is None
            else " (" + ", ".join(f"{b} cm {fmt(v)}" for b, v in r["auc_by_band"].items()) + ")"
        )

    result = (
        f"mean AUC vs truth: IR **{fmt(ir)}**{bands('ir')}, no proximity **{fmt(nop)}**"
        f"{bands('no_proximity')}, its centre cells **{fmt(centre)}**, all sources "
        f"**{fmt(all_)}** ({'n/a' if gain is None else f'{gain:+.3f}'} over IR: where the IR "
        "knows a cell it wins, and every cell the other sources label the IR knows too); "
        f"no-proximity centre cells against true contacts: {curve_text or 'n/a'}"
        + (
            f"; LiDAR robot ({lidar['sensors']} sensors: scan sectors and a bumper; its own hard "
            f"suite): **{lidar['truth_auc']:.3f}**{bands('lidar')}"
            if lidar
            else ""
        )
        + f" (plot: {png})"
    )
    return [
        Figure(
            f"detectors trained on {pool_min:g} min of contact-seeking drives labelled by IR, by "
            f"contact + traversal (no proximity) and by all sources; {n_hard} `hard_*` worlds "
            "against truth",
            result,
            (
                Target(
                    "no-proximity centre cells >= 0.85",
                    None if centre is None else centre >= 0.85,
                    fmt(centre),
                ),
                Target(
                    "all sources >= IR + 0.01",
                    None if gain is None else gain >= 0.01,
                    "n/a" if gain is None else f"{gain:+.3f}",
                ),
            ),
            {
                "ir_auc": ir,
                "no_proximity_auc": nop,
                "no_proximity_centre_auc": centre,
                "all_auc": all_,
                "all_minus_ir": gain,
                "lidar_auc": None if lidar is None else lidar["truth_auc"],
            },
        )
    ]
