"""A simulated Thymio II on the wire: the Aseba protocol over TCP and/or a pseudo-terminal.

`AsebaNode` is the protocol logic (messages in, replies out; no I/O): it answers
LIST_NODES with NODE_PRESENT, GET_NODE_DESCRIPTION / GET_DESCRIPTION with the complete
description of a Thymio II in the chosen layout (sim/thymio_description.py: Aseba
Playground's by default, message for message, or a firmware-14 robot's), GET_DEVICE_INFO
with its UUID and name, GET_VARIABLES with VARIABLES replies of at most 47 words each
(like the firmware), and applies SET_VARIABLES, which drives the simulated motors
through `motor.*.target`. It runs uploaded programs in an Aseba VM (sim/aseba_vm.py):
SET_BYTECODE, RESET, RUN, PAUSE, STEP, STOP, GET_EXECUTION_STATE, breakpoints and user
events go to the VM. `tick(now_ns)` is its clock, as on the robot: `prox.horizontal` is
refreshed at 10 Hz on the node's own phase (GET_VARIABLES returns the last refresh) and
the `prox` event posted, motor speeds at 100 Hz with the `motor` event (`buttons` every
5th, `acc` every 6th, `temperature` every 100th, like Playground), timer0/1 every
`timer.period` ms. The `acc` variable is the simulator's accelerometer (`acc_units`,
refreshed before each `acc` event; resting flat, [0, 0, 22], for a simulator without one),
and the `tap` event fires at the first motor tick after the simulator's `tap_count`
grew, as the firmware's shock detector would. Bytecode writing `motor.*.target` drives
the motors. What the VM sends
(user events, state changes, errors) goes to every subscriber (`subscribe`).

`VirtualThymio` steps a `Simulator` in real time in a background thread and serves
that node on a TCP port (`socket://127.0.0.1:33333` for pyserial, like Playground)
and on a pseudo-terminal (a /dev/pts/N path, like the robot's USB serial port), so
that firmware_bridge talks to it exactly as to a real robot. A scheduler thread calls
the node's `tick` at its due times (monotonic clock); what the node's VM sends goes to
every connected client, TCP and pty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.bytecode import local_event_id
from sim.aseba_vm import BREAKPOINT_CLEAR, BREAKPOINT_CLEAR_ALL, BREAKPOINT_SET, AsebaVM, NativeSpec
from sim.errors import ServeError
from sim.simulator import Simulator
from sim.thymio_description import (
    PLAYGROUND,
    DeviceIdentity,
    ThymioLayout,
    describe,
    device_identity,
)

__all__ = ["THYMIO2_EVENTS", "THYMIO2_VARIABLES", "AsebaNode", "VirtualThymio"]

# Aseba Playground's layout, the default (kept importable under these names).
THYMIO2_VARIABLES: tuple[tuple[str, int], ...] = PLAYGROUND.variables
THYMIO2_EVENTS: tuple[str, ...] = tuple(name for name, _ in PLAYGROUND.events)
MAX_REPLY_WORDS = 47  # the firmware splits VARIABLES replies into chunks of this size
PROX_PERIOD_NS = 100_000_000  # prox.horizontal refresh and `prox` event: 10 Hz
MOTOR_PERIOD_NS = 10_000_000  # motor speeds refresh and `motor` event: 100 Hz
VM_SLICE_INSTRUCTIONS = 1000  # per run, like the firmware's AsebaVMRun(vm, 1000)
PROX_UPDATES_KEPT = 1000
REPLY_WAIT_S = 1.0  # how long a reply may wait for a slow pty reader before it is dropped
BROADCAST_WAIT_S = 0.05  # the same for what the VM sends (it must not stall the node)
# A partial frame on the pty that sees no byte for this long is dropped (resynchronising
# after a host killed mid-write or stray bytes). A host writes a frame in one go; at
# 115200 baud even a 522-byte frame lasts 45 ms, so a real sender never pauses this long
# within one. The Thymio's firmware resets its receive FIFO when the host opens the USB
# port (DTR); a pty does not tell the server when a host opens it, hence the idle gap.
PARTIAL_FRAME_IDLE_S = 0.05
POLL_S = 0.2  # every serving loop wakes this often to notice close()
_VM_MESSAGES = (p.SetBytecode, p.Reset, p.Run, p.Pause, p.Step, p.Stop, p.GetExecutionState)
_BREAKPOINT_TYPES = (BREAKPOINT_SET, BREAKPOINT_CLEAR, BREAKPOINT_CLEAR_ALL)


class AsebaNode:
    """Protocol logic of one node backed by a simulator (thread-safe via the sim's lock)."""

    def __init__(
        self,
        sim: Simulator,
        node_id: int = 1,
        layout: ThymioLayout | str = ThymioLayout.PLAYGROUND,
        identity: DeviceIdentity | None = None,
    ) -> None:
        self.sim = sim
        self.node_id = node_id
        self.desc = describe(layout)
        self.identity = identity or device_identity(node_id)
        self.offsets: dict[str, tuple[int, int]] = self.desc.offsets()
        self.named_words = self.desc.named_words
        self.variables_size = self.desc.variables_size
        self.memory = np.zeros(self.variables_size, np.int16)
        self._set("_id", [node_id])
        self._set("_productId", [8])  # Thymio II
        self._set("_fwversion", list(self.desc.fwversion))
        self._set("acc", [0, 0, 22])  # resting flat: gravity on z
        self._set("temperature", [220])  # 22.0 degrees C
        self._set("mic.threshold", [0])
        self._set("prox.ground.reflected", [700, 700])
        self._set("prox.ground.delta", [700, 700])
        self._set("sd.present", [0])
        self._lock = threading.Lock()
        self._setup_runtime()

    def _set(self, name: str, values) -> None:
        start, size = self.offsets[name]
        self.memory[start : start + size] = np.asarray(values, np.int16)[:size]

    def _get(self, name: str) -> np.ndarray:
        start, size = self.offsets[name]
        return self.memory[start : start + size]

    def description(self) -> list[p.Message]:
        """DESCRIPTION, then one message per variable, local event and native, in order."""
        return self.desc.messages()

    def device_info(self, msg: p.GetDeviceInfo) -> list[p.Message]:
        """DEVICE_INFO for a known info id (UUID, name; none for ids past the firmware's)."""
        data = self.identity.info(msg.info) if msg.dest == self.node_id else None
        return [] if data is None else [p.DeviceInfo(msg.info, data)]

    # ------------------------------------------------------------------ runtime

    def _setup_runtime(self) -> None:
        """The VM, its events and the refresh schedule, all from the node's description."""
        msgs = self.description()
        head = next(m for m in msgs if isinstance(m, p.Description))
        events = [m.name for m in msgs if isinstance(m, p.LocalEventDescription)]
        natives = [
            NativeSpec.from_description(m)
            for m in msgs
            if isinstance(m, p.NativeFunctionDescription)
        ]
        self.event_ids: dict[str, int] = {n: local_event_id(i) for i, n in enumerate(events)}
        self._outbox: list[p.Message] = []
        self._listeners: list[Callable[[p.Message], None]] = []
        self._deliver_lock = threading.Lock()
        self.vm = AsebaVM(
            self.memory,
            node_id=self.node_id,
            bytecode_size=head.bytecode_size,
            stack_size=head.stack_size,
            natives=natives,
            emit=self._queue,
            source_addr=self.offsets.get("event.source", (1, 1))[0],
            args_size=self.offsets.get("event.args", (2, 32))[1],
            on_reset=self._on_vm_reset,
        )
        self._initial_memory = self.memory.copy()  # what RESET restores (targets 0)
        self.time_scale = 1.0  # simulated seconds per wall second (VirtualThymio sets it)
        self.clock: Callable[[], int] = time.monotonic_ns  # `tick`'s clock, for messages
        self.prox_updates: deque[tuple[int, tuple[int, ...]]] = deque(maxlen=PROX_UPDATES_KEPT)
        rng = np.random.default_rng([self.sim.seed, self.node_id, 0x7E1])
        self._ir_rng = rng
        self._prox_phase_ns = int(rng.integers(0, PROX_PERIOD_NS))
        self._next_prox_ns: int | None = None  # set by the first tick
        self._next_motor_ns = 0
        self._motor_ticks = 0
        self._applied_targets = self.sim.robot.targets
        self._set("motor.left.target", [self._applied_targets[0]])
        self._set("motor.right.target", [self._applied_targets[1]])
        self._timer_period_ms = [0, 0]
        self._timer_next_ns: list[int | None] = [None, None]
        self._taps_seen = int(getattr(self.sim, "tap_count", 0))

    def subscribe(self, callback: Callable[[p.Message], None]) -> None:
        """Receive every message the VM sends (user events, state changes, errors)."""
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[p.Message], None]) -> None:
        """Stop receiving the VM's messages."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def _queue(self, msg: p.Message) -> None:
        self._outbox.append(msg)

    @contextlib.contextmanager
    def _vm_section(self) -> Iterator[None]:
        """Hold the node lock; then deliver what the VM sent, in order, outside it."""
        with self._lock:
            yield
            batch, self._outbox = self._outbox, []
            if not batch:
                return
            self._deliver_lock.acquire()  # before releasing the node lock: keeps the order
        try:
            for msg in batch:
                for callback in list(self._listeners):
                    with contextlib.suppress(Exception):
                        callback(msg)
        finally:
            self._deliver_lock.release()

    def _on_vm_reset(self) -> None:
        """RESET, as the Thymio firmware's AsebaVMResetCB: variables back to their power-on
        values (user variables, targets, timer periods zero), timers restarted."""
        self.memory[:] = self._initial_memory
        self._timer_period_ms = [0, 0]
        self._timer_next_ns = [None, None]

    def _scaled(self, period_ns: int) -> int:
        return max(1, round(period_ns / self.time_scale))

    def next_due_ns(self) -> int:
        """Monotonic time of the next refresh or timer (call `tick` then)."""
        due = [self._next_motor_ns]
        if self._next_prox_ns is not None:
            due.append(self._next_prox_ns)
        due += [t for t in self._timer_next_ns if t is not None]
        return min(due)

    def tick(self, now_ns: int) -> None:
        """Refresh the sensors and fire the events due at monotonic `now_ns`, then run the VM."""
        with self._vm_section():
            if self._next_prox_ns is None:
                self._next_prox_ns = now_ns + self._scaled(self._prox_phase_ns)
                self._next_motor_ns = now_ns
            if now_ns >= self._next_motor_ns:
                self._refresh_motors()
                self._motor_ticks += 1
                self._post("motor")
                if self._tapped():
                    self._post("tap")  # a lower local index than acc: runs first, as on the robot
                for name, every in (("buttons", 5), ("acc", 6), ("temperature", 100)):
                    if self._motor_ticks % every == 0:
                        if name == "acc":
                            self._refresh_acc()
                        self._post(name)
                period = self._scaled(MOTOR_PERIOD_NS)
                self._next_motor_ns = _advance(self._next_motor_ns, period, now_ns)
            if now_ns >= self._next_prox_ns:
                self._refresh_prox(now_ns)
                self._post("prox")
                period = self._scaled(PROX_PERIOD_NS)
                self._next_prox_ns = _advance(self._next_prox_ns, period, now_ns)
            for i, due in enumerate(self._timer_next_ns):
                if due is not None and now_ns >= due:
                    self._post(f"timer{i}")
                    period = self._scaled(self._timer_period_ms[i] * 1_000_000)
                    self._timer_next_ns[i] = _advance(due, period, now_ns)
            self._run_vm(now_ns)

    def _post(self, event: str) -> None:
        event_id = self.event_ids.get(event)
        if event_id is not None:
            self.vm.post_event(event_id)

    def _run_vm(self, now_ns: int) -> None:
        """One VM slice, then what the firmware does after it: motors, timer periods."""
        self.vm.run_events(VM_SLICE_INSTRUCTIONS)
        targets = self._targets_in_memory()
        if targets is not None and targets != self._applied_targets:
            self._drive(*targets)
        if "timer.period" in self.offsets:
            start, _ = self.offsets["timer.period"]
            for i in range(2):
                period = int(self.memory[start + i]) & 0xFFFF  # unsigned, as in the firmware
                if period != self._timer_period_ms[i]:
                    self._timer_period_ms[i] = period
                    due = now_ns + self._scaled(period * 1_000_000) if period else None
                    self._timer_next_ns[i] = due

    def _targets_in_memory(self) -> tuple[int, int] | None:
        if "motor.left.target" not in self.offsets or "motor.right.target" not in self.offsets:
            return None
        lt, rt = self.offsets["motor.left.target"][0], self.offsets["motor.right.target"][0]
        return int(self.memory[lt]), int(self.memory[rt])

    def _drive(self, left: int, right: int) -> None:
        self.sim.robot.set_wheel_targets(left, right)
        self._applied_targets = (left, right)

    def _refresh_motors(self) -> None:
        """Measured speeds and PWM; targets changed on the sim side are copied back."""
        r = self.sim.robot.read()
        tl, tr = int(r.wheel_target[0]), int(r.wheel_target[1])
        if (tl, tr) != self._applied_targets:
            self._set_word("motor.left.target", tl)
            self._set_word("motor.right.target", tr)
            self._applied_targets = (tl, tr)
        lim = max(1, self.sim.drive_params.max_speed_units)
        for side, speed, target in (
            ("left", r.wheel_speed[0], tl),
            ("right", r.wheel_speed[1], tr),
        ):
            self._set_word(f"motor.{side}.speed", int(speed))
            self._set_word(f"motor.{side}.pwm", max(-500, min(500, target * 500 // lim)))

    def _refresh_acc(self) -> None:
        """acc[0..2] from the simulator's accelerometer (left as it is without one)."""
        units = getattr(self.sim, "acc_units", None)
        if units is not None:
            with self.sim.lock:
                values = np.array(units, np.int16)
            self._set("acc", values)

    def _tapped(self) -> bool:
        """True when the simulator counted a tap since the previous call."""
        count = int(getattr(self.sim, "tap_count", 0))
        tapped, self._taps_seen = count > self._taps_seen, count
        return tapped

    def _set_word(self, name: str, value: int) -> None:
        offset = self.offsets.get(name)
        if offset is not None:
            self.memory[offset[0]] = value

    def _refresh_prox(self, now_ns: int) -> None:
        """prox.horizontal from the IR model at this instant (recorded in `prox_updates`)."""
        sim = self.sim
        with sim.lock:
            values = sim.ir.values(sim.drive.pose, self._ir_rng)
        self._set("prox.horizontal", values)
        self.prox_updates.append((now_ns, tuple(int(v) for v in values)))

    def handle(self, msg: p.Message, source: int = 0) -> list[p.Message]:
        """Replies (sent with source = node id) to one message from host `source`; what the
        VM sends goes to the subscribers instead."""
        if isinstance(msg, p.ListNodes):
            return [p.NodePresent(self.desc.protocol_version)]
        if isinstance(msg, p.GetDescription):  # like Aseba's VM: only hosts up to protocol 4
            return self.description() if msg.version <= 4 else []
        if isinstance(msg, p.GetNodeDescription):
            return self.description() if msg.dest == self.node_id else []
        if isinstance(msg, p.GetDeviceInfo):
            return self.device_info(msg)
        if isinstance(msg, p.GetVariables):
            if msg.dest != self.node_id:
                return []
            start = max(0, msg.start)
            end = min(self.variables_size, msg.start + msg.length)
            with self._lock:
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
                values = np.asarray(msg.values[: max(0, self.variables_size - start)], np.int16)
                self.memory[start : start + len(values)] = values
                lt, _ = self.offsets["motor.left.target"]
                rt, _ = self.offsets["motor.right.target"]
                touched = start <= lt < start + len(values) or start <= rt < start + len(values)
                if touched:
                    self._drive(int(self.memory[lt]), int(self.memory[rt]))
            return []
        if isinstance(msg, (*_VM_MESSAGES, p.UserEvent)) or (
            isinstance(msg, p.RawMessage) and msg.type in _BREAKPOINT_TYPES
        ):
            with self._vm_section():
                self._outbox += self.vm.handle(msg, source)
                self._run_vm(self.clock())  # like Playground after each message
        return []


class VirtualThymio:
    """A simulated Thymio II served over TCP and/or a pseudo-terminal, in real time.

    Use as a context manager; `serve_tcp()` / `serve_pty()` may be called several times.
    """

    def __init__(
        self,
        sim: Simulator,
        *,
        node_id: int = 1,
        time_scale: float = 1.0,
        layout: ThymioLayout | str = ThymioLayout.PLAYGROUND,
        identity: DeviceIdentity | None = None,
    ) -> None:
        self.sim = sim
        self.node = AsebaNode(sim, node_id, layout=layout, identity=identity)
        self.node.time_scale = time_scale
        self.time_scale = time_scale
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self._clients: list[_Client] = []
        self._clients_lock = threading.Lock()
        self.node.subscribe(self._broadcast)
        self._spawn(self._event_loop, name="aseba-events")
        self._stepper = threading.Thread(
            target=sim.run_realtime, args=(self._stop, time_scale), name="sim-realtime", daemon=True
        )
        self._stepper.start()
        self.errors = 0  # protocol errors met on all connections

    # ------------------------------------------------------------------ transports

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 33333) -> tuple[str, int]:
        """Listen on host:port (0: any free port); returns the address actually bound.
        Raises ServeError when it cannot (unknown host, port in use, no permission)."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((host, port))
            srv.listen(4)
        except OSError as e:
            srv.close()
            raise ServeError(f"cannot listen on {host}:{port}: {_listen_failure(e)}") from None
        srv.settimeout(POLL_S)
        self._closers.append(srv.close)
        self._spawn(self._accept_loop, srv, name=f"aseba-tcp-{port}")
        return srv.getsockname()[:2]

    def serve_pty(self) -> str:
        """Open a pseudo-terminal and serve on it; returns the slave's path (/dev/pts/N).
        Raises ServeError when the system gives none."""
        import tty

        try:
            master, slave = os.openpty()
        except OSError as e:
            raise ServeError(
                f"cannot create a pseudo-terminal (/dev/ptmx): {e.strerror or e}"
            ) from None
        try:
            tty.setraw(slave)  # no echo, no line discipline: a byte pipe like a USB CDC port
            path = os.ttyname(slave)
        except OSError as e:
            _close_fd(master)
            _close_fd(slave)
            raise ServeError(f"cannot set up a pseudo-terminal: {e.strerror or e}") from None
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
            conn.settimeout(POLL_S)
            self._spawn(self._socket_loop, conn, name="aseba-tcp-client")

    def _socket_loop(self, conn: socket.socket) -> None:
        decoder = p.FrameDecoder(on_error=self._count_error)
        client = self._add_client(_Client(lambda data, _wait_s: conn.sendall(data)))
        with conn:
            try:
                while not self._stop.is_set() and client.alive:
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    client.send(self._replies(decoder, data))
            finally:
                self._remove_client(client)

    def _fd_loop(self, fd: int) -> None:
        """Serve the pty master. Every host shares this one byte stream, so a partial
        frame left by a host killed mid-write, or stray bytes, would shift the framing of
        every later host for good: a partial frame that sees no byte for
        PARTIAL_FRAME_IDLE_S (measured by select, so a stall of this thread does not
        count) is dropped and counted as a protocol error."""
        decoder = p.FrameDecoder(on_error=self._count_error)
        os.set_blocking(fd, False)  # a pty nobody reads must not stall the node
        client = self._add_client(_Client(lambda data, wait_s: _write_fd(fd, data, wait_s)))
        try:
            while not self._stop.is_set() and client.alive:
                try:
                    wait_s = PARTIAL_FRAME_IDLE_S if decoder.pending_bytes else POLL_S
                    ready, _, _ = select.select([fd], [], [], wait_s)
                    if not ready:
                        decoder.flush_partial()  # the line went idle mid-frame
                        continue
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                client.send(self._replies(decoder, data))
        finally:
            self._remove_client(client)

    def _replies(self, decoder: p.FrameDecoder, data: bytes) -> bytes:
        out = bytearray()
        for source, msg in decoder.feed(data):
            for reply in self.node.handle(msg, source):
                out += p.encode(reply, source=self.node.node_id)
        return bytes(out)

    def _add_client(self, client: _Client) -> _Client:
        with self._clients_lock:
            self._clients.append(client)
        return client

    def _remove_client(self, client: _Client) -> None:
        with self._clients_lock, contextlib.suppress(ValueError):
            self._clients.remove(client)

    def _broadcast(self, msg: p.Message) -> None:
        """What the node's VM sends goes to every connected client."""
        frame = p.encode(msg, source=self.node.node_id)
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:
            client.send(frame, wait_s=BROADCAST_WAIT_S)

    def _event_loop(self) -> None:
        """The node's clock: tick it at its due times (monotonic), sleeping in between."""
        while not self._stop.is_set():
            self.node.tick(time.monotonic_ns())
            wait_ns = self.node.next_due_ns() - time.monotonic_ns()
            if wait_ns > 0:
                self._stop.wait(wait_ns / 1e9)

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
        self.node.unsubscribe(self._broadcast)
        self.sim.robot.stop()

    def __enter__(self) -> VirtualThymio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Client:
    """One connection's writer: whole frames under a lock; a failed write marks it dead.
    `write(data, wait_s)` may drop what a reader does not take within `wait_s` (pty)."""

    def __init__(self, write: Callable[[bytes, float], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self.alive = True

    def send(self, data: bytes, wait_s: float = REPLY_WAIT_S) -> None:
        if not data:
            return
        with self._lock:
            if not self.alive:
                return
            try:
                self._write(data, wait_s)
            except OSError:
                self.alive = False


def _write_fd(fd: int, data: bytes, wait_s: float) -> None:
    """Write to a non-blocking pty master; what does not fit within `wait_s` is dropped,
    like a serial line nobody reads (the pty stays open when no client has it)."""
    view = memoryview(data)
    deadline = time.monotonic() + wait_s
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return
            select.select([], [fd], [], 0.01)


def _listen_failure(err: OSError) -> str:
    """What a user can act on when a listening socket cannot be opened."""
    if isinstance(err, socket.gaierror):
        return f"unknown host ({err.strerror})"
    if err.errno == errno.EADDRINUSE:
        return "port already in use (another server running?)"
    if err.errno == errno.EADDRNOTAVAIL:
        return "address not on this machine"
    return err.strerror or str(err)


def _advance(due_ns: int, period_ns: int, now_ns: int) -> int:
    """The next due time after `due_ns`; after a stall, one period from now (no bursts)."""
    due_ns += period_ns
    return due_ns if due_ns > now_ns else now_ns + period_ns


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
