"""What every queue shares: its storage strategies, and blocking, closing and timeouts (:class:`Core`).

An operation that cannot finish at once waits as an *attempt* behind the earlier ones, the way
TF's ``QueueBase`` kernel (tensorflow/core/kernels/queue_base.cc) serves them: enqueues and
closes in one line, dequeues in another, each served strictly in arrival order; whoever changes
the queue serves the lines (:meth:`Core._flush`) and wakes the attempts it completed. The lean
paths (room to enqueue, an element to dequeue, nobody waiting) take the lock once and return.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import random
import threading
import time
from typing import Any, Callable, Optional

from loaders._validate import Spec
from loaders.errors import CancelledError, DeadlineExceededError, OutOfRangeError

Alive = Optional[Callable[[], bool]]

#: How often a blocked operation served for another process checks that the caller is still there.
_ALIVE_POLL_SECS = 0.2

#: What one try of an attempt achieved (TF's kComplete, kProgress, kNoProgress).
_DONE, _PROGRESS, _WAIT = "done", "progress", "wait"


class FIFO(collections.deque):
    """First in, first out; elements a dequeue gives back return to the front."""

    #: A waiting dequeue_many claims elements as they arrive (False: it waits for the whole batch).
    claims = True
    push = collections.deque.append
    pull = collections.deque.popleft

    def restore(self, elements: list) -> None:
        self.extendleft(reversed(elements))


class Shuffled(list):
    """Uniformly random order from a seeded generator (swap the pick with the last, pop)."""

    def __init__(self, seed: Optional[int]) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    claims = True
    push = list.append
    restore = list.extend

    def pull(self) -> tuple:
        index = self._rng.randrange(len(self))
        self[index], self[-1] = self[-1], self[index]
        return self.pop()


class Heap(list):
    """Lowest int64 priority (component 0) first; equal priorities leave in FIFO order.

    As in TF, a dequeue_many waits until the whole batch is there and takes it at once, so that
    it leaves sorted: it claims nothing while it waits (and can never take more than capacity).
    """

    claims = False

    def __init__(self) -> None:
        super().__init__()
        self._order = itertools.count()

    def push(self, element: tuple) -> None:
        heapq.heappush(self, (int(element[0]), next(self._order), element))

    def pull(self) -> tuple:
        return heapq.heappop(self)[2]


class _Attempt:
    """An enqueue, dequeue or close waiting for its turn (TF's ``QueueBase::Attempt``).

    An enqueue's ``items`` are its elements and ``count`` how many are in; a dequeue's ``items``
    are the elements claimed so far and ``count`` how many it still wants. ``error`` is
    ``(class, message)`` once it failed; ``wake`` exists once a thread waits on it.
    """

    __slots__ = ("run", "items", "count", "up_to", "error", "done", "wake")

    def __init__(self, run: Callable[["_Attempt"], str], items: Any, count: int, up_to: bool) -> None:
        self.run = run
        self.items = items
        self.count = count
        self.up_to = up_to
        self.error: Optional[tuple] = None
        self.done = False
        self.wake: Optional[threading.Condition] = None


class Core:
    """Blocking, closing and timeouts shared by every queue type, around one storage strategy.

    ``reserve`` is RandomShuffleQueue's ``min_after_dequeue``: while the queue is open a dequeue
    only takes elements beyond that many. The storage's ``claims`` says whether a waiting
    dequeue_many takes elements as they arrive (the FIFO and shuffled queues) or only a whole
    batch at once (the priority queue). A blocked enqueue or dequeue that times out leaves its
    place in line; elements a dequeue had claimed go back into the queue.
    """

    def __init__(self, label: str, capacity: int, storage: Any, spec: Spec, reserve: int = 0) -> None:
        self.label = label
        self.capacity = capacity
        self._storage = storage
        self._spec = spec
        self._reserve = reserve
        self._lock = threading.Lock()
        self._closed = False
        self._error: Optional[BaseException] = None  # see fail()
        self._enqueuers: collections.deque = collections.deque()  # waiting enqueues and closes
        self._dequeuers: collections.deque = collections.deque()  # waiting dequeues

    # -- enqueue -----------------------------------------------------------------------------
    def put1(self, element: tuple, timeout: Optional[float] = None, alive: Alive = None) -> None:
        """Append one element: the lean path when nothing waits before it and there is room."""
        storage = self._storage
        with self._lock:
            if not self._enqueuers and not self._closed and len(storage) < self.capacity:
                storage.push(element)
                if self._dequeuers:
                    self._flush()
                return
            self._attempt(self._enqueuers, self._try_put, [element], 0, False, timeout, alive, "enqueue")

    def put_many(self, columns: list, timeout: Optional[float] = None, alive: Alive = None) -> None:
        """Append the rows of a checked batch (see :meth:`Spec.columns`)."""
        self.put(self._spec.split(columns), timeout, alive)

    def put(self, elements: Any, timeout: Optional[float] = None, alive: Alive = None) -> None:
        """Append ``elements`` (tuples) in their turn, as room frees up; none at all succeeds at once."""
        if not elements:  # TF: an empty enqueue_many completes at once, even on a closed queue
            return
        with self._lock:
            self._attempt(self._enqueuers, self._try_put, list(elements), 0, False, timeout, alive, "enqueue")

    def _try_put(self, attempt: _Attempt) -> str:
        if self._closed:
            attempt.error = (CancelledError, f"{self.label} is closed")
            return _DONE
        room = self.capacity - len(self._storage)
        if room <= 0:
            return _WAIT
        elements, done = attempt.items, attempt.count
        push = self._storage.push
        for element in elements[done:done + room]:
            push(element)
        attempt.count = min(len(elements), done + room)
        return _DONE if attempt.count == len(elements) else _PROGRESS

    # -- dequeue -----------------------------------------------------------------------------
    def take1(self, timeout: Optional[float] = None, alive: Alive = None) -> tuple:
        """Remove one element: the lean path when nothing waits before it and one is ready."""
        storage = self._storage
        with self._lock:
            if not self._dequeuers and len(storage) > self._reserve:
                element = storage.pull()
                if self._enqueuers:
                    self._flush()
                return element
            return self._attempt(self._dequeuers, self._try_take, [], 1, False, timeout, alive, "dequeue")[0]

    def take_many(self, n: int, up_to: bool, timeout: Optional[float] = None, alive: Alive = None) -> Any:
        """Remove ``n`` elements (see :meth:`take`) and return them batched as ``dequeue_many`` does."""
        return self._spec.batch(self.take(n, up_to, timeout, alive))

    def take(self, n: int, up_to: bool, timeout: Optional[float] = None, alive: Alive = None) -> list:
        """Remove ``n`` elements (fewer with ``up_to`` once closed), in turn; see ``claims``."""
        if n == 0:
            return []
        with self._lock:
            return self._attempt(self._dequeuers, self._try_take, [], n, up_to, timeout, alive, "dequeue")

    def _try_take(self, attempt: _Attempt) -> str:
        storage = self._storage
        size = len(storage)
        if self._closed and size < attempt.count:
            requested = attempt.count + len(attempt.items)
            if attempt.items:  # the batch cannot be completed: give back what it claimed
                storage.restore(attempt.items)
                attempt.items = []
                size = len(storage)
            if not (attempt.up_to and size):
                attempt.error = (
                    OutOfRangeError,
                    f"{self.label} is closed and has insufficient elements "
                    f"(requested {requested}, current size {size})",
                ) if self._error is None else (type(self._error), str(self._error))
                return _DONE
            attempt.count = size
        elif size < attempt.count and not storage.claims:
            return _WAIT
        available = size if self._closed else size - self._reserve
        if available <= 0:
            return _WAIT
        take = min(available, attempt.count)
        pull = storage.pull
        attempt.items.extend([pull() for _ in range(take)])
        attempt.count -= take
        return _DONE if attempt.count == 0 else _PROGRESS

    # -- close -------------------------------------------------------------------------------
    def close(self, cancel: bool = False, alive: Alive = None) -> None:
        """Refuse new enqueues once the pending ones are in; with ``cancel`` at once, failing them."""
        with self._lock:
            if not cancel:
                self._attempt(self._enqueuers, self._try_close, None, 0, False, None, alive, "close")
                return
            self._closed = True
            message = f"enqueue on {self.label} was cancelled: closed with cancel_pending_enqueues=True"
            while self._enqueuers:
                self._finish(self._enqueuers.popleft(), (CancelledError, message))
            self._flush()

    def fail(self, error: BaseException) -> None:
        """Close and cancel because a producer died: once drained, dequeues raise ``error``, not OutOfRangeError."""
        with self._lock:
            self._error = self._error or error
        self.close(cancel=True)

    def _try_close(self, attempt: _Attempt) -> str:
        if self._closed:
            attempt.error = (CancelledError, f"{self.label} is already closed")
        self._closed = True
        return _DONE

    def size(self) -> int:
        """The number of elements held (not counting those a waiting dequeue has claimed)."""
        return len(self._storage)

    def closed(self) -> bool:
        """Whether the queue is closed (a close waiting behind pending enqueues has not closed it yet)."""
        return self._closed

    # -- attempts ----------------------------------------------------------------------------
    def _attempt(
        self, line: collections.deque, run: Callable[[_Attempt], str], items: Any, count: int, up_to: bool,
        timeout: Optional[float], alive: Alive, op: str,
    ) -> Any:
        """Join ``line``, serve the queue, and wait until the attempt is done (lock held)."""
        attempt = _Attempt(run, items, count, up_to)
        line.append(attempt)
        self._flush()
        if not attempt.done:
            self._wait(attempt, line, _deadline(timeout), alive, op)
        if attempt.error is not None:
            error, message = attempt.error
            raise error(message)
        return attempt.items

    def _flush(self) -> None:
        """Serve the waiting attempts, each line in arrival order, until none can progress (lock held)."""
        progress = True
        while progress:
            progress = self._serve_line(self._enqueuers)
            progress = self._serve_line(self._dequeuers) or progress

    def _serve_line(self, line: collections.deque) -> bool:
        progress = False
        while line:
            outcome = line[0].run(line[0])
            if outcome is _WAIT:
                break
            progress = True
            if outcome is _PROGRESS:
                break
            self._finish(line.popleft(), None)
        return progress

    @staticmethod
    def _finish(attempt: _Attempt, error: Optional[tuple]) -> None:
        if error is not None:
            attempt.error = error
        attempt.done = True
        if attempt.wake is not None:
            attempt.wake.notify()

    def _wait(
        self, attempt: _Attempt, line: collections.deque, deadline: Optional[float], alive: Alive, op: str
    ) -> None:
        """Wait until ``attempt`` is done; past the deadline, or when a remote caller went away, withdraw it."""
        attempt.wake = threading.Condition(self._lock)
        while not attempt.done:
            remaining = None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._withdraw(attempt, line)
                    raise DeadlineExceededError(f"{op} on {self.label} timed out")
            if alive is not None:
                if not alive():
                    self._withdraw(attempt, line)
                    raise CancelledError(f"{op} on {self.label} abandoned: the calling process went away")
                remaining = _ALIVE_POLL_SECS if remaining is None else min(remaining, _ALIVE_POLL_SECS)
            attempt.wake.wait(remaining)

    def _withdraw(self, attempt: _Attempt, line: collections.deque) -> None:
        """An attempt gives up its place; a dequeue's claimed elements go back (TF drops them)."""
        line.remove(attempt)
        if line is self._dequeuers and attempt.items:
            self._storage.restore(attempt.items)
        self._flush()


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


__all__ = ["Alive", "Core", "FIFO", "Heap", "Shuffled"]
