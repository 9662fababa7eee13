"""A minimal Thrift compact-protocol codec, enough to edit Parquet footers.

Parquet keeps its file metadata (schema, row groups and the byte offsets of
every column chunk) as one Thrift compact-protocol struct at the end of the
file. To splice row groups that workers encoded into one output file,
:mod:`framepar.io.parquet_concat` parses that struct, shifts the offsets and
writes it back. The codec is generic: a struct is a ``dict`` from field id to
``(type, value)``, so fields it does not know survive a round trip unchanged.
"""

from __future__ import annotations

from typing import Any

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)

Struct = dict[int, tuple[int, Any]]


class ThriftError(ValueError):
    """The bytes are not a Thrift compact-protocol struct this codec understands."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ThriftError("truncated Thrift data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, ttype: int) -> Any:
        if ttype in (TRUE, FALSE):  # only inside lists; struct fields carry it in the type
            return self.byte() == TRUE
        if ttype == BYTE:
            return self.byte()
        if ttype in (I16, I32, I64):
            return self.zigzag()
        if ttype == DOUBLE:
            raw = bytes(self.data[self.pos : self.pos + 8])
            self.pos += 8
            return raw
        if ttype == BINARY:
            n = self.varint()
            raw = bytes(self.data[self.pos : self.pos + n])
            self.pos += n
            return raw
        if ttype in (LIST, SET):
            header = self.byte()
            size, etype = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            return (etype, [self.value(etype) for _ in range(size)])
        if ttype == STRUCT:
            return self.struct()
        raise ThriftError(f"unsupported Thrift type {ttype}")

    def struct(self) -> Struct:
        fields: Struct = {}
        last = 0
        while True:
            header = self.byte()
            if header == STOP:
                return fields
            delta, ttype = header >> 4, header & 0x0F
            fid = last + delta if delta else self.zigzag()
            if ttype in (TRUE, FALSE):
                fields[fid] = (ttype, ttype == TRUE)
            else:
                fields[fid] = (ttype, self.value(ttype))
            last = fid


def _varint(n: int, out: bytearray) -> None:
    while True:
        if n < 0x80:
            out.append(n)
            return
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _zigzag(n: int, out: bytearray) -> None:
    _varint((n << 1) ^ (n >> 63), out)


def _write_value(ttype: int, value: Any, out: bytearray) -> None:
    if ttype in (TRUE, FALSE):
        out.append(TRUE if value else FALSE)
    elif ttype == BYTE:
        out.append(value & 0xFF)
    elif ttype in (I16, I32, I64):
        _zigzag(value, out)
    elif ttype == DOUBLE:
        out += value
    elif ttype == BINARY:
        _varint(len(value), out)
        out += value
    elif ttype in (LIST, SET):
        etype, items = value
        if len(items) < 15:
            out.append((len(items) << 4) | etype)
        else:
            out.append(0xF0 | etype)
            _varint(len(items), out)
        for item in items:
            _write_value(etype, item, out)
    elif ttype == STRUCT:
        _write_struct(value, out)
    else:
        raise ThriftError(f"unsupported Thrift type {ttype}")


def _write_struct(fields: Struct, out: bytearray) -> None:
    last = 0
    for fid in sorted(fields):
        ttype, value = fields[fid]
        wire = (TRUE if value else FALSE) if ttype in (TRUE, FALSE) else ttype
        if 0 < fid - last <= 15:
            out.append(((fid - last) << 4) | wire)
        else:
            out.append(wire)
            _zigzag(fid, out)
        if ttype not in (TRUE, FALSE):
            _write_value(ttype, value, out)
        last = fid
    out.append(STOP)


def loads(data: bytes) -> Struct:
    """Parse one struct from ``data``."""
    return _Reader(data).struct()


def dumps(fields: Struct) -> bytes:
    """Serialise a struct parsed by :func:`loads` (possibly edited)."""
    out = bytearray()
    _write_struct(fields, out)
    return bytes(out)
