"""The virtual Thymio: Playground's description, 47-word replies, and firmware_bridge reading
and driving it over a pseudo-terminal and over TCP exactly as a real robot."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import protocol as p
from sim.simulator import Simulator
from sim.virtual_thymio import MAX_REPLY_WORDS, THYMIO2_VARIABLES, AsebaNode, VirtualThymio
from sim.world import load_world

REFERENCE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "playground_thymio2_description.json"
)


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
