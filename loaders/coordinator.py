"""TF1's Coordinator, for producer threads and torch.multiprocessing processes alike.

A :class:`Coordinator` lets threads and processes stop together and brings their exceptions back
to ``join``. Its stop flag is one byte of shared memory (every process reads it), and it lives in
the process that created it: another process that calls ``request_stop`` sends the exception there
(type, message and traceback text) through :mod:`loaders._remote`.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from loaders import _remote
from loaders.errors import OutOfRangeError, UnknownError

logger = logging.getLogger(__name__)

#: How often ``join`` looks at its threads and processes while waiting.
_JOIN_POLL_SECS = 0.1


def _describe(worker: Any) -> str:
    pid = getattr(worker, "pid", None)
    return worker.name if pid is None else f"{worker.name} (pid {pid})"


def _abnormal_exit(worker: Any) -> Optional[str]:
    """For a process that ended with a nonzero code or a signal: what happened, in words."""
    code = getattr(worker, "exitcode", None)
    if not code:
        return None
    if code < 0:
        try:
            return f"process {_describe(worker)} was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"process {_describe(worker)} was killed by signal {-code}"
    return f"process {_describe(worker)} exited with code {code}"


def _unreported_death(worker: Any) -> Optional[UnknownError]:
    """The error for a process that ended abnormally and reported nothing (``join`` raises it)."""
    reason = _abnormal_exit(worker)
    return None if reason is None else UnknownError(f"{reason} without reporting an exception")


class Coordinator:
    """Stops threads and processes together and reports the first exception (TF1's tf.train.Coordinator).

    ``OutOfRangeError`` (or ``clean_stop_exception_types``) stops cleanly. ``threads`` given to
    ``join`` may mix ``threading.Thread`` and ``multiprocessing`` Process objects; a process that
    dies without reporting (killed by a signal, nonzero exit) makes ``join`` raise, naming it.
    In another process a Coordinator supports ``should_stop``, ``request_stop``,
    ``stop_on_exception`` and ``wait_for_stop``; the rest belongs to the process that created it.
    Hand it to processes as ``Process`` arguments or through multiprocessing queues (their pickler
    shares its stop flag; plain ``pickle`` would copy it).
    """

    def __init__(self, clean_stop_exception_types: Optional[Sequence[type]] = None) -> None:
        if clean_stop_exception_types is None:
            clean_stop_exception_types = (OutOfRangeError,)
        self._clean_stop_exception_types = tuple(clean_stop_exception_types)
        self._flag = torch.zeros(1, dtype=torch.uint8).share_memory_()  # seen by every process
        self._flag_view = self._flag.numpy()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._exception: Optional[BaseException] = None
        self._joined = False
        self._registered_threads: set = set()
        self._stop_callbacks: list = []
        self._proxy = False
        self._ref = _remote.share(self)

    # -- every process ----------------------------------------------------------------------
    def should_stop(self) -> bool:
        """True once a stop was requested (by any thread or process)."""
        return bool(self._flag_view[0])

    def request_stop(self, ex: Any = None) -> None:
        """Ask everything to stop; ``ex`` (an exception or ``sys.exc_info()``) is raised by ``join``.

        Only the first exception reported before the stop is kept; clean-stop types are dropped.
        """
        if isinstance(ex, tuple):
            ex = ex[1]
        if isinstance(ex, self._clean_stop_exception_types):
            ex = None
        if self._proxy:
            _remote.call(self._ref, "request_stop", None if ex is None else _remote.exception_payload(ex))
            return
        with self._lock:
            if self._joined and ex is not None:
                raise ex  # join already ran: nobody would ever see it otherwise (as TF1)
            if self._stopped.is_set():
                return
            if ex is not None and self._exception is None:
                logger.info("Error reported to Coordinator: %s: %s", type(ex).__name__, ex)
                self._exception = ex
            self._flag_view[0] = 1
            self._stopped.set()
            callbacks, self._stop_callbacks = self._stop_callbacks, []
        for callback in callbacks:
            callback()

    @contextlib.contextmanager
    def stop_on_exception(self) -> Iterator[None]:
        """Report any exception raised in the block, KeyboardInterrupt included, and swallow it (as TF1)."""
        try:
            yield
        except BaseException as ex:  # noqa: B036  (TF1 catches everything here; join re-raises it)
            self.request_stop(ex)

    def wait_for_stop(self, timeout: Optional[float] = None) -> bool:
        """Block until a stop is requested or ``timeout`` seconds pass; return whether it stopped."""
        if self._proxy:
            return _remote.call(self._ref, "wait_for_stop", timeout)
        return self._stopped.wait(timeout)

    # -- the owner process only -------------------------------------------------------------
    def _owner_only(self, what: str) -> None:
        if self._proxy:
            raise RuntimeError(f"Coordinator.{what} works only in the process that created the Coordinator")

    def register_thread(self, thread: Any) -> None:
        """Add a thread or process for ``join`` to wait on."""
        self._owner_only("register_thread")
        with self._lock:
            self._registered_threads.add(thread)

    def join(self, threads: Optional[Sequence[Any]] = None, stop_grace_period_secs: float = 120,
             ignore_live_threads: bool = False) -> None:
        """Wait until every thread/process ended or a stop was requested, then up to the grace period.

        Raises the first reported exception; else names processes that died abnormally; else
        raises RuntimeError naming the threads/processes still alive (unless ``ignore_live_threads``).
        """
        self._owner_only("join")
        with self._lock:
            workers = list(self._registered_threads.union(threads or ()))
        while any(w.is_alive() for w in workers) and not self.wait_for_stop(_JOIN_POLL_SECS):
            for error in filter(None, map(_unreported_death, workers)):
                self.request_stop(error)
        deadline = time.monotonic() + stop_grace_period_secs
        pause = 0.001
        while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(2 * pause, _JOIN_POLL_SECS)
        stragglers = [_describe(w) for w in workers if w.is_alive()]
        failures = [reason for reason in map(_abnormal_exit, workers) if reason]
        for worker in workers:
            if not worker.is_alive() and hasattr(worker, "exitcode"):
                worker.join()  # reap the process: no zombie left
        with self._lock:
            self._joined = True
            self._registered_threads = set()
            ex = self._exception
        if ex is not None:
            raise ex
        if failures:
            raise UnknownError("; ".join(failures))
        if stragglers:
            if not ignore_live_threads:
                raise RuntimeError(f"Coordinator stopped with threads still running: {' '.join(stragglers)}")
            logger.info("Coordinator stopped with threads still running: %s", " ".join(stragglers))

    @property
    def joined(self) -> bool:
        """Whether ``join`` has run (since the last ``clear_stop``)."""
        return self._joined

    def raise_requested_exception(self) -> None:
        """Raise the exception passed to ``request_stop``, if any."""
        self._owner_only("raise_requested_exception")
        with self._lock:
            ex = self._exception
        if ex is not None:
            raise ex

    def clear_stop(self) -> None:
        """Forget the stop request and its exception so the coordinator can be used again."""
        self._owner_only("clear_stop")
        with self._lock:
            self._joined = False
            self._exception = None
            self._flag_view[0] = 0
            self._stopped.clear()

    def _on_stop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, at the next stop (now if stopped already)."""
        self._owner_only("_on_stop")
        with self._lock:
            if not self._stopped.is_set():
                self._stop_callbacks.append(callback)
                return
        callback()

    # -- other processes --------------------------------------------------------------------
    def __reduce__(self) -> tuple:
        state = {key: getattr(self, key) for key in ("_clean_stop_exception_types", "_flag", "_ref")}
        return _remote.rebuild, (type(self), state)

    def _become_proxy(self) -> None:
        """In another process: read the shared flag, send stops and waits to the owner."""
        self._proxy = True
        self._flag_view = self._flag.numpy()

    def _serve(self, method: str, args: tuple, alive: Callable[[], bool]) -> Any:
        """Answer a proxy: ``request_stop`` with an exception payload, or a ``wait_for_stop``."""
        if method == "request_stop":
            (payload,) = args
            return self.request_stop(None if payload is None else _remote.rebuild_exception(payload))
        if method == "wait_for_stop":
            (timeout,) = args
            deadline = None if timeout is None else time.monotonic() + timeout
            while alive():
                remaining = _JOIN_POLL_SECS if deadline is None else min(deadline - time.monotonic(), _JOIN_POLL_SECS)
                if remaining <= 0 or self._stopped.wait(remaining):
                    break
            return self._stopped.is_set()
        raise ValueError(f"Coordinator has no remote operation {method!r}")


__all__ = ["Coordinator"]
