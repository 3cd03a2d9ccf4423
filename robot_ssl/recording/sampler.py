"""One robot poll, shared by the recorder and the live loop: read, odometry, gaps, rows.

`RobotSampler.step` reads the robot once and emits the rows of a session
(wheels with targets, odometry, proximity, simulator truth) as records
(`robot_ssl.io.streams.Record`: stream name, stamp, values by field name) to an
`emit` callable, which the recorder queues for its writer thread and the live
loop writes through `write_row`. A failed read does not raise: the first failure
of a gap emits a "robot_gap" event, the first good read after it a
"robot_reconnected" event, so both callers ride out link losses the same way
(the link reconnects on its own, see firmware_bridge.link). Link events
("link_lost", "link_reconnected", ...) are queued from the link's threads and
emitted, in order, by the next step.

A robot that pushes its readings (a Thymio running the onboard program: its
`drain_stream()` says `streaming`, and carries notes either way) is not polled: each step
records every reading that arrived since the previous one (its accelerometer too, where
it streams one: `robot_streams` names the session streams a robot gives), at the robot's
update instants, and the stream's notes (losses, mode changes, onboard watchdog) as events;
simulator truth (the simulated robot streams too) is one row per step either way.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_ssl.core.devices import Clock, Robot
from robot_ssl.core.odometry import OdometryIntegrator
from robot_ssl.io.session import SessionWriteError, SessionWriter
from robot_ssl.io.streams import Record, record_from_tuple

__all__ = [
    "RobotSample",
    "RobotSampler",
    "Row",
    "event",
    "robot_streams",
    "truth_streams",
    "write_row",
]

Row = Record
"""A session row: a record of one stream of the table (robot_ssl.io.streams.STREAMS)."""

_LINK_EVENTS = ("lost", "reconnected", "layout_changed", "protocol_error")

Emit = Callable[[Record], None]
TruthSource = Callable[[], tuple[int, np.ndarray, np.ndarray]]
"""Simulator truth: () -> (t_ns, pose (x_m, y_m, theta_rad), true distance per sensor (m)[,
contact onsets since the previous call: each with t_ns, point_m (2,) robot frame, world_m
(2,)]); the onsets become "contact_truth" rows."""


def event(t_ns: int, kind: str, message: str = "") -> Record:
    """An "events" record: something that happened (gap, reconnect, drop...)."""
    return Record("events", int(t_ns), {"kind": kind, "message": message})


def robot_streams(robot: Any) -> tuple[str, ...]:
    """The optional session streams `robot` gives, for SessionWriter(streams=...): "acc"
    when it streams its accelerometer (`gives_acc`: a Thymio running the onboard program
    on a node with `acc`, the simulated robot). A robot that gives none opens none, so
    that no session holds an empty stream that says the robot felt nothing."""
    return ("acc",) if getattr(robot, "gives_acc", False) else ()


def truth_streams(truth: TruthSource | None) -> tuple[str, ...]:
    """The optional session streams a simulator truth source fills, for
    SessionWriter(streams=...): "contact_truth" (one row per contact onset, none when the
    robot touched nothing: with truth, an empty stream does say so)."""
    return ("contact_truth",) if truth is not None else ()


def write_row(writer: SessionWriter, row: Record | tuple) -> None:
    """Write one record (or a row tuple of the earlier form) into a session through the
    table-driven `SessionWriter.write`; h5py failures become SessionWriteError."""
    record = row if isinstance(row, Record) else record_from_tuple(row, writer.table)
    try:
        writer.write(record)
    except SessionWriteError:
        raise
    except Exception as e:  # h5py reports some write failures as RuntimeError
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SessionWriteError(f"write to {writer.path} failed: {detail}") from e


@dataclass(frozen=True)
class RobotSample:
    """What one good read gave: the reading's time, sensors and the odometry pose."""

    t_ns: int
    proximity: np.ndarray  # int16 (7,)
    wheel_speed: np.ndarray  # int16 (2,)
    pose: np.ndarray  # (x_m, y_m, theta_rad)
    reconnected: bool  # first good read after a gap: the robot may have lost its targets


class RobotSampler:
    """Reads a robot, integrates odometry and emits session rows and gap events.

    `targets` gives the wheel targets to record when the reading does not carry the
    robot's own (`wheel_target`). Not thread-safe: one thread steps it.
    """

    def __init__(
        self,
        robot: Robot,
        odometry: OdometryIntegrator,
        clock: Clock,
        *,
        targets: Callable[[], tuple[int, int]] = lambda: (0, 0),
        truth: TruthSource | None = None,
    ) -> None:
        self.robot = robot
        self.odometry = odometry
        self.clock = clock
        self.targets = targets
        self.truth = truth
        self.read_failures = 0
        self.gaps = 0
        self.gap_since_ns: int | None = None  # clock time of the first failed read of a gap
        self.last_error = ""
        self._link_events: deque[tuple[str, str]] = deque(maxlen=1000)
        self._link_lock = threading.Lock()
        self._link: Any = None

    # -- link events ----------------------------------------------------------------------

    def attach(self) -> None:
        """Listen to the robot's link events (robots behind an AsebaLink); idempotent."""
        link = getattr(self.robot, "link", None)
        if self._link is None and link is not None and hasattr(link, "subscribe"):
            link.subscribe(self._on_link_event)
            self._link = link

    def detach(self) -> None:
        if self._link is not None and hasattr(self._link, "unsubscribe"):
            self._link.unsubscribe(self._on_link_event)
        self._link = None

    def _on_link_event(self, event: Any) -> None:
        # From the link's threads: queue it; the stepping thread emits it.
        kind = getattr(event, "kind", "")
        if kind in _LINK_EVENTS:
            with self._link_lock:
                self._link_events.append((f"link_{kind}", str(event.message)))

    def drain_link_events(self, emit: Emit) -> None:
        while True:
            with self._link_lock:
                if not self._link_events:
                    return
                kind, message = self._link_events.popleft()
            emit(event(self.clock.now_ns(), kind, message))

    # -- polling --------------------------------------------------------------------------

    @property
    def in_gap(self) -> bool:
        return self.gap_since_ns is not None

    def step(self, emit: Emit, wheels: bool = True, proximity: bool = True) -> RobotSample | None:
        """Read the robot once and emit its rows (`wheels`: wheels, odometry and truth;
        `proximity`: proximity); None when the robot did not answer (gap logged). A
        streaming robot's rows are all emitted, whatever `wheels` and `proximity` say."""
        self.drain_link_events(emit)
        drain = getattr(self.robot, "drain_stream", None)
        try:
            batch = drain() if drain is not None else None
            if batch is not None:
                for t_ns, kind, message in batch.notes:
                    emit(event(t_ns, kind, message))
                if batch.streaming:
                    return self._stream_step(emit, batch)
            r = self.robot.read()
        except Exception as e:  # any transport error: the robot is gone for now
            self.failed(emit, e)
            return None
        t = int(r.t_ns)
        reconnected = self._back(emit, t)
        prox = np.asarray(r.proximity, dtype=np.int16)
        speed = np.asarray(r.wheel_speed, dtype=np.int16)
        pose = self.odometry.pose
        if wheels:
            target = getattr(r, "wheel_target", None)
            if target is None:
                target = self.targets()
            emit(Record.of("wheels", t, speed=speed, target=np.asarray(target, dtype=np.int16)))
            pose, gap = self.odometry.update(t, speed)
            if gap is not None:
                dur = (gap.end_ns - gap.start_ns) / 1e9
                emit(event(t, "odometry_gap", f"no wheel data for {dur:.2f} s: not integrated"))
            emit(Record.of("odometry", t, pose=pose))
            if self.truth is not None:
                self._emit_truth(emit)
        if proximity:
            emit(Record.of("proximity", t, horizontal=prox))
        return RobotSample(t, prox, speed, np.asarray(pose), reconnected)

    def final_step(self, emit: Emit) -> RobotSample | None:
        """The last read of a run, after the motors were stopped: a streaming robot is first
        given time to report the stop, so that the zero targets are recorded."""
        wait = getattr(self.robot, "wait_for_targets", None)
        if wait is not None:
            wait()
        return self.step(emit)

    def _back(self, emit: Emit, t_ns: int) -> bool:
        """After a gap, log the reconnection; True when this read ended a gap."""
        if self.gap_since_ns is None:
            return False
        gap_s = (self.clock.now_ns() - self.gap_since_ns) / 1e9
        emit(event(t_ns, "robot_reconnected", f"robot back after a gap of {gap_s:.2f} s"))
        self.gap_since_ns = None
        return True

    def _emit_truth(self, emit: Emit) -> None:
        """One simulator truth row, stamped with the simulator's (true) time."""
        assert self.truth is not None
        truth = self.truth()
        tt, pose_true, dist = truth[0], truth[1], truth[2]
        emit(Record.of("truth", tt, pose=np.asarray(pose_true), prox_distance_m=np.asarray(dist)))
        for c in truth[3] if len(truth) > 3 else ():  # the contact onsets since the last row
            emit(
                Record.of(
                    "contact_truth",
                    c.t_ns,
                    point_m=np.asarray(c.point_m, np.float64),
                    world_m=np.asarray(c.world_m, np.float64),
                )
            )

    def _stream_step(self, emit: Emit, batch: Any) -> RobotSample:
        """Record what a streaming robot pushed: wheels and odometry per wheel sample,
        proximity per refresh, acc (with its tap flag) per accelerometer refresh where the
        robot streams one (`batch.acc`), one simulator truth row (when `truth` is set) per
        step; the sample is the newest state."""
        r = self.robot.read()  # newest values; raises when the stream went stale
        reconnected = self._back(emit, int(r.t_ns))
        for w in batch.wheels:
            t = int(w.t_ns)
            emit(Record.of("wheels", t, speed=w.wheel_speed, target=w.wheel_target))
            _, gap = self.odometry.update(t, w.wheel_speed)
            if gap is not None:
                dur = (gap.end_ns - gap.start_ns) / 1e9
                emit(event(t, "odometry_gap", f"no wheel data for {dur:.2f} s: not integrated"))
            emit(Record.of("odometry", t, pose=self.odometry.pose))
        for s in batch.proximity:
            emit(Record.of("proximity", s.t_ns, horizontal=s.proximity))
        for a in getattr(batch, "acc", ()):  # a robot (or simulator) without one: none
            emit(Record.of("acc", a.t_ns, acc=np.asarray(a.acc, np.int16), tap=int(bool(a.tap))))
        if self.truth is not None:
            self._emit_truth(emit)
        return RobotSample(
            int(r.t_ns),
            np.asarray(r.proximity, dtype=np.int16),
            np.asarray(r.wheel_speed, dtype=np.int16),
            np.asarray(self.odometry.pose),
            reconnected,
        )

    def failed(self, emit: Emit, error: BaseException) -> None:
        """Note a failed read or write; the first failure of a gap emits "robot_gap"."""
        self.read_failures += 1
        if self.gap_since_ns is None:
            self.gap_since_ns = self.clock.now_ns()
            self.last_error = f"{type(error).__name__}: {error}".splitlines()[0]
            self.gaps += 1
            emit(event(self.gap_since_ns, "robot_gap", f"robot not answering: {self.last_error}"))
