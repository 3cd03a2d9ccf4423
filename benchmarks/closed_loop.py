"""Closed-loop obstacle avoidance in held-out simulated worlds: camera-only vs IR-only.

Run: `python -m benchmarks closed_loop [--quick] [--model out/demo/model.onnx] [--minutes 5]`.

In every held-out world (data/worlds/heldout_*.yaml plus `--generated` worlds drawn
with resolve_world(None, seed, "heldout")) it runs, on the simulator's stepped clock:

- IR-only reactive at cruise speed V (the same steering law over the IR range, 10 Hz),
- camera-only `avoid` at V (the trained detector, camera alone),
- camera-only `avoid` at `--fast-factor` x V,
- with `--oracle`, camera-only with perfect perception (the labeller's grid from the
  simulator's geometry) at both speeds: what the controller does with a perfect model.

and reports collisions per 10 minutes (summed over worlds / total minutes) and mean
forward speed (true displacement along the heading / time), then end-to-end latency
from capture to wheel command (median, p99) measured on the deploy path: the threaded
`LiveLoop.run` driving the in-process simulator in real time for `--realtime-s`. (The
stepped trials model that latency in simulated time: `--latency-s`, default 50 ms.)
Target (issue 8): camera-only with no more collisions than IR-only while faster.

Needs a trained model; without one it says so and stores nothing (the demo writes
out/demo/model.onnx). Single-threaded inference (ONNX Runtime, 1 thread).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks import Parser
from benchmarks.results import Figure, Target

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "out" / "demo" / "model.onnx"


def held_out_worlds(generated: list[int]) -> list[tuple[str | None, int]]:
    """(world, seed): the held-out scenario files, then generated held-out worlds."""
    files = sorted((ROOT / "data" / "worlds").glob("heldout_*.yaml"))
    return [(str(p), 0) for p in files] + [(None, s) for s in generated]


def _trial(job: dict) -> dict:
    import cv2

    from robot_ssl.simlink.closed_loop import closed_loop_trial

    cv2.setNumThreads(1)
    predictor = job.pop("predictor")
    if predictor not in (None, "oracle"):
        from robot_ssl.learning.torch_predictor import load_any_predictor

        predictor = load_any_predictor(predictor, num_threads=1)
    r = closed_loop_trial(predictor=predictor, split="heldout", **job)
    r["label"] = job_label(job["controller"], predictor == "oracle", job["cruise_speed"])
    return r


def job_label(controller: str, oracle: bool, speed: int) -> str:
    if controller == "ir":
        return f"IR-only reactive @ {speed}"
    return f"camera-only{' (oracle)' if oracle else ''} @ {speed}"


def summarise(rows: list[dict]) -> list[dict]:
    """One line per configuration: totals over worlds."""
    out: dict[str, dict] = {}
    for r in rows:
        s = out.setdefault(
            r["label"],
            {"label": r["label"], "minutes": 0.0, "collisions": 0, "fwd_m": 0.0, "e2e": []},
        )
        s["minutes"] += r["minutes"]
        s["collisions"] += r["collisions"]
        s["fwd_m"] += r["mean_forward_speed_m_s"] * r["minutes"] * 60
        s["worlds"] = s.get("worlds", 0) + 1
    for s in out.values():
        s["collisions_per_10min"] = s["collisions"] * 10 / s["minutes"]
        s["mean_forward_speed_m_s"] = s.pop("fwd_m") / (s["minutes"] * 60)
        s.pop("e2e")
    return list(out.values())


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmarks closed_loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="trained detector (.onnx, .pt)")
    p.add_argument("--minutes", type=float, default=5.0, help="simulated minutes per trial")
    p.add_argument("--speed", type=int, default=150, help="cruise speed V, raw units (150)")
    p.add_argument("--fast-factor", type=float, default=1.5, help="camera's higher speed / V")
    p.add_argument("--generated", type=int, nargs="*", default=[101, 102], help="world seeds")
    p.add_argument("--latency-s", type=float, default=None, help="modelled latency (camera)")
    p.add_argument("--oracle", action="store_true", help="add perfect-perception rows")
    p.add_argument("--realtime-s", type=float, default=10.0, help="wall-clock latency run (s)")
    p.add_argument("--jobs", type=int, default=1, help="parallel trials (processes)")
    p.add_argument("--out", default=None, help="write the results as JSON")
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Stepped trials per (controller, world), then the threaded loop's latency.
    Quick: 1 minute, 1 world, 3 s of latency: a smoke run."""
    args = parser().parse_args(argv)

    model = Path(args.model)
    if not model.is_file():
        print(
            f"closed_loop benchmark skipped: no model at {model} (train one with `make demo`, "
            "or pass --model PATH)",
            file=sys.stderr,
        )
        return []
    worlds = held_out_worlds(args.generated)
    if quick:
        args.minutes, worlds, args.realtime_s = 1.0, worlds[:1], 3.0
    fast = round(args.speed * args.fast_factor)
    configs = [("ir", None, args.speed), ("camera", str(model), args.speed)]
    configs.append(("camera", str(model), fast))
    if args.oracle:
        configs += [("camera", "oracle", args.speed), ("camera", "oracle", fast)]
    jobs = []
    for controller, predictor, speed in configs:
        for world, seed in worlds:
            job = {
                "world": world,
                "seed": seed,
                "controller": controller,
                "cruise_speed": speed,
                "minutes": args.minutes,
                "predictor": predictor,
            }
            if controller == "camera" and args.latency_s is not None:
                job["latency_s"] = args.latency_s
            jobs.append(job)
    print(
        f"closed loop: {len(worlds)} held-out worlds x {len(configs)} configurations, "
        f"{args.minutes:g} simulated min each, model {model}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    rows = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(_trial, jobs))
    else:
        rows = [_trial(dict(j)) for j in jobs]
    for r in rows:
        print(
            f"  {r['label']:<30} {r['world']:<18} collisions {r['collisions']:3d}  "
            f"forward {r['mean_forward_speed_m_s'] * 100:5.2f} cm/s  turns {r['turns']:4d}  "
            f"({r['wall_s']:.0f} s)",
            file=sys.stderr,
        )
    summary = summarise(rows)

    from robot_ssl.learning.torch_predictor import load_any_predictor
    from robot_ssl.simlink.closed_loop import realtime_trial

    live = realtime_trial(
        load_any_predictor(model, num_threads=1), worlds[0][0], worlds[0][1], args.realtime_s, fast
    )
    e2e = live["latency"].get("end_to_end", {})

    print(f"\nclosed loop in {len(worlds)} held-out worlds, {args.minutes:g} min each:")
    print(f"{'controller':<32} {'collisions/10 min':>18} {'mean forward speed':>20}")
    for s in summary:
        print(
            f"{s['label']:<32} {s['collisions_per_10min']:>18.2f} "
            f"{s['mean_forward_speed_m_s'] * 100:>15.2f} cm/s"
        )
    stages = "  ".join(
        f"{k} {v['median_ms']:.2f}" for k, v in live["latency"].items() if k != "end_to_end"
    )
    print(
        f"\nend-to-end latency, capture to wheel command (threaded loop, real time, "
        f"{live['seconds']:.0f} s, {live['fps']:.1f} frames/s): median {e2e.get('median_ms', 0):.1f} ms, "
        f"p99 {e2e.get('p99_ms', 0):.1f} ms  [medians, ms: {stages}]"
    )
    by = {s["label"]: s for s in summary}
    ir, cam, cam_fast = (
        by[job_label("ir", False, args.speed)],
        by[job_label("camera", False, args.speed)],
        by[job_label("camera", False, fast)],
    )
    ok = (
        cam_fast["collisions_per_10min"] <= ir["collisions_per_10min"]
        and cam_fast["mean_forward_speed_m_s"] > ir["mean_forward_speed_m_s"]
    )
    print(
        f"target (camera-only @ {fast} no more collisions than IR-only @ {args.speed}, and "
        f"faster): {'met' if ok else 'NOT met'}; camera-only @ {args.speed}: "
        f"{cam['collisions_per_10min']:.2f} vs {ir['collisions_per_10min']:.2f} collisions/10 min"
    )
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if args.out:
        for r in rows:
            r["final_targets"] = list(r["final_targets"])
        Path(args.out).write_text(
            json.dumps({"trials": rows, "summary": summary, "realtime": live}, indent=2)
        )
    return figures(summary, live, (ir, cam_fast, fast), len(worlds), args)


def figures(
    summary: list[dict],
    live: dict,
    verdict: tuple[dict, dict, int],
    n_worlds: int,
    args: argparse.Namespace,
) -> list[Figure]:
    """The README's two rows: the stepped trials, and the threaded loop's latency."""
    ir, cam_fast, fast = verdict
    trials = "; ".join(
        f"{s['label']}: {s['collisions_per_10min']:.1f}, {100 * s['mean_forward_speed_m_s']:.2f} cm/s"
        for s in summary
    )
    ok = (
        cam_fast["collisions_per_10min"] <= ir["collisions_per_10min"]
        and cam_fast["mean_forward_speed_m_s"] > ir["mean_forward_speed_m_s"]
    )
    note = (
        f"at {fast}: {cam_fast['collisions_per_10min']:.1f} vs {ir['collisions_per_10min']:.1f}, "
        f"{100 * cam_fast['mean_forward_speed_m_s']:.2f} vs "
        f"{100 * ir['mean_forward_speed_m_s']:.2f} cm/s"
    )
    e2e = live["latency"].get("end_to_end", {})
    stages = ", ".join(
        f"{k.replace('_', ' ')} {v['median_ms']:.2f}"
        for k, v in live["latency"].items()
        if k != "end_to_end"
    )
    return [
        Figure(
            f"{n_worlds} held-out worlds x {args.minutes:g} simulated minutes (model "
            f"`{Path(args.model).name}`), collisions / 10 min, mean forward speed",
            trials,
            (Target("camera-only faster with no more collisions", ok, note),),
            {
                "ir_collisions_per_10min": ir["collisions_per_10min"],
                "camera_fast_collisions_per_10min": cam_fast["collisions_per_10min"],
                "ir_forward_speed_m_s": ir["mean_forward_speed_m_s"],
                "camera_fast_forward_speed_m_s": cam_fast["mean_forward_speed_m_s"],
            },
        ),
        Figure(
            "live loop, threaded, real time, frame stamp to wheel command",
            f"median {e2e.get('median_ms', 0):.1f} ms, p99 {e2e.get('p99_ms', 0):.1f} ms "
            f"(medians: {stages})",
            (Target("< 200 ms", e2e.get("p99_ms", float("inf")) < 200.0),),
            {"e2e_median_ms": e2e.get("median_ms"), "e2e_p99_ms": e2e.get("p99_ms")},
        ),
    ]
