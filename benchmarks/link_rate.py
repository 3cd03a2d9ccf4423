"""Link throughput: request/response round trips per second and the sustained rate of reading
prox.horizontal + both motor speeds together (ThymioRobot.read), as medians over windows.

Peers: Aseba Playground (started here, headless; skipped with a note when it is not
installed) and the in-process fake node of the tests, which shows what the link itself
costs. Target: at least 50 reads/s of prox + speeds over a local socket.

    python -m benchmarks link_rate [--quick] [--seconds 2] [--windows 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import Parser
from benchmarks.results import Figure, Target

REPO = Path(__file__).resolve().parents[1]
# tests/playground.py (wherever the tests keep it) starts the peers
PLAYGROUND = min((REPO / "tests").rglob("playground.py"), default=REPO / "tests" / "playground.py")
sys.path[:0] = [str(REPO), str(PLAYGROUND.parent)]

from playground import (  # noqa: E402
    FakeAsebaNode,
    Playground,
    PlaygroundRobot,
    free_port,
    playground_missing,
)

from firmware_bridge import ThymioRobot  # noqa: E402

TARGET_READS_PER_S = 50.0


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, list[float]]:
    """Calls per second of `fn` over `seconds`, and each call's duration in seconds."""
    durations = []
    t_end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= t_end:
            break
        fn()
        durations.append(time.perf_counter() - t0)
    return len(durations) / seconds, durations


def measure(url: str, seconds: float, windows: int, spin: bool = False) -> dict[str, Any]:
    """Median round trips/s (1-word GET_VARIABLES) and reads/s (prox + speeds) at `url`.
    With `spin`, the robot turns in place near a wall, so that its proximity readings
    change at every simulation step: distinct readings per second = fresh samples/s."""
    with ThymioRobot.open(url, poll=True) as robot:  # request/response, not the stream
        if spin:
            robot.set_wheel_targets(100, -100)
        for _ in range(5):  # warm up
            robot.read()
        ping_rates, read_rates, fresh_rates, ping_d, read_d = [], [], [], [], []
        for _ in range(windows):
            r, d = rate(robot.link.ping, seconds)
            ping_rates.append(r)
            ping_d += d
            seen: list[bytes] = []
            r, d = rate(lambda seen=seen: seen.append(robot.read().proximity.tobytes()), seconds)
            read_rates.append(r)
            read_d += d
            fresh_rates.append(sum(a != b for a, b in itertools.pairwise(seen)) / seconds)
    return {
        "round_trips_per_s": statistics.median(ping_rates),
        "round_trip_ms": 1e3 * statistics.median(ping_d),
        "reads_per_s": statistics.median(read_rates),
        "fresh_per_s": statistics.median(fresh_rates) if spin else None,
        "read_ms": 1e3 * statistics.median(read_d),
        "read_p90_ms": 1e3 * sorted(read_d)[int(0.9 * len(read_d))],
        "reads_under_1ms": sum(d < 1e-3 for d in read_d) / len(read_d),
        "reads_per_s_windows": read_rates,
    }


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmarks link_rate", description=__doc__)
    p.add_argument("--seconds", type=float, default=None, help="one window (2; quick 0.5)")
    p.add_argument("--windows", type=int, default=None, help="windows per measurement (5; quick 2)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    return p


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Round trips and reads per second against the playground and the fake node."""
    args = parser().parse_args(argv)
    args.seconds = args.seconds or (0.5 if quick else 2.0)
    args.windows = args.windows or (2 if quick else 5)

    results: dict[str, dict[str, Any]] = {}
    missing = playground_missing()
    if missing:
        print(f"aseba playground: skipped ({missing})")
    else:
        # 10 cm from a wall, turning in place: its proximity readings change every step
        robot = PlaygroundRobot("bench", free_port(), x_cm=50, y_cm=68, angle_rad=1.5708)
        with Playground([robot]) as pg:
            results["aseba playground"] = measure(pg.url(), args.seconds, args.windows, spin=True)
    with FakeAsebaNode() as node:
        results["in-process fake node"] = measure(node.listen(), args.seconds, args.windows)

    print(
        f"{'peer':22} {'round trips/s':>14} {'rtt ms':>8} {'reads/s':>9} "
        f"{'fresh/s':>8} {'read ms':>8} {'read p90 ms':>12} {'reads < 1 ms':>13}"
    )
    for peer, r in results.items():
        print(
            f"{peer:22} {r['round_trips_per_s']:14.1f} {r['round_trip_ms']:8.2f} "
            f"{r['reads_per_s']:9.1f} "
            f"{'-' if r['fresh_per_s'] is None else format(r['fresh_per_s'], '.1f'):>8} "
            f"{r['read_ms']:8.2f} {r['read_p90_ms']:12.2f} "
            f"{100 * r['reads_under_1ms']:12.0f}%"
        )
    pg_rate = results.get("aseba playground", {}).get("reads_per_s")
    if pg_rate is not None:
        verdict = "met" if pg_rate >= TARGET_READS_PER_S else "NOT met"
        print(
            f"target >= {TARGET_READS_PER_S:.0f} reads/s of prox + speeds against the playground: "
            f"{verdict} ({pg_rate:.1f}/s, windows: "
            f"{', '.join(f'{x:.0f}' for x in results['aseba playground']['reads_per_s_windows'])})."
        )
        print(
            "note: the playground reads its TCP socket inside each ~30 ms simulation step and keeps "
            "polling only while requests keep arriving, so a request/response client gets either "
            "one reply per step (~33/s) or, when its next request lands within that loop, hundreds "
            "per second of the same step's values; its variables change once per step either way "
            "(fresh/s: distinct proximity readings per second). The fake node shows the link's "
            "own ceiling."
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return figures(results)


def figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
    """The README's row: reads/s against the playground, the fake node's for the link itself."""
    fake = results["in-process fake node"]["reads_per_s_windows"]
    own = (
        f"against an in-process Aseba node the link does {min(fake):,.0f}-{max(fake):,.0f} reads/s"
    )
    pg = results.get("aseba playground")
    if pg is None:
        text, met = f"playground not installed; {own}", None
    else:
        text = (
            f"{pg['reads_per_s']:.0f} reads/s ({pg['fresh_per_s']:.0f} distinct readings/s): the "
            f"playground serves its socket once per 30 ms simulation step; {own}"
        )
        met = pg["reads_per_s"] >= TARGET_READS_PER_S
    return [
        Figure(
            "prox + speeds reads against `asebaplayground`",
            text,
            (Target(f"{TARGET_READS_PER_S:.0f} reads/s against the playground", met),),
            {
                "playground_reads_per_s": None if pg is None else pg["reads_per_s"],
                "fake_node_reads_per_s": results["in-process fake node"]["reads_per_s"],
            },
        )
    ]
