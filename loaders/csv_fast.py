"""The fast CSV decoder: pandas' C parser over a block of many records. It answers only where
its result provably equals the exact decoder's (:mod:`loaders.csv_parse`), and otherwise
declines (returns ``None``) so that the caller runs the exact one, which also words the errors.

What it checks, since pandas reads some text differently from TensorFlow: every line has the
same number of fields (found from the delimiter and newline positions, outside quotes); quotes
follow TF's rules (a quoted field starts at a field's start and ends before a delimiter or the
line's end, quotes inside it are doubled, no line ends inside quotes: pandas would read
``"a"b`` as ``ab`` and join lines); no stray CR, NUL or byte-order mark; no empty record;
integer fields hold no ``.``, ``e`` or ``E`` (pandas reads ``3.0`` and ``1e3`` as ints, TF
refuses them); every cell pandas calls missing is empty or ``na_value`` in the text (bare or
quoted); floats are correctly rounded (pandas >= 3.1 always, older pandas with
``float_precision="round_trip"``) and no float32 lies where a second rounding could change it.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch

from .csv_numbers import INT_RANGE, float32_ambiguous
from .csv_parse import NUMPY, ColumnValues, RecordSpec
from .dtypes import is_string

_FLOAT_SYNTAX = np.frombuffer(b".eE", np.uint8)
#: Integer fields wider than this are left to the exact decoder.
_INT_WIDTH = 32
_pandas_options: Optional[dict] = None


def _read_options() -> dict:
    """pandas' options for correctly rounded floats: its default from 3.1 on, else round_trip."""
    global _pandas_options
    if _pandas_options is None:
        import pandas as pd  # the C parser; imported on first use to keep `import loaders` light

        version = tuple(int(part) for part in pd.__version__.split(".")[:2] if part.isdigit())
        _pandas_options = {} if version >= (3, 1) else {"float_precision": "round_trip"}
    return _pandas_options


def decode_block_fast(block: bytes, spec: RecordSpec, num_lines: Optional[int] = None) -> Optional[List[ColumnValues]]:
    """Decode the records of ``block``, separated by ``\\n`` (each may end in a ``\\r`` that is not
    part of it, as CRLF files do), or return ``None`` when the result could differ from the exact
    decoder's, or when the block does not hold ``num_lines`` lines (if given)."""
    delim = spec.delim[0]
    if not block or delim in b'"\r\n' or delim >= 128 or b"\x00" in block or block.startswith(b"\xef\xbb\xbf"):
        return None
    quoted = spec.quote and b'"' in block
    crlf = b"\r" in block
    if crlf and block.count(b"\r") != block.count(b"\r\n"):
        return None
    fields = _Fields.of(block, num_lines, delim, crlf, quoted)
    select = list(spec.select) if spec.select is not None else list(range(len(spec.columns)))
    if fields is None or spec.num_fields not in (None, fields.count) or max(select) >= fields.count:
        return None
    if fields.count == 1 and (fields.lengths(0) == 0).any():  # an empty record: an error, or a skipped blank line
        return None
    frame = _read(block, fields.count, select, spec, quoted)
    if frame is None or len(frame) != fields.lines:
        return None
    maybe_float = any(char in block for char in (b".", b"e", b"E"))
    out: List[ColumnValues] = []
    for field_index, column in zip(select, spec.columns):
        values = _column(frame[field_index], column, spec.na_value, lambda: fields.at(field_index), maybe_float, quoted)
        if values is None:
            return None
        out.append(values)
    return out


class _Fields:
    """Where the fields of a block are: the delimiters of each line (``[num_lines, count - 1]``)
    and the lines' starts and ends; a field's offsets are computed when asked for."""

    def __init__(self, arr: np.ndarray, delims: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.arr, self.delims, self.starts, self.ends = arr, delims, starts, ends
        self.count, self.lines = delims.shape[1] + 1, len(starts)

    @classmethod
    def of(cls, block: bytes, num_lines: Optional[int], delim: int, crlf: bool, quoted: bool) -> Optional["_Fields"]:
        """The fields of ``block``, or None unless every line has the same number of fields (and
        there are ``num_lines`` lines, if given) and, if ``quoted``, its quotes follow TF's rules."""
        arr = np.frombuffer(block, np.uint8)
        fields = cls._laid_out(arr, np.flatnonzero(arr == 10), np.flatnonzero(arr == delim), num_lines, crlf)
        if quoted and (fields is None or not fields._whole_quotes(int(np.count_nonzero(arr == 34)))):
            found = _quoted_layout(arr, delim)  # quotes inside fields, or delimiters inside quotes
            fields = None if found is None else cls._laid_out(arr, *found, num_lines, crlf)
        return fields

    @classmethod
    def _laid_out(
        cls, arr: np.ndarray, newlines: np.ndarray, delims: np.ndarray, num_lines: Optional[int], crlf: bool,
    ) -> Optional["_Fields"]:
        ends = newlines if arr[-1] == 10 else np.append(newlines, arr.size)
        num_lines = ends.size if num_lines is None else num_lines
        if not num_lines or ends.size != num_lines or delims.size % num_lines:
            return None
        starts = np.concatenate(([0], ends[:-1] + 1))
        delims = delims.reshape(num_lines, -1)
        if delims.shape[1] and ((delims[:, 0] < starts) | (delims[:, -1] > ends)).any():
            return None  # the delimiters are sorted: each line holds exactly its share of them
        if crlf:  # the CR before a line's newline is not part of its last field
            ends = ends - ((ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13))
        return cls(arr, delims, starts, ends)

    def _whole_quotes(self, quotes: int) -> bool:
        """Whether the block's ``quotes`` quotes all open and close whole fields, none inside one
        (as ``QUOTE_NONNUMERIC`` writes numbers): then every delimiter is outside quotes. The
        fields of two or more bytes that start and end with a quote hold twice their number of
        distinct quotes, so any other quote makes the count differ."""
        last, whole = self.arr.size - 1, 0
        for index in range(self.count):
            _, start, end = self.at(index)
            opens = self.arr[np.minimum(start, last)] == 34
            closes = self.arr[np.maximum(end - 1, 0)] == 34
            whole += int(np.count_nonzero(opens & closes & (end - start >= 2)))
        return 2 * whole == quotes

    def at(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The block's bytes, and the start and end offsets of field ``index`` in every line."""
        start = self.starts if index == 0 else self.delims[:, index - 1] + 1
        end = self.ends if index == self.count - 1 else self.delims[:, index]
        return self.arr, start, end

    def lengths(self, index: int) -> np.ndarray:
        _, start, end = self.at(index)
        return end - start


def _quoted_layout(arr: np.ndarray, delim: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The newlines and the delimiters outside quotes, or None unless every quote is where TF's
    rules allow one: in pairs on one line, an opening one at a field's start or right after a
    closing one (a doubled quote), a closing one before a delimiter, the line's end or an opening one."""
    structural = np.flatnonzero((arr == 34) | (arr == delim) | (arr == 10))
    kinds = arr[structural]
    at = np.flatnonzero(kinds == 34)  # the quotes' places among the structural bytes
    if at.size % 2:
        return None
    opening, closing = structural[at[0::2]], structural[at[1::2]]
    before = arr[np.maximum(opening - 1, 0)]
    after = arr[np.minimum(closing + 1, arr.size - 1)]
    if not ((opening == 0) | (before == delim) | (before == 10) | (before == 34)).all():
        return None
    if not ((closing == arr.size - 1) | (after == delim) | (after == 10) | (after == 13) | (after == 34)).all():
        return None  # a CR here is the one before the newline: the block holds no other
    newline, delimiter = kinds == 10, kinds == delim
    if ((at[1::2] - at[0::2]) > 1).any():  # some quoted field holds a delimiter or a newline
        marks = np.zeros(kinds.size, np.int8)
        marks[at[0::2]], marks[at[1::2]] = 1, -1
        inside = np.cumsum(marks, dtype=np.int8).astype(bool)
        if (inside & newline).any():
            return None  # a quoted newline: TF splits lines first
        delimiter &= ~inside
    return structural[newline], structural[delimiter]


def _read(block: bytes, num_fields: int, select: List[int], spec: RecordSpec, quoted: bool) -> Any:
    """The selected fields as a pandas DataFrame, or None where pandas refuses the text."""
    import pandas as pd

    try:
        na_text = spec.na_value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    dtypes: dict = {}
    for field_index, column in zip(select, spec.columns):
        if is_string(column.dtype):
            dtypes[field_index] = object
        elif column.dtype.is_floating_point:
            dtypes[field_index] = np.float64
        else:
            dtypes[field_index] = "Int64" if column.default is not None else np.int64
    usecols = None if len(set(select)) == num_fields else sorted(set(select))  # all: faster without
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # pandas casts text it then refuses
            return pd.read_csv(
                io.BytesIO(block), header=None, names=list(range(num_fields)), usecols=usecols,
                dtype=dtypes, sep=chr(spec.delim[0]), quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
                quotechar='"', doublequote=True, na_filter=True, keep_default_na=False,
                na_values=sorted({"", na_text}), skip_blank_lines=False, engine="c", **_read_options(),
            )
    except (ValueError, TypeError, OverflowError):
        return None  # not provably equal: the exact decoder re-reads these lines and names the bad one


def _column(
    series: Any, column: Any, na_value: bytes, where: Callable[[], tuple], maybe_float: bool, quoted: bool,
) -> Optional[ColumnValues]:
    """One decoded column from pandas' parse, or None where it may differ from the exact decoder;
    ``where()`` gives the block and the column's field offsets, computed only when needed."""
    missing = series.isna().to_numpy()
    if missing.any():
        arr, starts, ends = where()
        if column.default is None or not _only_na(arr, starts[missing], ends[missing], na_value, quoted):
            return None
    if column.categories is not None:
        codes = series.map({name.decode("utf-8", "replace"): code for name, code in column.categories.items()})
        if missing.any():
            codes[missing] = column.categories.get(column.default, -1)
        if codes.isna().any() or (codes < 0).any():
            return None
        return np.array(codes.to_numpy(), dtype=np.int64)
    if is_string(column.dtype):
        return [column.default if gap else text.encode("utf-8") for text, gap in zip(series.tolist(), missing)]
    floating = column.dtype.is_floating_point
    if not floating and maybe_float and _float_syntax(*where()):
        return None
    filled = series.fillna(column.default) if missing.any() else series
    numbers = filled.to_numpy(dtype=np.float64 if floating else np.int64)
    if column.dtype == torch.float32 and float32_ambiguous(numbers):
        return None
    if column.dtype == torch.int32 and numbers.size:
        low, high = INT_RANGE[torch.int32]
        if numbers.min() < low or numbers.max() > high:
            return None
    with np.errstate(over="ignore"):  # beyond float32's range is inf, as in TF
        return numbers.astype(NUMPY[column.dtype])  # a writable copy for torch.from_numpy


def _only_na(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray, na_value: bytes, quoted: bool) -> bool:
    """Whether every one of these fields is empty or exactly ``na_value``, in quotes or not
    (``quoted``: the block's quotes are TF's, as the exact decoder compares the unquoted text)."""
    lengths = ends - starts
    filled = lengths > 0
    if quoted:  # "" is an empty field
        last = arr.size - 1
        filled &= ~((lengths == 2) & (arr[np.minimum(starts, last)] == 34) & (arr[np.minimum(starts + 1, last)] == 34))
    rest = np.flatnonzero(filled)
    if not rest.size:
        return True
    forms = {na_value, b'"' + na_value.replace(b'"', b'""') + b'"'} if quoted else {na_value}
    return bool(na_value) and all(arr[starts[i]:ends[i]].tobytes() in forms for i in rest)


def _float_syntax(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
    """Whether some of these (integer) fields hold ``.``, ``e`` or ``E``, or are too wide to check."""
    lengths = ends - starts
    width = int(lengths.max()) if lengths.size else 0
    if width > _INT_WIDTH:
        return True
    offsets = np.arange(width)
    chars = arr[np.minimum(starts[:, None] + offsets, arr.size - 1)]
    return bool((np.isin(chars, _FLOAT_SYNTAX) & (offsets < lengths[:, None])).any())


__all__ = ["decode_block_fast"]
