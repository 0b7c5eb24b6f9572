"""A connection that carries tensors in shared memory instead of inside the pickle (see :mod:`loaders._remote`).

Tensors never travel as a pickled copy. Each side of a connection owns a growable shared-memory
arena: the sender copies a message's tensors into it and pickles only (offset, dtype, shape); the
receiver copies them out while decoding. The arena's file descriptor crosses once (again only
when it grows), and calls are synchronous, so a reply proves the peer has finished with the arena
and it is reused. That replaces torch.multiprocessing's new shared-memory segment, file-descriptor
hand-over (an extra connection) and mapping per tensor with two memory copies.
"""
from __future__ import annotations

import functools
import io
import math
import mmap
import os
import pickle
import tempfile
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any, Optional

import numpy as np
import torch

from loaders.errors import UnknownError

_ALIGN = 64
_MIN_ARENA_BYTES = 1 << 16
_ARENA, _DATA = b"A", b"D"


class Channel:
    """One connection plus the arenas that carry its tensors (ours to write, the peer's to read).

    An arena is a memfd (an unlinked temporary file where memfd is missing) mapped by both sides;
    its file descriptor crosses the AF_UNIX connection once. All copies are numpy's: a forked
    child must not rely on torch's intra-op threads, which do not survive ``fork``.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._out: Optional[np.ndarray] = None  # uint8 view of our arena
        self._out_fd: Optional[int] = None  # set while the peer has not received the arena
        self._out_used = 0
        self._in: Optional[np.ndarray] = None  # uint8 view of the peer's arena

    def send(self, obj: Any) -> None:
        """Pickle ``obj`` with its tensors placed in the arena, then send it."""
        self._out_used = 0
        stream = io.BytesIO()
        stream.write(_DATA)
        _Pickler(stream, self).dump(obj)
        if self._out_fd is not None:
            self.conn.send_bytes(_ARENA + len(self._out).to_bytes(8, "little"))
            reduction.send_handle(self.conn, self._out_fd, 0)
            os.close(self._out_fd)
            self._out_fd = None
        self.conn.send_bytes(stream.getbuffer())

    def recv(self) -> Any:
        """Receive one message, mapping a new peer arena first when one comes."""
        data = self.conn.recv_bytes()
        while data[:1] == _ARENA:
            fd = reduction.recv_handle(self.conn)
            try:
                self._in = np.frombuffer(mmap.mmap(fd, int.from_bytes(data[1:9], "little")), dtype=np.uint8)
            finally:
                os.close(fd)
            data = self.conn.recv_bytes()
        stream = io.BytesIO(data)
        stream.seek(1)
        return _Unpickler(stream, self).load()

    def place(self, tensor: torch.Tensor) -> tuple:
        """Copy ``tensor`` into the outgoing arena; return what the peer needs to copy it out."""
        array = _as_array(tensor)
        start = self._out_used
        end = start + array.nbytes
        if self._out is None or end > len(self._out):
            self._grow(end)
        np.copyto(self._out[start:end].view(array.dtype).reshape(array.shape), array)
        self._out_used = -(-end // _ALIGN) * _ALIGN
        return start, tensor.dtype, tuple(tensor.shape)

    def _grow(self, needed: int) -> None:
        size = max(2 * needed, _MIN_ARENA_BYTES)
        if self._out_fd is not None:
            os.close(self._out_fd)
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("loaders-arena")
        else:
            fd, path = tempfile.mkstemp(prefix="loaders-arena-")
            os.unlink(path)
        os.ftruncate(fd, size)
        arena = np.frombuffer(mmap.mmap(fd, size), dtype=np.uint8)
        if self._out is not None:
            kept = min(self._out_used, len(self._out))
            arena[:kept] = self._out[:kept]
        self._out, self._out_fd = arena, fd

    def take(self, start: int, dtype: torch.dtype, shape: tuple) -> torch.Tensor:
        """A fresh tensor copied out of the peer's arena."""
        if self._in is None:
            raise UnknownError("a message refers to a shared-memory arena that never arrived")
        raw = self._in[start:start + math.prod(shape) * dtype.itemsize]
        as_numpy = _numpy_dtype(dtype)
        if as_numpy is not None:
            return torch.from_numpy(raw.view(as_numpy).reshape(shape).copy())
        return torch.from_numpy(raw.copy()).view(dtype).reshape(shape)


@functools.lru_cache(maxsize=None)
def _numpy_dtype(dtype: torch.dtype) -> Optional[np.dtype]:
    """numpy's equivalent of ``dtype``, or None (bfloat16, float8, ...)."""
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except (TypeError, RuntimeError):
        return None


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    """A numpy view of the tensor's CPU data; raw bytes for dtypes numpy lacks."""
    tensor = tensor.detach().cpu().resolve_conj().resolve_neg()
    if _numpy_dtype(tensor.dtype) is not None:
        return tensor.numpy()
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy()


def _arena_tensor(start: int, dtype: torch.dtype, shape: tuple) -> torch.Tensor:
    """Stands in a pickle for a tensor left in the arena; the receiving channel's ``take`` replaces it."""
    raise UnknownError("an arena tensor can only be unpickled by the channel it was sent on")


class _Pickler(pickle.Pickler):
    """Pickles a message, leaving its tensors in the channel's arena."""

    def __init__(self, stream: io.BytesIO, channel: Channel) -> None:
        super().__init__(stream, pickle.HIGHEST_PROTOCOL)
        self._channel = channel

    def reducer_override(self, obj: Any) -> Any:
        # Called for objects other than plain ints, strings, tuples, lists...: cheaper than persistent_id.
        if isinstance(obj, torch.Tensor):
            return _arena_tensor, self._channel.place(obj)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    """Unpickles a message, copying its tensors out of the peer's arena."""

    def __init__(self, stream: io.BytesIO, channel: Channel) -> None:
        super().__init__(stream)
        self._channel = channel

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == _arena_tensor.__name__:
            return self._channel.take
        return super().find_class(module, name)


__all__ = ["Channel"]
