"""The real peer: Aseba Playground's simulated Thymio II over TCP (socket:// URL).

Skipped with a reason when asebaplayground or xvfb-run is missing, unless
ROBOT_SSL_REQUIRE_PLAYGROUND=1 (CI), where they fail instead.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from playground import Playground, PlaygroundRobot, free_port, playground_or_skip

from firmware_bridge import AsebaLink, LinkDown, LinkTimeout, ThymioRobot

pytestmark = pytest.mark.playground

WALL_ROBOT = 0  # faces a wall 20 cm ahead of its front sensor
OPEN_ROBOT = 1  # in open space, used for speed tests (spins in place)


@pytest.fixture(scope="module")
def pg():
    playground_or_skip()
    robots = [
        PlaygroundRobot("wall", free_port(), x_cm=50, y_cm=50, angle_rad=math.pi / 2),
        PlaygroundRobot("open", free_port(), x_cm=25, y_cm=25, angle_rad=0.0),
    ]
    with Playground(robots) as playground:
        yield playground


def wait_reading(robot: ThymioRobot, cond, timeout_s: float):
    """Read until cond(reading) holds; returns the last reading and whether it held."""
    deadline = time.monotonic() + timeout_s
    r = robot.read()
    while not cond(r) and time.monotonic() < deadline:
        time.sleep(0.03)
        r = robot.read()
    return r, cond(r)


def test_description_holds_the_thymio_variables(pg: Playground) -> None:
    with AsebaLink.open(pg.url(WALL_ROBOT)) as link:
        node = link.node
        assert node.name == "thymio-II" and node.protocol_version == 5
        assert node.node_id >= 1
        v = link.variables
        for name in ("prox.horizontal", "motor.left.target", "motor.left.speed"):
            assert name in v
        assert v["prox.horizontal"].size == 7 and v["motor.left.speed"].size == 1
        # Playground layout (see DESIGN.md): 30 variables in 74 words, prox at 42, speed at 59
        assert len(v) == 30 and node.named_words == 74
        assert v["prox.horizontal"].offset == 42
        assert v["motor.left.target"].offset == 57
        assert v["motor.left.speed"].offset == 59


def test_polling_reads_prox_and_speeds_in_one_request(pg: Playground) -> None:
    with ThymioRobot.open(pg.url(WALL_ROBOT), poll=True) as robot:
        assert robot.mode == "poll" and "--poll" in robot.mode_reason
        before = robot.link.stats.requests
        for _ in range(5):
            r = robot.read()
            assert r.proximity.shape == (7,) and r.wheel_speed.shape == (2,)
        assert robot.link.stats.requests - before == 5


def test_driving_towards_the_wall_raises_front_prox(pg: Playground) -> None:
    with ThymioRobot.open(pg.url(WALL_ROBOT)) as robot:
        first = robot.read()
        assert int(first.proximity[:5].max()) < 1000  # wall still out of range
        robot.set_wheel_targets(400, 400)
        r, near = wait_reading(robot, lambda r: int(r.proximity[2]) > 2500, 8.0)
        robot.stop()
        assert near, f"front prox stayed at {r.proximity.tolist()}"
        assert int(r.proximity[2]) > int(first.proximity[2]) + 2000
        assert int(r.proximity[1:4].min()) > 1000  # the wall is ahead, not to one side
        assert abs(int(r.wheel_speed[0]) - 400) <= 40  # it was moving at the target speed
        r, stopped = wait_reading(robot, lambda r: np.all(np.abs(r.wheel_speed) <= 5), 2.0)
        assert stopped, f"wheels still turning: {r.wheel_speed.tolist()}"
        assert int(r.proximity[5:].max()) < 1000  # nothing behind it


@pytest.mark.parametrize(("left", "right"), [(200, -200), (-150, 150), (500, -500), (0, 0)])
def test_measured_speeds_follow_targets(pg: Playground, left: int, right: int) -> None:
    with ThymioRobot.open(pg.url(OPEN_ROBOT)) as robot:
        robot.set_wheel_targets(left, right)

        def close_to_target(r) -> bool:
            tol = max(10, 0.05 * max(abs(left), abs(right)))
            return (
                abs(int(r.wheel_speed[0]) - left) <= tol
                and abs(int(r.wheel_speed[1]) - right) <= tol
            )

        r, ok = wait_reading(robot, close_to_target, 2.0)
        robot.stop()
        assert ok, f"speeds {r.wheel_speed.tolist()} for targets {[left, right]}"


def test_cli_probe_against_the_playground(pg: Playground, capsys) -> None:
    from robot_ssl.cli.main import main

    t0 = time.monotonic()
    assert main(["robot", "probe", "--port", pg.url(OPEN_ROBOT)]) == 0
    assert time.monotonic() - t0 < 5
    out = capsys.readouterr().out
    assert "'thymio-II'" in out
    assert "protocol version: 5" in out
    assert "variables:        30 (74 words)" in out
    prox = next(line for line in out.splitlines() if line.startswith("prox.horizontal:"))
    assert len(prox.split(":", 1)[1].split()) == 7
    speed = next(line for line in out.splitlines() if line.startswith("wheel speed:"))
    assert "(left, right)" in speed


def test_reconnects_after_the_playground_restarts(tmp_path) -> None:
    playground_or_skip()
    robots = [PlaygroundRobot("solo", free_port(), x_cm=50, y_cm=30, angle_rad=0.0)]
    pg = Playground(robots, workdir=tmp_path)
    events = []
    try:
        pg.start()
        robot = ThymioRobot.open(
            pg.url(), heartbeat_s=0.2, backoff_max_s=0.5, on_event=events.append
        )
        with robot:
            assert robot.read().proximity.shape == (7,)
            pg.kill()  # the peer dies mid-session (like an unplugged robot)
            t_down = time.monotonic_ns()
            deadline = time.monotonic() + 5
            while robot.link.is_connected and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not robot.link.is_connected
            with pytest.raises(LinkTimeout):  # LinkDown is a LinkTimeout
                robot.read()
            time.sleep(0.5)
            pg.start()  # same world, same port
            deadline = time.monotonic() + 30
            while not robot.link.is_connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert robot.link.is_connected, [e.message for e in events]
            # connected is not yet streaming: the onboard program is uploaded again and its
            # first readings follow (stale until then, a LinkTimeout the recorder logs as a gap)
            r = None
            deadline = time.monotonic() + 10
            while r is None and time.monotonic() < deadline:
                try:
                    r = robot.read()
                except LinkTimeout:
                    time.sleep(0.05)
            assert r is not None, "no fresh reading within 10 s of the reconnection"
            assert r.proximity.shape == (7,) and r.t_ns > t_down
            kinds = [e.kind for e in events]
            assert kinds[0] == "connected" and "lost" in kinds and "reconnected" in kinds
            lost = next(e for e in events if e.kind == "lost")
            back = next(e for e in events if e.kind == "reconnected")
            assert back.start_ns is not None and back.start_ns <= t_down <= back.t_ns
            assert (back.t_ns - back.start_ns) / 1e9 >= 0.5  # the gap covers the downtime
            assert "gap of" in back.message and lost.t_ns <= back.t_ns
    finally:
        pg.stop()


def test_link_down_is_reported_while_the_peer_is_gone(tmp_path) -> None:
    playground_or_skip()
    robots = [PlaygroundRobot("solo", free_port(), x_cm=50, y_cm=30, angle_rad=0.0)]
    with Playground(robots, workdir=tmp_path) as pg:
        link = AsebaLink.open(pg.url(), heartbeat_s=0.2, backoff_max_s=0.5, timeout_s=0.3)
        try:
            pg.kill()
            t0 = time.monotonic()
            with pytest.raises(LinkDown):
                while time.monotonic() - t0 < 5:
                    link.read(["prox.horizontal"])
            assert time.monotonic() - t0 < 5
        finally:
            link.close()


def test_missing_playground_skips_unless_required(monkeypatch) -> None:
    import playground as helper

    monkeypatch.setattr(helper.shutil, "which", lambda exe: None)
    monkeypatch.delenv(helper.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="asebaplayground and xvfb-run"):
        playground_or_skip()
    monkeypatch.setenv(helper.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="ROBOT_SSL_REQUIRE_PLAYGROUND=1"):
        playground_or_skip()
