"""TF1's ``decode_csv`` (records of any shape to one tensor per column) and the ``CSVDataset``
for ``torch.utils.data`` (defined in :mod:`loaders.csv_dataset`).

Porting: ``tf.decode_csv(value, record_defaults=[[1.0], [0], [""]])`` is
``loaders.decode_csv(value, record_defaults=[[1.0], [0], [""]])``; instead of symbolic tensors
you get values right away: numeric columns as ``torch.Tensor`` of the records' shape (0-d for
one record) and string columns as ``bytes`` (nested lists of ``bytes`` for many records).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .csv_dataset import CSVDataset
from .csv_fast import decode_block_fast
from .csv_parse import RecordSpec, columns_from_defaults, decode_lines, decode_rows, scalar, to_tensor
from .dtypes import is_string
from .errors import InvalidArgumentError

#: Batches at least this long go through pandas' C parser first (its fixed cost is ~0.3 ms);
#: both decoders give the same answers, so this only moves the speed.
FAST_BATCH = 128

Record = Union[bytes, str]


def _as_record(record: Any) -> bytes:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode("utf-8")
    if isinstance(record, np.bytes_):
        return bytes(record)
    raise TypeError(f"decode_csv: a record must be bytes or str, got {type(record).__name__}")


def _flatten(records: Any) -> Tuple[List[int], List[bytes]]:
    """The shape of a (nested, rectangular) list or array of records, and its records in order."""
    if isinstance(records, np.ndarray):
        return list(records.shape), [_as_record(record) for record in records.reshape(-1).tolist()]
    if isinstance(records, (bytes, str, np.bytes_)) or not isinstance(records, (list, tuple)):
        return [], [_as_record(records)]
    try:  # the common case, a flat list of records, without a call per record
        return [len(records)], [_as_record(record) for record in records]
    except TypeError:
        if not any(isinstance(item, (list, tuple, np.ndarray)) for item in records):
            raise
    parts = [_flatten(item) for item in records]
    shapes = {tuple(shape) for shape, _ in parts}
    if len(shapes) > 1:
        raise ValueError(f"decode_csv: records must be rectangular, found rows of shapes {sorted(shapes)}")
    inner = list(shapes.pop()) if shapes else []
    return [len(records)] + inner, [record for _, flat in parts for record in flat]


def _nest(values: list, shape: List[int]) -> list:
    """A flat list of bytes as nested lists of ``shape``."""
    if len(shape) <= 1:
        return values
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _delim(field_delim: Union[str, bytes]) -> bytes:
    delim = field_delim.encode("utf-8") if isinstance(field_delim, str) else bytes(field_delim)
    if len(delim) != 1:
        raise InvalidArgumentError(f"field_delim must be a single byte, got {field_delim!r}")
    return delim


def decode_csv(
    records: Union[Record, Sequence[Any]],
    record_defaults: Sequence[Any],
    field_delim: Union[str, bytes] = ",",
    use_quote_delim: bool = True,
    name: Optional[str] = None,
    na_value: Union[str, bytes] = "",
    select_cols: Optional[Sequence[int]] = None,
) -> List[Any]:
    """Convert CSV records to one value per column, as TF1's ``tf.decode_csv``.

    ``records`` is one record, or a list (nested lists, an array) of them: every output has
    its shape. ``record_defaults`` has one entry per output column: a default value gives the
    type (``1.0`` float32, ``0`` int32, ``""`` string; or a tensor for another dtype) and fills
    empty fields and fields equal to ``na_value``; an empty list (float32) or a dtype marks the
    column required. ``select_cols`` (increasing field indices) picks the fields to decode.
    With ``use_quote_delim``, a field in double quotes may hold the delimiter, newlines and ``""``.
    Numbers follow TF's syntax (``1e3`` is no int; ``0x1p3`` is a float; float32 rounds once).
    A wrong field count, a missing required field, an unparsable field or an empty record raises
    ``InvalidArgumentError`` (a ``ValueError``) naming the column, the record and an excerpt.
    ``name`` (TF's op name) is accepted and unused.
    """
    columns = columns_from_defaults(record_defaults)
    if select_cols is not None:
        select_cols = [int(index) for index in select_cols]
        if len(select_cols) != len(columns):
            raise ValueError(
                f"select_cols has {len(select_cols)} entries but record_defaults has {len(columns)}: they must match"
            )
        if any(index < 0 for index in select_cols):
            raise ValueError(f"select_cols must be non-negative indices, got {select_cols}")
        if any(a >= b for a, b in zip(select_cols, select_cols[1:])):
            raise ValueError(f"select_cols must be strictly increasing, got {select_cols}")
    spec = RecordSpec(
        columns, select=select_cols, num_fields=None if select_cols is not None else len(columns),
        delim=_delim(field_delim), quote=use_quote_delim,
        na_value=na_value.encode("utf-8") if isinstance(na_value, str) else bytes(na_value),
    )
    shape, lines = _flatten(records)
    if not shape:
        (row,) = decode_rows(lines, spec, _locate)
        return [scalar(value, column) for value, column in zip(row, columns)]
    decoded = _decode_fast(lines, spec) if len(lines) >= FAST_BATCH else None
    if decoded is None:
        decoded = decode_lines(lines, spec, _locate)
    if len(shape) == 1:
        return [to_tensor(values) for values in decoded]
    return [_nest(values, shape) if is_string(column.dtype) else to_tensor(values).reshape(shape)
            for values, column in zip(decoded, columns)]


def _decode_fast(lines: List[bytes], spec: RecordSpec) -> Optional[list]:
    """The C parser's answer for these records, or None: records holding CR or LF keep TF's
    meaning only in the exact decoder."""
    block = b"\n".join(lines)
    if b"\r" in block:
        return None
    return decode_block_fast(block, spec, len(lines))  # declines when a record holds a newline


def _locate(index: int) -> str:
    return f"decode_csv: record {index}"


__all__ = ["decode_csv", "CSVDataset"]
