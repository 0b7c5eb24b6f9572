"""Index files in the ``tfrecord`` package's format: one ``"offset length"`` line per record.

``offset`` is the byte offset of the record's header and ``length`` its framed size (header,
data and CRC), both in the uncompressed stream. The index of ``FILE`` is ``FILE.tfindex``.
Command line: ``python -m loaders.tfrecord.index FILE...`` writes one index per file (files may be
URLs: ``--storage-option KEY=VALUE`` passes options to their filesystem).
"""
from __future__ import annotations

import argparse
import logging
import os
import warnings
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from loaders.errors import DataLossError
from loaders.files import StorageOptions, atomic_write, parse_storage_options, read_bytes
from loaders.tfrecord.format import FOOTER_SIZE, HEADER_SIZE, PathLike, iter_records

INDEX_SUFFIX = ".tfindex"
log = logging.getLogger(__name__)


def index_path(path: PathLike) -> str:
    """The index file that belongs to the TFRecord file ``path`` (``path + ".tfindex"``)."""
    return os.fspath(path) + INDEX_SUFFIX


def write_index(path: PathLike, entries: Iterable[tuple[int, int]], storage_options: StorageOptions = None) -> None:
    """Write ``(offset, framed length)`` pairs to the index file ``path``, atomically."""
    with atomic_write(path, storage_options) as out:
        out.write("".join(f"{offset} {length}\n" for offset, length in entries).encode("ascii"))


def read_index(path: PathLike, storage_options: StorageOptions = None) -> np.ndarray:
    """An ``int64`` array ``[records, 2]`` of (offset, framed length) read from an index file."""
    name = os.fspath(path)
    text = read_bytes(name, storage_options)
    lines = text.count(b"\n")
    if text.endswith(b"\n") and text.count(b" ") == lines:  # as written: one space per line, 10x faster
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # older numpy: a warning for unread text
            try:
                table = np.fromstring(text, dtype=np.int64, sep=" ")
            except ValueError:  # numpy 2.3+: text it cannot read; the general path names the line
                table = np.zeros(0, np.int64)
        if len(table) == 2 * lines:
            return _checked(name, text, table.reshape(-1, 2))
    try:
        table = np.array(text.split(), dtype=np.int64).reshape(-1, 2)
    except ValueError:
        _raise_bad_line(name, text)
    return _checked(name, text, table)


def _checked(name: str, text: bytes, table: np.ndarray) -> np.ndarray:
    """``table`` when every length can hold a record and no offset is negative; else the bad line's error."""
    if len(table) and ((table[:, 1] < HEADER_SIZE + FOOTER_SIZE).any() or (table[:, 0] < 0).any()):
        _raise_bad_line(name, text)
    return table


def _raise_bad_line(name: str, text: bytes) -> None:
    for number, line in enumerate(text.decode("ascii", "replace").splitlines(), 1):
        fields = line.split()
        if (
            len(fields) != 2
            or not all(field.isdigit() for field in fields)
            or int(fields[1]) < HEADER_SIZE + FOOTER_SIZE
        ):
            raise DataLossError(
                f"{name}: bad index line {number}: expected 'offset length' (two integers, length >= "
                f"{HEADER_SIZE + FOOTER_SIZE}), found {line!r}"
            )
    raise DataLossError(f"{name}: unreadable index: expected one 'offset length' line per record")


def create_index(
    path: PathLike, compression: Any = None, verify: bool = True, output: Optional[PathLike] = None,
    storage_options: StorageOptions = None,
) -> str:
    """Scan a TFRecord file (checking CRCs) and write its index; returns the index path."""
    target = os.fspath(output) if output is not None else index_path(path)
    records = iter_records(path, compression, verify, storage_options=storage_options)
    write_index(target, ((offset, len(data) + HEADER_SIZE + FOOTER_SIZE) for offset, data in records), storage_options)
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: write ``FILE.tfindex`` for every ``FILE`` given."""
    parser = argparse.ArgumentParser(
        prog="python -m loaders.tfrecord.index", description="Write FILE.tfindex (one 'offset length' line per record)."
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="TFRecord files")
    parser.add_argument("--compression", default=None, help="'', GZIP or ZLIB (default: from the suffix)")
    parser.add_argument("--no-verify", action="store_true", help="skip the CRC checks")
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the files' filesystem (fsspec), e.g. client_kwargs.endpoint_url=http://...")
    args = parser.parse_args(argv)
    try:
        options = parse_storage_options(args.storage_option)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = 0
    for name in tqdm(args.files, desc="indexing", unit="file", disable=len(args.files) < 2):
        try:
            log.info("%s", create_index(name, args.compression, not args.no_verify, storage_options=options))
        except (OSError, ValueError) as exc:  # DataLossError is an OSError, InvalidArgumentError a ValueError
            log.error("%s", exc)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
