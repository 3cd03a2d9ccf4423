"""The drive loop's CPU priority: real-time round-robin when the OS allows it.

A program beside the robot's loop on the same cores (measured: headless Chromium
rendering the live view in software, docs/live.md) stops the robot by the watchdog
a few times a minute although the loop needs a fifth of a core: Linux's scheduler
groups each session's processes (autogroups), and a browser in its own session gets
as much CPU as the robot's whole session whatever their nice values, so the loop's
threads wait for a core for 150 ms and more. On the real-time round-robin policy
(SCHED_RR) they run before every normal thread.

`realtime(priority)` puts the calling thread on SCHED_RR; the threads it starts later
(the loop's sensor and watchdog threads, the camera's and the simulator's) inherit it,
and so do processes it starts, which must put themselves back (`normal`): the live
view's process, the learner's thread. The kernel keeps a twentieth of each second
for normal threads (sched_rt_runtime_us), so a loop that spins cannot lock the
machine up. Permission: root, CAP_SYS_NICE (`sudo setcap cap_sys_nice+ep` on the
Python binary) or an RLIMIT_RTPRIO of at least `priority` (`/etc/security/limits.conf`:
`robot - rtprio 10`); without it the loop runs at normal priority and says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

__all__ = ["normal", "realtime", "realtime_thread"]


def realtime(priority: int) -> str:
    """Put the calling thread on SCHED_RR at `priority` (1-99; 0: leave it); what was done,
    in words for the start line."""
    if priority <= 0:
        return "normal priority"
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, "SCHED_RR"):
        return "normal priority (no real-time scheduling on this OS)"
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except OSError as e:
        return f"normal priority (real-time not permitted: {e.strerror}; see docs/live.md)"
    return f"real-time priority {priority}"


def normal(niceness: int | None = None) -> None:
    """Put the calling thread back on the normal policy (and at `niceness`, when given);
    the threads and processes it starts later inherit it. Lowering is always allowed."""
    with contextlib.suppress(AttributeError, OSError):
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    if niceness is not None:
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


@contextlib.contextmanager
def realtime_thread(priority: int) -> Iterator[str]:
    """`realtime(priority)` for the calling thread while inside; its policy restored after."""
    try:
        before = (os.sched_getscheduler(0), os.sched_getparam(0))
    except (AttributeError, OSError):
        before = None
    try:
        yield realtime(priority)
    finally:
        if before is not None:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, *before)
