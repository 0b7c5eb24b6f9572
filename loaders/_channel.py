"""A connection that carries tensors in shared memory instead of inside the pickle (see :mod:`loaders._remote`).

Tensors never travel as a pickled copy. Each side of a connection owns growable shared-memory
arenas: the sender places a message's tensors in one of them (a copy, or none for a tensor it
allocated there with :meth:`Channel.allocate`) and pickles only (arena, offset, dtype, shape);
the receiver copies them out while decoding, or (``recv(release=...)``) returns tensors that view
the arena and is told when the last of them is gone. An arena's file descriptor crosses once
(again only when it grows, or is made again after :meth:`Channel.retire`). That replaces torch.multiprocessing's new shared-memory segment,
file-descriptor hand-over (an extra connection) and mapping per tensor with at most two copies.
Which arena a message may reuse is the sender's protocol: :mod:`loaders._remote`'s calls are
synchronous (a reply proves the peer has copied the last message out of arena 0), and
:mod:`loaders.loader`'s workers reuse an arena once the main process has released it.
"""
from __future__ import annotations

import array
import functools
import io
import math
import mmap
import os
import pickle
import struct
import tempfile
import weakref
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional

import numpy as np
import torch

from loaders.errors import UnknownError

_ALIGN = 64
_MIN_ARENA_BYTES = 1 << 16
_ARENA, _DATA = b"A", b"D"
_ANNOUNCE = struct.Struct("<IQ")  # after _ARENA: the arena's number and size; its descriptor follows
_HEADER = struct.Struct("<IH")  # after _DATA: the arena the message's tensors are in, how many arenas
# the sender has retired since its last message (their numbers follow, as uint32)


class Channel:
    """One connection plus the arenas that carry its tensors (ours to write, the peer's to read).

    An arena is a memfd (an unlinked temporary file where memfd is missing) mapped by both sides;
    its file descriptor crosses the AF_UNIX connection once. All copies are numpy's: a forked
    child must not rely on torch's intra-op threads, which do not survive ``fork``.
    """

    def __init__(self, conn: Connection, keep_descriptors: bool = False) -> None:
        self.conn = conn
        self._out: list[Optional[np.ndarray]] = []  # uint8 views of our arenas, by number
        self._out_fd: dict[int, int] = {}  # arenas the peer has not received yet
        self._arena = 0  # the arena the message being built goes in
        self._used = 0  # how much of it the message fills
        self._allocated: list[tuple[int, int]] = []  # its regions handed out by allocate()
        self._building = False
        self._retired: list[int] = []  # arenas unmapped since the last message, for the peer to unmap
        self._in: dict[int, mmap.mmap] = {}  # the peer's arenas, by number
        self._in_arrays: dict[int, np.ndarray] = {}
        self._in_fd: Optional[dict[int, int]] = {} if keep_descriptors else None  # their descriptors, to hand on
        self._viewed: set[int] = set()  # the peer's arenas that tensors handed out still view
        self._reading: Optional[np.ndarray] = None  # the arena of the message being received

    def begin(self, arena: int = 0) -> None:
        """Start a message in our arena number ``arena`` (made when new), from its start:
        tensors from :meth:`allocate` and copies made by :meth:`send` are placed in it."""
        while len(self._out) <= arena:
            self._out.append(None)
        self._arena, self._used, self._allocated, self._building = arena, 0, [], True

    def retire(self, arena: int) -> None:
        """Unmap our arena number ``arena`` (its memory goes once nothing views it), and the peer's
        mapping with the next message; beginning it again makes a new one."""
        self._out[arena] = None
        stale = self._out_fd.pop(arena, None)
        if stale is not None:
            os.close(stale)
        self._retired.append(arena)

    def allocate(self, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor in the message's arena: sent in this message, it crosses without a copy."""
        if not self._building:
            self.begin(self._arena)
        nbytes = math.prod(shape) * dtype.itemsize
        start = self._reserve(nbytes)
        self._allocated.append((start, start + nbytes))
        raw = self._out[self._arena][start:start + nbytes]
        as_numpy = _numpy_dtype(dtype)
        if as_numpy is not None:
            return torch.from_numpy(raw.view(as_numpy).reshape(shape))
        return torch.from_numpy(raw).view(dtype).reshape(shape)

    def send(self, obj: Any) -> None:
        """Pickle ``obj`` with its tensors placed in the arena begun (unless :meth:`begin` was
        called for it: the arena of the last message, arena 0 at first), then send it."""
        if not self._building:
            self.begin(self._arena)
        stream = io.BytesIO()
        stream.write(_DATA + _HEADER.pack(self._arena, len(self._retired)) + array.array("I", self._retired).tobytes())
        self._retired = []
        try:
            _Pickler(stream, self).dump(obj)
        finally:
            self._building = False
        fd = self._out_fd.pop(self._arena, None)
        if fd is not None:
            try:
                self.conn.send_bytes(_ARENA + _ANNOUNCE.pack(self._arena, len(self._out[self._arena])))
                reduction.send_handle(self.conn, fd, 0)
            finally:
                os.close(fd)
        self.conn.send_bytes(stream.getbuffer())

    def recv(self, release: Optional[Callable[[int], None]] = None) -> Any:
        """Receive one message, mapping a new peer arena first when one comes. Its tensors are
        copies; with ``release``, they view the peer's arena, and ``release(arena)`` is called once
        all of them are gone (at once for a message without tensors)."""
        data = self.conn.recv_bytes()
        while data[:1] == _ARENA:
            number, size = _ANNOUNCE.unpack_from(data, 1)
            fd = reduction.recv_handle(self.conn)
            try:
                mapping = mmap.mmap(fd, size)
            except BaseException:
                os.close(fd)
                raise
            self.adopt(number, fd, mapping)
            data = self.conn.recv_bytes()
        number, retired = _HEADER.unpack_from(data, 1)
        body = 1 + _HEADER.size + 4 * retired
        for gone in array.array("I", data[1 + _HEADER.size:body]):
            self._drop_peer_arena(gone)
        if release is None:
            if number not in self._in_arrays and number in self._in:
                self._in_arrays[number] = np.frombuffer(self._in[number], dtype=np.uint8)
            self._reading = self._in_arrays.get(number)
        elif number in self._in:
            self._reading = np.frombuffer(self._in[number], dtype=np.uint8)  # this message's own: its finalizer
            self._viewed.add(number)
            weakref.finalize(self._reading, self._unviewed, number, release).atexit = False
        else:
            self._reading = None
            release(number)
        stream = io.BytesIO(data)
        stream.seek(body)
        try:
            return _Unpickler(stream, self, copy=release is None).load()
        finally:
            self._reading = None

    def _unviewed(self, number: int, release: Callable[[int], None]) -> None:
        self._viewed.discard(number)
        release(number)

    def _drop_peer_arena(self, number: int) -> None:
        self._in.pop(number, None)
        self._in_arrays.pop(number, None)
        fd = self._in_fd.pop(number, None) if self._in_fd is not None else None
        if fd is not None:
            os.close(fd)

    def detach(self, number: int) -> Optional[tuple[int, mmap.mmap]]:
        """Forget the peer's arena ``number`` and hand over its descriptor and mapping (for a
        channel that keeps descriptors), or None when it has none such."""
        if self._in_fd is None or number not in self._in_fd:
            return None
        self._in_arrays.pop(number, None)
        return self._in_fd.pop(number), self._in.pop(number)

    def detach_unviewed(self) -> list[tuple[int, mmap.mmap]]:
        """:meth:`detach` every peer arena that no tensor handed out views (the peer must be gone)."""
        return [self.detach(number) for number in list(self._in_fd or ()) if number not in self._viewed]

    def adopt(self, number: int, fd: int, mapping: mmap.mmap) -> None:
        """Take ``mapping`` of ``fd`` as the peer's arena ``number``: one it announced, or one lent
        to it (the peer adopts the same descriptor with :meth:`adopt_own`) to use memory already
        faulted in again."""
        self._drop_peer_arena(number)
        self._in[number] = mapping
        if self._in_fd is None:
            os.close(fd)
        else:
            self._in_fd[number] = fd

    def adopt_own(self, number: int, fd: int, size: int) -> None:
        """Map ``fd`` (closed here) as our arena ``number``, which the peer has mapped already."""
        try:
            mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        finally:
            os.close(fd)
        while len(self._out) <= number:
            self._out.append(None)
        self._out[number] = np.frombuffer(mapping, dtype=np.uint8)

    def place(self, tensor: torch.Tensor) -> tuple:
        """Where ``tensor`` lies in the message's arena, copied there unless :meth:`allocate` made it."""
        arena = self._out[self._arena]
        if arena is not None and tensor.is_contiguous() and tensor.device.type == "cpu":
            start = tensor.data_ptr() - arena.ctypes.data
            end = start + tensor.numel() * tensor.element_size()
            if any(low <= start and end <= high for low, high in self._allocated):
                return start, tensor.dtype, tuple(tensor.shape)
        array = _as_array(tensor)
        start = self._reserve(array.nbytes)
        np.copyto(self._out[self._arena][start:start + array.nbytes].view(array.dtype).reshape(array.shape), array)
        return start, tensor.dtype, tuple(tensor.shape)

    def _reserve(self, nbytes: int) -> int:
        """The offset of ``nbytes`` more of the message's arena, grown when they do not fit."""
        start = self._used
        end = start + nbytes
        arena = self._out[self._arena]
        if arena is None or end > len(arena):
            self._grow(end)
        self._used = -(-end // _ALIGN) * _ALIGN
        return start

    def _grow(self, needed: int) -> None:
        """A new, larger arena in place of the message's (what the message has placed copied over)."""
        size = max(2 * needed, _MIN_ARENA_BYTES)
        stale = self._out_fd.pop(self._arena, None)
        if stale is not None:
            os.close(stale)
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("loaders-arena")
        else:
            fd, path = tempfile.mkstemp(prefix="loaders-arena-")
            os.unlink(path)
        os.ftruncate(fd, size)
        arena = np.frombuffer(mmap.mmap(fd, size), dtype=np.uint8)
        old = self._out[self._arena]
        if old is not None:
            kept = min(self._used, len(old))
            arena[:kept] = old[:kept]
        self._allocated = []  # tensors allocated in the old arena are copied when sent
        if self._arena in self._retired:  # the peer maps the new one in place of the old
            self._retired.remove(self._arena)
        self._out[self._arena], self._out_fd[self._arena] = arena, fd

    def take(self, start: int, dtype: torch.dtype, shape: tuple, copy: bool = True) -> torch.Tensor:
        """A tensor of the peer's arena: a copy, or (``copy=False``) a view of it."""
        if self._reading is None:
            raise UnknownError("a message refers to a shared-memory arena that never arrived")
        raw = self._reading[start:start + math.prod(shape) * dtype.itemsize]
        as_numpy = _numpy_dtype(dtype)
        if as_numpy is not None:
            raw = raw.view(as_numpy).reshape(shape)
            return torch.from_numpy(raw.copy() if copy else raw)
        return torch.from_numpy(raw.copy() if copy else raw).view(dtype).reshape(shape)


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
    """Unpickles a message, its tensors copied out of the peer's arena or viewing it."""

    def __init__(self, stream: io.BytesIO, channel: Channel, copy: bool) -> None:
        super().__init__(stream)
        self._take = channel.take if copy else functools.partial(channel.take, copy=False)

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == _arena_tensor.__name__:
            return self._take
        return super().find_class(module, name)


__all__ = ["Channel"]
