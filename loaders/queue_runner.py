"""TF1's QueueRunner (tf.train.queue_runner): enqueue ops looping in threads or processes.

A :class:`QueueRunner` runs enqueue ops (Python callables) in a loop, each in its own thread or,
with ``use_processes=True``, its own process. ``add_queue_runner``/``start_queue_runners`` keep
TF1's collection of runners; with no graph to scope it, starting runners removes them from it.
A runner's processes and the process that started them watch each other: a producer that dies
unreported fails the queue and stops the coordinator, and producers whose runner's process died
end within seconds.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence

import torch
import torch.multiprocessing

from loaders import _remote
from loaders.coordinator import _JOIN_POLL_SECS, Coordinator, _unreported_death
from loaders.errors import CancelledError, OpError, OutOfRangeError, UnknownError

logger = logging.getLogger(__name__)

#: How often a runner's watch looks at its processes besides waking when one ends.
_WATCH_POLL_SECS = 1.0
#: Seconds a runner process whose runner's process died gets to end by itself before it exits.
_ORPHAN_GRACE_SECS = 5.0

class QueueRunner:
    """Runs enqueue ops in a loop, each in its own thread (or process), and closes the queue at the end.

    Each op is a Python callable, called while the coordinator has not stopped. An op raising
    one of ``queue_closed_exception_types`` (as in TF, ``(OutOfRangeError,)`` by default) ends
    its loop; when every op has ended that way the queue is closed. Any other exception goes to
    ``coord.request_stop`` (which ignores it once stopped: the CancelledError of an enqueue that
    the stop cancelled) and the queue is closed with ``cancel_pending_enqueues=True``, as it is
    whenever the coordinator stops, so no producer stays blocked. Without a coordinator it is
    kept in ``exceptions_raised`` and re-raised in the thread.

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
        if queue_closed_exception_types is not None and not (
                isinstance(queue_closed_exception_types, tuple) and queue_closed_exception_types
                and all(isinstance(t, type) and issubclass(t, OpError) for t in queue_closed_exception_types)):
            raise TypeError("queue_closed_exception_types, when provided, must be a tuple of loaders error "
                            f"types, but saw: {queue_closed_exception_types!r}")
        self._closed_types = queue_closed_exception_types or (OutOfRangeError,)
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
    closed, payload, after_stop = False, None, False
    try:
        while coord is None or not coord.should_stop():
            op()
    except closed_types:
        closed = True
    except Exception as ex:
        payload = _remote.exception_payload(ex)
        after_stop = coord is not None and coord.should_stop()  # e.g. its enqueue, cancelled by the stop
    try:
        _remote.call(runner, "op_ended", token, closed, payload)
    except CancelledError as err:
        logger.debug("the QueueRunner's process is gone: %r", err)
    if payload is not None and not after_stop:
        sys.exit(1)  # a failure of its own, not one that the stopped coordinator ignores


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


__all__ = ["QueueRunner", "add_queue_runner", "start_queue_runners"]
