"""Aseba codec: byte layouts, round trips of every message, framing in any split, garbage."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from budget import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p

EVERY_MESSAGE = [
    p.ListNodes(),
    p.ListNodes(None),
    p.NodePresent(5),
    p.GetDescription(5),
    p.GetNodeDescription(dest=1, version=5),
    p.Description("thymio-II", 5, 1534, 32, 586, 30, 17, 52),
    p.NamedVariableDescription(7, "prox.horizontal"),
    p.LocalEventDescription("button.center", "center button state changed"),
    p.NativeFunctionDescription(
        "math.fill",
        "Fill array with constant value",
        (p.NativeFunctionParameter(-1, "dest"), p.NativeFunctionParameter(1, "value")),
    ),
    p.NativeFunctionDescription("_system.reboot", "Reboot", ()),
    p.GetVariables(dest=1, start=42, length=19),
    p.Variables(42, (0, -1, 32767, -32768, 4505)),
    p.Variables(0, ()),
    p.SetVariables(dest=1, start=57, values=(-500, 500)),
    p.Disconnected(),
    p.UserEvent(0, ()),
    p.UserEvent(0x7FFF, (1, -2, 3)),
    p.SetBytecode(dest=1, start=0, words=(5, 0xFFFF, 3, 0x9000, 0x0000)),
    p.Reset(1),
    p.Run(1),
    p.Pause(1),
    p.Step(1),
    p.Stop(1),
    p.GetExecutionState(1),
    p.ExecutionStateChanged(pc=12, flags=0x5),
    p.ArrayAccessOutOfBounds(pc=3, size=7, index=9),
    p.DivisionByZero(pc=4),
    p.EventExecutionKilled(pc=8),
    p.GetDeviceInfo(dest=1, info=p.DEVICE_INFO_UUID),
    p.DeviceInfo(p.DEVICE_INFO_UUID, bytes(range(16))),
    p.DeviceInfo(p.DEVICE_INFO_NAME, "thymio-Ü".encode()),
    p.RawMessage(0x8006, b"\x01\x00"),  # BOOTLOADER_ACK: kept raw
    p.RawMessage(0xBEEF, b"\x01\x02\x03"),  # unknown type, odd length
    p.Description("ü-node", 5, 0, 0, 0, 0, 0, 0),  # UTF-8 name
]


def frame_of(msg: p.Message, source: int = 0) -> bytes:
    return p.encode(msg, source=source)


# ----------------------------------------------------------------------------- layouts


def test_message_type_values_match_consts_h() -> None:
    assert p.MessageType.DESCRIPTION == 0x9000
    assert p.MessageType.VARIABLES == 0x9005
    assert p.MessageType.NODE_PRESENT == 0x900C
    assert p.MessageType.GET_VARIABLES == 0xA00B
    assert p.MessageType.SET_VARIABLES == 0xA00C
    assert p.MessageType.GET_NODE_DESCRIPTION == 0xA010
    assert p.MessageType.LIST_NODES == 0xA011
    assert p.MAX_PAYLOAD_BYTES == 516


def test_list_nodes_bytes() -> None:
    assert p.encode(p.ListNodes()) == bytes([2, 0, 0, 0, 0x11, 0xA0, 5, 0])
    assert p.encode(p.ListNodes(None)) == bytes([0, 0, 0, 0, 0x11, 0xA0])


def test_get_variables_bytes() -> None:
    assert p.encode(p.GetVariables(1, 42, 19)) == struct.pack("<6H", 6, 0, 0xA00B, 1, 42, 19)


def test_set_variables_signed_bytes() -> None:
    frame = p.encode(p.SetVariables(1, 57, (-1, -500)))
    assert frame == struct.pack("<5H2h", 8, 0, 0xA00C, 1, 57, -1, -500)


def test_description_from_aseba_playground() -> None:
    # DESCRIPTION payload captured from asebaplayground 1.6.99 (Thymio II robot).
    payload = b"\tthymio-II\x05\x00\xfe\x05 \x00J\x02\x1e\x00\x11\x004\x00"
    msg = p.decode(1, 0x9000, payload)
    assert msg == p.Description("thymio-II", 5, 1534, 32, 586, 30, 17, 52)
    assert p.encode_payload(msg) == payload


def test_named_variable_payload_may_be_odd() -> None:
    payload = p.encode_payload(p.NamedVariableDescription(1, "event.source"))
    assert payload == b"\x01\x00\x0cevent.source" and len(payload) % 2 == 1


def test_variables_are_signed() -> None:
    payload = struct.pack("<H3h", 10, -1, -32768, 32767)
    assert p.decode(1, 0x9005, payload) == p.Variables(10, (-1, -32768, 32767))


def test_native_parameter_size_is_signed() -> None:
    msg = p.NativeFunctionDescription("f", "d", (p.NativeFunctionParameter(-3, "x"),))
    assert p.decode(1, 0x9003, p.encode_payload(msg)) == msg


@pytest.mark.parametrize(
    "bad",
    [
        p.Variables(0, (32768,)),
        p.SetVariables(1, 0, (-32769,)),
        p.GetVariables(-1, 0, 1),
        p.GetVariables(1, 0x10000, 1),
        p.NamedVariableDescription(1, "x" * 256),
        p.UserEvent(0x8000, ()),
        p.Variables(0, tuple(range(258))),  # 2 + 516 bytes: too long
    ],
)
def test_encode_rejects_out_of_range(bad: p.Message) -> None:
    with pytest.raises(ValueError):
        p.encode(bad)


@pytest.mark.parametrize(
    ("mtype", "payload"),
    [
        (0x9005, b"\x01\x00\x02"),  # odd number of value bytes
        (0x900C, b""),  # NODE_PRESENT without version
        (0x9001, b"\x01\x00\x05ab"),  # string longer than payload
        (0xA00B, b"\x01\x00\x02\x00\x03\x00\x04\x00"),  # trailing bytes
        (0x0001, b"\x01"),  # user event, odd length
    ],
)
def test_decode_rejects_malformed(mtype: int, payload: bytes) -> None:
    with pytest.raises(p.DecodeError):
        p.decode(1, mtype, payload)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("msg", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("source", [0, 1, 0xFFFF])
def test_round_trip_every_message(msg: p.Message, source: int) -> None:
    frame = frame_of(msg, source)
    length, src, mtype = struct.unpack_from("<HHH", frame)
    assert length == len(frame) - 6 and src == source and mtype == p.message_type(msg)
    assert p.decode(src, mtype, frame[6:]) == msg
    assert p.FrameDecoder().feed(frame) == [(source, msg)]


def test_every_split_gives_the_same_messages() -> None:
    stream = b"".join(frame_of(m, i) for i, m in enumerate(EVERY_MESSAGE))
    expected = [(i, m) for i, m in enumerate(EVERY_MESSAGE)]
    one_by_one = p.FrameDecoder()
    got = [x for b in stream for x in one_by_one.feed(bytes([b]))]
    assert got == expected
    for cut in range(len(stream) + 1):
        d = p.FrameDecoder()
        assert d.feed(stream[:cut]) + d.feed(stream[cut:]) == expected
    assert one_by_one.errors == 0 and one_by_one.pending_bytes == 0


def test_variables_reply_split_in_47_word_chunks() -> None:
    values = tuple(range(-60, 60))
    chunks = [p.Variables(100 + s, values[s : s + 47]) for s in range(0, len(values), 47)]
    stream = b"".join(frame_of(c, 1) for c in chunks)
    got = p.FrameDecoder().feed(stream)
    assert [len(m.values) for _, m in got] == [47, 47, 26]
    assert sum((m.values for _, m in got), ()) == values


# ----------------------------------------------------------------------------- garbage


def test_impossible_length_is_reported_and_skipped() -> None:
    errors: list[p.FrameError] = []
    d = p.FrameDecoder(on_error=errors.append)
    good = frame_of(p.NodePresent(5), 1)
    assert d.feed(b"\xff" * 9 + good) == [(1, p.NodePresent(5))]  # 0xffff > 516 bytes
    assert d.errors == 9 and d.discarded_bytes == 9
    assert errors[0].kind == "length"


def test_idle_flush_recovers_from_a_plausible_bogus_header() -> None:
    # After dropping one byte of `bad`, the next header claims 258 bytes and swallows the
    # good frame: only the line going idle (flush_partial, as AsebaLink does) ends it.
    d = p.FrameDecoder()
    good = frame_of(p.NodePresent(5), 1)
    bad = struct.pack("<HHH", 517, 1, 0x900C)
    assert d.feed(bad + good) == []
    assert d.errors == 1 and d.pending_bytes > 0
    d.flush_partial()
    assert d.feed(good) == [(1, p.NodePresent(5))]


def test_malformed_known_payload_is_reported() -> None:
    d = p.FrameDecoder()
    bad = struct.pack("<HHH", 3, 1, 0x9005) + b"\x00\x00\x07"  # VARIABLES with odd values
    assert d.feed(bad) == []
    assert d.errors >= 1 and d.last_error.kind == "payload"
    d.flush_partial()
    assert d.feed(frame_of(p.Variables(3, (1, 2)), 1)) == [(1, p.Variables(3, (1, 2)))]


def test_failing_error_callback_does_not_break_parsing() -> None:
    def boom(err: p.FrameError) -> None:
        raise RuntimeError("callback bug")

    d = p.FrameDecoder(on_error=boom)
    good = frame_of(p.NodePresent(5), 1)
    assert d.feed(b"\xff\xff" + good)[-1] == (1, p.NodePresent(5))


def test_flush_partial_drops_an_incomplete_frame() -> None:
    d = p.FrameDecoder()
    frame = frame_of(p.Variables(0, (1, 2, 3)), 1)
    assert d.feed(frame[:5]) == []
    assert d.pending_bytes == 5
    assert d.flush_partial() == 5 and d.errors == 1 and d.last_error.kind == "partial"
    assert d.feed(frame) == [(1, p.Variables(0, (1, 2, 3)))]


def test_an_absurd_length_header_neither_waits_nor_holds_memory() -> None:
    # A header claiming 65535 bytes is dropped at once (nothing waits for the rest), and
    # whatever comes, the decoder never holds more than one maximal frame between feeds.
    d = p.FrameDecoder()
    assert d.feed(struct.pack("<HHH", 0xFFFF, 1, 0x9005)) == []
    assert d.pending_bytes < p.HEADER_BYTES and d.last_error.kind == "length"
    rng = random.Random(24)
    for _ in range(300):
        d.feed(rng.randbytes(rng.randrange(1, 4000)))
        assert d.pending_bytes < p.HEADER_BYTES + p.MAX_PAYLOAD_BYTES
    d.flush_partial()
    assert d.feed(frame_of(p.NodePresent(5), 1)) == [(1, p.NodePresent(5))]


# ----------------------------------------------------------------------------- properties

STREAMS_PER_EXAMPLE = 5
EXAMPLES = examples(2_000)  # x 5 streams x 2 tests = 20,000 streams (a quarter: test-fast)

VALID_FRAMES = [frame_of(m, 1) for m in EVERY_MESSAGE]


def mutate(seed: int) -> bytes:
    """Valid frames with bytes flipped, inserted, deleted, header lengths lied, truncated.

    A seeded generator (the seed comes from hypothesis) is much faster than composing
    strategies, which keeps 10,000 streams within a few seconds."""
    rng = random.Random(seed)
    data = bytearray(b"".join(rng.choices(VALID_FRAMES, k=rng.randint(1, 6))))
    for _ in range(rng.randint(0, 6)):
        op = rng.choice(("flip", "insert", "delete", "length"))
        i = rng.randrange(max(1, len(data)))
        if op == "flip" and data:
            data[i] ^= rng.randint(1, 255)
        elif op == "insert":
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == "delete" and data:
            del data[i : i + rng.randint(1, 4)]
        elif op == "length" and len(data) >= 2:
            data[i : i + 2] = struct.pack("<H", rng.randrange(0x10000))
    return bytes(data[: rng.randint(0, len(data))])


def feed_in_chunks(stream: bytes, cuts: list[int]) -> list[tuple[int, p.Message]]:
    d = p.FrameDecoder()
    out = []
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(bounds):
        out += d.feed(stream[a:b])
    d.flush_partial()
    assert d.pending_bytes == 0
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.binary(max_size=600), min_size=STREAMS_PER_EXAMPLE, max_size=STREAMS_PER_EXAMPLE),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_random_bytes_never_raise_and_split_does_not_matter(
    streams: list[bytes], cuts: list[int]
) -> None:
    for stream in streams:
        whole = p.FrameDecoder().feed(stream)
        assert feed_in_chunks(stream, cuts) == whole


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.integers(0, 2**32 - 1), min_size=STREAMS_PER_EXAMPLE, max_size=STREAMS_PER_EXAMPLE),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_mutated_frames_never_raise_and_split_does_not_matter(
    seeds: list[int], cuts: list[int]
) -> None:
    for stream in map(mutate, seeds):
        d = p.FrameDecoder()
        whole = d.feed(stream)
        assert feed_in_chunks(stream, cuts) == whole
        for _, msg in whole:  # whatever comes out re-encodes to a valid frame
            if isinstance(msg, p.UserEvent | p.RawMessage):
                continue
            assert p.FrameDecoder().feed(p.encode(msg, source=1)) == [(1, msg)]
