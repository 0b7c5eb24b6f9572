"""Cross-process transport: objects owned by one process, called from others (queues, Coordinator).

The owner process runs one ``multiprocessing.connection.Listener`` (AF_UNIX, authenticated with
the process's authkey), started when the first object is shared. Another process opens one
connection per (process, thread) and sends ``(object id, method, args)``; a handler thread in the
owner runs the call, which may block, and sends back the result or the exception.

Tensors cross in shared memory, not inside the pickle: see :mod:`loaders._channel`.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, NamedTuple, Optional

from loaders._channel import Channel as _Channel
from loaders.errors import CancelledError, OpError, UnknownError

logger = logging.getLogger(__name__)


class Ref(NamedTuple):
    """Where a shared object lives: its owner's listener address, its id there, the owner's pid."""

    address: str
    oid: int
    pid: int


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
