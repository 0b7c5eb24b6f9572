"""``CSVDataset``: CSV files as a streaming ``torch.utils.data.IterableDataset`` of
``(features, label)`` tensors, read in constant memory and split over DataLoader workers and
``torch.distributed`` ranks (``loaders.sharding``) so that every row is read exactly once.

How it reads: each file is cut into byte ranges of ``chunk_bytes``; a line belongs to the range
holding its first byte (the Hadoop rule), so readers can seek straight to their ranges. The
ranges of all files, in order, are dealt round robin to the shards; a compressed file (.gz, .bz2,
.xz, .zst) cannot be entered in the middle and is one range, read whole by one reader. Files may
be URLs (``s3://``, ``gs://``, ``https://``..., see :mod:`loaders.files`). A range is decoded by
pandas' C parser when that provably gives the exact result, else by the exact Python decoder,
which names ``file:line`` in errors (line numbers are counted only when needed).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import IterableDataset

from .csv_fast import decode_block_fast
from .csv_parse import Column, ColumnValues, RecordSpec, decode_lines, excerpt, split_fields
from .csv_schema import (
    ColumnRef, Sampled, column_index, given_columns, infer_column, is_number, learn_categories, sample_rows,
)
from .dtypes import is_string, string
from .errors import InvalidArgumentError
from .files import StorageOptions, codec_of, expand_paths, open_input, size
from .resume import Epochs, RowCursor
from .sharding import RankCarrier, Shard, current_shard, split

logger = logging.getLogger(__name__)

#: How many skipped rows are logged one by one per pass before only the total is logged.
LOGGED_BAD_ROWS = 10

PathLike = Union[str, "os.PathLike[str]"]
#: Decoded rows: a features matrix and a label vector (or None), as numpy arrays.
Piece = Tuple[np.ndarray, Optional[np.ndarray]]


def _read_split(handle: Any, index: int, size: int, chunk_bytes: int, resume_at: Optional[int] = None) -> Tuple[int, bytes]:
    """Offset and bytes of the whole lines that start in ``[index * chunk_bytes, ...)``, or only
    from the line starting at ``resume_at`` on."""
    start, end = index * chunk_bytes, min((index + 1) * chunk_bytes, size)
    handle.seek(max(start - 1, 0) if resume_at is None else resume_at)
    if start > 0 and resume_at is None:
        handle.readline()  # the line holding byte start-1 belongs to an earlier range
    pos = handle.tell()
    if pos >= end:
        return pos, b""
    block = handle.read(end - pos)
    if not block.endswith(b"\n"):
        block += handle.readline()
    return pos, block


def _stream_blocks(handle: Any, chunk_bytes: int) -> Iterator[Tuple[int, bytes]]:
    """Offset and bytes of the whole lines of a stream, about ``chunk_bytes`` at a time."""
    offset = 0
    while block := handle.read(chunk_bytes):
        if not block.endswith(b"\n"):
            block += handle.readline()
        yield offset, block
        offset += len(block)


def _line_number(path: str, offset: int, storage_options: StorageOptions) -> int:
    """The 1-based line number of the line starting at byte ``offset`` (of the decompressed text)."""
    lines, remaining = 1, offset
    with open_input(path, storage_options, compression="infer") as handle:
        while remaining > 0:
            piece = handle.read(min(remaining, 1 << 20))
            lines += piece.count(b"\n")
            remaining -= len(piece)
    return lines


def _split_lines(block: bytes) -> List[bytes]:
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


class CSVDataset(Epochs, IterableDataset):
    """Rows of CSV files as ``(features, label)`` (or ``features`` alone without ``label_column``).

    ``features`` is a ``dtype`` vector of the selected columns except the label (file order, or
    ``select_columns`` order), the label keeps its column type (int64 for inferred ints; int64
    codes for a categorical label). With ``batch_size``, batches ``[B, F]`` and ``[B]`` are
    yielded instead (the last one of each DataLoader worker may be smaller): use
    ``DataLoader(ds, batch_size=None)``; this mode is the fast one.

    Column types come from ``record_defaults`` (TF1's rules; a list aligned with all the file's
    columns, or a dict from column name or index to default) and are otherwise inferred from
    the first ``infer_rows`` rows of the first file (int64, float32 or string, by TF's number
    syntax; inferred columns are required; a column that is mostly numbers stays numeric, its
    other cells being bad rows). A string column must be categorical:
    ``categories={"famhist": {"Present": 1, "Absent": 0}}`` gives the codes;
    ``categories={"famhist": None}`` (or a list of names) learns them from the sampled rows,
    sorted, so every worker agrees; an unknown value is a bad row.
    ``categories`` (attribute) holds the codes in use, by column name.

    A bad row (wrong field count, malformed quotes, unparsable or missing value, text that is
    not UTF-8 in a categorical column) raises ``InvalidArgumentError`` (a ``ValueError``)
    naming ``file:line`` and quoting a short excerpt, wherever it is, the sampled rows
    included; with ``on_bad_row="skip"`` it is logged and counted in ``bad_rows`` (per process:
    each DataLoader worker counts and logs its own). Blank lines are skipped. A record is one
    line; fields are split by TF's ``decode_csv`` rules (quoted fields may hold the delimiter).
    ``chunk_bytes`` is the unit of reading and of sharing out work among workers and ranks.
    ``storage_options`` reach the filesystem of URL filenames; compressed files are read
    decompressed, each whole by one reader. ``state_dict()``/``load_state_dict()`` resume an
    epoch at the next row's byte offset (torchdata's ``StatefulDataLoader``).
    """

    def __init__(
        self,
        filenames: Union[PathLike, Sequence[PathLike]],
        record_defaults: Optional[Union[Sequence[Any], Mapping[ColumnRef, Any]]] = None,
        *,
        header: bool = True,
        column_names: Optional[Sequence[str]] = None,
        select_columns: Optional[Sequence[ColumnRef]] = None,
        label_column: Optional[ColumnRef] = None,
        categories: Optional[Union[Sequence[str], Mapping[str, Optional[Mapping[str, int]]]]] = None,
        field_delim: str = ",",
        use_quote_delim: bool = True,
        na_value: str = "",
        batch_size: Optional[int] = None,
        dtype: torch.dtype = torch.float32,
        on_bad_row: str = "raise",
        infer_rows: int = 1000,
        chunk_bytes: int = 4 << 20,
        storage_options: StorageOptions = None,
    ) -> None:
        if on_bad_row not in ("raise", "skip"):
            raise ValueError(f"on_bad_row must be 'raise' or 'skip', got {on_bad_row!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.storage_options = storage_options
        self.files = expand_paths(filenames, "CSVDataset", storage_options)
        self.header, self.batch_size, self.dtype = header, batch_size, dtype
        self.on_bad_row, self.chunk_bytes = on_bad_row, chunk_bytes
        self._numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self.bad_rows = 0
        self._rank = RankCarrier()  # the rank, for DataLoader workers started by spawn or forkserver
        delim, na = field_delim.encode("utf-8"), na_value.encode("utf-8")
        self._header_line, sample = self._head(self.files[0], infer_rows)
        rows = sample_rows(sample, delim, use_quote_delim)
        self.column_names = self._names(self._header_fields(delim, use_quote_delim) if header
                                        else (rows[0][1] if rows else []), column_names)
        names = self.column_names
        sampled = [(number, fields) for number, fields in rows if len(fields) == len(names)]
        chosen = [column_index(names, ref) for ref in select_columns] if select_columns is not None \
            else list(range(len(names)))
        self.label_index = column_index(names, label_column) if label_column is not None else None
        self.feature_indices = [index for index in chosen if index != self.label_index]
        used = sorted(set(chosen) | ({self.label_index} if self.label_index is not None else set()))
        codes = self._resolve_categories(categories, used, sampled)
        given = given_columns(record_defaults, names)
        columns = []
        for index in used:
            column = given.get(index) or (Column(string) if index in codes else
                                          infer_column([fields[index] for _, fields in sampled], na))
            columns.append(self._check_column(index, column, codes, sampled))
        self.categories = {names[index]: mapping for index, mapping in codes.items()}
        self.spec = RecordSpec(
            columns, select=used, num_fields=len(names), delim=delim, quote=use_quote_delim,
            na_value=na, names=names,
        )
        self._position = {index: position for position, index in enumerate(used)}

    @property
    def feature_names(self) -> List[str]:
        """The names of the feature columns, in the order of the features vector."""
        return [self.column_names[index] for index in self.feature_indices]

    def _head(self, path: str, rows: int) -> Tuple[bytes, List[Tuple[int, bytes]]]:
        """The header line and the first ``rows`` lines with their 1-based line numbers."""
        with open_input(path, self.storage_options, compression="infer") as handle:
            header = handle.readline() if self.header else b""
            if self.header and not header:
                raise ValueError(f"{path}: the file is empty but header=True expects a header line")
            lines = [handle.readline() for _ in range(rows)]
        first = 2 if self.header else 1
        return (_split_lines(header)[0] if header else b""), list(enumerate(_split_lines(b"".join(lines)), first))

    def _header_fields(self, delim: bytes, quote: bool) -> List[bytes]:
        try:
            return split_fields(self._header_line, delim, quote)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{self.files[0]}:1: bad header: {error.message}") from None

    def _names(self, first: List[bytes], column_names: Optional[Sequence[str]]) -> List[str]:
        if column_names is None:
            if self.header:
                try:
                    return [field.decode("utf-8-sig").strip() for field in first]
                except UnicodeDecodeError as error:
                    raise ValueError(f"{self.files[0]}:1: the header is not valid UTF-8 ({error})") from None
            return [str(index) for index in range(len(first))]
        if len(column_names) != len(first):
            raise ValueError(f"{self.files[0]}: {len(first)} columns but {len(column_names)} column_names were given")
        return [str(name) for name in column_names]

    def _resolve_categories(self, categories: Any, used: List[int], sampled: Sampled) -> Dict[int, Dict[str, int]]:
        """Column index -> {text: code} for the categorical columns (given or learned)."""
        if categories is None:
            return {}
        items = categories.items() if isinstance(categories, Mapping) else [(ref, None) for ref in categories]
        codes = {}
        for ref, mapping in items:
            index = column_index(self.column_names, ref)
            if index not in used:
                raise ValueError(f"categorical column {ref!r} is not among the selected columns")
            if mapping is None:
                mapping = learn_categories(index, sampled, self.files[0], self.on_bad_row == "skip")
            codes[index] = {str(text): int(code) for text, code in mapping.items()}
        return codes

    def _check_column(self, index: int, column: Column, codes: Dict[int, Dict[str, int]], sampled: Sampled) -> Column:
        """The column with its category codes attached, or a ValueError saying what is missing."""
        name = self.column_names[index]
        if index not in codes:
            if is_string(column.dtype):
                texts = [(number, fields[index]) for number, fields in sampled
                         if fields[index] and not is_number(fields[index], torch.float32)]
                example = f" (such as {excerpt(texts[0][1])} at {self.files[0]}:{texts[0][0]})" if texts else ""
                raise ValueError(
                    f"column {name!r} holds text{example}: map it to ints with "
                    f"categories={{{name!r}: {{...}}}} (or None to learn them), leave it out with "
                    "select_columns, or give its type in record_defaults"
                )
            return column
        if not is_string(column.dtype):
            raise ValueError(f"categorical column {name!r} has type {column.dtype} in record_defaults; give [''] or a string default")
        mapping = {text.encode("utf-8"): code for text, code in codes[index].items()}
        if column.default is not None and column.default not in mapping:
            raise ValueError(f"the default {excerpt(column.default)} of categorical column {name!r} is not one of its categories")
        return column._replace(categories=mapping)

    def _splits(self) -> List[Tuple[str, int, Optional[int]]]:
        """Every (file, range index, file size) of the dataset, in order; a compressed file is one
        range of unknown size."""
        out: List[Tuple[str, int, Optional[int]]] = []
        for path in self.files:
            if codec_of(path):
                out.append((path, 0, None))
                continue
            length = size(path, self.storage_options)
            out.extend((path, index, length) for index in range((length + self.chunk_bytes - 1) // self.chunk_bytes))
        return out

    def _decode(self, path: str, offset: int, block: bytes, skipped: List[int]) -> List[ColumnValues]:
        """The columns of the rows of ``block``; the line indices of skipped bad rows go to ``skipped``."""
        decoded = decode_block_fast(block, self.spec)
        if decoded is not None:
            return decoded
        first_line: List[int] = []

        def locate(index: int) -> str:
            if not first_line:
                first_line.append(_line_number(path, offset, self.storage_options))
            return f"{path}:{first_line[0] + index}"

        def on_bad(index: int, error: InvalidArgumentError) -> None:
            skipped.append(index)
            self._skip(index, error)

        return decode_lines(_split_lines(block), self.spec, locate, on_bad if self.on_bad_row == "skip" else None,
                            skip_blank=True)

    def _skip(self, index: int, error: InvalidArgumentError) -> None:
        self.bad_rows += 1
        if self.bad_rows <= LOGGED_BAD_ROWS:
            logger.warning("skipping bad row %s", error)
        if self.bad_rows == LOGGED_BAD_ROWS:
            logger.warning("further bad rows are counted in CSVDataset.bad_rows but not logged one by one")

    def _arrays(self, decoded: List[ColumnValues]) -> Piece:
        """Features matrix and label vector of decoded rows (numpy: torch's intra-op threads
        make these small copies slower, and ``torch.from_numpy`` shares the memory later)."""
        features = np.empty((len(decoded[0]), len(self.feature_indices)), dtype=self._numpy_dtype)
        for column, index in enumerate(self.feature_indices):
            features[:, column] = decoded[self._position[index]]
        label = decoded[self._position[self.label_index]] if self.label_index is not None else None
        return features, label

    def _blocks(self, splits: List[Tuple[str, int, Optional[int]]], cursor: RowCursor,
                handles: Dict[str, Any]) -> Iterator[Tuple[int, str, int, int, bytes, bool]]:
        """``(range number, file, block index, offset, block, last)`` of ``splits`` from ``cursor``
        on (from its saved row, if any). A compressed file is one range read whole, its blocks
        numbered from 0 (the header's) on and closed by an empty ``last`` one."""
        for number in range(cursor.next, len(splits)):
            path, index, length = splits[number]
            resume_at, cursor.resume_at = cursor.resume_at, None
            if length is None:
                with open_input(path, self.storage_options, compression="infer") as stream:
                    end = 0
                    for block_index, (offset, block) in enumerate(_stream_blocks(stream, self.chunk_bytes)):
                        end = offset + len(block)
                        if resume_at is not None and offset < resume_at:  # rows read before the saved state
                            if end <= resume_at:
                                continue
                            offset, block = resume_at, block[resume_at - offset:]
                        yield number, path, block_index if resume_at is None else -1, offset, block, False
                yield number, path, -1, end, b"", True
                continue
            if path not in handles:  # remote: one request per range (and its last line)
                handles[path] = open_input(path, self.storage_options, block_size=self.chunk_bytes + (1 << 16))
            offset, block = _read_split(handles[path], index, length, self.chunk_bytes, resume_at)
            yield number, path, index if resume_at is None else -1, offset, block, True

    def _pieces(self, cursor: RowCursor, shard: Shard) -> Iterator[Piece]:
        """The decoded rows of this shard's byte ranges from ``cursor`` on, which follows."""
        handles: Dict[str, Any] = {}
        splits = split(self._splits(), shard)
        try:
            for number, path, index, offset, block, last in self._blocks(splits, cursor, handles):
                if index == 0 and self.header:
                    header_end = block.find(b"\n") + 1 if b"\n" in block else len(block)
                    self._check_header(path, block[:header_end])
                    offset, block = offset + header_end, block[header_end:]
                skipped: List[int] = []
                piece = self._arrays(self._decode(path, offset, block, skipped)) if block else None
                cursor.read(number, offset, block, skipped, len(piece[0]) if piece else 0, last)
                if piece:
                    yield piece
        finally:
            for handle in handles.values():
                handle.close()
        if self.bad_rows:
            logger.warning("CSVDataset skipped %d bad rows in %d files", self.bad_rows, len(self.files))

    def _check_header(self, path: str, line: bytes) -> None:
        if _split_lines(line)[:1] != [self._header_line]:
            raise ValueError(f"{path}:1: header {line!r} differs from {self.files[0]}'s header {self._header_line!r}")

    def __iter__(self) -> Iterator[Any]:
        """The rows (or batches) of this reader's share, from where a loaded state stood."""
        shard, cursor = current_shard(), RowCursor()
        running, saved = self._begin(shard, lambda: cursor.state(), shuffle=False)
        if saved is not None:
            cursor = RowCursor(saved)
        return self._rows(cursor, shard, running)

    def _rows(self, cursor: RowCursor, shard: Shard, running: dict) -> Iterator[Any]:
        self.bad_rows = 0
        pieces = self._pieces(cursor, shard)
        if self.batch_size is not None:
            pieces = _rebatch(pieces, self.batch_size)
        for features, label in pieces:
            features_tensor = torch.from_numpy(features)
            if self.batch_size is not None:
                cursor.used += len(features)
                yield features_tensor if label is None else (features_tensor, torch.from_numpy(label))
                continue
            for row in (features_tensor.unbind(0) if label is None else zip(features_tensor.unbind(0),
                                                                              torch.from_numpy(label).unbind(0))):
                cursor.used += 1
                yield row
        self._end(running)


def _rebatch(pieces: Iterator[Piece], batch_size: int) -> Iterator[Piece]:
    """Cut a stream of (features, label) pieces of any length into pieces of ``batch_size``
    rows (the last one smaller); a label of ``None`` stays ``None``."""
    features: List[np.ndarray] = []
    labels: List[Optional[np.ndarray]] = []
    count = 0
    for piece_features, piece_label in pieces:
        features.append(piece_features)
        labels.append(piece_label)
        count += len(piece_features)
        if count < batch_size:
            continue
        all_features, all_labels = _concat(features, labels)
        full = count - count % batch_size
        for start in range(0, full, batch_size):
            stop = start + batch_size
            yield all_features[start:stop], None if all_labels is None else all_labels[start:stop]
        features, labels = [all_features[full:]], [None if all_labels is None else all_labels[full:]]
        count -= full
    if count:
        yield _concat(features, labels)


def _concat(features: List[np.ndarray], labels: List[Optional[np.ndarray]]) -> Piece:
    if len(features) == 1:
        return features[0], labels[0]
    return np.concatenate(features), None if labels[0] is None else np.concatenate(labels)


__all__ = ["CSVDataset"]
