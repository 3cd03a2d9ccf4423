"""The onboard program's accelerometer and tap streams: assembled per node (with and
without `tap` / `acc`), run in the project's Aseba VM (sim/aseba_vm.py, faithful to vm.c)
and on the virtual Thymio's node, and parsed by ReadingStream into AccSamples."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge import protocol as p
from firmware_bridge.bytecode import disassemble, local_event_id
from firmware_bridge.link import NodeInfo, VariableInfo
from firmware_bridge.onboard import (
    EVENT_ACC,
    EVENT_HELLO,
    EVENT_PROX,
    EVENT_TAP,
    PROGRAM_VERSION,
    build_program,
)
from firmware_bridge.stream import ReadingStream
from sim.aseba_vm import AsebaVM
from sim.thymio_description import describe


def node_info(layout: str = "playground", drop_events=(), drop_variables=()) -> NodeInfo:
    """A Thymio II as its description says (sim/thymio_description.py), less some events
    or variables (a node of another firmware, a robot without an accelerometer)."""
    desc = describe(layout)
    variables = {
        name: VariableInfo(name, offset, size)
        for name, (offset, size) in desc.offsets().items()
        if name not in drop_variables
    }
    events = tuple(n for n, _ in desc.events if n not in drop_events)
    return NodeInfo(
        1, desc.name, 5, variables, desc.variables_size, desc.bytecode_size, desc.stack_size, events
    )


class Machine:
    """A VM with the node's memory running an uploaded onboard program: post local events
    by name, get what the program emits."""

    def __init__(self, node: NodeInfo) -> None:
        self.node = node
        self.memory = np.zeros(node.vm_variables_size, np.int16)
        self.sent: list[p.Message] = []
        self.vm = AsebaVM(
            self.memory,
            bytecode_size=node.bytecode_size,
            stack_size=node.stack_size,
            natives=(),
            emit=self.sent.append,
        )
        self.program = build_program(node)
        for msg in self.program.upload_messages(node.node_id):
            self.sent += self.vm.handle(msg)
        self.vm.run_events()

    def set(self, name: str, values) -> None:
        v = self.node.variables[name]
        self.memory[v.offset : v.offset + v.size] = values

    def fire(self, *events: str) -> list[p.UserEvent]:
        """Post `events` (local event names) one by one; the user events they emitted."""
        start = len(self.sent)
        for name in events:
            self.vm.post_event(local_event_id(self.node.local_events.index(name)))
            self.vm.run_events()
        return [m for m in self.sent[start:] if isinstance(m, p.UserEvent)]


def test_program_streams_acc_and_tap_on_both_thymio_layouts() -> None:
    for layout in ("playground", "firmware14"):
        node = node_info(layout)
        prog = build_program(node)
        assert prog.streams_acc and prog.streams_tap
        assert len(prog.words) <= node.bytecode_size
        assert node.named_words + prog.n_words <= node.vm_variables_size
        emits = [line for line in disassemble(prog.words) if " emit " in line]
        assert any(f"emit {EVENT_ACC} " in e and e.endswith("len 4") for e in emits), emits
        assert any(f"emit {EVENT_TAP} " in e and e.endswith("len 1") for e in emits), emits
    assert PROGRAM_VERSION == 2


def test_acc_events_carry_the_variable_and_a_counter() -> None:
    m = Machine(node_info())
    hello = [e for e in m.sent if isinstance(e, p.UserEvent) and e.type == EVENT_HELLO]
    assert hello and hello[0].values[0] == PROGRAM_VERSION
    m.set("acc", [3, -5, 22])
    first = m.fire("acc")
    m.set("acc", [-32, 32, 0])
    second = m.fire("acc")
    assert [(e.type, e.values) for e in first + second] == [
        (EVENT_ACC, (1, 3, -5, 22)),
        (EVENT_ACC, (2, -32, 32, 0)),
    ]
    taps = m.fire("tap", "tap")
    assert [(e.type, e.values) for e in taps] == [(EVENT_TAP, (1,)), (EVENT_TAP, (2,))]
    # the other streams are untouched
    assert [e.type for e in m.fire("prox")] == [EVENT_PROX]


def test_a_node_without_tap_still_streams_the_rest() -> None:
    node = node_info(drop_events=("tap",))
    m = Machine(node)
    assert m.program.streams_acc and not m.program.streams_tap
    assert not any(f"emit {EVENT_TAP} " in line for line in disassemble(m.program.words))
    m.set("acc", [1, 2, 3])
    sent = [(e.type, e.values) for e in m.fire("acc", "prox")]
    assert sent[0] == (EVENT_ACC, (1, 1, 2, 3)) and sent[1][0] == EVENT_PROX


def test_a_node_without_acc_event_or_variable_gets_a_shorter_working_program() -> None:
    full = build_program(node_info())
    for node in (
        node_info(drop_events=("acc",)),
        node_info(drop_events=("acc", "tap")),
        node_info(drop_variables=("acc",)),
    ):
        m = Machine(node)
        assert not m.program.streams_acc
        assert len(m.program.words) < len(full.words)
        assert not any(f"emit {EVENT_ACC} " in line for line in disassemble(m.program.words))
        assert [e.type for e in m.fire("prox")] == [EVENT_PROX]
        if "tap" in node.local_events:
            assert [e.type for e in m.fire("tap")] == [EVENT_TAP]


def test_stream_parses_acc_samples_and_flags_taps() -> None:
    stream = ReadingStream(node_id=1)
    feed = [
        (1, EVENT_ACC, (1, 0, 0, 22)),
        (2, EVENT_TAP, (1,)),
        (3, EVENT_ACC, (2, 5, -7, 30)),
        (4, EVENT_ACC, (3, 0, 0, 22)),
        (5, EVENT_TAP, (2,)),
        (6, EVENT_TAP, (3,)),  # two taps between two samples: one flag
        (7, EVENT_ACC, (4, -1, 0, 21)),
    ]
    for t, kind, values in feed:
        stream.on_user_event(t, 1, p.UserEvent(kind, values))
    stream.on_user_event(8, 2, p.UserEvent(EVENT_TAP, (9,)))  # another node's: ignored
    batch = stream.drain()
    assert [a.t_ns for a in batch.acc] == [1, 3, 4, 7]
    assert [a.tap for a in batch.acc] == [False, True, False, True]
    assert [a.seq for a in batch.acc] == [1, 2, 3, 4]
    assert batch.acc[1].acc.dtype == np.int16 and batch.acc[1].acc.tolist() == [5, -7, 30]
    assert stream.latest_acc is batch.acc[-1]
    c = stream.counters
    assert (c.acc, c.acc_lost, c.taps, c.taps_lost, c.restarts) == (4, 0, 3, 0, 0)
    assert not batch.notes and not batch.proximity and not batch.wheels


def test_stream_counts_lost_acc_and_tap_events() -> None:
    stream = ReadingStream(node_id=1)
    for t, kind, values in [
        (1, EVENT_ACC, (10, 0, 0, 22)),
        (2, EVENT_ACC, (13, 0, 0, 22)),  # 11, 12 lost
        (3, EVENT_TAP, (1,)),
        (4, EVENT_TAP, (4,)),  # taps 2, 3 lost
        (5, EVENT_ACC, (14, 0, 0, 22)),
        (6, EVENT_ACC, (1, 0, 0, 22)),  # the program was reloaded
    ]:
        stream.on_user_event(t, 1, p.UserEvent(kind, values))
    batch = stream.drain()
    c = stream.counters
    assert (c.acc_lost, c.taps_lost, c.restarts) == (2, 2, 1)
    assert [(k, m) for _, k, m in batch.notes] == [
        ("stream_gap", "2 acc event(s) lost on the link"),
        ("stream_gap", "2 tap event(s) lost on the link"),
        ("stream_restart", "acc counter restarted: program reloaded"),
    ]
    assert [a.tap for a in batch.acc] == [False, False, True, False]
    stream.on_user_event(7, 1, p.UserEvent(EVENT_TAP, (5,)))
    stream.restart()  # reconnection: a tap from before it does not mark the next sample
    stream.on_user_event(8, 1, p.UserEvent(EVENT_ACC, (1, 0, 0, 22)))
    assert [a.tap for a in stream.drain().acc] == [False]


def test_acc_event_survives_the_wire_with_negative_values() -> None:
    """Encoded as the firmware sends it, decoded as the link reads it, parsed."""
    frame = p.encode(p.UserEvent(EVENT_ACC, (-1, -32, 31, -1)), source=1)  # counter 65535
    [(source, msg)] = list(p.FrameDecoder().feed(frame))
    stream = ReadingStream(node_id=1)
    stream.on_user_event(5, source, msg)
    [sample] = stream.drain().acc
    assert sample.seq == 0xFFFF and sample.acc.tolist() == [-32, 31, -1] and not sample.tap


@pytest.mark.parametrize("layout", ["playground", "firmware14"])
def test_virtual_thymio_node_streams_the_simulators_acc_at_16_hz(layout: str) -> None:
    """The simulated Thymio (sim/virtual_thymio.py) runs the uploaded program: its `acc`
    event every 6th motor tick (100 Hz), the variable read from the simulator."""
    from sim.simulator import Simulator
    from sim.virtual_thymio import AsebaNode
    from sim.world import load_world

    sim = Simulator(load_world("arena_boxes"), seed=0, camera=None, start_pose=(0.0, -0.9, 0.0))
    node = AsebaNode(sim, layout=layout)
    sent: list[p.Message] = []
    node.subscribe(sent.append)
    prog = build_program(node_info(layout))
    for msg in prog.upload_messages(1):
        node.handle(msg)
    t0 = 1_000_000_000
    for k in range(301):  # 3 s of 10 ms motor ticks
        node.tick(t0 + k * 10_000_000)
    stream = ReadingStream(node_id=1)
    for msg in sent:
        if isinstance(msg, p.UserEvent):
            stream.on_user_event(0, 1, msg)
    acc = stream.drain().acc
    assert 48 <= len(acc) <= 51  # 100 / 6 Hz for 3 s
    assert stream.counters.acc_lost == 0
    expected = np.asarray(getattr(sim, "acc_units", (0, 0, 22)), np.int16)
    assert acc[-1].acc.tolist() == expected.tolist()
    assert 15 <= abs(int(acc[-1].acc[2])) <= 30  # gravity on z, about 23 per g


def test_virtual_thymio_fires_tap_when_the_simulated_body_bumps() -> None:
    """Driven into a wall, the simulator counts a tap; the node fires its `tap` event and
    the next acc sample carries the flag, after the true contact."""
    from sim.simulator import Simulator
    from sim.virtual_thymio import AsebaNode
    from sim.world import load_world

    sim = Simulator(
        load_world("arena_boxes"), seed=0, camera=None, start_pose=(0.0, -1.1, -np.pi / 2)
    )
    node = AsebaNode(sim)
    sent: list[p.Message] = []
    node.subscribe(sent.append)
    for msg in build_program(node_info()).upload_messages(1):
        node.handle(msg)
    lt = node.offsets["motor.left.target"][0]
    node.handle(p.SetVariables(1, lt, (400, 400)))  # as the host drives: straight ahead
    stream = ReadingStream(node_id=1)
    for _ in range(250):  # 2.5 s, node and simulator on one clock
        sim.advance_to(sim.t_ns + 10_000_000)
        start = len(sent)
        node.tick(sim.t_ns)
        for msg in sent[start:]:
            if isinstance(msg, p.UserEvent):
                stream.on_user_event(sim.t_ns, 1, msg)
    acc = stream.drain().acc
    assert sim.tap_count >= 1 and len(sim.contacts) >= 1
    assert stream.counters.taps == sim.tap_count
    tapped = [a.t_ns for a in acc if a.tap]
    assert len(tapped) == sim.tap_count
    assert 0 <= tapped[0] - sim.contacts[0].t_ns <= 100_000_000  # the next acc event: <= 60 ms
