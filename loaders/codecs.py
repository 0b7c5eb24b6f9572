"""Decompression for the I/O layer (:mod:`loaders.files`) and TFRecord: the codec of a file by its
suffix (.gz, .bz2, .xz, .zst as pandas' ``compression="infer"``) and the one raw reader of
decompressed bytes, for those text codecs and TFRecord's GZIP and ZLIB, that turns a corrupt or
truncated stream into a ``DataLossError`` naming the file.
"""
from __future__ import annotations

import bz2
import importlib.util
import io
import lzma
import os
import zlib
from functools import partial
from typing import Any, BinaryIO, Callable, NamedTuple, Optional

from loaders.errors import DataLossError

#: Text compression by suffix: the codec and, where it is optional, the extra that installs it.
CODECS = {".gz": ("gzip", None), ".bz2": ("bz2", None), ".xz": ("xz", None), ".zst": ("zstd", "zstd")}
#: zlib's window bits for TFRecord's compression types (TensorFlow's ZlibCompressionOptions).
ZLIB_WBITS = {"ZLIB": zlib.MAX_WBITS, "GZIP": zlib.MAX_WBITS | 16}


class _Codec(NamedTuple):
    """A fresh decompressor; whether its ``decompress`` takes a ``max_length``; the compressed
    bytes read at a time; and how errors name the offset and word the codec's complaint."""

    new: Callable[[], Any]
    bounded: bool
    chunk: int
    offset: str
    corrupt: str


def _zstd() -> Any:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


# (chunk, offset, corrupt) of the text codecs, and of TFRecord's with TensorFlow's wording.
_TEXT = (1 << 16, "uncompressed byte offset", "{}")
_TF = (1 << 20, "byte offset", "expected valid compressed data ({})")
_CODECS = {
    "gzip": _Codec(partial(zlib.decompressobj, ZLIB_WBITS["GZIP"]), True, *_TEXT),
    "bz2": _Codec(bz2.BZ2Decompressor, True, *_TEXT),
    "xz": _Codec(lzma.LZMADecompressor, True, *_TEXT),
    "zstd": _Codec(_zstd, False, *_TEXT),  # zstandard's decompressobj has no max_length
    **{kind: _Codec(partial(zlib.decompressobj, wbits), True, *_TF) for kind, wbits in ZLIB_WBITS.items()},
}


class Decompressed(io.RawIOBase):
    """The decompressed bytes of a gzip/bz2/xz/zstd or TFRecord GZIP/ZLIB stream (concatenated
    streams too); corrupt or truncated input is a ``DataLossError`` naming the file and the
    uncompressed byte offset. Output is bounded by the caller's buffer except for zstd."""

    def __init__(self, raw: BinaryIO, codec: str, name: str) -> None:
        super().__init__()
        self._raw, self._codec, self._name, self._spec = raw, codec, name, _CODECS[codec]
        self._state, self._pending, self._out, self._produced, self._started = self._spec.new(), b"", b"", 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, view: Any) -> int:
        view = memoryview(view).cast("B")
        if not len(view):
            return 0
        while not self._out:
            if not self._pending and (self._state.eof or getattr(self._state, "needs_input", True)):
                self._pending = self._raw.read(self._spec.chunk)
                if not self._pending:
                    if self._started and not self._state.eof:
                        raise self._error("truncated", "expected the end-of-stream marker")
                    return 0
            if self._state.eof:  # another stream follows the one that ended
                self._state = self._spec.new()
            self._started = True
            try:
                if self._spec.bounded:
                    self._out = self._state.decompress(self._pending, len(view))
                else:
                    self._out = self._state.decompress(self._pending)
            except Exception as exc:  # zlib.error, OSError, LZMAError, ZstdError: the codecs' corruption errors
                raise self._error("corrupt", self._spec.corrupt.format(exc)) from None
            # zlib keeps unread input in unconsumed_tail; bz2 and lzma keep it inside (needs_input)
            self._pending = getattr(self._state, "unconsumed_tail", b"") or (
                self._state.unused_data if self._state.eof else b"")
        count = min(len(view), len(self._out))
        view[:count] = self._out[:count]
        self._out, self._produced = self._out[count:], self._produced + count
        return count

    def available(self, wanted: int) -> Optional[int]:
        """How many of the next ``wanted`` bytes the stream holds, found by decompressing ahead into
        a scratch buffer and rewinding; None where that cannot be done (a pipe, or a codec whose
        state cannot be copied). A TFRecord length field can claim far more than a file holds."""
        if not self._raw.seekable() or not hasattr(self._state, "copy"):
            return None
        saved = (self._raw.tell(), self._state.copy(), self._pending, self._out, self._produced, self._started)
        scratch = memoryview(bytearray(min(wanted, self._spec.chunk)))
        got = 0
        try:
            while got < wanted:
                step = self.readinto(scratch[: min(len(scratch), wanted - got)])
                if not step:
                    break
                got += step
        finally:
            position, self._state, self._pending, self._out, self._produced, self._started = saved
            self._raw.seek(position)
        return got

    def _error(self, what: str, detail: str) -> DataLossError:
        return DataLossError(f"{self._name}: {what} {self._codec} stream at {self._spec.offset} {self._produced}: "
                             f"{detail}")

    def close(self) -> None:
        self._raw.close()
        super().close()


def codec_of(path: str, compression: Optional[str] = "infer") -> Optional[str]:
    """The text compression of ``path``: from its suffix (``"infer"``), or ``compression`` itself;
    None for plain files. A codec whose package is missing is an error naming the extra."""
    if compression != "infer":
        return compression or None
    suffix = os.path.splitext(path.split("?")[0])[1].lower()
    codec, extra = CODECS.get(suffix, (None, None))
    if extra and importlib.util.find_spec("zstandard" if codec == "zstd" else codec) is None:
        raise ImportError(f"{path}: reading {suffix} needs zstandard: pip install torch-loaders-style[{extra}]")
    return codec


__all__ = ["CODECS", "Decompressed", "codec_of"]
