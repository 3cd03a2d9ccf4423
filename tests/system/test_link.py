"""AsebaLink and ThymioRobot against a tiny in-test Aseba node (TCP and a real pty)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from paths import REPO
from playground import THYMIO_LIKE, FakeAsebaNode, free_port

from firmware_bridge import (
    AsebaLink,
    LinkClosed,
    LinkDown,
    LinkTimeout,
    NoNodeFound,
    NotAThymio,
    PortBusy,
    PortNotFound,
    ThymioRobot,
    UnknownVariable,
    plan_reads,
)
from firmware_bridge import protocol as p
from firmware_bridge import thymio as thymio_mod


@pytest.fixture
def node():
    with FakeAsebaNode() as fake:
        fake.url = fake.listen()
        yield fake


@pytest.fixture
def link(node):
    with AsebaLink.open(node.url, timeout_s=1.0, heartbeat_s=0.2, dead_after_s=0.6) as lk:
        yield lk


def wait_until(cond, timeout_s: float = 5.0, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


# ----------------------------------------------------------------------------- pure


def test_plan_reads_merges_small_gaps() -> None:
    # playground layout: prox 42+7, speeds 59 and 60 -> one request of 19 words
    assert plan_reads([(42, 7), (59, 1), (60, 1)]) == [(42, 19)]
    # firmware 14 layout: prox 57+7, speeds 92, 93 -> one request of 37 words
    assert plan_reads([(57, 7), (92, 1), (93, 1)]) == [(57, 37)]
    assert plan_reads([(0, 1), (100, 2)], max_gap_words=32) == [(0, 1), (100, 2)]
    assert plan_reads([(5, 3), (5, 3), (6, 1)]) == [(5, 3)]
    assert plan_reads([]) == []


def test_plan_reads_splits_long_ranges() -> None:
    assert plan_reads([(0, 600)], max_words=257) == [(0, 257), (257, 257), (514, 86)]
    assert plan_reads([(0, 200), (210, 100)], max_words=257) == [(0, 200), (210, 100)]


# ----------------------------------------------------------------------------- discovery


def test_discovery_and_variable_table(link: AsebaLink, node: FakeAsebaNode) -> None:
    info = link.node
    assert info.node_id == 1 and info.name == "thymio-II" and info.protocol_version == 5
    assert list(info.variables) == [n for n, _ in THYMIO_LIKE]
    offset = 0
    for name, size in THYMIO_LIKE:  # offsets are running sums of sizes
        v = info.variables[name]
        assert (v.offset, v.size) == (offset, size)
        offset += size
    assert info.variables["prox.horizontal"].offset == 42
    assert info.variables["motor.left.speed"].offset == 59
    assert info.local_events == ("button.center",) and info.native_functions == ("math.fill",)
    assert link.is_connected and [e.kind for e in link.events] == ["connected"]


def test_discovery_falls_back_to_get_description() -> None:
    with FakeAsebaNode(node_id=7, answer_list_nodes=False) as fake:
        url = fake.listen()
        with AsebaLink.open(url, connect_timeout_s=2.0) as lk:
            assert lk.node.node_id == 7


def test_silent_device_is_no_node_found_quickly() -> None:
    with FakeAsebaNode() as fake:
        fake.silent = True
        url = fake.listen()
        t0 = time.monotonic()
        with pytest.raises(NoNodeFound, match="no Aseba node answered"):
            AsebaLink.open(url, connect_timeout_s=0.8)
        assert time.monotonic() - t0 < 3.0


def test_closed_tcp_port_is_port_not_found() -> None:
    with pytest.raises(PortNotFound, match="connection refused"):
        AsebaLink.open(f"socket://127.0.0.1:{free_port()}")


def test_missing_device_is_port_not_found() -> None:
    with pytest.raises(PortNotFound, match="no such port"):
        AsebaLink.open("/dev/nonexistent-thymio")


# ----------------------------------------------------------------------------- reads


def test_read_together_in_one_request(link: AsebaLink, node: FakeAsebaNode) -> None:
    node.set("prox.horizontal", [1, -2, 3000, 4, 5, 6, 7])
    node.set("motor.left.target", -300)
    node.set("motor.right.target", 250)
    before = node.count(p.GetVariables)
    got = link.read(["prox.horizontal", "motor.left.speed", "motor.right.speed"])
    assert node.count(p.GetVariables) == before + 1
    assert got["prox.horizontal"].dtype == np.int16
    assert got["prox.horizontal"].tolist() == [1, -2, 3000, 4, 5, 6, 7]
    assert got["motor.left.speed"].tolist() == [-300]
    assert got["motor.right.speed"].tolist() == [250]


def test_chunked_reply_is_reassembled(link: AsebaLink, node: FakeAsebaNode) -> None:
    values = np.arange(-60, 60, dtype=np.int16)
    node.set("big.array", values)
    node.chunk_words = 47  # 120 words come in 3 VARIABLES messages
    assert link.read(["big.array"])["big.array"].tolist() == values.tolist()
    node.chunk_words = 1
    assert link.read(["big.array"])["big.array"].tolist() == values.tolist()


def test_split_bytes_and_garbage_on_the_line(link: AsebaLink, node: FakeAsebaNode) -> None:
    node.set("prox.horizontal", [10, 20, 30, 40, 50, 60, 70])
    node.dribble = True  # one byte per write
    assert link.read(["prox.horizontal"])["prox.horizontal"].tolist()[0] == 10
    node.dribble = False
    node.garbage = b"\xff\xff\xff"  # impossible lengths before every reply
    for _ in range(5):
        got = link.read(["prox.horizontal", "motor.left.speed"])
        assert got["prox.horizontal"].tolist() == [10, 20, 30, 40, 50, 60, 70]
    assert link.stats.protocol_errors >= 15
    assert any(e.kind == "protocol_error" for e in link.events)


def test_unknown_variable(link: AsebaLink) -> None:
    with pytest.raises(UnknownVariable, match="no variable 'nope'"):
        link.read(["nope"])
    with pytest.raises(KeyError):  # UnknownVariable is also a KeyError
        link.write("nope", 1)


def test_timeout_when_node_stops_answering(node: FakeAsebaNode) -> None:
    with AsebaLink.open(node.url, timeout_s=0.3, heartbeat_s=5, dead_after_s=10) as lk:
        node.silent = True
        t0 = time.monotonic()
        with pytest.raises(LinkTimeout):
            lk.read(["prox.horizontal"])
        assert time.monotonic() - t0 < 1.0
        assert lk.stats.timeouts == 1 and lk.events[-1].kind == "timeout"
        node.silent = False
        assert lk.read(["_id"])["_id"].tolist() == [1]


def test_reads_from_many_threads(link: AsebaLink, node: FakeAsebaNode) -> None:
    import threading

    node.set("big.array", np.arange(120))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(30):
                got = link.read(["big.array", "_id"])
                assert got["big.array"].tolist() == list(range(120))
                assert got["_id"].tolist() == [1]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors


# ----------------------------------------------------------------------------- writes


def test_write_and_write_many(link: AsebaLink, node: FakeAsebaNode) -> None:
    link.write("event.args", [1, 2, 3], index=4)
    assert wait_until(lambda: node.get("event.args")[4:7].tolist() == [1, 2, 3])
    before = node.count(p.SetVariables)
    link.write_many({"motor.left.target": -500, "motor.right.target": 500})
    assert wait_until(lambda: node.count(p.SetVariables) == before + 1)  # adjacent: one message
    assert node.get("motor.left.target").tolist() == [-500]
    assert node.get("motor.right.target").tolist() == [500]
    with pytest.raises(ValueError):
        link.write("motor.left.target", 40000)
    with pytest.raises(ValueError):
        link.write("prox.horizontal", [1] * 8)


# ----------------------------------------------------------------------------- gaps


def test_reconnects_after_the_node_drops_the_connection(
    link: AsebaLink, node: FakeAsebaNode
) -> None:
    assert link.read(["_id"])["_id"].tolist() == [1]
    node.drop_connection()
    assert wait_until(lambda: any(e.kind == "lost" for e in link.events), 3.0)
    assert wait_until(lambda: any(e.kind == "reconnected" for e in link.events), 5.0)
    assert link.read(["_id"])["_id"].tolist() == [1]
    lost = next(e for e in link.events if e.kind == "lost")
    back = next(e for e in link.events if e.kind == "reconnected")
    assert back.start_ns is not None and back.start_ns <= lost.t_ns <= back.t_ns
    assert link.stats.reconnects == 1 and node.connections == 2


def test_heartbeat_notices_a_silent_node(link: AsebaLink, node: FakeAsebaNode) -> None:
    node.silent = True  # connection stays open, nothing comes back
    assert wait_until(lambda: not link.is_connected, 3.0)
    with pytest.raises(LinkDown):
        link.read(["_id"], timeout_s=0.2)
    node.silent = False
    assert wait_until(lambda: link.is_connected, 5.0)
    assert link.read(["_id"])["_id"].tolist() == [1]
    kinds = [e.kind for e in link.events]
    assert "lost" in kinds and "reconnected" in kinds


def test_close_is_idempotent_and_final(node: FakeAsebaNode) -> None:
    seen = []
    lk = AsebaLink.open(node.url, on_event=seen.append)
    lk.close()
    lk.close()
    assert [e.kind for e in seen] == ["connected", "closed"]
    with pytest.raises(LinkClosed):
        lk.read(["_id"])


# ----------------------------------------------------------------------------- serial (pty)


@pytest.fixture
def pty_node():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    fake = FakeAsebaNode()
    fake.attach(master)
    yield fake, path, slave
    fake.close()
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_link_over_a_serial_pty(pty_node) -> None:
    fake, path, _ = pty_node
    fake.set("prox.horizontal", [7, 6, 5, 4, 3, 2, 1])
    with AsebaLink.open(path, connect_timeout_s=2.0) as lk:
        assert lk.read(["prox.horizontal"])["prox.horizontal"].tolist() == [7, 6, 5, 4, 3, 2, 1]


def test_busy_serial_port(pty_node) -> None:
    _, path, _ = pty_node
    holder = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what another pyserial user does
        t0 = time.monotonic()
        with pytest.raises(PortBusy, match="busy"):
            AsebaLink.open(path)
        assert time.monotonic() - t0 < 1.0
    finally:
        os.close(holder)


# ----------------------------------------------------------------------------- ThymioRobot


def test_thymio_robot_reads_and_clips(node: FakeAsebaNode) -> None:
    node.set("prox.horizontal", [0, 0, 4000, 0, 0, 0, 0])
    with ThymioRobot.open(node.url) as robot:
        t0 = time.monotonic_ns()
        robot.set_wheel_targets(900, -900)
        assert robot.targets == (500, -500)
        r = robot.read()
        assert t0 <= r.t_ns <= time.monotonic_ns()
        assert r.proximity.dtype == np.int16 and r.proximity.shape == (7,)
        assert r.wheel_speed.dtype == np.int16 and r.wheel_speed.tolist() == [500, -500]
        assert r.proximity[2] == 4000
    # closed: motors zeroed
    assert node.get("motor.left.target").tolist() == [0]
    assert node.get("motor.right.target").tolist() == [0]


def test_thymio_robot_satisfies_the_robot_protocol(node: FakeAsebaNode) -> None:
    from robot_ssl.core.devices import Robot  # test only: firmware_bridge never imports robot_ssl

    with ThymioRobot.open(node.url) as robot:
        assert isinstance(robot, Robot)


def test_thymio_robot_stops_on_error_in_with_block(node: FakeAsebaNode) -> None:
    with pytest.raises(RuntimeError), ThymioRobot.open(node.url) as robot:
        robot.set_wheel_targets(200, 200)
        assert wait_until(lambda: node.get("motor.left.target").tolist() == [200])
        raise RuntimeError("controller bug")
    assert node.get("motor.left.target").tolist() == [0]


def test_thymio_robot_stops_after_a_reconnect(node: FakeAsebaNode) -> None:
    with ThymioRobot.open(node.url, heartbeat_s=0.2) as robot:
        robot.set_wheel_targets(100, 100)
        assert wait_until(lambda: node.get("motor.left.target").tolist() == [100])
        node.drop_connection()
        assert wait_until(lambda: robot.link.stats.reconnects == 1, 5.0)
        assert wait_until(lambda: node.get("motor.left.target").tolist() == [0])
        assert robot.targets == (0, 0)


def test_not_a_thymio(node: FakeAsebaNode) -> None:
    with FakeAsebaNode(variables=[("_id", 1), ("foo", 3)], name="e-puck") as other:
        url = other.listen()
        with pytest.raises(NotAThymio, match=r"lacks prox\.horizontal"):
            ThymioRobot.open(url)


def _run_child(url: str, body: str, sig: int | None = None) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import sys, time
        from firmware_bridge import ThymioRobot
        robot = ThymioRobot.open({url!r})
        robot.set_wheel_targets(300, 300)
        print("driving", flush=True)
        """
    ) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    first = b""
    if sig is not None:
        first = proc.stdout.readline()
        assert first.strip() == b"driving"
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    return subprocess.CompletedProcess(proc.args, proc.returncode, first + out, err)


@pytest.mark.parametrize(
    ("body", "sig"),
    [
        ("sys.exit(0)\n", None),  # forgot close(): the atexit finalizer stops the motors
        ("time.sleep(30)\n", signal.SIGINT),  # Ctrl-C
        ("raise RuntimeError('crash')\n", None),  # uncaught error
    ],
    ids=["exit", "ctrl-c", "error"],
)
def test_motors_stop_when_the_process_ends(node: FakeAsebaNode, body: str, sig) -> None:
    result = _run_child(node.url, body, sig)
    assert b"driving" in result.stdout, result.stderr.decode()
    assert wait_until(lambda: node.get("motor.left.target").tolist() == [0], 3.0)
    assert node.get("motor.right.target").tolist() == [0]
    sets = [m for m in node.received if isinstance(m, p.SetVariables)]
    assert sets[-2].values == (300, 300) and sets[-1].values == (0, 0)


def test_ports_filters_thymio_usb_ids(monkeypatch) -> None:
    from types import SimpleNamespace

    fake_ports = [
        SimpleNamespace(
            device="/dev/ttyACM1", vid=0x0617, pid=0x000C, description="Dongle", serial_number="2"
        ),
        SimpleNamespace(
            device="/dev/ttyACM0",
            vid=0x0617,
            pid=0x000A,
            description="Thymio-II",
            serial_number="1",
        ),
        SimpleNamespace(
            device="/dev/ttyUSB0", vid=0x0403, pid=0x6001, description="FTDI", serial_number=None
        ),
        SimpleNamespace(
            device="/dev/ttyS0", vid=None, pid=None, description="n/a", serial_number=None
        ),
    ]
    import serial.tools.list_ports as lp

    monkeypatch.setattr(lp, "comports", lambda: fake_ports)
    found = thymio_mod.ports()
    assert [(q.device, q.kind) for q in found] == [
        ("/dev/ttyACM0", "wired"),
        ("/dev/ttyACM1", "wireless dongle"),
    ]
    assert thymio_mod.find_thymio_port() == "/dev/ttyACM0"
    assert len(thymio_mod.ports(include_all=True)) == 4
    monkeypatch.setattr(lp, "comports", lambda: fake_ports[2:])
    with pytest.raises(PortNotFound, match="no Thymio found"):
        thymio_mod.find_thymio_port()
