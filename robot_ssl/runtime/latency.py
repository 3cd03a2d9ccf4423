"""Latency statistics of the drive loop: rolling per-stage figures in milliseconds.

Stages: `capture` is a frame's age when the loop picked it up, `preprocess` and
`inference` the two halves of a camera policy's detector, `command` the policy's
decision and the wheel command, `end_to_end` the perception's capture (or reading)
to the command sent (threaded: measured; stepped: the age plus the modelled latency).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

__all__ = ["STAGES", "LatencyStats"]

STAGES = ("capture", "preprocess", "inference", "command", "end_to_end")


class LatencyStats:
    """Rolling per-stage latencies (ms) for the live status line and benchmarks."""

    def __init__(self, window: int = 100_000) -> None:
        self._ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._ms[stage].append(seconds * 1e3)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage with samples: median_ms, p99_ms, mean_ms, max_ms, n."""
        out = {}
        with self._lock:
            items = [(s, np.fromiter(v, float)) for s, v in self._ms.items() if v]
        for s, a in items:
            out[s] = {
                "median_ms": float(np.median(a)),
                "p99_ms": float(np.percentile(a, 99)),
                "mean_ms": float(a.mean()),
                "max_ms": float(a.max()),
                "n": len(a),
            }
        return out

    def line(self) -> str:
        short = {"capture": "cap", "preprocess": "pre", "inference": "inf", "command": "cmd"}
        parts = []
        for s, v in self.summary().items():
            if s == "end_to_end":
                parts.append(f"e2e {v['median_ms']:.1f} (p99 {v['p99_ms']:.1f}) ms")
            else:
                parts.append(f"{short[s]} {v['median_ms']:.1f}")
        return "  ".join(parts)
