"""Detector benchmark: held-out-world AUC, training time and single-thread inference latency.

    python -m benchmarks detector --latency-only          # no data needed
    python -m benchmarks detector --quick                 # latency only, fewer iterations
    python -m benchmarks detector --synthetic             # toy data, whole flow
    python -m benchmarks detector --data DIR --test-worlds W5 W6
    python -m benchmarks detector --train-worlds A B C D --test-worlds E F

Data: with `--data DIR`, labelled sessions already there (each session's
metadata names its world); otherwise sessions are recorded with the
simulator and labelled in-process, by the functions these verbs call, once per
world and seed (robot_ssl.simlink.sim_sessions):

    robot-ssl sim record --world W --minutes M --seed S OUT.h5
    robot-ssl label OUT.h5

(`--record-cmd` / `--label-cmd`: command templates run instead, e.g.
"{python} -m robot_ssl sim record --world {world} --minutes {minutes} --seed {seed} {out}"). Training uses
sessions of the training worlds only (validation: a fraction of those
sessions); the test worlds, with colours and textures never seen in
training, are used once, at the end, for the reported numbers.

Reports, for both architectures ("paper" baseline and "default"):
- mean ROC AUC over the (sensor, distance) grid and per band (0-10, 10-20,
  20-30 cm) on the held-out worlds, with bootstrap intervals;
- training wall time on this machine's threads (default 2) and the time at
  which the best validation epoch was reached;
- single-thread latency per frame (median, p99) for plain PyTorch,
  TorchScript and ONNX Runtime, model only (80x64 input) and with
  preprocessing from a 320x240 camera frame.

Targets: the default model beats the baseline on held-out worlds; mean AUC
>= 0.9 at 0-10 cm; inference < 2 ms median on one core. Results go to
WORK/detector_benchmark.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

from benchmarks import Parser
from benchmarks.results import Figure, Target

ARCHS = ("paper", "default")


# -- latency -------------------------------------------------------------------------------


def _timeit(fn: Any, arg: Any, warmup: int, iters: int) -> dict[str, float]:
    for _ in range(warmup):
        fn(arg)
    times = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn(arg)
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99))}


def latency(checkpoints: dict[str, Path], work: Path, iters: int) -> dict[str, Any]:
    """Single-thread latency per frame for each arch and runtime (batch of one)."""
    import torch

    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.torch_predictor import load_any_predictor

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    camera = rng.integers(0, 256, (1, 240, 320, 3), dtype=np.uint8)
    out: dict[str, Any] = {}
    for arch, ckpt in checkpoints.items():
        files = {
            "torch": ckpt,
            "torchscript": export_model(ckpt, "torchscript", work / f"{arch}.ts"),
            "onnxruntime": export_model(ckpt, "onnx", work / f"{arch}.onnx"),
        }
        out[arch] = {}
        for runtime, path in files.items():
            pred = load_any_predictor(path, num_threads=1)
            frame = pred.preprocess(camera)
            model_only = _timeit(pred.infer, frame, warmup=50, iters=iters)
            with_prep = _timeit(pred.predict, camera, warmup=20, iters=max(50, iters // 4))
            out[arch][runtime] = {"model": model_only, "with_preprocess_320x240": with_prep}
            print(
                f"  {arch:8s} {runtime:12s} model {model_only['median_ms']:.3f} ms "
                f"(p99 {model_only['p99_ms']:.3f})  + preprocess {with_prep['median_ms']:.3f} ms"
            )
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    return out


def untrained_checkpoints(work: Path) -> dict[str, Path]:
    """Checkpoints of freshly initialised models (latency does not depend on the weights)."""
    import torch

    from robot_ssl.learning.models import ModelConfig, build_model

    paths = {}
    for arch in ARCHS:
        cfg = ModelConfig(arch=arch)
        path = work / f"untrained_{arch}.pt"
        torch.save({"model": build_model(cfg).state_dict(), "model_config": cfg.to_dict()}, path)
        paths[arch] = path
    return paths


# -- data ----------------------------------------------------------------------------------


def _run(cmd: str) -> None:
    print("  $", cmd)
    proc = subprocess.run(shlex.split(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")


def generate_sim_data(args: argparse.Namespace, data: Path) -> None:
    """Record and label `sessions_per_world` sessions per world (skips existing): in-process,
    or with the command templates given."""
    from robot_ssl.learning.dataset import labels_path_for
    from robot_ssl.simlink.sim_sessions import SimRecording, label_quietly, record

    for world in args.train_worlds + args.test_worlds:
        for k in range(args.sessions_per_world):
            seed = args.seed * 1000 + k
            session = data / f"{world}_{seed}.h5"
            if not session.exists() and args.record_cmd is None:
                record(SimRecording(world, args.minutes, seed, session))
            elif not session.exists():
                _run(
                    args.record_cmd.format(
                        python=sys.executable,
                        world=world,
                        minutes=args.minutes,
                        seed=seed,
                        out=session,
                    )
                )
            if not labels_path_for(session).exists() and args.label_cmd is None:
                label_quietly([session])
            elif not labels_path_for(session).exists():
                _run(args.label_cmd.format(python=sys.executable, session=session))


def generate_synthetic_data(data: Path, worlds: list[str], frames: int) -> None:
    """Toy sessions (robot_ssl.learning.dataset.synthetic_frames), two per 'world', to exercise the flow."""
    from robot_ssl.learning.dataset import write_synthetic_session

    for i, world in enumerate(worlds):
        for k in range(2):
            path = data / f"{world}_{k}.h5"
            if not path.exists():
                write_synthetic_session(path, frames, world=world, seed=100 * i + k)


def default_worlds() -> tuple[list[str], list[str]]:
    """The simulator's shipped worlds, the last third held out for testing."""
    try:
        from sim.world import list_worlds

        worlds = list_worlds()
    except ImportError:
        worlds = []
    if len(worlds) < 2:
        return [], []
    n_test = max(1, len(worlds) // 3)
    return worlds[:-n_test], worlds[-n_test:]


# -- training and evaluation ---------------------------------------------------------------


def train_and_evaluate(args: argparse.Namespace, data: Path, work: Path) -> dict[str, Any]:
    import torch

    from robot_ssl.learning.dataset import FrameSet, load_sessions, split_sessions
    from robot_ssl.learning.evaluate import evaluate
    from robot_ssl.learning.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    sessions = load_sessions([data], cache_dir=work / "cache", progress=True)
    load_s = time.perf_counter() - t0
    worlds = sorted({str(s.world) for s in sessions})
    test_worlds = set(args.test_worlds)
    if not test_worlds or not test_worlds <= set(worlds):
        sys.exit(f"test worlds {sorted(test_worlds)} must be among the data's worlds {worlds}")
    train_pool = [s for s in sessions if s.world not in test_worlds]
    test = FrameSet.from_sessions([s for s in sessions if s.world in test_worlds])
    fit, val = split_sessions(train_pool, val_fraction=args.val_fraction, seed=args.seed)
    fit_set = FrameSet.from_sessions(fit)
    val_set = FrameSet.from_sessions(val) if val else None
    print(
        f"data: {len(sessions)} sessions from {len(worlds)} worlds, loaded in {load_s:.1f} s; "
        f"train {len(fit_set)} frames, val {len(val_set) if val_set else 0}, "
        f"test {len(test)} frames ({', '.join(sorted(test_worlds))})"
    )
    results: dict[str, Any] = {
        "worlds": {
            "train": sorted({str(s.world) for s in train_pool}),
            "test": sorted(test_worlds),
        },
        "frames": {"train": len(fit_set), "val": len(val_set or []), "test": len(test)},
        "threads": args.threads,
    }
    for arch in args.archs:
        cfg = TrainConfig(
            out_dir=str(work / f"run_{arch}"),
            arch=arch,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            num_threads=args.threads,
            overwrite=True,
            progress=True,
        )
        result = train(cfg, data=(fit_set, val_set))
        best = result.history[result.best_epoch - 1]
        report = evaluate(
            result.best_path,
            [],
            frames=test,
            out_dir=work / f"eval_{arch}",
            n_bootstrap=args.bootstrap,
            num_threads=args.threads,
            progress=False,
        )
        results[arch] = {
            "train_time_s": result.train_time_s,
            "time_to_best_s": best["elapsed_s"],
            "best_epoch": result.best_epoch,
            "val_auc": best.get("val_auc"),
            "test_mean_auc": report["mean_auc"],
            "test_mean_auc_ci": report["mean_auc_ci"],
            "test_auc_by_band": report["auc_by_band"],
            "test_auc_by_band_ci": report["auc_by_band_ci"],
            "test_cells_defined": report["num_cells_defined"],
            "checkpoint": str(result.best_path),
        }
    return results


# -- report --------------------------------------------------------------------------------


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def print_summary(res: dict[str, Any]) -> None:
    quality = res.get("quality")
    if quality:
        print("\nheld-out worlds:", ", ".join(quality["worlds"]["test"]))
        print(
            f"{'arch':8s} {'mean AUC':>16s} {'0-10':>7s} {'10-20':>7s} {'20-30':>7s} "
            f"{'train s':>8s} {'to best s':>9s}"
        )
        for arch in ARCHS:
            r = quality.get(arch)
            if r:
                lo, hi = r["test_mean_auc_ci"]
                b = r["test_auc_by_band"]
                print(
                    f"{arch:8s} {_f(r['test_mean_auc'])} [{_f(lo)},{_f(hi)}] "
                    f"{_f(b.get('0-10')):>7s} {_f(b.get('10-20')):>7s} {_f(b.get('20-30')):>7s} "
                    f"{r['train_time_s']:8.1f} {r['time_to_best_s']:9.1f}"
                )
    lat = res.get("latency", {})
    if lat:
        print("\nsingle-thread latency per frame, model only (median / p99 ms):")
        for arch, runtimes in lat.items():
            cells = "  ".join(
                f"{rt} {v['model']['median_ms']:.3f}/{v['model']['p99_ms']:.3f}"
                for rt, v in runtimes.items()
            )
            print(f"  {arch:8s} {cells}")
    targets = res.get("targets", {})
    if targets:
        print("\ntargets:")
        for name, ok in targets.items():
            print(f"  [{'PASS' if ok else 'FAIL' if ok is False else 'n/a '}] {name}")


def check_targets(res: dict[str, Any]) -> dict[str, bool | None]:
    q, lat = res.get("quality") or {}, res.get("latency") or {}
    default, paper = q.get("default"), q.get("paper")
    beats = None
    if default and paper and None not in (default["test_mean_auc"], paper["test_mean_auc"]):
        beats = default["test_mean_auc"] > paper["test_mean_auc"]
    near = None
    if default and default["test_auc_by_band"].get("0-10") is not None:
        near = default["test_auc_by_band"]["0-10"] >= 0.9
    fast = None
    if "default" in lat:
        fast = max(v["model"]["median_ms"] for v in lat["default"].values()) < 2.0
    return {
        "default beats paper on held-out worlds (mean AUC)": beats,
        "default: mean AUC >= 0.9 at 0-10 cm on held-out worlds": near,
        "default: inference < 2 ms median on one core (every runtime)": fast,
    }


def parser() -> argparse.ArgumentParser:
    train_default, test_default = default_worlds()
    p = Parser(
        prog="python -m benchmarks detector",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--data", type=Path, help="folder of labelled sessions (skip recording)")
    p.add_argument("--work", type=Path, help="output folder (default: a temporary one)")
    p.add_argument("--train-worlds", nargs="+", default=train_default)
    p.add_argument("--test-worlds", nargs="+", default=test_default)
    p.add_argument("--sessions-per-world", type=int, default=2)
    p.add_argument("--minutes", type=float, default=3.0, help="minutes per recorded session")
    p.add_argument("--record-cmd", default=None, help="a command template (default: in-process)")
    p.add_argument("--label-cmd", default=None, help="a command template (default: in-process)")
    p.add_argument("--synthetic", action="store_true", help="toy data instead of the simulator")
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--threads", type=int, default=2, help="training threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-only", action="store_true")
    p.add_argument("--latency-iters", type=int, default=None, help="(1000; quick 200)")
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Held-out AUC and training time of both archs, then latency; quick: latency only."""
    args = parser().parse_args(argv)
    args.latency_only = args.latency_only or quick
    args.latency_iters = args.latency_iters or (200 if quick else 1000)

    work = args.work or Path(tempfile.mkdtemp(prefix="detector_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"argv": sys.argv[1:]}
    checkpoints = None
    if not args.latency_only:
        data = args.data or work / "data"
        if args.synthetic:
            args.train_worlds = args.train_worlds if args.data else ["s0", "s1", "s2", "s3"]
            args.test_worlds = args.test_worlds if args.data else ["s4", "s5"]
            generate_synthetic_data(data, args.train_worlds + args.test_worlds, 400)
        elif args.data is None:
            if not args.train_worlds or not args.test_worlds:
                sys.exit("no simulator worlds found: pass --train-worlds and --test-worlds")
            data.mkdir(parents=True, exist_ok=True)
            generate_sim_data(args, data)
        res["quality"] = train_and_evaluate(args, data, work)
        checkpoints = {a: Path(res["quality"][a]["checkpoint"]) for a in args.archs}
    print("\nlatency (1 thread):")
    res["latency"] = latency(checkpoints or untrained_checkpoints(work), work, args.latency_iters)
    res["targets"] = check_targets(res)
    (work / "detector_benchmark.json").write_text(json.dumps(res, indent=1) + "\n")
    print_summary(res)
    print(f"\nresults: {work / 'detector_benchmark.json'}")
    return figures(res, args)


def _runtimes(runtimes: dict[str, Any]) -> str:
    names = {"onnxruntime": "ONNX Runtime", "torchscript": "TorchScript", "torch": "torch"}
    return ", ".join(
        f"{names.get(rt, rt)} {v['model']['median_ms']:.2f} / {v['model']['p99_ms']:.2f} ms"
        for rt, v in sorted(runtimes.items(), key=lambda kv: list(names).index(kv[0]))
    )


def figures(res: dict[str, Any], args: argparse.Namespace) -> list[Figure]:
    """The README's rows: held-out AUC (when trained) and single-thread inference."""
    targets = check_targets(res)
    met = list(targets.values())
    out = []
    q = res.get("quality")
    if q and "default" in q and "paper" in q:
        d, pa = q["default"], q["paper"]

        def bands(r: dict[str, Any]) -> str:
            return " / ".join(_f(r["test_auc_by_band"].get(b)) for b in ("0-10", "10-20", "20-30"))

        out.append(
            Figure(
                f"held-out worlds {', '.join(q['worlds']['test'])}, "
                f"{len(q['worlds']['train'])} training worlds, {args.epochs} epochs",
                f"mean AUC: default **{_f(d['test_mean_auc'])}** [{_f(d['test_mean_auc_ci'][0])}, "
                f"{_f(d['test_mean_auc_ci'][1])}] (0-10 / 10-20 / 20-30 cm: {bands(d)}); paper "
                f"baseline {_f(pa['test_mean_auc'])} ({bands(pa)}); training "
                f"{d['train_time_s']:.0f} s / {pa['train_time_s']:.0f} s on {q['threads']} threads",
                (Target("default > paper", met[0]), Target(">= 0.9 at 0-10 cm", met[1])),
                {"default_mean_auc": d["test_mean_auc"], "paper_mean_auc": pa["test_mean_auc"]},
            )
        )
    lat = res["latency"]
    text = "; ".join(f"{arch}: {_runtimes(runtimes)}" for arch, runtimes in lat.items())
    onnx = lat.get("default", {}).get("onnxruntime", {}).get("model", {})
    out.append(
        Figure(
            "single-thread inference per 80x64 frame, median / p99",
            text,
            (Target("< 2 ms", met[2]),),
            {
                "default_onnx_median_ms": onnx.get("median_ms"),
                "default_onnx_p99_ms": onnx.get("p99_ms"),
            },
        )
    )
    return out
