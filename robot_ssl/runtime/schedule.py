"""The stepped scheduler: periodic ticks (and one-shot pending events) on a clock that
advances when waited on, e.g. the simulator's; shared by the recorder and the live loop.

Stream k ticks at t0 + round(n * period_k) (no drift from rounding the period); the
streams due at the same instant are passed together, so one callback can serve two
rates at once (a robot poll that reads wheels and proximity).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from robot_ssl.core.devices import Clock

__all__ = ["run_schedule"]


def run_schedule(
    clock: Clock,
    duration_s: float,
    periods_ns: Mapping[str, float],
    on_tick: Callable[[int, frozenset[str]], None],
    should_stop: Callable[[], bool],
    next_pending: Callable[[], int | None] = lambda: None,
) -> str:
    """Call `on_tick(t_ns, due_names)` at every instant where a stream (or a pending
    event, `next_pending()`: its time or None; `due_names` may then be empty) is due,
    until `duration_s` of clock time or `should_stop()`; returns why it ended."""
    t0 = clock.now_ns()
    end = t0 + round(duration_s * 1e9)
    ticks = dict.fromkeys(periods_ns, 0)
    due = dict.fromkeys(periods_ns, t0)
    while not should_stop():
        pend = next_pending()
        t = min(min(due.values(), default=math.inf), math.inf if pend is None else pend)
        if t > end:
            return f"duration {duration_s:g} s reached"
        t = int(t)
        clock.sleep_until_ns(t)
        now_due = frozenset(k for k, v in due.items() if v == t)
        for k in now_due:
            ticks[k] += 1
            due[k] = t0 + round(ticks[k] * periods_ns[k])
        on_tick(t, now_due)
    return "stop requested"
