"""AsebaLink: one Aseba node over a serial port or URL (pyserial), with discovery, a variable
table, named reads and writes, a heartbeat and automatic reconnection.

Threads: a reader thread per connection feeds the FrameDecoder and hands replies to a
bounded inbox; a supervisor thread sends a heartbeat when the line is idle, declares the
link dead when nothing comes back, and reconnects with exponential backoff. Requests are
serialised by one lock (the protocol has no request ids), and every wait has a timeout.
Gaps and reconnections are kept in `link.events` (bounded) and passed to `on_event`.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.errors import (
    FirmwareBridgeError,
    LinkClosed,
    LinkDown,
    LinkTimeout,
    NoNodeFound,
    PortBusy,
    PortError,
    PortNotFound,
    PortPermissionDenied,
    ProtocolError,
    UnknownVariable,
)

__all__ = ["AsebaLink", "LinkEvent", "NodeInfo", "VariableInfo", "open_port", "plan_reads"]

BAUDRATE = 115200
MAX_REQUEST_WORDS = p.MAX_PAYLOAD_WORDS - 1  # a VARIABLES reply also carries `start`
_READ_POLL_S = 0.05  # reader thread wakes this often to notice a stop request
_IDLE_FLUSH_NS = (
    200_000_000  # a partial frame older than this is garbage (senders send whole frames)
)
_INBOX_LEN = 1024
_ERROR_EVENT_PERIOD_NS = 1_000_000_000  # protocol errors are summarised at most once a second


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class VariableInfo:
    """A named variable: `size` int16 words from word `offset` of the node's memory."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class NodeInfo:
    """What a node said about itself (DESCRIPTION and the messages that follow it)."""

    node_id: int
    name: str
    protocol_version: int
    variables: Mapping[str, VariableInfo]  # in description order
    vm_variables_size: int  # words of VM variable memory (named variables are a prefix)
    bytecode_size: int = 0
    stack_size: int = 0
    local_events: tuple[str, ...] = ()
    native_functions: tuple[str, ...] = ()

    @property
    def named_words(self) -> int:
        """Words covered by the named variables (sum of sizes)."""
        return sum(v.size for v in self.variables.values())

    def layout(self) -> tuple[tuple[str, int, int], ...]:
        """(name, offset, size) of every variable, for comparing two descriptions."""
        return tuple((v.name, v.offset, v.size) for v in self.variables.values())


@dataclass(frozen=True)
class LinkEvent:
    """Something the recorder should know: kind is one of "connected", "lost",
    "reconnected", "layout_changed", "protocol_error", "timeout", "closed".

    For "lost" and "reconnected", `start_ns` is the last time data came from the node, so
    the gap in the data is [start_ns, t_ns] of the "reconnected" event.
    """

    t_ns: int
    kind: str
    message: str
    start_ns: int | None = None


@dataclass
class LinkStats:
    """Counters of one link (not thread-exact; for reports and tests)."""

    requests: int = 0
    timeouts: int = 0
    reconnects: int = 0
    protocol_errors: int = 0
    frames: int = 0
    inbox_dropped: int = 0
    user_events: int = 0
    sent: int = 0  # frames written


# --------------------------------------------------------------------------- pure helpers


def plan_reads(
    ranges: Iterable[tuple[int, int]],
    max_gap_words: int = 32,
    max_words: int = MAX_REQUEST_WORDS,
) -> list[tuple[int, int]]:
    """The fewest (start, count) requests that cover every (offset, size) range: ranges are
    merged when the gap between them is at most `max_gap_words` and the merged request is
    at most `max_words` long (a range longer than that is split)."""
    spans = sorted((o, o + s) for o, s in ranges if s > 0)
    merged: list[list[int]] = []
    for lo, hi in spans:
        close_enough = merged and (
            (lo - merged[-1][1] <= max_gap_words and hi - merged[-1][0] <= max_words)
            or lo < merged[-1][1]  # overlapping: extend even if too long, split below
        )
        if close_enough:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[tuple[int, int]] = []
    for lo, hi in merged:
        for start in range(lo, hi, max_words):
            out.append((start, min(max_words, hi - start)))
    return out


def _port_error(url: str, exc: BaseException) -> PortError:
    """Map a pyserial/OS error on open to a precise PortError with a one-line reason."""
    code = getattr(exc, "errno", None)
    ctx = exc.__context__
    if code is None and isinstance(ctx, OSError):
        code = ctx.errno
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN):
        return PortBusy(
            f"{url} is busy: another program holds it (quit Thymio Suite / Aseba Studio)"
        )
    if code in (errno.EACCES, errno.EPERM):
        return PortPermissionDenied(
            f"permission denied on {url}: join the 'dialout' group or add a udev rule"
        )
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return PortNotFound(f"no such port {url} (is the robot plugged in and switched on?)")
    if code == errno.ECONNREFUSED or isinstance(ctx, ConnectionRefusedError):
        return PortNotFound(f"nothing listens at {url} (connection refused)")
    return PortError(f"cannot open {url}: {text}")


def open_port(
    url: str,
    baudrate: int = BAUDRATE,
    read_timeout_s: float = _READ_POLL_S,
    write_timeout_s: float = 1.0,
    serial_for_url: Callable[..., Any] | None = None,
) -> Any:
    """Open a serial port or URL (8N1, DTR set, exclusive lock) and return the pyserial
    object; raises a PortError subclass with the reason."""
    import serial  # only the link needs pyserial; the codec does not

    factory = serial_for_url or serial.serial_for_url
    try:
        port = factory(
            url,
            baudrate=baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=read_timeout_s,
            write_timeout=write_timeout_s,
            exclusive=True,
            do_not_open=True,
        )
        port.dtr = True  # the Thymio's CDC-ACM port only talks once DTR is set
        port.open()
        sock = getattr(port, "_socket", None)  # socket://: small requests must not wait (Nagle)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (serial.SerialException, OSError) as e:
        raise _port_error(url, e) from e
    except ValueError as e:  # unknown URL scheme or bad option
        raise PortNotFound(f"invalid port {url}: {e}") from e
    return port


# --------------------------------------------------------------------------- the link


class AsebaLink:
    """A request/response link to one Aseba node (a Thymio, or Aseba Playground's)."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = BAUDRATE,
        timeout_s: float = 1.0,
        connect_timeout_s: float = 3.0,
        node_id: int | None = None,
        heartbeat_s: float = 0.5,
        dead_after_s: float = 2.0,
        reconnect: bool = True,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
        max_gap_words: int = 32,
        max_request_words: int = MAX_REQUEST_WORDS,
        events_maxlen: int = 1000,
        on_event: Callable[[LinkEvent], None] | None = None,
        on_user_event: Callable[[int, int, p.UserEvent], None] | None = None,
        serial_for_url: Callable[..., Any] | None = None,
    ) -> None:
        if not 0 < max_request_words <= MAX_REQUEST_WORDS:
            raise ValueError(f"max_request_words must be in 1..{MAX_REQUEST_WORDS}")
        if timeout_s <= 0 or connect_timeout_s <= 0 or heartbeat_s <= 0:
            raise ValueError("timeouts and heartbeat period must be positive")
        self.url = url
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.wanted_node_id = node_id
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = max(dead_after_s, 2 * heartbeat_s)
        self.auto_reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_gap_words = max_gap_words
        self.max_request_words = max_request_words
        self.events: deque[LinkEvent] = deque(maxlen=events_maxlen)
        self.user_events: deque[tuple[int, int, p.UserEvent]] = deque(maxlen=events_maxlen)
        self.stats = LinkStats()
        self._listeners: list[Callable[[LinkEvent], None]] = [on_event] if on_event else []
        self._user_listeners: list[Callable[[int, int, p.UserEvent], None]] = (
            [on_user_event] if on_user_event else []
        )
        self._serial_for_url = serial_for_url

        self._state_lock = threading.RLock()  # guards the fields below
        self._request_lock = threading.Lock()  # one request/response at a time
        self._write_lock = threading.Lock()  # whole frames on the wire
        self._inbox: deque[tuple[int, int, p.Message]] = deque(maxlen=_INBOX_LEN)
        self._inbox_cond = threading.Condition()
        self._port: Any = None
        self._reader: threading.Thread | None = None
        self._generation = 0
        self._node: NodeInfo | None = None
        self._up = threading.Event()
        self._closed = False
        self._started = False
        self._wake = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._last_rx_ns = 0
        self._lost_since_ns: int | None = None
        self._last_error_event_ns = 0
        self._errors_unreported = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> AsebaLink:
        """Construct and connect (discovery + description); raises FirmwareBridgeError."""
        link = cls(url, **kwargs)
        link.connect()
        return link

    def connect(self) -> NodeInfo:
        """Open the port, find the node and read its description, then start the heartbeat
        and reconnection thread. Raises PortError, NoNodeFound or ProtocolError."""
        if self._closed:
            raise LinkClosed("link is closed")
        if self._started:
            raise FirmwareBridgeError("link is already connected")
        with self._request_lock:
            node = self._establish(self.connect_timeout_s)
        self._started = True
        self._record("connected", f"node {node.node_id} '{node.name}' on {self.url}")
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"aseba-supervisor {self.url}", daemon=True
        )
        self._supervisor.start()
        return node

    def close(self) -> None:
        """Stop the threads and release the port; idempotent. Pending requests fail with
        LinkClosed."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            self._up.clear()
        self._wake.set()
        with self._inbox_cond:
            self._inbox_cond.notify_all()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5.0)
        self._drop_connection()
        if self._started:
            self._record("closed", f"closed {self.url}")

    def __enter__(self) -> AsebaLink:
        if not self._started:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, callback: Callable[[LinkEvent], None]) -> None:
        """Also call `callback(event)` for every LinkEvent (from the link's threads: keep it
        short; exceptions are ignored)."""
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[LinkEvent], None]) -> None:
        """Stop calling `callback`."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def subscribe_user_events(self, callback: Callable[[int, int, p.UserEvent], None]) -> None:
        """Also call `callback(t_ns, source, event)` for every user event, from the reader
        thread as it arrives (`t_ns`: monotonic_ns of arrival; keep it short)."""
        self._user_listeners.append(callback)

    def unsubscribe_user_events(self, callback: Callable[[int, int, p.UserEvent], None]) -> None:
        """Stop calling `callback` for user events."""
        if callback in self._user_listeners:
            self._user_listeners.remove(callback)

    # ------------------------------------------------------------------ state

    @property
    def node(self) -> NodeInfo:
        """The current node's description (it may change after a reconnection)."""
        node = self._node
        if node is None:
            raise LinkDown(f"not connected to a node on {self.url}")
        return node

    @property
    def variables(self) -> Mapping[str, VariableInfo]:
        """Variable table: name -> VariableInfo(offset, size)."""
        return self.node.variables

    @property
    def is_connected(self) -> bool:
        """True while the link is up (False during a gap and after close)."""
        return self._up.is_set() and not self._closed

    @property
    def last_rx_ns(self) -> int:
        """monotonic_ns of the last bytes received."""
        return self._last_rx_ns

    # ------------------------------------------------------------------ public requests

    def read(self, names: Iterable[str], timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """Read named variables (int16 arrays) with the fewest GET_VARIABLES requests."""
        return self.read_timed(names, timeout_s)[1]

    def read_timed(
        self, names: Iterable[str], timeout_s: float | None = None
    ) -> tuple[int, dict[str, np.ndarray]]:
        """Like read, also returning the monotonic_ns at which the last reply chunk arrived."""
        names = [names] if isinstance(names, str) else list(names)
        deadline = self._deadline(timeout_s)
        with self._slot(deadline):
            node = self.node
            infos = [self._info(node, n) for n in names]
            plan = plan_reads(
                ((v.offset, v.size) for v in infos), self.max_gap_words, self.max_request_words
            )
            words: dict[int, np.ndarray] = {}
            t_ns = 0
            for start, count in plan:
                t_ns, values = self._get_variables(node, start, count, deadline)
                words[start] = values
        out: dict[str, np.ndarray] = {}
        for v in infos:
            for start, values in words.items():
                if start <= v.offset and v.offset + v.size <= start + len(values):
                    out[v.name] = values[v.offset - start : v.offset - start + v.size].copy()
                    break
            else:  # a variable split across requests (longer than max_request_words)
                out[v.name] = np.concatenate(
                    [
                        vals[max(0, v.offset - s) : max(0, v.offset + v.size - s)]
                        for s, vals in sorted(words.items())
                        if s < v.offset + v.size and s + len(vals) > v.offset
                    ]
                ).astype(np.int16)
        return t_ns, out

    def write(self, name: str, values: int | Sequence[int] | np.ndarray, index: int = 0) -> None:
        """Write int16 values into variable `name` from element `index` (SET_VARIABLES)."""
        node = self.node
        v = self._info(node, name)
        arr = _as_words(values)
        if index < 0 or index + len(arr) > v.size:
            raise ValueError(f"{name} has {v.size} words; cannot write {len(arr)} at {index}")
        self._set_variables(node, v.offset + index, arr)

    def write_range(self, start: int, values: int | Sequence[int] | np.ndarray) -> None:
        """Write int16 words from word `start` of variable memory (unnamed words included:
        a program's own variables live after the named ones)."""
        node = self.node
        arr = _as_words(values)
        if start < 0 or start + len(arr) > max(node.vm_variables_size, node.named_words):
            raise ValueError(f"range {start}+{len(arr)} outside the node's variable memory")
        self._set_variables(node, start, arr)

    def write_many(self, values: Mapping[str, int | Sequence[int] | np.ndarray]) -> None:
        """Write whole variables; adjacent ones go in one SET_VARIABLES (e.g. both motor
        targets at once, so the wheels change together)."""
        node = self.node
        items = []
        for name, vals in values.items():
            v = self._info(node, name)
            arr = _as_words(vals)
            if len(arr) != v.size:
                raise ValueError(f"{name} has {v.size} words, got {len(arr)}")
            items.append((v.offset, arr))
        items.sort(key=lambda it: it[0])
        run_start, run = None, []
        for offset, arr in items:
            if run_start is not None and offset == run_start + sum(len(a) for a in run):
                run.append(arr)
                continue
            if run_start is not None:
                self._set_variables(node, run_start, np.concatenate(run))
            run_start, run = offset, [arr]
        if run_start is not None:
            self._set_variables(node, run_start, np.concatenate(run))

    def send(self, msg: p.Message) -> None:
        """Send one message that expects no reply (bytecode, RUN, STOP, ...) while the link is
        up; raises LinkDown or LinkClosed."""
        if self._closed:
            raise LinkClosed("link is closed")
        if not self._up.is_set():
            raise LinkDown(f"link to {self.url} is down; message dropped")
        self._send(msg)

    def ping(self, timeout_s: float | None = None) -> float:
        """One GET_VARIABLES round trip of one word; returns its duration in seconds."""
        deadline = self._deadline(timeout_s)
        with self._slot(deadline):
            t0 = time.monotonic_ns()
            self._get_variables(self.node, 0, 1, deadline)
        return (time.monotonic_ns() - t0) / 1e9

    # ------------------------------------------------------------------ helpers

    def _deadline(self, timeout_s: float | None) -> int:
        t = self.timeout_s if timeout_s is None else timeout_s
        return time.monotonic_ns() + int(t * 1e9)

    @staticmethod
    def _info(node: NodeInfo, name: str) -> VariableInfo:
        try:
            return node.variables[name]
        except KeyError:
            raise UnknownVariable(f"node '{node.name}' has no variable '{name}'") from None

    def _slot(self, deadline_ns: int) -> _RequestSlot:
        return _RequestSlot(self, deadline_ns)

    def _send(self, msg: p.Message) -> None:
        frame = p.encode(msg)
        with self._write_lock:
            port = self._port
            if port is None:
                raise LinkDown(f"link to {self.url} is down")
            try:
                port.write(frame)
                self.stats.sent += 1
            except Exception as e:  # SerialException, OSError, write timeout
                self._lost(self._generation, f"write failed: {e}")
                raise LinkDown(f"link to {self.url} lost: {e}") from e

    def _set_variables(self, node: NodeInfo, start: int, arr: np.ndarray) -> None:
        if self._closed:
            raise LinkClosed("link is closed")
        if not self._up.is_set():
            raise LinkDown(f"link to {self.url} is down; write dropped")
        step = self.max_request_words - 1  # SET_VARIABLES also carries dest and start
        for i in range(0, len(arr), step):
            chunk = tuple(int(x) for x in arr[i : i + step])
            self._send(p.SetVariables(node.node_id, start + i, chunk))

    def _flush_inbox(self) -> None:
        with self._inbox_cond:
            self._inbox.clear()

    def _next_message(self, deadline_ns: int, generation: int) -> tuple[int, int, p.Message]:
        """Pop the next received message, waiting until the deadline."""
        with self._inbox_cond:
            while True:
                if self._closed:
                    raise LinkClosed("link is closed")
                if generation != self._generation:
                    raise LinkDown(f"link to {self.url} lost during a request")
                if self._inbox:
                    return self._inbox.popleft()
                left_s = (deadline_ns - time.monotonic_ns()) / 1e9
                if left_s <= 0:
                    raise LinkTimeout(f"no reply from {self.url} in time")
                self._inbox_cond.wait(left_s)

    def _get_variables(
        self, node: NodeInfo, start: int, count: int, deadline_ns: int
    ) -> tuple[int, np.ndarray]:
        """One GET_VARIABLES request; reassembles the VARIABLES chunks that answer it.
        Call with the request slot held."""
        generation = self._generation
        self._flush_inbox()  # late replies of a timed-out request must not answer this one
        self.stats.requests += 1
        self._send(p.GetVariables(node.node_id, start, count))
        values = np.zeros(count, dtype=np.int16)
        filled = np.zeros(count, dtype=bool)
        t_ns = 0
        try:
            while not filled.all():
                t_ns, source, msg = self._next_message(deadline_ns, generation)
                if source != node.node_id or not isinstance(msg, p.Variables):
                    continue
                lo = msg.start - start
                hi = lo + len(msg.values)
                if lo < 0 or hi > count or hi == lo:
                    continue  # not part of this reply
                values[lo:hi] = msg.values
                filled[lo:hi] = True
        except LinkTimeout as e:
            if isinstance(e, LinkDown):
                raise
            self.stats.timeouts += 1
            got = int(filled.sum())
            self._record("timeout", f"GET_VARIABLES {start}+{count}: {got} of {count} words came")
            raise LinkTimeout(
                f"no complete reply from node {node.node_id} on {self.url} ({got} of {count} words)"
            ) from None
        return t_ns, values

    # ------------------------------------------------------------------ connection

    def _establish(self, timeout_s: float) -> NodeInfo:
        """Open the port, start its reader, discover the node, read its description.
        Call with the request lock held. On failure everything is released again."""
        deadline = time.monotonic_ns() + int(timeout_s * 1e9)
        port = open_port(self.url, self.baudrate, serial_for_url=self._serial_for_url)
        with self._state_lock:
            if self._closed:
                port.close()
                raise LinkClosed("link is closed")
            self._generation += 1
            generation = self._generation
            self._port = port
            self._last_rx_ns = time.monotonic_ns()
            self._flush_inbox()
            self._reader = threading.Thread(
                target=self._read_loop,
                args=(port, generation),
                name=f"aseba-reader {self.url}",
                daemon=True,
            )
            self._reader.start()
        try:
            node_id = self._discover(deadline, generation)
            node = self._describe(node_id, deadline, generation)
        except BaseException:
            self._drop_connection()
            raise
        with self._state_lock:
            if generation != self._generation:  # the connection died right at the end
                lost = True
            else:
                lost = False
                old = self._node
                self._node = node
                self._up.set()
        if lost:
            self._drop_connection()
            raise LinkDown(f"link to {self.url} lost while connecting")
        if old is not None and old.layout() != node.layout():
            self._record("layout_changed", f"node {node.node_id} describes a new variable layout")
        return node

    def _discover(self, deadline_ns: int, generation: int) -> int:
        """LIST_NODES until a NODE_PRESENT comes (source = node id); halfway through, also
        ask the older GET_DESCRIPTION, whose DESCRIPTION reply also names the node."""
        start_ns = time.monotonic_ns()
        errors_before = self.stats.protocol_errors
        half_ns = start_ns + (deadline_ns - start_ns) // 2
        next_send_ns = 0
        while True:
            now = time.monotonic_ns()
            if now >= deadline_ns:
                noise = self.stats.protocol_errors - errors_before
                hint = f"; {noise} undecodable frame(s) came instead" if noise else ""
                raise NoNodeFound(
                    f"no Aseba node answered on {self.url} within "
                    f"{(deadline_ns - start_ns) / 1e9:.1f} s (not a Thymio, or asleep?{hint})"
                )
            if now >= next_send_ns:
                self._send(p.ListNodes(p.PROTOCOL_VERSION))
                if now >= half_ns:
                    self._send(p.GetDescription(p.PROTOCOL_VERSION))
                next_send_ns = now + 300_000_000
            try:
                _, source, msg = self._next_message(min(deadline_ns, next_send_ns), generation)
            except LinkTimeout as e:
                if isinstance(e, LinkDown):
                    raise
                continue
            if isinstance(msg, (p.NodePresent, p.Description)) and (
                self.wanted_node_id is None or source == self.wanted_node_id
            ):
                return source

    def _describe(self, node_id: int, deadline_ns: int, generation: int) -> NodeInfo:
        """GET_NODE_DESCRIPTION and collect DESCRIPTION plus every counted part."""
        self._send(p.GetNodeDescription(node_id, p.PROTOCOL_VERSION))
        head: p.Description | None = None
        variables: list[p.NamedVariableDescription] = []
        events: list[str] = []
        natives: list[str] = []
        while True:
            try:
                _, source, msg = self._next_message(deadline_ns, generation)
            except LinkTimeout as e:
                if isinstance(e, LinkDown):
                    raise
                if head is None:
                    raise NoNodeFound(
                        f"node {node_id} on {self.url} did not send its description"
                    ) from None
                raise ProtocolError(
                    f"incomplete description from node {node_id}: {len(variables)} of "
                    f"{head.num_named_variables} variables"
                ) from None
            if source != node_id:
                continue
            if isinstance(msg, p.Description):  # (re)start: a second sequence may follow
                head, variables, events, natives = msg, [], [], []
            elif head is None:
                continue
            elif isinstance(msg, p.NamedVariableDescription):
                variables.append(msg)
            elif isinstance(msg, p.LocalEventDescription):
                events.append(msg.name)
            elif isinstance(msg, p.NativeFunctionDescription):
                natives.append(msg.name)
            if (
                head is not None
                and len(variables) >= head.num_named_variables
                and len(events) >= head.num_local_events
                and len(natives) >= head.num_native_functions
            ):
                break
        table: dict[str, VariableInfo] = {}
        offset = 0
        for v in variables[: head.num_named_variables]:
            table.setdefault(v.name, VariableInfo(v.name, offset, v.size))
            offset += v.size
        return NodeInfo(
            node_id=node_id,
            name=head.name,
            protocol_version=head.protocol_version,
            variables=table,
            vm_variables_size=head.variables_size,
            bytecode_size=head.bytecode_size,
            stack_size=head.stack_size,
            local_events=tuple(events),
            native_functions=tuple(natives),
        )

    def _drop_connection(self) -> None:
        """Stop the reader and close the port (after a loss, a failed connect, or close)."""
        with self._state_lock:
            self._generation += 1
            port, self._port = self._port, None
            reader, self._reader = self._reader, None
            self._up.clear()
        with self._inbox_cond:
            self._inbox_cond.notify_all()
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=1.0)
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _lost(self, generation: int, reason: str) -> None:
        """Mark the connection of `generation` as lost (from any thread): pending requests
        fail at once, and the supervisor reconnects. During connect, only the former."""
        with self._state_lock:
            if generation != self._generation or self._closed:
                return
            was_up = self._up.is_set()
            self._up.clear()
            self._generation += 1  # pending requests fail now
            if was_up:
                self._lost_since_ns = self._last_rx_ns
        with self._inbox_cond:
            self._inbox_cond.notify_all()
        if was_up:
            self._record("lost", f"link to {self.url} lost: {reason}", start_ns=self._lost_since_ns)
            self._wake.set()

    # ------------------------------------------------------------------ threads

    def _read_loop(self, port: Any, generation: int) -> None:
        """Reader thread of one connection: bytes -> FrameDecoder -> inbox."""
        decoder = p.FrameDecoder(on_error=self._on_frame_error)
        read_some = _reader_for(port)
        while generation == self._generation and not self._closed:
            try:
                data = read_some()
            except Exception as e:  # unplugged, peer closed, port closed under us
                self._lost(generation, f"read failed: {e}")
                return
            now = time.monotonic_ns()
            if not data:
                if decoder.pending_bytes and now - self._last_rx_ns > _IDLE_FLUSH_NS:
                    decoder.flush_partial()
                continue
            self._last_rx_ns = now
            for source, msg in decoder.feed(data):
                self._dispatch(now, source, msg)
            self.stats.frames = decoder.frames

    def _dispatch(self, t_ns: int, source: int, msg: p.Message) -> None:
        if isinstance(msg, p.UserEvent):
            self.stats.user_events += 1
            self.user_events.append((t_ns, source, msg))
            for callback in list(self._user_listeners):
                with contextlib.suppress(Exception):
                    callback(t_ns, source, msg)
            return
        with self._inbox_cond:
            if len(self._inbox) == self._inbox.maxlen:
                self.stats.inbox_dropped += 1
            self._inbox.append((t_ns, source, msg))
            self._inbox_cond.notify_all()

    def _on_frame_error(self, err: p.FrameError) -> None:
        self.stats.protocol_errors += 1
        self._errors_unreported += 1
        now = time.monotonic_ns()
        if now - self._last_error_event_ns >= _ERROR_EVENT_PERIOD_NS:
            n, self._errors_unreported = self._errors_unreported, 0
            self._last_error_event_ns = now
            self._record("protocol_error", f"{n} protocol error(s), last: {err.detail}")

    def _supervise(self) -> None:
        """Heartbeat while up; reconnect with backoff while down."""
        backoff_s = self.backoff_initial_s
        while not self._closed:
            if self._up.is_set():
                backoff_s = self.backoff_initial_s
                self._heartbeat()
                self._wake.wait(self.heartbeat_s / 2)
                self._wake.clear()
                continue
            if not self.auto_reconnect:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._drop_connection()
            try:
                with self._request_lock:
                    if self._closed:
                        return
                    node = self._establish(self.connect_timeout_s)
            except FirmwareBridgeError:
                self._wake.wait(backoff_s)
                self._wake.clear()
                backoff_s = min(self.backoff_max_s, backoff_s * 2)
                continue
            except Exception as e:  # never let the supervisor die
                self._record("protocol_error", f"reconnect attempt failed: {e!r}")
                self._wake.wait(backoff_s)
                continue
            now = time.monotonic_ns()
            since = self._lost_since_ns if self._lost_since_ns is not None else now
            self.stats.reconnects += 1
            self._record(
                "reconnected",
                f"node {node.node_id} back on {self.url} after a gap of {(now - since) / 1e9:.2f} s",
                start_ns=since,
            )

    def _heartbeat(self) -> None:
        """Ping when the line has been idle; declare the link dead when nothing comes back."""
        generation = self._generation
        idle_ns = time.monotonic_ns() - self._last_rx_ns
        if idle_ns < self.heartbeat_s * 1e9:
            return
        if self._request_lock.acquire(blocking=False):  # else a request is in flight anyway
            try:
                node = self._node
                if node is not None and self._up.is_set():
                    deadline = time.monotonic_ns() + int(self.heartbeat_s * 1e9)
                    if node.named_words > 0:
                        self._get_variables(node, 0, 1, deadline)
                    else:
                        self._send(p.ListNodes(p.PROTOCOL_VERSION))
            except FirmwareBridgeError:
                pass
            finally:
                self._request_lock.release()
        idle_ns = time.monotonic_ns() - self._last_rx_ns
        if idle_ns > self.dead_after_s * 1e9:
            self._lost(generation, f"no data for {idle_ns / 1e9:.1f} s")

    def _record(self, kind: str, message: str, start_ns: int | None = None) -> None:
        ev = LinkEvent(time.monotonic_ns(), kind, message, start_ns)
        self.events.append(ev)
        for callback in list(self._listeners):
            with contextlib.suppress(Exception):
                callback(ev)


class _RequestSlot:
    """Context manager: wait (until the deadline) for the link to be up and for the request
    lock; raises LinkClosed, LinkDown or LinkTimeout."""

    def __init__(self, link: AsebaLink, deadline_ns: int) -> None:
        self.link = link
        self.deadline_ns = deadline_ns

    def _left_s(self) -> float:
        return max(0.0, (self.deadline_ns - time.monotonic_ns()) / 1e9)

    def __enter__(self) -> None:
        link = self.link
        if link._closed:
            raise LinkClosed("link is closed")
        if not link._started:
            raise LinkDown(f"link to {link.url} is not connected (call connect())")
        if not link._up.wait(self._left_s()):
            if link._closed:
                raise LinkClosed("link is closed")
            raise LinkDown(f"link to {link.url} is down (reconnecting)")
        if not link._request_lock.acquire(timeout=self._left_s()):
            raise LinkTimeout(f"link to {link.url} busy: no request slot in time")
        if link._closed:
            link._request_lock.release()
            raise LinkClosed("link is closed")

    def __exit__(self, *exc: object) -> None:
        self.link._request_lock.release()


def _reader_for(port: Any) -> Callable[[], bytes]:
    """A function returning the bytes available now (waiting at most _READ_POLL_S).

    Where the port has a selectable file descriptor (POSIX serial, socket://), wait with
    select and read everything in one call: pyserial's socket `in_waiting` says only 0 or 1,
    and byte-by-byte reads add a millisecond per reply."""
    fd = None
    if os.name == "posix" and hasattr(port, "fileno"):
        try:
            fd = port.fileno()
        except Exception:
            fd = None
    if fd is None:

        def read_waiting() -> bytes:
            waiting = port.in_waiting
            return port.read(waiting if waiting > 0 else 1)

        return read_waiting
    port.timeout = 0  # non-blocking reads: select does the waiting

    def read_selected() -> bytes:
        ready, _, _ = select.select([fd], [], [], _READ_POLL_S)
        return port.read(65536) if ready else b""

    return read_selected


def _as_words(values: int | Sequence[int] | np.ndarray) -> np.ndarray:
    """Values as an int16 array; raises ValueError when one does not fit a signed word."""
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise ValueError("values must be a scalar or a 1-D sequence")
    if arr.size and (arr.min() < -0x8000 or arr.max() > 0x7FFF):
        raise ValueError(f"values out of int16 range: {arr.min()}..{arr.max()}")
    return arr.astype(np.int16)
