"""The one way in and out of storage for every reader, dataset, writer, index and command line.

Local paths and globs are opened with plain ``open()``. Any other fsspec URL (``s3://``,
``gs://``, ``http(s)://``, ``memory://``, ``file://``, chained ``simplecache::s3://``...) goes
through fsspec, with ``storage_options`` (pandas' convention: passed to the filesystem) and
fsspec's own configuration (``fsspec.config``, ``FSSPEC_S3_...`` variables). Remote reads fetch
large blocks one ahead of the reader (sequential) or single byte ranges (indexed access); every
request is checked for length and retried with exponential backoff on transient errors
(connection lost, timeouts, HTTP 5xx and 429), then fails with an error naming the URL.
Text compression (.gz, .bz2, .xz, .zst; :mod:`loaders.codecs`) is inferred from the suffix where asked;
failures are classified in :mod:`loaders.storage_errors`. Writes are
atomic: to a temporary file or object beside the target, moved into place on commit.
"""
from __future__ import annotations

import contextlib
import glob
import io
import os
import random
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Callable, Iterator, Mapping, Optional, Sequence, Union

from loaders.codecs import Decompressed, codec_of
from loaders.storage_errors import ShortRead, StorageUnavailable, named_error, transient

Paths = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
StorageOptions = Optional[Mapping[str, Any]]

#: Attempts per remote request, and the first pause between them (doubled after each failure).
RETRY_ATTEMPTS = 6
RETRY_BACKOFF_S = 0.1
#: Bytes per sequential remote request (one more is fetched ahead while the reader parses).
BLOCK_SIZE = 16 << 20
#: The back-end package and this project's extra for each URL scheme that needs one.
BACKENDS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
            "http": ("aiohttp", None), "https": ("aiohttp", None), "az": ("adlfs", None), "abfs": ("adlfs", None)}


def is_remote(path: "str | os.PathLike[str]") -> bool:
    """True for a URL handled by fsspec; False for a local path or a ``file://`` URL."""
    name = os.fspath(path)
    return ("://" in name or "::" in name) and not name.startswith("file://")


def local_path(path: "str | os.PathLike[str]") -> str:
    """The local file name of a path or ``file://`` URL."""
    name = os.fspath(path)
    return name[len("file://"):] if name.startswith("file://") else name


def filesystem(url: str, storage_options: StorageOptions = None) -> tuple[Any, str]:
    """fsspec's ``(filesystem, path)`` for ``url`` (cached by fsspec per process and options)."""
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError:
        scheme = url.split("://", 1)[0].split("::")[-1]
        package, extra = BACKENDS.get(scheme, (None, None))
        if package is None:
            raise
        hint = f"pip install torch-loaders-style[{extra}]" if extra else f"pip install {package}"
        raise ImportError(f"{url}: reading {scheme}:// needs {package}: {hint}") from None


def call(url: str, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, retried with exponential backoff on transient errors; any
    failure is re-raised as one error naming ``url`` (what was being done in ``what``)."""
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return function(*args, **kwargs)
        except ImportError:
            raise
        except Exception as error:  # fsspec back-ends raise many types; each is classified here
            if attempt == RETRY_ATTEMPTS or not transient(error):
                raise named_error(url, what, error, attempt) from error
        time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _fetch(url: str, fs: Any, path: str, start: int, stop: int, size: Optional[int]) -> bytes:
    """Bytes ``[start, stop)`` of a remote object in one request, checked for length and retried."""

    def once() -> bytes:
        data = fs.cat_file(path, start=start, end=stop)
        if size is not None and len(data) == size != stop - start:
            data = data[start:stop]  # a server that ignored the Range header sent the whole object
        if len(data) != stop - start:
            raise ShortRead(f"got {len(data)} of the {stop - start} bytes at byte offset {start}")
        return data

    return call(url, f"reading bytes {start}-{stop}", once) if stop > start else b""


def expand_paths(paths_or_glob: Paths, what: str = "dataset", storage_options: StorageOptions = None) -> list[str]:
    """File names or URLs from a path, URL, glob pattern (local or remote) or a list of them
    (matches sorted; a pattern matching nothing, or a missing file, is an error naming it)."""
    items = [paths_or_glob] if isinstance(paths_or_glob, (str, os.PathLike)) else list(paths_or_glob)
    files: list[str] = []
    for item in items:
        name = os.fspath(item)
        if is_remote(name):
            files.extend(_expand_remote(name, storage_options))
        elif glob.has_magic(local_path(name)):
            matched = sorted(glob.glob(local_path(name)))
            if not matched:
                raise FileNotFoundError(f"{name}: no file matches this pattern")
            files.extend(matched)
        elif os.path.isfile(local_path(name)):
            files.append(local_path(name))
        else:
            problem = "is a folder, not a file" if os.path.isdir(local_path(name)) else "no such file"
            raise FileNotFoundError(f"{name}: {problem}")
    if not files:
        raise ValueError(f"{what} needs at least one file")
    return files


def _is_pattern(url: str, path: str) -> bool:
    """Whether a URL is a glob pattern: ``*``, ``?`` or ``[`` in its path (over HTTP, ``*`` or
    ``[`` before the query string, where ``?`` starts; listed from the server's index pages)."""
    if url.startswith(("http://", "https://")):
        return any(char in url.split("?", 1)[0] for char in "*[")
    return glob.has_magic(path)


def _expand_remote(url: str, storage_options: StorageOptions) -> list[str]:
    fs, path = filesystem(url, storage_options)
    if _is_pattern(url, path):
        found = call(url, "listing", fs.glob, path, detail=True)
        matched = sorted(name for name, info in found.items() if info.get("type", "file") == "file")
        if not matched:
            raise FileNotFoundError(f"{url}: no object matches this pattern")
        return [fs.unstrip_protocol(name) for name in matched]
    info = call(url, "looking up", fs.info, path)
    if info.get("type", "file") != "file":
        raise FileNotFoundError(f"{url}: is a folder (a prefix), not a file")
    return [url]


def exists(path: str, storage_options: StorageOptions = None) -> bool:
    """Whether the file or object ``path`` exists (used to find index files beside data files)."""
    if not is_remote(path):
        return os.path.exists(local_path(path))
    fs, name = filesystem(path, storage_options)
    try:  # fs.info, not fs.exists: a transient error is retried, not taken for "missing"
        call(path, "looking up", fs.info, name)
    except FileNotFoundError:
        return False
    return True


def size(path: str, storage_options: StorageOptions = None) -> int:
    """The size in bytes of a file or object."""
    if not is_remote(path):
        return os.path.getsize(local_path(path))
    fs, name = filesystem(path, storage_options)
    return int(call(path, "looking up the size", fs.size, name))


def read_bytes(path: str, storage_options: StorageOptions = None) -> bytes:
    """The whole content of a (small) file or object."""
    with open_input(path, storage_options) as handle:
        return handle.read()


class RemoteReader(io.RawIOBase):
    """A seekable raw reader of a remote object: ``block_size`` bytes per request, the next
    block fetched in a background thread while the current one is read (sequential reads only)."""

    def __init__(self, url: str, storage_options: StorageOptions = None, block_size: Optional[int] = None,
                 end: Optional[int] = None) -> None:
        super().__init__()
        self.url, self.block_size = url, block_size or BLOCK_SIZE
        self._fs, self._path = filesystem(url, storage_options)
        self.size = int(call(url, "looking up the size", self._fs.size, self._path))
        self._end = self.size if end is None else min(end, self.size)
        self._pos, self._start, self._buf = 0, 0, b""
        self._ahead: Optional[tuple[int, Future]] = None
        self._pool: Optional[ThreadPoolExecutor] = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"{self.url}: negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def _block(self, start: int) -> bytes:
        return _fetch(self.url, self._fs, self._path, start, min(start + self.block_size, self._end), self.size)

    def _fill(self) -> None:
        sequential = self._pos == self._start + len(self._buf)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == self._pos:
            self._buf = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].cancel()
            self._buf = self._block(self._pos)
        self._start = self._pos
        following = self._start + len(self._buf)
        if sequential and following < self._end:
            self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="loaders-readahead")
            self._ahead = (following, self._pool.submit(self._block, following))

    def readinto(self, view: Any) -> int:
        if self._pos >= self._end:
            return 0
        if not self._start <= self._pos < self._start + len(self._buf):
            self._fill()
        at = self._pos - self._start
        count = min(len(view), len(self._buf) - at)
        memoryview(view).cast("B")[:count] = memoryview(self._buf)[at:at + count]
        self._pos += count
        return count

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ahead, self._buf = None, b""
        super().close()


def open_input(path: str, storage_options: StorageOptions = None, *, compression: Optional[str] = None,
               buffering: int = -1, end: Optional[int] = None, block_size: Optional[int] = None) -> BinaryIO:
    """Open a file or URL for reading, binary. ``compression="infer"`` decompresses by suffix
    (.gz, .bz2, .xz, .zst), or name a codec. ``buffering=0`` gives the raw file (``readinto``).
    Remote only: ``end`` says no byte at or past it will be read, so none is fetched;
    ``block_size`` is the bytes per request (default :data:`BLOCK_SIZE`)."""
    codec = codec_of(path, compression)
    if is_remote(path):
        raw: Any = RemoteReader(path, storage_options, block_size, end)
    else:
        try:
            raw = open(local_path(path), "rb", buffering=0)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
    if codec:
        raw = Decompressed(raw, codec, path)
    return raw if buffering == 0 and not codec else io.BufferedReader(raw, 1 << 16)


def stream_size(raw: Any) -> Optional[int]:
    """The size of an opened file or object, None for a pipe or a device."""
    if isinstance(raw, RemoteReader):
        return raw.size
    import stat

    status = os.fstat(raw.fileno())
    return status.st_size if stat.S_ISREG(status.st_mode) else None


class RangeReader:
    """Byte ranges of one file or object, for random access: ``reader.read(start, stop)``. A local
    file is opened once per process (``os.pread``: no shared file position); nothing open is pickled."""

    def __init__(self, path: str, storage_options: StorageOptions = None) -> None:
        self.path, self.storage_options = path, storage_options
        self._fd: Optional[int] = None
        self._pid = os.getpid()

    def read(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` (fewer only at the end of a local file)."""
        if is_remote(self.path):
            fs, name = filesystem(self.path, self.storage_options)
            return _fetch(self.path, fs, name, start, stop, None)
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(local_path(self.path), os.O_RDONLY), os.getpid()
        return os.pread(self._fd, stop - start, start)

    def close(self) -> None:
        """Close this process's descriptor (a forked child leaves its parent's alone)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        self.close()


class AtomicFile:
    """A binary file written under a temporary name and moved to ``path`` by :meth:`commit`: a
    file beside a local target, or a temporary object beside a remote one."""

    def __init__(self, path: "str | os.PathLike[str]", storage_options: StorageOptions = None) -> None:
        self.path = os.fspath(path)
        self._fs: Any = None
        if is_remote(self.path):
            self._fs, self._target = filesystem(self.path, storage_options)
            folder, _, base = self._target.rpartition("/")
            self.temp_path = f"{folder}/.{base}.{secrets.token_hex(4)}.tmp"
            self.file: BinaryIO = call(self.path, "opening for writing", self._fs.open, self.temp_path, "wb")
            return
        folder, base = os.path.split(os.path.abspath(local_path(self.path)))
        self._target = os.path.join(folder, base)
        self.temp_path = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        self.file = os.fdopen(fd, "wb")

    def commit(self) -> None:
        """Flush and close the temporary file, then move it to its final name."""
        if self._fs is None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp_path, self._target)
            return
        try:
            call(self.path, "uploading", self.file.close)
            call(self.path, "committing", self._fs.mv, self.temp_path, self._target)
        except BaseException:
            self._remove_temp()
            raise

    def abort(self) -> None:
        """Discard the temporary file; nothing appears under the final name."""
        if self._fs is None:
            self.file.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.temp_path)
            return
        discard = getattr(self.file, "discard", None)
        if discard is not None:  # fsspec's buffered files (s3fs, gcsfs): cancel the upload, never flush it
            discard()
            self.file.closed = True
        else:
            self.file.close()
        self._remove_temp()

    def _remove_temp(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm(self.temp_path)
        self._fs.invalidate_cache(self.temp_path)


@contextlib.contextmanager
def atomic_write(path: "str | os.PathLike[str]", storage_options: StorageOptions = None) -> Iterator[BinaryIO]:
    """``with atomic_write(path) as f:`` writes ``path`` atomically (moved into place only if the block succeeds)."""
    target = AtomicFile(path, storage_options)
    try:
        yield target.file
    except BaseException:
        target.abort()
        raise
    target.commit()


def join(folder: str, name: str) -> str:
    """``folder/name`` for a local folder or a URL prefix."""
    return f"{folder.rstrip('/')}/{name}" if is_remote(folder) else os.path.join(local_path(folder), name)


def makedirs(folder: str) -> None:
    """Create a local folder (and its parents); object stores need none."""
    if not is_remote(folder):
        os.makedirs(local_path(folder), exist_ok=True)


def parse_storage_options(pairs: Sequence[str]) -> dict:
    """``--storage-option KEY=VALUE`` flags as storage_options; dotted keys nest
    (``client_kwargs.endpoint_url=http://...``), values read as JSON where they parse."""
    import json

    options: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option {pair!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, last = key.split(".")
        node = options
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return options


__all__ = [
    "AtomicFile", "RangeReader", "RemoteReader", "StorageUnavailable", "atomic_write", "call", "codec_of",
    "exists", "expand_paths", "filesystem", "is_remote", "join", "local_path", "makedirs", "open_input",
    "parse_storage_options", "read_bytes", "size", "stream_size",
]
