"""The virtual Thymio: Playground's description, 47-word replies, and firmware_bridge reading
and driving it over a pseudo-terminal and over TCP exactly as a real robot."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from paths import REPO
from playground import free_port

from firmware_bridge import AsebaLink
from firmware_bridge import protocol as p
from sim.simulator import Simulator
from sim.virtual_thymio import (
    MAX_REPLY_WORDS,
    PARTIAL_FRAME_IDLE_S,
    THYMIO2_VARIABLES,
    AsebaNode,
    VirtualThymio,
)
from sim.world import load_world

REFERENCE = REPO.parent / "shared" / "reference" / "playground_thymio2_description.json"


def make_sim() -> Simulator:
    return Simulator(load_world("arena_boxes"), seed=0, camera=None, start_pose=(0.0, -0.9, 0.0))


def test_description_has_playgrounds_layout():
    node = AsebaNode(make_sim())
    msgs = node.handle(p.GetNodeDescription(1))
    head = msgs[0]
    assert isinstance(head, p.Description) and head.name == "thymio-II"
    assert head.num_named_variables == 30 and head.protocol_version == p.PROTOCOL_VERSION
    named = [m for m in msgs if isinstance(m, p.NamedVariableDescription)]
    events = [m for m in msgs if isinstance(m, p.LocalEventDescription)]
    assert len(named) == 30 and len(events) == head.num_local_events
    assert node.offsets["prox.horizontal"] == (42, 7)
    assert node.offsets["motor.left.speed"] == (59, 1)
    assert node.named_words == 74
    if REFERENCE.exists():  # the description read from a real Aseba Playground
        ref = json.loads(REFERENCE.read_text())
        assert [(v["name"], v["size"]) for v in ref["variables"]] == list(THYMIO2_VARIABLES)
        assert all(node.offsets[v["name"]][0] == v["offset"] for v in ref["variables"])
    # every message encodes within the frame limit
    for m in msgs:
        assert len(p.encode(m, source=1)) <= p.HEADER_BYTES + p.MAX_PAYLOAD_BYTES
    assert node.handle(p.GetNodeDescription(2)) == []  # another node's request
    assert node.handle(p.ListNodes()) == [p.NodePresent(p.PROTOCOL_VERSION)]


def test_get_variables_in_chunks_of_47_and_set_variables_drives():
    sim = make_sim()
    node = AsebaNode(sim)
    replies = node.handle(p.GetVariables(1, 0, 120))
    assert [len(r.values) for r in replies] == [47, 47, 26]
    assert [r.start for r in replies] == [0, 47, 94]
    assert all(len(r.values) <= MAX_REPLY_WORDS for r in replies)
    lt = node.offsets["motor.left.target"][0]
    assert node.handle(p.SetVariables(1, lt, (150, -150))) == []
    assert sim.robot.targets == (150, -150)
    assert node.handle(p.GetVariables(1, lt, 2))[0].values == (150, -150)


def _exercise(url: str, sim: Simulator) -> None:
    from firmware_bridge import ThymioRobot

    with ThymioRobot.open(url, timeout_s=5.0) as robot:
        assert robot.variables["prox.horizontal"].offset == 42
        r = robot.read()
        assert r.proximity.shape == (7,) and r.wheel_speed.shape == (2,)
        start = sim.pose
        robot.set_wheel_targets(250, 250)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and np.hypot(*(sim.pose[:2] - start[:2])) < 0.03:
            time.sleep(0.05)
        speed = robot.read().wheel_speed
        assert np.all(np.abs(speed - 250) < 80)
        assert np.hypot(*(sim.pose[:2] - start[:2])) >= 0.03
        robot.stop()
    assert sim.robot.targets == (0, 0)  # closing the robot stopped the motors


@pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX")
def test_firmware_bridge_drives_it_over_a_pty():
    sim = make_sim()
    with VirtualThymio(sim) as vt:
        path = vt.serve_pty()
        assert path.startswith("/dev/")
        _exercise(path, sim)
        assert vt.errors == 0


def test_firmware_bridge_drives_it_over_tcp():
    sim = make_sim()
    with VirtualThymio(sim) as vt:
        host, port = vt.serve_tcp("127.0.0.1", 0)
        _exercise(f"socket://{host}:{port}", sim)


# --------------------------------------------------------------------------- `sim serve`

# What a host killed mid-write leaves: 2 stray bytes (a header claiming 383 bytes that would
# swallow every later host's frames) and the first 7 bytes of a 12-byte GET_VARIABLES.
KILLED_HOST_BYTES = b"\x7f\x01" + p.encode(p.GetVariables(1, 0, 10))[:7]


def _killed_host(url: str) -> None:
    """A real host process that writes KILLED_HOST_BYTES to `url` and is SIGKILLed."""
    code = (
        "import os, signal, socket, sys\n"
        "url, data = sys.argv[1], bytes.fromhex(sys.argv[2])\n"
        "if url.startswith('socket://'):\n"
        "    host, port = url[9:].rsplit(':', 1)\n"
        "    s = socket.create_connection((host, int(port)))\n"
        "    s.sendall(data)\n"
        "else:\n"
        "    fd = os.open(url, os.O_RDWR | os.O_NOCTTY)\n"
        "    os.write(fd, data)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, url, KILLED_HOST_BYTES.hex()], timeout=30)
    assert proc.returncode == -9  # it died by the signal, mid-frame


def _serve(*args: str, announced: int):
    """The real `robot-ssl sim serve ARGS` in a subprocess, and the URLs it announced
    (waits for `announced` of them)."""
    cmd = [sys.executable, "-m", "robot_ssl", "sim", "serve", "--world", "arena_boxes", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    urls = [re.findall(r"on (\S+)", proc.stderr.readline()) for _ in range(announced)]
    return proc, [u[0] for u in urls if u]


def _answers(url: str) -> None:
    """A real host (firmware_bridge's link) finds the node and reads its variables."""
    with AsebaLink.open(url, connect_timeout_s=5.0) as link:
        assert link.variables["prox.horizontal"].offset == 42
        assert link.read(["prox.horizontal"])["prox.horizontal"].shape == (7,)


@pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX")
def test_sim_serve_answers_the_next_host_after_one_killed_mid_frame():
    proc, urls = _serve("--pty", "--port", str(free_port()), "--duration", "60", announced=2)
    try:
        assert len(urls) == 2 and urls[0].startswith("socket://"), urls
        for url in reversed(urls):  # the pty, shared by every host; then TCP
            for _ in range(2):  # twice: garbage after a recovery is dropped again
                _killed_host(url)
                time.sleep(4 * PARTIAL_FRAME_IDLE_S)  # the line idle past the gap
                _answers(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


def _serve_fails(*args: str, wrap: tuple[str, ...] = ()) -> str:
    """The one line `robot-ssl sim serve ARGS` prints when it cannot start (exit 2)."""
    cmd = [*wrap, sys.executable, "-m", "robot_ssl", "sim", "serve", *args, "--duration", "5"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""
    return r.stderr


def test_sim_serve_startup_errors_are_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        err = _serve_fails("--port", str(port))
        assert f"127.0.0.1:{port}" in err and "already in use" in err
        err = _serve_fails("--port", str(port), "--pty")  # nothing announced, nothing left
        assert "already in use" in err
    err = _serve_fails("--host", "no.such.host.invalid")
    assert "no.such.host.invalid" in err and "unknown host" in err


def test_sim_serve_without_a_pseudo_terminal_is_one_line():
    """A system that gives no pty: /dev/ptmx is /dev/null in a private mount namespace
    (needs root, as in CI)."""
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    bind = "mount --bind /dev/null /dev/ptmx"
    if (
        not shutil.which("unshare")
        or subprocess.run([*probe, bind], capture_output=True).returncode
    ):
        pytest.skip("cannot hide /dev/ptmx here (needs root and unshare)")
    err = _serve_fails("--pty", "--port", "0", wrap=(*probe, f'{bind} && exec "$0" "$@"'))
    assert "cannot create a pseudo-terminal" in err
