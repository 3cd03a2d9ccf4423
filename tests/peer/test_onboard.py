"""The onboard program: assembled for the node's layout, streamed readings, the robot's own
watchdog, and the fallback to polling. Against the real Aseba Playground (its VM runs the
uploaded bytecode) and a scripted node that runs none."""

from __future__ import annotations

import time

import numpy as np
import pytest
from playground import (
    FakeAsebaNode,
    Playground,
    PlaygroundRobot,
    free_port,
    measure_stop_latency,
    playground_or_skip,
)

from firmware_bridge import AsebaLink, ThymioRobot
from firmware_bridge import protocol as p
from firmware_bridge.link import NodeInfo, VariableInfo
from firmware_bridge.onboard import (
    EVENT_PROX,
    OnboardConfig,
    ProgramUnsupported,
    build_program,
)
from firmware_bridge.stream import ReadingStream

PLAYGROUND_EVENTS = (
    "button.backward", "button.left", "button.center", "button.forward", "button.right",
    "buttons", "prox", "prox.comm", "tap", "acc", "mic", "sound.finished", "temperature",
    "rc5", "motor", "timer0", "timer1",
)  # fmt: skip


def playground_node() -> NodeInfo:
    """Aseba Playground's Thymio II as described on the wire (captured reference)."""
    from sim.virtual_thymio import THYMIO2_VARIABLES

    table, offset = {}, 0
    for name, size in THYMIO2_VARIABLES:
        table[name] = VariableInfo(name, offset, size)
        offset += size
    return NodeInfo(1, "thymio-II", 5, table, 586, 1534, 32, PLAYGROUND_EVENTS)


# --------------------------------------------------------------------------- no peer


def test_program_lives_after_the_named_variables_and_fits() -> None:
    node = playground_node()
    prog = build_program(node)
    assert prog.first_word == node.named_words == 74
    assert prog.first_word <= prog.heartbeat_offset < prog.first_word + prog.n_words
    assert 0 < len(prog.words) <= node.bytecode_size
    msgs = prog.upload_messages(node.node_id)
    assert isinstance(msgs[0], p.SetBytecode) and isinstance(msgs[-1], p.Run)
    uploaded = [w for m in msgs if isinstance(m, p.SetBytecode) for w in m.words]
    assert tuple(uploaded) == prog.words


def test_program_refuses_nodes_it_cannot_run_on() -> None:
    node = playground_node()
    no_timer = NodeInfo(1, "x", 5, node.variables, 586, 1534, 32, ("prox", "motor"))
    with pytest.raises(ProgramUnsupported, match="timer0"):
        build_program(no_timer)
    tiny = NodeInfo(1, "x", 5, node.variables, 80, 1534, 32, PLAYGROUND_EVENTS)
    with pytest.raises(ProgramUnsupported, match="free words"):
        build_program(tiny)
    with pytest.raises(ValueError, match="max_staleness_ms"):
        OnboardConfig(max_staleness_ms=0)


def test_stream_counts_lost_events_and_restarts() -> None:
    stream = ReadingStream(node_id=1)
    for t, seq in enumerate((1, 2, 3, 6, 7, 1)):  # 4 and 5 lost; then the program restarted
        stream.on_user_event(t, 1, p.UserEvent(EVENT_PROX, (seq, *range(7), 0, 0)))
    stream.on_user_event(9, 2, p.UserEvent(EVENT_PROX, (8, *range(7), 0, 0)))  # other node
    batch = stream.drain()
    assert [s.seq for s in batch.proximity] == [1, 2, 3, 6, 7, 1]
    assert stream.counters.prox_lost == 2 and stream.counters.restarts == 1
    assert [k for _, k, _ in batch.notes] == ["stream_gap", "stream_restart"]
    stream.on_user_event(10, 1, p.UserEvent(EVENT_PROX, (0x7FFF, *range(7), 0, 0)))
    stream.on_user_event(11, 1, p.UserEvent(EVENT_PROX, (-0x8000, *range(7), 0, 0)))  # wraps
    assert stream.counters.prox_lost == 2 and stream.drain().notes[0][1] == "stream_restart"


def test_a_node_that_runs_no_bytecode_is_polled_and_says_why() -> None:
    events = ("prox", "motor", "timer0", "timer1")
    with FakeAsebaNode(variables=_fake_layout(), local_events=events) as node:
        robot = ThymioRobot.open(node.listen())
        with robot:
            assert robot.mode == "poll" and "did not start the onboard program" in robot.mode_reason
            batch = robot.drain_stream()
            assert not batch.streaming and not batch.proximity
            note = batch.notes[0]
            assert note[1] == "robot_poll" and note[2].endswith("; polling variables")
            assert robot.read().proximity.shape == (7,)


def _fake_layout() -> list[tuple[str, int]]:
    from sim.virtual_thymio import THYMIO2_VARIABLES

    return list(THYMIO2_VARIABLES)


# --------------------------------------------------------------------------- playground


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    playground_or_skip()
    robots = [PlaygroundRobot("T1", free_port(), x_cm=50, y_cm=50, angle_rad=0.0)]
    with Playground(robots, workdir=tmp_path_factory.mktemp("pg")) as world:
        yield world


def test_playground_streams_every_refresh_for_a_minute(pg: Playground) -> None:
    with ThymioRobot.open(pg.url()) as robot:
        assert robot.mode == "stream", robot.mode_reason
        robot.set_wheel_targets(60, -60)  # turn on the spot: readings change
        robot.drain_stream()
        t0 = time.monotonic()
        prox, wheels = [], []
        while time.monotonic() - t0 < 60.0:
            time.sleep(0.2)
            batch = robot.drain_stream()
            prox += batch.proximity
            wheels += batch.wheels
        robot.stop()
        c = robot.stream.counters
    seqs = np.array([s.seq for s in prox])
    assert np.all(np.diff(seqs) == 1), "proximity counter not contiguous"
    assert c.prox_lost == 0 and c.wheels_lost == 0 and c.restarts == 0
    assert 590 <= len(prox) <= 610  # 10 Hz
    dt_ms = np.diff([s.t_ns for s in prox]) / 1e6
    assert 95 <= np.median(dt_ms) <= 105
    assert len(wheels) >= 40 * 60  # the wheel-speed event, 50 Hz asked (playground steps ~30 ms)
    assert np.abs(np.array([w.wheel_speed for w in wheels])).max() > 0


def test_playground_stops_the_wheels_after_the_host_is_killed(pg: Playground) -> None:
    stream = measure_stop_latency(pg.url())
    assert stream.host_mode == "stream"
    assert stream.latency_s is not None and stream.latency_s < 0.3, stream
    polled = measure_stop_latency(pg.url(), poll=True, wait_s=1.0)  # what the issue measured
    assert polled.host_mode == "poll" and polled.latency_s is None


def test_a_clean_close_stops_the_program(pg: Playground) -> None:
    with ThymioRobot.open(pg.url()) as robot:
        assert robot.streaming
        robot.set_wheel_targets(100, 100)
    time.sleep(0.5)  # the playground serves one client: let it notice the first one left
    with AsebaLink(pg.url()) as link:
        before = link.stats.user_events
        time.sleep(0.5)
        assert link.stats.user_events == before  # no program runs: the robot is idle
        values = link.read(["motor.left.target", "motor.right.target"])
        assert all(int(v[0]) == 0 for v in values.values())


def test_playgrounds_acc_is_recorded_as_it_reports_it(pg: Playground, tmp_path) -> None:
    """`record` against Aseba Playground: its `acc` event (about 16 Hz) streamed by the
    onboard program into the session's "acc" stream, the values those the playground
    itself reports for its `acc` variable (it models no gravity: (0, 0, 0) at rest)."""
    from robot_ssl.cli.main import main
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "pg_acc.h5"
    argv = ["record", str(out), "--robot", pg.url(), "--camera", "none", "--duration", "3"]
    assert main(argv) == 0
    time.sleep(0.5)  # the playground serves one client: let it notice the first one left
    with AsebaLink(pg.url()) as link:
        reported = [link.read(["acc"])["acc"].tolist() for _ in range(5)]
    with SessionReader(out) as r:
        acc = r.read("acc")
        events = r.read("events")
    assert acc is not None and events is not None
    n = len(acc.t_ns)
    rate_hz = (n - 1) / ((int(acc.t_ns[-1]) - int(acc.t_ns[0])) / 1e9)
    assert n >= 40 and 14.0 <= rate_hz <= 19.0, (n, rate_hz)
    assert all(v == reported[0] for v in reported)  # the playground holds it still
    assert acc.acc.tolist() == [reported[0]] * n
    assert not acc.tap.any()  # nothing tapped the playground's robot
    notes = [m.decode() for k, m in zip(events.kind, events.message) if k == b"robot_stream"]
    assert any("with acc and tap" in m for m in notes), notes


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("poll", [False, True])
def test_record_through_the_virtual_thymio(tmp_path, poll: bool) -> None:
    """`record` over a pty to the virtual Thymio: streamed by default (every 10 Hz refresh,
    at the simulator's refresh instants), polled with --poll; the session says which."""
    from robot_ssl.cli.main import main
    from robot_ssl.io.session import SessionReader

    out = tmp_path / "s.h5"
    args = ["record", str(out), "--robot", "sim:heldout_mixed", "--sim-link", "pty"]
    args += ["--camera", "none", "--duration", "3", "--drive", "wander"]
    assert main(args + (["--poll"] if poll else [])) == 0
    with SessionReader(out) as r:
        kinds = [e.kind for e in r.events()]
        t_prox = r.proximity()[0]
        assert r.metadata["robot_link"] == ("poll" if poll else "stream")
    assert ("robot_poll" if poll else "robot_stream") in kinds, kinds
    dt_ms = np.diff(t_prox) / 1e6
    assert 25 <= len(t_prox) <= 32
    assert 90 <= np.median(dt_ms) <= 110
    if not poll:
        assert "stream_gap" not in kinds
        assert np.abs(dt_ms - 100).max() < 15  # the refresh instants, not a polling schedule
