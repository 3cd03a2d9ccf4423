"""A simulated Thymio II on the wire: the Aseba protocol over TCP and/or a pseudo-terminal.

`AsebaNode` is the protocol logic (messages in, replies out; no I/O): it answers
LIST_NODES with NODE_PRESENT, GET_NODE_DESCRIPTION / GET_DESCRIPTION with the
description of Aseba Playground's Thymio II (same 30 variables, same sizes, so the
same offsets: `prox.horizontal` at word 42, `motor.left.speed` at 59), GET_VARIABLES
with VARIABLES replies of at most 47 words each (like the firmware), and applies
SET_VARIABLES, which drives the simulated motors through `motor.*.target`.

`VirtualThymio` steps a `Simulator` in real time in a background thread and serves
that node on a TCP port (`socket://127.0.0.1:33333` for pyserial, like Playground)
and on a pseudo-terminal (a /dev/pts/N path, like the robot's USB serial port), so
that firmware_bridge talks to it exactly as to a real robot.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable

import numpy as np

from firmware_bridge import protocol as p
from sim.simulator import Simulator

__all__ = ["THYMIO2_EVENTS", "THYMIO2_VARIABLES", "AsebaNode", "VirtualThymio"]

THYMIO2_VARIABLES: tuple[tuple[str, int], ...] = (
    ("_id", 1),
    ("event.source", 1),
    ("event.args", 32),
    ("_productId", 1),
    ("_fwversion", 2),
    ("button.backward", 1),
    ("button.left", 1),
    ("button.center", 1),
    ("button.forward", 1),
    ("button.right", 1),
    ("prox.horizontal", 7),
    ("prox.comm.rx", 1),
    ("prox.comm.tx", 1),
    ("prox.ground.ambiant", 2),
    ("prox.ground.reflected", 2),
    ("prox.ground.delta", 2),
    ("motor.left.target", 1),
    ("motor.right.target", 1),
    ("motor.left.speed", 1),
    ("motor.right.speed", 1),
    ("motor.left.pwm", 1),
    ("motor.right.pwm", 1),
    ("acc", 3),
    ("temperature", 1),
    ("rc5.address", 1),
    ("rc5.command", 1),
    ("mic.intensity", 1),
    ("mic.threshold", 1),
    ("timer.period", 2),
    ("sd.present", 1),
)
"""Named variables (name, size in words) of Aseba Playground's Thymio II, in order."""

THYMIO2_EVENTS: tuple[str, ...] = (
    "button.backward", "button.left", "button.center", "button.forward", "button.right",
    "buttons", "prox", "prox.comm", "tap", "acc", "mic", "sound.finished", "temperature",
    "rc5", "motor", "timer0", "timer1",
)  # fmt: skip
"""Local events of a Thymio II (described after the variables)."""

NODE_NAME = "thymio-II"
VARIABLES_SIZE = 586  # VM variable memory in words (named variables are a prefix)
BYTECODE_SIZE = 1534
STACK_SIZE = 32
MAX_REPLY_WORDS = 47  # the firmware splits VARIABLES replies into chunks of this size


class AsebaNode:
    """Protocol logic of one node backed by a simulator (thread-safe via the sim's lock)."""

    def __init__(self, sim: Simulator, node_id: int = 1) -> None:
        self.sim = sim
        self.node_id = node_id
        self.offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, size in THYMIO2_VARIABLES:
            self.offsets[name] = (offset, size)
            offset += size
        self.named_words = offset
        self.memory = np.zeros(VARIABLES_SIZE, np.int16)
        self._set("_id", [node_id])
        self._set("_productId", [8])  # Thymio II
        self._set("_fwversion", [14, 0])
        self._set("acc", [0, 0, 22])  # resting flat: gravity on z
        self._set("temperature", [220])  # 22.0 degrees C
        self._set("mic.threshold", [0])
        self._set("prox.ground.reflected", [700, 700])
        self._set("prox.ground.delta", [700, 700])
        self._set("sd.present", [0])
        self._lock = threading.Lock()

    def _set(self, name: str, values) -> None:
        start, size = self.offsets[name]
        self.memory[start : start + size] = np.asarray(values, np.int16)[:size]

    def _get(self, name: str) -> np.ndarray:
        start, size = self.offsets[name]
        return self.memory[start : start + size]

    def description(self) -> list[p.Message]:
        """DESCRIPTION, then one NAMED_VARIABLE_DESCRIPTION per variable, then the events."""
        out: list[p.Message] = [
            p.Description(
                NODE_NAME,
                p.PROTOCOL_VERSION,
                BYTECODE_SIZE,
                STACK_SIZE,
                VARIABLES_SIZE,
                len(THYMIO2_VARIABLES),
                len(THYMIO2_EVENTS),
                0,
            )
        ]
        out += [p.NamedVariableDescription(size, name) for name, size in THYMIO2_VARIABLES]
        out += [p.LocalEventDescription(name, "") for name in THYMIO2_EVENTS]
        return out

    def _sync_from_sim(self) -> None:
        r = self.sim.robot.read()
        self._set("prox.horizontal", r.proximity)
        self._set("motor.left.speed", [r.wheel_speed[0]])
        self._set("motor.right.speed", [r.wheel_speed[1]])
        tl, tr = (int(v) for v in r.wheel_target)
        self._set("motor.left.target", [tl])
        self._set("motor.right.target", [tr])
        lim = max(1, self.sim.drive_params.max_speed_units)
        self._set("motor.left.pwm", [int(np.clip(tl * 500 // lim, -500, 500))])
        self._set("motor.right.pwm", [int(np.clip(tr * 500 // lim, -500, 500))])

    def handle(self, msg: p.Message) -> list[p.Message]:
        """Replies (sent with source = node id) to one message from a host."""
        if isinstance(msg, p.ListNodes):
            return [p.NodePresent(p.PROTOCOL_VERSION)]
        if isinstance(msg, p.GetDescription):
            return self.description()
        if isinstance(msg, p.GetNodeDescription):
            return self.description() if msg.dest == self.node_id else []
        if isinstance(msg, p.GetVariables):
            if msg.dest != self.node_id:
                return []
            start = max(0, msg.start)
            end = min(VARIABLES_SIZE, msg.start + msg.length)
            with self._lock:
                self._sync_from_sim()
                values = self.memory[start:end].tolist()
            return [
                p.Variables(start + i, tuple(values[i : i + MAX_REPLY_WORDS]))
                for i in range(0, len(values), MAX_REPLY_WORDS)
            ]
        if isinstance(msg, p.SetVariables):
            if msg.dest != self.node_id:
                return []
            with self._lock:
                start = max(0, msg.start)
                values = np.asarray(msg.values[: max(0, VARIABLES_SIZE - start)], np.int16)
                self.memory[start : start + len(values)] = values
                lt, _ = self.offsets["motor.left.target"]
                rt, _ = self.offsets["motor.right.target"]
                touched = start <= lt < start + len(values) or start <= rt < start + len(values)
                if touched:
                    self.sim.robot.set_wheel_targets(int(self.memory[lt]), int(self.memory[rt]))
            return []
        return []


class VirtualThymio:
    """A simulated Thymio II served over TCP and/or a pseudo-terminal, in real time.

    Use as a context manager; `serve_tcp()` / `serve_pty()` may be called several times.
    """

    def __init__(self, sim: Simulator, *, node_id: int = 1, time_scale: float = 1.0) -> None:
        self.sim = sim
        self.node = AsebaNode(sim, node_id)
        self.time_scale = time_scale
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self._stepper = threading.Thread(
            target=sim.run_realtime, args=(self._stop, time_scale), name="sim-realtime", daemon=True
        )
        self._stepper.start()
        self.errors = 0  # protocol errors met on all connections

    # ------------------------------------------------------------------ transports

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 33333) -> tuple[str, int]:
        """Listen on host:port (0: any free port); returns the address actually bound."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(4)
        srv.settimeout(0.2)
        self._closers.append(srv.close)
        self._spawn(self._accept_loop, srv, name=f"aseba-tcp-{port}")
        return srv.getsockname()[:2]

    def serve_pty(self) -> str:
        """Open a pseudo-terminal and serve on it; returns the slave's path (/dev/pts/N)."""
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: a byte pipe like a USB CDC port
        path = os.ttyname(slave)
        self._closers.append(lambda: _close_fd(master))
        self._closers.append(lambda: _close_fd(slave))  # held open: the pty lives on
        self._spawn(self._fd_loop, master, name="aseba-pty")
        return path

    # ------------------------------------------------------------------ loops

    def _spawn(self, target: Callable, *args: object, name: str) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.2)
            self._spawn(self._socket_loop, conn, name="aseba-tcp-client")

    def _socket_loop(self, conn: socket.socket) -> None:
        decoder = p.FrameDecoder(on_error=self._count_error)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                out = self._replies(decoder, data)
                if out:
                    try:
                        conn.sendall(out)
                    except OSError:
                        return

    def _fd_loop(self, fd: int) -> None:
        decoder = p.FrameDecoder(on_error=self._count_error)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(fd, 65536)
            except OSError:
                return
            out = self._replies(decoder, data)
            view = memoryview(out)
            while view:
                try:
                    n = os.write(fd, view)
                except OSError:
                    return
                view = view[n:]

    def _replies(self, decoder: p.FrameDecoder, data: bytes) -> bytes:
        out = bytearray()
        for _source, msg in decoder.feed(data):
            for reply in self.node.handle(msg):
                out += p.encode(reply, source=self.node.node_id)
        return bytes(out)

    def _count_error(self, err: p.FrameError) -> None:
        self.errors += 1

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop serving and stepping; idempotent."""
        self._stop.set()  # every loop wakes up at least every 0.2 s and sees it
        for t in self._threads:
            t.join(timeout=1.0)
        self._stepper.join(timeout=1.0)
        for close in self._closers:  # only now: no thread uses these descriptors any more
            with contextlib.suppress(OSError):
                close()
        self._closers.clear()
        self.sim.robot.stop()

    def __enter__(self) -> VirtualThymio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
