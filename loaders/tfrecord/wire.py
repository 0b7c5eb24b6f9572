"""A fast reader of the protobuf wire format of ``Example`` and ``SequenceExample``.

Serialized Examples as TensorFlow writes them have one canonical layout; walking it in Python
and turning packed ``FloatList`` payloads into arrays with one ``numpy.frombuffer`` call is
several times faster than building protobuf objects and iterating their repeated fields.
Anything outside that layout (unknown fields, merged or reordered messages) is handed to the
protobuf parser, so results always equal protobuf's. This module owns the scan; the
conversion to tensors by feature description lives in :mod:`loaders.tfrecord.example`.

A feature is located as ``(kind, buf, start, end)``: ``kind`` is 0 (no value list), 1 (bytes),
2 (float) or 3 (int64) and ``buf[start:end]`` is the serialized value-list message.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
from google.protobuf.message import DecodeError

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import protos

Located = tuple[int, Any, int, int]
Values = Union[np.ndarray, list]
KIND_NAMES = {0: "none", 1: "bytes", 2: "float", 3: "int64"}
_LIST_FIELDS = {1: "bytes_list", 2: "float_list", 3: "int64_list"}
_FLOAT = np.dtype("<f4")


class _NonCanonical(Exception):
    """The scan met a layout it does not handle; protobuf parses the record instead."""


def read_varint(buf: Any, pos: int) -> tuple[int, int]:
    """Decode the varint at ``pos``: ``(value, position after it)``."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _NonCanonical


def _field(buf: Any, pos: int, tag: int, end: int) -> tuple[int, int]:
    """The body span of the length-delimited field ``tag`` starting at ``pos``, inside ``end``."""
    if buf[pos] != tag:
        raise _NonCanonical
    size, body = read_varint(buf, pos + 1)
    if body + size > end:
        raise _NonCanonical
    return body, body + size


def _map_entries(buf: Any, pos: int, end: int) -> list[tuple[str, int, int]]:
    """``(key, value start, value end)`` of each map entry in a canonical Features/FeatureLists body."""
    entries = []
    while pos < end:
        pos, entry_end = _field(buf, pos, 0x0A, end)
        key_start, pos = _field(buf, pos, 0x0A, entry_end)
        key = str(buf[key_start:pos], "utf-8")
        if pos == entry_end:
            entries.append((key, pos, pos))
            continue
        pos, value_end = _field(buf, pos, 0x12, entry_end)
        if value_end != entry_end:
            raise _NonCanonical
        entries.append((key, pos, entry_end))
        pos = entry_end
    return entries


def _feature(buf: Any, pos: int, end: int) -> Located:
    """Locate the value list of the canonical ``Feature`` message in ``buf[pos:end]``."""
    if pos == end:
        return 0, buf, pos, pos
    tag = buf[pos]
    if tag not in (0x0A, 0x12, 0x1A):
        raise _NonCanonical
    body, stop = _field(buf, pos, tag, end)
    if stop != end:
        raise _NonCanonical
    return tag >> 3, buf, body, end


def _message_field(buf: Any, tag: int) -> tuple[int, int]:
    """The span of a message whose body is the single field ``tag`` (Example's ``features``)."""
    if not buf:
        return 0, 0
    body, stop = _field(buf, 0, tag, len(buf))
    if stop != len(buf):
        raise _NonCanonical
    return body, stop


def _from_message(feature: Any) -> Located:
    """Locate a protobuf ``Feature`` object's value list by re-serializing it (the slow path)."""
    kind = feature.WhichOneof("kind")
    if kind is None:
        return 0, b"", 0, 0
    data = getattr(feature, kind).SerializeToString()
    return {"bytes_list": 1, "float_list": 2, "int64_list": 3}[kind], data, 0, len(data)


def _parse(message: Any, serialized: Any, what: str) -> Any:
    try:
        return message.FromString(bytes(serialized))
    except (DecodeError, RuntimeError) as exc:
        raise InvalidArgumentError(f"could not parse a serialized {what}: {exc}") from None


def scan_example(serialized: Any) -> dict[str, Located]:
    """Every feature of a serialized ``Example``: ``{key: (kind, buf, start, end)}``."""
    buf = serialized
    try:
        pos, end = _message_field(buf, 0x0A)
        return {key: _feature(buf, start, stop) for key, start, stop in _map_entries(buf, pos, end)}
    except (_NonCanonical, IndexError, UnicodeDecodeError):
        example = _parse(protos.Example, serialized, "Example")
        return {key: _from_message(feature) for key, feature in example.features.feature.items()}


def scan_sequence_example(serialized: Any) -> tuple[dict[str, Located], dict[str, list[Located]]]:
    """The context features and the feature lists of a serialized ``SequenceExample``."""
    buf = serialized
    try:
        context: dict[str, Located] = {}
        lists: dict[str, list[Located]] = {}
        pos, end = 0, len(buf)
        while pos < end:
            tag = buf[pos]
            if tag not in (0x0A, 0x12):
                raise _NonCanonical
            body, stop = _field(buf, pos, tag, end)
            for key, start, entry_end in _map_entries(buf, body, stop):
                if tag == 0x0A:
                    context[key] = _feature(buf, start, entry_end)
                else:
                    lists[key] = _feature_list(buf, start, entry_end)
            pos = stop
        return context, lists
    except (_NonCanonical, IndexError, UnicodeDecodeError):
        example = _parse(protos.SequenceExample, serialized, "SequenceExample")
        return (
            {key: _from_message(f) for key, f in example.context.feature.items()},
            {key: [_from_message(f) for f in fl.feature] for key, fl in example.feature_lists.feature_list.items()},
        )


def _feature_list(buf: Any, pos: int, end: int) -> list[Located]:
    """The ``Feature`` of every step of a canonical ``FeatureList`` body."""
    steps = []
    while pos < end:
        body, pos = _field(buf, pos, 0x0A, end)
        steps.append(_feature(buf, body, pos))
    return steps


def _fields(buf: Any, pos: int, end: int, what: str) -> list[tuple[int, int, int, int]]:
    """``(field number, wire type, start, end)`` of each field of a value list (unknown ones too)."""
    fields = []
    try:
        while pos < end:
            key, pos = read_varint(buf, pos)
            wire = key & 7
            if wire == 0:
                start = pos
                _, pos = read_varint(buf, pos)
            elif wire == 2:
                size, start = read_varint(buf, pos)
                pos = start + size
            elif wire in (1, 5):
                start, pos = pos, pos + (8 if wire == 1 else 4)
            else:
                raise _NonCanonical
            if pos > end:
                raise _NonCanonical
            fields.append((key >> 3, wire, start, pos))
    except (_NonCanonical, IndexError):
        raise InvalidArgumentError(f"could not parse a serialized {what}: malformed field at byte {pos}") from None
    return fields


def _malformed(what: str, offset: int) -> InvalidArgumentError:
    return InvalidArgumentError(f"could not parse a serialized {what}: malformed value at byte {offset}")


def _few_varints(buf: Any, pos: int, end: int) -> np.ndarray:
    """Decode a few packed varints in Python (cheaper than numpy for a handful of bytes)."""
    values = []
    try:
        while pos < end:
            value, pos = read_varint(buf, pos)
            values.append(value - (1 << 64) if value >> 63 else value)
    except (_NonCanonical, IndexError):
        raise _malformed("Int64List", pos) from None
    if pos != end:
        raise _malformed("Int64List", end)
    return np.array(values, dtype=np.int64)


def _varints(buf: Any, start: int, end: int) -> np.ndarray:
    """Decode the packed varints in ``buf[start:end]`` as int64 (two's complement, like protobuf)."""
    raw = np.frombuffer(buf, np.uint8, end - start, start)
    last = raw < 0x80
    if last.all():
        return raw.astype(np.int64)
    ends = np.flatnonzero(last)
    if not len(ends) or ends[-1] != len(raw) - 1:
        raise _malformed("Int64List", end)
    starts = np.concatenate(([0], ends[:-1] + 1))
    place = np.arange(len(raw)) - np.repeat(starts, ends - starts + 1)
    if place.max() > 9:
        raise _malformed("Int64List", start + int(starts[np.argmax(ends - starts > 9)]))
    parts = (raw & 0x7F).astype(np.uint64) << (7 * place).astype(np.uint64)
    return np.add.reduceat(parts, starts).view(np.int64)


def single_run(buf: Any, start: int, end: int) -> Optional[tuple[int, int]]:
    """The body of a value list made of exactly one field-1 run (a packed array or one bytes item)."""
    if end - start < 2 or buf[start] != 0x0A:
        return None
    size, body = read_varint(buf, start + 1)
    return (body, end) if body + size == end else None


def packed_varints(buf: Any, start: int, end: int) -> np.ndarray:
    """The int64 values of a packed varint run ``buf[start:end]``."""
    return _few_varints(buf, start, end) if end - start <= 16 else _varints(buf, start, end)


def decode_values(kind: int, buf: Any, start: int, end: int) -> Values:
    """The values of a located value list: a list of bytes, or a float32 / int64 numpy array."""
    if kind == 0:
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
    fields = _fields(buf, start, end, ("BytesList", "FloatList", "Int64List")[kind - 1])
    if kind == 2:
        runs = []
        for number, wire, a, b in fields:
            if number == 1 and wire in (2, 5):
                if (b - a) % 4:
                    raise _malformed("FloatList", a)
                runs.append(np.frombuffer(buf, _FLOAT, (b - a) // 4, a))
        return np.concatenate(runs).astype(np.float32) if runs else np.zeros(0, np.float32)
    if kind == 3:
        runs = [packed_varints(buf, a, b) for number, wire, a, b in fields if number == 1 and wire in (0, 2)]
        return np.concatenate(runs) if runs else np.zeros(0, np.int64)
    return [bytes(buf[a:b]) for number, wire, a, b in fields if number == 1 and wire == 2]


__all__ = [
    "KIND_NAMES", "Located", "Values", "decode_values", "packed_varints", "read_varint", "scan_example", "scan_sequence_example",
    "single_run",
]
