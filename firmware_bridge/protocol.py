"""Aseba binary protocol codec: message types, frozen message dataclasses, encode/decode, framing.

Pure computation (no I/O, no `serial`), so that it is tested without devices and reused by
the link, the simulator's virtual Thymio and any tool. Layouts follow Aseba's
`common/msg/msg.cpp` (Debian package `aseba`, protocol version 5). A frame on the wire is
little-endian `[payload length u16][source u16][type u16][payload]`; the length counts
payload bytes only (not the type) and is at most 516 (258 words).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Union

__all__ = [
    "DEVICE_INFO_NAME",
    "DEVICE_INFO_UUID",
    "HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_WORDS",
    "PROTOCOL_VERSION",
    "ArrayAccessOutOfBounds",
    "DecodeError",
    "Description",
    "DeviceInfo",
    "Disconnected",
    "DivisionByZero",
    "EventExecutionKilled",
    "ExecutionStateChanged",
    "FrameDecoder",
    "FrameError",
    "GetDescription",
    "GetDeviceInfo",
    "GetExecutionState",
    "GetNodeDescription",
    "GetVariables",
    "ListNodes",
    "LocalEventDescription",
    "Message",
    "MessageType",
    "NamedVariableDescription",
    "NativeFunctionDescription",
    "NativeFunctionParameter",
    "NodePresent",
    "Pause",
    "RawMessage",
    "Reset",
    "Run",
    "SetBytecode",
    "SetVariables",
    "Step",
    "Stop",
    "UserEvent",
    "Variables",
    "decode",
    "encode",
    "encode_payload",
    "message_type",
]

PROTOCOL_VERSION = 5  # ASEBA_PROTOCOL_VERSION in consts.h
MAX_PAYLOAD_WORDS = 258  # ASEBA_MAX_EVENT_ARG_COUNT
MAX_PAYLOAD_BYTES = 2 * MAX_PAYLOAD_WORDS  # ASEBA_MAX_EVENT_ARG_SIZE
HEADER_BYTES = 6  # length, source, type
USER_EVENT_LIMIT = 0x8000  # types below this are user events
DEST_DEBUG = 0  # the source id a host (IDE, this bridge) uses


class MessageType(IntEnum):
    """Aseba system message types (AsebaSystemMessagesTypes in common/consts.h)."""

    BOOTLOADER_RESET = 0x8000
    BOOTLOADER_READ_PAGE = 0x8001
    BOOTLOADER_WRITE_PAGE = 0x8002
    BOOTLOADER_PAGE_DATA_WRITE = 0x8003
    BOOTLOADER_DESCRIPTION = 0x8004
    BOOTLOADER_PAGE_DATA_READ = 0x8005
    BOOTLOADER_ACK = 0x8006

    DESCRIPTION = 0x9000
    NAMED_VARIABLE_DESCRIPTION = 0x9001
    LOCAL_EVENT_DESCRIPTION = 0x9002
    NATIVE_FUNCTION_DESCRIPTION = 0x9003
    DISCONNECTED = 0x9004
    VARIABLES = 0x9005
    ARRAY_ACCESS_OUT_OF_BOUNDS = 0x9006
    DIVISION_BY_ZERO = 0x9007
    EVENT_EXECUTION_KILLED = 0x9008
    NODE_SPECIFIC_ERROR = 0x9009
    EXECUTION_STATE_CHANGED = 0x900A
    BREAKPOINT_SET_RESULT = 0x900B
    NODE_PRESENT = 0x900C
    DEVICE_INFO = 0x900D  # protocol 6 (Mobsya's Thymio Device Manager)
    CHANGED_VARIABLES = 0x900E  # protocol 7

    GET_DESCRIPTION = 0xA000
    SET_BYTECODE = 0xA001
    RESET = 0xA002
    RUN = 0xA003
    PAUSE = 0xA004
    STEP = 0xA005
    STOP = 0xA006
    GET_EXECUTION_STATE = 0xA007
    BREAKPOINT_SET = 0xA008
    BREAKPOINT_CLEAR = 0xA009
    BREAKPOINT_CLEAR_ALL = 0xA00A
    GET_VARIABLES = 0xA00B
    SET_VARIABLES = 0xA00C
    WRITE_BYTECODE = 0xA00D
    REBOOT = 0xA00E
    SUSPEND_TO_RAM = 0xA00F
    GET_NODE_DESCRIPTION = 0xA010
    LIST_NODES = 0xA011
    GET_DEVICE_INFO = 0xA012  # protocol 6
    SET_DEVICE_INFO = 0xA013  # protocol 6
    GET_CHANGED_VARIABLES = 0xA014  # protocol 7

    INVALID = 0xFFFF


class DecodeError(ValueError):
    """A payload does not match the layout of its message type."""


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class ListNodes:
    """Host -> all: ask every node to answer NODE_PRESENT. `version=None` encodes the
    empty payload of hosts older than protocol 5."""

    version: int | None = PROTOCOL_VERSION


@dataclass(frozen=True)
class NodePresent:
    """Node -> host: the node (frame source = node id) is there, speaking `version`."""

    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class GetDescription:
    """Host -> all: every node sends its full description (older discovery)."""

    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class GetNodeDescription:
    """Host -> node `dest`: send your description."""

    dest: int
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Description:
    """Node -> host: head of a description; the counted parts follow as separate messages."""

    name: str
    protocol_version: int
    bytecode_size: int
    stack_size: int
    variables_size: int  # total VM variable memory in words (named ones are a prefix)
    num_named_variables: int
    num_local_events: int
    num_native_functions: int


@dataclass(frozen=True)
class NamedVariableDescription:
    """Node -> host: one named variable; offsets are the running sum of sizes."""

    size: int
    name: str


@dataclass(frozen=True)
class LocalEventDescription:
    """Node -> host: one local event the node can emit."""

    name: str
    description: str


@dataclass(frozen=True)
class NativeFunctionParameter:
    """One parameter of a native function: size in words, or a negative template id."""

    size: int
    name: str


@dataclass(frozen=True)
class NativeFunctionDescription:
    """Node -> host: one native function with its parameters."""

    name: str
    description: str
    parameters: tuple[NativeFunctionParameter, ...] = ()


@dataclass(frozen=True)
class GetVariables:
    """Host -> node `dest`: send `length` words of variable memory from word `start`."""

    dest: int
    start: int
    length: int


@dataclass(frozen=True)
class Variables:
    """Node -> host: signed words of variable memory from word `start` (one chunk)."""

    start: int
    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class SetVariables:
    """Host -> node `dest`: write signed words from word `start`; no reply."""

    dest: int
    start: int
    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class Disconnected:
    """Node -> host: the node is leaving the network."""


@dataclass(frozen=True)
class SetBytecode:
    """Host -> node `dest`: write bytecode words from address `start` (one chunk; a program
    longer than a message is sent in several)."""

    dest: int
    start: int
    words: tuple[int, ...] = ()  # unsigned 16-bit instruction words


@dataclass(frozen=True)
class Reset:
    """Host -> node `dest`: reset the VM and set up the init event, paused (step by step)."""

    dest: int


@dataclass(frozen=True)
class Run:
    """Host -> node `dest`: leave step-by-step mode and run events as they come."""

    dest: int


@dataclass(frozen=True)
class Pause:
    """Host -> node `dest`: go to step-by-step mode."""

    dest: int


@dataclass(frozen=True)
class Step:
    """Host -> node `dest`: execute one instruction (in step-by-step mode)."""

    dest: int


@dataclass(frozen=True)
class Stop:
    """Host -> node `dest`: stop the running thread; no event runs until the next RUN."""

    dest: int


@dataclass(frozen=True)
class GetExecutionState:
    """Host -> node `dest`: answer EXECUTION_STATE_CHANGED."""

    dest: int


@dataclass(frozen=True)
class ExecutionStateChanged:
    """Node -> host: program counter and VM flags (ASEBA_VM_*_MASK in consts.h)."""

    pc: int
    flags: int


@dataclass(frozen=True)
class ArrayAccessOutOfBounds:
    """Node -> host: the instruction at `pc` indexed an array of `size` with `index`."""

    pc: int
    size: int
    index: int


@dataclass(frozen=True)
class DivisionByZero:
    """Node -> host: the instruction at `pc` divided by zero."""

    pc: int


@dataclass(frozen=True)
class EventExecutionKilled:
    """Node -> host: an event ran too long and was killed at `pc`."""

    pc: int


DEVICE_INFO_UUID = 1  # DeviceInfoType in Mobsya's consts.h (protocol 6)
DEVICE_INFO_NAME = 2


@dataclass(frozen=True)
class GetDeviceInfo:
    """Host -> node `dest`: send the device information `info` (DEVICE_INFO_UUID, _NAME)."""

    dest: int
    info: int


@dataclass(frozen=True)
class DeviceInfo:
    """Node -> host: device information `info` (16 bytes of UUID, or a UTF-8 name);
    payload `[info u8][size u8][data]`."""

    info: int
    data: bytes = b""


@dataclass(frozen=True)
class UserEvent:
    """A user event (type below 0x8000) with signed word arguments."""

    type: int
    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class RawMessage:
    """A message of a type this codec does not interpret, payload kept as bytes."""

    type: int
    payload: bytes = field(default=b"")


Message = Union[  # noqa: UP007 (a runtime alias; `X | Y` of classes needs 3.10 anyway)
    ListNodes,
    NodePresent,
    GetDescription,
    GetNodeDescription,
    Description,
    NamedVariableDescription,
    LocalEventDescription,
    NativeFunctionDescription,
    GetVariables,
    Variables,
    SetVariables,
    Disconnected,
    SetBytecode,
    Reset,
    Run,
    Pause,
    Step,
    Stop,
    GetExecutionState,
    ExecutionStateChanged,
    ArrayAccessOutOfBounds,
    DivisionByZero,
    EventExecutionKilled,
    GetDeviceInfo,
    DeviceInfo,
    UserEvent,
    RawMessage,
]

_TYPE_OF: dict[type, MessageType] = {
    ListNodes: MessageType.LIST_NODES,
    NodePresent: MessageType.NODE_PRESENT,
    GetDescription: MessageType.GET_DESCRIPTION,
    GetNodeDescription: MessageType.GET_NODE_DESCRIPTION,
    Description: MessageType.DESCRIPTION,
    NamedVariableDescription: MessageType.NAMED_VARIABLE_DESCRIPTION,
    LocalEventDescription: MessageType.LOCAL_EVENT_DESCRIPTION,
    NativeFunctionDescription: MessageType.NATIVE_FUNCTION_DESCRIPTION,
    GetVariables: MessageType.GET_VARIABLES,
    Variables: MessageType.VARIABLES,
    SetVariables: MessageType.SET_VARIABLES,
    Disconnected: MessageType.DISCONNECTED,
    SetBytecode: MessageType.SET_BYTECODE,
    Reset: MessageType.RESET,
    Run: MessageType.RUN,
    Pause: MessageType.PAUSE,
    Step: MessageType.STEP,
    Stop: MessageType.STOP,
    GetExecutionState: MessageType.GET_EXECUTION_STATE,
    ExecutionStateChanged: MessageType.EXECUTION_STATE_CHANGED,
    ArrayAccessOutOfBounds: MessageType.ARRAY_ACCESS_OUT_OF_BOUNDS,
    DivisionByZero: MessageType.DIVISION_BY_ZERO,
    EventExecutionKilled: MessageType.EVENT_EXECUTION_KILLED,
    GetDeviceInfo: MessageType.GET_DEVICE_INFO,
    DeviceInfo: MessageType.DEVICE_INFO,
}
_COMMANDS = (Reset, Run, Pause, Step, Stop, GetExecutionState)  # payload: [dest]


def message_type(msg: Message) -> int:
    """The 16-bit type code of a message."""
    if isinstance(msg, (UserEvent, RawMessage)):
        return msg.type
    return int(_TYPE_OF[type(msg)])


# --------------------------------------------------------------------------- encoding


class _Writer:
    """Little-endian payload builder with range checks (raises ValueError)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u16(self, value: int) -> None:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"unsigned word out of range: {value}")
        self.buf += struct.pack("<H", value)

    def s16(self, value: int) -> None:
        if not -0x8000 <= value <= 0x7FFF:
            raise ValueError(f"signed word out of range: {value}")
        self.buf += struct.pack("<h", value)

    def words(self, values: Iterable[int]) -> None:
        for v in values:
            self.s16(int(v))

    def string(self, text: str) -> None:
        raw = text.encode("utf-8")
        if len(raw) > 255:
            raise ValueError(f"string longer than 255 bytes: {text[:40]!r}...")
        self.buf.append(len(raw))
        self.buf += raw


def encode_payload(msg: Message) -> bytes:
    """The payload bytes of a message (without the 6-byte header)."""
    w = _Writer()
    if isinstance(msg, ListNodes):
        if msg.version is not None:
            w.u16(msg.version)
    elif isinstance(msg, (NodePresent, GetDescription)):
        w.u16(msg.version)
    elif isinstance(msg, GetNodeDescription):
        w.u16(msg.dest)
        w.u16(msg.version)
    elif isinstance(msg, Description):
        w.string(msg.name)
        for v in (
            msg.protocol_version,
            msg.bytecode_size,
            msg.stack_size,
            msg.variables_size,
            msg.num_named_variables,
            msg.num_local_events,
            msg.num_native_functions,
        ):
            w.u16(v)
    elif isinstance(msg, NamedVariableDescription):
        w.u16(msg.size)
        w.string(msg.name)
    elif isinstance(msg, LocalEventDescription):
        w.string(msg.name)
        w.string(msg.description)
    elif isinstance(msg, NativeFunctionDescription):
        w.string(msg.name)
        w.string(msg.description)
        w.u16(len(msg.parameters))
        for p in msg.parameters:
            w.s16(p.size)
            w.string(p.name)
    elif isinstance(msg, GetVariables):
        w.u16(msg.dest)
        w.u16(msg.start)
        w.u16(msg.length)
    elif isinstance(msg, Variables):
        w.u16(msg.start)
        w.words(msg.values)
    elif isinstance(msg, SetVariables):
        w.u16(msg.dest)
        w.u16(msg.start)
        w.words(msg.values)
    elif isinstance(msg, Disconnected):
        pass
    elif isinstance(msg, _COMMANDS):
        w.u16(msg.dest)
    elif isinstance(msg, SetBytecode):
        w.u16(msg.dest)
        w.u16(msg.start)
        for word in msg.words:
            w.u16(word)
    elif isinstance(msg, ExecutionStateChanged):
        w.u16(msg.pc)
        w.u16(msg.flags)
    elif isinstance(msg, ArrayAccessOutOfBounds):
        w.u16(msg.pc)
        w.u16(msg.size)
        w.u16(msg.index)
    elif isinstance(msg, (DivisionByZero, EventExecutionKilled)):
        w.u16(msg.pc)
    elif isinstance(msg, GetDeviceInfo):
        w.u16(msg.dest)
        w.u16(msg.info)
    elif isinstance(msg, DeviceInfo):
        if not 0 <= msg.info <= 0xFF:
            raise ValueError(f"device info id must fit a byte: {msg.info}")
        w.buf.append(msg.info)  # one byte, as in Mobsya's firmware (skel-usb.c)
        if len(msg.data) > 255:
            raise ValueError(f"device info longer than 255 bytes: {len(msg.data)}")
        w.buf.append(len(msg.data))
        w.buf += msg.data
    elif isinstance(msg, UserEvent):
        if not 0 <= msg.type < USER_EVENT_LIMIT:
            raise ValueError(f"user event type must be below 0x8000: {msg.type:#x}")
        w.words(msg.values)
    elif isinstance(msg, RawMessage):
        w.buf += msg.payload
    else:
        raise TypeError(f"not an Aseba message: {msg!r}")
    return bytes(w.buf)


def encode(msg: Message, source: int = DEST_DEBUG) -> bytes:
    """One complete frame for `msg` sent from `source` (0 = host). Raises ValueError when a
    field is out of range or the payload exceeds 516 bytes."""
    payload = encode_payload(msg)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    mtype = message_type(msg)
    if not 0 <= source <= 0xFFFF or not 0 <= mtype <= 0xFFFF:
        raise ValueError(f"source or type out of range: {source}, {mtype}")
    return struct.pack("<HHH", len(payload), source, mtype) + payload


# --------------------------------------------------------------------------- decoding


class _Reader:
    """Little-endian payload reader that raises DecodeError on overrun."""

    def __init__(self, payload: bytes) -> None:
        self.data = payload
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError(
                f"payload too short: need {self.pos + n} bytes, have {len(self.data)}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u16(self) -> int:
        return struct.unpack("<H", self._take(2))[0]

    def s16(self) -> int:
        return struct.unpack("<h", self._take(2))[0]

    def words_to_end(self) -> tuple[int, ...]:
        rest = len(self.data) - self.pos
        if rest % 2:
            raise DecodeError(f"odd number of bytes ({rest}) where words are expected")
        return struct.unpack(f"<{rest // 2}h", self._take(rest))

    def string(self) -> str:
        n = self._take(1)[0]
        return self._take(n).decode("utf-8", errors="replace")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"{len(self.data) - self.pos} trailing bytes")


def _decode_known(mtype: MessageType, r: _Reader) -> Message | None:
    """Decode the payload of a known type; None for types kept raw."""
    if mtype == MessageType.LIST_NODES:
        return ListNodes(None if not r.data else r.u16())
    if mtype == MessageType.NODE_PRESENT:
        return NodePresent(r.u16())
    if mtype == MessageType.GET_DESCRIPTION:
        return GetDescription(r.u16())
    if mtype == MessageType.GET_NODE_DESCRIPTION:
        return GetNodeDescription(r.u16(), r.u16())
    if mtype == MessageType.DESCRIPTION:
        name = r.string()
        return Description(name, *(r.u16() for _ in range(7)))
    if mtype == MessageType.NAMED_VARIABLE_DESCRIPTION:
        size = r.u16()
        return NamedVariableDescription(size, r.string())
    if mtype == MessageType.LOCAL_EVENT_DESCRIPTION:
        name = r.string()
        return LocalEventDescription(name, r.string())
    if mtype == MessageType.NATIVE_FUNCTION_DESCRIPTION:
        name = r.string()
        doc = r.string()
        params = []
        for _ in range(r.u16()):
            size = r.s16()
            params.append(NativeFunctionParameter(size, r.string()))
        return NativeFunctionDescription(name, doc, tuple(params))
    if mtype == MessageType.GET_VARIABLES:
        return GetVariables(r.u16(), r.u16(), r.u16())
    if mtype == MessageType.VARIABLES:
        start = r.u16()
        return Variables(start, r.words_to_end())
    if mtype == MessageType.SET_VARIABLES:
        dest = r.u16()
        start = r.u16()
        return SetVariables(dest, start, r.words_to_end())
    if mtype == MessageType.DISCONNECTED:
        return Disconnected()
    command = _COMMAND_OF.get(mtype)
    if command is not None:
        return command(r.u16())
    if mtype == MessageType.SET_BYTECODE:
        dest = r.u16()
        start = r.u16()
        return SetBytecode(dest, start, tuple(w & 0xFFFF for w in r.words_to_end()))
    if mtype == MessageType.EXECUTION_STATE_CHANGED:
        return ExecutionStateChanged(r.u16(), r.u16())
    if mtype == MessageType.ARRAY_ACCESS_OUT_OF_BOUNDS:
        return ArrayAccessOutOfBounds(r.u16(), r.u16(), r.u16())
    if mtype == MessageType.DIVISION_BY_ZERO:
        return DivisionByZero(r.u16())
    if mtype == MessageType.EVENT_EXECUTION_KILLED:
        return EventExecutionKilled(r.u16())
    if mtype == MessageType.GET_DEVICE_INFO:
        return GetDeviceInfo(r.u16(), r.u16())
    if mtype == MessageType.DEVICE_INFO:
        info = r._take(1)[0]
        n = r._take(1)[0]
        return DeviceInfo(info, bytes(r._take(n)))
    return None


_COMMAND_OF = {_TYPE_OF[c]: c for c in _COMMANDS}


def decode(source: int, mtype: int, payload: bytes) -> Message:
    """The message for one frame's type and payload (`source` is kept by the caller; it is
    accepted here so that the signature mirrors the frame). Raises DecodeError when the
    payload does not fit the layout of a known type."""
    del source  # the message classes do not carry it: the frame does
    if mtype < USER_EVENT_LIMIT:
        r = _Reader(payload)
        return UserEvent(mtype, r.words_to_end())
    try:
        known = MessageType(mtype)
    except ValueError:
        return RawMessage(mtype, bytes(payload))
    r = _Reader(payload)
    msg = _decode_known(known, r)
    if msg is None:
        return RawMessage(mtype, bytes(payload))
    r.end()
    return msg


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class FrameError:
    """A protocol error the frame decoder met and skipped."""

    kind: str  # "length", "payload" or "partial"
    detail: str
    discarded_bytes: int


class FrameDecoder:
    """Incremental frame parser: feed bytes in any split, get (source, message) pairs.

    It never raises on input. An impossible length or a payload that does not fit its
    known type counts as a protocol error (counter, optional callback) and the parser
    resynchronises by dropping one byte and scanning again.
    """

    def __init__(
        self,
        on_error: Callable[[FrameError], None] | None = None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self._buf = bytearray()
        self._on_error = on_error
        self.max_payload_bytes = max_payload_bytes
        self.frames = 0  # frames decoded
        self.errors = 0  # protocol errors met
        self.discarded_bytes = 0  # bytes dropped while resynchronising
        self.last_error: FrameError | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame waiting for more input."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (e.g. after reopening the port); counters stay."""
        self._buf.clear()

    def flush_partial(self) -> int:
        """Drop an incomplete frame (the link calls this when the line went idle mid-frame,
        which a sender never does); counts a protocol error if anything was dropped."""
        n = len(self._buf)
        if n:
            self._buf.clear()
            self._error("partial", f"incomplete frame of {n} bytes dropped on idle line", n)
        return n

    def _error(self, kind: str, detail: str, discarded: int) -> None:
        err = FrameError(kind, detail, discarded)
        self.errors += 1
        self.discarded_bytes += discarded
        self.last_error = err
        if self._on_error is not None:
            with contextlib.suppress(Exception):  # a faulty callback must not break parsing
                self._on_error(err)

    def feed(self, data: bytes) -> list[tuple[int, Message]]:
        """Append bytes and return every complete message, in order."""
        buf = self._buf
        buf += data
        out: list[tuple[int, Message]] = []
        pos = 0
        n = len(buf)
        while n - pos >= HEADER_BYTES:
            length, source, mtype = struct.unpack_from("<HHH", buf, pos)
            if length > self.max_payload_bytes:
                self._error("length", f"impossible payload length {length}", 1)
                pos += 1
                continue
            end = pos + HEADER_BYTES + length
            if end > n:
                break
            payload = bytes(buf[pos + HEADER_BYTES : end])
            try:
                msg = decode(source, mtype, payload)
            except DecodeError as e:
                self._error("payload", f"type {mtype:#06x} from {source}: {e}", 1)
                pos += 1
                continue
            out.append((source, msg))
            self.frames += 1
            pos = end
        if pos:
            del buf[:pos]
        return out
