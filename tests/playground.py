"""Peers for tests that talk Aseba: the real Aseba Playground and a tiny in-test node.

`Playground` starts `xvfb-run -a asebaplayground world.playground` on free TCP ports and
stops it (whole process group); `playground_or_skip()` skips when the Debian packages are
missing, unless ROBOT_SSL_REQUIRE_PLAYGROUND=1, where it fails instead. `FakeAsebaNode` is a
fast, scriptable node (TCP server or pty master) that answers discovery, description and
variable requests, with knobs for split replies, garbage bytes, silence and disconnects.
Recorder tests can reuse both: `from playground import Playground, FakeAsebaNode`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import protocol as p
from sim.virtual_thymio import THYMIO2_VARIABLES

REQUIRE_ENV = "ROBOT_SSL_REQUIRE_PLAYGROUND"

# --------------------------------------------------------------------------- the real peer


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def playground_missing() -> str | None:
    """Why the playground cannot run here, or None when it can."""
    missing = [exe for exe in ("asebaplayground", "xvfb-run") if shutil.which(exe) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages aseba, xvfb)"
    return None


def playground_or_skip() -> None:
    """Skip the calling test when the playground is missing (fail if it is required)."""
    reason = playground_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class PlaygroundRobot:
    """One Thymio in a world file: position in cm, heading in radians, TCP port."""

    name: str
    port: int
    x_cm: float = 50.0
    y_cm: float = 40.0
    angle_rad: float = 1.5708


def world_xml(robots: Sequence[PlaygroundRobot], walls: Sequence[tuple[float, ...]] = ()) -> str:
    """A world file: 100 x 100 cm arena, `walls` as (x, y, l1, l2) in cm, the robots."""
    lines = [
        "<!DOCTYPE aseba-playground>",
        "<aseba-playground>",
        '  <color name="wall" r="0.9" g="0.9" b="0.9" />',
        '  <world w="100" h="100" color="wall"/>',
    ]
    for x, y, l1, l2 in walls:
        lines.append(f'  <wall x="{x}" y="{y}" l1="{l1}" l2="{l2}" h="10" color="wall" />')
    for r in robots:
        lines.append(
            f'  <robot type="thymio2" x="{r.x_cm}" y="{r.y_cm}" port="{r.port}" '
            f'angle="{r.angle_rad}" name="{r.name}"/>'
        )
    lines.append("</aseba-playground>")
    return "\n".join(lines) + "\n"


def is_listening(port: int) -> bool:
    """True when a TCP socket listens on `port` (Linux /proc/net/tcp*, no connection made).

    Probing by connecting would hurt: the playground treats every connection as its new
    client, and a probe that connects and closes just before the real client can crash it
    (it then closes the probe's stream twice)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_for_port(port: int, timeout_s: float, alive: callable = lambda: True) -> bool:
    """True once something listens on TCP `port` (False if `alive()` turns False first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        if is_listening(port):
            return True
        time.sleep(0.05)
    return False


class Playground:
    """Aseba Playground running headless with the given robots; a context manager."""

    def __init__(
        self,
        robots: Sequence[PlaygroundRobot],
        walls: Sequence[tuple[float, ...]] = ((50, 80, 40, 4),),
        workdir: Path | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.robots = list(robots)
        self.walls = list(walls)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="playground-")
        self.workdir = Path(workdir or self._tmp.name)
        self.world = self.workdir / "world.playground"
        self.world.write_text(world_xml(self.robots, self.walls))
        self.log = self.workdir / "playground.log"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    def url(self, index: int = 0) -> str:
        """socket:// URL of robot `index`."""
        return f"socket://127.0.0.1:{self.robots[index].port}"

    def start(self) -> Playground:
        """Start and wait until every robot's port accepts connections."""
        env = dict(os.environ)
        env.setdefault("XDG_RUNTIME_DIR", str(self.workdir))
        env["HOME"] = str(self.workdir)  # the playground writes per-robot files under ~/.local
        env["QT_QPA_PLATFORM"] = env.get("QT_QPA_PLATFORM", "xcb")
        for attempt in range(2):  # xvfb-run -a may race another test for a display number
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    ["xvfb-run", "-a", "asebaplayground", str(self.world)],
                    cwd=self.workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() kills Xvfb too
                )
            ok = all(
                wait_for_port(r.port, self.start_timeout_s, lambda: self.proc.poll() is None)
                for r in self.robots
            )
            if ok:
                return self
            self.kill()
            if attempt == 0:
                time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"asebaplayground did not start; log tail:\n{tail}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the playground and its X server (the whole process group)."""
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """Terminate politely, then release the work directory."""
        self.kill(signal.SIGTERM)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Playground:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- a fake peer

# Layout like Aseba Playground's Thymio (prox.horizontal at 42, motor.left.speed at 59),
# plus one long array to exercise chunked replies.
THYMIO_LIKE: tuple[tuple[str, int], ...] = (
    *THYMIO2_VARIABLES[: [n for n, _ in THYMIO2_VARIABLES].index("motor.right.speed") + 1],
    ("big.array", 120),
)


class FakeAsebaNode:
    """A scriptable Aseba node. Serve it over TCP with `listen()` or over a pty master
    with `attach(fd)`. Knobs (change them at any time): `chunk_words` (VARIABLES reply
    size), `dribble` (write replies one byte at a time), `garbage` (bytes sent before each
    reply), `silent` (answer nothing), `motors_follow_targets` (speeds = targets)."""

    def __init__(
        self,
        variables: Sequence[tuple[str, int]] = THYMIO_LIKE,
        node_id: int = 1,
        name: str = "thymio-II",
        chunk_words: int = 47,
        answer_list_nodes: bool = True,
        local_events: Sequence[str] = ("button.center",),
    ) -> None:
        self.variables = list(variables)
        self.local_events = tuple(local_events)
        self.offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for n, size in self.variables:
            self.offsets[n] = (offset, size)
            offset += size
        self.memory = np.zeros(offset, dtype=np.int16)
        if "_id" in self.offsets:
            self.memory[0] = node_id
        self.node_id = node_id
        self.name = name
        self.chunk_words = chunk_words
        self.answer_list_nodes = answer_list_nodes
        self.dribble = False
        self.garbage = b""
        self.silent = False
        self.motors_follow_targets = True
        self.received: list[p.Message] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- state

    def set(self, name: str, values: Sequence[int] | int) -> None:
        offset, size = self.offsets[name]
        self.memory[offset : offset + size] = np.atleast_1d(values)

    def get(self, name: str) -> np.ndarray:
        offset, size = self.offsets[name]
        return self.memory[offset : offset + size].copy()

    def count(self, cls: type) -> int:
        with self._lock:
            return sum(isinstance(m, cls) for m in self.received)

    # ---------------------------------------------------------------- transports

    def listen(self) -> str:
        """Serve on a free TCP port (one client at a time); returns its socket:// URL."""
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        self._server.settimeout(0.1)
        self._spawn(self._accept_loop)
        return f"socket://127.0.0.1:{self._server.getsockname()[1]}"

    def attach(self, fd: int) -> None:
        """Serve over a file descriptor (a pty master)."""
        self._spawn(self._fd_loop, fd)

    def drop_connection(self) -> None:
        """Close the current TCP client (like a robot that went away)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.drop_connection()
        if self._server is not None:
            self._server.close()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> FakeAsebaNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.drop_connection()  # like the playground: the newest client wins
            self._conn = conn
            self.connections += 1
            self._serve(conn.recv, conn.sendall, conn)

    def _fd_loop(self, fd: int) -> None:
        import select

        def recv(n: int) -> bytes:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                raise TimeoutError
            return os.read(fd, n)

        def send(data: bytes) -> None:
            os.write(fd, data)

        with contextlib.suppress(OSError):
            self._serve(recv, send, None)

    def _serve(self, recv, send, conn: socket.socket | None) -> None:
        decoder = p.FrameDecoder()
        if conn is not None:
            conn.settimeout(0.1)
        while not self._stop.is_set() and (conn is None or conn is self._conn):
            try:
                data = recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            for _source, msg in decoder.feed(data):
                with self._lock:
                    self.received.append(msg)
                if self.silent:
                    continue
                for reply in self._replies(msg):
                    self._write(send, reply)

    def _write(self, send, frame: bytes) -> None:
        try:
            if self.garbage:
                send(self.garbage)
            if self.dribble:
                for i in range(len(frame)):
                    send(frame[i : i + 1])
                    time.sleep(0.0002)
            else:
                send(frame)
        except OSError:
            pass

    def _replies(self, msg: p.Message) -> list[bytes]:
        me = self.node_id
        if isinstance(msg, p.ListNodes) and self.answer_list_nodes:
            return [p.encode(p.NodePresent(p.PROTOCOL_VERSION), source=me)]
        if isinstance(msg, p.GetDescription) or (
            isinstance(msg, p.GetNodeDescription) and msg.dest == me
        ):
            return self._description()
        if isinstance(msg, p.GetVariables) and msg.dest == me:
            end = msg.start + msg.length
            if end > len(self.memory):
                return []  # a real node ignores it (the playground even aborts)
            if self.motors_follow_targets and "motor.left.speed" in self.offsets:
                self.set("motor.left.speed", self.get("motor.left.target"))
                self.set("motor.right.speed", self.get("motor.right.target"))
            out = []
            for s in range(msg.start, end, self.chunk_words):
                vals = tuple(int(v) for v in self.memory[s : min(end, s + self.chunk_words)])
                out.append(p.encode(p.Variables(s, vals), source=me))
            return out
        if isinstance(msg, p.SetVariables) and msg.dest == me:
            end = msg.start + len(msg.values)
            if end <= len(self.memory):
                self.memory[msg.start : end] = msg.values
        return []

    def _description(self) -> list[bytes]:
        me = self.node_id
        head = p.Description(
            self.name,
            p.PROTOCOL_VERSION,
            1534,
            32,
            len(self.memory) + 100,
            len(self.variables),
            len(self.local_events),
            1,
        )
        frames = [p.encode(head, source=me)]
        frames += [
            p.encode(p.NamedVariableDescription(size, n), source=me) for n, size in self.variables
        ]
        frames += [p.encode(p.LocalEventDescription(n, ""), source=me) for n in self.local_events]
        frames.append(
            p.encode(
                p.NativeFunctionDescription(
                    "math.fill", "fill array", (p.NativeFunctionParameter(-1, "dest"),)
                ),
                source=me,
            )
        )
        return frames


# --------------------------------------------------------------------------- host kill


HOST_KILLER = Path(__file__).with_name("host_killer.py")


@dataclass(frozen=True)
class StopLatency:
    """What happened after a driving host was SIGKILLed."""

    host_mode: str  # "stream" (onboard program) or "poll"
    latency_s: float | None  # kill -> both wheel targets read 0; None if they never did
    poll_interval_s: float  # median interval of the observer's reads (the resolution)


def measure_stop_latency(url: str, *, poll: bool = False, wait_s: float = 2.0) -> StopLatency:
    """Start a host process that drives the robot at `url` through a relay, SIGKILL it, and
    time how long the robot takes to stop: until its wheel targets read 0, or until the
    onboard watchdog's event (sent right after it zeroes them) arrives, if sooner.

    The relay keeps the robot's side of the connection open after the host dies (a crashed
    computer whose cable stays plugged in: the robot sees silence, not a disconnect) and then
    reads the targets over it; Aseba Playground serves one client per robot, so a second
    connection cannot watch instead."""
    import queue
    import sys

    from firmware_bridge.onboard import EVENT_WATCHDOG

    host, port = url.removeprefix("socket://").rsplit(":", 1)
    upstream = socket.create_connection((host, int(port)), timeout=5.0)
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    relay = socket.socket()
    relay.bind(("127.0.0.1", 0))
    relay.listen(1)
    cmd = [sys.executable, str(HOST_KILLER), f"socket://127.0.0.1:{relay.getsockname()[1]}"]
    cmd += ["--poll"] if poll else []
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    relay.settimeout(10.0)
    downstream, _ = relay.accept()
    stop = threading.Event()
    watching = threading.Event()  # after the kill: decode what the robot sends
    inbox: queue.Queue = queue.Queue()

    def pump(src: socket.socket, dst: socket.socket, decode: bool) -> None:
        decoder = p.FrameDecoder()
        src.settimeout(0.02)
        while not stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if decode and watching.is_set():
                now = time.monotonic_ns()
                for _, msg in decoder.feed(data):
                    inbox.put((now, msg))
            elif not watching.is_set():
                with contextlib.suppress(OSError):
                    dst.sendall(data)

    threads = [
        threading.Thread(target=pump, args=(downstream, upstream, False), daemon=True),
        threading.Thread(target=pump, args=(upstream, downstream, True), daemon=True),
    ]
    for t in threads:
        t.start()
    line: list[str] = []
    reads: list[int] = []
    latency = None
    try:
        line = child.stdout.readline().split()
        if not line or line[0] != "driving":
            raise RuntimeError(f"host process did not start driving: {line}")
        time.sleep(0.5)
        t_kill = time.monotonic_ns()
        child.send_signal(signal.SIGKILL)
        watching.set()
        t_end = t_kill + int(wait_s * 1e9)
        pending = False
        while latency is None and time.monotonic_ns() < t_end:
            if not pending:
                upstream.sendall(p.encode(p.GetVariables(1, _TARGET_OFFSET, 2)))
                pending = True
            try:
                t_ns, msg = inbox.get(timeout=0.2)
            except queue.Empty:
                pending = False
                continue
            if isinstance(msg, p.UserEvent) and msg.type == EVENT_WATCHDOG:
                latency = (t_ns - t_kill) / 1e9
            elif isinstance(msg, p.Variables) and msg.start == _TARGET_OFFSET:
                pending = False
                reads.append(t_ns)
                if all(v == 0 for v in msg.values):
                    latency = (t_ns - t_kill) / 1e9
        if latency is None:  # leave the robot still for whoever comes next
            upstream.sendall(p.encode(p.SetVariables(1, _TARGET_OFFSET, (0, 0))))
    finally:
        child.kill()
        child.wait(timeout=5)
        stop.set()
        for t in threads:
            t.join(timeout=1.0)
        for sock in (downstream, relay, upstream):
            sock.close()
        # Seen here: asebaplayground (1.6.99) segfaults when the next client connects right
        # after one left while its program was emitting; give it time to drop the socket.
        time.sleep(0.5)
    gaps = np.diff(reads) / 1e9 if len(reads) > 1 else np.array([0.0])
    return StopLatency(line[1] if len(line) > 1 else "?", latency, float(np.median(gaps)))


# Playground's Thymio II layout (the relay reads raw: no discovery on a borrowed socket).
_TARGET_OFFSET = sum(
    size
    for name, size in THYMIO2_VARIABLES[
        : [n for n, _ in THYMIO2_VARIABLES].index("motor.left.target")
    ]
)


def wait_until_thymio_answers(url: str, timeout_s: float = 30.0) -> None:
    """The playground opens its port before its Thymio answers: wait for a description."""
    from firmware_bridge.thymio import ThymioRobot

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ThymioRobot.open(url, timeout_s=3.0).close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def join_local_group(rank: int, world_size: int, port: int) -> None:
    """The environment `torchrun` gives rank `rank` of a one-machine group on `port`: for
    tests that spawn the processes of a DDP run themselves."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )


@contextlib.contextmanager
def sim_serve(*args: str, announced: int = 1):
    """The real `robot-ssl sim serve ARGS` (world arena_boxes unless ARGS name one) in a
    subprocess; yields (process, the URLs it announced: waits for `announced` of them) and
    terminates it on exit."""
    import re
    import sys

    world = () if "--world" in args else ("--world", "arena_boxes")
    cmd = [sys.executable, "-m", "robot_ssl", "sim", "serve", *world, *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        found = [re.findall(r"on (\S+)", proc.stderr.readline()) for _ in range(announced)]
        yield proc, [u[0] for u in found if u]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()
