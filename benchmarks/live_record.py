"""Live loop with and without recording: capture-to-command latency of `robot-ssl run`.

    python -m benchmarks live_record [--quick] [--rounds 3] [--duration 15]

Runs `robot-ssl run --robot sim --camera sim --drive avoid --model M.onnx` in-process
(`robot_ssl.live.run.run(RunConfig)`, the function the verb calls; an untrained
default detector exported to ONNX; inference cost is what matters) for `--duration` s,
alternating runs without and with `--record`, and prints the median over rounds of
each run's capture-to-command median and p99 (ms), and the difference. Target
(issue 12): p99 with `--record` within 1 ms of the p99 without. Recording goes
through one writer thread (robot_ssl.recording.sink): JPEG encoding and HDF5 flushes
are off the inference thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks import Parser
from benchmarks.results import Figure, Target


def make_model(folder: Path) -> Path:
    import torch

    from robot_ssl.inference.model_config import ModelConfig
    from robot_ssl.learning.export import export_model
    from robot_ssl.learning.models import build_model

    cfg = ModelConfig(distances_m=tuple(round(0.01 * i, 2) for i in range(31)))
    torch.manual_seed(0)
    torch.save(
        {"model": build_model(cfg).state_dict(), "model_config": cfg.to_dict()}, folder / "m.pt"
    )
    return export_model(folder / "m.pt", "onnx", folder / "m.onnx")


def one_run(model: Path, duration: float, record: Path | None) -> tuple[float, float]:
    """One `run --robot sim --camera sim --drive avoid` in-process: (median, p99) ms of
    capture to command."""
    from robot_ssl.live.loop import LiveConfig
    from robot_ssl.live.run import RunConfig, run
    from robot_ssl.simlink.devices import parse_devices

    robot, camera = parse_devices("sim", "sim")
    cfg = RunConfig(
        model=str(model),
        robot=robot,
        camera=camera,
        live=LiveConfig(drive="avoid"),
        duration_s=duration,
        status=False,
        record=str(record) if record is not None else None,
        overwrite=record is not None,
    )
    result = run(cfg)
    e2e = result.result.latency.get("end_to_end")
    if result.exit_status != 0 or e2e is None:
        raise SystemExit(f"run failed ({result.exit_status}): {result.result.summary()}")
    return e2e["median_ms"], e2e["p99_ms"]


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="python -m benchmarks live_record", description=__doc__)
    ap.add_argument("--rounds", type=int, default=None, help="rounds (3; quick 1)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per run (15; quick 4)")
    return ap


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Capture to command with and without --record, alternating, medians over rounds."""
    args = parser().parse_args(argv)
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (4.0 if quick else 15.0)
    with tempfile.TemporaryDirectory(prefix="live-record-") as tmp:
        tmp = Path(tmp)
        model = make_model(tmp)
        runs: dict[str, list[tuple[float, float]]] = {"without": [], "with --record": []}
        for r in range(args.rounds):
            runs["without"].append(one_run(model, args.duration, None))
            runs["with --record"].append(one_run(model, args.duration, tmp / "live.h5"))
            print(f"round {r + 1}: without {runs['without'][-1]}, with {runs['with --record'][-1]}")
    med = {
        k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
        for k, v in runs.items()
    }
    print(
        f"{'':16} {'median ms':>10} {'p99 ms':>8}   ({args.rounds} rounds of {args.duration:g} s)"
    )
    for k, (a, b) in med.items():
        print(f"{k:16} {a:10.2f} {b:8.2f}")
    d = med["with --record"][1] - med["without"][1]
    print(
        f"p99 difference: {d:+.2f} ms (target: within 1 ms) -> {'met' if abs(d) <= 1.0 else 'MISSED'}"
    )
    (a0, b0), (a1, b1) = med["without"], med["with --record"]
    return [
        Figure(
            "`robot-ssl run` (sim robot and camera, ONNX), capture to command with and without "
            f"`--record`, {args.rounds} x {args.duration:g} s, medians",
            f"without: median {a0:.1f}, p99 {b0:.1f} ms; with `--record`: {a1:.1f}, {b1:.1f} ms "
            f"(difference {d:+.1f} ms)",
            (Target("p99 within 1 ms", abs(d) <= 1.0),),
            {
                "median_ms_without": a0,
                "p99_ms_without": b0,
                "median_ms_with_record": a1,
                "p99_ms_with_record": b1,
            },
        )
    ]
