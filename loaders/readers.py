"""TF1's readers: turn the files named in a filename queue into ``(key, value)`` records.

``reader.read(filename_queue)`` returns the next record at once (there is no Session): when the
current file (a "work unit") is done, the reader dequeues the next filename; when that queue is
closed and drained, ``OutOfRangeError`` propagates. Keys are built as TensorFlow builds them:
``b"path:line"`` (TextLineReader, 1-based, header lines counted), ``b"path:index"``
(FixedLengthRecordReader), ``b"path:offset"`` (TFRecordReader) and ``b"path"`` (WholeFileReader).
One reader may be shared by several threads: every record is returned exactly once. A missing
file raises ``NotFoundError`` (also a ``FileNotFoundError``); the next read moves on to the next
file. Filenames may be URLs (``s3://``, ``gs://``, ``https://``...): every reader takes
``storage_options`` for their filesystem (:mod:`loaders.files`); ``TextLineReader`` reads
.gz/.bz2/.xz/.zst files decompressed.

Write your own reader by subclassing :class:`ReaderBase` and implementing ``_open``::

    class JSONLinesReader(loaders.ReaderBase):
        def _open(self, path):
            with self.open_file(path) as f:
                for number, line in enumerate(f, 1):
                    yield self.key_name(path, number), line.rstrip(b"\\n")
"""
from __future__ import annotations

import io
import os
import threading
from typing import Any, BinaryIO, Iterable, Iterator, List, Optional, Tuple, Union

from .codecs import Decompressed
from .errors import DataLossError, InvalidArgumentError, NotFoundError, OpError
from .files import StorageOptions, open_input

Record = Tuple[bytes, bytes]
#: How much FixedLengthRecordReader reads at a time.
_CHUNK = 1 << 16


class ReaderBase:
    """A reader of records from a queue of filenames (TF1's ``tf.ReaderBase``).

    Subclass contract: implement ``_open(path: bytes) -> Iterable[(key, value)]``, yielding every
    record of one file as two ``bytes``; build keys with :meth:`key_name`. An error raised there
    reaches the caller (after the records ``read_up_to`` already gathered, on the next call) and
    ends that file (a ``FileNotFoundError`` becomes TF's ``NotFoundError``). The base class does
    the rest: locking, dequeuing filenames, counting, ``read_up_to`` and ``reset``.
    ``storage_options`` reach the filesystem of URL filenames (see :meth:`open_file`).
    """

    #: Each file is one record, and its work unit is complete once that record is returned
    #: (TF's WholeFileReader); otherwise a file counts as done when a read finds its end.
    _single_record = False

    def __init__(self, *, storage_options: StorageOptions = None) -> None:
        self.storage_options = storage_options
        self._lock = threading.Lock()
        self._work = b""
        self._records: Optional[Iterator[Record]] = None
        self._produced = 0
        self._finished = 0
        self._error: Optional[Exception] = None

    @staticmethod
    def key_name(path: bytes, record: Union[int, str, bytes]) -> bytes:
        """TF's key for a record of ``path``: ``b"path:record"``."""
        if isinstance(record, int):
            return b"%s:%d" % (path, record)
        return path + b":" + (record if isinstance(record, bytes) else record.encode("utf-8"))

    def open_file(self, path: bytes, compression: Optional[str] = None) -> BinaryIO:
        """Open the file or URL ``path`` for reading (binary; ``compression="infer"`` decompresses
        .gz/.bz2/.xz/.zst), with this reader's ``storage_options``."""
        return open_input(os.fsdecode(path), self.storage_options, compression=compression)

    def _open(self, path: bytes) -> Iterable[Record]:
        """The ``(key, value)`` records of the file ``path`` (the subclass's one job)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _open(path) -> iterable of (key, value)")

    def _next_work(self, queue: Any) -> None:
        item = queue.dequeue()  # OutOfRangeError when the queue is closed and drained
        if isinstance(item, str):
            item = os.fsencode(item)
        if not isinstance(item, bytes):
            raise InvalidArgumentError(
                f"{type(self).__name__}: expected a queue with a single string component (filenames), "
                f"dequeued {type(item).__name__}"
            )
        self._work = item
        self._records = iter(self._open(item))

    def _end_work(self) -> None:
        records, self._records = self._records, None
        if records is not None and hasattr(records, "close"):
            records.close()

    def _pull(self, queue: Any, limit: int) -> Tuple[List[bytes], List[bytes]]:
        """Up to ``limit`` records from one work unit (dequeuing work units while none came)."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        keys: List[bytes] = []
        values: List[bytes] = []
        # a one-record file is read to its end, so that it is complete when its record is returned
        stop = limit + 1 if self._single_record else limit
        while not keys:
            if self._records is None:
                self._next_work(queue)
            try:
                for key, value in self._records:
                    keys.append(key)
                    values.append(value)
                    if len(keys) == stop:
                        break
                else:
                    self._finished += 1
                    self._end_work()
            except Exception as error:
                self._end_work()  # a failing file is done; the next read moves on
                error = self._op_error(error)
                if not keys:
                    raise error
                self._error = error  # return the good records first, raise on the next call
        self._produced += len(keys)
        return keys, values

    def _op_error(self, error: Exception) -> Exception:
        """TF's class for a file that does not exist; other errors unchanged."""
        if isinstance(error, FileNotFoundError) and not isinstance(error, OpError):
            found = NotFoundError(f"{type(self).__name__}: {os.fsdecode(self._work)}: no such file or directory")
            found.__cause__ = error
            return found
        return error

    def read(self, queue: Any) -> Record:
        """The next ``(key, value)`` record, taking the next file from ``queue`` when needed."""
        with self._lock:
            keys, values = self._pull(queue, 1)
        return keys[0], values[0]

    def read_up_to(self, queue: Any, num_records: int) -> Tuple[List[bytes], List[bytes]]:
        """Up to ``num_records`` records as ``(keys, values)`` lists. As in TF, fewer come back
        at the end of a file; ``OutOfRangeError`` only when no record is left at all."""
        if num_records < 1:
            raise InvalidArgumentError(f"num_records must be positive, got {num_records}")
        with self._lock:
            return self._pull(queue, num_records)

    def num_records_produced(self) -> int:
        """How many records this reader has returned (read without the lock: never blocks)."""
        return self._produced

    def num_work_units_completed(self) -> int:
        """How many files this reader has finished."""
        return self._finished

    def reset(self) -> None:
        """Drop the file in progress and zero the counters."""
        with self._lock:
            self._end_work()
            self._produced = self._finished = 0
            self._error = None


class TextLineReader(ReaderBase):
    """The lines of text files, newline (and a trailing ``\\r``) stripped; ``skip_header_lines``
    lines are skipped at the start of every file but still counted in the keys. Files ending in
    .gz, .bz2, .xz or .zst are decompressed (line numbers count decompressed lines)."""

    def __init__(self, skip_header_lines: Optional[int] = None, *, storage_options: StorageOptions = None) -> None:
        super().__init__(storage_options=storage_options)
        self.skip_header_lines = skip_header_lines or 0
        if self.skip_header_lines < 0:
            raise InvalidArgumentError(f"skip_header_lines must be >= 0, not {skip_header_lines}")

    def _open(self, path: bytes) -> Iterator[Record]:
        with self.open_file(path, "infer") as handle:
            for _ in range(self.skip_header_lines):
                if not handle.readline():
                    return
            number = self.skip_header_lines
            for line in handle:
                number += 1
                if line.endswith(b"\n"):
                    line = line[:-1]
                elif line == b"\r":  # TF does not produce an empty last line
                    return
                if line.endswith(b"\r"):
                    line = line[:-1]
                yield self.key_name(path, number), line


class FixedLengthRecordReader(ReaderBase):
    """Records of ``record_bytes`` bytes (CIFAR-10 binary style) after ``header_bytes`` and before
    ``footer_bytes``; record ``i`` starts at ``header_bytes + i * hop_bytes`` (``hop_bytes``
    defaults to ``record_bytes``; smaller gives overlapping windows, larger skips gaps).
    ``encoding="GZIP"`` or ``"ZLIB"`` reads a compressed file: the offsets count in its
    uncompressed bytes. Bytes before the footer that no complete record holds are a partial
    record: ``DataLossError`` naming the file and the record's byte offset (TF drops them
    silently), as is a file shorter than its header and footer."""

    def __init__(
        self, record_bytes: int, header_bytes: Optional[int] = None, footer_bytes: Optional[int] = None,
        hop_bytes: Optional[int] = None, encoding: Optional[str] = None, *, storage_options: StorageOptions = None,
    ) -> None:
        super().__init__(storage_options=storage_options)
        self.record_bytes = record_bytes
        self.header_bytes = header_bytes or 0
        self.footer_bytes = footer_bytes or 0
        self.hop_bytes = hop_bytes or record_bytes
        self.encoding = (encoding or "").upper()
        if record_bytes < 1:
            raise InvalidArgumentError(f"record_bytes must be positive, not {record_bytes}")
        for name in ("header_bytes", "footer_bytes", "hop_bytes"):
            if getattr(self, name) < 0:
                raise InvalidArgumentError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.encoding not in ("", "GZIP", "ZLIB"):
            raise InvalidArgumentError(f"encoding must be None, 'GZIP' or 'ZLIB', not {encoding!r}")

    def _open(self, path: bytes) -> Iterator[Record]:
        name = os.fsdecode(path)
        with self.open_file(path) as raw:
            stream = io.BufferedReader(Decompressed(raw, self.encoding, name), _CHUNK) if self.encoding else raw
            yield from self._records_of(path, name, stream)

    def _records_of(self, path: bytes, name: str, stream: BinaryIO) -> Iterator[Record]:
        """Slide over the stream: ``buf[off:]`` holds the bytes from the next record's offset on."""
        header = _skip(stream, self.header_bytes)
        if header < self.header_bytes:
            raise self._too_short(name, header)
        need = self.record_bytes + self.footer_bytes
        position, covered, index = self.header_bytes, self.header_bytes, 0
        buf, off, ended = b"", 0, False
        while True:
            while len(buf) - off < need and not ended:
                chunk = stream.read(max(_CHUNK, need))
                buf, off, ended = (buf[off:] + chunk, 0, False) if chunk else (buf, off, True)
            held = len(buf) - off
            if held < need:  # the last bytes: the footer, and maybe a partial record
                limit = position + held - self.footer_bytes
                if limit < self.header_bytes:
                    raise self._too_short(name, position + held)
                if position < limit and covered < limit:
                    raise DataLossError(
                        f"{name}: partial record {index} at byte offset {position}: only {limit - position} "
                        f"of its record_bytes={self.record_bytes} bytes lie before the footer"
                    )
                return
            yield self.key_name(path, index), buf[off:off + self.record_bytes]
            covered, position, index = position + self.record_bytes, position + self.hop_bytes, index + 1
            off += self.hop_bytes
            if off > len(buf):  # the hop lands past the buffered bytes: skip the gap
                gap = off - len(buf)
                buf, off = b"", 0
                if _skip(stream, gap) < gap:
                    return  # the file ends inside a gap: no record is cut short

    def _too_short(self, name: str, size: int) -> DataLossError:
        return DataLossError(
            f"{name}: {size} bytes is shorter than header_bytes ({self.header_bytes}) + footer_bytes "
            f"({self.footer_bytes})"
        )


def _skip(stream: BinaryIO, count: int) -> int:
    """Read past ``count`` bytes of ``stream`` a chunk at a time; how many there were."""
    skipped = 0
    while skipped < count:
        chunk = stream.read(min(count - skipped, _CHUNK))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


class WholeFileReader(ReaderBase):
    """One record per file: the key is the filename, the value its whole content. A file counts
    in ``num_work_units_completed`` as soon as its record is returned, as in TF."""

    _single_record = True

    def _open(self, path: bytes) -> Iterator[Record]:
        with self.open_file(path) as handle:
            yield path, handle.read()


class TFRecordReader(ReaderBase):
    """The records of TFRecord files; the key is ``b"path:offset"`` (the byte offset of the
    record in the uncompressed stream). ``options`` is a ``TFRecordOptions`` or a compression
    name (``"GZIP"``, ``"ZLIB"``); without it the compression follows the suffix (.gz, .zlib)
    and other files are read uncompressed, as TF reads them. Corruption raises DataLossError."""

    def __init__(self, options: Any = None, *, storage_options: StorageOptions = None) -> None:
        super().__init__(storage_options=storage_options)
        self.options = options

    def _open(self, path: bytes) -> Iterator[Record]:
        from .tfrecord.format import iter_records  # the framing layer; imported when first needed

        for offset, data in iter_records(os.fsdecode(path), self.options, storage_options=self.storage_options):
            yield self.key_name(path, offset), data


__all__ = ["ReaderBase", "TextLineReader", "FixedLengthRecordReader", "WholeFileReader", "TFRecordReader"]
