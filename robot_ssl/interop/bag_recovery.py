"""The intact part of a bag cut short: a recording whose writer died (power lost, disk
full, a killed process) leaves a file without its index and summary, which rosbags
refuses whole. This module reads such a file from its start and stops at the cut.

Formats: an MCAP file (plain, or the storage file of a ROS 2 bag folder) and a ROS 1
.bag (format 2.0). Both are sequences of length-prefixed records, and both put a topic's
definition (MCAP schema and channel, ROS 1 connection) before its first message, so every
message before the cut can be decoded. Chunks are read as far as they go: an
uncompressed chunk (what rosbags and rosbag2 write by default) and a compressed one
(zstd, lz4, bz2: streamed) both give every whole message before the cut.

A ROS 2 bag in sqlite3 storage (.db3) is a database, not a record stream, and SQLite
refuses a file shorter than its header says, whole. Its pages are read here: the topics
and their definitions through their tables' b-trees (small, in the file's first pages),
the messages from the table's leaf pages directly, every row whose leaf and overflow
pages the cut left, in insertion (rowid) order (through the b-tree, one interior page
past the cut would hide every leaf under it).

`open_intact(path)` returns an `IntactReader`, which offers what `import_bag` uses of
rosbags' AnyReader (connections, messages, deserialize, close) plus a one-line summary of
what was recovered; messages are decoded with rosbags' typestore, from the definitions
the file itself carries (else the default typestore given).
"""

from __future__ import annotations

import bz2
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_ssl.core.errors import RobotSSLError

if TYPE_CHECKING:  # rosbags is the optional `interop` extra: imported when used
    from rosbags.typesys.store import Typestore

__all__ = ["BagRecoveryError", "IntactReader", "open_intact"]

_MCAP_MAGIC = b"\x89MCAP0\r\n"
_ROS1_MAGIC = b"#ROSBAG V2.0\n"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK = 0x03, 0x04, 0x05, 0x06
_ROS1_MSG, _ROS1_CHUNK, _ROS1_CONN = 2, 5, 7
_TABLE_INTERIOR, _INDEX_INTERIOR, _TABLE_LEAF = 0x05, 0x02, 0x0D  # SQLite's page types


class BagRecoveryError(RobotSSLError):
    """A bag with nothing intact, or in a format this module cannot recover."""


@dataclass(frozen=True)
class RecoveredConnection:
    """One topic of the intact part: what import_bag reads of a rosbags Connection."""

    id: int
    topic: str
    msgtype: str


class _Cut(Exception):
    """The file ends inside a record: everything before it was yielded."""


def _decompress(compression: str, data: bytes) -> bytes:
    """As much of a (possibly cut) compressed chunk as decompresses: a streaming
    decompressor gives what precedes the cut."""
    if compression in ("", "none"):
        return data
    if compression == "bz2":
        decompressor: Any = bz2.BZ2Decompressor()
    elif compression == "lz4":
        import lz4.frame  # a dependency of rosbags

        decompressor = lz4.frame.LZ4FrameDecompressor()
    elif compression == "zstd":
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            from backports import zstd  # rosbags' dependency before 3.14

        decompressor = zstd.ZstdDecompressor()
    else:
        raise BagRecoveryError(f"chunk compression {compression!r} cannot be recovered")
    try:
        return decompressor.decompress(data)
    except (OSError, EOFError, ValueError, RuntimeError):  # damaged data: nothing usable
        return b""


class _Buf:
    """A little-endian cursor over bytes that raises _Cut at the end."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = memoryview(data)
        self.pos = pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise _Cut
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        return struct.unpack_from("<" + fmt, self.take(size))[0]

    def text(self) -> str:
        return bytes(self.take(self.u("I"))).decode()


# --- MCAP --------------------------------------------------------------------------------


def _mcap_records(buf: _Buf) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of each whole record, chunks opened (as far as they go)."""
    while True:
        start = buf.pos
        try:
            op, length = buf.u("B"), buf.u("Q")
            body = buf.take(length)
        except _Cut:
            buf.pos = start
            return
        if op != _CHUNK:
            yield op, body
            continue
        yield from _mcap_chunk(body)


def _mcap_chunk(body: memoryview) -> Iterator[tuple[int, memoryview]]:
    c = _Buf(body)
    c.take(8 + 8 + 8 + 4)  # start, end time, uncompressed size, crc
    compression = c.text()
    size = c.u("Q")
    records = _decompress(compression, bytes(c.data[c.pos : c.pos + size]))
    yield from _mcap_records(_Buf(records))


def _mcap_cut_chunk(data: memoryview, pos: int) -> Iterator[tuple[int, memoryview]]:
    """The records of a chunk whose record the cut shortened (the file's last record)."""
    c = _Buf(data, pos)
    try:
        if c.u("B") != _CHUNK:
            return
        c.u("Q")
        c.take(8 + 8 + 8 + 4)
        compression = c.text()
        c.u("Q")
    except _Cut:
        return
    yield from _mcap_records(_Buf(_decompress(compression, bytes(c.data[c.pos :]))))


def _mcap_messages(data: memoryview, conns: dict[int, RecoveredConnection], schemas: dict):
    """Yield (channel id, log time, payload); fill `conns` and `schemas` on the way."""
    buf = _Buf(data, len(_MCAP_MAGIC))
    records = _mcap_records(buf)
    for op, body in _chain_cut(records, lambda: _mcap_cut_chunk(data, buf.pos)):
        r = _Buf(body)
        try:
            if op == _SCHEMA:
                sid, name, encoding = r.u("H"), r.text(), r.text()
                schemas[sid] = (name, encoding, bytes(r.take(r.u("I"))).decode())
            elif op == _CHANNEL:
                cid, sid, topic = r.u("H"), r.u("H"), r.text()
                name = schemas.get(sid, ("", "", ""))[0]
                conns.setdefault(cid, RecoveredConnection(cid, topic, name))
            elif op == _MESSAGE:
                cid = r.u("H")
                r.u("I")
                log_t_ns = r.u("Q")
                r.u("Q")
                if cid in conns:
                    yield cid, log_t_ns, bytes(r.data[r.pos :])
        except _Cut:  # a record shorter than its fields: damaged, stop there
            return


def _chain_cut(records: Iterator, tail: Any) -> Iterator:
    """`records`, then the records of the record the cut shortened (`tail()`)."""
    yield from records
    yield from tail()


# --- ROS 1 -------------------------------------------------------------------------------


def _ros1_fields(raw: memoryview) -> dict[str, bytes]:
    """A ROS 1 record header: length-prefixed `name=value` fields."""
    fields, b = {}, _Buf(raw)
    while b.pos < len(raw):
        name, _, value = bytes(b.take(b.u("I"))).partition(b"=")
        fields[name.decode()] = value
    return fields


def _ros1_records(buf: _Buf) -> Iterator[tuple[dict[str, bytes], memoryview]]:
    """(header fields, data) of each whole record, chunks opened (as far as they go)."""
    while buf.pos < len(buf.data):
        start = buf.pos
        try:
            header = _ros1_fields(buf.take(buf.u("I")))
            data = buf.take(buf.u("I"))
        except _Cut:
            buf.pos = start
            return
        if header.get("op") == bytes([_ROS1_CHUNK]):
            compression = header.get("compression", b"none").decode()
            yield from _ros1_records(_Buf(_decompress(compression, bytes(data))))
        else:
            yield header, data


def _ros1_cut_chunk(data: memoryview, pos: int) -> Iterator[tuple[dict[str, bytes], memoryview]]:
    """The records of the chunk the cut shortened (the file's last record)."""
    b = _Buf(data, pos)
    try:
        header = _ros1_fields(b.take(b.u("I")))
        b.u("I")
    except _Cut:
        return
    if header.get("op") != bytes([_ROS1_CHUNK]):
        return
    compression = header.get("compression", b"none").decode()
    yield from _ros1_records(_Buf(_decompress(compression, bytes(b.data[b.pos :]))))


def _ros1_messages(data: memoryview, conns: dict[int, RecoveredConnection], defs: dict):
    from rosbags.typesys.msg import normalize_msgtype

    buf = _Buf(data, len(_ROS1_MAGIC))
    records = _ros1_records(buf)
    for header, body in _chain_cut(records, lambda: _ros1_cut_chunk(data, buf.pos)):
        op = header.get("op", b"\0")[0]
        if op == _ROS1_CONN:
            cid = struct.unpack("<I", header["conn"])[0]
            fields = _ros1_fields(body)
            msgtype = normalize_msgtype(fields["type"].decode())
            topic = header["topic"].decode()
            conns.setdefault(cid, RecoveredConnection(cid, topic, msgtype))
            defs.setdefault(msgtype, fields.get("message_definition", b"").decode())
        elif op == _ROS1_MSG:
            cid = struct.unpack("<I", header["conn"])[0]
            sec, nsec = struct.unpack("<II", header["time"])
            if cid in conns:
                yield cid, sec * 10**9 + nsec, bytes(body)


# --- ROS 2 sqlite3 -----------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A SQLite varint at `pos`: (value, position after it)."""
    value = 0
    for i in range(8):
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return (value << 8) | data[pos + 8], pos + 9


def _record(record: bytes) -> list[Any]:
    """The values of a SQLite record (NULL, integers, floats, text, blobs)."""
    head, pos = _varint(record, 0)
    serials = []
    while pos < head:
        serial, pos = _varint(record, pos)
        serials.append(serial)
    values: list[Any] = []
    pos = head
    for serial in serials:
        if serial in (0, 8, 9):
            values.append(None if serial == 0 else serial - 8)
        elif serial <= 6:
            width = (0, 1, 2, 3, 4, 6, 8)[serial]
            values.append(int.from_bytes(record[pos : pos + width], "big", signed=True))
            pos += width
        elif serial == 7:
            values.append(struct.unpack_from(">d", record, pos)[0])
            pos += 8
        elif serial >= 12:
            size = (serial - 12) // 2
            value = record[pos : pos + size]
            if len(value) != size:
                raise IndexError(pos)
            values.append(value if serial % 2 == 0 else value.decode("utf-8", "replace"))
            pos += size
        else:
            raise ValueError(f"serial type {serial}")
    return values


class _SqliteFile:
    """The whole pages of a cut .db3 and its table b-tree pages read directly: SQLite
    itself refuses a file shorter than its header says, whole."""

    def __init__(self, raw: bytes, path: Path) -> None:
        page_size = struct.unpack_from(">H", raw, 16)[0] if len(raw) >= 100 else 0
        self.page_size = 65536 if page_size == 1 else page_size
        self.pages = len(raw) // self.page_size if self.page_size >= 512 else 0
        if self.pages == 0:
            raise BagRecoveryError(
                f"{path} is cut short ({len(raw)} bytes) and no message in it is intact"
            )
        self.data = raw
        self.usable = self.page_size - raw[20]  # less the bytes each page reserves

    def page(self, number: int) -> int:
        """The offset of page `number` (1-based); IndexError when the cut removed it."""
        if not 1 <= number <= self.pages:
            raise IndexError(number)
        return (number - 1) * self.page_size

    def free_pages(self) -> set[int]:
        """The pages on the freelist (trunks and leaves), as far as its trunks are intact:
        a freed page may still hold a stale copy of a b-tree page."""
        free: set[int] = set()
        trunk = struct.unpack_from(">I", self.data, 32)[0]
        while trunk and trunk not in free and trunk <= self.pages:
            free.add(trunk)
            off = self.page(trunk)
            trunk, count = struct.unpack_from(">II", self.data, off)
            count = min(count, self.usable // 4 - 2)
            free.update(struct.unpack_from(f">{count}I", self.data, off + 8))
        return free

    def cells(self, number: int) -> tuple[int, list[int]]:
        """(page type, offsets of its cells) of page `number`."""
        off = self.page(number)
        head = off + (100 if number == 1 else 0)  # page 1 starts with the file header
        kind, count = self.data[head], struct.unpack_from(">H", self.data, head + 3)[0]
        first = head - off + (12 if kind in (_TABLE_INTERIOR, _INDEX_INTERIOR) else 8)
        if first + 2 * count > self.usable:
            return kind, []
        ptrs = struct.unpack_from(f">{count}H", self.data, off + first)
        return kind, [off + p for p in ptrs if first + 2 * count <= p < self.usable]

    def payload(self, cell: int) -> tuple[int, bytes]:
        """(rowid, record) of the table leaf cell at offset `cell`, its overflow pages
        followed (IndexError when one of them is past the cut)."""
        size, pos = _varint(self.data, cell)
        rowid, pos = _varint(self.data, pos)
        most = self.usable - 35
        if size <= most:
            return rowid, self.data[pos : pos + size]
        least = (self.usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (self.usable - 4)
        local = local if local <= most else least
        parts = [self.data[pos : pos + local]]
        left = size - local
        page = struct.unpack_from(">I", self.data, pos + local)[0]
        while left > 0:
            off = self.page(page)
            take = min(left, self.usable - 4)
            parts.append(self.data[off + 4 : off + 4 + take])
            left -= take
            page = struct.unpack_from(">I", self.data, off)[0]
        return rowid, b"".join(parts)

    def table(self, root: int) -> Iterator[tuple[int, list[Any]]]:
        """(rowid, values) of each row of the table at page `root` that its b-tree still
        reaches (a small table of the file's first pages: topics, definitions)."""
        stack, seen = [root], set()
        while stack:
            number = stack.pop()
            if number in seen or not 1 <= number <= self.pages:
                continue
            seen.add(number)
            kind, cells = self.cells(number)
            if kind == _TABLE_INTERIOR:
                head = self.page(number) + (100 if number == 1 else 0)
                children = [struct.unpack_from(">I", self.data, c)[0] for c in cells]
                stack.extend(
                    reversed([*children, struct.unpack_from(">I", self.data, head + 8)[0]])
                )
            elif kind == _TABLE_LEAF:
                for cell in cells:
                    try:
                        rowid, record = self.payload(cell)
                        yield rowid, _record(record)
                    except (IndexError, ValueError, struct.error):  # past the cut
                        continue


def _sqlite_topics(db: _SqliteFile, conns: dict, defs: dict) -> None:
    """Fill `conns` from the topics table and `defs` from message_definitions (schema 4
    and later; an older bag's types come from the default typestore). Both tables keep
    their columns' order across rosbag2's schemas: (id, name, type, ...) and (id,
    topic_type, encoding, encoded_message_definition, ...)."""
    roots = {
        values[1]: values[3]
        for _, values in db.table(1)
        if len(values) == 5 and values[0] == "table" and isinstance(values[3], int)
    }
    for rowid, values in db.table(roots.get("topics", 0)):
        if len(values) >= 3 and isinstance(values[1], str) and isinstance(values[2], str):
            conns.setdefault(rowid, RecoveredConnection(rowid, values[1], values[2]))
    for _, values in db.table(roots.get("message_definitions", 0)):
        if len(values) >= 4 and all(isinstance(v, str) for v in values[1:4]):
            defs.setdefault(values[1], tuple(values[1:4]))


def _message_row(record: bytes) -> tuple[int, int, bytes] | None:
    """(topic id, timestamp, data) of a record shaped as a rosbag2 messages row (id as
    the rowid, two integers, a blob), else None: the only table of that shape."""
    values = _record(record)
    if len(values) != 4 or values[0] is not None:
        return None
    topic_id, timestamp, data = values[1:]
    if type(topic_id) is not int or type(timestamp) is not int or type(data) is not bytes:
        return None
    return topic_id, timestamp, data


def _sqlite_messages(db: _SqliteFile, conns: dict[int, RecoveredConnection]):
    """(topic id, receive time, payload) of each message whose table leaf page and data
    pages the cut left, in insertion (rowid) order. The leaf pages are read directly,
    not through the b-tree: an interior page written late (when the tree grew a level)
    may be past the cut while the leaves under it are intact."""
    free = db.free_pages()
    rows: dict[int, tuple[int, int, bytes]] = {}
    for number in range(2, db.pages + 1):
        if db.data[db.page(number)] != _TABLE_LEAF or number in free:
            continue
        for cell in db.cells(number)[1]:
            try:
                rowid, record = db.payload(cell)
                row = _message_row(record)
            except (IndexError, ValueError, struct.error):  # a data page past the cut
                continue
            if row is not None and row[0] in conns:
                rows.setdefault(rowid, row)
    for rowid in sorted(rows):
        yield rows[rowid]


# --- the reader --------------------------------------------------------------------------


class IntactReader:
    """The messages of a cut bag up to the cut, as import_bag reads rosbags' AnyReader."""

    def __init__(self, path: Path, default_typestore: Typestore) -> None:
        self.path = path
        raw = path.read_bytes()
        self.size_bytes = len(raw)
        self._data = memoryview(raw)
        self._db: _SqliteFile | None = None
        self._conns: dict[int, RecoveredConnection] = {}
        self._defs: dict[Any, Any] = {}
        if raw.startswith(_ROS1_MAGIC):
            self.storage = "ros1"
        elif raw.startswith(_MCAP_MAGIC):
            self.storage = "mcap"
        elif raw.startswith(_SQLITE_MAGIC):
            self.storage = "sqlite3"
            self._db = _SqliteFile(raw, path)
            _sqlite_topics(self._db, self._conns, self._defs)
        else:
            raise BagRecoveryError(f"{path}: neither an MCAP file, a ROS 1 bag nor a .db3")
        count, first, last = 0, None, None
        for _, t_ns, _ in self._scan():
            count += 1
            first = t_ns if first is None else min(first, t_ns)
            last = t_ns if last is None else max(last, t_ns)
        if count == 0:
            raise BagRecoveryError(
                f"{path} is cut short ({self.size_bytes} bytes) and no message in it is intact"
            )
        self.message_count = count
        self.duration_s = (last - first) / 1e9
        self.connections = list(self._conns.values())
        self.typestore = self._typestore(default_typestore)

    def _scan(self) -> Iterator[tuple[int, int, bytes]]:
        if self.storage == "ros1":
            return _ros1_messages(self._data, self._conns, self._defs)
        if self._db is not None:
            return _sqlite_messages(self._db, self._conns)
        return _mcap_messages(self._data, self._conns, self._defs)

    def _typestore(self, default: Typestore) -> Typestore:
        """The definitions the file carries, over the default typestore's."""
        from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

        types: dict = dict(default.fielddefs)
        if self.storage == "ros1":
            for msgtype, text in self._defs.items():
                if text:
                    types.update(get_types_from_msg(text, msgtype))
        else:
            for name, encoding, text in self._defs.values():
                if encoding == "ros2msg" and text:
                    types.update(get_types_from_msg(text, name))
                elif encoding == "ros2idl" and text:
                    sep = "=" * 80 + "\n"
                    for part in text.split(sep)[1:] if text.startswith(sep) else [text]:
                        types.update(get_types_from_idl(part.split("\n", 1)[-1]))
        store = get_typestore(Stores.EMPTY)
        store.register(types)
        return store

    def messages(self, connections: Any = ()) -> Iterator[tuple[RecoveredConnection, int, bytes]]:
        """(connection, log time, raw) of each intact message, in file order."""
        wanted = {c.id for c in connections} if connections else set(self._conns)
        for cid, t_ns, raw in self._scan():
            if cid in wanted:
                yield self._conns[cid], t_ns, raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        if self.storage == "ros1":
            return self.typestore.deserialize_ros1(raw, msgtype)
        return self.typestore.deserialize_cdr(raw, msgtype)

    def summary(self) -> str:
        """What was recovered, in one line."""
        return (
            f"{self.path.name} ({self.size_bytes} bytes) is cut short or damaged: "
            f"imported its intact part, {self.message_count} messages over "
            f"{self.duration_s:.1f} s; the rest is lost"
        )

    def close(self) -> None:
        self._data = memoryview(b"")
        self._db = None


def open_intact(path: Path, default_typestore: Typestore) -> IntactReader:
    """The intact part of the bag at `path`: a .mcap, ROS 1 .bag or ROS 2 .db3 file, or a
    ROS 2 bag folder with one storage file, MCAP or sqlite3 (raises BagRecoveryError when
    none is intact)."""
    if path.is_dir():
        files = sorted([*path.glob("*.mcap"), *path.glob("*.db3")])
        if len(files) != 1:
            raise BagRecoveryError(
                f"{path}: cannot recover a bag folder without exactly one .mcap or .db3 "
                f"file ({len(files)} found)"
            )
        path = files[0]
    return IntactReader(path, default_typestore)
