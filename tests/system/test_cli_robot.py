"""`robot-ssl robot ports|probe`: output, and one-line errors with status 2 within seconds."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from paths import REPO
from playground import FakeAsebaNode, free_port

from robot_ssl.cli.main import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    rc = main(["robot", *argv])
    elapsed = time.monotonic() - t0
    out, err = capsys.readouterr()
    return rc, out, err, elapsed


def assert_one_line_error(rc: int, err: str, elapsed: float, *words: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("robot-ssl robot probe: error: ")
    for w in words:
        assert w in lines[0]
    assert elapsed < 4.0


def test_probe_a_fake_thymio(capsys) -> None:
    with FakeAsebaNode() as node:
        node.set("prox.horizontal", [1, 2, 3, 4, 5, 6, 7])
        node.set("motor.left.target", 12)
        node.set("motor.right.target", -12)
        url = node.listen()
        rc, out, err, _ = run_cli(capsys, "probe", "--port", url)
    assert rc == 0, err
    assert "node:             1 'thymio-II'" in out
    assert "protocol version: 5" in out
    assert "variables:        21 (181 words)" in out
    assert "prox.horizontal:  1 2 3 4 5 6 7" in out
    assert "wheel speed:      12 -12 (left, right)" in out


def test_probe_missing_device(capsys) -> None:
    rc, _, err, elapsed = run_cli(capsys, "probe", "--port", "/dev/nonexistent")
    assert_one_line_error(rc, err, elapsed, "no such port", "/dev/nonexistent")


def test_probe_closed_tcp_port(capsys) -> None:
    url = f"socket://127.0.0.1:{free_port()}"
    rc, _, err, elapsed = run_cli(capsys, "probe", "--port", url)
    assert_one_line_error(rc, err, elapsed, "nothing listens", url)


def test_probe_a_device_that_does_not_answer(capsys) -> None:
    with FakeAsebaNode() as node:
        node.silent = True
        url = node.listen()
        rc, _, err, elapsed = run_cli(capsys, "probe", "--port", url, "--timeout", "1")
    assert_one_line_error(rc, err, elapsed, "no Aseba node answered", "not a Thymio")


def test_probe_an_aseba_node_that_is_not_a_thymio(capsys) -> None:
    with FakeAsebaNode(variables=[("_id", 1), ("foo", 3)], name="e-puck") as node:
        url = node.listen()
        rc, _, err, elapsed = run_cli(capsys, "probe", "--port", url)
    assert_one_line_error(rc, err, elapsed, "e-puck", "not a Thymio II")


def test_probe_a_busy_port(capsys) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, _, err, elapsed = run_cli(capsys, "probe", "--port", path)
    finally:
        for fd in (holder, slave, master):
            os.close(fd)
    assert_one_line_error(rc, err, elapsed, "busy", "Thymio Suite")


def test_probe_without_any_thymio_plugged_in(capsys, monkeypatch) -> None:
    import serial.tools.list_ports as lp

    monkeypatch.setattr(lp, "comports", lambda: [])
    rc, _, err, elapsed = run_cli(capsys, "probe")
    assert_one_line_error(rc, err, elapsed, "no Thymio found")


def test_ports_lists_thymio_ports(capsys, monkeypatch) -> None:
    import serial.tools.list_ports as lp

    fake = [
        SimpleNamespace(
            device="/dev/ttyACM0",
            vid=0x0617,
            pid=0x000A,
            description="Thymio-II",
            serial_number="1",
        ),
        SimpleNamespace(
            device="/dev/ttyS0", vid=None, pid=None, description="n/a", serial_number=None
        ),
    ]
    monkeypatch.setattr(lp, "comports", lambda: fake)
    rc, out, _, _ = run_cli(capsys, "ports")
    assert rc == 0 and out.splitlines() == ["/dev/ttyACM0\twired\t0617:000a\tThymio-II"]
    rc, out, _, _ = run_cli(capsys, "ports", "--all")
    assert rc == 0 and len(out.splitlines()) == 2
    monkeypatch.setattr(lp, "comports", lambda: fake[1:])
    rc, out, err, _ = run_cli(capsys, "ports")
    assert rc == 0 and out == "" and "no Thymio serial port found" in err


def test_robot_without_a_command(capsys) -> None:
    rc, _, err, _ = run_cli(capsys)
    assert rc == 2 and "choose a command" in err


def test_entry_point_wrong_port_is_one_line_and_quick() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "robot_ssl", "robot", "probe", "--port", "/dev/nonexistent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert time.monotonic() - t0 < 30  # interpreter start included; the probe itself is instant


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_probe_rejects_a_bad_timeout(capsys, bad: str) -> None:
    rc, _, err, _ = run_cli(capsys, "probe", "--port", "/dev/null", "--timeout", bad)
    assert rc == 2 and "--timeout: must be a finite number > 0" in err
    assert err.count("\n") == 1, err
