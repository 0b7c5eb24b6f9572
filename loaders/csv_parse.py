"""CSV record parsing shared by ``decode_csv`` and ``CSVDataset``: TF1's ``record_defaults`` rules,
TensorFlow's field splitting and number syntax, and typed column decoding with errors that name
the record.

This is the exact decoder (pure Python, precise errors). :mod:`loaders.csv_fast` decodes many
records at once with pandas' C parser where that provably gives this module's answers.

Fields follow TensorFlow's ``DecodeCSV`` kernel: a field in double quotes may hold the delimiter,
CR, LF and doubled quotes (``""``); a quote, CR or LF inside an unquoted field is an error; CR and
LF at the start of a field are skipped; an empty record has no fields. Error messages quote at
most a short excerpt of a field or record.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .csv_numbers import INT_RANGE, parse_float, parse_int
from .dtypes import DType, as_dtype, dtype_name, is_string, string
from .errors import InvalidArgumentError

#: The column types ``decode_csv`` supports, as in TF1.
SUPPORTED = (torch.float32, torch.float64, torch.int32, torch.int64, string)
NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.int32: np.int32, torch.int64: np.int64}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: How much of a bad field, or a bad record, an error message quotes.
FIELD_EXCERPT, RECORD_EXCERPT = 40, 120

#: A decoded column: a numpy array for numbers, a list of ``bytes`` for strings.
ColumnValues = Union[np.ndarray, List[bytes]]


class Column(NamedTuple):
    """One output column: its dtype, its default (``None``: the field is required) and, for a
    categorical string column, the mapping of its text to int64 codes."""

    dtype: DType
    default: Any = None
    categories: Optional[Dict[bytes, int]] = None


class RecordSpec(NamedTuple):
    """How to split and type a record: output columns, the fields they come from, the format.

    With ``select`` and no ``num_fields`` (``decode_csv``'s ``select_cols``), fields after the
    last selected one are neither parsed nor counted, as in TF."""

    columns: Sequence[Column]
    select: Optional[Sequence[int]] = None  # field index of each column; None: field i -> column i
    num_fields: Optional[int] = None  # exact field count per record
    delim: bytes = b","
    quote: bool = True
    na_value: bytes = b""
    names: Optional[Sequence[str]] = None  # column names per field index, for messages


def excerpt(data: bytes, limit: int = FIELD_EXCERPT) -> str:
    """``data`` as an error message quotes it: at most ``limit`` bytes, then its full size."""
    text = repr(data[:limit].decode("utf-8", "replace"))
    return text if len(data) <= limit else f"{text}... ({len(data)} bytes)"


def _as_bytes(value: Union[str, bytes]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _checked_dtype(dtype: Any) -> DType:
    dt = as_dtype(dtype)
    if dt not in SUPPORTED:
        raise TypeError(
            f"unsupported type {dtype_name(dt)}; expected one of " + ", ".join(dtype_name(d) for d in SUPPORTED)
        )
    return dt


def _is_dtype(value: Any) -> bool:
    return isinstance(value, (torch.dtype, np.dtype)) or (isinstance(value, type) and value is not bool)


def _column_from_value(value: Any) -> Column:
    """A default value gives the type: float -> float32, int -> int32 (int64 when it needs it),
    str/bytes -> string; a tensor or numpy value keeps its dtype."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        dtype = _checked_dtype(value.dtype)
        if array.ndim > 1:
            raise ValueError(f"a default must be a scalar or a vector of one value, got shape {tuple(array.shape)}")
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
        for dtype in (torch.int32, torch.int64):
            if INT_RANGE[dtype][0] <= value <= INT_RANGE[dtype][1]:
                return Column(dtype, value)
        raise TypeError(f"the default {value} does not fit int64")
    raise TypeError(f"cannot use {value!r} as a default; give a number, a string, [] or a dtype")


def columns_from_defaults(record_defaults: Sequence[Any]) -> List[Column]:
    """TF1's ``record_defaults``: ``[[1.0], [0], [""], [], [torch.int64], torch.float64, 2.5, ...]``.

    A value (bare or in a one-element list/tensor) is the default and gives the type; an empty
    list means a required float32 column; a dtype (bare or in a list) means a required column.
    Not a list: TypeError; a bad entry: TypeError or ValueError, as TF raises them.
    Results are cached by value, since TF1 code passes the same list for every record.
    """
    if isinstance(record_defaults, (str, bytes)) or not isinstance(record_defaults, Sequence):
        raise TypeError(
            f"record_defaults must be a list with one entry per column, not {type(record_defaults).__name__}"
        )
    key = _cache_key(record_defaults)
    if key is not None and key in _COLUMNS_CACHE:
        return list(_COLUMNS_CACHE[key])
    columns = []
    for index, entry in enumerate(record_defaults):
        try:
            columns.append(_column(entry))
        except (TypeError, ValueError) as error:
            raise type(error)(f"record_defaults[{index}]: {error}") from None
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
        if isinstance(entry, (list, tuple)):
            raise ValueError("a default must be a scalar or a vector of at most one value, got a nested list")
    if _is_dtype(entry):
        return Column(_checked_dtype(entry))
    return _column_from_value(entry)


def split_fields(line: bytes, delim: bytes, quote: bool, select: Optional[Sequence[int]] = None) -> List[bytes]:
    """The fields of one record, split as TF's ``DecodeCSV`` splits them (see the module doc).

    With ``select`` (increasing field indices), only those fields are returned and parsing stops
    after the last of them. A malformed field raises InvalidArgumentError.
    """
    if not line:
        return []
    if (not quote or b'"' not in line) and b"\n" not in line and b"\r" not in line:
        fields = line.split(delim)
        return fields if select is None else [fields[index] for index in select if index < len(fields)]
    return _split_quoted(line, delim[0], quote, select)


def _split_quoted(line: bytes, delim: int, quote: bool, select: Optional[Sequence[int]]) -> List[bytes]:
    """TF's field loop, for records holding quotes, CR or LF."""
    size, index, parsed, fields = len(line), 0, 0, []
    while index < size:
        if line[index] in b"\r\n":  # skipped at the start of a field
            index += 1
            continue
        if quote and line[index] == 34:  # '"'
            field, index = _quoted_field(line, index + 1, delim, parsed)
        else:
            end = line.find(delim, index)
            end = size if end < 0 else end
            field = line[index:end]
            if (quote and b'"' in field) or b"\n" in field or b"\r" in field:
                raise InvalidArgumentError(
                    f"field {parsed}: an unquoted field cannot hold a quote, CR or LF: {excerpt(field)}"
                )
            index = end + 1
        if select is None or select[len(fields)] == parsed:
            fields.append(field)
            if select is not None and len(fields) == len(select):
                return fields
        parsed += 1
    if line[-1] == delim and (select is None or select[len(fields)] == parsed):
        fields.append(b"")  # a record ending in the delimiter ends with an empty field
    return fields


def _quoted_field(line: bytes, index: int, delim: int, parsed: int) -> Tuple[bytes, int]:
    """The text of the quoted field whose content starts at ``index``, and where the next starts."""
    size, parts = len(line), []
    while index < size - 1:
        found = line.find(b'"', index, size - 1)
        if found < 0:
            parts.append(line[index:size - 1])
            index = size - 1
            break
        parts.append(line[index:found])
        if line[found + 1] == delim:
            index = found
            break
        if line[found + 1] != 34:
            raise InvalidArgumentError(
                f"malformed quoted field {parsed}: a quote inside quotes must be doubled: {excerpt(line[found:])}"
            )
        parts.append(b'"')
        index = found + 2
    if not (index < size and line[index] == 34 and (index == size - 1 or line[index + 1] == delim)):
        raise InvalidArgumentError(
            f"malformed quoted field {parsed}: it must end with a quote followed by the delimiter or the end "
            "of the record"
        )
    return b"".join(parts), index + 2


def _fields_error(spec: RecordSpec, count: int) -> Optional[str]:
    if spec.num_fields is not None:
        return None if count == spec.num_fields else f"expected {spec.num_fields} fields but found {count}"
    need = len(spec.columns)
    return None if count == need else f"expected {need} selected fields (select_cols) but found {count}"


def _label(spec: RecordSpec, field_index: int) -> str:
    if spec.names is None:
        return f"column {field_index}"
    return f"column {field_index} ({spec.names[field_index]!r})"


def _unknown_category(spec: RecordSpec, field_index: int, field: bytes, categories: Dict[bytes, int]) -> str:
    try:
        field.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"{_label(spec, field_index)} is not valid UTF-8 (byte {error.start}): {excerpt(field)}"
    known = sorted(name.decode("utf-8", "replace") for name in categories)
    shown = ", ".join(repr(name[:FIELD_EXCERPT]) for name in known[:10]) + (", ..." if len(known) > 10 else "")
    return f"{_label(spec, field_index)} has unknown category {excerpt(field)} (known: {shown})"


def decode_record(line: bytes, spec: RecordSpec) -> list:
    """The typed values of one record (exact path); InvalidArgumentError says what is wrong."""
    selected = spec.select is not None and spec.num_fields is None
    fields = split_fields(line, spec.delim, spec.quote, spec.select if selected else None)
    problem = _fields_error(spec, len(fields))
    if problem:
        raise InvalidArgumentError(problem)
    values = []
    for column_index, column in enumerate(spec.columns):
        field_index = spec.select[column_index] if spec.select is not None else column_index
        field = fields[column_index if selected else field_index]
        if field == b"" or field == spec.na_value:
            if column.default is None:
                raise InvalidArgumentError(f"{_label(spec, field_index)} is required but missing")
            field = column.default
        elif not is_string(column.dtype):
            try:
                field = (parse_float if column.dtype.is_floating_point else parse_int)(field, column.dtype)
            except ValueError:
                raise InvalidArgumentError(
                    f"{_label(spec, field_index)} is not a valid {dtype_name(column.dtype)}: {excerpt(field)}"
                ) from None
        if column.categories is not None:
            code = column.categories.get(field)
            if code is None:
                raise InvalidArgumentError(_unknown_category(spec, field_index, field, column.categories))
            field = code
        values.append(field)
    return values


def _as_columns(rows: List[list], spec: RecordSpec) -> List[ColumnValues]:
    out: List[ColumnValues] = []
    for index, column in enumerate(spec.columns):
        values = [row[index] for row in rows]
        if column.categories is not None:
            out.append(np.array(values, dtype=np.int64))
        elif is_string(column.dtype):
            out.append(values)
        else:
            with np.errstate(over="ignore"):  # beyond float32's range is inf, as in TF
                out.append(np.array(values, dtype=NUMPY[column.dtype]))
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
            full = InvalidArgumentError(f"{locate(index)}: {error.message} (record: {excerpt(line, RECORD_EXCERPT)})")
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


def to_tensor(values: ColumnValues) -> Union[torch.Tensor, List[bytes]]:
    """A decoded column as what ``decode_csv`` returns: a tensor, or a list of bytes."""
    return values if isinstance(values, list) else torch.from_numpy(np.ascontiguousarray(values))


def scalar(value: Any, column: Column) -> Any:
    """One decoded value as ``decode_csv`` returns it for a single record: a 0-d tensor or bytes."""
    if column.categories is not None:
        return torch.scalar_tensor(value, dtype=torch.int64)
    if is_string(column.dtype):
        return value
    if column.dtype is torch.float32 and _FLOAT32_MAX < abs(value) < math.inf:
        with np.errstate(over="ignore"):  # the largest float32 or inf, as in TF (torch refuses both)
            return torch.from_numpy(np.asarray(value, dtype=np.float32))
    return torch.from_numpy(np.asarray(value, dtype=NUMPY[column.dtype]))


__all__ = [
    "Column", "RecordSpec", "SUPPORTED", "NUMPY", "columns_from_defaults", "split_fields", "decode_record",
    "decode_rows", "decode_lines", "excerpt", "scalar", "to_tensor",
]
