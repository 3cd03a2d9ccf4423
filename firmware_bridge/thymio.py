"""ThymioRobot: a Thymio II (USB, wireless dongle or Aseba Playground) as a robot that gives
proximity + measured wheel speeds and takes wheel targets.

It satisfies robot_ssl's `Robot` protocol by shape, without importing robot_ssl. The motors
are set to zero on close, when a `with` block exits on an error or Ctrl-C, after the link
reconnects, and at interpreter exit.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge.errors import FirmwareBridgeError, NotAThymio, PortNotFound
from firmware_bridge.link import AsebaLink, LinkEvent, NodeInfo

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


def _shutdown(link: AsebaLink, close_link: bool) -> None:
    """Finalizer (close, garbage collection, interpreter exit): stop, then release."""
    _zero_motors(link)
    if close_link:
        link.close()


class ThymioRobot:
    """A Thymio II behind an AsebaLink."""

    def __init__(self, link: AsebaLink, *, max_speed: int = 500, close_link: bool = True) -> None:
        """Wrap a connected link; raises NotAThymio when the node lacks a Thymio's variables.
        With `close_link`, closing the robot closes the link too."""
        require_thymio(link.node, link.url)
        if not 0 < max_speed <= 0x7FFF:
            raise ValueError(f"max_speed must be in 1..32767, got {max_speed}")
        self.link = link
        self.max_speed = max_speed
        self._targets = (0, 0)
        self._closed = False
        # The link must not keep the robot alive: listen through a weak reference.
        handler = weakref.WeakMethod(self._on_link_event)

        def listener(event: LinkEvent) -> None:
            method = handler()
            if method is not None:
                method(event)

        self._listener = listener
        link.subscribe(listener)
        self._finalizer = weakref.finalize(self, _shutdown, link, close_link)

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        timeout_s: float = 3.0,
        read_timeout_s: float = 1.0,
        max_speed: int = 500,
        **link_kwargs: Any,
    ) -> ThymioRobot:
        """Connect to the Thymio at `url` (a serial device or socket://host:port; the first
        Thymio serial port when None) within `timeout_s`, and stop its motors."""
        url = url or find_thymio_port()
        link = AsebaLink(url, timeout_s=read_timeout_s, connect_timeout_s=timeout_s, **link_kwargs)
        link.connect()
        try:
            robot = cls(link, max_speed=max_speed, close_link=True)
        except BaseException:
            link.close()
            raise
        robot.stop()
        return robot

    # ------------------------------------------------------------------ Robot protocol

    def read(self) -> ThymioReading:
        """Proximity, measured wheel speeds and wheel targets, read together (one request
        when they are close in memory, as on the Thymio II and in Aseba Playground);
        raises LinkTimeout / LinkDown when the robot does not answer."""
        t_ns, values = self.link.read_timed(PROX_SPEED_NAMES)
        speed = np.array([values[SPEED[0]][0], values[SPEED[1]][0]], dtype=np.int16)
        target = np.array([values[TARGET[0]][0], values[TARGET[1]][0]], dtype=np.int16)
        return ThymioReading(t_ns, values[PROX].astype(np.int16), speed, target)

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
        """Stop the motors and release the link; idempotent."""
        self._closed = True
        self.link.unsubscribe(self._listener)
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

    def _on_link_event(self, event: LinkEvent) -> None:
        # After a reconnection the robot may have kept old targets (brief USB glitch):
        # stop it; the controller sends new targets on its next step.
        if event.kind == "reconnected" and not self._closed:
            self._targets = (0, 0)
            _zero_motors(self.link)

    def __enter__(self) -> ThymioRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
