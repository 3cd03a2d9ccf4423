"""The drive loop's real-time priority (robot_ssl.runtime.priority): granted where the OS
allows it, said in words either way, inherited by threads started inside, undone after."""

from __future__ import annotations

import os
import threading

from robot_ssl.runtime.priority import normal, realtime, realtime_thread


def _in_thread(body):
    out = []
    t = threading.Thread(target=lambda: out.append(body()))
    t.start()
    t.join()
    return out[0]


def test_priority_zero_leaves_the_thread_alone():
    assert _in_thread(lambda: (realtime(0), os.sched_getscheduler(0))) == (
        "normal priority",
        os.SCHED_OTHER,
    )


def test_realtime_thread_is_inherited_by_new_threads_and_undone_after():
    def body():
        with realtime_thread(1) as said:
            inside = os.sched_getscheduler(0)
            child = _in_thread(lambda: os.sched_getscheduler(0))
            reset = _in_thread(lambda: (normal(5), os.sched_getscheduler(0))[1])
        return said, inside, child, reset, os.sched_getscheduler(0)

    said, inside, child, reset, after = _in_thread(body)
    if said == "real-time priority 1":  # root, CAP_SYS_NICE or an rtprio limit
        assert inside == child == os.SCHED_RR
    else:  # refused: said so, nothing changed
        assert said.startswith("normal priority (real-time not permitted"), said
        assert inside == child == os.SCHED_OTHER
    assert reset == os.SCHED_OTHER  # a thread that must not be real-time (the learner)
    assert after == os.SCHED_OTHER
