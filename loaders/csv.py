"""TF1's ``decode_csv`` (one record or a batch of records to one tensor per column) and the
``CSVDataset`` for ``torch.utils.data`` (defined in :mod:`loaders.csv_dataset`).

Porting: ``tf.decode_csv(value, record_defaults=[[1.0], [0], [""]])`` is
``loaders.decode_csv(value, record_defaults=[[1.0], [0], [""]])``; instead of symbolic tensors
you get values right away: numeric columns as ``torch.Tensor`` (0-d for one record, 1-D for a
batch) and string columns as ``bytes`` (a list of ``bytes`` for a batch).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

from .csv_dataset import CSVDataset
from .csv_parse import RecordSpec, columns_from_defaults, decode_block_fast, decode_lines, decode_rows, scalar, to_tensor

#: Batches at least this long go through pandas' C parser first (its fixed cost is ~0.3 ms).
FAST_BATCH = 128

Record = Union[bytes, str]


def _as_record(record: Any) -> bytes:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode("utf-8")
    raise TypeError(f"decode_csv: a record must be bytes or str, got {type(record).__name__}")


def _delim(field_delim: Union[str, bytes]) -> bytes:
    delim = field_delim.encode("utf-8") if isinstance(field_delim, str) else bytes(field_delim)
    if len(delim) != 1 or delim in b'"\r\n':
        raise ValueError(f"field_delim must be a single character other than a quote or newline, got {field_delim!r}")
    return delim


def decode_csv(
    records: Union[Record, Sequence[Record]],
    record_defaults: Sequence[Any],
    field_delim: Union[str, bytes] = ",",
    use_quote_delim: bool = True,
    na_value: Union[str, bytes] = "",
    select_cols: Optional[Sequence[int]] = None,
) -> List[Any]:
    """Convert CSV records to one value per column, as TF1's ``tf.decode_csv``.

    ``record_defaults`` has one entry per output column: a default value gives the type
    (``1.0`` float32, ``0`` int32, ``""`` string; or a tensor for another dtype) and fills empty
    fields and fields equal to ``na_value``; an empty list (float32) or a dtype marks the column
    required. ``select_cols`` (increasing field indices) picks the fields to decode. With
    ``use_quote_delim``, a field in double quotes may hold the delimiter and ``""`` (RFC 4180).
    A wrong field count, a missing required field or unparsable text raises
    ``InvalidArgumentError`` (a ``ValueError``) naming the column, the text and the record.
    """
    columns = columns_from_defaults(record_defaults)
    if select_cols is not None:
        select_cols = [int(index) for index in select_cols]
        if len(select_cols) != len(columns):
            raise ValueError(
                f"select_cols has {len(select_cols)} entries but record_defaults has {len(columns)}: they must match"
            )
        if any(index < 0 for index in select_cols) or any(a >= b for a, b in zip(select_cols, select_cols[1:])):
            raise ValueError(f"select_cols must be increasing non-negative indices, got {select_cols}")
    na = na_value.encode("utf-8") if isinstance(na_value, str) else bytes(na_value)
    spec = RecordSpec(
        columns, select=select_cols, num_fields=None if select_cols is not None else len(columns),
        delim=_delim(field_delim), quote=use_quote_delim, na_value=na,
    )
    if isinstance(records, (bytes, str)):
        (row,) = decode_rows([_as_record(records)], spec, _locate)
        return [scalar(value, column) for value, column in zip(row, columns)]
    lines = [_as_record(record) for record in records]
    decoded = decode_block_fast(b"\n".join(lines), len(lines), spec) if len(lines) >= FAST_BATCH else None
    if decoded is None:
        decoded = decode_lines(lines, spec, _locate)
    return [to_tensor(column) for column in decoded]


def _locate(index: int) -> str:
    return f"decode_csv: record {index}"


__all__ = ["decode_csv", "CSVDataset"]
