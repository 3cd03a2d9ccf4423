"""Readings the onboard program pushes: parse its user events, count losses, hand out batches.

`ReadingStream.on_user_event` runs on the link's reader thread for every user event; it
stamps each reading with its arrival time (the program emits right at the firmware's
update, so arrival is the update instant plus the link's latency), counts the events lost
from the program's sequence counters and queues notes about them. The stepping thread
takes everything that came since its last call with `drain()`.

Accelerometer samples (EVENT_ACC) carry a `tap` flag: True when a tap event (EVENT_TAP)
arrived since the previous accelerometer sample. Taps lost on the link are counted from
the tap event's own counter (`taps_lost`), like the other streams' losses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.onboard import (
    ACC_ARGS,
    EVENT_ACC,
    EVENT_HELLO,
    EVENT_PROX,
    EVENT_TAP,
    EVENT_WATCHDOG,
    EVENT_WHEELS,
    PROX_ARGS,
    TAP_ARGS,
    WHEELS_ARGS,
)

__all__ = [
    "AccSample",
    "ProxSample",
    "ReadingStream",
    "StreamBatch",
    "StreamCounters",
    "WheelSample",
]

_RESTART_GAP = 0x4000  # a counter jump this large means the program restarted, not losses
_LOST = {"proximity": "prox_lost", "wheels": "wheels_lost", "acc": "acc_lost", "tap": "taps_lost"}


@dataclass(frozen=True, eq=False)
class ProxSample:
    """One proximity refresh: arrival time, the 7 values and the speeds at that instant."""

    t_ns: int
    seq: int
    proximity: np.ndarray  # int16 (7,)
    wheel_speed: np.ndarray  # int16 (2,)


@dataclass(frozen=True, eq=False)
class WheelSample:
    """One wheel-speed event: arrival time, measured speeds and the current targets."""

    t_ns: int
    seq: int
    wheel_speed: np.ndarray  # int16 (2,)
    wheel_target: np.ndarray  # int16 (2,)


@dataclass(frozen=True, eq=False)
class AccSample:
    """One accelerometer refresh: arrival time, the 3 axes (raw, about 23 per g on a Thymio
    II) and whether the firmware's tap event fired since the previous refresh."""

    t_ns: int
    acc: np.ndarray  # int16 (3,)
    tap: bool
    seq: int = 0


@dataclass(frozen=True)
class StreamBatch:
    """What arrived since the previous drain, in arrival order per kind. While the robot
    polls (`streaming` False) only notes come."""

    streaming: bool = True
    proximity: list[ProxSample] = field(default_factory=list)
    wheels: list[WheelSample] = field(default_factory=list)
    acc: list[AccSample] = field(default_factory=list)
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (t_ns, kind, message)


@dataclass
class StreamCounters:
    """Totals since the stream started (for reports, tests and the benchmark)."""

    prox: int = 0
    prox_lost: int = 0
    wheels: int = 0
    wheels_lost: int = 0
    acc: int = 0
    acc_lost: int = 0
    taps: int = 0  # tap events received
    taps_lost: int = 0  # tap events missed (seen from the tap counter)
    restarts: int = 0
    watchdog_stops: int = 0


class _Sequence:
    """Losses from a 16-bit event counter that counts up by one per event."""

    def __init__(self) -> None:
        self.last: int | None = None

    def lost(self, seq: int) -> int | None:
        """Events missed before `seq`; None when the counter restarted (program reloaded)."""
        seq &= 0xFFFF
        last, self.last = self.last, seq
        if last is None:
            return 0
        gap = (seq - last - 1) & 0xFFFF
        return None if gap >= _RESTART_GAP else gap


class ReadingStream:
    """Collects the onboard program's events from one node (thread-safe)."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.counters = StreamCounters()
        self.hello = threading.Event()  # set when the program announced itself
        self.program_version: int | None = None
        self.last_rx_ns = 0  # arrival of the newest event
        self.latest_prox: ProxSample | None = None
        self.latest_wheels: WheelSample | None = None
        self.latest_acc: AccSample | None = None
        self._lock = threading.Lock()
        self._batch = StreamBatch()
        self._prox_seq = _Sequence()
        self._wheel_seq = _Sequence()
        self._acc_seq = _Sequence()
        self._tap_seq = _Sequence()
        self._tapped = False  # a tap arrived since the last accelerometer sample

    def restart(self) -> None:
        """Forget the sequence state and the newest readings (before (re)uploading the
        program: readings from before a reconnection must not pass for current ones)."""
        with self._lock:
            self._prox_seq = _Sequence()
            self._wheel_seq = _Sequence()
            self._acc_seq = _Sequence()
            self._tap_seq = _Sequence()
            self._tapped = False
            self.latest_prox = self.latest_wheels = self.latest_acc = None
            self.hello.clear()

    def note(self, t_ns: int, kind: str, message: str) -> None:
        """Queue a note for the next drain (also used by the robot for mode changes)."""
        with self._lock:
            self._batch.notes.append((t_ns, kind, message))

    def on_user_event(self, t_ns: int, source: int, event: p.UserEvent) -> None:
        """Link callback: parse one user event of this node (others are ignored)."""
        if source != self.node_id:
            return
        values = event.values
        with self._lock:
            if event.type == EVENT_PROX and len(values) == PROX_ARGS:
                sample = ProxSample(
                    t_ns,
                    values[0] & 0xFFFF,
                    np.asarray(values[1:8], np.int16),
                    np.asarray(values[8:10], np.int16),
                )
                self._count(t_ns, self._prox_seq.lost(values[0]), "proximity")
                self.counters.prox += 1
                self.latest_prox = sample
                self._batch.proximity.append(sample)
            elif event.type == EVENT_WHEELS and len(values) == WHEELS_ARGS:
                sample_w = WheelSample(
                    t_ns,
                    values[0] & 0xFFFF,
                    np.asarray(values[1:3], np.int16),
                    np.asarray(values[3:5], np.int16),
                )
                self._count(t_ns, self._wheel_seq.lost(values[0]), "wheels")
                self.counters.wheels += 1
                self.latest_wheels = sample_w
                self._batch.wheels.append(sample_w)
            elif event.type == EVENT_ACC and len(values) == ACC_ARGS:
                sample_a = AccSample(
                    t_ns, np.asarray(values[1:4], np.int16), self._tapped, values[0] & 0xFFFF
                )
                self._tapped = False
                self._count(t_ns, self._acc_seq.lost(values[0]), "acc")
                self.counters.acc += 1
                self.latest_acc = sample_a
                self._batch.acc.append(sample_a)
            elif event.type == EVENT_TAP and len(values) == TAP_ARGS:
                self._tapped = True
                self._count(t_ns, self._tap_seq.lost(values[0]), "tap")
                self.counters.taps += 1
            elif event.type == EVENT_WATCHDOG:
                self.counters.watchdog_stops += 1
                limit = values[0] if values else "?"
                self._batch.notes.append(
                    (t_ns, "onboard_watchdog", f"robot stopped its motors: no host for {limit} ms")
                )
            elif event.type == EVENT_HELLO and values:
                self.program_version = int(values[0])
                self.hello.set()
            else:
                return
            self.last_rx_ns = t_ns

    def _count(self, t_ns: int, lost: int | None, what: str) -> None:
        # called with the lock held
        if lost is None:
            self.counters.restarts += 1
            self._batch.notes.append(
                (t_ns, "stream_restart", f"{what} counter restarted: program reloaded")
            )
        elif lost:
            attr = _LOST[what]
            setattr(self.counters, attr, getattr(self.counters, attr) + lost)
            self._batch.notes.append(
                (t_ns, "stream_gap", f"{lost} {what} event(s) lost on the link")
            )

    def drain(self, streaming: bool = True) -> StreamBatch:
        """Everything that arrived since the previous call (only the notes when not
        `streaming`: readings of a program that is not in charge are dropped)."""
        with self._lock:
            batch, self._batch = self._batch, StreamBatch()
        if not streaming:
            return StreamBatch(streaming=False, notes=batch.notes)
        return batch
