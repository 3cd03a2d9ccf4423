"""Ways a run on the robot is told to stop: SIGINT/SIGTERM and interpreter exit.

Shared by `record` and `run`: a first SIGINT or SIGTERM asks the recorder or live loop
to stop (it halts the motors and finalises its file); a second SIGINT raises
KeyboardInterrupt. `stop_at_exit` stops the motors at interpreter exit too.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Stoppable", "stop_at_exit", "stop_on_signals"]


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
