"""The assembler's encodings (checked against consts.h / vm.c layouts), its errors, the
disassembler (parsed back into the same words) and the upload sequence."""

from __future__ import annotations

import re

import pytest

from firmware_bridge import protocol as p
from firmware_bridge.bytecode import (
    EVENT_INIT,
    Assembler,
    BinaryOp,
    BytecodeError,
    Op,
    UnaryOp,
    disassemble,
    instruction_words,
    local_event_id,
    upload_messages,
)


def test_constants_match_consts_h():
    assert (Op.STOP, Op.SMALL_IMMEDIATE, Op.EMIT, Op.SUB_RET) == (0x0, 0x1, 0xB, 0xE)
    assert (BinaryOp.SHIFT_LEFT, BinaryOp.MOD, BinaryOp.BIT_AND, BinaryOp.AND) == (0, 6, 9, 0x11)
    assert (UnaryOp.SUB, UnaryOp.ABS, UnaryOp.BIT_NOT) == (0, 1, 2)
    assert EVENT_INIT == 0xFFFF
    assert local_event_id(0) == 0xFFFE and local_event_id(6) == 0xFFF8
    with pytest.raises(BytecodeError):
        local_event_id(-1)


def test_vector_table_and_handler_addresses():
    a = Assembler()
    a.on(EVENT_INIT)
    a.stop()
    a.on(local_event_id(6))
    a.push(1)
    a.stop()
    words = a.assemble()
    # [table size = 1 + 2 per handler][(id, address)...][code]
    assert words[:5] == [5, 0xFFFF, 5, 0xFFF8, 6]
    assert words[5:] == [0x0000, 0x1001, 0x0000]


def test_immediates_small_and_large():
    a = Assembler()
    for v in (0, 2047, -2048, 2048, -2049, -32768, 65535):
        a.push(v)
    words = a.assemble()[1:]  # no handler: table of one word
    assert words == [
        0x1000, 0x17FF, 0x1800,
        0x2000, 0x0800, 0x2000, 0xF7FF, 0x2000, 0x8000, 0x2000, 0xFFFF,
    ]  # fmt: skip
    with pytest.raises(BytecodeError):
        Assembler().push(65536)


def test_memory_arithmetic_and_calls():
    a = Assembler()
    a.load(42)
    a.store(4095)
    a.load_indirect(100, 7)
    a.store_indirect(200, 3)
    a.unary(UnaryOp.ABS)
    a.binary(BinaryOp.MULT)
    a.emit(12, 300, 4)
    a.native(20)
    a.label("sub")
    a.ret()
    a.call("sub")
    words = a.assemble()
    assert words[0] == 1
    assert words[1:] == [
        0x302A, 0x4FFF, 0x5064, 7, 0x60C8, 3, 0x7001, 0x8004,
        0xB00C, 300, 4, 0xC014, 0xE000, 0xD000 | 13,
    ]  # fmt: skip
    for bad in (lambda x: x.load(4096), lambda x: x.store(-1), lambda x: x.emit(4096, 0, 1)):
        with pytest.raises(BytecodeError):
            bad(Assembler())
    with pytest.raises(BytecodeError):
        Assembler().emit(1, 0, p.MAX_PAYLOAD_WORDS + 1)


def test_jumps_and_branches_are_relative_to_the_instruction():
    a = Assembler()
    a.label("top")  # code offset 0 = address 1
    a.push(1)
    a.push(2)
    a.branch(BinaryOp.SMALLER_THAN, "else", when=True)  # at 2, displacement word at 3
    a.jump("top")  # at 4: -4
    a.label("else")  # at 5
    a.jump("end")
    a.push(0)
    a.label("end")
    words = a.assemble()[1:]
    assert words[2] == 0xA000 | (1 << 8) | BinaryOp.SMALLER_THAN
    assert words[3] == 3  # from the branch (2) to "else" (5)
    assert words[4] == 0x9000 | (-4 & 0xFFF)
    assert words[5] == 0x9002


def test_assembly_errors():
    a = Assembler()
    a.jump("nowhere")
    with pytest.raises(BytecodeError, match="undefined label 'nowhere'"):
        a.assemble()
    a = Assembler()
    a.jump("far")
    for _ in range(2048):
        a.stop()
    a.label("far")
    with pytest.raises(BytecodeError, match="12-bit range"):
        a.assemble()
    a = Assembler()
    a.label("x")
    with pytest.raises(BytecodeError, match="defined twice"):
        a.label("x")
    a.on(EVENT_INIT)
    with pytest.raises(BytecodeError, match="already has a handler"):
        a.on(EVENT_INIT)
    a = Assembler()
    a.call("late")
    for _ in range(4100):
        a.stop()
    a.label("late")
    with pytest.raises(BytecodeError, match="beyond 4095"):
        a.assemble()
    assert issubclass(BytecodeError, ValueError)


def _sample_program() -> list[int]:
    a = Assembler()
    a.on(EVENT_INIT)
    a.push(-5)
    a.push(40000)
    a.binary(BinaryOp.ADD)
    a.store(100)
    a.label("loop")
    a.load(100)
    a.push(0)
    a.branch(BinaryOp.BIGGER_THAN, "done")
    a.load(100)
    a.unary(UnaryOp.SUB)
    a.push(3)
    a.load_indirect(101, 4)
    a.store_indirect(101, 4)
    a.call("sub")
    a.jump("loop")
    a.label("done")
    a.emit(7, 100, 5)
    a.native(3)
    a.stop()
    a.on(local_event_id(14))
    a.load(59)
    a.push(10)
    a.branch(BinaryOp.BIGGER_THAN, "slow", when=True)
    a.emit(8, 59, 1)
    a.label("slow")
    a.stop()
    a.label("sub")
    a.ret()
    return a.assemble()


_LINE = re.compile(r"^(\d{4}): (\S+)(?: (.*))?$")


def _reassemble(lines: list[str]) -> list[int]:
    """Words from disassembly lines (the test's own reader, independent of the assembler)."""
    words: dict[int, int] = {}
    for line in lines:
        m = _LINE.match(line)
        assert m, line
        addr, mnem, rest = int(m[1]), m[2], m[3] or ""
        nums = [int(x) for x in re.findall(r"-?\d+", rest)]
        if mnem == "vectors":
            out = [nums[0]]
        elif mnem == "event":
            out = [int(rest.split()[0], 16), nums[-1]]
        elif mnem == "push.s":
            out = [0x1000 | (nums[0] & 0xFFF)]
        elif mnem == "push.l":
            out = [0x2000, nums[0] & 0xFFFF]
        elif mnem in ("load", "store"):
            out = [(Op.LOAD if mnem == "load" else Op.STORE) << 12 | nums[0]]
        elif mnem in ("load.i", "store.i"):
            op = Op.LOAD_INDIRECT if mnem == "load.i" else Op.STORE_INDIRECT
            out = [op << 12 | nums[0], nums[1]]
        elif mnem == "unary":
            out = [0x7000 | UnaryOp[rest]]
        elif mnem == "binary":
            out = [0x8000 | BinaryOp[rest]]
        elif mnem == "jump":
            out = [0x9000 | (nums[1] & 0xFFF)]
        elif mnem == "branch":
            op = BinaryOp[rest.split()[0]]
            when = "when" in rest
            out = [0xA000 | when << 8 | op, nums[1] & 0xFFFF]
        elif mnem == "emit":
            out = [0xB000 | nums[0], nums[1], nums[2]]
        elif mnem == "native":
            out = [0xC000 | nums[0]]
        elif mnem == "call":
            out = [0xD000 | nums[0]]
        elif mnem in ("ret", "stop"):
            out = [0xE000 if mnem == "ret" else 0]
        else:
            raise AssertionError(line)
        for i, w in enumerate(out):
            words[addr + i] = w
    return [words[i] for i in range(len(words))]


def test_disassembly_round_trip():
    words = _sample_program()
    lines = disassemble(words)
    assert lines[0] == "0000: vectors 5"
    assert lines[1] == "0001: event 0xffff -> 5" and lines[2] == "0003: event 0xfff0 -> 28"
    assert any(
        re.match(r"\d{4}: branch BIGGER_THAN else \d+ \(\+\d+\) \[when\]$", x) for x in lines
    )
    assert "push.l -25536" in " ".join(lines)  # 40000 as the VM sees it (int16)
    assert _reassemble(lines) == words
    assert len(lines) == 3 + sum(1 for _ in _instructions(words))


def _instructions(words: list[int]):
    pc = words[0]
    while pc < len(words):
        yield pc
        pc += instruction_words(words[pc])


def test_disassembly_shows_the_was_true_bit_and_unknown_words():
    lines = disassemble([1, 0xA000 | (3 << 8) | BinaryOp.EQUAL, 2, 0xF123, 0xB001])
    assert lines[1] == "0001: branch EQUAL else 3 (+2) [when,was_true]"
    assert lines[2] == "0003: unknown 0xf123"
    assert lines[3] == "0004: truncated 0xb001"


def test_upload_messages_chunks_then_reset_and_run():
    words = list(range(600))
    msgs = upload_messages(3, words)
    chunks = [m for m in msgs if isinstance(m, p.SetBytecode)]
    assert [(c.start, len(c.words)) for c in chunks] == [(0, 256), (256, 256), (512, 88)]
    assert msgs[len(chunks) :] == [p.Reset(3), p.Run(3)]
    assert [w for c in chunks for w in c.words] == words
    for m in msgs:  # every chunk fits one frame (dest + start + 256 words = 258)
        assert len(p.encode(m)) <= p.HEADER_BYTES + p.MAX_PAYLOAD_BYTES
    assert len(upload_messages(1, words, chunk_words=100)) == 6 + 2
    with pytest.raises(BytecodeError):
        upload_messages(1, words, chunk_words=257)
    with pytest.raises(BytecodeError):
        upload_messages(1, [70000])
