"""The web page's job queue: one job on the device at a time, each with its own event history.

A :class:`Job` is one stylization a client asked for: its owner (the client's token), its state
(``queued``, ``running``, then ``done``, ``cancelled`` or ``failed``) and the events it has
posted (place in the queue, steps and losses, snapshots, the end). :class:`JobQueue` runs the
jobs one after the other on a worker thread; the work itself is a function given to it (in
:mod:`torchstyle.serve`, a call of :class:`~torchstyle.StyleTransfer` whose per-step callback
posts the events and raises :class:`Cancelled` once a cancel is asked). Event readers run on an
asyncio loop and wait with :meth:`Job.wait`, woken from the worker thread.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Optional

__all__ = ["Cancelled", "Job", "JobQueue", "FINISHED"]

logger = logging.getLogger(__name__)

FINISHED = ("done", "cancelled", "failed")


class Cancelled(Exception):
    """Raised by a job's step callback once its cancel is asked; ends the optimization there."""


class Job:
    """One stylization: its owner, options, state, result and events (``(kind, data)`` pairs).

    Only the latest ``snapshot`` event keeps its picture: a reader that joins late gets every
    step's losses but one picture, and memory stays bounded.
    """

    def __init__(self, owner: str, work: dict[str, Any]) -> None:
        self.id = secrets.token_urlsafe(12)
        self.owner, self.work = owner, work
        self.state = "queued"
        self.created = time.time()
        self.cancel_requested = threading.Event()
        self.result: Optional[bytes] = None
        self.trace: Optional[dict] = None
        self.error: Optional[str] = None
        self.position: Optional[int] = None
        self.step = 0
        self._events: list[Optional[tuple[str, dict]]] = []
        self._snapshot: Optional[int] = None
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def post(self, kind: str, data: dict) -> None:
        """Append an event (from any thread) and wake the readers."""
        with self._lock:
            if kind == "snapshot":
                if self._snapshot is not None:
                    self._events[self._snapshot] = None  # superseded: its picture is dropped
                self._snapshot = len(self._events)
            self._events.append((kind, data))
            waiters, self._waiters = self._waiters, set()
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def events_after(self, index: int) -> list[tuple[int, str, dict]]:
        """``(index, kind, data)`` of the events from ``index`` on, superseded snapshots left out."""
        with self._lock:
            return [(i, *event) for i, event in enumerate(self._events[index:], start=index)
                    if event is not None]

    def event_count(self) -> int:
        """How many events were posted (the index the next one will get)."""
        with self._lock:
            return len(self._events)

    async def wait(self, index: int) -> None:
        """Return once an event at ``index`` or later exists (at once if one does)."""
        loop, event = asyncio.get_running_loop(), asyncio.Event()
        with self._lock:
            if len(self._events) > index:
                return
            self._waiters.add((loop, event))
        try:
            await event.wait()
        finally:
            with self._lock:
                self._waiters.discard((loop, event))

    def summary(self) -> dict[str, Any]:
        """What a client may see of its job: state, place in the queue, step, error."""
        return {"id": self.id, "state": self.state, "position": self.position,
                "step": self.step, "error": self.error}


class JobQueue:
    """Jobs run one at a time by ``run(job)`` on a worker thread, in the order submitted.

    ``run`` raises :class:`Cancelled` to end a job early, or any exception (its message becomes
    the job's error). At most ``keep`` finished jobs are kept (the oldest are forgotten first).
    """

    def __init__(self, run: Callable[[Job], None], keep: int = 64) -> None:
        self._run, self.keep = run, keep
        self.jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._running: Optional[Job] = None
        self._stopping = False
        self._changed = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start the worker thread."""
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="torchstyle-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job, running or queued, and wait for the worker to end."""
        with self._changed:
            self._stopping = True
            for job in list(self._waiting):
                self._cancel_waiting(job)
            if self._running is not None:
                self._running.cancel_requested.set()
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, job: Job) -> None:
        """Queue ``job``; it learns its place (1: next to run) from a ``queued`` event."""
        with self._changed:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            self.jobs[job.id] = job
            self._waiting.append(job)
            self._positions()
            self._changed.notify_all()

    def waiting(self, owner: str) -> int:
        """How many of ``owner``'s jobs wait or run."""
        with self._changed:
            return sum(job.owner == owner for job in [*self._waiting, self._running] if job)

    def cancel(self, job: Job) -> None:
        """Cancel ``job``: a queued one leaves the queue now, a running one at its next step."""
        with self._changed:
            if job in self._waiting:
                self._cancel_waiting(job)
                self._positions()
            elif job is self._running:
                job.cancel_requested.set()

    def _cancel_waiting(self, job: Job) -> None:
        """Take a queued ``job`` out of the queue as cancelled (the lock is held)."""
        self._waiting.remove(job)
        job.position, job.state = None, "cancelled"
        job.post("cancelled", {"step": 0})

    def _positions(self) -> None:
        """Tell each queued job its place when it changed (the lock is held)."""
        for place, job in enumerate(self._waiting, start=1):
            if job.position != place:
                job.position = place
                job.post("queued", {"position": place})

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs beyond ``keep`` (the lock is held)."""
        finished = [job for job in self.jobs.values() if job.state in FINISHED]
        for job in sorted(finished, key=lambda job: job.created)[:max(0, len(finished) - self.keep)]:
            del self.jobs[job.id]

    def _work(self) -> None:
        """The worker thread: take the next job, run it, record how it ended."""
        while True:
            with self._changed:
                while not self._waiting and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                job = self._running = self._waiting.popleft()
                job.position, job.state = None, "running"
                self._positions()
            try:
                self._run(job)
            except Cancelled:
                job.state = "cancelled"
                job.post("cancelled", {"step": job.step})
            except Exception as exc:  # the job's error, shown on its page; the server goes on
                logger.warning("job %s failed: %s", job.id, exc, exc_info=not isinstance(exc, (ValueError, MemoryError)))
                job.error, job.state = str(exc), "failed"
                job.post("failed", {"error": job.error})
            else:
                job.state = "done"
                job.post("done", {"step": job.step})
            with self._changed:
                self._running = None
                self._forget_old()
