"""TF1's input producers and batching: ``string_input_producer``, ``input_producer``,
``range_input_producer``, ``slice_input_producer``, ``batch``, ``shuffle_batch``,
``batch_join`` and ``shuffle_batch_join``, each a queue filled by a ``QueueRunner`` registered
with ``add_queue_runner`` (started by ``start_queue_runners``), with TF1's end of input: after
``num_epochs`` the queue closes and the consumer gets ``OutOfRangeError``.

Porting rule: there is no graph, so an example is produced by an *op*, a Python callable::

    tf.train.batch([features, label], batch_size=32)  ->  loaders.batch(lambda: read_example(), batch_size=32)
    sess.run(batch)                                   ->  batch()

where ``read_example()`` returns one example (a list/tuple/dict of tensors, numbers, bytes or
lists of them, or a single value), e.g. ``reader.read`` followed by ``decode_csv``. Values
convert as TF converts them: Python ints to int32, floats to float32, strings to bytes. The
batching functions return a :class:`DequeueOp`: call it for the next batch (same structure as
the example, each tensor with a new leading batch dimension, string components as lists of
bytes; a one-component example gives a bare batch, as in TF), or iterate it until the input ends.

Nothing runs at construction: the batch queue takes its dtypes and shapes from the first example
a runner enqueues (see :mod:`loaders._batch_queue`), so TF1's statement orders port as they are,
including an outer ``batch(inner, enqueue_many=True)`` built before ``start_queue_runners``.
``shapes`` overrides the inferred shapes; with ``dynamic_pad`` and no ``shapes`` every dimension
is padded to the longest in the batch. The input producers enqueue their first elements when
created, so a reader may read from one before ``start_queue_runners`` (TF would wait for it).
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence

import numpy as np
import torch

from ._batch_queue import BatchQueue, MakeQueue, as_value
from .queue_runner import QueueRunner, add_queue_runner
from .dtypes import DType, string
from .errors import InvalidArgumentError, OutOfRangeError
from .queues import FIFOQueue, PaddingFIFOQueue, RandomShuffleQueue

Op = Callable[[], Any]
Shapes = Optional[Sequence[Sequence[Optional[int]]]]

_NOT_NULL = "string_input_producer requires a non-null input tensor"


class DequeueOp:
    """A dequeue op (TF's dequeue tensor): ``op()`` returns the next value (``op(timeout=s)``
    gives up with DeadlineExceededError); iterating yields values until the input ends
    (``OutOfRangeError``); ``op.queue`` is the queue behind it."""

    def __init__(self, queue: Any, dequeue: Callable[..., Any], name: Optional[str] = None) -> None:
        self.queue, self.name = queue, name
        self._dequeue = dequeue

    def __call__(self, timeout: Optional[float] = None) -> Any:
        return self._dequeue(timeout=timeout)

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                value = self._dequeue()
            except OutOfRangeError:
                return
            yield value

    def __repr__(self) -> str:
        return f"DequeueOp(name={self.name!r}, queue={self.queue!r})"


# ---------------------------------------------------------------- input producers


def _as_rows(value: Any, name: str) -> Any:
    """A tensor, or a list of bytes for strings, whose first dimension indexes the elements."""
    rows = as_value(value)
    if isinstance(rows, bytes) or (isinstance(rows, torch.Tensor) and rows.dim() == 0):
        raise ValueError(f"{name}: the input must have rank at least 1 (rows to produce), got a scalar")
    return rows


def _take(rows: Any, indices: np.ndarray) -> Any:
    if isinstance(rows, list):
        return [rows[index] for index in indices]
    return rows[torch.from_numpy(indices)]


class _EpochFeeder:
    """The enqueue op of an input producer: each call enqueues the next slice (at most
    ``chunk`` elements) of the current epoch, shuffled anew each epoch; after ``num_epochs``
    epochs it raises ``OutOfRangeError``, which ends its runner and closes the queue."""

    def __init__(self, queue: Any, rows: Any, num_epochs: Optional[int], shuffle: bool, seed: Optional[int], chunk: int):
        self._queue, self._rows, self._num_epochs, self._shuffle, self._chunk = queue, rows, num_epochs, shuffle, chunk
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._order = np.arange(len(rows))
        self._next = len(rows)
        self._epochs = 0

    def __call__(self) -> None:
        with self._lock:
            if self._next >= len(self._order):
                if self._num_epochs is not None and self._epochs >= self._num_epochs:
                    raise OutOfRangeError(f"input_producer: all {self._num_epochs} epochs were produced")
                self._epochs += 1
                self._next = 0
                if self._shuffle:
                    self._order = self._rng.permutation(len(self._rows))
            indices = self._order[self._next : self._next + self._chunk]
            self._next += len(indices)
            self._queue.enqueue_many([_take(self._rows, indices)])


def input_producer(
    input_tensor: Any, element_shape: Optional[Sequence[Optional[int]]] = None, num_epochs: Optional[int] = None,
    shuffle: bool = True, seed: Optional[int] = None, capacity: int = 32, name: Optional[str] = None,
) -> Any:
    """A FIFOQueue fed with the rows of ``input_tensor`` (a tensor, array or list; strings stay
    bytes), ``num_epochs`` times (forever when None), shuffled within each epoch with ``seed``."""
    name = name or "input_producer"
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0 not {num_epochs}.")
    rows = _as_rows(input_tensor, name)
    if len(rows) == 0 and num_epochs is None:
        raise ValueError(f"{name}: the input has no rows and num_epochs is None: the queue would never get an element")
    dtype, shape = (string, []) if isinstance(rows, list) else (rows.dtype, list(rows.shape[1:]))
    if element_shape is not None:
        if len(element_shape) != len(shape) or any(d is not None and d != n for d, n in zip(element_shape, shape)):
            raise ValueError(f"{name}: element_shape {list(element_shape)} is not compatible with the rows' shape {shape}")
    queue = FIFOQueue(capacity, dtypes=[dtype], shapes=[shape], name=name)
    feeder = _EpochFeeder(queue, rows, num_epochs, shuffle, seed, chunk=capacity)
    if len(rows):
        feeder()  # the first `capacity` elements now, so an op may read before start_queue_runners
    add_queue_runner(QueueRunner(queue, [feeder]))
    return queue


def string_input_producer(
    string_tensor: Sequence[Any], num_epochs: Optional[int] = None, shuffle: bool = True,
    seed: Optional[int] = None, capacity: int = 32, name: Optional[str] = None,
) -> Any:
    """A queue of strings (e.g. filenames, as bytes) for a reader: TF1's ``string_input_producer``."""
    if isinstance(string_tensor, (str, bytes)):
        raise ValueError("string_input_producer needs a list of strings (rank 1), got a single string")
    if len(string_tensor) == 0:
        raise ValueError(_NOT_NULL)
    strings = as_value(list(string_tensor))
    if not isinstance(strings, list):
        raise TypeError(f"string_input_producer expects strings, got {list(string_tensor)!r:.80}")
    return input_producer(strings, [], num_epochs, shuffle, seed, capacity, name or "string_input_producer")


def range_input_producer(
    limit: int, num_epochs: Optional[int] = None, shuffle: bool = True, seed: Optional[int] = None,
    capacity: int = 32, name: Optional[str] = None,
) -> Any:
    """A queue of the int32 scalars ``0 .. limit-1``."""
    return input_producer(torch.arange(int(limit), dtype=torch.int32), [], num_epochs, shuffle, seed, capacity,
                          name or "range_input_producer")


def slice_input_producer(
    tensor_list: Sequence[Any], num_epochs: Optional[int] = None, shuffle: bool = True,
    seed: Optional[int] = None, capacity: int = 32, name: Optional[str] = None,
) -> DequeueOp:
    """An op returning one slice ``[t[i] for t in tensor_list]`` per call, ``i`` drawn from a
    ``range_input_producer`` over the first tensor's rows (so ``shuffle``/``num_epochs`` apply to
    the slices). As in TF, a shorter tensor fails (InvalidArgumentError) only at an index it lacks."""
    if not tensor_list:
        raise ValueError("Expected at least one tensor in slice_input_producer().")
    name = name or "slice_input_producer"
    tensors = [_as_rows(tensor, name) for tensor in tensor_list]
    queue = range_input_producer(len(tensors[0]), num_epochs, shuffle, seed, capacity, name)

    def dequeue(timeout: Optional[float] = None) -> List[Any]:
        index = int(queue.dequeue(timeout=timeout))
        for number, tensor in enumerate(tensors):
            if index >= len(tensor):
                raise InvalidArgumentError(f"{name}: indices = {index} is not in [0, {len(tensor)}) "
                                           f"for tensor {number}, which has fewer rows than the first")
        return [tensor[index] for tensor in tensors]

    return DequeueOp(queue, dequeue, name)


# ---------------------------------------------------------------- batching


def _runner_op(queue: BatchQueue, op: Op) -> Op:
    """The runner's op: one example (or batch of them) from ``op`` into ``queue``."""
    return lambda: queue.put(op())


def _batch(
    ops: Sequence[Op], batch_size: int, capacity: int, make_queue: MakeQueue, enqueue_many: bool, shapes: Shapes,
    dynamic_pad: bool, allow_smaller_final_batch: bool, name: str,
) -> DequeueOp:
    """The common body: check the arguments, make the (deferred) queue and its runner."""
    for op in ops:
        if not callable(op):
            raise TypeError(
                f"{name}() takes an op, a callable returning one example, not {type(op).__name__}: "
                f"write loaders.{name}(lambda: [features, label], ...) where TF1 had tf.train.{name}([features, label], ...)"
            )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"{name}: batch_size must be an int >= 0, got {batch_size!r}")
    if shapes is not None and not dynamic_pad and any(None in list(shape) for shape in shapes):
        raise ValueError(f"{name}: all shapes must be fully defined without dynamic_pad, got {shapes}")
    queue = BatchQueue(capacity, make_queue, enqueue_many, shapes, dynamic_pad, name)
    add_queue_runner(QueueRunner(queue, [_runner_op(queue, op) for op in ops]))
    take = queue.dequeue_up_to if allow_smaller_final_batch else queue.dequeue_many
    return DequeueOp(queue, functools.partial(take, batch_size), name)


def _fifo(capacity: int, dynamic_pad: bool) -> MakeQueue:
    def make(dtypes: List[DType], shapes: List[Any], names: Optional[List[str]]) -> Any:
        if dynamic_pad:
            return PaddingFIFOQueue(capacity, dtypes, shapes, names=names)
        return FIFOQueue(capacity, dtypes, shapes=shapes, names=names)

    return make


def _shuffling(capacity: int, min_after_dequeue: int, seed: Optional[int]) -> MakeQueue:
    if capacity <= min_after_dequeue:
        raise ValueError(f"capacity {capacity} must be bigger than min_after_dequeue {min_after_dequeue}.")

    def make(dtypes: List[DType], shapes: List[Any], names: Optional[List[str]]) -> Any:
        return RandomShuffleQueue(capacity, min_after_dequeue, dtypes, shapes=shapes, names=names, seed=seed)

    return make


def _join_ops(tensors_list: Sequence[Op], name: str) -> List[Op]:
    if not tensors_list:
        raise ValueError(f"Expected at least one set of tensors in {name}().")
    return list(tensors_list)


def batch(
    tensors: Op, batch_size: int, num_threads: int = 1, capacity: int = 32, enqueue_many: bool = False,
    shapes: Shapes = None, dynamic_pad: bool = False, allow_smaller_final_batch: bool = False,
    name: Optional[str] = None,
) -> DequeueOp:
    """Batches of the examples the op ``tensors`` returns, enqueued by ``num_threads`` threads
    into a FIFOQueue (a PaddingFIFOQueue with ``dynamic_pad``). At the end of input a smaller
    final batch comes out only with ``allow_smaller_final_batch``, then ``OutOfRangeError``."""
    return _batch([tensors] * num_threads, batch_size, capacity, _fifo(capacity, dynamic_pad), enqueue_many, shapes,
                  dynamic_pad, allow_smaller_final_batch, name or "batch")


def batch_join(
    tensors_list: Sequence[Op], batch_size: int, capacity: int = 32, enqueue_many: bool = False,
    shapes: Shapes = None, dynamic_pad: bool = False, allow_smaller_final_batch: bool = False,
    name: Optional[str] = None,
) -> DequeueOp:
    """Like :func:`batch`, with one thread per op in ``tensors_list`` (e.g. one reader each)."""
    return _batch(_join_ops(tensors_list, "batch_join"), batch_size, capacity, _fifo(capacity, dynamic_pad),
                  enqueue_many, shapes, dynamic_pad, allow_smaller_final_batch, name or "batch_join")


def shuffle_batch(
    tensors: Op, batch_size: int, capacity: int, min_after_dequeue: int, num_threads: int = 1,
    seed: Optional[int] = None, enqueue_many: bool = False, shapes: Shapes = None,
    allow_smaller_final_batch: bool = False, name: Optional[str] = None,
) -> DequeueOp:
    """Like :func:`batch` through a RandomShuffleQueue: batches are drawn at random from at
    least ``min_after_dequeue`` buffered examples (fewer only once the input has ended)."""
    return _batch([tensors] * num_threads, batch_size, capacity, _shuffling(capacity, min_after_dequeue, seed),
                  enqueue_many, shapes, False, allow_smaller_final_batch, name or "shuffle_batch")


def shuffle_batch_join(
    tensors_list: Sequence[Op], batch_size: int, capacity: int, min_after_dequeue: int,
    seed: Optional[int] = None, enqueue_many: bool = False, shapes: Shapes = None,
    allow_smaller_final_batch: bool = False, name: Optional[str] = None,
) -> DequeueOp:
    """Like :func:`shuffle_batch`, with one thread per op in ``tensors_list``."""
    return _batch(_join_ops(tensors_list, "shuffle_batch_join"), batch_size, capacity,
                  _shuffling(capacity, min_after_dequeue, seed), enqueue_many, shapes, False,
                  allow_smaller_final_batch, name or "shuffle_batch_join")


__all__ = [
    "DequeueOp", "input_producer", "string_input_producer", "range_input_producer", "slice_input_producer",
    "batch", "shuffle_batch", "batch_join", "shuffle_batch_join",
]
