"""Integrity of model files: damaged checkpoints, TorchScript and ONNX files are refused.

Neither ``torch.load`` nor ``torch.jit.load`` checks the CRC-32 that the zip
archive of a ``.pt`` or TorchScript file stores for every member, and ONNX
Runtime runs an ONNX file whose weight bytes were flipped without a word: a
damaged model would be evaluated, exported and would drive the robot. So every
model file is checked here before it is loaded:

- checkpoints (``.pt``) and TorchScript files are zip archives: every member
  is read and its CRC-32 compared (:func:`check_zip`, Python's
  ``zipfile.ZipFile.testzip``) before torch sees the file;
- ONNX files carry a SHA-256 written at export time in the model's
  ``metadata_props`` under :data:`ONNX_CHECKSUM_KEY`: the digest of the
  serialised model *without* that one entry (graph, weights, opsets and the
  other metadata, ``robot_ssl`` included). :func:`check_onnx` cuts the entry out
  of the file's bytes with a minimal protobuf walk of the top-level ModelProto
  fields (no onnx package needed: a robot only has onnxruntime), recomputes the
  digest and compares; the verified bytes are then handed to ONNX Runtime, so
  the file is read once. An ONNX file without the entry (exported by an older
  robot-ssl, or by another tool) is refused too: export it again.

These checks detect accidental damage (bad storage, truncated copies, flipped
bits), not a deliberate forgery: whoever can write a model file can also
rewrite its checksums. Unsafe pickles in checkpoints are refused by
``torch.load(..., weights_only=True)``; :func:`refusal_reason` turns torch's
long message into a short one.

Every failure raises :class:`ModelIntegrityError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from pathlib import Path

from robot_ssl.core.errors import RobotSSLError

__all__ = [
    "ONNX_CHECKSUM_KEY",
    "ModelIntegrityError",
    "check_onnx",
    "check_zip",
    "one_line",
    "refusal_reason",
    "stamp_onnx_checksum",
]

ONNX_CHECKSUM_KEY = "robot_ssl_sha256"
_METADATA_PROPS = 14  # ModelProto.metadata_props (repeated StringStringEntryProto)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ModelIntegrityError(RobotSSLError):
    """A model file is damaged (CRC or checksum mismatch, truncated) or unsafe to load."""


def one_line(text: object, limit: int = 240) -> str:
    """First non-empty line of `text` without terminal colour codes, at most `limit` chars."""
    lines = [ln.strip() for ln in _ANSI.sub("", str(text)).splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def refusal_reason(exc: BaseException) -> str:
    """A short reason from torch's multi-line `weights_only` refusal (e.g. 'GLOBAL os.system')."""
    text = _ANSI.sub("", str(exc))
    found = re.search(r"GLOBAL\s+([\w.]+)", text)
    if found:
        return f"GLOBAL {found.group(1)}"
    skip = ("weights only load failed", "please file an issue", "check the documentation")
    for line in text.splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not line.lower().startswith(skip):
            return one_line(line, 120)
    return type(exc).__name__


# -- zip archives (checkpoints, TorchScript) -----------------------------------------------


def check_zip(path: str | Path, what: str = "model file") -> None:
    """Read every member of the zip archive `path` and check its CRC-32; raise if damaged."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except FileNotFoundError:
        raise ModelIntegrityError(f"no such {what}: {path}") from None
    except OSError as e:
        raise ModelIntegrityError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as e:
        raise ModelIntegrityError(
            f"{path}: damaged {what} (broken zip archive: {one_line(e, 80)})"
        ) from None
    if bad is not None:
        raise ModelIntegrityError(
            f"{path}: damaged {what}: archive member {bad} fails its CRC check "
            "(the file was corrupted after it was written)"
        )


# -- ONNX ----------------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or invalid varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes, start: int = 0, end: int | None = None):
    """(field number, wire type, field start, payload start, field end) of a protobuf message."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        field_start = pos
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            payload = pos
        elif wire == 1:
            payload, pos = pos, pos + 8
        elif wire == 2:
            length, payload = _varint(data, pos)
            pos = payload + length
        elif wire == 5:
            payload, pos = pos, pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if number == 0 or pos > end:
            raise ValueError("truncated or invalid protobuf message")
        yield number, wire, field_start, payload, pos


def _checksum_entries(data: bytes) -> list[tuple[int, int, str]]:
    """(start, end, value) of every top-level metadata_props entry whose key is the checksum's."""
    found = []
    for number, wire, start, payload, end in _fields(data):
        if number != _METADATA_PROPS or wire != 2:
            continue
        key, value = b"", b""
        for n, w, _, p, e in _fields(data, payload, end):
            if w == 2 and n == 1:
                key = data[p:e]
            elif w == 2 and n == 2:
                value = data[p:e]
        if key == ONNX_CHECKSUM_KEY.encode():
            found.append((start, end, value.decode("ascii", "replace")))
    return found


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stamp_onnx_checksum(model_bytes: bytes) -> bytes:
    """`model_bytes` (a serialised ModelProto without a checksum) with its checksum entry added.

    The entry is appended as one more top-level metadata_props field; protobuf
    readers accept fields in any order, and :func:`check_onnx` finds it by
    key wherever a later re-serialisation puts it.
    """
    if _checksum_entries(model_bytes):
        raise ValueError("the model already has a checksum entry")
    key, value = ONNX_CHECKSUM_KEY.encode(), _digest(model_bytes).encode()
    entry = _len_field(1, key) + _len_field(2, value)
    return model_bytes + _len_field(_METADATA_PROPS, entry)


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def check_onnx(path: str | Path) -> bytes:
    """The bytes of ONNX file `path` after checking its robot-ssl checksum; raise if damaged."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelIntegrityError(f"no such model file: {path}") from None
    except OSError as e:
        raise ModelIntegrityError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        entries = _checksum_entries(data)
    except ValueError as e:
        raise ModelIntegrityError(f"{path}: damaged ONNX file ({e})") from None
    if not entries:
        raise ModelIntegrityError(
            f"{path}: ONNX file has no robot-ssl checksum ({ONNX_CHECKSUM_KEY}), so damage "
            "cannot be detected: export it again with robot-ssl export"
        )
    if len(entries) > 1:
        raise ModelIntegrityError(f"{path}: damaged ONNX file (several checksum entries)")
    start, end, stored = entries[0]
    actual = _digest(data[:start] + data[end:])
    if actual != stored:
        raise ModelIntegrityError(
            f"{path}: damaged ONNX file: its content does not match the checksum written at "
            "export (the file was corrupted after it was written)"
        )
    return data
