"""Cross-process transport: objects owned by one process, called from others (queues, Coordinator).

The owner process runs one ``multiprocessing.connection.Listener`` (AF_UNIX, authenticated with
the process's authkey), started when the first object is shared. Another process opens one
connection per (process, thread) and sends ``(object id, method, args)``; a handler thread in the
owner runs the call, which may block, and sends back the result or the exception.

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
import itertools
import logging
import math
import mmap
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing import reduction
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from loaders.errors import CancelledError, OpError, UnknownError

logger = logging.getLogger(__name__)

_ALIGN = 64
_MIN_ARENA_BYTES = 1 << 16
_ARENA, _DATA = b"A", b"D"


class Ref(NamedTuple):
    """Where a shared object lives: its owner's listener address, its id there, the owner's pid."""

    address: str
    oid: int
    pid: int


class _Channel:
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

    def __init__(self, stream: io.BytesIO, channel: _Channel) -> None:
        super().__init__(stream, pickle.HIGHEST_PROTOCOL)
        self._channel = channel

    def reducer_override(self, obj: Any) -> Any:
        # Called for objects other than plain ints, strings, tuples, lists...: cheaper than persistent_id.
        if isinstance(obj, torch.Tensor):
            return _arena_tensor, self._channel.place(obj)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    """Unpickles a message, copying its tensors out of the peer's arena."""

    def __init__(self, stream: io.BytesIO, channel: _Channel) -> None:
        super().__init__(stream)
        self._channel = channel

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == _arena_tensor.__name__:
            return self._channel.take
        return super().find_class(module, name)


class _Server:
    """The owner side: the listener, the shared objects, one handler thread per connection."""

    def __init__(self) -> None:
        self.listener = Listener(family="AF_UNIX", authkey=multiprocessing.current_process().authkey)
        self.address = self.listener.address
        self.objects: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._ids = itertools.count(1)
        threading.Thread(target=self._accept_loop, name="loaders-remote-accept", daemon=True).start()

    def share(self, obj: Any) -> Ref:
        oid = next(self._ids)
        self.objects[oid] = obj
        return Ref(self.address, oid, os.getpid())

    def _accept_loop(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except (EOFError, ConnectionError, multiprocessing.AuthenticationError) as err:
                logger.debug("a connection to %s failed while opening: %r", self.address, err)
                continue
            except OSError as err:
                logger.warning("accepting connections on %s failed, retrying: %r", self.address, err)
                time.sleep(0.1)
                continue
            threading.Thread(target=self._serve, args=(conn,), name="loaders-remote-serve", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        """Answer one connection's calls until it closes; a vanished peer only ends this thread."""
        channel = _Channel(conn)

        def alive() -> bool:
            return not conn.poll()  # a caller waiting for its reply sends nothing: readable means gone

        with conn:
            while True:
                try:
                    oid, method, args = channel.recv()
                except (EOFError, OSError):
                    return
                try:
                    obj = self.objects.get(oid)
                    if obj is None:
                        raise CancelledError(f"object {oid} no longer exists in process {os.getpid()}")
                    reply = (True, obj._serve(method, args, alive))
                except Exception as err:  # the caller's exception, raised in the caller's process
                    reply = (False, err)
                if not _send_reply(channel, reply, method):
                    return


def _send_reply(channel: _Channel, reply: tuple, method: str) -> bool:
    """Send a call's reply (one that does not pickle as an UnknownError); False when the caller is gone."""
    try:
        try:
            channel.send(reply)
        except (EOFError, OSError):
            raise
        except Exception as err:  # a result or exception that cannot be pickled
            channel.send((False, UnknownError(f"{method}: the result could not be sent back: {err!r}")))
    except (EOFError, OSError):
        return False
    return True


_server: Optional[_Server] = None
_server_lock = threading.Lock()
_local = threading.local()


def share(obj: Any) -> Ref:
    """Make ``obj`` callable from other processes (its ``_serve(method, args, alive)``); return its Ref.

    ``obj._become_proxy()`` is called in a forked child, where the object must forward to the owner.
    """
    global _server
    with _server_lock:
        if _server is None:
            _server = _Server()
        return _server.share(obj)


def lookup(ref: Ref) -> Any:
    """The object ``ref`` names when this process owns it, else None."""
    server = _server
    if server is None or ref.pid != os.getpid() or ref.address != server.address:
        return None
    return server.objects.get(ref.oid)


def rebuild(cls: type, state: dict) -> Any:
    """Unpickle a shared object: the object itself in its owner process, a proxy anywhere else.

    ``state`` is the proxy's ``__dict__`` and holds the object's Ref under ``_ref``.
    """
    local = lookup(state["_ref"])
    if local is not None:
        return local
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    obj._become_proxy()
    return obj


def call(ref: Ref, method: str, *args: Any) -> Any:
    """Run ``method(*args)`` on the object in its owner process; return its result or raise its error."""
    channels = _channels()
    channel = channels.get(ref.address)
    try:
        if channel is None:
            channel = channels[ref.address] = _Channel(
                Client(ref.address, family="AF_UNIX", authkey=multiprocessing.current_process().authkey)
            )
        channel.send((ref.oid, method, args))
        ok, value = channel.recv()
    except (EOFError, OSError) as err:
        _drop(channels, ref.address)
        raise CancelledError(f"the process that owns this object (pid {ref.pid}) is gone: {err!r}") from err
    except BaseException:
        _drop(channels, ref.address)  # interrupted mid-call: the reply would be out of step
        raise
    if ok:
        return value
    raise value


class _RemoteTraceback(Exception):
    """The traceback text of an exception raised in another process (set as its ``__cause__``)."""


def exception_payload(ex: BaseException) -> tuple:
    """What crosses processes for ``ex``: its pickle (None if it has none), type, message, traceback text."""
    try:
        pickled: Optional[bytes] = pickle.dumps(ex)
    except Exception:  # the type or its arguments do not pickle: the text still travels
        pickled = None
    where = f"process {multiprocessing.current_process().name} (pid {os.getpid()})"
    text = "".join(traceback.format_exception(type(ex), ex, ex.__traceback__))
    return pickled, type(ex).__name__, str(ex), f"Traceback in {where}:\n{text}"


def rebuild_exception(payload: tuple) -> BaseException:
    """The exception a payload describes, its message extended with the remote traceback text."""
    pickled, type_name, message, text = payload
    try:
        ex = pickle.loads(pickled) if pickled is not None else None
    except Exception as err:  # e.g. the type is not importable here
        logger.debug("could not rebuild %s from another process: %r", type_name, err)
        ex = None
    if ex is None:
        return UnknownError(f"{type_name}: {message}\n\n{text}")
    if len(ex.args) == 1 and isinstance(ex.args[0], str):
        ex.args = (f"{ex.args[0]}\n\n{text}",)
        if isinstance(ex, OpError):
            ex.message = ex.args[0]
    else:
        ex.__cause__ = _RemoteTraceback(text)
    return ex


def _channels() -> dict:
    """This thread's connections by owner address; a forked child starts with none."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid, _local.channels = os.getpid(), {}
    return _local.channels


def _drop(channels: dict, address: str) -> None:
    channel = channels.pop(address, None)
    if channel is not None:
        channel.conn.close()


def _after_fork_in_child() -> None:
    """The parent's shared objects become proxies; this process gets its own server when needed."""
    global _server, _server_lock
    server, _server, _server_lock = _server, None, threading.Lock()
    if server is not None:
        for obj in list(server.objects.values()):
            obj._become_proxy()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere processes only spawn, and unpickle proxies
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["Ref", "share", "lookup", "rebuild", "call", "exception_payload", "rebuild_exception"]
