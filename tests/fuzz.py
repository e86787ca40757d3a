"""A seeded structural mutator for JSON documents (config.json, image index/manifest/config).

Each case takes a valid document and applies one to three mutations at random paths: a value
replaced by a hostile one (wrong type, huge or negative number, NUL bytes, a very long string,
deep nesting), a key removed, an unknown key added, a list emptied or duplicated. The same seed
always gives the same cases, so a failure names a reproducible case number.
"""

from __future__ import annotations

import copy
import random
from typing import Any

HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1.5, 2**63, 2**64, 2**80, -(2**63) - 1, "", "x", "\x00", "a\x00b", "../../..",
    "/", "é", "x" * 5000, [], [None], [1, "a"], {}, {"": None}, {"x": {"y": {"z": []}}}, "sha256:" + "0" * 64,
    "sha256:zz", 1e308, -0.0, "\ud800", "a\udcff",  # a lone surrogate escape (Go: U+FFFD), a byte not UTF-8
    float("nan"), float("-inf"),  # json.dumps writes NaN and -Infinity, which are no JSON
]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _mutate_once(doc: Any, rng: random.Random) -> Any:
    paths = _paths(doc)
    path = rng.choice(paths)
    if not path:
        return rng.choice(HOSTILE) if rng.random() < 0.1 else doc
    parent, key = _get(doc, path[:-1]), path[-1]
    action = rng.random()
    if action < 0.55:
        parent[key] = copy.deepcopy(rng.choice(HOSTILE))
    elif action < 0.7:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif action < 0.8 and isinstance(parent, dict):
        parent[rng.choice(["unknownField", "x", "", "\x00"])] = copy.deepcopy(rng.choice(HOSTILE))
    elif action < 0.9 and isinstance(parent[key], list):
        parent[key] = parent[key] * rng.choice([0, 2, 50])
    else:
        value = parent[key]
        if isinstance(value, str):
            parent[key] = rng.choice([value + "\x00", value * 100, value.upper(), "/" + value, value[:1]])
        elif isinstance(value, int) and not isinstance(value, bool):
            parent[key] = rng.choice([value + 1, -value - 1, value * 2**40, str(value)])
        else:
            parent[key] = copy.deepcopy(rng.choice(HOSTILE))
    return doc


def mutations(base: Any, count: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        doc = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            doc = _mutate_once(doc, rng)
        out.append(doc)
    return out


HOSTILE_STRINGS = ["", "x", "\x00", "a\x00b", "../../..", "/", "é", "x" * 5000, "/proc/self/root", "-1", " "]
HOSTILE_BYTES = [b"", b"\x00", b"{", b"[]", b"null", b"1", b'"x"', b"[" * 100000, b"\xff\xfe", b"{}" * 3,
                 b'{"args": []}', b'{"memory": {"limit": -5}}', b"\x0a\x05hello"]
INT_EXTREMES = {"int32": [-(2**31), -1, 0, 1, 2**31 - 1], "uint32": [0, 1, 2**31, 2**32 - 1],
                "int64": [-(2**63), -1, 0, 2**63 - 1], "uint64": [0, 1, 2**63, 2**64 - 1]}


def _fields(msg: Any, depth: int = 0) -> list[tuple[Any, Any]]:
    """Every (message, field) reachable from ``msg``, set or not: nested messages, and each
    element of a repeated message field, down three levels."""
    out = [(msg, f) for f in msg.DESCRIPTOR.fields]
    if depth < 3:
        for f in msg.DESCRIPTOR.fields:
            if f.message_type is None or f.message_type.GetOptions().map_entry:
                continue
            if f.is_repeated:
                for element in getattr(msg, f.name):
                    out += _fields(element, depth + 1)
            elif msg.HasField(f.name):
                out += _fields(getattr(msg, f.name), depth + 1)
    return out


def _hostile_scalar(field: Any, rng: random.Random, current: Any) -> Any:
    kind = field.type
    if kind == field.TYPE_STRING:
        if current and rng.random() < 0.3:
            return rng.choice([current + "\x00", current * 50, current.upper(), "/" + current, current[:1]])
        return rng.choice(HOSTILE_STRINGS)
    if kind == field.TYPE_BYTES:  # often a message of its own (an Any's value): changed field by field too
        action = rng.random()
        if current and action < 0.35:
            return _mutate_wire(current, rng)
        return _mutate_bytes(current, rng) if current and action < 0.6 else rng.choice(HOSTILE_BYTES)
    if kind == field.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == field.TYPE_ENUM:
        return rng.choice([0, 1, 2, 99, -1, 2**31 - 1])
    width = {field.TYPE_INT32: "int32", field.TYPE_SINT32: "int32", field.TYPE_SFIXED32: "int32",
             field.TYPE_UINT32: "uint32", field.TYPE_FIXED32: "uint32", field.TYPE_INT64: "int64",
             field.TYPE_SINT64: "int64", field.TYPE_SFIXED64: "int64"}.get(kind, "uint64")
    if kind in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
        return rng.choice([0.0, -1.0, 1e308, float("nan")])
    return rng.choice(INT_EXTREMES[width])


def _mutate_message(msg: Any, rng: random.Random) -> None:
    owner, field = rng.choice(_fields(msg))
    name = field.name
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        entries = getattr(owner, name)
        key = rng.choice(HOSTILE_STRINGS[:4])
        entries[key] = rng.choice(HOSTILE_STRINGS)
    elif field.is_repeated:
        values = getattr(owner, name)
        action = rng.random()
        if action < 0.3:
            del values[:]
        elif action < 0.6 and len(values):
            values.extend(list(values) * rng.choice([1, 20]))
        elif field.message_type is not None:
            values.add()
        else:
            values.append(_hostile_scalar(field, rng, ""))
    elif field.message_type is not None:
        owner.ClearField(name) if rng.random() < 0.5 else getattr(owner, name).SetInParent()
    else:
        setattr(owner, name, _hostile_scalar(field, rng, getattr(owner, name)))


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _wire_field(number: int, value: int | bytes) -> bytes:
    """One field, kept even when zero or empty (a peer may send it so)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _mutate_wire(data: bytes, rng: random.Random, depth: int = 0) -> bytes:
    """A message read by field number, with one field changed: dropped or repeated, a number made
    bytes or an extreme, bytes made a number, or (a message itself) changed in turn. Found what
    flipping bytes rarely does: a CRI message's number sent as bytes."""
    from mrun.shims import wire

    try:
        parsed = wire.fields(data)
    except ValueError:
        return _mutate_bytes(data, rng)
    if not parsed:
        return data + _wire_field(rng.randint(1, 9), rng.choice([b"x", 7, 2**64 - 1]))
    k = rng.randrange(len(parsed))
    number, value = parsed[k]
    action = rng.random()
    if action < 0.15:
        del parsed[k]
    elif action < 0.3:
        parsed.insert(k, (number, value))
    elif isinstance(value, int):
        parsed[k] = (number, rng.choice([b"abc", b"", b"\xff", 0, 2**31, 2**63, 2**64 - 1]))
    elif depth < 4 and action < 0.8:
        parsed[k] = (number, _mutate_wire(value, rng, depth + 1))
    else:
        parsed[k] = (number, rng.choice([0, 1, 2**64 - 1, b"", b"\x00" * 3]))
    return b"".join(_wire_field(n, v) for n, v in parsed)


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    action = rng.random()
    if action < 0.3 and data:
        return data[: rng.randrange(len(data))]  # cut short
    if action < 0.6 and data:
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if action < 0.8:
        return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))


def proto_mutations(base: Any, count: int, seed: int) -> list[bytes]:
    """``count`` serialized variants of the protobuf message ``base``: most with one to three fields
    set to hostile values (strings, bytes, integer extremes of the field's width, enum values no
    one defined, repeated fields emptied, multiplied or grown, nested messages cleared), some cut
    short or with bytes flipped, as a broken peer would send them."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.15:
            out.append(_mutate_bytes(base.SerializeToString(), rng))
            continue
        msg = type(base)()
        msg.CopyFrom(base)
        for _ in range(rng.randint(1, 3)):
            _mutate_message(msg, rng)
        out.append(msg.SerializeToString())
    return out


# A ustar header's fields: (offset, length), as tarfile and Go's archive/tar lay them out.
TAR_FIELDS = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12),
              "mtime": (136, 12), "typeflag": (156, 1), "linkname": (157, 100), "uname": (265, 32),
              "devmajor": (329, 8), "devminor": (337, 8), "prefix": (345, 155)}
TAR_NAMES = [b"../escape", b"/etc/abs", b"a/../../b", b".wh..wh..opq", b".wh.", b".wh.bin", b"bin/.wh.true",
             b"x" * 100, b"\xff\xfe", b"bin", b".", b"", b"etc/a/under", b"lnk/through", b"dev/null", b"\x00x",
             b".wh..wh..opq/x", b"etc/.wh..wh.plnk.x"]
TAR_NUMBERS = [b"77777777777", b"-1", b"zzzz", b"\x80\xff\xff\xff\xff\xff\xff\xff", b"\xff" * 8, b"", b"0",
               b"7777777", b"4755", b"1777", b"99999999999"]
TAR_TYPES = list(b"0123456789LKxgSAD\x00") + [0xFF]
PAX_RECORDS = [b"path=../../x", b"path=/abs", b"linkpath=/etc/passwd", b"size=-5", b"size=99999999999",
               b"mtime=1e30", b"mtime=nan", b"uid=-1", b"uid=99999999999999", b"SCHILY.xattr.trusted.overlay.opaque=y",
               b"SCHILY.xattr.user.overlay.redirect=/x", b"SCHILY.xattr.=x", b"SCHILY.xattr.security.capability=\xff",
               b"path=\xff\xfe", b"path=", b"GNU.sparse.map=0,1", b"hdrcharset=BINARY"]


def _checksummed(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header[:512])


def _pax(records: list[bytes]) -> bytes:
    out = b""
    for record in records:
        body = b" " + record + b"\n"
        n = len(body) + 1
        while len(str(n).encode()) + len(body) != n:
            n += 1
        out += str(n).encode() + body
    return out


def tar_mutations(base: bytes, headers: list[int], count: int, seed: int) -> list[bytes]:
    """``count`` variants of the tar ``base`` (``headers``: each member's header offset): a header
    field set to a hostile name, number or type (its checksum made right again, most often, so the
    reader goes on to what the field means), a pax header with a hostile record put before a
    member, the stream cut short or bytes flipped, some gzip-compressed (some of those cut)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            offset = rng.choice(headers)
            if action < 0.6:
                field = rng.choice(list(TAR_FIELDS))
                start, length = TAR_FIELDS[field]
                if field in ("name", "linkname", "prefix", "uname"):
                    value = rng.choice(TAR_NAMES)
                elif field == "typeflag":
                    value = bytes([rng.choice(TAR_TYPES)])
                else:
                    value = rng.choice(TAR_NUMBERS)
                value = value[:length].ljust(length, b"\x00")
                header = bytearray(data[offset:offset + 512])
                header[start:start + length] = value
                if rng.random() < 0.85:
                    _checksummed(header)
                data[offset:offset + 512] = header
            elif action < 0.8:
                records = _pax([rng.choice(PAX_RECORDS) for _ in range(rng.randint(1, 2))])
                header = bytearray(512)
                header[0:9] = b"PaxHeader"
                header[100:108] = b"0000644\x00"
                header[124:136] = b"%011o\x00" % len(records)
                header[156:157] = b"x"
                header[257:265] = b"ustar\x0000"
                _checksummed(header)
                padded = records + b"\x00" * (-len(records) % 512)
                data[offset:offset] = bytes(header) + padded
            elif action < 0.9:
                data = data[:rng.randrange(len(data))]
                break
            else:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
        blob = bytes(data)
        if rng.random() < 0.25:
            import gzip

            blob = gzip.compress(blob, mtime=0)
            if rng.random() < 0.3:
                blob = blob[:rng.randrange(len(blob))]
        out.append(blob)
    return out
