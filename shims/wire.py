"""Protobuf's wire format for the three small messages on the shim binary's critical path.

containerd waits for ``start`` (BootstrapParams in, BootstrapResult out) and runs ``-info``
(RuntimeInfo out) before each Create. Importing protobuf costs more than these messages, so they
are read and written here by field number; ``proto/bootstrap.proto`` and ``proto/types.proto``
are their schema, and the tests hold this module to the generated classes.
"""

from __future__ import annotations

VARINT, LEN = 0, 2


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 enums go out as ten-byte two's complement, as Go writes them
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: str | bytes | int) -> bytes:
    """One field: a string/bytes/sub-message (length-delimited) or an int (varint). Empty means absent."""
    if isinstance(value, int):
        return _varint(number << 3 | VARINT) + _varint(value) if value else b""
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | LEN) + _varint(len(data)) + data if data else b""


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(number, value) for each field in order; ints for varints, bytes for length-delimited.

    Raises ValueError on anything else (fixed32/64 and groups do not occur in these messages),
    which is how ``start`` tells a BootstrapParams from stdin it does not understand."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if kind == VARINT:
            value, i = _read_varint(data, i)
            out.append((number, value))
        elif kind == LEN:
            size, i = _read_varint(data, i)
            if i + size > len(data):
                raise ValueError("truncated field")
            out.append((number, data[i : i + size]))
            i += size
        else:
            raise ValueError(f"wire type {kind}")
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i
