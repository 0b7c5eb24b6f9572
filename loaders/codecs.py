"""Text compression for the I/O layer (:mod:`loaders.files`): the codec of a file by its suffix
(.gz, .bz2, .xz, .zst as pandas' ``compression="infer"``) and a raw reader of the decompressed
bytes that turns a corrupt or truncated stream into a ``DataLossError`` naming the file.
"""
from __future__ import annotations

import bz2
import importlib.util
import io
import lzma
import os
import zlib
from typing import Any, BinaryIO, Callable, Optional

from loaders.errors import DataLossError

#: Text compression by suffix: the codec and, where it is optional, the extra that installs it.
CODECS = {".gz": ("gzip", None), ".bz2": ("bz2", None), ".xz": ("xz", None), ".zst": ("zstd", "zstd")}


def _decompressor(codec: str) -> Callable[[], Any]:
    if codec == "gzip":
        return lambda: zlib.decompressobj(zlib.MAX_WBITS | 16)
    if codec == "bz2":
        return bz2.BZ2Decompressor
    if codec == "xz":
        return lzma.LZMADecompressor
    import zstandard

    return lambda: zstandard.ZstdDecompressor().decompressobj()


class Decompressed(io.RawIOBase):
    """The decompressed bytes of a .gz/.bz2/.xz/.zst stream (concatenated streams too); corrupt or
    truncated input is a ``DataLossError`` naming the file and the uncompressed byte offset."""

    def __init__(self, raw: BinaryIO, codec: str, name: str) -> None:
        super().__init__()
        self._raw, self._codec, self._name = raw, codec, name
        self._new = _decompressor(codec)
        self._state, self._pending, self._out, self._produced, self._started = self._new(), b"", b"", 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, view: Any) -> int:
        while not self._out:
            if not self._pending:
                self._pending = self._raw.read(1 << 16)
                if not self._pending:
                    if self._started and not self._state.eof:
                        raise DataLossError(f"{self._name}: truncated {self._codec} stream at uncompressed byte offset "
                                            f"{self._produced}: expected the end-of-stream marker")
                    return 0
            if self._state.eof:  # another stream follows the one that ended
                self._state = self._new()
            self._started = True
            try:
                self._out = self._state.decompress(self._pending)
            except Exception as exc:  # zlib.error, OSError, LZMAError, ZstdError: the codecs' corruption errors
                raise DataLossError(f"{self._name}: corrupt {self._codec} stream at uncompressed byte offset "
                                    f"{self._produced}: {exc}") from None
            self._pending = self._state.unused_data if self._state.eof else b""
        count = min(len(view), len(self._out))
        memoryview(view).cast("B")[:count] = self._out[:count]
        self._out, self._produced = self._out[count:], self._produced + count
        return count

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
