"""TFRecord framing exactly as TensorFlow writes it, read and write, with GZIP and ZLIB streams.

A record is ``uint64 length (little-endian) | masked CRC32C of those 8 bytes | data | masked
CRC32C of data``. Reading verifies both CRCs by default and raises :class:`DataLossError` naming
the file and the byte offset (in the uncompressed stream) of the bad record. This module owns the
framing loop (its common case runs in C, ``_framing.c``, where that is built), the CRC mask,
the compression choice (``TFRecordOptions``, suffix inference) and TF1's ``tf_record_iterator``;
the readers' ``TFRecordReader`` builds on :func:`iter_records`.
"""
from __future__ import annotations

import enum
import os
import struct
import zlib
from typing import Any, BinaryIO, Iterator, Optional, Union

import crc32c
import numpy as np

from loaders.codecs import ZLIB_WBITS, Decompressed
from loaders.errors import DataLossError, InvalidArgumentError
from loaders.files import StorageOptions, open_input, stream_size
from loaders.tfrecord.wire import excerpt

try:  # the C framing loop, built by `pip install .` / `pip install -e .` where there is a compiler
    from loaders.tfrecord import _framing
except ImportError:  # pure Python: the same records and errors, framing about 2x slower
    _framing = None

PathLike = Union[str, "os.PathLike[str]"]

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
HEADER_SIZE = _HEADER.size  # 12: the length and its CRC
FOOTER_SIZE = _CRC.size  # 4: the data's CRC
_CHUNK = 1 << 20
_KNOWN_LENGTHS_MAX = 4096
#: Records up to this size get their buffer as soon as their header is read, whatever the stream.
_TRUSTED_LENGTH = 64 << 20
# zlib settings of TensorFlow's ZlibCompressionOptions, so compressed files are byte-identical.
_TF_MEM_LEVEL = 9


def mask_crc(crc: int) -> int:
    """TensorFlow's CRC mask: rotate right by 15 bits and add a constant (crc32c.h ``Mask``)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def masked_crc32c(data: Any) -> int:
    """The masked CRC32C of a bytes-like object, as stored in TFRecord headers and footers."""
    return mask_crc(crc32c.crc32c(data))


class TFRecordCompressionType(enum.IntEnum):
    """TF1's ``tf.python_io.TFRecordCompressionType``: NONE, ZLIB or GZIP."""

    NONE = 0
    ZLIB = 1
    GZIP = 2


class TFRecordOptions:
    """Options for reading and writing TFRecord files (TF's ``tf.io.TFRecordOptions``).

    ``compression_type`` is ``None``/``""``, ``"ZLIB"``, ``"GZIP"`` or a
    :class:`TFRecordCompressionType`; ``compression_level`` (0-9) applies when writing.
    """

    compression_type_map = {
        TFRecordCompressionType.NONE: "",
        TFRecordCompressionType.ZLIB: "ZLIB",
        TFRecordCompressionType.GZIP: "GZIP",
    }

    def __init__(self, compression_type: Any = None, compression_level: Optional[int] = None) -> None:
        self.compression_type = "" if compression_type is None else _compression_name(compression_type)
        if compression_level is not None and not -1 <= compression_level <= 9:
            raise InvalidArgumentError(f"compression_level {compression_level}: expected -1 to 9")
        self.compression_level = compression_level

    @classmethod
    def get_compression_type_string(cls, options: Any) -> str:
        """``""``, ``"ZLIB"`` or ``"GZIP"`` for options, a compression type or a string (TF's API)."""
        if options is None:
            return ""
        if isinstance(options, TFRecordOptions):
            return options.compression_type
        return _compression_name(options)

    def __repr__(self) -> str:
        return f"TFRecordOptions(compression_type={self.compression_type!r}, compression_level={self.compression_level!r})"


def _compression_name(value: Any) -> str:
    if isinstance(value, TFRecordOptions):
        return value.compression_type
    if isinstance(value, TFRecordCompressionType):
        return TFRecordOptions.compression_type_map[value]
    if isinstance(value, str) and value.upper() in ("", "NONE", "ZLIB", "GZIP"):
        return "" if value.upper() == "NONE" else value.upper()
    raise InvalidArgumentError(
        f"unknown compression {excerpt(value)}: expected None, '', 'GZIP', 'ZLIB', a TFRecordOptions "
        "or a TFRecordCompressionType"
    )


def compression_for(path: PathLike, compression: Any = None) -> str:
    """The compression of ``path``: ``compression`` when given, else from its suffix (.gz, .zlib)."""
    if compression is not None:
        return _compression_name(compression)
    name = os.fspath(path)
    if name.endswith(".gz"):
        return "GZIP"
    if name.endswith(".zlib"):
        return "ZLIB"
    return ""


def frame_header(length: int) -> bytes:
    """The 12 bytes before a record's data: its length and the length's masked CRC."""
    packed = _LENGTH.pack(length)
    return packed + _CRC.pack(masked_crc32c(packed))


def frame_footer(data: Any) -> bytes:
    """The 4 bytes after a record's data: the data's masked CRC."""
    return _CRC.pack(masked_crc32c(data))


def encode_record(data: Any) -> bytes:
    """One framed record (header, data, footer) as TensorFlow writes it."""
    return frame_header(len(data)) + bytes(data) + frame_footer(data)


def compressor(compression: str, level: Optional[int] = None) -> Any:
    """A zlib compressor for ``"ZLIB"``/``"GZIP"`` with TensorFlow's settings, or None for no compression."""
    if not compression:
        return None
    return zlib.compressobj(
        zlib.Z_DEFAULT_COMPRESSION if level is None else level, zlib.DEFLATED, ZLIB_WBITS[compression], _TF_MEM_LEVEL
    )


def iter_records(
    path: PathLike, compression: Any = None, verify: bool = True, *, start: int = 0, stop: Optional[int] = None,
    storage_options: StorageOptions = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, data)`` for every record of a TFRecord file.

    ``offset`` is the byte offset of the record's length field in the uncompressed stream.
    ``compression`` is None (infer from the suffix), ``""``, ``"GZIP"``, ``"ZLIB"``, a
    :class:`TFRecordOptions` or a :class:`TFRecordCompressionType`. Both CRCs are checked unless
    ``verify`` is False; any corruption raises :class:`DataLossError` with the file and offset.
    ``start`` and ``stop`` (record boundaries, e.g. from an index file) read only the records
    between those byte offsets of an uncompressed file, so readers can split one file.
    ``path`` may be any URL of :mod:`loaders.files` (``s3://``, ``gs://``, ``https://``...),
    opened with ``storage_options``.
    """
    name = os.fspath(path)
    kind = compression_for(name, compression)
    if kind and (start or stop is not None):
        raise InvalidArgumentError(f"{name}: reading a byte range needs an uncompressed file, this one is {kind}")
    if start < 0 or (stop is not None and stop < start):
        raise InvalidArgumentError(f"{name}: bad byte range start={start}, stop={stop}: expected 0 <= start <= stop")
    with open_input(name, storage_options, buffering=0, end=stop) as raw:
        if kind:
            yield from _frames(name, Decompressed(raw, kind, name), None, verify)
            return
        file_size = stream_size(raw)
        if file_size is None:  # a pipe or a device: read on to its end
            if start or stop is not None:
                raise InvalidArgumentError(f"{name}: reading a byte range needs a regular file")
            yield from _frames(name, raw, None, verify)
            return
        end = file_size if stop is None else stop
        if start > end:
            raise InvalidArgumentError(f"{name}: byte range start={start} is past the end of the file ({end} bytes)")
        if end > file_size:
            raise DataLossError(f"{name}: the byte range ends at {end} but the file has only {file_size} "
                                "bytes (truncated, or an index written for a longer file)")
        raw.seek(start)
        yield from _frames(name, _Window(raw, end - start), end, verify, start)


class _Window:
    """``readinto`` over the next ``size`` bytes of a raw file, then end of stream."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw, self._left = raw, size

    def readinto(self, view: memoryview) -> int:
        got = self._raw.readinto(view[: self._left]) if self._left else 0
        self._left -= got
        return got


def _frames(name: str, source: Any, size: Optional[int], verify: bool, base: int = 0) -> Iterator[tuple[int, bytes]]:
    """The framing loop: parse whole records out of a reused buffer filled by ``source.readinto``.

    ``size`` is the stream's end offset when known (plain files), so an oversized length field is
    refused before any read; otherwise the buffer stays bounded until the stream has shown that
    it holds the record (see :func:`_grown_size`). ``base`` is the stream offset of the first
    byte ``source`` gives. The records of each buffer are framed first and their data CRCs
    compared together; records before a bad one are still yielded.
    """
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    unpack = _HEADER.unpack_from
    known: dict[int, int] = {}  # length -> its masked CRC, already verified
    have = 0  # bytes held in buf; base is the stream offset of buf[0]
    while True:
        got = source.readinto(view[have:])
        if not got:
            if have:
                _truncated(name, base, view[:have])
            return
        end, pos = have + got, 0
        if _framing is not None:  # the good whole records in C; from where it stops, the loop below
            framed, data, pos = _framing.frame(buf, end, crc32c.crc32c if verify else None, base)
            yield from zip(framed, data)
        offsets: list[int] = []
        records: list[bytes] = []
        footers: list[int] = []  # where each record's data CRC sits in buf
        error = None
        need = 0  # the size of the incomplete record at pos, once its header is read
        while end - pos >= HEADER_SIZE:
            length, length_crc = unpack(buf, pos)
            if verify and known.get(length) != length_crc:
                error = _length_crc_error(name, base + pos, view[pos : pos + 8], length_crc)
                if error is not None:
                    break
                if len(known) >= _KNOWN_LENGTHS_MAX:
                    known.clear()
                known[length] = length_crc
            stop = pos + HEADER_SIZE + length
            if stop + FOOTER_SIZE > end:
                error = None if size is None else _fits_error(name, base + pos, length, size)
                need = stop + FOOTER_SIZE - pos
                break
            offsets.append(base + pos)
            records.append(view[pos + HEADER_SIZE : stop].tobytes())
            footers.append(stop)
            pos = stop + FOOTER_SIZE
        if verify and records:
            bad = _first_bad_crc(buf, records, footers)
            if bad is not None:
                yield from zip(offsets[:bad], records[:bad])
                (stored,) = _CRC.unpack_from(buf, footers[bad])
                raise _bad_data(name, offsets[bad], stored, masked_crc32c(records[bad]))
        yield from zip(offsets, records)
        if error is not None:
            raise error
        have = end - pos
        view[:have] = view[pos:end]
        base += pos
        if need > len(buf):  # one record larger than the buffer
            grown = _grown_size(name, source, base, need, have, len(buf), size is not None)
            if grown > len(buf):
                view.release()
                buf.extend(bytes(grown - len(buf)))
                view = memoryview(buf)


def _grown_size(name: str, source: Any, offset: int, need: int, have: int, capacity: int, fits: bool) -> int:
    """The buffer size for a record of ``need`` bytes at ``offset`` of which ``have`` are held.

    A length already checked against the stream's size (``fits``) or up to ``_TRUSTED_LENGTH``
    gets its buffer at once. Beyond that, in a stream of unknown size, a length field could claim
    far more than the file holds (2**40 bytes in a 1.5 MiB GZIP file): the source is asked how
    much follows, in bounded steps, before anything is allocated, and a short stream raises the
    truncation error; a source that cannot tell (a pipe) grows the buffer only as data arrives.
    """
    if fits or need <= _TRUSTED_LENGTH:
        return need
    probe = getattr(source, "available", None)
    found = probe(need - have) if probe is not None else None
    if found is None:
        return capacity * 2 if have == capacity else capacity
    if have + found < need:
        raise _truncated_error(name, offset, need - HEADER_SIZE - FOOTER_SIZE, have + found)
    return need


def _first_bad_crc(buf: bytearray, records: list[bytes], footers: list[int]) -> Optional[int]:
    """The index of the first record whose masked CRC32C differs from the one stored at its
    footer in ``buf``, or None; all records are compared at once."""
    computed = np.fromiter(map(crc32c.crc32c, records), np.uint32, len(records))
    masked = ((computed >> np.uint32(15)) | (computed << np.uint32(17))) + np.uint32(_MASK_DELTA)
    at = np.asarray(footers)[:, None] + np.arange(FOOTER_SIZE)
    stored = np.frombuffer(buf, np.uint8)[at].view("<u4").ravel()
    bad = np.flatnonzero(masked != stored)
    return int(bad[0]) if bad.size else None


def _length_crc_error(name: str, offset: int, length_bytes: Any, stored: int) -> Optional[DataLossError]:
    """The error for a length field whose masked CRC is not ``stored``, or None when it is."""
    computed = masked_crc32c(length_bytes)
    if computed == stored:
        return None
    return DataLossError(
        f"{name}: corrupted record length at byte offset {offset}: expected masked CRC32C "
        f"{stored:#010x}, computed {computed:#010x}"
    )


def _fits_error(name: str, offset: int, length: int, size: int) -> Optional[DataLossError]:
    """The error for a record that would run past the end (byte ``size``) of its stream, found
    before anything of that length is allocated; None when it fits."""
    if length + HEADER_SIZE + FOOTER_SIZE > size - offset:
        return _truncated_error(name, offset, length, size - offset)
    return None


def _bad_data(name: str, offset: int, stored: int, computed: int) -> DataLossError:
    return DataLossError(
        f"{name}: corrupted record data at byte offset {offset}: expected masked CRC32C {stored:#010x}, "
        f"computed {computed:#010x}"
    )


def _truncated(name: str, offset: int, held: Any) -> None:
    """Raise for a stream that ends inside the record at ``offset``; ``held`` is what is left."""
    if len(held) < HEADER_SIZE:
        raise DataLossError(
            f"{name}: truncated record header at byte offset {offset}: expected {HEADER_SIZE} bytes "
            f"(length and its CRC), found {len(held)}"
        )
    raise _truncated_error(name, offset, _LENGTH.unpack_from(held, 0)[0], len(held))


def _truncated_error(name: str, offset: int, length: int, found: int) -> DataLossError:
    return DataLossError(
        f"{name}: truncated record at byte offset {offset}: expected {length + HEADER_SIZE + FOOTER_SIZE} "
        f"bytes (header, {length} data bytes, CRC), found {found}"
    )


def read_record_at(reader: Any, name: str, offset: int, verify: bool = True, size: Optional[int] = None) -> bytes:
    """The data of the record whose header starts at ``offset`` in an uncompressed file, read through
    ``reader.read(start, stop)`` (a :class:`loaders.files.RangeReader`); CRCs checked, and with the
    file's ``size`` a length running past its end is refused before anything is read."""
    length = _checked_header(reader.read(offset, offset + HEADER_SIZE), name, offset, verify)
    error = None if size is None else _fits_error(name, offset, length, size)
    if error:
        raise error
    body = reader.read(offset + HEADER_SIZE, offset + HEADER_SIZE + length + FOOTER_SIZE)
    if len(body) < length + FOOTER_SIZE:
        raise _truncated_error(name, offset, length, HEADER_SIZE + len(body))
    return _checked_data(body, name, offset, length, verify)


def record_from_frame(frame: bytes, name: str, offset: int, verify: bool = True, source: str = "") -> bytes:
    """The data of the one framed record ``frame`` (header, data, CRC) found at ``offset`` of ``name``,
    e.g. the byte range an index entry (``source``, named in the error) gives; CRCs checked."""
    length = _checked_header(frame, name, offset, verify)
    if length + HEADER_SIZE + FOOTER_SIZE != len(frame):
        raise DataLossError(
            f"{name}: record at byte offset {offset}: expected {len(frame)} bytes as {source or 'the caller'} "
            f"says, found a record of {length + HEADER_SIZE + FOOTER_SIZE}"
        )
    return _checked_data(memoryview(frame)[HEADER_SIZE:], name, offset, length, verify)


def _checked_header(header: Any, name: str, offset: int, verify: bool) -> int:
    """The length field of the record header at the start of ``header``, its CRC checked."""
    if len(header) < HEADER_SIZE:
        _truncated(name, offset, header)
    length, length_crc = _HEADER.unpack_from(header)
    error = verify and _length_crc_error(name, offset, memoryview(header)[:8], length_crc)
    if error:
        raise error
    return length


def _checked_data(body: Any, name: str, offset: int, length: int, verify: bool) -> bytes:
    """The ``length`` data bytes at the start of ``body`` (data then CRC), the CRC checked."""
    data = bytes(body[:length])
    if verify:
        (stored,) = _CRC.unpack_from(body, length)
        if masked_crc32c(data) != stored:
            raise _bad_data(name, offset, stored, masked_crc32c(data))
    return data


def tf_record_iterator(path: PathLike, options: Any = None) -> Iterator[bytes]:
    """TF1's ``tf.python_io.tf_record_iterator``: the records of one file as bytes, CRCs checked."""
    for _, data in iter_records(path, options):
        yield data


__all__ = [
    "TFRecordCompressionType",
    "TFRecordOptions",
    "compression_for",
    "compressor",
    "encode_record",
    "frame_footer",
    "frame_header",
    "iter_records",
    "mask_crc",
    "masked_crc32c",
    "read_record_at",
    "record_from_frame",
    "tf_record_iterator",
]
