"""The queue behind a batching op, created from the first example that a runner enqueues.

TF reads a batch queue's dtypes and shapes from the graph when ``tf.train.batch`` builds it. Here
an example comes from a Python callable, so its dtypes and shapes are known only once it runs,
and it must not run before ``start_queue_runners``: it may dequeue from another batch, or from
a queue whose runners have not started yet (TF1's order: inner ``batch``, outer
``batch(inner, enqueue_many=True)``, then ``start_queue_runners``). So :class:`BatchQueue`
creates the real queue when a runner thread enqueues the first example, and consumers wait for
it. An example whose component is an empty list (``[b"x"] * 0``) does not say its dtype: such
examples are held, up to ``capacity`` elements, until one that does arrives (else float32, TF's
dtype of ``[]``).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .dtypes import DType, string
from .errors import CancelledError, DeadlineExceededError, OutOfRangeError

#: Builds the real queue from (dtypes, shapes, names).
MakeQueue = Callable[[List[DType], List[Any], Optional[List[str]]], Any]

_STRINGS = (bytes, str, np.bytes_, np.str_, os.PathLike)


def as_value(value: Any) -> Any:
    """``value`` as TF's ``convert_to_tensor`` sees it: a tensor (Python ints int32, or int64
    where a value needs it; Python floats float32; numpy keeps its dtype), or for strings
    ``bytes`` / nested lists of ``bytes``."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return _strings(value.tolist()) if value.dtype.kind in "SUO" else torch.from_numpy(value)
    if _first_leaf(value, _STRINGS) is not None:
        return _strings(value)
    if isinstance(value, np.generic):
        return torch.from_numpy(np.asarray(value))
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return torch.stack(list(value))
    array = np.asarray(value)
    if array.dtype.kind == "i":
        fits = array.size == 0 or (array.min() >= -(2**31) and array.max() < 2**31)
        array = array.astype(np.int32 if fits else np.int64)
    elif array.dtype.kind == "f":
        array = array.astype(np.float32)
    elif array.dtype.kind not in "bu":
        raise TypeError(f"cannot convert {value!r:.80} to a tensor: expected numbers, strings or nested lists of them")
    return torch.from_numpy(array)


def _first_leaf(value: Any, kinds: tuple) -> Any:
    """The first non-list leaf of a nest of lists when it is one of ``kinds``, else None."""
    while isinstance(value, (list, tuple)):
        if not value:
            return None
        value = value[0]
    return value if isinstance(value, kinds) else None


def _strings(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_strings(item) for item in value]
    if isinstance(value, _STRINGS):
        return bytes(os.fsencode(value))
    raise TypeError(f"Expected string, but got {value!r:.80} of type {type(value).__name__!r}")


def _has_leaf(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_leaf(item) for item in value)
    return True


def _nest_shape(value: Any) -> List[int]:
    shape = []
    while isinstance(value, (list, tuple)):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def components(example: Any) -> Tuple[Optional[List[str]], List[Any]]:
    """(names or None, components) of one example: a dict, a list/tuple, or a single value."""
    if isinstance(example, dict):
        names = list(example)
        return names, [example[key] for key in names]
    if isinstance(example, (list, tuple)):
        return None, list(example)
    return None, [example]


def component_spec(value: Any, many: bool) -> Tuple[Optional[DType], List[int]]:
    """The dtype (None for an empty list: not known yet) and per-example shape of one component."""
    if isinstance(value, (list, tuple)) and not _has_leaf(value):
        dtype, shape = None, _nest_shape(value)
    else:
        value = as_value(value)
        dtype, shape = (value.dtype, list(value.shape)) if isinstance(value, torch.Tensor) else (string, _nest_shape(value))
    if many:
        if not shape:
            raise ValueError("enqueue_many=True needs every component to have a leading batch dimension")
        shape = shape[1:]
    return dtype, shape


class BatchQueue:
    """A queue made on the first enqueue (see the module docstring); until then ``size()`` counts
    the held examples and dequeues wait for it (``OutOfRangeError`` if it is closed first)."""

    def __init__(self, capacity: int, make: MakeQueue, enqueue_many: bool,
                 shapes: Optional[Sequence[Sequence[Optional[int]]]], dynamic_pad: bool, name: str) -> None:
        self.capacity, self.name = capacity, name
        self._make, self._many, self._shapes, self._dynamic_pad = make, enqueue_many, shapes, dynamic_pad
        self._ready = threading.Condition()
        self._queue: Any = None
        self._held: List[Any] = []
        self._held_count = 0
        self._closed = False

    # -- the runner's side ------------------------------------------------------------------
    def put(self, example: Any) -> None:
        """Enqueue one example (a batch of them with ``enqueue_many``), making the queue if needed."""
        queue = self._queue
        if queue is None:
            queue = self._first(example)
            if queue is None:
                return
        self._enqueue(queue, example)

    def _enqueue(self, queue: Any, example: Any) -> None:
        values = example if isinstance(example, dict) else components(example)[1]
        (queue.enqueue_many if self._many else queue.enqueue)(values)

    def _first(self, example: Any) -> Any:
        """The queue, made from ``example``; None when the example is held for want of a dtype."""
        with self._ready:
            if self._queue is not None:
                return self._queue
            if self._closed:
                raise CancelledError(f"{self.name} is closed")
            values = components(example)[1]
            self._held.append((example, [component_spec(value, self._many) for value in values]))
            self._held_count += len(values[0]) if self._many else 1
            if None in self._dtypes() and self._held_count < self.capacity:
                return None
            return self._create(keep_last=True)

    def _dtypes(self) -> List[Optional[DType]]:
        """Each component's dtype: the first one a held example shows (None if none does)."""
        width = len(self._held[0][1])
        return [next((specs[i][0] for _, specs in self._held if len(specs) == width and specs[i][0]), None)
                for i in range(width)]

    def _create(self, keep_last: bool = False) -> Any:
        """Make the queue from the held examples (the lock held) and move them in (they are fewer
        than ``capacity``: no wait), but the last when ``keep_last`` (its caller enqueues it)."""
        first, specs = self._held[0]
        names, values = components(first)
        dtypes = [dtype or torch.float32 for dtype in self._dtypes()]  # float32: TF's dtype of []
        shapes = self._shapes
        if shapes is None:
            shapes = [[None] * len(shape) if self._dynamic_pad else shape for _, shape in specs]
        elif len(shapes) != len(values):
            raise ValueError(f"{self.name}: {len(shapes)} shapes for {len(values)} components")
        self._queue = queue = self._make(dtypes, [list(shape) for shape in shapes], names)
        held, self._held, self._held_count = self._held, [], 0
        self._ready.notify_all()  # consumers wake once the lock is released, after the moves
        for example, _ in held[:-1] if keep_last else held:
            self._enqueue(queue, example)
        return queue

    def close(self, cancel_pending_enqueues: bool = False) -> None:
        """Close the queue; examples held for a dtype go in first (float32 if none came). As in
        TF, closing a closed queue again without ``cancel_pending_enqueues`` is a CancelledError."""
        with self._ready:
            if self._queue is None and self._closed and not cancel_pending_enqueues:
                raise CancelledError(f"{self.name} is already closed")
            self._closed = True
            if self._queue is None and self._held:
                self._create()
            queue = self._queue
            self._ready.notify_all()
        if queue is not None:
            queue.close(cancel_pending_enqueues=cancel_pending_enqueues)

    # -- the consumer's side ----------------------------------------------------------------
    def _wait(self, timeout: Optional[float]) -> Tuple[Any, Optional[float]]:
        """The queue once made, and what is left of ``timeout``."""
        if self._queue is not None:
            return self._queue, timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while self._queue is None:
                if self._closed:
                    raise OutOfRangeError(f"{self.name} is closed and has 0 elements")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceededError(f"dequeue on {self.name} timed out: no example was enqueued yet")
                self._ready.wait(remaining)
        return self._queue, None if deadline is None else max(deadline - time.monotonic(), 0.0)

    def dequeue(self, timeout: Optional[float] = None) -> Any:
        """One element, once the queue exists (see ``QueueBase.dequeue``)."""
        queue, timeout = self._wait(timeout)
        return queue.dequeue(timeout=timeout)

    def dequeue_many(self, n: int, timeout: Optional[float] = None) -> Any:
        """``n`` elements batched, once the queue exists (see ``QueueBase.dequeue_many``)."""
        queue, timeout = self._wait(timeout)
        return queue.dequeue_many(n, timeout=timeout)

    def dequeue_up_to(self, n: int, timeout: Optional[float] = None) -> Any:
        """Up to ``n`` elements once closed, once the queue exists (see ``QueueBase.dequeue_up_to``)."""
        queue, timeout = self._wait(timeout)
        return queue.dequeue_up_to(n, timeout=timeout)

    def size(self) -> int:
        """Elements in the queue (held ones before it exists)."""
        queue = self._queue
        return self._held_count if queue is None else queue.size()

    def is_closed(self) -> bool:
        """Whether the queue (or, before it exists, this placeholder) was closed."""
        queue = self._queue
        return self._closed if queue is None else queue.is_closed()

    @property
    def queue(self) -> Any:
        """The real queue, or None before the first example."""
        return self._queue

    def __repr__(self) -> str:
        return f"<BatchQueue {self.name!r} capacity={self.capacity} queue={self._queue!r}>"
