"""What ``CSVDataset`` learns of a file's columns before reading it: the type of each column
from a sample of its rows (int64, float32 or string), the columns that ``record_defaults``
types, and the codes of categorical columns."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple, Union

import torch

from .csv_numbers import parse_number
from .csv_parse import Column, columns_from_defaults, excerpt, split_fields
from .dtypes import string
from .errors import InvalidArgumentError

ColumnRef = Union[str, int]
#: Rows sampled for type inference: (line number, fields).
Sampled = List[Tuple[int, List[bytes]]]


def is_number(field: bytes, dtype: torch.dtype) -> bool:
    try:
        parse_number(field, dtype)
    except ValueError:
        return False
    return True


def infer_column(fields: List[bytes], na_value: bytes) -> Column:
    """int64 when the sampled numbers are all ints, float32 when not, string when most sampled
    values are no numbers; required. A few cells that are no number in a numeric column (a
    typo such as ``1e``) are bad rows, reported as ``file:line`` (or skipped) where they are read."""
    present = [field for field in fields if field and field != na_value]
    numbers = [field for field in present if is_number(field, torch.float32)]
    if 2 * len(numbers) <= len(present) and present:
        return Column(string)
    return Column(torch.int64 if all(is_number(field, torch.int64) for field in numbers) else torch.float32)


def sample_rows(sample: List[Tuple[int, bytes]], delim: bytes, quote: bool) -> Sampled:
    """The sampled lines split into fields; blank lines and lines that do not split are left
    out (a bad row is reported, or skipped, where it is read)."""
    rows = []
    for number, line in sample:
        if line:
            try:
                rows.append((number, split_fields(line, delim, quote)))
            except InvalidArgumentError:
                continue
    return rows


def column_index(names: List[str], ref: ColumnRef) -> int:
    """The index of a column given by name or index."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not 0 <= ref < len(names):
            raise ValueError(f"column index {ref} is out of range for {len(names)} columns")
        return ref
    if ref not in names:
        raise ValueError(f"no column named {ref!r}; the columns are {names}")
    return names.index(ref)


def given_columns(record_defaults: Any, names: List[str]) -> Dict[int, Column]:
    """The columns whose type ``record_defaults`` gives: a list for all columns, or a dict."""
    if record_defaults is None:
        return {}
    if isinstance(record_defaults, Mapping):
        indices = [column_index(names, ref) for ref in record_defaults]
        return dict(zip(indices, columns_from_defaults(list(record_defaults.values()))))
    if len(record_defaults) != len(names):
        raise ValueError(
            f"record_defaults has {len(record_defaults)} entries but the file has {len(names)} columns "
            "(give one per column, or a dict from column name to default)"
        )
    return dict(enumerate(columns_from_defaults(record_defaults)))


def learn_categories(index: int, sampled: Sampled, where: str, skip: bool) -> Dict[str, int]:
    """Codes for the distinct sampled values of a column, in sorted order (the same in every worker).
    A value that is not UTF-8 text is a bad row: an error naming ``where:line``, or left out."""
    seen = set()
    for number, fields in sampled:
        try:
            seen.add(fields[index].decode("utf-8"))
        except UnicodeDecodeError as error:
            if not skip:
                raise InvalidArgumentError(
                    f"{where}:{number}: categorical column {index} is not valid UTF-8 (byte {error.start}): "
                    f"{excerpt(fields[index])}"
                ) from None
    return {text: code for code, text in enumerate(sorted(seen - {""}))}


__all__ = ["ColumnRef", "Sampled", "column_index", "given_columns", "infer_column", "is_number", "learn_categories", "sample_rows"]
