"""The protobuf wire format of ``Example`` value lists, read as TensorFlow's parser reads it.

This module owns the primitives: varints (up to 10 bytes, bits past bit 63 dropped, as in
protobuf), :class:`Stream` (a cursor that narrows its limit to a nested message's length as the
CodedInputStream behind TF's ``example_proto_fast_parsing.cc`` does), and the decoding of one
value list (``BytesList``, ``FloatList``, ``Int64List``) to a list of bytes or a numpy array: a
single packed run in one ``numpy.frombuffer`` call, anything else by TF's rules (items unpacked,
or the first packed run only; a float run read in whole floats). :mod:`loaders.tfrecord.messages`
locates the value lists inside Examples and SequenceExamples.

A feature is located as ``(kind, buf, start, end)``: ``kind`` is 0 (no value list), 1 (bytes),
2 (float), 3 (int64) or -1 (a value list of no known type), and ``buf[start:end]`` is the body of
the value-list message.
"""
from __future__ import annotations

import struct
from typing import Any, Optional, Union

import numpy as np

from loaders.errors import InvalidArgumentError

Located = tuple[int, Any, int, int]
Values = Union[np.ndarray, list]
KIND_NAMES = {-1: "unknown", 0: "none", 1: "bytes", 2: "float", 3: "int64"}
_LIST_NAMES = {1: "BytesList", 2: "FloatList", 3: "Int64List"}
KIND_OF_TAG = {0x0A: 1, 0x12: 2, 0x1A: 3}
_FLOAT = np.dtype("<f4")
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
#: The most characters of a record's bytes or key that an error message quotes.
EXCERPT_CHARS = 60


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)``, cut to about ``limit`` characters (with its full length) so that an error
    about a huge key or value stays one readable line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} items" if hasattr(value, "__len__") else f"{len(text)} characters"
    return f"{text[:limit]}... ({size})"


class NotCanonical(Exception):
    """Internal: a fast path met a layout it does not handle (the caller falls back, never re-raises)."""


class WireError(Exception):
    """Internal: TF's parser would fail at byte ``args[0]`` (callers raise InvalidArgumentError)."""


def read_varint(buf: Any, pos: int) -> tuple[int, int]:
    """Decode the varint at ``pos``: ``(value, position after it)``. Like protobuf, up to 10 bytes,
    and bits above bit 63 are dropped (so ``ff ff ff ff ff ff ff ff ff 7f`` is ``2**64 - 1``)."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _U64, pos
        shift += 7
        if shift > 63:
            raise NotCanonical


def signed(value: int) -> int:
    """A varint's 64 bits as int64 (two's complement)."""
    return value - (1 << 64) if value >> 63 else value


class Stream:
    """A cursor over ``buf[pos:limit]`` that reads as the CodedInputStream of TF's parser does:
    a nested message's length only narrows the limit (a length past the end is cut to it)."""

    __slots__ = ("buf", "pos", "limit")

    def __init__(self, buf: Any, pos: int, limit: int) -> None:
        self.buf, self.pos, self.limit = buf, pos, limit

    def at_end(self) -> bool:
        return self.pos >= self.limit

    def expect(self, byte: int) -> bool:
        """Step over ``byte`` when it comes next (TF's ``ExpectTag``)."""
        if self.pos < self.limit and self.buf[self.pos] == byte:
            self.pos += 1
            return True
        return False

    def varint(self, mask: int = _U32) -> int:
        """A varint of up to 10 bytes inside the limit, cut to ``mask`` (32 bits: ``ReadVarint32``)."""
        result = shift = 0
        for _ in range(10):
            if self.pos >= self.limit:
                break
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result & mask
            shift += 7
        raise WireError(self.pos)

    def push(self, size: int) -> int:
        """Narrow the limit to the next ``size`` bytes; returns the old limit for :meth:`pop`."""
        old, self.limit = self.limit, min(self.pos + size, self.limit)
        return old

    def pop(self, old: int) -> None:
        self.limit = old

    def span(self) -> tuple[int, int]:
        """A length-delimited payload, which must lie inside the limit."""
        size = self.varint()
        if self.pos + size > self.limit:
            raise WireError(self.pos)
        self.pos += size
        return self.pos - size, self.pos

    def skip_unknown(self) -> None:
        """Skip one field of an unknown number (TF's ``SkipExtraneousTag``: no groups)."""
        wire = self.varint() & 7
        if wire == 0:
            self.varint()
        elif wire in (1, 5):
            self.pos += 8 if wire == 1 else 4
            if self.pos > self.limit:
                raise WireError(self.limit)
        elif wire == 2:
            self.pos = min(self.pos + self.varint(), self.limit)
        else:
            raise WireError(self.pos)


def _malformed(kind: int, offset: int) -> InvalidArgumentError:
    return InvalidArgumentError(f"could not parse a serialized {_LIST_NAMES[kind]}: malformed value at byte {offset}")


def _few_varints(buf: Any, pos: int, end: int) -> np.ndarray:
    """Decode a few packed varints in Python (cheaper than numpy for a handful of bytes)."""
    values = []
    try:
        while pos < end:
            value, pos = read_varint(buf, pos)
            values.append(signed(value))
    except (NotCanonical, IndexError):
        raise _malformed(3, pos) from None
    if pos != end:
        raise _malformed(3, end)
    return np.array(values, dtype=np.int64)


def _varints(buf: Any, start: int, end: int) -> np.ndarray:
    """Decode the packed varints in ``buf[start:end]`` as int64 (two's complement, like protobuf)."""
    raw = np.frombuffer(buf, np.uint8, end - start, start)
    last = raw < 0x80
    if last.all():
        return raw.astype(np.int64)
    ends = np.flatnonzero(last)
    if not len(ends) or ends[-1] != len(raw) - 1:
        raise _malformed(3, end)
    starts = np.concatenate(([0], ends[:-1] + 1))
    place = np.arange(len(raw)) - np.repeat(starts, ends - starts + 1)
    if place.max() > 9:
        raise _malformed(3, start + int(starts[np.argmax(ends - starts > 9)]))
    parts = (raw & 0x7F).astype(np.uint64) << (7 * place).astype(np.uint64)  # bits past 63 drop out
    return np.add.reduceat(parts, starts).view(np.int64)


def single_run(buf: Any, start: int, end: int) -> Optional[tuple[int, int]]:
    """The body of a value list made of exactly one field-1 run (a packed array or one bytes item)."""
    if end - start < 2 or buf[start] != 0x0A:
        return None
    try:
        size, body = read_varint(buf, start + 1)
    except (NotCanonical, IndexError):
        return None
    return (body, end) if body + size == end else None


def packed_varints(buf: Any, start: int, end: int) -> np.ndarray:
    """The int64 values of a packed varint run ``buf[start:end]``."""
    return _few_varints(buf, start, end) if end - start <= 16 else _varints(buf, start, end)


def decode_values(kind: int, buf: Any, start: int, end: int) -> Values:
    """The values of a located value list: a list of bytes, or a float32 / int64 numpy array."""
    if kind <= 0:
        return []
    run = single_run(buf, start, end)
    if run is not None:  # the usual case: one packed array, or one bytes value
        body, stop = run
        if kind == 1:
            return [bytes(buf[body:stop])]
        if kind == 3:
            return packed_varints(buf, body, stop)
        if (stop - body) % 4 == 0:
            return np.frombuffer(buf, _FLOAT, (stop - body) // 4, body).astype(np.float32)
    try:
        return _rule_values(kind, Stream(buf, start, end))
    except WireError as exc:
        raise _malformed(kind, exc.args[0]) from None


def _rule_values(kind: int, s: Stream) -> Values:
    """A value list by TF's rules: bytes items; or numbers, either unpacked or the first packed
    run (whatever follows that run is ignored, and a float run is read in whole floats)."""
    buf = s.buf
    if kind == 1:
        items = []
        while not s.at_end():
            if not s.expect(0x0A):
                raise WireError(s.pos)
            a, b = s.span()
            items.append(bytes(buf[a:b]))
        return items
    if s.at_end():
        return np.zeros(0, np.float32 if kind == 2 else np.int64)
    if s.expect(0x0A):
        size = s.varint()
        if kind == 3:
            s.push(size)
            return packed_varints(buf, s.pos, s.limit)
        count = size // 4
        if s.pos + 4 * count > s.limit:
            raise WireError(s.limit)
        return np.frombuffer(buf, _FLOAT, count, s.pos).astype(np.float32)
    tag = 0x08 if kind == 3 else 0x0D
    values: list = []  # int64 values, or the bits of float32 ones (kept exact, NaN payloads too)
    while not s.at_end():
        if not s.expect(tag):
            raise WireError(s.pos)
        if kind == 3:
            values.append(signed(s.varint(_U64)))
        else:
            if s.pos + 4 > s.limit:
                raise WireError(s.limit)
            values.append(struct.unpack_from("<I", buf, s.pos)[0])
            s.pos += 4
    return np.array(values, np.int64) if kind == 3 else np.array(values, np.uint32).view(np.float32)

