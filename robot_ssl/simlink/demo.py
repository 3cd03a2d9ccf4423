"""The demo (`robot-ssl demo`): the whole pipeline on the simulator, from nothing to a report.

Records sessions in several training worlds and in held-out worlds (unseen colours
and textures), labels them, trains the detector, evaluates it on the held-out
worlds, exports it, drives camera-only in an unseen world against the IR-only
baseline, renders a replay video, and writes `OUT/report.md`. Each step calls, in this
process, the library function of the `robot-ssl` verb a user would run, with its config
(`label(LabelJob)`, `run_train(TrainConfig)`, `evaluate_config(EvalConfig)`,
`export_model`, `replay(ReplayJob)`); the recordings run in parallel worker processes.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from robot_ssl.simlink.sim_sessions import (
    SimRecording,
    label_quietly,
    record_sessions,
    world_arg,
    world_name,
)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo records and how long it trains; the defaults fit ~15 min on 2 cores."""

    train_worlds: tuple[str, ...] = (
        "arena_boxes",
        "cluttered",
        "corridor",
        "gen:train:11",
        "gen:train:12",
        "gen:train:13",
        "gen:train:14",
    )
    heldout_worlds: tuple[str, ...] = ("heldout_clutter", "heldout_mixed", "gen:heldout:21")
    closed_loop_world: str = "gen:heldout:31"
    train_minutes: float = 4.0
    heldout_minutes: float = 3.0
    epochs: int = 5
    arch: str = "default"
    closed_loop_minutes: float = 3.0
    cruise_speed: int = 150
    fast_factor: float = 1.5
    replay_frames: int = 450
    jobs: int = 2
    seed: int = 0
    study_results: str = str(
        Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "label_budget.json"
    )
    """The label-budget study's stored figures, quoted by the report's self-supervised
    against supervised section (absent outside a checkout: the report says how to get them)."""

    @classmethod
    def quick(cls) -> DemoConfig:
        """A small run (a couple of minutes) to check that every step works."""
        return cls(
            train_worlds=("arena_boxes", "gen:train:11"),
            heldout_worlds=("heldout_mixed",),
            train_minutes=1.5,
            heldout_minutes=1.0,
            epochs=2,
            closed_loop_minutes=0.5,
            replay_frames=90,
        )


@dataclass
class _Timer:
    steps: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn, *args, **kwargs):
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.steps[name] = time.monotonic() - t0


def run_demo(cfg: DemoConfig, out: str | Path, keep: bool = False) -> int:
    """Run the whole pipeline into `out` (reusing its sessions with `keep`); 0 on success."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(out)
    sessions_dir, worlds_dir = out / "sessions", out / "worlds"
    sessions_dir.mkdir(parents=True, exist_ok=True)
    worlds_dir.mkdir(parents=True, exist_ok=True)
    timer = _Timer()

    from robot_ssl.simlink.report import DemoReport

    report = DemoReport(out_dir=out)

    # 1. record -------------------------------------------------------------------------
    jobs = []
    for split, worlds, minutes in (
        ("train", cfg.train_worlds, cfg.train_minutes),
        ("heldout", cfg.heldout_worlds, cfg.heldout_minutes),
    ):
        for k, world in enumerate(worlds):
            path = sessions_dir / f"{split}_{world_name(world)}.h5"
            jobs.append((split, world, minutes, cfg.seed + 100 * k + 7, path))
    todo = [
        SimRecording(world_arg(world, worlds_dir), minutes, seed, path)
        for _, world, minutes, seed, path in jobs
        if not (keep and path.exists())
    ]
    timer.run("record sessions", record_sessions, todo, cfg.jobs)
    for split, world, minutes, _, path in jobs:
        report.sessions.append(
            {"name": path.name, "world": world_name(world), "split": split, "minutes": minutes}
        )
    train = [str(j[4]) for j in jobs if j[0] == "train"]
    heldout = [str(j[4]) for j in jobs if j[0] == "heldout"]

    # 2. label --------------------------------------------------------------------------
    timer.run("label", label_quietly, train + heldout, jobs=cfg.jobs, truth=True)
    report.label_summary = _label_summary(train + heldout)
    first_png = Path(train[0]).with_suffix(".labels.png")
    if first_png.exists():
        report.images["Label coverage and positive rate (first training session)"] = first_png

    # 3. train --------------------------------------------------------------------------
    from robot_ssl.learning.train import run_train
    from robot_ssl.learning.train_config import TrainConfig

    run_dir = out / "run"
    train_cfg = TrainConfig(
        data=tuple(train),
        out_dir=str(run_dir),
        arch=cfg.arch,
        epochs=cfg.epochs,
        val_fraction=0.2,
        seed=cfg.seed,
        num_threads=2,
        overwrite=True,
    )
    timer.run("train", run_train, train_cfg)
    model = run_dir / "best.pt"
    if (run_dir / "curves.png").exists():
        report.images["Training curves"] = run_dir / "curves.png"

    # 4. evaluate on held-out worlds ----------------------------------------------------
    from robot_ssl.learning.eval_config import EvalConfig
    from robot_ssl.learning.evaluate import run_eval

    eval_dir = out / "eval"
    eval_cfg = EvalConfig(
        model=str(model),
        data=tuple(heldout),
        out_dir=str(eval_dir),
        json_out=str(out / "eval.json"),
        bootstrap=200,
        truth=True,
    )
    report.eval_report = timer.run("evaluate (held-out worlds)", run_eval, eval_cfg)
    for caption, name in (
        ("ROC AUC per (sensor, distance) on held-out worlds", "auc_heatmap.png"),
        ("ROC AUC vs distance on held-out worlds", "auc_vs_distance.png"),
    ):
        if (eval_dir / name).exists():
            report.images[caption] = eval_dir / name

    # 5. export -------------------------------------------------------------------------
    onnx = out / "model.onnx"
    timer.run("export (ONNX)", _export, model, onnx, heldout[0])

    # 6. replay video -------------------------------------------------------------------
    from robot_ssl.live.replay_job import ReplayJob, replay

    video = out / "replay.mp4"
    replay_job = ReplayJob(
        session=heldout[0], model=str(onnx), video=str(video), max_frames=cfg.replay_frames
    )
    timer.run("replay video", replay, replay_job)
    report.video = video

    # 7. closed loop in an unseen world -------------------------------------------------
    world = world_arg(cfg.closed_loop_world, worlds_dir)
    timer.run("closed loop", _closed_loop, report, world, onnx, cfg)

    from robot_ssl.simlink.report import read_supervised_share

    report.supervised_share = read_supervised_share(cfg.study_results)
    report.timings_s = timer.steps
    path = report.write()
    print(f"report: {path}")
    return 0


def _export(model: Path, onnx: Path, check_session: str) -> None:
    """`robot-ssl export --format onnx --check-data SESSION` in-process."""
    from robot_ssl.learning.dataset import sample_session_frames
    from robot_ssl.learning.export import export_model

    check = sample_session_frames([check_session])
    path = export_model(model, "onnx", onnx, check_images=check)
    print(f"wrote {path} (parity with PyTorch checked)")


def _label_summary(sessions: list[str]) -> list[dict]:
    from robot_ssl.io.labels_file import default_labels_path, read_labels

    rows = []
    for s in sessions:
        labels = read_labels(default_labels_path(s))
        st = labels.stats()
        rows.append(
            {
                "name": Path(s).name,
                "frames": labels.num_frames,
                "known": st.known_fraction,
                "positive": st.positive_fraction,
            }
        )
    return rows


def _closed_loop(report, world: str, model: Path, cfg: DemoConfig) -> None:
    from robot_ssl.learning.torch_predictor import load_any_predictor
    from robot_ssl.simlink.closed_loop import closed_loop_trial
    from robot_ssl.simlink.report import ClosedLoopRow

    predictor = load_any_predictor(model)
    fast = round(cfg.cruise_speed * cfg.fast_factor)
    for controller, speed in (
        ("ir", cfg.cruise_speed),
        ("camera", cfg.cruise_speed),
        ("camera", fast),
    ):
        r = closed_loop_trial(
            world,
            seed=cfg.seed,
            controller=controller,
            cruise_speed=speed,
            minutes=cfg.closed_loop_minutes,
            predictor=predictor if controller == "camera" else None,
        )
        lat = r.get("latency", {}).get("end_to_end", {})
        report.closed_loop.append(
            ClosedLoopRow(
                controller="camera only" if controller == "camera" else "IR only (reactive)",
                cruise_speed=speed,
                minutes=r["minutes"],
                collisions=r["collisions"],
                mean_forward_speed_m_s=r["mean_forward_speed_m_s"],
                latency_median_ms=lat.get("median_ms"),
                latency_p99_ms=lat.get("p99_ms"),
            )
        )
