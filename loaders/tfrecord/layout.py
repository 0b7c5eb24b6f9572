"""Record layouts: decode Examples that share a layout without walking their structure again.

Records of one dataset almost always repeat the same structure: the same keys in the same order
and the same list sizes, so every tag and length byte sits at the same position. A layout
remembers those structural bytes for one record length; a later record whose structural bytes
are identical would be scanned exactly the same way, so its values are read straight from the
remembered positions. Only a record that the full path decoded (with all of TF's checks)
becomes a layout.

Each layout is compiled to a small straight-line function (as ``collections.namedtuple`` and
``dataclasses`` do): per record it costs a few ``startswith`` checks and one expression per
feature, which is what makes decoding several times faster than protobuf objects. The
generated source holds only integers and names bound in its namespace, never data.

A layout compiled with ``columns=True`` serves batches: a ``FixedLenFeature`` of numbers comes
back as its raw little-endian float bytes or its Python int, so that a whole batch becomes one
tensor per feature (see ``ExampleDecoder.batch``) instead of one small tensor per record.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from loaders.tfrecord.wire import Located, packed_varints, read_varint, single_run

Decode = Callable[[bytes], Optional[dict]]
_FLOAT = np.dtype("<f4")
_LITTLE_ENDIAN = sys.byteorder == "little"


def read_floats(record: bytes, start: int, end: int, shape: Any) -> torch.Tensor:
    """A float32 tensor (reshaped to ``shape`` unless None) from the little-endian floats in ``record[start:end]``."""
    if start == end:  # torch.frombuffer refuses an empty buffer
        values = torch.zeros(0, dtype=torch.float32)
    elif _LITTLE_ENDIAN:
        values = torch.frombuffer(bytearray(record[start:end]), dtype=torch.float32)
    else:
        values = torch.from_numpy(np.frombuffer(record, _FLOAT, (end - start) >> 2, start).astype(np.float32))
    return values if shape is None else values.reshape(shape)


def _read_ints(spec: Any, record: bytes, start: int, end: int) -> Any:
    return spec.output(spec.check_count(packed_varints(record, start, end)))


def _read_scalar_int(spec: Any, record: bytes, start: int, end: int) -> torch.Tensor:
    if end - start <= 10 and record[end - 1] < 0x80:
        value, stop = read_varint(record, start)
        if stop == end:
            return torch.from_numpy(np.array(value - (1 << 64) if value >> 63 else value, np.int64))
    return _read_ints(spec, record, start, end)  # several values, or a malformed one: the count check raises


def _read_missing(spec: Any, record: bytes, start: int, end: int) -> Any:
    return spec.output(spec.values(None))


def _read_list(kind: int) -> Callable[..., Any]:
    def read(spec: Any, record: bytes, start: int, end: int) -> Any:
        return spec.output(spec.values((kind, record, start, end)))

    return read


def _expression(
    n: int, spec: Any, kind: int, record: bytes, start: int, end: int, names: dict, payloads: list, columns: bool
) -> str:
    """Python source reading feature ``n`` from ``record``, binding what it needs in ``names``;
    appends the spans whose bytes may differ between records to ``payloads``. With ``columns``,
    a fixed-length number feature is read as raw float bytes or an int where it can be."""
    names[f"S{n}"] = spec
    run = single_run(record, start, end) if kind else None
    if run is None or (kind == 2 and (run[1] - run[0]) % 4):  # absent, or an unusual list (a float run
        # of partial floats, read in whole floats as TF does): its bytes must then repeat exactly
        names[f"R{n}"] = _read_list(kind) if kind else _read_missing
        return f"R{n}(S{n}, record, {start}, {end})"
    payloads.append(run)
    body, stop = run
    if kind == 1:
        if spec.scalar:
            return f"record[{body}:{stop}]"
        names[f"R{n}"] = _read_list(kind)
        return f"R{n}(S{n}, record, {start}, {end})"
    if kind == 3:
        names[f"R{n}"] = _read_scalar_int if spec.scalar else _read_ints
        call = f"R{n}(S{n}, record, {body}, {stop})"
        scalar = "{}" if columns else "INT(ARRAY({}, I64))"
        if spec.scalar and stop - body == 1:  # a one-byte varint, inline
            return f"({scalar.format(f'record[{body}]')} if record[{body}] < 128 else {call})"
        if spec.scalar and stop - body == 2:
            return (
                f"({scalar.format(f'record[{body}] & 127 | record[{body + 1}] << 7')} "
                f"if record[{body}] >= 128 > record[{body + 1}] else {call})"
            )
        return call
    if columns and spec.stacked:
        return f"record[{body}:{stop}]"
    count = (stop - body) >> 2
    shape = spec.output_shape(count)
    names[f"P{n}"] = None if shape == (count,) else shape
    return f"FLOATS(record, {body}, {stop}, P{n})"


def compile_layout(
    record: bytes, located: Mapping[str, Located], specs: list, columns: bool = False
) -> Optional[Decode]:
    """A function decoding records laid out like ``record`` (None for any other record), or None
    when this record's layout cannot be reused (it needed the protobuf fallback)."""
    payloads: list[tuple[int, int]] = []
    described = {spec.key for spec in specs}
    for key, (kind, buf, start, end) in located.items():
        if buf is not record:
            return None
        if key not in described:
            payloads.append((start, end))  # never parsed inside: any bytes of this length do
    names: dict[str, Any] = {"FLOATS": read_floats, "INT": torch.from_numpy, "ARRAY": np.array, "I64": np.int64}
    values = []
    for n, spec in enumerate(specs):
        kind, _, start, end = located.get(spec.key) or (0, record, 0, 0)
        names[f"K{n}"] = spec.key
        values.append(f"K{n}: {_expression(n, spec, kind, record, start, end, names, payloads, columns)}")
    checks, position = [], 0
    for start, end in sorted(payloads) + [(len(record), len(record))]:
        if start > position:
            names[f"B{len(checks)}"] = record[position:start]
            checks.append(f"record.startswith(B{len(checks)}, {position})")
        position = end
    source = (
        "def decode(record):\n"
        f"    if not ({' and '.join(checks) or 'True'}):\n"
        "        return None\n"
        f"    return {{{', '.join(values)}}}\n"
    )
    exec(compile(source, "<loaders.tfrecord.layout>", "exec"), names)
    return names["decode"]


class LayoutCache:
    """Compiled layouts by record length. A length gets a layout the second time it is seen, the
    first layout of a length stays, and at most ``limit`` are compiled, so datasets whose records
    all differ in length pay only a dictionary lookup."""

    def __init__(self, limit: int = 64, columns: bool = False) -> None:
        self.limit, self.columns = limit, columns
        self.by_length: dict[int, Decode] = {}  # each returns None for a record it does not match
        self._seen: dict[int, int] = {}

    def learn(self, record: bytes, located: Mapping[str, Located], specs: list) -> None:
        """Note a record that the full path just decoded; compile its layout when worthwhile."""
        length = len(record)
        if length in self.by_length or len(self.by_length) >= self.limit:
            return
        if not self._seen.get(length):
            if len(self._seen) >= 64 * self.limit:
                self._seen.clear()
            self._seen[length] = 1
            return
        decode = compile_layout(record, located, specs, self.columns)
        if decode is not None:
            self.by_length[length] = decode


__all__ = ["LayoutCache", "compile_layout", "read_floats"]
