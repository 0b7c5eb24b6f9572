"""Locating the features of serialized ``Example`` and ``SequenceExample`` messages, by TensorFlow's rules.

Serialized Examples as TensorFlow writes them have one canonical layout; walking it in Python is
several times faster than building protobuf objects. Any other layout is read by a port of the
rules of TensorFlow's own parser (``example_proto_fast_parsing.cc``), which are not protobuf's:
unknown fields are skipped only at the top level; a map entry holds exactly a key and a value
(in either order, in an Example); for a repeated key the last entry wins (in an Example, the
last one with a value list); a ``Feature`` is read from its first value list; only the described
features are looked at. A SequenceExample's maps want the key first, and each step of a feature
list exactly one value list whose packed run fills it. The result is ``{key: Located}`` (see
:mod:`loaders.tfrecord.wire`), which :mod:`loaders.tfrecord.example` turns into tensors.
"""
from __future__ import annotations

from typing import Any, Collection, Optional

from loaders.errors import InvalidArgumentError
from loaders.tfrecord.wire import KIND_OF_TAG, Located, NotCanonical, Stream, WireError, excerpt, read_varint

# ---------------------------------------------------------------------------- the canonical layout


def _field(buf: Any, pos: int, tag: int, end: int) -> tuple[int, int]:
    """The body span of the length-delimited field ``tag`` starting at ``pos``, inside ``end``."""
    if buf[pos] != tag:
        raise NotCanonical
    size, body = read_varint(buf, pos + 1)
    if body + size > end:
        raise NotCanonical
    return body, body + size


def _map_entries(buf: Any, pos: int, end: int) -> list[tuple[str, int, int]]:
    """``(key, value start, value end)`` of each map entry in a canonical Features/FeatureLists body."""
    entries = []
    while pos < end:
        pos, entry_end = _field(buf, pos, 0x0A, end)
        key_start, pos = _field(buf, pos, 0x0A, entry_end)
        key = str(buf[key_start:pos], "utf-8")
        pos, value_end = _field(buf, pos, 0x12, entry_end)
        if value_end != entry_end:
            raise NotCanonical
        entries.append((key, pos, entry_end))
        pos = entry_end
    return entries


def _feature(buf: Any, pos: int, end: int) -> Located:
    """Locate the value list of the canonical ``Feature`` message in ``buf[pos:end]``."""
    if pos == end:
        return 0, buf, pos, pos
    tag = buf[pos]
    if tag not in KIND_OF_TAG:
        raise NotCanonical
    body, stop = _field(buf, pos, tag, end)
    if stop != end:
        raise NotCanonical
    return tag >> 3, buf, body, end


def _canonical_example(buf: Any) -> dict[str, Located]:
    if not buf:
        return {}
    pos, end = _field(buf, 0, 0x0A, len(buf))
    if end != len(buf):
        raise NotCanonical
    found: dict[str, Located] = {}
    for key, start, stop in _map_entries(buf, pos, end):
        located = _feature(buf, start, stop)
        if located[0] or key not in found:  # TF: the last entry with a value list wins
            found[key] = located
    return found


def _canonical_sequence_example(buf: Any) -> tuple[dict[str, Located], dict[str, list[Located]]]:
    context: dict[str, Located] = {}
    lists: dict[str, list[Located]] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        if tag not in (0x0A, 0x12):
            raise NotCanonical
        body, stop = _field(buf, pos, tag, end)
        for key, start, entry_end in _map_entries(buf, body, stop):
            if tag == 0x0A:
                context[key] = _feature(buf, start, entry_end)
            else:
                lists[key] = _canonical_steps(buf, start, entry_end)
        pos = stop
    return context, lists


def _canonical_steps(buf: Any, pos: int, end: int) -> list[Located]:
    steps = []
    while pos < end:
        body, pos = _field(buf, pos, 0x0A, end)
        steps.append(_feature(buf, body, pos))
    return steps


# ---------------------------------------------------------------------------- TensorFlow's rules


def _rule_entries(s: Stream, into: dict, any_order: bool, keep_empty: bool) -> None:
    """The entries of one Features / FeatureLists message into ``into`` as ``{key: (start, end)}``."""
    outer = s.push(s.varint())
    while not s.at_end():
        if not s.expect(0x0A):
            raise WireError(s.pos)
        inner = s.push(s.varint())
        key = value = (s.pos, s.pos)
        if any_order:  # an Example's entry: a key and a value, in either order
            for _ in range(2):
                tag = 0 if s.at_end() else s.varint()
                if tag not in (0x0A, 0x12):
                    raise WireError(s.pos)
                if tag == 0x0A:
                    key = s.span()
                else:
                    value = s.span()
        else:
            if not s.expect(0x0A):
                raise WireError(s.pos)
            key = s.span()
            if not s.expect(0x12):
                raise WireError(s.pos)
            value = s.span()
        if not s.at_end():
            raise WireError(s.pos)
        s.pop(inner)
        name = bytes(s.buf[key[0]:key[1]]).decode("utf-8", "surrogateescape")
        if keep_empty or value[1] > value[0] or name not in into:
            into[name] = value
    s.pop(outer)


def _rule_message(buf: Any, parts: dict[int, dict], any_order: bool, keep_empty: bool, what: str) -> None:
    """Read a whole Example (parts ``{0x0A: features}``) or SequenceExample (``0x0A`` context,
    ``0x12`` feature lists) by TF's rules; other top-level fields are skipped."""
    s = Stream(buf, 0, len(buf))
    try:
        while not s.at_end():
            part = parts.get(buf[s.pos])
            if part is None:
                s.skip_unknown()
            else:
                s.pos += 1
                _rule_entries(s, part, any_order, keep_empty)
    except WireError as exc:
        raise InvalidArgumentError(f"could not parse a serialized {what}: malformed field at byte {exc.args[0]}") from None


def _rule_feature(buf: Any, start: int, end: int, what: str, strict: bool = False) -> Located:
    """Locate the value list of the ``Feature`` in ``buf[start:end]``: the first one, its length
    cut to the Feature's end. ``strict`` (a feature list's step) wants exactly one value list."""
    if start == end:
        return 0, buf, start, start
    kind = KIND_OF_TAG.get(buf[start], -1)
    if kind < 0:
        return -1, buf, start, start
    s = Stream(buf, start + 1, end)
    try:
        size = s.varint()
        if strict and s.pos + size < end:
            raise WireError(s.pos + size)
        located = kind, buf, s.pos, min(s.pos + size, end)
        if strict:
            _check_run(located)
    except WireError as exc:
        raise InvalidArgumentError(f"could not parse {what}: malformed value list at byte {exc.args[0]}") from None
    return located


def _check_run(located: Located) -> None:
    """A step's packed run must fill its value list (and hold whole floats), as TF requires."""
    kind, buf, start, end = located
    if kind in (2, 3) and start < end and buf[start] == 0x0A:
        s = Stream(buf, start + 1, end)
        size = s.varint()
        if s.pos + size < end or (kind == 2 and (end - s.pos) % 4):
            raise WireError(start)


def _rule_steps(buf: Any, start: int, end: int, key: str) -> list[Located]:
    """The located ``Feature`` of every step of the ``FeatureList`` in ``buf[start:end]``."""
    s, spans = Stream(buf, start, end), []
    try:
        while not s.at_end():
            if not s.expect(0x0A):
                raise WireError(s.pos)
            size = s.varint()
            spans.append((s.pos, min(s.pos + size, end)))
            s.pos = spans[-1][1]
    except WireError as exc:
        raise InvalidArgumentError(
            f"could not parse feature list {excerpt(key)}: malformed FeatureList at byte {exc.args[0]}") from None
    return [_rule_feature(buf, a, b, f"feature list {excerpt(key)}", strict=True) for a, b in spans]


def _wanted(entries: dict, keys: Optional[Collection[str]]) -> dict:
    return entries if keys is None else {key: entries[key] for key in keys if key in entries}


def scan_example(serialized: Any, keys: Optional[Collection[str]] = None) -> dict[str, Located]:
    """The features of a serialized ``Example``: ``{key: (kind, buf, start, end)}``; with ``keys``,
    a record that is not canonical is read for those keys only (as TF reads only described ones)."""
    try:
        return _canonical_example(serialized)
    except (NotCanonical, IndexError, UnicodeDecodeError):
        pass
    entries: dict = {}
    _rule_message(serialized, {0x0A: entries}, True, False, "Example")
    return {key: _rule_feature(serialized, a, b, f"feature {excerpt(key)}")
            for key, (a, b) in _wanted(entries, keys).items()}


def scan_sequence_example(
    serialized: Any, context_keys: Optional[Collection[str]] = None, list_keys: Optional[Collection[str]] = None,
) -> tuple[dict[str, Located], dict[str, list[Located]]]:
    """The context features and the feature lists (one located ``Feature`` per step) of a serialized
    ``SequenceExample``; with keys, only those are read from a record that is not canonical."""
    try:
        context, lists = _canonical_sequence_example(serialized)
    except (NotCanonical, IndexError, UnicodeDecodeError):
        contexts: dict = {}
        entries: dict = {}
        _rule_message(serialized, {0x0A: contexts, 0x12: entries}, False, True, "SequenceExample")
        context = {key: _rule_feature(serialized, a, b, f"context feature {excerpt(key)}")
                   for key, (a, b) in _wanted(contexts, context_keys).items()}
        return context, {key: _rule_steps(serialized, a, b, key) for key, (a, b) in _wanted(entries, list_keys).items()}
    for key, steps in _wanted(lists, list_keys).items():
        for step in steps:
            try:
                _check_run(step)
            except WireError as exc:
                raise InvalidArgumentError(
                    f"could not parse feature list {excerpt(key)}: malformed value list at byte {exc.args[0]}") from None
    return context, lists


__all__ = ["scan_example", "scan_sequence_example"]
