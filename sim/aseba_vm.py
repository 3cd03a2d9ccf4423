"""An Aseba virtual machine in Python, faithful to Aseba's `vm/vm.c` and `vm/natives.c`.

It runs the bytecode a host uploads (SET_BYTECODE), answers the debug messages (RESET, RUN,
PAUSE, STEP, STOP, GET_EXECUTION_STATE -> EXECUTION_STATE_CHANGED [pc, flags], breakpoints)
and reports errors as the C VM does (ARRAY_ACCESS_OUT_OF_BOUNDS, DIVISION_BY_ZERO,
EVENT_EXECUTION_KILLED). Arithmetic wraps to int16 like the C VM compiled for x86 (Aseba
Playground): operands are promoted to 32-bit int, shift counts taken modulo 32, division
truncates toward zero, results are truncated to 16 bits.

Where the C VM would corrupt memory or where Playground aborts (ASEBA_ASSERT: stack
overflow/underflow, variable or bytecode index out of range, unknown opcode or operator),
this VM stops the thread and sends NODE_SPECIFIC_ERROR [pc, reason] like the Thymio
firmware's AsebaAssert (which sends "VM ASSERT !").

Events, as in the Thymio II firmware (`run_aseba_main_loop` in aseba-target-thymio2):
local events are pending flags (posting one twice before it runs runs it once); when no
thread is active the pending one with the lowest local index runs next (event.source =
node id); a running thread is never interrupted by a local event. It runs in slices of
`run_events(max_instructions)` and continues in the next slice if unfinished (the
firmware calls AsebaVMRun(vm, 1000) in a loop). A user event from the network sets up its
handler at once, killing the running thread (EVENT_EXECUTION_KILLED [pc]), as vm.c's
AsebaVMSetupEvent does. RESET clears the pending events (the firmware's AsebaVMResetCB)
and calls `on_reset`. (Aseba Playground differs: it starts each local event at once,
killing a running thread, and drops local events while paused in a thread.)

Natives are taken by index from the node's description (`NativeSpec`: name, parameter
sizes). math.* follow natives.c (math.rand: its 16-bit LCG, unseeded as in Playground);
math.sin/cos/atan2/rot2 use rounded floats where the firmware interpolates tables (a unit
or two apart); deque.* and the Thymio's own natives (leds, sound, sd, ...) only pop their
arguments.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from firmware_bridge import protocol as p
from firmware_bridge.bytecode import (
    EVENT_INIT,
    IF_IS_WHEN_BIT,
    IF_WAS_TRUE_BIT,
    BinaryOp,
    Op,
    UnaryOp,
    VMFlag,
    instruction_words,
)

__all__ = [
    "MAX_BREAKPOINTS",
    "STANDARD_NATIVES",
    "AsebaVM",
    "NativeSpec",
    "node_specific_error",
]

MAX_BREAKPOINTS = 16  # ASEBA_MAX_BREAKPOINTS in vm.h
BREAKPOINT_SET = 0xA008  # message types the protocol codec keeps raw
BREAKPOINT_CLEAR = 0xA009
BREAKPOINT_CLEAR_ALL = 0xA00A
BREAKPOINT_SET_RESULT = 0x900B

ACTIVE = int(VMFlag.EVENT_ACTIVE)
STEP_BY_STEP = int(VMFlag.STEP_BY_STEP)
RUNNING = int(VMFlag.EVENT_RUNNING)
WAS_TRUE = 1 << IF_WAS_TRUE_BIT
IS_WHEN = 1 << IF_IS_WHEN_BIT


@dataclass(frozen=True)
class NativeSpec:
    """A native function as a node describes it: name and parameter sizes in words
    (negative: a template size, the same id meaning the same size)."""

    name: str
    parameter_sizes: tuple[int, ...] = ()

    @property
    def stack_words(self) -> int:
        """Words a call pops: one address per parameter, one size per distinct template."""
        return len(self.parameter_sizes) + len({s for s in self.parameter_sizes if s < 0})

    @classmethod
    def from_description(cls, desc: p.NativeFunctionDescription) -> NativeSpec:
        """The spec of a NATIVE_FUNCTION_DESCRIPTION message."""
        return cls(desc.name, tuple(param.size for param in desc.parameters))


STANDARD_NATIVES: tuple[NativeSpec, ...] = tuple(
    NativeSpec(name, sizes)
    for name, sizes in (
        ("math.copy", (-1, -1)),
        ("math.fill", (-1, 1)),
        ("math.addscalar", (-1, -1, 1)),
        ("math.add", (-1, -1, -1)),
        ("math.sub", (-1, -1, -1)),
        ("math.mul", (-1, -1, -1)),
        ("math.div", (-1, -1, -1)),
        ("math.min", (-1, -1, -1)),
        ("math.max", (-1, -1, -1)),
        ("math.clamp", (-1, -1, -1, -1)),
        ("math.dot", (1, -1, -1, 1)),
        ("math.stat", (-1, 1, 1, 1)),
        ("math.argbounds", (-1, 1, 1)),
        ("math.sort", (-1,)),
        ("math.muldiv", (-1, -1, -1, -1)),
        ("math.atan2", (-1, -1, -1)),
        ("math.sin", (-1, -1)),
        ("math.cos", (-1, -1)),
        ("math.rot2", (2, 2, 1)),
        ("math.sqrt", (-1, -1)),
        ("math.rand", (-1,)),
        ("deque.size", (-1, 1)),
        ("deque.get", (-1, -2, 1)),
        ("deque.set", (-1, -2, 1)),
        ("deque.insert", (-1, -2, 1)),
        ("deque.erase", (-1, 1, 1)),
        ("deque.push_front", (-1, -2)),
        ("deque.push_back", (-1, -2)),
        ("deque.pop_front", (-1, -2)),
        ("deque.pop_back", (-1, -2)),
    )
)
"""The standard natives of Aseba 1.6 (ASEBA_NATIVES_STD_DESCRIPTIONS), in index order;
a Thymio's own natives follow them."""


def node_specific_error(pc: int, text: str) -> p.RawMessage:
    """NODE_SPECIFIC_ERROR [pc u16][length u8][text] (the codec keeps this type raw)."""
    raw = text.encode("utf-8")[:255]
    payload = struct.pack("<HB", pc & 0xFFFF, len(raw)) + raw
    return p.RawMessage(int(p.MessageType.NODE_SPECIFIC_ERROR), payload)


class _Assert(Exception):
    """Internal: the C VM would assert here (Playground aborts); reported in-band."""


def _s16(value: int) -> int:
    return ((value + 0x8000) & 0xFFFF) - 0x8000


def _s32(value: int) -> int:
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _cdiv(a: int, b: int) -> int:
    """C integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


class AsebaVM:
    """One Aseba VM over `memory` (int16 variables, shared with the node that owns it).

    `emit` receives every message the VM sends on its own (user events, errors, state
    changes while running events); `handle` returns the ones a host message causes.
    Not thread-safe: the owner serialises calls.
    """

    def __init__(
        self,
        memory: np.ndarray,
        *,
        node_id: int = 1,
        bytecode_size: int = 1534,
        stack_size: int = 32,
        natives: Sequence[NativeSpec] = STANDARD_NATIVES,
        emit: Callable[[p.Message], None] | None = None,
        source_addr: int = 1,
        args_size: int = 32,
        rand_seed: int = 0,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        """`source_addr` is event.source (event.args follow it, `args_size` words);
        `rand_seed` the state of math.rand's LCG (Playground never seeds it: 0)."""
        if memory.dtype != np.int16 or memory.ndim != 1:
            raise TypeError("memory must be a 1-D int16 array")
        self.memory = memory
        self.node_id = node_id
        self.bytecode = [0] * bytecode_size
        self.stack = [0] * stack_size
        self.pc = 0
        self.sp = -1
        self.flags = 0
        self.breakpoints: list[int] = []
        self.natives = tuple(natives)
        self._impls = [_NATIVE_IMPLS.get(n.name, _pop_only(n)) for n in self.natives]
        self._emit = emit or (lambda msg: None)
        self._sink = self._emit
        self.source_addr = source_addr
        self.args_size = args_size
        self.rand_state = rand_seed & 0xFFFF
        self.on_reset = on_reset
        self.pending: set[int] = set()  # local event ids waiting for the VM

    # ---------------------------------------------------------------- state

    @property
    def active(self) -> bool:
        """A thread (event handler) is being executed."""
        return bool(self.flags & ACTIVE)

    @property
    def step_by_step(self) -> bool:
        """Paused: instructions run only on STEP."""
        return bool(self.flags & STEP_BY_STEP)

    def _send(self, msg: p.Message) -> None:
        self._sink(msg)

    def _state(self) -> None:
        self._send(p.ExecutionStateChanged(self.pc & 0xFFFF, self.flags))

    def event_address(self, event_id: int) -> int:
        """Handler address of `event_id` in the vector table, 0 if it has none."""
        bc = self.bytecode
        size = min(bc[0], len(bc) - 1)
        for i in range(1, size, 2):
            if bc[i] == event_id:
                return bc[i + 1]
        return 0

    def setup_event(self, event_id: int) -> int:
        """Start the handler of `event_id` (killing a running one); its address, or 0."""
        address = self.event_address(event_id)
        if address:
            if self.flags & ACTIVE:
                self._send(p.EventExecutionKilled(self.pc & 0xFFFF))
            self.pc = address
            self.sp = -1
            self.flags |= ACTIVE
            if self.flags & STEP_BY_STEP:
                self._state()
        return address

    # ---------------------------------------------------------------- events

    def post_event(self, event_id: int) -> bool:
        """Queue an event (a local one: LOCAL_EVENTS_START - index) for `run_events`;
        False (and dropped) when the program has no handler for it."""
        if not self.event_address(event_id):
            return False
        self.pending.add(event_id)
        return True

    def run_events(self, max_instructions: int = 1000) -> int:
        """Run pending events and the active thread for at most `max_instructions`;
        returns how many ran. Nothing runs in step-by-step mode."""
        done = 0
        while done < max_instructions:
            if not self.flags & ACTIVE:
                if not self.pending:
                    break
                event_id = max(self.pending)  # lowest local index first, like ffs()
                self.pending.discard(event_id)
                self._write(self.source_addr, self.node_id)
                self.setup_event(event_id)
                continue
            if self.flags & STEP_BY_STEP:
                break
            done += self._run(max_instructions - done)
        return done

    # ---------------------------------------------------------------- host messages

    def handle(self, msg: p.Message, source: int = 0) -> list[p.Message]:
        """Apply one message from a host (frame source `source`); the messages it causes."""
        out: list[p.Message] = []
        self._sink = out.append
        try:
            self._handle(msg, source)
        finally:
            self._sink = self._emit
        return out

    def _handle(self, msg: p.Message, source: int) -> None:
        if isinstance(msg, p.UserEvent):
            if not (self.flags & STEP_BY_STEP and self.flags & ACTIVE):
                self._write(self.source_addr, source)
                for i, v in enumerate(msg.values[: self.args_size]):
                    self._write(self.source_addr + 1 + i, v)
                self.setup_event(msg.type)
            return
        dest = getattr(msg, "dest", None)
        if isinstance(msg, p.RawMessage):
            self._handle_breakpoints(msg)
            return
        if dest != self.node_id:
            return
        if isinstance(msg, p.SetBytecode):
            end = msg.start + len(msg.words)
            if end > len(self.bytecode):
                self._send(node_specific_error(self.pc, "out of bytecode bounds"))
                return
            self.bytecode[msg.start : end] = [w & 0xFFFF for w in msg.words]
            self._reset()  # vm.c falls through from SET_BYTECODE to RESET
        elif isinstance(msg, p.Reset):
            self._reset()
        elif isinstance(msg, p.Run):
            self.flags &= ~STEP_BY_STEP
            self._state()
        elif isinstance(msg, p.Pause):
            self.flags |= STEP_BY_STEP
            self._state()
        elif isinstance(msg, p.Step):
            if self.flags & ACTIVE:
                self._step_guarded()
                self._state()
        elif isinstance(msg, p.Stop):
            self.flags = STEP_BY_STEP
            self._state()
        elif isinstance(msg, p.GetExecutionState):
            self._state()

    def _reset(self) -> None:
        self.flags = STEP_BY_STEP
        self._reset_when_flags()
        self.pending.clear()
        if self.on_reset is not None:
            self.on_reset()
        if self.setup_event(EVENT_INIT) == 0:
            self._state()

    def _reset_when_flags(self) -> None:
        """Clear the was-true bit of every conditional branch, scanning from word
        2 * table size + 1 as vm.c does (that start skips the first words of code and can
        land inside an instruction: reproduced, not fixed)."""
        bc = self.bytecode
        pc = bc[0] * 2 + 1
        n = len(bc)
        while pc < n:
            word = bc[pc]
            if word >> 12 == Op.CONDITIONAL_BRANCH:
                bc[pc] = word & ~WAS_TRUE
            pc += instruction_words(word)

    def _handle_breakpoints(self, msg: p.RawMessage) -> None:
        words = struct.unpack(f"<{len(msg.payload) // 2}H", msg.payload[: len(msg.payload) & ~1])
        if not words or words[0] != self.node_id:
            return
        if msg.type == BREAKPOINT_SET and len(words) >= 2:
            pc = words[1]
            ok = int(len(self.breakpoints) < MAX_BREAKPOINTS and pc < len(self.bytecode))
            if ok:
                self.breakpoints.append(pc)
            payload = struct.pack("<HH", pc, ok)
            self._send(p.RawMessage(BREAKPOINT_SET_RESULT, payload))
        elif msg.type == BREAKPOINT_CLEAR and len(words) >= 2:
            if words[1] in self.breakpoints:
                self.breakpoints.remove(words[1])
        elif msg.type == BREAKPOINT_CLEAR_ALL:
            self.breakpoints.clear()

    # ---------------------------------------------------------------- execution

    def _run(self, limit: int) -> int:
        """AsebaDebugBareRun / AsebaDebugBreakpointRun with a step limit."""
        self.flags |= RUNNING
        n = 0
        bps = self.breakpoints
        while self.flags & ACTIVE and self.flags & RUNNING and n < limit:
            if bps and self.pc in bps:
                self.flags |= STEP_BY_STEP
                self._state()
                return n
            self._step_guarded()
            n += 1
        self.flags &= ~RUNNING
        return n

    def _step_guarded(self) -> None:
        pc = self.pc
        try:
            self._step()
        except _Assert as e:
            self.flags = STEP_BY_STEP
            self._send(node_specific_error(pc, str(e)))

    def _fetch(self, addr: int) -> int:
        if not 0 <= addr < len(self.bytecode):
            raise _Assert("out of bytecode bounds")
        return self.bytecode[addr]

    def _read(self, addr: int) -> int:
        if not 0 <= addr < len(self.memory):
            raise _Assert("out of variables bounds")
        return self.memory.item(addr)

    def _write(self, addr: int, value: int) -> None:
        if not 0 <= addr < len(self.memory):
            raise _Assert("out of variables bounds")
        self.memory[addr] = _s16(int(value))

    def _push(self, value: int) -> None:
        if self.sp + 1 >= len(self.stack):
            raise _Assert("stack overflow")
        self.sp += 1
        self.stack[self.sp] = _s16(value)

    def _pop(self) -> int:
        if self.sp < 0:
            raise _Assert("stack underflow")
        self.sp -= 1
        return self.stack[self.sp + 1]

    def _need(self, words: int) -> None:
        if self.sp + 1 < words:
            raise _Assert("stack underflow")

    def _jump_to(self, target: int) -> None:
        if not 0 <= target < len(self.bytecode):
            raise _Assert("out of bytecode bounds")
        self.pc = target

    def _step(self) -> None:
        """AsebaVMStep: execute the instruction at pc."""
        pc = self.pc
        word = self._fetch(pc)
        op = word >> 12
        imm = word & 0x0FFF
        if op == Op.STOP:
            self.flags &= ~ACTIVE
        elif op == Op.SMALL_IMMEDIATE:
            self._push((imm ^ 0x800) - 0x800)
            self.pc = pc + 1
        elif op == Op.LARGE_IMMEDIATE:
            self._push(self._fetch(pc + 1))
            self.pc = pc + 2
        elif op == Op.LOAD:
            self._push(self._read(imm))
            self.pc = pc + 1
        elif op == Op.STORE:
            if imm >= len(self.memory):
                raise _Assert("out of variables bounds")
            self._write(imm, self._pop())
            self.pc = pc + 1
        elif op == Op.LOAD_INDIRECT:
            self._need(1)
            size = self._fetch(pc + 1)
            index = self.stack[self.sp] & 0xFFFF
            if index >= size:
                self._out_of_bounds(pc, size, index)
                return
            self.stack[self.sp] = self._read(imm + index)
            self.pc = pc + 2
        elif op == Op.STORE_INDIRECT:
            self._need(2)
            size = self._fetch(pc + 1)
            value = self.stack[self.sp - 1]
            index = self.stack[self.sp] & 0xFFFF
            if index >= size:
                self._out_of_bounds(pc, size, index)
                return
            self._write(imm + index, value)
            self.sp -= 2
            self.pc = pc + 2
        elif op == Op.UNARY_ARITHMETIC:
            self._need(1)
            self.stack[self.sp] = self._unary(self.stack[self.sp], word & 0xFF)
            self.pc = pc + 1
        elif op == Op.BINARY_ARITHMETIC:
            self._need(2)
            a, b = self.stack[self.sp - 1], self.stack[self.sp]
            result = self._binary(a, b, word & 0xFF)
            self.sp -= 1
            self.stack[self.sp] = result
            self.pc = pc + 1
        elif op == Op.JUMP:
            self._jump_to(pc + ((imm ^ 0x800) - 0x800))
        elif op == Op.CONDITIONAL_BRANCH:
            self._need(2)
            a, b = self.stack[self.sp - 1], self.stack[self.sp]
            result = self._binary(a, b, word & 0xFF)
            self.sp -= 2
            if result and not (word & IS_WHEN and word & WAS_TRUE):
                disp = 2
            else:
                disp = _s16(self._fetch(pc + 1))
            self.bytecode[pc] = (word | WAS_TRUE) if result else (word & ~WAS_TRUE)
            self._jump_to(pc + disp)
        elif op == Op.EMIT:
            start = self._fetch(pc + 1)
            length = self._fetch(pc + 2)
            if length > p.MAX_PAYLOAD_WORDS:
                raise _Assert("tried to emit a buffer too long")
            if start + length > len(self.memory):
                raise _Assert("out of variables bounds")
            values = tuple(self.memory[start : start + length].tolist())
            self._send(p.UserEvent(imm, values))
            self.pc = pc + 3
        elif op == Op.NATIVE_CALL:
            if imm >= len(self._impls):
                raise _Assert(f"unknown native function {imm}")
            self._impls[imm](self)
            self.pc = pc + 1
        elif op == Op.SUB_CALL:
            self._push(pc + 1)
            self.pc = imm
        elif op == Op.SUB_RET:
            self.pc = self._pop() & 0xFFFF
        else:
            raise _Assert("unknown bytecode")

    def _out_of_bounds(self, pc: int, size: int, index: int) -> None:
        self.flags = STEP_BY_STEP
        self._send(p.ArrayAccessOutOfBounds(pc, size, index))

    def _division_by_zero(self) -> int:
        self.flags = STEP_BY_STEP
        self._send(p.DivisionByZero(self.pc & 0xFFFF))
        return 0

    def _unary(self, value: int, op: int) -> int:
        if op == UnaryOp.SUB:
            return _s16(-value)
        if op == UnaryOp.ABS:
            return _s16(abs(value))
        if op == UnaryOp.BIT_NOT:
            return ~value
        raise _Assert("unknown unary operator")

    def _binary(self, a: int, b: int, op: int) -> int:
        """AsebaVMDoBinaryOperation on int16 operands (x86 semantics for shifts)."""
        if op == BinaryOp.ADD:
            return _s16(a + b)
        if op == BinaryOp.SUB:
            return _s16(a - b)
        if op == BinaryOp.MULT:
            return _s16(a * b)
        if op == BinaryOp.SHIFT_LEFT:
            return _s16(a << (b & 31))
        if op == BinaryOp.SHIFT_RIGHT:
            return _s16(a >> (b & 31))
        if op in (BinaryOp.DIV, BinaryOp.MOD):
            if b == 0:
                return self._division_by_zero()
            q = _cdiv(a, b)
            return _s16(q if op == BinaryOp.DIV else a - b * q)
        if op == BinaryOp.BIT_OR:
            return a | b
        if op == BinaryOp.BIT_XOR:
            return a ^ b
        if op == BinaryOp.BIT_AND:
            return a & b
        if op in _COMPARE:
            return int(_COMPARE[op](a, b))
        if op == BinaryOp.OR:
            return int(bool(a) or bool(b))
        if op == BinaryOp.AND:
            return int(bool(a) and bool(b))
        raise _Assert("unknown binary operator")

    # ---------------------------------------------------------------- native support

    def pop_arg(self) -> int:
        """AsebaNativePopArg: the next argument (a variable address or a template size)."""
        return self._pop() & 0xFFFF

    def var(self, addr: int) -> int:
        """Variable `addr` (signed)."""
        return self._read(addr)

    def set_var(self, addr: int, value: int) -> None:
        """Store `value` truncated to int16 at variable `addr`."""
        self._write(addr, value)

    def random(self) -> int:
        """AsebaGetRandom: the next state of the 16-bit LCG (unsigned)."""
        self.rand_state = (25173 * self.rand_state + 13849) & 0xFFFF
        return self.rand_state

    def native_error(self, text: str) -> None:
        """AsebaVMEmitNodeSpecificError: stop and report `text`."""
        self.flags = STEP_BY_STEP
        self._send(node_specific_error(self.pc, text))

    def division_by_zero(self) -> None:
        """What math.div and math.muldiv do on a zero divisor."""
        self._division_by_zero()


_COMPARE: dict[int, Callable[[int, int], bool]] = {
    BinaryOp.EQUAL: lambda a, b: a == b,
    BinaryOp.NOT_EQUAL: lambda a, b: a != b,
    BinaryOp.BIGGER_THAN: lambda a, b: a > b,
    BinaryOp.BIGGER_EQUAL_THAN: lambda a, b: a >= b,
    BinaryOp.SMALLER_THAN: lambda a, b: a < b,
    BinaryOp.SMALLER_EQUAL_THAN: lambda a, b: a <= b,
}

# --------------------------------------------------------------------------- natives
# Each pops its arguments in parameter order (first parameter on top of the stack), then
# one size per distinct template id (-1, -2, ...), as natives.c does.

Native = Callable[[AsebaVM], None]


def _pop_only(spec: NativeSpec) -> Native:
    """A native this VM does not model (leds, sound, ...): pop its arguments, do nothing."""
    count = spec.stack_words

    def native(vm: AsebaVM) -> None:
        for _ in range(count):
            vm.pop_arg()

    return native


def _elementwise(n_src: int, fn: Callable[..., int]) -> Native:
    """dest[i] = fn(src1[i], ...) for natives whose parameters all share template -1."""

    def native(vm: AsebaVM) -> None:
        dest = vm.pop_arg()
        srcs = [vm.pop_arg() for _ in range(n_src)]
        length = vm.pop_arg()
        for i in range(length):
            vm.set_var(dest + i, fn(*(vm.var(s + i) for s in srcs)))

    return native


def _math_fill(vm: AsebaVM) -> None:
    dest, value, length = vm.pop_arg(), vm.pop_arg(), vm.pop_arg()
    for i in range(length):
        vm.set_var(dest + i, vm.var(value))


def _math_addscalar(vm: AsebaVM) -> None:
    dest, src, scalar, length = (vm.pop_arg() for _ in range(4))
    k = vm.var(scalar)
    for i in range(length):
        vm.set_var(dest + i, vm.var(src + i) + k)


def _math_div(vm: AsebaVM) -> None:
    dest, src1, src2, length = (vm.pop_arg() for _ in range(4))
    for i in range(length):
        b = vm.var(src2 + i)
        if b == 0:
            vm.division_by_zero()
            return
        vm.set_var(dest + i, _cdiv(vm.var(src1 + i), b))


def _math_muldiv(vm: AsebaVM) -> None:
    dest, a, b, c, length = (vm.pop_arg() for _ in range(5))
    for i in range(length):
        divisor = vm.var(c + i)
        if divisor == 0:
            vm.division_by_zero()
            return
        vm.set_var(dest + i, _cdiv(vm.var(a + i) * vm.var(b + i), divisor))


def _math_dot(vm: AsebaVM) -> None:
    dest, src1, src2 = vm.pop_arg(), vm.pop_arg(), vm.pop_arg()
    shift = vm.var(vm.pop_arg())
    length = vm.pop_arg()
    if shift > 32:
        vm.set_var(dest, 0)
        return
    acc = 0
    for i in range(length):
        acc = _s32(acc + vm.var(src1 + i) * vm.var(src2 + i))
    vm.set_var(dest, acc >> (shift & 31))  # x86 takes the count modulo 32


def _math_stat(vm: AsebaVM) -> None:
    src, lo, hi, mean, length = (vm.pop_arg() for _ in range(5))
    if length:
        values = [vm.var(src + i) for i in range(length)]
        vm.set_var(lo, min(values))
        vm.set_var(hi, max(values))
        vm.set_var(mean, _cdiv(sum(values), length))


def _math_argbounds(vm: AsebaVM) -> None:
    src, argmin, argmax, length = (vm.pop_arg() for _ in range(4))
    lo, hi = 32767, -32768
    for i in range(length):
        v = vm.var(src + i)
        if v < lo:
            lo = v
            vm.set_var(argmin, i)
        if v > hi:
            hi = v
            vm.set_var(argmax, i)


def _math_sort(vm: AsebaVM) -> None:
    src, length = vm.pop_arg(), vm.pop_arg()
    for i, v in enumerate(sorted(vm.var(src + k) for k in range(length))):
        vm.set_var(src + i, v)


def _math_sqrt(vm: AsebaVM) -> None:
    dest, src, length = vm.pop_arg(), vm.pop_arg(), vm.pop_arg()
    for i in range(length):
        x = vm.var(src + i)
        if x < 0:
            vm.native_error("Negative input to sqrt")
            return
        vm.set_var(dest + i, math.isqrt(x))


def _sin(angle: int) -> int:
    """sin of an angle spanning the int16 range, as 1.15 fixed point (rounded float: the
    firmware interpolates a table and may differ by a unit or two)."""
    return max(-32767, min(32767, round(32767 * math.sin(angle * math.pi / 32768))))


def _atan2(y: int, x: int) -> int:
    """atan2 as an int16 angle (rounded float; the firmware's table may differ slightly)."""
    if y == 0:
        return 0 if x >= 0 else -32768
    return _s16(round(math.atan2(y, x) * 32768 / math.pi))


def _math_rot2(vm: AsebaVM) -> None:
    dest, src, angle = vm.pop_arg(), vm.pop_arg(), vm.pop_arg()
    x, y, a = vm.var(src), vm.var(src + 1), vm.var(angle)
    c, s = _sin(_s16(a + 16384)), _sin(a)
    vm.set_var(dest, (c * x - s * y) >> 15)
    vm.set_var(dest + 1, (c * y + s * x) >> 15)


def _math_rand(vm: AsebaVM) -> None:
    dest, length = vm.pop_arg(), vm.pop_arg()
    for i in range(length):
        vm.set_var(dest + i, vm.random())


_NATIVE_IMPLS: dict[str, Native] = {
    "math.copy": _elementwise(1, lambda a: a),
    "math.fill": _math_fill,
    "math.addscalar": _math_addscalar,
    "math.add": _elementwise(2, lambda a, b: a + b),
    "math.sub": _elementwise(2, lambda a, b: a - b),
    "math.mul": _elementwise(2, lambda a, b: a * b),
    "math.div": _math_div,
    "math.min": _elementwise(2, min),
    "math.max": _elementwise(2, max),
    "math.clamp": _elementwise(3, lambda v, lo, hi: hi if v > hi else (lo if v < lo else v)),
    "math.dot": _math_dot,
    "math.stat": _math_stat,
    "math.argbounds": _math_argbounds,
    "math.sort": _math_sort,
    "math.muldiv": _math_muldiv,
    "math.atan2": _elementwise(2, _atan2),
    "math.sin": _elementwise(1, _sin),
    "math.cos": _elementwise(1, lambda a: _sin(_s16(a + 16384))),
    "math.rot2": _math_rot2,
    "math.sqrt": _math_sqrt,
    "math.rand": _math_rand,
}
"""Natives modelled by name; any other described native only pops its arguments."""
