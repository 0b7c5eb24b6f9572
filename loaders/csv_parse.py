"""CSV record parsing shared by ``decode_csv`` and ``CSVDataset``: TF1's ``record_defaults`` rules,
RFC 4180 field splitting, and typed column decoding with errors that name the record.

Two decoders give the same values: :func:`decode_lines` (exact, pure Python, precise errors) and
:func:`decode_block_fast` (pandas' C parser over many lines at once). The fast one only answers
when it can prove its result equals the exact one (no quotes, every line has the expected number
of fields, every value parses); otherwise it returns ``None`` and the caller runs the exact one,
which also produces the error message or skips the bad rows.

One record is one line: a quoted field may hold the delimiter and doubled quotes (``""``), but
not a newline. An unquoted field may contain a quote character (read literally).
"""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .dtypes import DType, as_dtype, dtype_name, is_string, string
from .errors import InvalidArgumentError

#: The column types ``decode_csv`` supports, as in TF1.
SUPPORTED = (torch.float32, torch.float64, torch.int32, torch.int64, string)
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int32: np.int32, torch.int64: np.int64}
_INT32 = (-(2**31), 2**31 - 1)

#: A decoded column: a numpy array for numbers, a list of ``bytes`` for strings.
ColumnValues = Union[np.ndarray, List[bytes]]


class Column(NamedTuple):
    """One output column: its dtype, its default (``None``: the field is required) and, for a
    categorical string column, the mapping of its text to int64 codes."""

    dtype: DType
    default: Any = None
    categories: Optional[Dict[bytes, int]] = None


class RecordSpec(NamedTuple):
    """How to split and type a record: output columns, the fields they come from, the format."""

    columns: Sequence[Column]
    select: Optional[Sequence[int]] = None  # field index of each column; None: field i -> column i
    num_fields: Optional[int] = None  # exact field count per record; None: at least max(select) + 1
    delim: bytes = b","
    quote: bool = True
    na_value: bytes = b""
    names: Optional[Sequence[str]] = None  # column names per field index, for messages


def _as_bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _checked_dtype(dtype: Any) -> DType:
    dt = as_dtype(dtype)
    if dt not in SUPPORTED:
        raise ValueError(
            f"unsupported type {dtype_name(dt)}; expected one of "
            + ", ".join(dtype_name(d) for d in SUPPORTED)
        )
    return dt


def _is_dtype(value: Any) -> bool:
    return isinstance(value, (torch.dtype, np.dtype)) or (isinstance(value, type) and value is not bool)


def _column_from_value(value: Any) -> Column:
    """A default value gives the type: float -> float32, int -> int32, str/bytes -> string."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        dtype = _checked_dtype(value.dtype)
        if array.size == 0:
            return Column(dtype)
        if array.size != 1:
            raise ValueError(f"a default must hold one value, got shape {tuple(array.shape)}")
        item = array.reshape(()).item()
        return Column(dtype, _as_bytes(item) if is_string(dtype) else item)
    if isinstance(value, (str, bytes)):
        return Column(string, _as_bytes(value))
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        return Column(_checked_dtype(value.dtype), value.item())
    if isinstance(value, float):
        return Column(torch.float32, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Column(torch.int32, check_int32(value))
    raise ValueError(f"cannot use {value!r} as a default; give a number, a string, [] or a dtype")


def check_int32(value: int) -> int:
    """``value`` when it fits int32, else ValueError."""
    if not _INT32[0] <= value <= _INT32[1]:
        raise ValueError(f"{value} is out of range for int32")
    return value


def columns_from_defaults(record_defaults: Sequence[Any]) -> List[Column]:
    """TF1's ``record_defaults``: ``[[1.0], [0], [""], [], [torch.int64], torch.float64, 2.5, ...]``.

    A value (bare or in a one-element list/tensor) is the default and gives the type; an empty
    list means a required float32 column; a dtype (bare or in a list) means a required column.
    Results are cached by value, since TF1 code passes the same list for every record.
    """
    if isinstance(record_defaults, (str, bytes)) or not isinstance(record_defaults, Sequence):
        raise ValueError("record_defaults must be a list with one entry per column")
    key = _cache_key(record_defaults)
    if key is not None and key in _COLUMNS_CACHE:
        return list(_COLUMNS_CACHE[key])
    columns = []
    for index, entry in enumerate(record_defaults):
        try:
            columns.append(_column(entry))
        except ValueError as error:
            raise ValueError(f"record_defaults[{index}]: {error}") from None
    if not columns:
        raise ValueError("record_defaults must name at least one column")
    if key is not None:
        if len(_COLUMNS_CACHE) >= _CACHE_SIZE:
            _COLUMNS_CACHE.clear()
        _COLUMNS_CACHE[key] = tuple(columns)
    return columns


_COLUMNS_CACHE: Dict[Any, Tuple[Column, ...]] = {}
_CACHE_SIZE = 256


def _cache_key(record_defaults: Sequence[Any]) -> Optional[tuple]:
    """A hashable copy of ``record_defaults`` (types kept: 1 and 1.0 differ), or None (tensors)."""
    try:
        return tuple(_frozen(entry) for entry in record_defaults)
    except TypeError:
        return None


def _frozen(entry: Any) -> Any:
    if isinstance(entry, (list, tuple)):
        return (list,) + tuple(_frozen(item) for item in entry)
    if isinstance(entry, (torch.Tensor, np.ndarray)):
        raise TypeError("tensors are not cached")
    return (type(entry), entry, hash(entry))


def _column(entry: Any) -> Column:
    if isinstance(entry, (list, tuple)):
        if len(entry) > 1:
            raise ValueError(f"a default must hold one value, got {len(entry)}")
        if not entry:
            return Column(torch.float32)
        entry = entry[0]
    if _is_dtype(entry):
        return Column(_checked_dtype(entry))
    return _column_from_value(entry)


def split_fields(line: bytes, delim: bytes, quote: bool) -> List[bytes]:
    """The fields of one record; with ``quote``, RFC 4180 quoting: ``"a,b"`` is one field and a
    doubled quote inside quotes is one quote character."""
    if not quote or b'"' not in line:
        return line.split(delim)
    text = line.decode("utf-8", "surrogateescape")
    try:
        rows = list(csv.reader([text], delimiter=delim.decode(), quotechar='"', doublequote=True, strict=True))
    except csv.Error as error:
        raise InvalidArgumentError(f"malformed quoted field ({error})") from None
    if len(rows) != 1:
        raise InvalidArgumentError("malformed quoted field (a record must be one line)")
    return [field.encode("utf-8", "surrogateescape") for field in rows[0]]


def _show(field: bytes) -> str:
    return field.decode("utf-8", "replace")


def parse_number(field: bytes, dtype: DType) -> Any:
    """The int or float that a non-empty ``field`` holds for a numeric ``dtype``; ValueError if none."""
    if b"_" in field:  # Python's int()/float() accept digit separators; CSV does not
        raise ValueError
    if dtype.is_floating_point:
        return float(field)
    try:
        value = int(field)
    except ValueError:
        number = float(field)  # an integral float such as 3.0 is accepted, as pandas does
        if not math.isfinite(number) or not number.is_integer():
            raise
        value = int(number)
    return check_int32(value) if dtype == torch.int32 else value


def _fields_error(spec: RecordSpec, count: int) -> Optional[str]:
    if spec.num_fields is not None:
        return None if count == spec.num_fields else f"expected {spec.num_fields} fields but found {count}"
    need = max(spec.select) + 1 if spec.select is not None else len(spec.columns)
    return None if count >= need else f"expected at least {need} fields but found {count}"


def _label(spec: RecordSpec, field_index: int) -> str:
    if spec.names is None:
        return f"column {field_index}"
    return f"column {field_index} ({spec.names[field_index]!r})"


def decode_record(line: bytes, spec: RecordSpec) -> list:
    """The typed values of one record (exact path); InvalidArgumentError says what is wrong."""
    fields = split_fields(line, spec.delim, spec.quote)
    problem = _fields_error(spec, len(fields))
    if problem:
        raise InvalidArgumentError(problem)
    values = []
    for column_index, column in enumerate(spec.columns):
        field_index = spec.select[column_index] if spec.select is not None else column_index
        field = fields[field_index]
        if field == b"" or field == spec.na_value:
            if column.default is None:
                raise InvalidArgumentError(f"{_label(spec, field_index)} is required but missing")
            field = column.default
        elif not is_string(column.dtype):
            try:
                field = parse_number(field, column.dtype)
            except ValueError:
                raise InvalidArgumentError(
                    f"{_label(spec, field_index)} is not a valid {dtype_name(column.dtype)}: {_show(field)!r}"
                ) from None
        if column.categories is not None:
            code = column.categories.get(field)
            if code is None:
                known = ", ".join(sorted(_show(name) for name in column.categories))
                raise InvalidArgumentError(
                    f"{_label(spec, field_index)} has unknown category {_show(field)!r} (known: {known})"
                )
            field = code
        values.append(field)
    return values


def _as_columns(rows: List[list], spec: RecordSpec) -> List[ColumnValues]:
    out: List[ColumnValues] = []
    for index, column in enumerate(spec.columns):
        values = [row[index] for row in rows]
        if column.categories is not None:
            out.append(np.array(values, dtype=np.int64))
        else:
            out.append(values if is_string(column.dtype) else np.array(values, dtype=_NUMPY[column.dtype]))
    return out


def decode_rows(
    lines: Sequence[bytes],
    spec: RecordSpec,
    locate: Callable[[int], str],
    on_bad_row: Optional[Callable[[int, InvalidArgumentError], None]] = None,
    skip_blank: bool = False,
) -> List[list]:
    """Decode ``lines`` one by one into rows of values. A bad line raises InvalidArgumentError
    prefixed with ``locate(i)`` and quoting the record, or, with ``on_bad_row``, is reported
    there and skipped."""
    rows = []
    for index, line in enumerate(lines):
        if skip_blank and not line:
            continue
        try:
            rows.append(decode_record(line, spec))
        except InvalidArgumentError as error:
            shown = _show(line if len(line) <= 200 else line[:200] + b"...")
            full = InvalidArgumentError(f"{locate(index)}: {error.message} (record: {shown!r})")
            if on_bad_row is None:
                raise full from None
            on_bad_row(index, full)
    return rows


def decode_lines(
    lines: Sequence[bytes],
    spec: RecordSpec,
    locate: Callable[[int], str],
    on_bad_row: Optional[Callable[[int, InvalidArgumentError], None]] = None,
    skip_blank: bool = False,
) -> List[ColumnValues]:
    """:func:`decode_rows`, returned column by column."""
    return _as_columns(decode_rows(lines, spec, locate, on_bad_row, skip_blank), spec)


def _count(block: bytes, byte: bytes) -> int:
    """Occurrences of one byte (numpy's vectorised compare is ~4x faster than bytes.count)."""
    return int(np.count_nonzero(np.frombuffer(block, np.uint8) == byte[0]))


def count_lines(block: bytes) -> int:
    """Lines in ``block`` (a final line without newline counts)."""
    return _count(block, b"\n") + (0 if block.endswith(b"\n") or not block else 1)


def decode_block_fast(block: bytes, num_lines: int, spec: RecordSpec) -> Optional[List[ColumnValues]]:
    """Decode ``num_lines`` newline-separated records with pandas' C parser, or return ``None``
    when the result could differ from :func:`decode_lines` (the caller then uses that)."""
    if not block or (spec.quote and b'"' in block):
        return None
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return None
    num_fields = spec.num_fields
    if num_fields is None:
        first = block[: block.find(b"\n")] if b"\n" in block else block
        num_fields = first.count(spec.delim) + 1
    if _count(block, spec.delim) != (num_fields - 1) * num_lines:
        return None
    import pandas as pd  # the C parser; imported on first use to keep `import loaders` light

    select = list(spec.select) if spec.select is not None else list(range(len(spec.columns)))
    if max(select) >= num_fields:
        return None
    dtypes = {}
    for field_index, column in zip(select, spec.columns):
        if is_string(column.dtype):
            dtypes[field_index] = object
        elif column.dtype.is_floating_point:
            dtypes[field_index] = np.float64
        else:
            dtypes[field_index] = "Int64" if column.default is not None else np.int64
    na_values = sorted({"", spec.na_value.decode("utf-8", "replace")})
    try:
        frame = pd.read_csv(
            io.BytesIO(block), header=None, names=list(range(num_fields)), usecols=sorted(set(select)),
            dtype=dtypes, sep=spec.delim.decode(), quoting=csv.QUOTE_NONE, na_filter=True,
            keep_default_na=False, na_values=na_values, skip_blank_lines=False, engine="c",
        )
    except (ValueError, TypeError, OverflowError):
        return None  # not provably equal: the exact decoder re-reads these lines and names the bad one
    if len(frame) != num_lines or not isinstance(frame.index, pd.RangeIndex):
        return None
    out: List[ColumnValues] = []
    for field_index, column in zip(select, spec.columns):
        series = frame[field_index]
        missing = series.isna().to_numpy()
        if missing.any() and column.default is None:
            return None
        if column.categories is not None:
            codes = series.map({_show(name): code for name, code in column.categories.items()})
            if missing.any():
                codes[missing] = column.categories.get(column.default, -1)
            if codes.isna().any() or (codes < 0).any():
                return None
            values = np.array(codes.to_numpy(), dtype=np.int64)
        elif is_string(column.dtype):
            default = column.default
            values = [default if gap else text.encode("utf-8") for text, gap in zip(series.tolist(), missing)]
        else:
            filled = series.fillna(column.default) if missing.any() else series
            numbers = filled.to_numpy(dtype=np.float64 if column.dtype.is_floating_point else np.int64)
            if column.dtype == torch.int32 and numbers.size and (numbers.min() < _INT32[0] or numbers.max() > _INT32[1]):
                return None
            values = numbers.astype(_NUMPY[column.dtype])  # a writable copy for torch.from_numpy
        out.append(values)
    return out


def to_tensor(values: ColumnValues) -> Union[torch.Tensor, List[bytes]]:
    """A decoded column as what ``decode_csv`` returns: a tensor, or a list of bytes."""
    return values if isinstance(values, list) else torch.from_numpy(np.ascontiguousarray(values))


def scalar(value: Any, column: Column) -> Any:
    """One decoded value as ``decode_csv`` returns it for a single record: a 0-d tensor or bytes."""
    if column.categories is not None:
        return torch.scalar_tensor(value, dtype=torch.int64)
    return value if is_string(column.dtype) else torch.scalar_tensor(value, dtype=column.dtype)


__all__ = [
    "Column", "RecordSpec", "SUPPORTED", "columns_from_defaults", "split_fields", "decode_record",
    "decode_rows", "decode_lines", "decode_block_fast", "scalar", "count_lines", "check_int32", "parse_number", "to_tensor",
]
