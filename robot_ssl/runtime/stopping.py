"""The one stop path of the drive loop: a stop flag, SIGINT/SIGTERM and interpreter exit.

`StopFlag` is what every part of a run asks "stop?" and what a stop request sets (a
signal handler, an observer that hit a full disk, the loop's own end). A first SIGINT or
SIGTERM (`stop_on_signals`) requests a stop (the loop halts the motors and its
observers finalise their files); a second SIGINT raises KeyboardInterrupt.
`stop_at_exit` stops the motors at interpreter exit too.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["StopFlag", "Stoppable", "stop_at_exit", "stop_on_signals"]


class StopFlag:
    """Why and whether a run should stop; the first reason given wins.

    `request` only sets plain attributes when called in the main thread (a signal
    handler may interrupt a thread that holds an Event's lock), and also wakes the
    loop's waiting threads when called from another one; `wake()` (the loop's main
    thread, after it noticed) wakes them otherwise. Waiting threads poll at their own
    period meanwhile, so a stop reaches them within that period at worst.
    """

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""
        self._wake = threading.Event()

    def request(self, reason: str = "stop requested") -> None:
        if not self.requested:
            self.reason = reason
        self.requested = True
        if threading.current_thread() is not threading.main_thread():
            self._wake.set()

    def wake(self) -> None:
        """Wake the threads waiting in `wait` (not from a signal handler)."""
        self._wake.set()

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`, less when a stop is requested; True when it is."""
        if not self.requested and timeout_s > 0:
            self._wake.wait(timeout_s)
        return self.requested


class Stoppable(Protocol):
    def request_stop(self, reason: str = ...) -> None: ...


@contextlib.contextmanager
def stop_on_signals(target: Stoppable) -> Iterator[None]:
    """While active, SIGINT/SIGTERM call `target.request_stop("stop requested (SIGxxx received)")`; a
    second SIGINT raises KeyboardInterrupt. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal count
        count += 1
        target.request_stop(f"stop requested ({signal.Signals(signum).name} received)")
        if count > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def stop_at_exit(robot: Any) -> Iterator[None]:
    """Stop the motors at interpreter exit too (e.g. sys.exit from another thread)."""

    def emergency_stop() -> None:
        with contextlib.suppress(Exception):
            robot.stop()

    atexit.register(emergency_stop)
    try:
        yield
    finally:
        emergency_stop()
        atexit.unregister(emergency_stop)
