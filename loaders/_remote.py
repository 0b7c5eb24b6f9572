"""Cross-process transport: objects owned by one process, called from others (queues, Coordinator).

The owner process listens on one AF_UNIX socket (in a private temporary directory), started when
the first object is shared. Another process opens one connection per (process, thread) and sends
``(object id, method, args)``; a handler thread in the owner authenticates the connection with the
process's authkey (multiprocessing's handshake, bounded in time; nothing is unpickled before it),
then runs the calls, which may block, and sends back each result or exception.

Faults end calls instead of hanging them. A forked child closes every connection and the listener
it inherited, so a process's death is seen as end-of-file by its peers. And a process watches the
owners it calls (:class:`_OwnerWatch`): when one dies, the calls waiting on it fail with
CancelledError even where some end of a connection survives elsewhere.

Tensors cross in shared memory, not inside the pickle: see :mod:`loaders._channel`.
"""
from __future__ import annotations

import hmac  # noqa: F401  imported here, not lazily by the handshake: a fork amid that import would deadlock the child
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import tempfile
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from typing import Any, Callable, NamedTuple, Optional

from loaders._channel import Channel as _Channel
from loaders.errors import CancelledError, OpError, UnknownError

logger = logging.getLogger(__name__)

#: Seconds a new connection gets to complete the authentication handshake.
_AUTH_TIMEOUT_SECS = 30.0
#: How often a process checks that the owners it calls are still alive.
_OWNER_POLL_SECS = 0.5


class Ref(NamedTuple):
    """Where a shared object lives: its owner's listener address, its id there, the owner's pid."""

    address: str
    oid: int
    pid: int


class _Server:
    """The owner side: the listening socket, the shared objects, one handler thread per connection."""

    def __init__(self) -> None:
        self._authkey = multiprocessing.current_process().authkey
        directory = tempfile.mkdtemp(prefix="loaders-")  # mode 0700: other users cannot connect
        self.address = os.path.join(directory, "listener")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.bind(self.address)
        self.socket.listen(socket.SOMAXCONN)
        weakref.finalize(self, _remove_listener, self.address, os.getpid())
        self.objects: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._ids = itertools.count(1)
        threading.Thread(target=self._accept_loop, name="loaders-remote-accept", daemon=True).start()

    def share(self, obj: Any) -> Ref:
        oid = next(self._ids)
        self.objects[oid] = obj
        return Ref(self.address, oid, os.getpid())

    def _accept_loop(self) -> None:
        """Accept only: the handshake runs in the connection's own thread, so a silent peer stalls no one."""
        while True:
            try:
                sock, _ = self.socket.accept()
            except OSError as err:
                logger.warning("accepting connections on %s failed, retrying: %r", self.address, err)
                time.sleep(0.1)
                continue
            conn = Connection(sock.detach())
            _opened(conn, None)
            threading.Thread(target=self._serve, args=(conn,), name="loaders-remote-serve", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        """Authenticate one connection, then answer its calls until it closes; a vanished peer only ends this thread."""
        try:
            _handshake(_Deadline(conn, _AUTH_TIMEOUT_SECS), self._authkey, server=True)
        except Exception as err:  # wrong key, silence, garbage: dropped unread, never unpickled
            logger.debug("a connection to %s failed to authenticate: %r", self.address, err)
            _close(conn)
            return
        channel = _Channel(conn)

        def alive() -> bool:
            return not conn.poll()  # a caller waiting for its reply sends nothing: readable means gone

        try:
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
        finally:
            _close(conn)


def _remove_listener(address: str, pid: int) -> None:
    """At exit: remove the listener's socket file and directory (only in the process that made them)."""
    if os.getpid() != pid:
        return
    for remove, path in ((os.unlink, address), (os.rmdir, os.path.dirname(address))):
        try:
            remove(path)
        except OSError as err:
            logger.debug("could not remove %s: %r", path, err)


class _Deadline:
    """A connection as the handshake sees it: its reads give up once ``seconds`` have passed in all."""

    def __init__(self, conn: Connection, seconds: float) -> None:
        self._conn = conn
        self._seconds, self._deadline = seconds, time.monotonic() + seconds

    def send_bytes(self, data: bytes) -> None:
        self._conn.send_bytes(data)

    def recv_bytes(self, maxlength: Optional[int] = None) -> bytes:
        if not self._conn.poll(max(self._deadline - time.monotonic(), 0)):
            raise TimeoutError(f"the peer did not authenticate within {self._seconds} s")
        return self._conn.recv_bytes(maxlength)


def _handshake(conn: Any, authkey: bytes, server: bool) -> None:
    """multiprocessing's mutual HMAC challenge (what Listener.accept and Client run), either side."""
    if server:
        deliver_challenge(conn, authkey)
        answer_challenge(conn, authkey)
    else:
        answer_challenge(conn, authkey)
        deliver_challenge(conn, authkey)


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
            channel = channels[ref.address] = _connect(ref)
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


def _connect(ref: Ref) -> _Channel:
    """An authenticated connection to ``ref``'s owner, failed by the owner watch if the owner dies."""
    watch_owner(ref.pid)
    _refuse_if_gone(ref.pid)
    conn = Client(ref.address, family="AF_UNIX")  # no authkey here: the handshake below is watched too
    try:
        _opened(conn, ref.pid)
        _handshake(conn, multiprocessing.current_process().authkey, server=False)
    except BaseException:
        _close(conn)
        raise
    return _Channel(conn)


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
        _close(channel.conn)


# Every connection this process holds -> the owner pid it calls (None: our server's end). A fork
# child closes them all; the owner watch shuts down those to a dead owner. The lock keeps a
# connection from being closed (and its descriptor reused) while the watch shuts it down.
_open: dict = {}
_open_lock = threading.Lock()


def _opened(conn: Connection, owner: Optional[int]) -> None:
    """Register ``conn``; EOFError if its owner is known dead (the watch shut down the others already)."""
    with _open_lock:
        _refuse_if_gone(owner)
        _open[conn] = owner


def _refuse_if_gone(owner: Optional[int]) -> None:
    if owner in _watch.gone:
        raise EOFError(f"process {owner} has ended")


def _close(conn: Connection) -> None:
    with _open_lock:
        _open.pop(conn, None)
        conn.close()


class _OwnerWatch:
    """Fails the calls to owners that died, checked every ``_OWNER_POLL_SECS`` by one daemon thread.

    End-of-file is not proof enough: a child forked while a connection was being accepted keeps
    the owner's end open. The pid is: a dead parent's orphan is reparented (``getppid`` changes);
    any other owner is gone once ``kill(pid, 0)`` finds no process.
    """

    def __init__(self) -> None:
        self.gone: set = set()
        self._owners: dict = {}  # pid -> (whether it is our parent, callbacks to run when it dies)
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def watch(self, pid: int, then: Optional[Callable[[], None]] = None) -> None:
        with self._lock:
            _, callbacks = self._owners.setdefault(pid, (pid == os.getppid(), []))
            if then is not None:
                callbacks.append(then)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="loaders-remote-owner-watch", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(_OWNER_POLL_SECS)
            with self._lock:
                dead = [pid for pid, (parent, _) in self._owners.items() if not _is_alive(pid, parent)]
                callbacks = [then for pid in dead for then in self._owners.pop(pid)[1]]
            if not dead:
                continue
            with _open_lock:  # with _opened's check: every connection to them is refused or shut down
                self.gone.update(dead)
                stale = [conn for conn, owner in _open.items() if owner in dead]
                for conn in stale:
                    _shut_down(conn)
            if stale:
                logger.warning("process(es) %s ended: failing the %d connection(s) to them", dead, len(stale))
            for then in callbacks:
                then()


def _is_alive(pid: int, parent: bool) -> bool:
    if parent:
        return os.getppid() == pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    return True


def _shut_down(conn: Connection) -> None:
    """Make a connection's blocked and future reads see end-of-file (its descriptor stays open)."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError as err:
        logger.debug("shutting down a connection failed: %r", err)


_watch = _OwnerWatch()


def watch_owner(pid: int, then: Optional[Callable[[], None]] = None) -> None:
    """Watch process ``pid``: once it has died, calls to it fail, then ``then()`` runs (in the watch's thread)."""
    _watch.watch(pid, then)


def _close_inherited(server: Optional[_Server]) -> None:
    """In a forked child: close the parent's connections and listener, so that peers see the parent's EOF."""
    for conn in list(_open):
        conn.close()
    _open.clear()
    if server is not None:
        server.socket.close()


def _after_fork_in_child() -> None:
    """The parent's shared objects become proxies; this process gets its own server and watch when needed."""
    global _server, _server_lock, _open_lock, _watch
    server, _server, _server_lock = _server, None, threading.Lock()
    _open_lock, _watch = threading.Lock(), _OwnerWatch()  # the parent's threads did not survive the fork
    _close_inherited(server)
    if server is not None:
        for obj in list(server.objects.values()):
            obj._become_proxy()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere processes only spawn, and unpickle proxies
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["Ref", "share", "lookup", "rebuild", "call", "watch_owner", "exception_payload", "rebuild_exception"]
