"""Polling against streaming, and the robot's own watchdog: what the onboard program buys.

For each peer (the virtual Thymio, in process, whose simulator knows every instant at which
the firmware refreshed `prox.horizontal`; Aseba Playground, started here headless when
installed) and each link mode, a robot turns on the spot beside a wall for `--seconds`
while proximity is recorded as the recorder does it: polled with the wheel speeds at 50 Hz
and kept every fifth poll (its `wheels_hz` and `prox_hz`), or every pushed refresh. The
phase between the host's polls and the firmware's refreshes is arbitrary (two clocks), so
polling runs in five segments, each started at a random phase. Figures:

- timestamp error: recorded time minus the firmware's update instant of the recorded values
  (virtual Thymio only: Playground does not tell), median and p95;
- loss: refreshes never recorded (polling: against the true update list; streaming: from
  the program's counters), and duplicates (the same refresh recorded twice);
- link messages per second, both directions;
- the motors' stop latency after SIGKILL of a driving host (median of `--kills`), with the
  onboard watchdog and with polling (which never stops: reported as "never").

Targets (issue 13): no counter gap in 10 minutes (`--seconds 600`), median timestamp error
under 5 ms when streaming, stop within 300 ms after SIGKILL on both peers.

    python -m benchmarks onboard_link [--quick] [--seconds 20] [--stream-seconds 600]
        [--kills 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import Parser
from benchmarks.results import Figure, Target

REPO = Path(__file__).resolve().parents[1]
# tests/playground.py (wherever the tests keep it) starts the peers
PLAYGROUND = min((REPO / "tests").rglob("playground.py"), default=REPO / "tests" / "playground.py")
sys.path[:0] = [str(REPO), str(PLAYGROUND.parent)]

from playground import (  # noqa: E402
    Playground,
    PlaygroundRobot,
    free_port,
    measure_stop_latency,
    playground_missing,
)

from firmware_bridge import ThymioRobot  # noqa: E402

POLL_PERIOD_S = 0.02  # the recorder's wheels_hz ...
PROX_EVERY = 5  # ... and prox_hz: proximity from every fifth poll
SEGMENTS = 5


def record(url: str, poll: bool, seconds: float) -> dict[str, Any]:
    """Turn on the spot for `seconds`, recording proximity (time, values) as the recorder
    would; with the link's message counts."""
    rows: list[tuple[int, tuple[int, ...]]] = []
    with ThymioRobot.open(url, poll=poll) as robot:
        robot.set_wheel_targets(80, -80)
        time.sleep(0.5)
        if robot.streaming:
            robot.drain_stream()
        rng = np.random.default_rng(0)
        sent = received = 0
        for _ in range(1 if robot.streaming else SEGMENTS):
            if not robot.streaming:
                time.sleep(rng.uniform(0, PROX_EVERY * POLL_PERIOD_S))  # a new phase
            stats0 = (robot.link.stats.sent, robot.link.stats.frames)
            t_end = time.monotonic() + (seconds if robot.streaming else seconds / SEGMENTS)
            next_poll = time.monotonic()
            polls = 0
            while time.monotonic() < t_end:
                if robot.streaming:
                    time.sleep(0.05)
                    batch = robot.drain_stream()
                    rows += [(s.t_ns, tuple(int(v) for v in s.proximity)) for s in batch.proximity]
                    continue
                next_poll += POLL_PERIOD_S
                r = robot.read()
                if polls % PROX_EVERY == 0:
                    rows.append((r.t_ns, tuple(int(v) for v in r.proximity)))
                polls += 1
                time.sleep(max(0.0, next_poll - time.monotonic()))
            sent += robot.link.stats.sent - stats0[0]
            received += robot.link.stats.frames - stats0[1]
        counters = robot.stream.counters
        mode = robot.mode
    return {
        "mode": mode,
        "rows": rows,
        "messages_per_s": (sent + received) / seconds,
        "sent_per_s": sent / seconds,
        "received_per_s": received / seconds,
        "counter_gaps": counters.prox_lost if mode == "stream" else None,
    }


def score_against_truth(
    rows: list[tuple[int, tuple[int, ...]]], updates: list[tuple[int, tuple[int, ...]]]
) -> dict[str, float]:
    """Match each recorded row to the newest firmware update at or before it: the error is
    the row's time minus that update's instant; updates never matched are lost."""
    times = [t for t, _ in updates]
    errors_ms, matched = [], []
    for t, values in rows:
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            continue
        if updates[i][1] != values:  # values from an older update (a reply in flight)
            j = max((k for k in range(max(0, i - 3), i) if updates[k][1] == values), default=i)
            i = j
        errors_ms.append((t - times[i]) / 1e6)
        matched.append(i)
    # refreshes between segments were not meant to be recorded: count within them only
    expected = sum(hi - lo + 1 for lo, hi in _runs(sorted(set(matched))))
    distinct = len(set(matched))
    return {
        "ts_error_median_ms": statistics.median(errors_ms),
        "ts_error_p95_ms": float(np.percentile(errors_ms, 95)),
        "lost_fraction": 1 - distinct / expected,
        "duplicate_rows": len(matched) - distinct,
        "updates": expected,
    }


def _runs(indices: list[int], max_step: int = 5) -> list[tuple[int, int]]:
    """Spans of update indices without a jump of more than `max_step` (a pause between
    polling segments)."""
    spans: list[tuple[int, int]] = []
    for i in indices:
        if spans and i - spans[-1][1] <= max_step:
            spans[-1] = (spans[-1][0], i)
        else:
            spans.append((i, i))
    return spans


def virtual_thymio_peer(seconds: float, kills: int, stream_s: float) -> dict[str, Any]:
    from robot_ssl.simlink.simulator import make_simulator
    from sim.virtual_thymio import VirtualThymio

    # beside a wall, so that turning on the spot changes every refresh
    sim = make_simulator("arena_boxes", 0, camera=False, start_ns=time.monotonic_ns())
    sim.advance_to(time.monotonic_ns())
    out: dict[str, Any] = {}
    with VirtualThymio(sim) as vt:
        host, port = vt.serve_tcp("127.0.0.1", 0)
        url = f"socket://{host}:{port}"
        for poll in (True, False):
            res = record(url, poll, seconds if poll else stream_s)
            updates = list(vt.node.prox_updates)
            res.update(score_against_truth(res.pop("rows"), updates))
            out["poll" if poll else "stream"] = res
        out["stop_latency"] = stop_latencies(url, kills)
    return out


def playground_peer(seconds: float, kills: int, stream_s: float) -> dict[str, Any]:
    robots = [PlaygroundRobot("T1", free_port(), x_cm=50, y_cm=80, angle_rad=1.5708)]
    out: dict[str, Any] = {}
    with Playground(robots, walls=[(50, 92, 40, 4)]) as pg:
        for poll in (True, False):
            dur = seconds if poll else stream_s
            res = record(pg.url(), poll, dur)
            rows = res.pop("rows")
            res["rows_per_s"] = len(rows) / dur
            res["distinct_values_per_s"] = len({v for _, v in rows}) / dur
            out["poll" if poll else "stream"] = res
            time.sleep(0.5)
        out["stop_latency"] = stop_latencies(pg.url(), kills)
    return out


def stop_latencies(url: str, kills: int) -> dict[str, Any]:
    stream = [measure_stop_latency(url).latency_s for _ in range(kills)]
    polled = measure_stop_latency(url, poll=True, wait_s=1.0).latency_s
    done = [s for s in stream if s is not None]
    return {
        "stream_median_s": statistics.median(done) if done else None,
        "stream_max_s": max(done) if done else None,
        "stream_never": len(stream) - len(done),
        "poll_s": polled,  # None: the wheels never stopped
    }


def parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="python -m benchmarks onboard_link",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--seconds", type=float, default=None, help="per mode and peer (20; quick 3)")
    ap.add_argument(
        "--stream-seconds", type=float, default=None, help="streaming recording (default --seconds)"
    )
    ap.add_argument("--kills", type=int, default=None, help="SIGKILL trials per peer (3; quick 1)")
    ap.add_argument("--json", type=Path, default=None)
    return ap


def run(quick: bool, argv: list[str]) -> list[Figure]:
    """Polling against streaming on each peer, then stop latencies after SIGKILL."""
    args = parser().parse_args(argv)
    args.seconds = args.seconds or (3.0 if quick else 20.0)
    args.kills = args.kills or (1 if quick else 3)
    stream_s = args.stream_seconds or args.seconds
    results: dict[str, Any] = {
        "virtual_thymio": virtual_thymio_peer(args.seconds, args.kills, stream_s)
    }
    missing = playground_missing()
    if missing:
        print(f"note: Aseba Playground skipped: {missing}")
    else:
        results["playground"] = playground_peer(args.seconds, args.kills, stream_s)

    for peer, res in results.items():
        print(f"== {peer} (polling {args.seconds:g} s, streaming {stream_s:g} s)")
        for mode in ("poll", "stream"):
            r = res[mode]
            line = f"  {mode:6s} ({r['mode']}): {r['messages_per_s']:.0f} msg/s"
            if "ts_error_median_ms" in r:
                line += (
                    f", timestamp error median {r['ts_error_median_ms']:.1f} ms"
                    f" (p95 {r['ts_error_p95_ms']:.1f}), lost {100 * r['lost_fraction']:.1f}%"
                    f" of {r['updates']} refreshes, {r['duplicate_rows']} duplicate rows"
                )
            else:
                line += f", {r['distinct_values_per_s']:.1f} distinct readings/s"
            if r["counter_gaps"] is not None:
                line += f", counter gaps {r['counter_gaps']}"
            print(line)
        s = res["stop_latency"]
        med = "never" if s["stream_median_s"] is None else f"{1000 * s['stream_median_s']:.0f} ms"
        worst = "-" if s["stream_max_s"] is None else f"{1000 * s['stream_max_s']:.0f} ms"
        poll = "never" if s["poll_s"] is None else f"{1000 * s['poll_s']:.0f} ms"
        print(
            f"  stop after SIGKILL: onboard watchdog median {med} (max {worst}, "
            f"{s['stream_never']} never), polling {poll}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return figures(results, args.seconds, stream_s, args.kills)


def _ms(s: float | None) -> str:
    return "never" if s is None else f"{1000 * s:.0f} ms"


def figures(results: dict[str, Any], poll_s: float, stream_s: float, kills: int) -> list[Figure]:
    """The README's two rows: recorded proximity, and the stop after SIGKILL."""
    vt = results["virtual_thymio"]
    p, st = vt["poll"], vt["stream"]
    gaps = [res["stream"]["counter_gaps"] for res in results.values()]
    text = (
        f"virtual Thymio (true refresh instants known): timestamp error median "
        f"**{p['ts_error_median_ms']:.1f} ms** (p95 {p['ts_error_p95_ms']:.1f}) polling vs "
        f"**{st['ts_error_median_ms']:.1f} ms** (p95 {st['ts_error_p95_ms']:.1f}) streaming; "
        f"refreshes lost {100 * p['lost_fraction']:.1f}% vs {100 * st['lost_fraction']:.1f}%; "
        f"counter gaps in {stream_s:g} s: {', '.join(str(g) for g in gaps)}; "
        f"link {p['messages_per_s']:.0f} vs {st['messages_per_s']:.0f} msg/s"
    )
    pg = results.get("playground")
    if pg is not None:
        text += (
            f" (playground: {pg['poll']['messages_per_s']:.0f} vs "
            f"{pg['stream']['messages_per_s']:.0f} msg/s, {pg['poll']['distinct_values_per_s']:.1f} "
            f"vs {pg['stream']['distinct_values_per_s']:.1f} distinct readings/s)"
        )
    every = all(g == 0 for g in gaps) and st["lost_fraction"] == 0
    stops = {peer: res["stop_latency"] for peer, res in results.items()}
    stop_text = "onboard watchdog (200 ms): " + ", ".join(
        f"{peer.replace('_', ' ')} median {_ms(s['stream_median_s'])} (max {_ms(s['stream_max_s'])})"
        for peer, s in stops.items()
    )
    polled = {_ms(s["poll_s"]) for s in stops.values()}
    stop_text += f"; polling: {', '.join(sorted(polled))}"
    worst = [s["stream_max_s"] for s in stops.values()]
    stopped = all(w is not None and w < 0.3 for w in worst) and all(
        s["stream_never"] == 0 for s in stops.values()
    )
    return [
        Figure(
            "recorded proximity, polling (50 Hz polls, prox kept at 10 Hz, as the recorder did; "
            f"5 random phases) vs the onboard program's stream; {poll_s:g} s polling, "
            f"{stream_s:g} s streaming per peer",
            text,
            (Target("every refresh, median < 5 ms", every and st["ts_error_median_ms"] < 5.0),),
            {
                "ts_error_median_ms_poll": p["ts_error_median_ms"],
                "ts_error_median_ms_stream": st["ts_error_median_ms"],
                "counter_gaps": float(sum(g or 0 for g in gaps)),
            },
        ),
        Figure(
            "wheels at 0 after SIGKILL of a driving host (link left open by a relay), "
            f"{kills} kills",
            stop_text,
            (Target("< 300 ms", stopped),),
            {f"stop_median_ms_{peer}": s["stream_median_s"] for peer, s in stops.items()},
        ),
    ]
