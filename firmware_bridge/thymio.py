"""ThymioRobot: a Thymio II (USB, wireless dongle or Aseba Playground) as a robot that gives
proximity + measured wheel speeds and takes wheel targets.

It satisfies robot_ssl's `Robot` protocol by shape, without importing robot_ssl. By default
it uploads the onboard program (`firmware_bridge.onboard`) when it connects: the robot then
pushes every proximity refresh and its wheel speeds (`drain_stream`), and stops its own
motors when the host falls silent. Where the node has them, the accelerometer and the tap
event are streamed too (`gives_acc`; the batches' `acc`). Where the node refuses or does not run the program, it
polls variables instead and says why (`mode`, `mode_reason`). The motors are set to zero
on close, when a `with` block exits on an error or Ctrl-C, after the link reconnects, and
at interpreter exit; a clean close also stops the onboard program.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.errors import (
    FirmwareBridgeError,
    LinkDown,
    LinkTimeout,
    NotAThymio,
    PortNotFound,
)
from firmware_bridge.link import AsebaLink, LinkEvent, NodeInfo
from firmware_bridge.onboard import OnboardConfig, OnboardProgram, build_program
from firmware_bridge.stream import ReadingStream, StreamBatch

__all__ = [
    "PROX_SPEED_NAMES",
    "REQUIRED_VARIABLES",
    "THYMIO_PIDS",
    "THYMIO_VID",
    "PortInfo",
    "ThymioReading",
    "ThymioRobot",
    "find_thymio_port",
    "ports",
    "require_thymio",
]

THYMIO_VID = 0x0617  # Mobsya
THYMIO_PIDS = {0x000A: "wired", 0x000C: "wireless dongle"}

PROX = "prox.horizontal"
SPEED = ("motor.left.speed", "motor.right.speed")
TARGET = ("motor.left.target", "motor.right.target")
PROX_SPEED_NAMES = (PROX, *SPEED, *TARGET)  # what ThymioRobot.read asks for, in one request
REQUIRED_VARIABLES = (PROX, *SPEED, *TARGET)


@dataclass(frozen=True)
class PortInfo:
    """A serial port that may hold a Thymio."""

    device: str
    kind: str  # "wired", "wireless dongle", "unknown Mobsya device" or "other"
    description: str
    serial_number: str | None
    vid: int | None
    pid: int | None


def ports(include_all: bool = False) -> list[PortInfo]:
    """Serial ports with the Thymio's USB vendor id (all ports with `include_all`), sorted."""
    from serial.tools import list_ports

    out = []
    for info in list_ports.comports():
        if info.vid == THYMIO_VID:
            kind = THYMIO_PIDS.get(info.pid or -1, "unknown Mobsya device")
        elif include_all:
            kind = "other"
        else:
            continue
        out.append(
            PortInfo(
                info.device, kind, info.description or "", info.serial_number, info.vid, info.pid
            )
        )
    return sorted(out, key=lambda q: (q.kind == "other", q.device))


def find_thymio_port() -> str:
    """The device of the first Thymio port; raises PortNotFound when there is none."""
    found = ports()
    if not found:
        raise PortNotFound(
            f"no Thymio found: no serial port with USB vendor id {THYMIO_VID:#06x} "
            "(plug it in and switch it on, or pass a port)"
        )
    return found[0].device


def require_thymio(node: NodeInfo, url: str = "") -> None:
    """Raise NotAThymio when a node lacks the variables a Thymio II has."""
    missing = [n for n in REQUIRED_VARIABLES if n not in node.variables]
    if missing:
        where = f" on {url}" if url else ""
        raise NotAThymio(
            f"node {node.node_id} '{node.name}'{where} lacks {', '.join(missing)}: not a Thymio II"
        )


@dataclass(frozen=True, eq=False)
class ThymioReading:
    """One read of the horizontal proximity sensors, measured wheel speeds and targets."""

    t_ns: int  # time.monotonic_ns() when the reply arrived
    proximity: np.ndarray  # int16 (7,): front left..front right, back left, back right
    wheel_speed: np.ndarray  # int16 (2,): measured (left, right), raw units
    wheel_target: np.ndarray  # int16 (2,): commanded (left, right), whoever set them


def _zero_motors(link: AsebaLink) -> None:
    with contextlib.suppress(FirmwareBridgeError):
        link.write_many({TARGET[0]: 0, TARGET[1]: 0})


class _Onboard:
    """The onboard program's state, shared with the finalizer and the heartbeat thread (which
    must not hold the robot): while `program` is set, the host feeds its watchdog every
    `period_s` from a thread of its own, so the robot stops when the host process dies,
    hangs hard or loses power, not when a caller merely pauses between commands."""

    def __init__(self, link: AsebaLink, period_s: float) -> None:
        self.link = link
        self.period_s = period_s
        self.program: OnboardProgram | None = None
        self.closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start_heartbeat(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._beat, name=f"onboard-heartbeat {self.link.url}", daemon=True
            )
            self._thread.start()

    def _beat(self) -> None:
        while not self.closed.wait(self.period_s):
            program = self.program
            if program is not None:
                with contextlib.suppress(FirmwareBridgeError, ValueError):
                    self.link.write_range(program.heartbeat_offset, [0])

    def close(self) -> None:
        self.closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)


def _shutdown(link: AsebaLink, close_link: bool, onboard: _Onboard) -> None:
    """Finalizer (close, garbage collection, interpreter exit): stop the motors, stop the
    onboard program (the robot is left idle), then release."""
    onboard.close()
    _zero_motors(link)
    if onboard.program is not None:
        # twice, a step apart, before the port closes: a peer that reads its socket once
        # per simulation step (Aseba Playground) was seen to lose a STOP sent just before
        # the close
        with contextlib.suppress(FirmwareBridgeError):
            link.send(p.Stop(link.node.node_id))
            time.sleep(0.05)
            link.send(p.Stop(link.node.node_id))
            time.sleep(0.05)
        onboard.program = None
    if close_link:
        link.close()


class ThymioRobot:
    """A Thymio II behind an AsebaLink."""

    def __init__(
        self,
        link: AsebaLink,
        *,
        max_speed: int = 500,
        close_link: bool = True,
        poll: bool = False,
        onboard: OnboardConfig | None = None,
        hello_timeout_s: float = 1.5,
        stale_after_s: float = 0.5,
    ) -> None:
        """Wrap a connected link; raises NotAThymio when the node lacks a Thymio's variables.
        With `close_link`, closing the robot closes the link too. Unless `poll`, upload the
        onboard program (`onboard` parameters) and stream; a node that does not announce the
        program within `hello_timeout_s` is polled instead. A stream silent for
        `stale_after_s` counts as a failed read."""
        require_thymio(link.node, link.url)
        if not 0 < max_speed <= 0x7FFF:
            raise ValueError(f"max_speed must be in 1..32767, got {max_speed}")
        if hello_timeout_s <= 0 or stale_after_s <= 0:
            raise ValueError("hello_timeout_s and stale_after_s must be positive")
        self.link = link
        self.max_speed = max_speed
        self.onboard_config = onboard or OnboardConfig()
        self.hello_timeout_s = hello_timeout_s
        self.stale_after_s = stale_after_s
        self.stream = ReadingStream(link.node.node_id)
        self.mode = "poll"  # "stream" while the onboard program runs
        self.mode_reason = ""
        self._targets = (0, 0)
        self._closed = False
        # four heartbeats per staleness limit: one lost message does not stop the robot
        self._onboard = _Onboard(link, self.onboard_config.max_staleness_ms / 4000)
        self._upload_lock = threading.Lock()
        # The link must not keep the robot alive: listen through weak references.
        handler = weakref.WeakMethod(self._on_link_event)
        on_user = weakref.WeakMethod(self._on_user_event)

        def listener(event: LinkEvent) -> None:
            method = handler()
            if method is not None:
                method(event)

        def user_listener(t_ns: int, source: int, event: p.UserEvent) -> None:
            method = on_user()
            if method is not None:
                method(t_ns, source, event)

        self._listener = listener
        self._user_listener = user_listener
        link.subscribe(listener)
        link.subscribe_user_events(user_listener)
        self._finalizer = weakref.finalize(self, _shutdown, link, close_link, self._onboard)
        if poll:
            self._fall_back(time.monotonic_ns(), "polling requested (--poll)")
        else:
            self._start_onboard(wait=True)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        timeout_s: float = 3.0,
        read_timeout_s: float = 1.0,
        max_speed: int = 500,
        poll: bool = False,
        onboard: OnboardConfig | None = None,
        **link_kwargs: Any,
    ) -> ThymioRobot:
        """Connect to the Thymio at `url` (a serial device or socket://host:port; the first
        Thymio serial port when None) within `timeout_s`, start the onboard program (unless
        `poll`) and stop its motors."""
        url = url or find_thymio_port()
        link = AsebaLink(url, timeout_s=read_timeout_s, connect_timeout_s=timeout_s, **link_kwargs)
        link.connect()
        try:
            robot = cls(link, max_speed=max_speed, close_link=True, poll=poll, onboard=onboard)
            robot.stop()
        except BaseException:
            link.close()
            raise
        return robot

    # ------------------------------------------------------------------ onboard program

    @property
    def streaming(self) -> bool:
        """True while the onboard program pushes the readings."""
        return self.mode == "stream"

    def _start_onboard(self, wait: bool) -> None:
        """Upload and start the onboard program; with `wait`, fall back to polling when it
        does not announce itself in time. Logs the outcome as a stream note."""
        with self._upload_lock:
            node = self.link.node
            now = time.monotonic_ns()
            try:
                program = build_program(node, self.onboard_config)
            except FirmwareBridgeError as e:
                self._fall_back(now, f"onboard program unsupported: {e}")
                return
            self.stream.restart()
            try:
                for msg in program.upload_messages(node.node_id):
                    self.link.send(msg)
            except FirmwareBridgeError as e:
                self._fall_back(now, f"onboard program upload failed: {e}")
                return
            self._onboard.program = program
            if not wait:
                return
            if not self.stream.hello.wait(self.hello_timeout_s):
                with contextlib.suppress(FirmwareBridgeError):
                    self.link.send(p.Stop(node.node_id))
                self._onboard.program = None
                self._fall_back(
                    now,
                    f"node {node.node_id} did not start the onboard program within "
                    f"{self.hello_timeout_s:g} s",
                )
                return
            self.mode, self.mode_reason = "stream", ""
            self._onboard.start_heartbeat()
            cfg = self.onboard_config
            extra = [
                n for n, on in (("acc", program.streams_acc), ("tap", program.streams_tap)) if on
            ]
            self.stream.note(
                time.monotonic_ns(),
                "robot_stream",
                f"onboard program v{self.stream.program_version} runs: readings streamed"
                f"{' with ' + ' and '.join(extra) if extra else ''}, "
                f"motor watchdog {cfg.max_staleness_ms} ms",
            )

    def _fall_back(self, t_ns: int, reason: str) -> None:
        self.mode, self.mode_reason = "poll", reason
        self.stream.note(t_ns, "robot_poll", f"{reason}; polling variables")

    @property
    def gives_acc(self) -> bool:
        """True while the onboard program streams the accelerometer (`StreamBatch.acc`, with
        the tap flag where the node has a `tap` event): a session opens its "acc" stream."""
        program = self._onboard.program
        return self.streaming and program is not None and program.streams_acc

    def drain_stream(self) -> StreamBatch:
        """Readings pushed since the last call (proximity, wheels, accelerometer), and notes (mode changes, losses, the onboard
        watchdog); while polling, only the notes (`streaming` False: call `read`). Raises
        LinkDown / LinkTimeout when the stream has been silent for `stale_after_s`."""
        if not self.streaming:
            return self.stream.drain(streaming=False)
        self._check_fresh()
        return self.stream.drain()

    def wait_for_targets(self, timeout_s: float = 0.25) -> bool:
        """Streaming: wait until the robot reports the wheel targets last set (so that a
        run's last recorded row shows its final stop); False on timeout or when polling."""
        deadline = time.monotonic() + timeout_s
        while self.streaming and time.monotonic() < deadline:
            wheels = self.stream.latest_wheels
            if wheels is not None and tuple(int(v) for v in wheels.wheel_target) == self._targets:
                return True
            time.sleep(0.002)
        return False

    def _check_fresh(self) -> None:
        if not self.link.is_connected:
            raise LinkDown(f"link to {self.link.url} is down (reconnecting)")
        age_s = (time.monotonic_ns() - self.stream.last_rx_ns) / 1e9
        if age_s > self.stale_after_s:
            raise LinkTimeout(f"no readings from the robot for {age_s:.1f} s")

    # ------------------------------------------------------------------ Robot protocol

    def read(self) -> ThymioReading:
        """Proximity, measured wheel speeds and wheel targets. Streaming: the newest pushed
        values, stamped with the newest proximity refresh. Polling: read together (one
        request when they are close in memory, as on the Thymio II and in Aseba
        Playground). Raises LinkTimeout / LinkDown when the robot does not answer."""
        if self.streaming:
            return self._latest()
        t_ns, values = self.link.read_timed(PROX_SPEED_NAMES)
        speed = np.array([values[SPEED[0]][0], values[SPEED[1]][0]], dtype=np.int16)
        target = np.array([values[TARGET[0]][0], values[TARGET[1]][0]], dtype=np.int16)
        return ThymioReading(t_ns, values[PROX].astype(np.int16), speed, target)

    def _latest(self) -> ThymioReading:
        deadline = time.monotonic() + self.link.timeout_s
        while self.stream.latest_prox is None:  # just started: the first refresh is <= 0.1 s away
            if time.monotonic() > deadline:
                raise LinkTimeout("no proximity reading from the onboard program yet")
            time.sleep(0.005)
        self._check_fresh()
        prox = self.stream.latest_prox
        wheels = self.stream.latest_wheels
        assert prox is not None
        speed = (
            prox.wheel_speed if wheels is None or wheels.t_ns < prox.t_ns else wheels.wheel_speed
        )
        target = np.asarray(self._targets if wheels is None else wheels.wheel_target, np.int16)
        return ThymioReading(prox.t_ns, prox.proximity.copy(), speed.copy(), target)

    def set_wheel_targets(self, left: int, right: int) -> None:
        """Command wheel speeds in raw units, clipped to ±max_speed (both in one message)."""
        lim = self.max_speed
        left_c = int(np.clip(int(left), -lim, lim))
        right_c = int(np.clip(int(right), -lim, lim))
        self.link.write_many({TARGET[0]: left_c, TARGET[1]: right_c})
        self._targets = (left_c, right_c)

    def stop(self) -> None:
        """Set both wheel targets to zero."""
        self.set_wheel_targets(0, 0)

    def close(self) -> None:
        """Stop the motors and the onboard program, and release the link; idempotent."""
        self._closed = True
        self.link.unsubscribe(self._listener)
        self.link.unsubscribe_user_events(self._user_listener)
        self._finalizer()

    # ------------------------------------------------------------------ extras

    @property
    def targets(self) -> tuple[int, int]:
        """The last wheel targets sent (after clipping)."""
        return self._targets

    @property
    def variables(self) -> Mapping[str, Any]:
        """The node's variable table (name -> VariableInfo)."""
        return self.link.variables

    def _on_user_event(self, t_ns: int, source: int, event: p.UserEvent) -> None:
        self.stream.on_user_event(t_ns, source, event)

    def _on_link_event(self, event: LinkEvent) -> None:
        # After a reconnection the robot may have kept old targets (brief USB glitch):
        # stop it; the controller sends new targets on its next step. It may also have
        # rebooted and lost the program: upload it again (the hello comes asynchronously).
        if event.kind == "reconnected" and not self._closed:
            self._targets = (0, 0)
            _zero_motors(self.link)
            if self.streaming:
                self._start_onboard(wait=False)

    def __enter__(self) -> ThymioRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
