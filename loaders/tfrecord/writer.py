"""TF1's ``tf.python_io.TFRecordWriter``: framed, optionally compressed records, written atomically.

Records go to a temporary file beside the target and are renamed into place by ``close()``; an
exception inside ``with TFRecordWriter(...)`` removes the temporary file, so a crash never
leaves a half file under the final name. ``index=True`` also writes ``PATH.tfindex``. A remote
``path`` (``s3://``, ``gs://``, ``memory://``...) is written as a temporary object beside the
target and moved into place by ``close()``.
"""
from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import Any, Mapping, Optional, Union

from loaders.errors import InvalidArgumentError
from loaders.files import AtomicFile, StorageOptions
from loaders.tfrecord.encode import encode_example
from loaders.tfrecord.format import (
    FOOTER_SIZE, HEADER_SIZE, PathLike, TFRecordOptions, compression_for, compressor, frame_footer, frame_header,
)
from loaders.tfrecord.index import index_path, write_index

log = logging.getLogger(__name__)


class TFRecordWriter:
    """Write records to a TFRecord file: ``with TFRecordWriter(path) as w: w.write(example_bytes)``.

    ``compression`` is None (from the suffix: ``.gz``, ``.zlib``), ``""``, ``"GZIP"``, ``"ZLIB"``,
    a :class:`TFRecordOptions` (TF1's ``options`` argument) or a ``TFRecordCompressionType``.
    ``storage_options`` reach the filesystem of a remote ``path``.
    """

    def __init__(self, path: PathLike, compression: Any = None, index: bool = False,
                 storage_options: StorageOptions = None) -> None:
        self.path = os.fspath(path)
        self.storage_options = storage_options
        self.compression = compression_for(self.path, compression)
        level = compression.compression_level if isinstance(compression, TFRecordOptions) else None
        self._zip = compressor(self.compression, level)
        self._target = AtomicFile(self.path, storage_options)
        self._index: Optional[list[tuple[int, int]]] = [] if index else None
        self._offset = 0
        self._closed = False

    def write(self, record: Union[bytes, bytearray, memoryview, Mapping[str, Any]]) -> None:
        """Append one record: serialized bytes, or a dict of features (encoded as an Example)."""
        if self._closed:
            raise InvalidArgumentError(f"{self.path}: write() on a closed TFRecordWriter")
        data = encode_example(record) if isinstance(record, Mapping) else record
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(
                f"{self.path}: cannot write {type(record).__name__}: expected bytes or a dict of features"
            )
        size = len(data)
        for part in (frame_header(size), data, frame_footer(data)):
            self._target.file.write(self._zip.compress(part) if self._zip else part)
        if self._index is not None:
            self._index.append((self._offset, size + HEADER_SIZE + FOOTER_SIZE))
        self._offset += size + HEADER_SIZE + FOOTER_SIZE

    def flush(self) -> None:
        """Push buffered bytes to the operating system (the file keeps its temporary name until close)."""
        self._target.file.flush()

    def close(self) -> None:
        """Finish the compressed stream, rename the file into place and write the index if asked."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._zip:
                self._target.file.write(self._zip.flush())
        except BaseException:
            self._target.abort()
            raise
        self._target.commit()
        if self._index is not None:
            write_index(index_path(self.path), self._index, self.storage_options)

    def abort(self) -> None:
        """Discard everything written: the temporary file is removed and nothing is renamed."""
        if not self._closed:
            self._closed = True
            self._target.abort()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            log.warning("%s: TFRecordWriter was never closed; its records are discarded", self.path)
            self.abort()

    def __enter__(self) -> "TFRecordWriter":
        return self

    def __exit__(
        self, kind: Optional[type], error: Optional[BaseException], trace: Optional[TracebackType]
    ) -> None:
        if error is not None:
            self.abort()
        else:
            self.close()


__all__ = ["TFRecordWriter"]
