"""The Python Aseba VM: unit tests of vm.c's semantics, then the same bytecode on the virtual
Thymio and on a real Aseba Playground giving the same messages, payload for payload."""

from __future__ import annotations

import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from playground import Playground, PlaygroundRobot, free_port, playground_or_skip

from firmware_bridge import protocol as p
from firmware_bridge.bytecode import (
    EVENT_INIT,
    Assembler,
    BinaryOp,
    UnaryOp,
    local_event_id,
    upload_messages,
)
from sim.aseba_vm import STANDARD_NATIVES, AsebaVM, NativeSpec
from sim.simulator import Simulator
from sim.virtual_thymio import AsebaNode, VirtualThymio
from sim.world import load_world

NATIVE = {spec.name: i for i, spec in enumerate(STANDARD_NATIVES)}
R = 100  # where the unit tests put their results


def make_vm(natives: Sequence[NativeSpec] = STANDARD_NATIVES) -> tuple[AsebaVM, list]:
    out: list[p.Message] = []
    vm = AsebaVM(np.zeros(586, np.int16), natives=natives, emit=out.append)
    return vm, out


def load(vm: AsebaVM, asm: Assembler, run: bool = True) -> list[p.Message]:
    """Upload like an IDE; returns the replies (EXECUTION_STATE_CHANGED...)."""
    replies = []
    for msg in upload_messages(1, asm.assemble()):
        if isinstance(msg, p.Run) and not run:
            break
        replies += vm.handle(msg)
    return replies


def init_program(body: Callable[[Assembler], None]) -> Assembler:
    a = Assembler()
    a.on(EVENT_INIT)
    body(a)
    a.stop()
    return a


def call_native(a: Assembler, index: int, params: Sequence[int], sizes: Sequence[int]) -> None:
    """Push as the compiler does: template sizes (last id first), then the parameters'
    addresses in reverse, so that the first parameter is on top (natives.c pops it first)."""
    for size in reversed(sizes):
        a.push(size)
    for addr in reversed(params):
        a.push(addr)
    a.native(index)


def s16(v: int) -> int:
    return ((v + 0x8000) & 0xFFFF) - 0x8000


def c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


# --------------------------------------------------------------------------- unit tests


CASES = [(30000, 30000), (-32768, -1), (-7, 2), (7, -2), (1, 15), (-1, 17), (5, -1), (3, 33)]


def expected(a: int, b: int, op: BinaryOp) -> int:
    """vm.c's binary operators on int16, as compiled for x86 (shift count mod 32)."""
    table = {
        BinaryOp.SHIFT_LEFT: lambda: a << (b & 31),
        BinaryOp.SHIFT_RIGHT: lambda: a >> (b & 31),
        BinaryOp.ADD: lambda: a + b,
        BinaryOp.SUB: lambda: a - b,
        BinaryOp.MULT: lambda: a * b,
        BinaryOp.DIV: lambda: c_div(a, b),
        BinaryOp.MOD: lambda: a - b * c_div(a, b),
        BinaryOp.BIT_OR: lambda: a | b,
        BinaryOp.BIT_XOR: lambda: a ^ b,
        BinaryOp.BIT_AND: lambda: a & b,
        BinaryOp.EQUAL: lambda: a == b,
        BinaryOp.NOT_EQUAL: lambda: a != b,
        BinaryOp.BIGGER_THAN: lambda: a > b,
        BinaryOp.BIGGER_EQUAL_THAN: lambda: a >= b,
        BinaryOp.SMALLER_THAN: lambda: a < b,
        BinaryOp.SMALLER_EQUAL_THAN: lambda: a <= b,
        BinaryOp.OR: lambda: bool(a) or bool(b),
        BinaryOp.AND: lambda: bool(a) and bool(b),
    }
    return s16(int(table[op]()))


def test_arithmetic_wraps_like_the_c_vm():
    def body(a: Assembler) -> None:
        k = 0
        for x, y in CASES:
            for op in BinaryOp:
                a.push(x)
                a.push(y)
                a.binary(op)
                a.store(R + k)
                k += 1
        for x in (0, -1, 32767, -32768, 5):
            for op in (UnaryOp.SUB, UnaryOp.ABS, UnaryOp.BIT_NOT):
                a.push(x)
                a.unary(op)
                a.store(R + k)
                k += 1
        a.emit(1, R, k)

    vm, out = make_vm()
    load(vm, init_program(body))
    vm.run_events(10_000)
    binary = [expected(x, y, op) for x, y in CASES for op in BinaryOp]
    unary = [
        s16(f(x)) for x in (0, -1, 32767, -32768, 5) for f in (lambda v: -v, abs, lambda v: ~v)
    ]
    assert out == [p.UserEvent(1, tuple(binary + unary))]
    # spot checks of the surprising ones
    assert expected(30000, 30000, BinaryOp.ADD) == -5536
    assert expected(-32768, -1, BinaryOp.DIV) == -32768  # 32768 truncated
    assert expected(-7, 2, BinaryOp.DIV) == -3 and expected(-7, 2, BinaryOp.MOD) == -1
    assert expected(1, 17, BinaryOp.SHIFT_LEFT) == 0 and expected(3, 33, BinaryOp.SHIFT_LEFT) == 6
    assert s16(abs(-32768)) == -32768
    assert vm.sp == -1 and not vm.active


def test_division_by_zero_stops_the_thread():
    vm, out = make_vm()
    prog = init_program(lambda a: (a.push(5), a.push(0), a.binary(BinaryOp.MOD), a.store(R)))
    load(vm, prog)
    vm.run_events()
    pc = 3 + 2  # table of 3 words, then push, push
    assert out == [p.DivisionByZero(pc)]
    assert vm.flags == 2  # STEP_BY_STEP only: the thread is gone
    assert vm.handle(p.GetExecutionState(1)) == [p.ExecutionStateChanged(pc + 1, 2)]


def test_indirect_access_out_of_bounds_reports_pc_size_index():
    def body(a: Assembler) -> None:
        a.push(3)
        a.push(6)
        a.store_indirect(R, 7)  # fine: R[6] = 3
        a.push(6)
        a.load_indirect(R, 7)
        a.store(R + 10)
        a.push(-1)
        a.load_indirect(R, 7)  # index -1 is 65535 unsigned

    vm, out = make_vm()
    load(vm, init_program(body))
    vm.run_events()
    assert vm.memory[R + 6] == 3 and vm.memory[R + 10] == 3
    assert out == [p.ArrayAccessOutOfBounds(3 + 9, 7, 65535)]
    assert not vm.active and vm.step_by_step
    vm, out = make_vm()
    load(vm, init_program(lambda a: (a.push(1), a.push(7), a.store_indirect(R, 7))))
    vm.run_events()
    assert out == [p.ArrayAccessOutOfBounds(5, 7, 7)] and vm.memory[R + 7] == 0


def test_branches_loops_and_the_when_bit():
    a = Assembler()
    a.on(EVENT_INIT)
    a.push(0)
    a.store(R)
    a.label("loop")  # R += 1 while R < 10, counting in R + 1
    a.load(R)
    a.push(10)
    a.branch(BinaryOp.SMALLER_THAN, "out")
    a.load(R)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(R)
    a.jump("loop")
    a.label("out")
    a.stop()
    a.on(5)  # user event 5: `when event.args[0] > 0` counts edges in R + 2
    a.load(2)
    a.push(0)
    a.branch(BinaryOp.BIGGER_THAN, "no", when=True)
    a.load(R + 2)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(R + 2)
    a.label("no")
    a.stop()
    vm, _ = make_vm()
    load(vm, a)
    vm.run_events()
    assert vm.memory[R] == 10
    for arg in (1, 1, 0, 1, 1, 1, 0, 0, 1):
        vm.handle(p.UserEvent(5, (arg,)), source=7)
        vm.run_events()
        assert vm.memory[1] == 7 and vm.memory[2] == arg  # event.source, event.args
    assert vm.memory[R + 2] == 3  # three false -> true edges
    vm.handle(p.UserEvent(5, (1,)))
    vm.run_events()
    assert vm.memory[R + 2] == 3  # still true: no edge
    vm.handle(p.Reset(1))  # RESET clears the was-true bits
    vm.handle(p.Run(1))
    vm.run_events()
    vm.handle(p.UserEvent(5, (1,)))
    vm.run_events()
    assert vm.memory[R + 2] == 4


def test_reset_clears_when_bits_only_from_twice_the_table_size():
    """vm.c's AsebaVMResetWhenFlags starts at 2 * bytecode[0] + 1, not at bytecode[0]: a
    `when` in the first words of code keeps its was-true bit over a RESET (asebaplayground
    does the same)."""
    a = Assembler()
    a.on(7)  # table of 3 words; code from 3; the scan starts at 7
    a.load(2)
    a.push(0)
    a.branch(BinaryOp.BIGGER_THAN, "no", when=True)  # at 5: skipped by the scan
    a.emit(1, 2, 1)
    a.label("no")
    a.stop()
    vm, out = make_vm()
    load(vm, a)
    for _ in range(2):
        vm.handle(p.UserEvent(7, (1,)))
        vm.run_events()
        vm.handle(p.Reset(1))
        vm.handle(p.Run(1))
    assert out == [p.UserEvent(1, (1,))]  # the edge fired once, the RESET did not re-arm it
    assert vm.bytecode[5] & (1 << 9)


def test_emit_subroutine_and_stack():
    a = Assembler()
    a.on(EVENT_INIT)
    a.push(21)
    a.store(R)
    a.call("double")
    a.call("double")
    a.emit(0x7AB, R, 2)
    a.stop()
    a.label("double")  # R + 1 = R * 2; R = R + 1
    a.load(R)
    a.push(2)
    a.binary(BinaryOp.MULT)
    a.store(R + 1)
    a.load(R + 1)
    a.store(R)
    a.ret()
    vm, out = make_vm()
    load(vm, a)
    assert vm.run_events() == 20
    assert out == [p.UserEvent(0x7AB, (84, 84))]


def test_natives_follow_natives_c():
    arr, arr2, divs, lo, hi, sq, k, dst = 300, 310, 320, 330, 340, 350, 360, 400

    def body(a: Assembler) -> None:
        for base, values in (
            (arr, [100, -200, 30000, 7]),
            (arr2, [3, 4, 30000, -7]),
            (divs, [7, -3, 2, 1]),
            (lo, [0, -100, 0, 10]),
            (hi, [50, 100, 20000, 20]),
            (sq, [0, 1, 32767, 10000]),
            (k, [-3, 2]),
        ):
            for i, v in enumerate(values):
                a.push(v)
                a.store(base + i)
        call_native(a, NATIVE["math.copy"], [dst, arr], [4])
        call_native(a, NATIVE["math.fill"], [dst + 4, k], [2])
        call_native(a, NATIVE["math.addscalar"], [dst + 6, arr, k], [4])
        call_native(a, NATIVE["math.add"], [dst + 10, arr, arr2], [4])
        call_native(a, NATIVE["math.sub"], [dst + 14, arr, arr2], [4])
        call_native(a, NATIVE["math.mul"], [dst + 18, arr, arr2], [4])
        call_native(a, NATIVE["math.div"], [dst + 22, arr, divs], [4])
        call_native(a, NATIVE["math.min"], [dst + 26, arr, arr2], [4])
        call_native(a, NATIVE["math.max"], [dst + 30, arr, arr2], [4])
        call_native(a, NATIVE["math.clamp"], [dst + 34, arr, lo, hi], [4])
        call_native(a, NATIVE["math.dot"], [dst + 38, arr, arr2, k + 1], [4])
        call_native(a, NATIVE["math.muldiv"], [dst + 39, arr, arr2, divs], [4])
        call_native(a, NATIVE["math.sqrt"], [dst + 43, sq], [4])
        call_native(a, NATIVE["math.rand"], [dst + 47], [3])
        call_native(a, NATIVE["math.copy"], [dst + 50, arr2], [4])
        call_native(a, NATIVE["math.sort"], [dst + 50], [4])
        call_native(a, NATIVE["math.stat"], [arr, dst + 54, dst + 55, dst + 56], [4])
        call_native(a, NATIVE["math.argbounds"], [arr, dst + 57, dst + 58], [4])
        call_native(a, NATIVE["deque.size"], [arr, dst + 59], [4])  # not modelled: pops only
        a.emit(3, dst, 60)

    vm, out = make_vm()
    load(vm, init_program(body))
    vm.run_events(10_000)
    a1, a2, d = [100, -200, 30000, 7], [3, 4, 30000, -7], [7, -3, 2, 1]
    rand, state = [], 0
    for _ in range(3):
        state = (25173 * state + 13849) & 0xFFFF
        rand.append(s16(state))
    want = (
        a1
        + [-3, -3]
        + [s16(x - 3) for x in a1]
        + [s16(x + y) for x, y in zip(a1, a2)]
        + [s16(x - y) for x, y in zip(a1, a2)]
        + [s16(x * y) for x, y in zip(a1, a2)]
        + [c_div(x, y) for x, y in zip(a1, d)]
        + [min(x, y) for x, y in zip(a1, a2)]
        + [max(x, y) for x, y in zip(a1, a2)]
        + [50, -100, 20000, 10]
        + [s16(sum(x * y for x, y in zip(a1, a2)) >> 2)]
        + [s16(c_div(x * y, z)) for x, y, z in zip(a1, a2, d)]
        + [0, 1, 181, 100]
        + rand
        + sorted(a2)
        + [-200, 30000, c_div(sum(a1), 4)]
        + [1, 2]
        + [0]
    )
    assert out == [p.UserEvent(3, tuple(want))]
    assert vm.sp == -1 and rand[0] == 13849


def test_unmodelled_natives_pop_their_arguments():
    leds = NativeSpec("leds.top", (1, 1, 1))
    wave = NativeSpec("sd.read", (-1, 1))  # one template: 2 params + 1 size
    vm, out = make_vm([*STANDARD_NATIVES, leds, wave])
    assert (leds.stack_words, wave.stack_words) == (3, 3)
    assert NativeSpec("deque.get", (-1, -2, 1)).stack_words == 5

    def body(a: Assembler) -> None:
        a.push(42)
        for _ in range(3):
            a.push(R)
        a.native(len(STANDARD_NATIVES))
        a.push(4)
        a.push(R)
        a.push(R)
        a.native(len(STANDARD_NATIVES) + 1)
        a.store(R)  # the 42 pushed first is what is left

    load(vm, init_program(body))
    vm.run_events()
    assert vm.memory[R] == 42 and vm.sp == -1 and out == []


def test_instruction_budget_and_event_queue():
    a = Assembler()
    a.on(EVENT_INIT)
    a.label("spin")  # an endless init
    a.load(R)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(R)
    a.jump("spin")
    a.on(local_event_id(6))  # prox: count
    a.load(R + 1)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(R + 1)
    a.stop()
    a.on(9)  # a user event: emits
    a.emit(9, R + 1, 1)
    a.stop()
    vm, out = make_vm()
    load(vm, a)
    assert vm.run_events(1000) == 1000 and vm.active
    assert vm.memory[R] == 200  # 5 instructions a turn
    assert vm.post_event(local_event_id(6)) and vm.post_event(local_event_id(6))
    assert not vm.post_event(local_event_id(7))  # no handler: dropped
    vm.run_events(1000)
    assert vm.memory[R] == 400 and vm.memory[R + 1] == 0  # local events wait (firmware)
    killed = vm.handle(p.UserEvent(9, ()))  # a user event kills the running thread
    assert len(killed) == 1 and isinstance(killed[0], p.EventExecutionKilled)
    vm.run_events(1000)
    assert out == [p.UserEvent(9, (0,))]
    assert vm.memory[R + 1] == 1  # the two posts ran once (pending flags), after the kill
    assert not vm.active and not vm.pending


def test_debug_messages_and_execution_states():
    a = init_program(lambda a: (a.push(1), a.store(R), a.push(2), a.store(R + 1)))
    vm, out = make_vm()
    replies = load(vm, a, run=False)
    assert replies == [p.ExecutionStateChanged(3, 3)] * 2  # SET_BYTECODE resets, RESET too
    assert vm.handle(p.Step(1)) == [p.ExecutionStateChanged(4, 3)]
    assert vm.run_events() == 0  # paused
    assert vm.handle(p.Step(2)) == []  # not for this node
    assert vm.handle(p.Run(1)) == [p.ExecutionStateChanged(4, 1)]
    assert vm.run_events() == 4 and vm.memory[R + 1] == 2
    assert vm.handle(p.GetExecutionState(1)) == [p.ExecutionStateChanged(7, 0)]
    assert vm.handle(p.Pause(1)) == [p.ExecutionStateChanged(7, 2)]
    assert vm.handle(p.Stop(1)) == [p.ExecutionStateChanged(7, 2)]
    empty = Assembler()
    empty.stop()
    assert load(vm, empty, run=False)[-1] == p.ExecutionStateChanged(7, 2)  # no init: no thread
    assert out == []


def test_breakpoints_pause_the_thread():
    a = init_program(lambda a: (a.push(1), a.store(R), a.push(2), a.store(R + 1)))
    vm, out = make_vm()
    load(vm, a, run=False)
    bp = p.RawMessage(0xA008, bytes([1, 0, 5, 0]))
    assert vm.handle(bp) == [p.RawMessage(0x900B, bytes([5, 0, 1, 0]))]
    vm.handle(p.Run(1))
    vm.run_events()
    assert out == [p.ExecutionStateChanged(5, 2 | 1 | 4)] and vm.memory[R] == 1
    vm.handle(p.RawMessage(0xA00A, bytes([1, 0])))
    vm.handle(p.Run(1))
    vm.run_events()
    assert vm.memory[R + 1] == 2


def test_asserts_become_node_specific_errors():
    vm, out = make_vm()
    a = init_program(lambda a: [a.push(1) for _ in range(33)])
    load(vm, a)
    vm.run_events()
    assert len(out) == 1 and out[0].type == p.MessageType.NODE_SPECIFIC_ERROR
    assert b"stack overflow" in out[0].payload
    assert vm.flags == 2
    vm, out = make_vm()
    load(vm, init_program(lambda a: a.native(999)))
    vm.run_events()
    assert b"unknown native function" in out[0].payload


# --------------------------------------------------------------------------- in the node


def make_sim() -> Simulator:
    return Simulator(load_world("arena_boxes"), seed=0, camera=None, start_pose=(0.0, -0.9, 0.0))


def node_program(node: AsebaNode) -> Assembler:
    """timer0 every 50 ms drives the left motor (and counts), prox and motor events count."""
    timer, _ = node.offsets["timer.period"]
    left, _ = node.offsets["motor.left.target"]
    a = Assembler()
    a.on(EVENT_INIT)
    a.push(50)
    a.store(timer)
    a.stop()
    for name, counter in (("timer0", R), ("prox", R + 1), ("motor", R + 2)):
        a.on(node.event_ids[name])
        a.load(counter)
        a.push(1)
        a.binary(BinaryOp.ADD)
        a.store(counter)
        if name == "timer0":
            a.push(123)
            a.store(left)
        if name == "prox":
            a.emit(4, counter, 1)
        a.stop()
    return a


def test_node_refreshes_and_fires_events_on_its_own_clock():
    sim = make_sim()
    node = AsebaNode(sim)
    t0, now = 10**12, [10**12]
    node.clock = lambda: now[0]  # the time messages are handled at
    seen: list[p.Message] = []
    node.subscribe(seen.append)
    for msg in upload_messages(1, node_program(node).assemble()):
        assert node.handle(msg) == []  # the VM's answers go to the subscribers
    assert seen[-1] == p.ExecutionStateChanged(node.vm.event_address(EVENT_INIT), 1)
    prox_at = 0
    for k in range(101):  # one second in 10 ms ticks
        now[0] = t0 + k * 10_000_000
        node.tick(now[0])
        if k == 50:  # between refreshes GET_VARIABLES returns the last refresh
            start, size = node.offsets["prox.horizontal"]
            values = node.handle(p.GetVariables(1, start, size))[0].values
            assert values == node.prox_updates[-1][1]
            prox_at = len(node.prox_updates)
    times = [t for t, _ in node.prox_updates]
    assert len(times) == 10 and prox_at == 5
    assert all(b - a == 100_000_000 for a, b in itertools.pairwise(times))
    assert 0 <= (times[0] - t0) < 100_000_000  # the node's own phase
    assert node.memory[R + 1] == 10 and node.memory[R + 2] == 101
    assert node.memory[R] == 20  # timer0 every 50 ms over one second
    assert sim.robot.targets == (123, 0)  # the bytecode drove the motor
    assert [m.values[0] for m in seen if isinstance(m, p.UserEvent)] == list(range(1, 11))
    node.handle(p.Reset(1))  # RESET: power-on variables (targets, timers, counters) again
    node.tick(t0 + 2 * 10**9)
    assert node.memory[R] == 0 and sim.robot.targets == (0, 0)


def test_vm_messages_reach_every_client():
    sim = make_sim()
    with VirtualThymio(sim) as vt:
        _, port = vt.serve_tcp("127.0.0.1", 0)
        pty_path = vt.serve_pty()
        clients = [Peer(port), Peer(port)]
        fd = os.open(pty_path, os.O_RDWR | os.O_NOCTTY)
        try:
            words = node_program(vt.node).assemble()
            for msg in upload_messages(1, words):
                clients[0].send(msg)
            for c in clients:
                c.wait(lambda c=c: len(c.user_events(4)) >= 3)
            decoder, got, deadline = p.FrameDecoder(), [], time.monotonic() + 3
            while time.monotonic() < deadline and sum(isinstance(m, p.UserEvent) for m in got) < 3:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    got += [m for _, m in decoder.feed(os.read(fd, 4096))]
            assert sum(isinstance(m, p.UserEvent) and m.type == 4 for m in got) >= 3
            assert any(isinstance(m, p.ExecutionStateChanged) for m in got)
            assert any(isinstance(m, p.ExecutionStateChanged) for m in clients[1].since(0))
        finally:
            os.close(fd)
            for c in clients:
                c.close()


# --------------------------------------------------------------------------- vs Playground

ARITH_CASES = [(30000, 30000), (-32768, -1), (-7, 2), (-1, 33)]
UNARY_CASES = [0, -1, 32767, -32768, 5]
SWEEP_VALUES = [0, 1, -1, 2, -3, 7, -8, 15, 16, 17, 31, 32, 33, 255, -256, 1000, -1000]
SWEEP_VALUES += [32767, -32768, 12345, -4096]
PAIRS_PER_EVENT = 4
EV_OUT_OF_BOUNDS, EV_DIVIDE = 30, 31
EV_ARITH, EV_ARRAYS, EV_NATIVES, EV_PROX, EV_WHEN, EV_SWEEP_IN, EV_SWEEP_OUT = (
    1,
    2,
    3,
    10,
    11,
    20,
    21,
)
# variable memory used by the program (all peers have 586 words, 74 named)
RES, ARR, ARR2, CONST, NAT, T_IN, T_OUT, IDX = 100, 200, 210, 220, 240, 310, 311, 312
SA, SB, SI, SWEEP_T, CNT, COMPARED = 320, 321, 322, 330, 400, (100, 360)


def conformance_program(native: dict[str, int], args_addr: int, prox_event: int) -> list[int]:
    """Init: every operator on constants, loops over arrays (indirect stores and loads, a
    subroutine), natives; emits the results. A prox handler emits a counter (and its
    `when` edges); a user event runs every operator on pairs of its arguments."""
    a = Assembler()
    a.on(EVENT_INIT)
    a.push(0)
    a.store(CNT)
    k = 0
    for x, y in ARITH_CASES:
        for op in BinaryOp:
            a.push(x)
            a.push(y)
            a.binary(op)
            a.store(RES + k)
            k += 1
    for x in UNARY_CASES:
        for uop in (UnaryOp.SUB, UnaryOp.ABS, UnaryOp.BIT_NOT):
            a.push(x)
            a.unary(uop)
            a.store(RES + k)
            k += 1
    a.emit(EV_ARITH, RES, k)

    a.push(0)  # ARR[i] = i * i * 1000 - 5000 (wraps for i >= 6)
    a.store(IDX)
    a.label("fill")
    a.load(IDX)
    a.push(8)
    a.branch(BinaryOp.SMALLER_THAN, "filled")
    a.load(IDX)
    a.load(IDX)
    a.binary(BinaryOp.MULT)
    a.push(1000)
    a.binary(BinaryOp.MULT)
    a.push(5000)
    a.binary(BinaryOp.SUB)
    a.load(IDX)
    a.store_indirect(ARR, 8)
    a.load(IDX)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(IDX)
    a.jump("fill")
    a.label("filled")
    a.push(0)  # ARR2[7 - i] = f(ARR[i]) with a subroutine
    a.store(IDX)
    a.label("copy")
    a.load(IDX)
    a.push(8)
    a.branch(BinaryOp.SMALLER_THAN, "copied")
    a.load(IDX)
    a.load_indirect(ARR, 8)
    a.store(T_IN)
    a.call("f")
    a.load(T_OUT)
    a.push(7)
    a.load(IDX)
    a.binary(BinaryOp.SUB)
    a.store_indirect(ARR2, 8)
    a.load(IDX)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(IDX)
    a.jump("copy")
    a.label("copied")
    a.emit(EV_ARRAYS, ARR, 16)

    for i, v in enumerate([7, -3, 2, 1, 0, -100, 50, 100, 3, 32767, 10000, 9]):
        a.push(v)
        a.store(CONST + i)
    divs, lo, hi, shift, sq = CONST, CONST + 4, CONST + 6, CONST + 8, CONST + 9

    def nat(name: str, params: list[int], size: int) -> None:
        call_native(a, native[name], params, [size])

    nat("math.copy", [NAT, ARR], 4)
    nat("math.fill", [NAT + 4, CONST + 11], 3)
    nat("math.addscalar", [NAT + 7, ARR, CONST + 1], 4)
    nat("math.add", [NAT + 11, ARR, ARR2], 4)
    nat("math.sub", [NAT + 15, ARR, ARR2], 4)
    nat("math.mul", [NAT + 19, ARR + 4, ARR2 + 4], 4)
    nat("math.div", [NAT + 23, ARR, divs], 4)
    nat("math.min", [NAT + 27, ARR, ARR2], 4)
    nat("math.max", [NAT + 31, ARR, ARR2], 4)
    nat("math.clamp", [NAT + 35, ARR, lo, hi], 2)
    nat("math.dot", [NAT + 37, ARR, ARR2, shift], 8)
    nat("math.muldiv", [NAT + 38, ARR, ARR2, divs], 4)
    nat("math.sqrt", [NAT + 42, sq], 3)
    nat("math.rand", [NAT + 45], 3)
    nat("math.copy", [NAT + 48, ARR2], 8)
    nat("math.sort", [NAT + 48], 8)
    nat("math.stat", [ARR2, NAT + 56, NAT + 57, NAT + 58], 8)
    nat("math.argbounds", [ARR2, NAT + 59, NAT + 60], 8)
    a.emit(EV_NATIVES, NAT, 61)
    a.stop()

    a.label("f")  # T_OUT = T_IN * 3 + 12345
    a.load(T_IN)
    a.push(3)
    a.binary(BinaryOp.MULT)
    a.push(12345)
    a.binary(BinaryOp.ADD)
    a.store(T_OUT)
    a.ret()

    a.on(prox_event)
    a.load(CNT)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(CNT)
    a.emit(EV_PROX, CNT, 1)
    a.load(CNT)
    a.push(3)
    a.binary(BinaryOp.BIT_AND)
    a.push(2)
    a.branch(BinaryOp.BIGGER_EQUAL_THAN, "no_edge", when=True)
    a.emit(EV_WHEN, CNT, 1)
    a.label("no_edge")
    a.stop()

    a.on(EV_SWEEP_IN)  # args: PAIRS_PER_EVENT pairs (a, b)
    a.push(0)
    a.store(SI)
    a.label("pair")
    a.load(SI)
    a.push(PAIRS_PER_EVENT)
    a.branch(BinaryOp.SMALLER_THAN, "pairs_done")
    for dst, low_bit in ((SA, 0), (SB, 1)):
        a.load(SI)
        a.push(1)
        a.binary(BinaryOp.SHIFT_LEFT)
        a.push(low_bit)
        a.binary(BinaryOp.BIT_OR)
        a.load_indirect(args_addr, 32)
        a.store(dst)
        a.load(dst)
        a.store(SWEEP_T + low_bit)
    for j, op in enumerate(BinaryOp):
        if op == BinaryOp.DIV:
            a.load(SB)
            a.push(0)
            a.branch(BinaryOp.NOT_EQUAL, "by_zero")
        a.load(SA)
        a.load(SB)
        a.binary(op)
        a.store(SWEEP_T + 2 + j)
        if op == BinaryOp.MOD:
            a.jump("divided")
            a.label("by_zero")
            a.push(0)
            a.store(SWEEP_T + 2 + BinaryOp.DIV)
            a.push(0)
            a.store(SWEEP_T + 2 + BinaryOp.MOD)
            a.label("divided")
    for j, uop in enumerate((UnaryOp.SUB, UnaryOp.ABS, UnaryOp.BIT_NOT)):
        a.load(SA)
        a.unary(uop)
        a.store(SWEEP_T + 20 + j)
    a.emit(EV_SWEEP_OUT, SWEEP_T, 23)
    a.load(SI)
    a.push(1)
    a.binary(BinaryOp.ADD)
    a.store(SI)
    a.jump("pair")
    a.label("pairs_done")
    a.stop()

    a.on(EV_OUT_OF_BOUNDS)  # errors, last: they stop the VM
    a.load(args_addr)
    a.load_indirect(ARR, 8)
    a.store(SA)
    a.stop()
    a.on(EV_DIVIDE)
    a.push(1)
    a.load(args_addr)
    a.binary(BinaryOp.DIV)
    a.store(SA)
    a.stop()
    return a.assemble()


class Peer:
    """A raw TCP client of one Aseba node: every frame it receives, time-stamped."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(0.1)
        self.received: list[tuple[int, int, p.Message]] = []  # (t_ns, source, message)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.send(p.ListNodes())
        self.wait(lambda: any(isinstance(m, p.NodePresent) for _, _, m in self.received))
        self.node_id = next(s for _, s, m in self.received if isinstance(m, p.NodePresent))
        self.send(p.GetNodeDescription(self.node_id))
        self.wait(lambda: any(isinstance(m, p.Description) for _, _, m in self.received))
        head = next(m for _, _, m in self.received if isinstance(m, p.Description))
        n = head.num_named_variables + head.num_local_events + head.num_native_functions
        self.wait(lambda: len(self.received) >= 2 + n)
        msgs = [m for _, _, m in self.received]
        self.events = [m.name for m in msgs if isinstance(m, p.LocalEventDescription)]
        self.natives = [m.name for m in msgs if isinstance(m, p.NativeFunctionDescription)]
        named = [(m.name, m.size) for m in msgs if isinstance(m, p.NamedVariableDescription)]
        sizes = [size for _, size in named]
        self.offsets = {name: int(sum(sizes[:i])) for i, (name, _) in enumerate(named)}
        self.variables_size = head.variables_size

    def _read(self) -> None:
        decoder = p.FrameDecoder()
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            now = time.monotonic_ns()
            with self._cond:
                self.received += [(now, source, msg) for source, msg in decoder.feed(data)]
                self._cond.notify_all()

    def send(self, msg: p.Message) -> None:
        self.sock.sendall(p.encode(msg))

    def wait(self, cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(cond, timeout_s), "the peer did not answer in time"

    def mark(self) -> int:
        with self._cond:
            return len(self.received)

    def since(self, mark: int) -> list[p.Message]:
        with self._cond:
            return [m for _, _, m in self.received[mark:]]

    def user_events(self, event_type: int, mark: int = 0) -> list[tuple[int, tuple[int, ...]]]:
        """(t_ns, values) of the user events `event_type` received since `mark`."""
        with self._cond:
            got = self.received[mark:]
        return [
            (t, m.values) for t, _, m in got if isinstance(m, p.UserEvent) and m.type == event_type
        ]

    def read_memory(self, start: int, count: int, chunk: int = 100) -> list[int]:
        """GET_VARIABLES in chunks that fit one reply frame."""
        out: list[int] = []
        for s in range(start, start + count, chunk):
            n = min(chunk, start + count - s)
            mark = self.mark()
            self.send(p.GetVariables(self.node_id, s, n))
            self.wait(lambda mark=mark, n=n: _words(self.since(mark)) >= n)
            out += [w for m in self.since(mark) if isinstance(m, p.Variables) for w in m.values]
        return out

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(timeout=2)


def _words(msgs: list[p.Message]) -> int:
    return sum(len(m.values) for m in msgs if isinstance(m, p.Variables))


@pytest.mark.playground
def test_same_bytecode_same_events_on_virtual_thymio_and_playground():
    playground_or_skip()
    robots = [PlaygroundRobot("vm", free_port(), x_cm=50, y_cm=30, angle_rad=0.0)]
    sim = Simulator(load_world("arena_boxes"), seed=0, camera=None, start_pose=(0.0, -0.9, 0.0))
    with Playground(robots) as pg, VirtualThymio(sim) as vt:
        _, vport = vt.serve_tcp("127.0.0.1", 0)
        peers = {"playground": Peer(pg.robots[0].port), "virtual": Peer(vport)}
        try:
            _compare(peers)
        finally:
            for peer in peers.values():
                peer.close()


def _compare(peers: dict[str, Peer]) -> None:
    ref, virt = peers["playground"], peers["virtual"]
    assert ref.natives == virt.natives and ref.events == virt.events
    assert ref.offsets == virt.offsets and ref.variables_size == virt.variables_size
    native = {name: i for i, name in enumerate(ref.natives)}
    words = conformance_program(
        native, ref.offsets["event.args"], local_event_id(ref.events.index("prox"))
    )
    # init must finish within one 1000-step run (Playground kills it at the next event)
    probe = AsebaVM(np.zeros(ref.variables_size, np.int16), natives=STANDARD_NATIVES)
    for msg in upload_messages(1, words):
        probe.handle(msg)
    assert probe.run_events(1000) < 1000 and not probe.active

    upload = upload_messages(ref.node_id, words)
    n_states = len(upload) - 1  # one EXECUTION_STATE_CHANGED per SET_BYTECODE and RESET
    marks = {name: peer.mark() for name, peer in peers.items()}
    for peer in peers.values():
        for msg in upload[:-1]:
            peer.send(msg)
    states = {}
    for name, peer in peers.items():
        peer.wait(lambda peer=peer, m=marks[name]: _states(peer.since(m)) >= n_states)
        states[name] = peer.since(marks[name])
    assert states["virtual"] == states["playground"]
    assert len(states["virtual"]) == n_states

    marks = {name: peer.mark() for name, peer in peers.items()}
    for peer in peers.values():
        peer.send(upload[-1])  # RUN
    for name, peer in peers.items():
        peer.wait(lambda peer=peer, m=marks[name]: len(peer.user_events(EV_NATIVES, m)) == 1)
    first = {name: peer.since(marks[name])[0] for name, peer in peers.items()}
    assert isinstance(first["virtual"], p.ExecutionStateChanged)
    assert first["virtual"] == first["playground"]
    for ev in (EV_ARITH, EV_ARRAYS, EV_NATIVES):
        got = {
            name: [v for _, v in peer.user_events(ev, marks[name])] for name, peer in peers.items()
        }
        assert len(got["virtual"]) == 1
        assert got["virtual"] == got["playground"], f"event {ev}"

    pairs = [(x, y) for x in SWEEP_VALUES for y in SWEEP_VALUES]
    while len(pairs) % PAIRS_PER_EVENT:
        pairs.append((0, 1))
    for peer in peers.values():
        for i in range(0, len(pairs), PAIRS_PER_EVENT):
            args = tuple(v for pair in pairs[i : i + PAIRS_PER_EVENT] for v in pair)
            peer.send(p.UserEvent(EV_SWEEP_IN, args))
    sweeps = {}
    for name, peer in peers.items():
        peer.wait(
            lambda peer=peer, m=marks[name]: len(peer.user_events(EV_SWEEP_OUT, m)) >= len(pairs),
            timeout_s=10,
        )
        sweeps[name] = [v for _, v in peer.user_events(EV_SWEEP_OUT, marks[name])]
    assert [v[:2] for v in sweeps["playground"]] == pairs
    assert sweeps["virtual"] == sweeps["playground"]

    lo, hi = COMPARED
    memory = {name: peer.read_memory(lo, hi - lo) for name, peer in peers.items()}
    assert memory["virtual"] == memory["playground"]

    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and min(len(peer.user_events(EV_PROX, marks[name])) for name, peer in peers.items()) < 25
    ):
        time.sleep(0.1)
    for name, peer in peers.items():
        prox = peer.user_events(EV_PROX, marks[name])
        counts = [v[0] for _, v in prox]
        assert len(counts) >= 25 and counts == list(range(1, len(counts) + 1)), name
        rate_hz = (len(prox) - 2) / ((prox[-1][0] - prox[1][0]) / 1e9)  # the first may be late
        assert 8.5 <= rate_hz <= 11.5, f"{name}: prox events at {rate_hz:.1f} Hz"
        edges = [v[0] for _, v in peer.user_events(EV_WHEN, marks[name])]
        assert edges == [c for c in counts if c % 4 == 2], name

    for event, arg, cls in (
        (EV_OUT_OF_BOUNDS, -3, p.ArrayAccessOutOfBounds),
        (EV_DIVIDE, 0, p.DivisionByZero),
    ):
        errors = {}
        for name, peer in peers.items():
            mark = peer.mark()
            peer.send(p.UserEvent(event, (arg,)))
            peer.wait(
                lambda peer=peer, mark=mark, cls=cls: any(
                    isinstance(m, cls) for m in peer.since(mark)
                )
            )
            errors[name] = [m for m in peer.since(mark) if isinstance(m, cls)]
            peer.send(p.Run(peer.node_id))  # the error paused the VM
        assert errors["virtual"] == errors["playground"] and len(errors["virtual"]) == 1


def _states(msgs: list[p.Message]) -> int:
    return sum(isinstance(m, p.ExecutionStateChanged) for m in msgs)
