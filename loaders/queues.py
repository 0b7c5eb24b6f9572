"""TF1's queues: FIFOQueue, RandomShuffleQueue, PaddingFIFOQueue and PriorityQueue.

Each queue's storage lives in the process that created it (the owner): a deque, list or heap
behind one lock, so threads enqueue and dequeue at close to ``queue.Queue`` speed. The four
queue types differ only in their storage strategy and batching; blocking, closing and timeouts
are implemented once, in :class:`_Core`. The same queue object also works in other processes:
it pickles to a proxy (``spawn``) and turns into one in a ``fork`` child; a proxy forwards every
operation to the owner through :mod:`loaders._remote`, tensors crossing in shared memory.

Values are ``torch.Tensor`` s (``bytes`` for ``loaders.string`` components). A queue keeps the
tensors it is given (no copy within a process), so do not modify a tensor after enqueueing it.
Across processes values are copied and arrive on the CPU.
"""
from __future__ import annotations

import collections
import copy
import heapq
import itertools
import random
import threading
import time
from typing import Any, Callable, Optional

from loaders import _remote
from loaders._validate import Spec
from loaders.errors import CancelledError, DeadlineExceededError, OutOfRangeError

Alive = Optional[Callable[[], bool]]

#: How often a blocked operation served for another process checks that the caller is still there.
_ALIVE_POLL_SECS = 0.2


class _FIFO(collections.deque):
    """First in, first out."""

    push = collections.deque.append
    pull = collections.deque.popleft


class _Shuffled(list):
    """Uniformly random order from a seeded generator (swap the pick with the last, pop)."""

    def __init__(self, seed: Optional[int]) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    push = list.append

    def pull(self) -> tuple:
        index = self._rng.randrange(len(self))
        self[index], self[-1] = self[-1], self[index]
        return self.pop()


class _Heap(list):
    """Lowest int64 priority (component 0) first; equal priorities leave in FIFO order."""

    def __init__(self) -> None:
        super().__init__()
        self._order = itertools.count()

    def push(self, element: tuple) -> None:
        heapq.heappush(self, (int(element[0]), next(self._order), element))

    def pull(self) -> tuple:
        return heapq.heappop(self)[2]


class _Core:
    """Blocking, closing and timeouts shared by every queue type, around one storage strategy.

    ``reserve`` is RandomShuffleQueue's ``min_after_dequeue``: while the queue is open a dequeue
    waits until that many elements would remain. An ``enqueue_many`` larger than the free space
    pushes what fits and holds the queue's turn, so its elements stay contiguous, as in TF1.
    """

    def __init__(self, label: str, capacity: int, storage: Any, spec: Spec, reserve: int = 0) -> None:
        self.label = label
        self.capacity = capacity
        self._storage = storage
        self._spec = spec
        self._reserve = reserve
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._cancelled = False
        self._error: Optional[BaseException] = None  # see fail()
        self._turn: Optional[object] = None  # the enqueue_many currently filling the queue
        self._getters = 0  # threads waiting in take()
        self._batch_getters = 0  # ... of which waiting for more than one element
        self._putters = 0  # threads waiting in put()

    def put1(self, element: tuple, timeout: Optional[float] = None, alive: Alive = None) -> None:
        """Append one element: the lean path when there is room, else :meth:`put`."""
        storage = self._storage
        with self._lock:
            if len(storage) < self.capacity and self._turn is None and not self._closed:
                storage.push(element)
                if self._getters:
                    self._wake_getters(1)
                return
        self.put((element,), timeout, alive)

    def put_many(self, columns: list, timeout: Optional[float] = None, alive: Alive = None) -> None:
        """Append the rows of a checked batch (see :meth:`Spec.columns`)."""
        self.put(self._spec.split(columns), timeout, alive)

    def put(self, elements: Any, timeout: Optional[float] = None, alive: Alive = None) -> None:
        """Append ``elements`` (tuples), blocking while the queue is full."""
        with self._lock:
            if self._closed:
                raise CancelledError(f"{self.label} is closed")
            self._put_waiting(elements, _deadline(timeout), alive)

    def _put_waiting(self, elements: Any, deadline: Optional[float], alive: Alive) -> None:
        storage, capacity, turn = self._storage, self.capacity, object()
        done = 0
        self._putters += 1
        try:
            while done < len(elements):
                while len(storage) >= capacity or self._turn not in (None, turn):
                    self._wait(self._not_full, deadline, alive, "enqueue")
                    if self._cancelled:
                        raise CancelledError(f"{self.label} was closed with cancel_pending_enqueues=True")
                chunk = elements[done:done + capacity - len(storage)]
                for element in chunk:
                    storage.push(element)
                done += len(chunk)
                if self._getters:
                    self._wake_getters(len(chunk))
                if done < len(elements):
                    self._turn = turn
        finally:
            self._putters -= 1
            if self._turn is turn:
                self._turn = None
                self._not_full.notify_all()

    def take1(self, timeout: Optional[float] = None, alive: Alive = None) -> tuple:
        """Remove one element: the lean path when one is ready, else :meth:`take`."""
        storage = self._storage
        with self._lock:
            if len(storage) > self._reserve:
                element = storage.pull()
                if self._putters:
                    self._wake_putters(1)
                return element
        return self.take(1, False, timeout, alive)[0]

    def take_many(self, n: int, up_to: bool, timeout: Optional[float] = None, alive: Alive = None) -> Any:
        """Remove ``n`` elements (see :meth:`take`) and return them batched as ``dequeue_many`` does."""
        return self._spec.batch(self.take(n, up_to, timeout, alive))

    def take(self, n: int, up_to: bool, timeout: Optional[float] = None, alive: Alive = None) -> list:
        """Remove ``n`` elements (fewer with ``up_to`` once closed), blocking until they are there."""
        with self._lock:
            count = self._take_waiting(n, up_to, _deadline(timeout), alive)
            elements = [self._storage.pull() for _ in range(count)]
            if self._putters:
                self._wake_putters(count)
            return elements

    def _take_waiting(self, n: int, up_to: bool, deadline: Optional[float], alive: Alive) -> int:
        """Wait until ``n`` elements can be taken; return how many to take."""
        if not self._closed and n > self.capacity - self._reserve:
            raise ValueError(
                f"{self.label}: cannot dequeue {n} while keeping min_after_dequeue={self._reserve} "
                f"of capacity {self.capacity}; it would wait forever"
            )
        self._getters += 1
        self._batch_getters += n > 1
        try:
            while True:
                size = len(self._storage)
                if self._closed:
                    if size >= n or (up_to and size):
                        return min(n, size)
                    if self._error is not None:
                        raise copy.copy(self._error)
                    raise OutOfRangeError(f"{self.label} is closed and has {size} elements, fewer than {n} requested")
                if size - n >= self._reserve:
                    return n
                self._wait(self._not_empty, deadline, alive, "dequeue")
        finally:
            self._getters -= 1
            self._batch_getters -= n > 1

    def _wait(self, condition: threading.Condition, deadline: Optional[float], alive: Alive, op: str) -> None:
        """Wait once (lock held); raise when the deadline passed or a remote caller went away."""
        remaining = None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(f"{op} on {self.label} timed out")
        if alive is not None:
            if not alive():
                raise CancelledError(f"{op} on {self.label} abandoned: the calling process went away")
            remaining = _ALIVE_POLL_SECS if remaining is None else min(remaining, _ALIVE_POLL_SECS)
        condition.wait(remaining)

    def _wake_getters(self, count: int) -> None:
        # A getter waiting for a batch may not be satisfied by `count` elements: wake them all then.
        if self._batch_getters:
            self._not_empty.notify_all()
        else:
            self._not_empty.notify(count)

    def _wake_putters(self, count: int) -> None:
        # While an enqueue_many holds the turn, only it can use the space: wake everyone so it runs.
        if self._turn is not None:
            self._not_full.notify_all()
        else:
            self._not_full.notify(count)

    def close(self, cancel: bool = False) -> None:
        """Refuse new enqueues; wake blocked dequeues (and blocked enqueues when ``cancel``)."""
        with self._lock:
            self._closed = True
            self._cancelled = self._cancelled or cancel
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def fail(self, error: BaseException) -> None:
        """Close and cancel because a producer died: once drained, dequeues raise ``error``, not OutOfRangeError."""
        with self._lock:
            self._error = self._error or error
        self.close(cancel=True)

    def size(self) -> int:
        """The number of elements held."""
        return len(self._storage)

    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed


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

    def fail(self, error: BaseException) -> None:
        _remote.call(self._ref, "fail", error)

    def size(self) -> int:
        return _remote.call(self._ref, "size")

    def closed(self) -> bool:
        return _remote.call(self._ref, "closed")


_BLOCKING = frozenset({"put1", "put_many", "take1", "take_many"})
_NON_BLOCKING = frozenset({"close", "fail", "size", "closed"})


class QueueBase:
    """The operations every queue has; subclasses choose the storage strategy and batching."""

    def __init__(self, capacity: int, spec: Spec, storage: Any, name: str, reserve: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"capacity must be an int > 0, got {capacity!r}")
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
        """Remove ``n`` elements, stacked on a new dim 0; OutOfRangeError if closed with fewer."""
        return self._core.take_many(self._batch_size(n, "dequeue_many"), False, timeout)

    def dequeue_up_to(self, n: int, timeout: Optional[float] = None) -> Any:
        """Like ``dequeue_many``, but once the queue is closed return the 1..n elements left."""
        return self._core.take_many(self._batch_size(n, "dequeue_up_to"), True, timeout)

    def close(self, cancel_pending_enqueues: bool = False) -> None:
        """No more enqueues; dequeues drain what is left, then raise OutOfRangeError."""
        self._core.close(cancel_pending_enqueues)

    def _fail(self, error: BaseException) -> None:
        """Close for good (a QueueRunner's process died): once drained, dequeues raise ``error``."""
        self._core.fail(error)

    def size(self) -> int:
        """The number of elements in the queue now."""
        return self._core.size()

    def is_closed(self) -> bool:
        """Whether the queue has been closed."""
        return self._core.closed()

    def _batch_size(self, n: Any, op: str) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.capacity:
            raise ValueError(f"{op}(n): n must be an int in 1..capacity={self.capacity}, got {n!r}")
        self._spec.require_shapes(op)
        return n

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
            raise ValueError(f"min_after_dequeue must be an int >= 0, got {min_after_dequeue!r}")
        if isinstance(capacity, int) and min_after_dequeue >= capacity:
            raise ValueError(f"min_after_dequeue={min_after_dequeue} must be less than capacity={capacity}")
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
        if shapes is None or (isinstance(shapes, (list, tuple)) and len(shapes) != len(types)):
            raise ValueError(f"PriorityQueue needs one shape per type: {len(types)} shapes")
        spec = Spec(["int64"] + types, [()] + list(shapes), names)
        super().__init__(capacity, spec, _Heap(), name)


__all__ = ["QueueBase", "FIFOQueue", "RandomShuffleQueue", "PaddingFIFOQueue", "PriorityQueue"]
