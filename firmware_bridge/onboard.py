"""The program robot_ssl runs on the Thymio itself: streamed readings and a motor watchdog.

Assembled at connect time, for the node's own variable layout and local-event list (read
from its description, never hard-coded), with the project's assembler
(`firmware_bridge.bytecode`). It

- on every `prox` event (the firmware's 10 Hz proximity refresh) emits EVENT_PROX
  `[seq, prox.horizontal[0..6], motor.left.speed, motor.right.speed]`;
- every `speed_period_ms` (timer1) emits EVENT_WHEELS
  `[seq, motor.left.speed, motor.right.speed, motor.left.target, motor.right.target]`;
- on every `acc` event (the firmware's accelerometer refresh, 16 Hz on a Thymio II) emits
  EVENT_ACC `[seq, acc[0], acc[1], acc[2]]`, and on every `tap` event (the firmware's
  shock detector) EVENT_TAP `[tap_seq]`; a node without the `acc` variable and event (or
  the `tap` event) gets the program without that stream (`OnboardProgram.streams_acc`,
  `streams_tap`);
- every `tick_ms` (timer0) ages the host's heartbeat variable; when the host has not written
  it for `max_staleness_ms`, it sets both motor targets to 0 itself and emits
  EVENT_WATCHDOG `[max_staleness_ms]` (once: the watchdog re-arms at the next heartbeat);
- at start emits EVENT_HELLO `[PROGRAM_VERSION, max_staleness_ms]`, so that the host knows
  that the upload took.

The heartbeat variable holds the milliseconds since the host's last heartbeat, or -1 while
disarmed; the host arms it by writing 0 (with every wheel command).
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge import protocol as p
from firmware_bridge.bytecode import Assembler, BinaryOp, BytecodeError, local_event_id
from firmware_bridge.errors import FirmwareBridgeError
from firmware_bridge.link import NodeInfo

__all__ = [
    "ACC_ARGS",
    "EVENT_ACC",
    "EVENT_HELLO",
    "EVENT_PROX",
    "EVENT_TAP",
    "EVENT_WATCHDOG",
    "EVENT_WHEELS",
    "PROGRAM_VERSION",
    "OnboardConfig",
    "OnboardProgram",
    "ProgramUnsupported",
    "build_program",
]

PROGRAM_VERSION = 2  # 2: acc and tap streamed
# User event ids (12 bits in EMIT): chosen away from 0.. where hand-written programs start.
EVENT_PROX = 0x5A0
EVENT_WHEELS = 0x5A1
EVENT_WATCHDOG = 0x5A2
EVENT_HELLO = 0x5A3
EVENT_ACC = 0x5A4
EVENT_TAP = 0x5A5
PROX_ARGS = 10  # seq, 7 proximity values, 2 wheel speeds
WHEELS_ARGS = 5  # seq, 2 speeds, 2 targets
ACC_ARGS = 4  # seq, 3 accelerometer axes
TAP_ARGS = 1  # seq

_PROX = "prox.horizontal"
_SPEED = ("motor.left.speed", "motor.right.speed")
_TARGET = ("motor.left.target", "motor.right.target")
_TIMER = "timer.period"
_ACC = "acc"


class ProgramUnsupported(FirmwareBridgeError):
    """The node cannot run the onboard program (missing variable or event, too small)."""


@dataclass(frozen=True)
class OnboardConfig:
    """Parameters of the onboard program (milliseconds of the robot's clock)."""

    max_staleness_ms: int = 200  # motors to 0 when the host is silent this long
    tick_ms: int = 20  # watchdog period (timer0)
    speed_period_ms: int = 20  # wheel-speed event period (timer1): 50 Hz

    def __post_init__(self) -> None:
        for name in ("max_staleness_ms", "tick_ms", "speed_period_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 10_000:
                raise ValueError(f"{name} must be an integer in 1..10000 ms, got {value!r}")
        if self.tick_ms > self.max_staleness_ms:
            raise ValueError("tick_ms must not exceed max_staleness_ms")


@dataclass(frozen=True)
class OnboardProgram:
    """Assembled bytecode and where its variables live in the node's memory."""

    words: tuple[int, ...]
    config: OnboardConfig
    heartbeat_offset: int  # word the host writes 0 into (ms since the last heartbeat)
    first_word: int  # the program's variables occupy [first_word, first_word + n_words)
    n_words: int
    streams_acc: bool = False  # the node has `acc` (variable and event): EVENT_ACC is sent
    streams_tap: bool = False  # the node has the `tap` event: EVENT_TAP is sent

    def upload_messages(self, dest: int) -> list[p.Message]:
        """SET_BYTECODE chunks, RESET and RUN: how an IDE loads and starts a program."""
        from firmware_bridge.bytecode import upload_messages

        return upload_messages(dest, list(self.words))


def _offset(node: NodeInfo, name: str, size: int) -> int:
    v = node.variables.get(name)
    if v is None or v.size < size:
        raise ProgramUnsupported(f"node '{node.name}' lacks {name}[{size}]")
    return v.offset


def _event(node: NodeInfo, name: str) -> int:
    try:
        return local_event_id(node.local_events.index(name))
    except ValueError:
        raise ProgramUnsupported(f"node '{node.name}' has no local event '{name}'") from None


def _optional_event(node: NodeInfo, name: str) -> int | None:
    """The id of local event `name`, None when the node has none (its stream is left out)."""
    return local_event_id(node.local_events.index(name)) if name in node.local_events else None


def build_program(node: NodeInfo, config: OnboardConfig | None = None) -> OnboardProgram:
    """Assemble the onboard program for `node`; raises ProgramUnsupported when the node
    lacks a variable or event it needs, or has too little memory for it."""
    cfg = config or OnboardConfig()
    prox = _offset(node, _PROX, 7)
    speed = [_offset(node, n, 1) for n in _SPEED]
    target = [_offset(node, n, 1) for n in _TARGET]
    timer = _offset(node, _TIMER, 2)
    on_prox, on_timer0, on_timer1 = (_event(node, n) for n in ("prox", "timer0", "timer1"))
    # optional streams: the accelerometer needs its variable and its event, tap its event
    acc_var = node.variables.get(_ACC)
    on_acc = _optional_event(node, "acc") if acc_var is not None and acc_var.size >= 3 else None
    on_tap = _optional_event(node, "tap")

    # The program's variables follow the named ones (free VM memory, as a compiler puts them).
    base = node.named_words
    seq, pbuf = base, base + 1
    wseq, wbuf = pbuf + PROX_ARGS, pbuf + PROX_ARGS + 1
    heartbeat = wbuf + WHEELS_ARGS
    hello = heartbeat + 1  # two words: version, max staleness
    abuf = hello + 2  # acc: seq, 3 axes (the buffer's first word is the counter)
    tseq = abuf + ACC_ARGS  # tap: its counter, emitted as it is
    n_words = tseq + TAP_ARGS - base
    if base + n_words > node.vm_variables_size:
        raise ProgramUnsupported(
            f"node '{node.name}' has {node.vm_variables_size - base} free words; "
            f"the onboard program needs {n_words}"
        )

    a = Assembler()
    a.on(0xFFFF)  # init
    for addr, value in ((seq, 0), (wseq, 0), (heartbeat, -1), (abuf, 0), (tseq, 0)):
        a.push(value)
        a.store(addr)
    a.push(cfg.tick_ms)
    a.store(timer)
    a.push(cfg.speed_period_ms)
    a.store(timer + 1)
    a.push(PROGRAM_VERSION)
    a.store(hello)
    a.push(cfg.max_staleness_ms)
    a.store(hello + 1)
    a.emit(EVENT_HELLO, hello, 2)
    a.stop()

    a.on(on_prox)  # the firmware refreshed prox.horizontal: send it with the speeds
    _increment(a, seq)
    sources = [seq, *(prox + i for i in range(7)), *speed]
    for i, src in enumerate(sources):
        a.load(src)
        a.store(pbuf + i)
    a.emit(EVENT_PROX, pbuf, PROX_ARGS)
    a.stop()

    a.on(on_timer1)  # wheel speeds at the configured rate, for odometry
    _increment(a, wseq)
    for i, src in enumerate([wseq, *speed, *target]):
        a.load(src)
        a.store(wbuf + i)
    a.emit(EVENT_WHEELS, wbuf, WHEELS_ARGS)
    a.stop()

    if on_acc is not None:  # the firmware refreshed acc[0..2]
        assert acc_var is not None
        a.on(on_acc)
        _increment(a, abuf)
        for i in range(3):
            a.load(acc_var.offset + i)
            a.store(abuf + 1 + i)
        a.emit(EVENT_ACC, abuf, ACC_ARGS)
        a.stop()

    if on_tap is not None:  # the firmware's shock detector fired
        a.on(on_tap)
        _increment(a, tseq)
        a.emit(EVENT_TAP, tseq, TAP_ARGS)
        a.stop()

    a.on(on_timer0)  # the watchdog
    a.load(heartbeat)
    a.push(0)
    a.branch(BinaryOp.BIGGER_EQUAL_THAN, "watchdog_done")  # disarmed (-1): nothing to do
    a.load(heartbeat)
    a.push(cfg.tick_ms)
    a.binary(BinaryOp.ADD)
    a.store(heartbeat)
    a.load(heartbeat)
    a.push(cfg.max_staleness_ms)
    a.branch(BinaryOp.BIGGER_EQUAL_THAN, "watchdog_done")  # heard from the host recently
    for addr in target:
        a.push(0)
        a.store(addr)
    a.push(-1)
    a.store(heartbeat)
    a.emit(EVENT_WATCHDOG, hello + 1, 1)
    a.label("watchdog_done")
    a.stop()

    try:
        words = a.assemble()
    except BytecodeError as e:  # pragma: no cover - a bug in this module, not user input
        raise ProgramUnsupported(f"onboard program does not assemble: {e}") from e
    if len(words) > node.bytecode_size:
        raise ProgramUnsupported(
            f"node '{node.name}' holds {node.bytecode_size} words of bytecode; "
            f"the onboard program has {len(words)}"
        )
    return OnboardProgram(
        tuple(words), cfg, heartbeat, base, n_words, on_acc is not None, on_tap is not None
    )


def _increment(a: Assembler, addr: int) -> None:
    a.load(addr)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(addr)
