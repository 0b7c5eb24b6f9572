"""TF1's Coordinator and QueueRunner, for producer threads and torch.multiprocessing processes alike.

A :class:`Coordinator` lets threads and processes stop together and brings their exceptions back
to ``join``. Its stop flag is one byte of shared memory (every process reads it), and it lives in
the process that created it: another process that calls ``request_stop`` sends the exception there
(type, message and traceback text) through :mod:`loaders._remote`.

A :class:`QueueRunner` runs enqueue ops (Python callables) in a loop, each in its own thread or,
with ``use_processes=True``, its own process. ``add_queue_runner``/``start_queue_runners`` keep
TF1's collection of runners; with no graph to scope it, starting runners removes them from it.
A runner's processes and the process that started them watch each other: a producer that dies
unreported fails the queue and stops the coordinator, and producers whose runner's process died
end within seconds.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.multiprocessing

from loaders import _remote
from loaders.errors import CancelledError, OpError, OutOfRangeError, UnknownError

logger = logging.getLogger(__name__)

#: How often ``join`` looks at its threads and processes while waiting.
_JOIN_POLL_SECS = 0.1
#: How often a runner's watch looks at its processes besides waking when one ends.
_WATCH_POLL_SECS = 1.0
#: Seconds a runner process whose runner's process died gets to end by itself before it exits.
_ORPHAN_GRACE_SECS = 5.0


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


class QueueRunner:
    """Runs enqueue ops in a loop, each in its own thread (or process), and closes the queue at the end.

    Each op is a Python callable, called while the coordinator has not stopped. An op raising
    one of ``queue_closed_exception_types`` (OutOfRangeError, CancelledError) ends its loop;
    when every op has ended that way the queue is closed. Any other exception goes to
    ``coord.request_stop`` and the queue is closed with ``cancel_pending_enqueues=True``, as it
    is whenever the coordinator stops, so no producer stays blocked.

    With ``use_processes=True`` each op runs in a ``torch.multiprocessing`` process
    (``start_method`` picks fork/spawn/forkserver; ops and their queues must pickle for spawn).
    Those processes ignore SIGINT (the process holding the Coordinator turns Ctrl-C into a stop)
    and, like DataLoader workers, run torch with one intra-op thread. A process that dies
    without reporting how its loop ended (SIGKILL, a crash) is seen at once by a watch thread:
    its error (what ``join`` raises) goes to ``coord.request_stop`` and fails the queue, so
    dequeues waiting on it raise that error; a clean exit counts as an op that ran out.
    """

    def __init__(self, queue: Any, enqueue_ops: Sequence[Callable[[], Any]],
                 queue_closed_exception_types: Optional[Sequence[type]] = None,
                 use_processes: bool = False, start_method: Optional[str] = None) -> None:
        if not enqueue_ops:  # as TF, an op that is not callable fails when its thread runs it
            raise ValueError("Must provide queue and enqueue_ops: a non-empty list of callables")
        self.queue = queue
        self.enqueue_ops = list(enqueue_ops)
        self.use_processes = use_processes
        self.start_method = start_method
        self._closed_types = tuple(queue_closed_exception_types or (OutOfRangeError, CancelledError))
        self._lock = threading.Lock()
        self._runs = 0
        self._exceptions_raised: list = []
        self._coord: Optional[Coordinator] = None
        self._ref = _remote.share(self) if use_processes else None
        self._tokens = itertools.count()  # one per process, so that its report and its death meet once
        self._reported: set = set()

    @property
    def name(self) -> str:
        """The queue's name, used to name the threads and processes."""
        return getattr(self.queue, "name", "queue")

    @property
    def queue_closed_exception_types(self) -> tuple:
        """The exception types that end an op's loop quietly."""
        return self._closed_types

    @property
    def exceptions_raised(self) -> list:
        """Exceptions raised by the ops when no coordinator was given to report them to."""
        return list(self._exceptions_raised)

    def create_threads(self, coord: Optional[Coordinator] = None, daemon: bool = False, start: bool = False) -> list:
        """One thread (or process) per op; registered with ``coord``; started when ``start``.

        Returns [] while the ops of a previous call are still running (as TF1).
        """
        with self._lock:
            if self._runs > 0:
                return []
            self._runs = len(self.enqueue_ops)
            self._exceptions_raised = []
        self._coord = coord
        if coord is not None:
            coord._on_stop(self._cancel)
        if self.use_processes:
            context = torch.multiprocessing.get_context(self.start_method)
            tokens = [next(self._tokens) for _ in self.enqueue_ops]
            workers = [
                context.Process(target=_process_main, args=(self._ref, token, op, coord, self._closed_types),
                                name=f"QueueRunner-{self.name}-{i}", daemon=daemon)
                for i, (token, op) in enumerate(zip(tokens, self.enqueue_ops))
            ]
        else:
            workers = [
                threading.Thread(target=self._run, args=(op, coord), name=f"QueueRunner-{self.name}-{i}", daemon=daemon)
                for i, op in enumerate(self.enqueue_ops)
            ]
        for worker in workers:
            if coord is not None:
                coord.register_thread(worker)
            if start:
                worker.start()
        if self.use_processes:
            threading.Thread(target=self._watch, args=(dict(zip(tokens, workers)),),
                             name=f"QueueRunner-{self.name}-watch", daemon=True).start()
        return workers

    def _run(self, op: Callable[[], Any], coord: Optional[Coordinator]) -> None:
        """A thread's loop: call ``op`` until the coordinator stops or the queue is closed."""
        closed = False
        try:
            while coord is None or not coord.should_stop():
                op()
        except self._closed_types:
            closed = True
        except Exception as ex:
            self._op_failed(ex, coord)
            if coord is None:
                raise
        finally:
            self._op_ended(closed)

    def _op_failed(self, ex: BaseException, coord: Optional[Coordinator]) -> None:
        if coord is not None:
            coord.request_stop(ex)
        else:
            logger.error("Exception in QueueRunner %s: %s", self.name, ex)
            with self._lock:
                self._exceptions_raised.append(ex)  # as TF, the queue stays open: no coordinator closes it

    def _op_ended(self, closed: bool) -> None:
        with self._lock:
            self._runs -= 1
            last = self._runs == 0
        if closed and last:
            self._close(cancel=False)

    def _cancel(self) -> None:
        self._close(cancel=True)

    def _close(self, cancel: bool) -> None:
        try:
            self.queue.close(cancel_pending_enqueues=cancel)
        except OpError as err:  # the queue's owner is gone: nothing left to close
            logger.debug("QueueRunner %s: closing the queue failed: %r", self.name, err)

    def _watch(self, processes: dict) -> None:
        """Until every process (by token) has ended: handle the ones that end without reporting."""
        while processes:
            sentinels = list(filter(None, map(_sentinel, processes.values())))
            # Sentinels wake it at once; it polls besides, for processes not started yet and for a
            # sentinel that a grandchild keeps open.
            poll = _WATCH_POLL_SECS if len(sentinels) == len(processes) else _JOIN_POLL_SECS
            multiprocessing.connection.wait(sentinels, poll)
            for token, process in list(processes.items()):
                try:
                    if process.exitcode is None:  # running, or not started yet
                        continue
                    error = _unreported_death(process)
                except ValueError:  # closed after a join, which reported how it ended
                    error = None
                del processes[token]
                if self._first_news(token):
                    self._died(error)

    def _first_news(self, token: int) -> bool:
        """Whether this is the first word of how process ``token`` ended (a report, or its death)."""
        with self._lock:
            if token in self._reported:
                self._reported.discard(token)
                return False
            self._reported.add(token)
            return True

    def _died(self, error: Optional[UnknownError]) -> None:
        """An unreported end: a clean exit (``error`` None) is an op that ran out; any other fails the queue first."""
        if error is None:
            self._op_ended(closed=True)
            return
        try:
            self.queue._fail(error)  # before the stop, whose cancel would wake dequeues with OutOfRangeError
        except OpError as err:
            logger.debug("QueueRunner %s: failing the queue failed: %r", self.name, err)
        self._op_failed(error, self._coord)
        self._op_ended(closed=False)

    def _serve(self, method: str, args: tuple, alive: Callable[[], bool]) -> Any:
        """A runner process reports how its op's loop ended (and the exception, if any)."""
        if method != "op_ended":
            raise ValueError(f"QueueRunner has no remote operation {method!r}")
        token, closed, payload = args
        if not self._first_news(token):
            return  # its death was handled already (killed while reporting)
        if payload is not None:
            self._op_failed(_remote.rebuild_exception(payload), self._coord)
        self._op_ended(closed)

    def _become_proxy(self) -> None:
        """In a forked child the runner is not used: its processes report to the parent's runner."""


def _sentinel(process: Any) -> Optional[int]:
    """What ``multiprocessing.connection.wait`` waits on for a process; None before it starts."""
    try:
        return process.sentinel
    except ValueError:
        return None


def _process_main(
    runner: _remote.Ref, token: int, op: Callable[[], Any], coord: Optional[Coordinator], closed_types: tuple
) -> None:
    """A runner process: loop like a runner thread, then report to the runner in the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # as DataLoader workers: intra-op threads do not survive fork
    _remote.watch_owner(runner.pid, then=_exit_after_grace)
    closed, payload = False, None
    try:
        while coord is None or not coord.should_stop():
            op()
    except closed_types:
        closed = True
    except Exception as ex:
        payload = _remote.exception_payload(ex)
    try:
        _remote.call(runner, "op_ended", token, closed, payload)
    except CancelledError as err:
        logger.debug("the QueueRunner's process is gone: %r", err)
    if payload is not None:
        sys.exit(1)


def _exit_after_grace() -> None:
    """The runner's process died: calls to it fail now, so the loop ends; an op that ignores that is cut short."""
    time.sleep(_ORPHAN_GRACE_SECS)
    logger.warning("the QueueRunner's process is gone and this producer kept running: exiting")
    os._exit(1)


_queue_runners: list = []
_queue_runners_lock = threading.Lock()


def add_queue_runner(qr: QueueRunner) -> None:
    """Add ``qr`` to the runners that the next ``start_queue_runners`` starts (TF1's QUEUE_RUNNERS)."""
    with _queue_runners_lock:
        _queue_runners.append(qr)


def start_queue_runners(coord: Optional[Coordinator] = None, daemon: bool = True, start: bool = True) -> list:
    """Create (and start) the threads/processes of every runner added since the last call.

    There is no graph to scope the collection, so the runners it starts leave it: a second
    call starts only runners added in between.
    """
    with _queue_runners_lock:
        runners = list(_queue_runners)
        _queue_runners.clear()
    return [worker for qr in runners for worker in qr.create_threads(coord, daemon=daemon, start=start)]


__all__ = ["Coordinator", "QueueRunner", "add_queue_runner", "start_queue_runners"]
