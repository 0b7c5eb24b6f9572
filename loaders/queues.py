"""TF1's queues: FIFOQueue, RandomShuffleQueue, PaddingFIFOQueue and PriorityQueue.

Each queue's storage lives in the process that created it (the owner): a deque, list or heap
behind one lock, so threads enqueue and dequeue at close to ``queue.Queue`` speed. The four
queue types differ only in their storage strategy and batching; blocking, closing and timeouts
are implemented once, in :class:`_Core`, the way TF's ``QueueBase`` kernel serves them: an
operation that cannot finish at once waits as an *attempt* behind the earlier ones, enqueues
(and closes) in one line, dequeues in another, each served strictly in arrival order. A waiting
``dequeue_many`` claims elements as they arrive, so it may ask for more than ``capacity``, and
``size()`` does not count what it has claimed. The same queue object also works in other
processes: it pickles to a proxy (``spawn``) and turns into one in a ``fork`` child; a proxy
forwards every operation to the owner through :mod:`loaders._remote`, tensors crossing in
shared memory.

Values are ``torch.Tensor`` s (``bytes`` for ``loaders.string`` components). A queue keeps the
tensors it is given (no copy within a process), so do not modify a tensor after enqueueing it.
Across processes values are copied and arrive on the CPU.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import operator
import random
import threading
import time
from typing import Any, Callable, Optional

from loaders import _remote
from loaders._validate import Spec, as_shape_list
from loaders.errors import CancelledError, DeadlineExceededError, InvalidArgumentError, OutOfRangeError

Alive = Optional[Callable[[], bool]]

#: How often a blocked operation served for another process checks that the caller is still there.
_ALIVE_POLL_SECS = 0.2

#: What one try of an attempt achieved (TF's kComplete, kProgress, kNoProgress).
_DONE, _PROGRESS, _WAIT = "done", "progress", "wait"


class _FIFO(collections.deque):
    """First in, first out; elements a dequeue gives back return to the front."""

    push = collections.deque.append
    pull = collections.deque.popleft

    def restore(self, elements: list) -> None:
        self.extendleft(reversed(elements))


class _Shuffled(list):
    """Uniformly random order from a seeded generator (swap the pick with the last, pop)."""

    def __init__(self, seed: Optional[int]) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    push = list.append
    restore = list.extend

    def pull(self) -> tuple:
        index = self._rng.randrange(len(self))
        self[index], self[-1] = self[-1], self[index]
        return self.pop()


class _Heap(list):
    """Lowest int64 priority (component 0) first; equal priorities leave in FIFO order."""

    def __init__(self) -> None:
        super().__init__()
        self._order = itertools.count()
        self._restored = itertools.count(-1, -1)  # given back: ahead of their equals, in their order

    def push(self, element: tuple) -> None:
        heapq.heappush(self, (int(element[0]), next(self._order), element))

    def pull(self) -> tuple:
        return heapq.heappop(self)[2]

    def restore(self, elements: list) -> None:
        for element in reversed(elements):
            heapq.heappush(self, (int(element[0]), next(self._restored), element))


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


class _Core:
    """Blocking, closing and timeouts shared by every queue type, around one storage strategy.

    ``reserve`` is RandomShuffleQueue's ``min_after_dequeue``: while the queue is open a dequeue
    only takes elements beyond that many. A blocked enqueue or dequeue that times out leaves its
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
        """Remove ``n`` elements (fewer with ``up_to`` once closed), claiming them as they arrive."""
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
                    f"{self.label} is closed and has insufficient elements (requested {requested}, current size {size})",
                )
                return _DONE
            attempt.count = size
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

    def _wait(self, attempt: _Attempt, line: collections.deque, deadline: Optional[float], alive: Alive, op: str) -> None:
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


class _RemoteCore:
    """A :class:`_Core` in another process: every call travels to the owner and back."""

    def __init__(self, ref: _remote.Ref) -> None:
        self._ref = ref

    def put1(self, element: tuple, timeout: Optional[float] = None) -> None:
        _remote.call(self._ref, "put1", element, timeout)

    def put_many(self, columns: list, timeout: Optional[float] = None) -> None:
        _remote.call(self._ref, "put_many", columns, timeout)  # one tensor per component crosses

    def take1(self, timeout: Optional[float] = None) -> tuple:
        return _remote.call(self._ref, "take1", timeout)

    def take_many(self, n: int, up_to: bool, timeout: Optional[float] = None) -> Any:
        return _remote.call(self._ref, "take_many", n, up_to, timeout)  # batched by the owner

    def close(self, cancel: bool = False) -> None:
        _remote.call(self._ref, "close", cancel)

    def size(self) -> int:
        return _remote.call(self._ref, "size")

    def closed(self) -> bool:
        return _remote.call(self._ref, "closed")


_BLOCKING = frozenset({"put1", "put_many", "take1", "take_many", "close"})
_NON_BLOCKING = frozenset({"size", "closed"})


class QueueBase:
    """The operations every queue has; subclasses choose the storage strategy and batching."""

    def __init__(self, capacity: int, spec: Spec, storage: Any, name: str, reserve: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"capacity must be an int > 0, got {capacity!r}")  # TF: 0 never holds, < 0 unbounded
        self.capacity = capacity
        self.name = name
        self._spec = spec
        self._core: Any = _Core(f"{type(self).__name__} {name!r}", capacity, storage, spec, reserve)
        self._ref = _remote.share(self)

    @property
    def dtypes(self) -> list:
        """The dtype of each component (``loaders.string`` for bytes)."""
        return list(self._spec.dtypes)

    @property
    def shapes(self) -> list:
        """The shape of each component as a tuple (None dims padded), or None where not declared."""
        return list(self._spec.shapes)

    @property
    def names(self) -> Optional[list]:
        """The component names when elements are dicts, else None."""
        return None if self._spec.names is None else list(self._spec.names)

    def enqueue(self, vals: Any, timeout: Optional[float] = None) -> None:
        """Add one element, blocking while the queue is full; CancelledError once closed."""
        self._core.put1(self._spec.element(vals), timeout)

    def enqueue_many(self, vals: Any, timeout: Optional[float] = None) -> None:
        """Add the elements obtained by splitting every component along dim 0.

        The elements go in as space frees up and stay contiguous; on a timeout the ones already
        added remain in the queue (as in TF1).
        """
        self._core.put_many(self._spec.columns(vals), timeout)

    def dequeue(self, timeout: Optional[float] = None) -> Any:
        """Remove one element; OutOfRangeError when the queue is closed and empty."""
        return self._spec.output(self._core.take1(timeout))

    def dequeue_many(self, n: int, timeout: Optional[float] = None) -> Any:
        """Remove ``n`` elements, stacked on a new dim 0; OutOfRangeError if closed with fewer.

        ``n`` may exceed ``capacity``: a waiting call claims elements as they arrive. ``n=0``
        returns an empty batch at once.
        """
        return self._core.take_many(self._batch_size(n, "dequeue_many"), False, timeout)

    def dequeue_up_to(self, n: int, timeout: Optional[float] = None) -> Any:
        """Like ``dequeue_many``, but once the queue is closed return the 1..n elements left."""
        return self._core.take_many(self._batch_size(n, "dequeue_up_to"), True, timeout)

    def close(self, cancel_pending_enqueues: bool = False) -> None:
        """No more enqueues; dequeues drain what is left, then raise OutOfRangeError.

        As in TF1, a close waits behind the enqueues already blocked (they complete first) and a
        second close raises CancelledError; ``cancel_pending_enqueues=True`` closes at once and
        fails the blocked enqueues with CancelledError.
        """
        self._core.close(cancel_pending_enqueues)

    def size(self) -> int:
        """The number of elements in the queue now."""
        return self._core.size()

    def is_closed(self) -> bool:
        """Whether the queue has been closed."""
        return self._core.closed()

    def _batch_size(self, n: Any, op: str) -> int:
        """``n`` as an int: a Python or numpy int, or a 0-d integer tensor (TF's ``n`` may be a tensor)."""
        try:
            count = -1 if isinstance(n, bool) else operator.index(n)
        except TypeError:
            count = -1
        if count < 0:
            raise InvalidArgumentError(f"{op}(n): n must be an int >= 0, got {n!r}")
        self._spec.require_shapes(op)
        return count

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} capacity={self.capacity} dtypes={self._spec.dtypes}>"

    # -- other processes: pickling, fork, serving proxies ------------------------------------
    def __reduce__(self) -> tuple:
        state = {key: value for key, value in vars(self).items() if key != "_core"}
        return _remote.rebuild, (type(self), state)

    def _become_proxy(self) -> None:
        """In a forked child: forward every operation to the owner (the parent)."""
        self._core = _RemoteCore(self._ref)

    def _serve(self, method: str, args: tuple, alive: Callable[[], bool]) -> Any:
        """Run an operation a proxy sent; blocking ones give up when the caller goes away."""
        if method in _BLOCKING:
            return getattr(self._core, method)(*args, alive=alive)
        if method in _NON_BLOCKING:
            return getattr(self._core, method)(*args)
        raise ValueError(f"{self!r} has no remote operation {method!r}")


class FIFOQueue(QueueBase):
    """Dequeues elements in the order they were enqueued."""

    def __init__(
        self, capacity: int, dtypes: Any, shapes: Any = None, names: Any = None, name: str = "fifo_queue"
    ) -> None:
        super().__init__(capacity, Spec(dtypes, shapes, names), _FIFO(), name)


class RandomShuffleQueue(QueueBase):
    """Dequeues elements in random order, keeping ``min_after_dequeue`` in the queue while open."""

    def __init__(
        self,
        capacity: int,
        min_after_dequeue: int,
        dtypes: Any,
        shapes: Any = None,
        names: Any = None,
        seed: Optional[int] = None,
        name: str = "random_shuffle_queue",
    ) -> None:
        if isinstance(min_after_dequeue, bool) or not isinstance(min_after_dequeue, int) or min_after_dequeue < 0:
            raise InvalidArgumentError(f"min_after_dequeue must be an int >= 0, got {min_after_dequeue!r}")
        if isinstance(capacity, int) and min_after_dequeue >= capacity:
            raise InvalidArgumentError(f"min_after_dequeue={min_after_dequeue} must be less than capacity={capacity}")
        self.min_after_dequeue = min_after_dequeue
        self.seed = seed
        super().__init__(capacity, Spec(dtypes, shapes, names), _Shuffled(seed), name, reserve=min_after_dequeue)


class PaddingFIFOQueue(QueueBase):
    """A FIFOQueue whose shapes may hold None dims; ``dequeue_many`` pads them to the batch max."""

    def __init__(
        self, capacity: int, dtypes: Any, shapes: Any, names: Any = None, name: str = "padding_fifo_queue"
    ) -> None:
        super().__init__(capacity, Spec(dtypes, shapes, names, padded=True), _FIFO(), name)


class PriorityQueue(QueueBase):
    """Elements are ``(priority, *components)`` with an int64 priority; the lowest leaves first.

    ``names``, when given, names every entry including the priority (first).
    """

    def __init__(self, capacity: int, types: Any, shapes: Any, names: Any = None, name: str = "priority_queue") -> None:
        types = list(types) if isinstance(types, (list, tuple)) else [types]
        if shapes is None:
            raise TypeError("PriorityQueue needs shapes=: one shape per type (the priority's is [])")
        spec = Spec(["int64"] + types, [()] + as_shape_list(shapes, len(types), allow_none_dims=False), names)
        super().__init__(capacity, spec, _Heap(), name)


__all__ = ["QueueBase", "FIFOQueue", "RandomShuffleQueue", "PaddingFIFOQueue", "PriorityQueue"]
