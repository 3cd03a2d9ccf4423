"""Aseba bytecode: opcodes, a small assembler, a disassembler and the upload sequence.

Pure computation, like `protocol`. Constants follow Aseba's `common/consts.h` (protocol 5);
instruction layouts follow `vm/vm.c`. A program is a list of unsigned 16-bit words:
word 0 is the size of the event vector table in words (1 + 2 per handler), then
(event id, handler address) pairs, then code. An instruction's top 4 bits are its opcode,
the low 12 bits an immediate (a signed value, a displacement or an address); some take one
or two more words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from firmware_bridge import protocol as p

__all__ = [
    "EVENT_INIT",
    "IF_IS_WHEN_BIT",
    "IF_WAS_TRUE_BIT",
    "LOCAL_EVENTS_START",
    "MAX_ADDRESS",
    "Assembler",
    "BinaryOp",
    "BytecodeError",
    "Op",
    "UnaryOp",
    "VMFlag",
    "disassemble",
    "instruction_words",
    "local_event_id",
    "upload_messages",
]

EVENT_INIT = 0xFFFF  # ASEBA_EVENT_INIT: runs after RESET (and at boot)
LOCAL_EVENTS_START = 0xFFFE  # ASEBA_EVENT_LOCAL_EVENTS_START: local event i is 0xFFFE - i
IF_IS_WHEN_BIT = 8  # in a conditional branch: a `when` (true only on a false -> true edge)
IF_WAS_TRUE_BIT = 9  # in a conditional branch: the condition was true last time
MAX_ADDRESS = 0x0FFF  # the largest 12-bit immediate address
SET_BYTECODE_CHUNK_WORDS = p.MAX_PAYLOAD_WORDS - 2  # a payload also holds dest and start


class BytecodeError(ValueError):
    """A program cannot be assembled (undefined label, target out of range, bad operand)."""


class Op(IntEnum):
    """Opcodes: the top 4 bits of an instruction word (AsebaBytecodeId)."""

    STOP = 0x0
    SMALL_IMMEDIATE = 0x1
    LARGE_IMMEDIATE = 0x2
    LOAD = 0x3
    STORE = 0x4
    LOAD_INDIRECT = 0x5
    STORE_INDIRECT = 0x6
    UNARY_ARITHMETIC = 0x7
    BINARY_ARITHMETIC = 0x8
    JUMP = 0x9
    CONDITIONAL_BRANCH = 0xA
    EMIT = 0xB
    NATIVE_CALL = 0xC
    SUB_CALL = 0xD
    SUB_RET = 0xE


class BinaryOp(IntEnum):
    """Binary operators (AsebaBinaryOperator), the low byte of BINARY_ARITHMETIC and of
    CONDITIONAL_BRANCH. Comparisons and OR/AND give 0 or 1."""

    SHIFT_LEFT = 0x0
    SHIFT_RIGHT = 0x1
    ADD = 0x2
    SUB = 0x3
    MULT = 0x4
    DIV = 0x5
    MOD = 0x6
    BIT_OR = 0x7
    BIT_XOR = 0x8
    BIT_AND = 0x9
    EQUAL = 0xA
    NOT_EQUAL = 0xB
    BIGGER_THAN = 0xC
    BIGGER_EQUAL_THAN = 0xD
    SMALLER_THAN = 0xE
    SMALLER_EQUAL_THAN = 0xF
    OR = 0x10
    AND = 0x11


class UnaryOp(IntEnum):
    """Unary operators (AsebaUnaryOperator). NOT exists only in the compiler: the VM
    treats it as unknown."""

    SUB = 0x0
    ABS = 0x1
    BIT_NOT = 0x2
    NOT = 0x3


class VMFlag(IntFlag):
    """Bits of the VM state flags reported by EXECUTION_STATE_CHANGED (AsebaExecutionStates)."""

    EVENT_ACTIVE = 0x1  # a thread (event handler) is being executed
    STEP_BY_STEP = 0x2  # paused: instructions run only on STEP
    EVENT_RUNNING = 0x4  # inside the run loop (cleared to leave it early)


def local_event_id(index: int) -> int:
    """The event id of local event `index` (its position in the node's description)."""
    if not 0 <= index < LOCAL_EVENTS_START:
        raise BytecodeError(f"local event index out of range: {index}")
    return LOCAL_EVENTS_START - index


_WORDS = {
    Op.LARGE_IMMEDIATE: 2,
    Op.LOAD_INDIRECT: 2,
    Op.STORE_INDIRECT: 2,
    Op.CONDITIONAL_BRANCH: 2,
    Op.EMIT: 3,
}


def instruction_words(word: int) -> int:
    """How many words the instruction starting with `word` occupies (1, 2 or 3)."""
    return _WORDS.get(word >> 12, 1)


def _signed12(value: int) -> int:
    return ((value & 0x0FFF) ^ 0x0800) - 0x0800


def _signed16(value: int) -> int:
    return ((value & 0xFFFF) ^ 0x8000) - 0x8000


def _check(value: int, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise BytecodeError(f"{what} must be in {low}..{high}, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class _Fixup:
    """A word that depends on a label: `kind` says how (jump, branch or call)."""

    index: int  # where in the code the word is
    instr: int  # code offset of the instruction it belongs to
    kind: str
    label: str


class Assembler:
    """Build a program instruction by instruction; `assemble()` resolves labels and prepends
    the event vector table. Addresses given to `on` and `label` are taken at the current
    position; jumps and branches are relative, calls absolute, as in vm.c."""

    def __init__(self) -> None:
        self._code: list[int] = []
        self._labels: dict[str, int] = {}  # name -> code offset
        self._handlers: list[tuple[int, int]] = []  # (event id, code offset)
        self._fixups: list[_Fixup] = []

    @property
    def offset(self) -> int:
        """Current position in words from the start of the code (after the vector table)."""
        return len(self._code)

    # ---------------------------------------------------------------- structure

    def on(self, event_id: int) -> None:
        """Start the handler of `event_id` here (EVENT_INIT, local_event_id(i) or a user event)."""
        _check(event_id, 0, 0xFFFF, "event id")
        if any(e == event_id for e, _ in self._handlers):
            raise BytecodeError(f"event {event_id:#06x} already has a handler")
        self._handlers.append((event_id, self.offset))

    def label(self, name: str) -> None:
        """Define `name` at the current position."""
        if name in self._labels:
            raise BytecodeError(f"label {name!r} defined twice")
        self._labels[name] = self.offset

    # ---------------------------------------------------------------- instructions

    def push(self, value: int) -> None:
        """Push a constant: one word if it fits 12-bit signed, else two (0..65535 wraps)."""
        _check(value, -0x8000, 0xFFFF, "immediate")
        if -0x800 <= value <= 0x7FF:
            self._code.append((Op.SMALL_IMMEDIATE << 12) | (value & 0x0FFF))
        else:
            self._code += [Op.LARGE_IMMEDIATE << 12, value & 0xFFFF]

    def load(self, addr: int) -> None:
        """Push variable `addr`."""
        self._code.append((Op.LOAD << 12) | _check(addr, 0, MAX_ADDRESS, "variable address"))

    def store(self, addr: int) -> None:
        """Pop into variable `addr`."""
        self._code.append((Op.STORE << 12) | _check(addr, 0, MAX_ADDRESS, "variable address"))

    def load_indirect(self, addr: int, size: int) -> None:
        """Replace the index on top of the stack by array[index] (array of `size` at `addr`)."""
        self._code += [
            (Op.LOAD_INDIRECT << 12) | _check(addr, 0, MAX_ADDRESS, "array address"),
            _check(size, 0, 0xFFFF, "array size"),
        ]

    def store_indirect(self, addr: int, size: int) -> None:
        """Pop the index (top) and the value below it; array[index] = value."""
        self._code += [
            (Op.STORE_INDIRECT << 12) | _check(addr, 0, MAX_ADDRESS, "array address"),
            _check(size, 0, 0xFFFF, "array size"),
        ]

    def unary(self, op: UnaryOp) -> None:
        """Apply `op` to the top of the stack."""
        self._code.append((Op.UNARY_ARITHMETIC << 12) | _check(int(op), 0, 0xFF, "unary op"))

    def binary(self, op: BinaryOp) -> None:
        """Pop b (top) and a; push a `op` b."""
        self._code.append((Op.BINARY_ARITHMETIC << 12) | _check(int(op), 0, 0xFF, "binary op"))

    def jump(self, label: str) -> None:
        """Jump to `label` (12-bit signed displacement)."""
        self._fix("jump", label, 1)

    def branch(self, op: BinaryOp, else_label: str, when: bool = False) -> None:
        """Pop b and a; if not (a `op` b) jump to `else_label`, else go on. With `when`, the
        condition counts as true only if it was false the previous time (an edge)."""
        _check(int(op), 0, 0xFF, "binary op")
        head = (Op.CONDITIONAL_BRANCH << 12) | (int(when) << IF_IS_WHEN_BIT) | int(op)
        self._code.append(head)
        self._fix("branch", else_label, 1, instr=self.offset - 1)

    def emit(self, event_id: int, addr: int, length_words: int) -> None:
        """Send user event `event_id` with `length_words` variables from `addr`."""
        _check(event_id, 0, MAX_ADDRESS, "emitted event id")
        _check(length_words, 0, p.MAX_PAYLOAD_WORDS, "emit length")
        self._code += [
            (Op.EMIT << 12) | event_id,
            _check(addr, 0, 0xFFFF, "emit address"),
            length_words,
        ]

    def native(self, function_index: int) -> None:
        """Call native function `function_index` (its arguments are on the stack)."""
        self._code.append(
            (Op.NATIVE_CALL << 12) | _check(function_index, 0, MAX_ADDRESS, "native index")
        )

    def call(self, label: str) -> None:
        """Call the subroutine at `label` (absolute 12-bit address; pushes the return address)."""
        self._fix("call", label, 1)

    def ret(self) -> None:
        """Return from a subroutine (pops the return address)."""
        self._code.append(Op.SUB_RET << 12)

    def stop(self) -> None:
        """End the handler."""
        self._code.append(Op.STOP << 12)

    def _fix(self, kind: str, label: str, words: int, instr: int | None = None) -> None:
        here = self.offset
        self._fixups.append(_Fixup(here, here if instr is None else instr, kind, label))
        self._code += [0] * words

    # ---------------------------------------------------------------- output

    def assemble(self) -> list[int]:
        """The whole program (vector table + code) as unsigned 16-bit words."""
        base = 1 + 2 * len(self._handlers)
        words = [base]
        for event_id, offset in self._handlers:
            words += [event_id, base + offset]
        code = list(self._code)
        for fix in self._fixups:
            if fix.label not in self._labels:
                raise BytecodeError(f"undefined label {fix.label!r}")
            target = self._labels[fix.label]
            disp = target - fix.instr
            if fix.kind == "jump":
                if not -0x800 <= disp <= 0x7FF:
                    raise BytecodeError(f"jump to {fix.label!r} out of 12-bit range ({disp})")
                code[fix.index] = (Op.JUMP << 12) | (disp & 0x0FFF)
            elif fix.kind == "branch":
                code[fix.index] = disp & 0xFFFF  # code is far below 32768 words
            else:
                address = base + target
                if address > MAX_ADDRESS:
                    raise BytecodeError(f"call target {fix.label!r} at {address} beyond 4095")
                code[fix.index] = (Op.SUB_CALL << 12) | address
        return words + code


def disassemble(words: list[int] | tuple[int, ...]) -> list[str]:
    """One line per vector table entry and per instruction: `ADDR: mnemonic operands`."""
    n = len(words)
    if n == 0:
        return []
    table = words[0]
    lines = [f"{0:04d}: vectors {table}"]
    for i in range(1, min(table, n) - 1, 2):
        lines.append(f"{i:04d}: event {words[i]:#06x} -> {words[i + 1]}")
    pc = max(table, 1)
    while pc < n:
        word = words[pc]
        size = instruction_words(word)
        extra = [words[pc + k] if pc + k < n else None for k in range(1, size)]
        lines.append(f"{pc:04d}: {_mnemonic(pc, word, extra)}")
        pc += size
    return lines


def _mnemonic(pc: int, word: int, extra: list[int | None]) -> str:
    op, imm = word >> 12, word & 0x0FFF
    if None in extra:
        return f"truncated {word:#06x}"
    if op == Op.STOP:
        return "stop" if imm == 0 else f"stop {imm:#05x}"
    if op == Op.SMALL_IMMEDIATE:
        return f"push.s {_signed12(imm)}"
    if op == Op.LARGE_IMMEDIATE:
        return f"push.l {_signed16(extra[0])}"
    if op in (Op.LOAD, Op.STORE):
        return f"{'load' if op == Op.LOAD else 'store'} {imm}"
    if op in (Op.LOAD_INDIRECT, Op.STORE_INDIRECT):
        return f"{'load' if op == Op.LOAD_INDIRECT else 'store'}.i {imm}[{extra[0]}]"
    if op == Op.UNARY_ARITHMETIC:
        return f"unary {_op_name(UnaryOp, word & 0xFF)}"
    if op == Op.BINARY_ARITHMETIC:
        return f"binary {_op_name(BinaryOp, word & 0xFF)}"
    if op == Op.JUMP:
        disp = _signed12(imm)
        return f"jump {pc + disp} ({disp:+d})"
    if op == Op.CONDITIONAL_BRANCH:
        disp = _signed16(extra[0])
        bits = [
            b
            for b, bit in (("when", IF_IS_WHEN_BIT), ("was_true", IF_WAS_TRUE_BIT))
            if word >> bit & 1
        ]
        tail = f" [{','.join(bits)}]" if bits else ""
        return f"branch {_op_name(BinaryOp, word & 0xFF)} else {pc + disp} ({disp:+d}){tail}"
    if op == Op.EMIT:
        return f"emit {imm} addr {extra[0]} len {extra[1]}"
    if op == Op.NATIVE_CALL:
        return f"native {imm}"
    if op == Op.SUB_CALL:
        return f"call {imm}"
    if op == Op.SUB_RET:
        return "ret"
    return f"unknown {word:#06x}"


def _op_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"{value:#04x}"


def upload_messages(
    dest: int, words: list[int] | tuple[int, ...], chunk_words: int = SET_BYTECODE_CHUNK_WORDS
) -> list[p.Message]:
    """SET_BYTECODE chunks (at most 256 words each, like Aseba's `sendBytecode`), then RESET
    and RUN. In vm.c SET_BYTECODE already falls through to RESET (init set up, paused);
    the explicit RESET only makes the sequence independent of that, and RUN starts it."""
    if not 1 <= chunk_words <= SET_BYTECODE_CHUNK_WORDS:
        raise BytecodeError(f"chunk_words must be in 1..{SET_BYTECODE_CHUNK_WORDS}")
    if not words:
        raise BytecodeError("empty program")
    program = tuple(_check(int(w), 0, 0xFFFF, "bytecode word") for w in words)
    out: list[p.Message] = [
        p.SetBytecode(dest, start, program[start : start + chunk_words])
        for start in range(0, len(program), chunk_words)
    ]
    return [*out, p.Reset(dest), p.Run(dest)]
