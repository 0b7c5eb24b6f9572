"""TF1's queues: FIFOQueue, RandomShuffleQueue, PaddingFIFOQueue and PriorityQueue.

Each queue's storage lives in the process that created it (the owner): a deque, list or heap
behind one lock, so threads enqueue and dequeue at close to ``queue.Queue`` speed. The four
queue types differ only in their storage strategy and batching; blocking, closing and timeouts
are implemented once, in :mod:`loaders._queue_core`, the way TF's ``QueueBase`` kernel serves
them: blocked operations are served strictly in arrival order. A waiting ``dequeue_many``
claims elements as they arrive, so it may ask for more than ``capacity``, and ``size()`` does
not count what it has claimed (a PriorityQueue's waits for its whole batch, which then leaves
sorted). The same queue object also works in other processes: it pickles to a
proxy (``spawn``) and turns into one in a ``fork`` child; a proxy forwards every operation to
the owner through :mod:`loaders._remote`, tensors crossing in shared memory.

Values are ``torch.Tensor`` s (``bytes`` for ``loaders.string`` components). A queue keeps the
tensors it is given (no copy within a process), so do not modify a tensor after enqueueing it.
Across processes values are copied and arrive on the CPU.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Optional

from loaders import _remote
from loaders._queue_core import Core, FIFO, Heap, Shuffled
from loaders._validate import Spec, as_shape_list
from loaders.errors import InvalidArgumentError


class _RemoteCore:
    """A :class:`~loaders._queue_core.Core` in another process: every call travels to the owner and back."""

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


_BLOCKING = frozenset({"put1", "put_many", "take1", "take_many", "close"})
_NON_BLOCKING = frozenset({"fail", "size", "closed"})


class QueueBase:
    """The operations every queue has; subclasses choose the storage strategy and batching."""

    def __init__(self, capacity: int, spec: Spec, storage: Any, name: str, reserve: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"capacity must be an int > 0, got {capacity!r}")  # TF: 0 never holds, < 0 unbounded
        self.capacity = capacity
        self.name = name
        self._spec = spec
        self._core: Any = Core(f"{type(self).__name__} {name!r}", capacity, storage, spec, reserve)
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

        ``n`` may exceed ``capacity``: a waiting call claims elements as they arrive (except a
        PriorityQueue's, which waits for all ``n``). ``n=0`` returns an empty batch at once.
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
        super().__init__(capacity, Spec(dtypes, shapes, names), FIFO(), name)


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
        super().__init__(capacity, Spec(dtypes, shapes, names), Shuffled(seed), name, reserve=min_after_dequeue)


class PaddingFIFOQueue(QueueBase):
    """A FIFOQueue whose shapes may hold None dims; ``dequeue_many`` pads them to the batch max."""

    def __init__(
        self, capacity: int, dtypes: Any, shapes: Any, names: Any = None, name: str = "padding_fifo_queue"
    ) -> None:
        super().__init__(capacity, Spec(dtypes, shapes, names, padded=True), FIFO(), name)


class PriorityQueue(QueueBase):
    """Elements are ``(priority, *components)`` with an int64 priority; the lowest leaves first.

    ``names``, when given, names every entry including the priority (first).
    """

    def __init__(self, capacity: int, types: Any, shapes: Any, names: Any = None, name: str = "priority_queue") -> None:
        types = list(types) if isinstance(types, (list, tuple)) else [types]
        if shapes is None:
            raise TypeError("PriorityQueue needs shapes=: one shape per type (the priority's is [])")
        spec = Spec(["int64"] + types, [()] + as_shape_list(shapes, len(types), allow_none_dims=False), names)
        super().__init__(capacity, spec, Heap(), name)


__all__ = ["QueueBase", "FIFOQueue", "RandomShuffleQueue", "PaddingFIFOQueue", "PriorityQueue"]
