"""TF1's input producers and batching: ``string_input_producer``, ``input_producer``,
``range_input_producer``, ``slice_input_producer``, ``batch``, ``shuffle_batch``,
``batch_join`` and ``shuffle_batch_join``, each a queue filled by a ``QueueRunner`` registered
with ``add_queue_runner`` (started by ``start_queue_runners``), with TF1's end of input: after
``num_epochs`` the queue closes and the consumer gets ``OutOfRangeError``.

Porting rule: there is no graph, so an example is produced by an *op*, a Python callable::

    tf.train.batch([features, label], batch_size=32)  ->  loaders.batch(lambda: read_example(), batch_size=32)
    sess.run(batch)                                   ->  batch()

where ``read_example()`` returns one example (a list/tuple/dict of tensors and bytes, or a
single value), e.g. ``reader.read`` followed by ``decode_csv``. The batching functions return a
:class:`DequeueOp`: call it for the next batch (same structure as the example, each tensor with
a new leading batch dimension, string components as lists of bytes; a one-component example
gives a bare batch, as in TF), or iterate it until the input ends.

To learn the queue's dtypes and shapes (TF reads them from the graph), ``batch`` runs the op
once when called and enqueues that first example; ``shapes`` overrides the inferred shapes, and
with ``dynamic_pad`` and no ``shapes`` every dimension is padded to the longest in the batch.
So the op must be able to produce an example before ``start_queue_runners``: the input
producers enqueue their first ``capacity`` elements when created, which makes the lecture's
order (producer, reader, batch, then ``start_queue_runners``) work. For an op fed by your own
threads, start those first (``start_queue_runners`` may be called again later).
"""
from __future__ import annotations

import functools
import os
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .coordinator import QueueRunner, add_queue_runner
from .dtypes import DType, as_dtype, string
from .errors import OutOfRangeError
from .queues import FIFOQueue, PaddingFIFOQueue, RandomShuffleQueue

Op = Callable[[], Any]


class DequeueOp:
    """A dequeue op (TF's dequeue tensor): ``op()`` returns the next value; iterating yields
    values until the input ends (``OutOfRangeError``); ``op.queue`` is the queue behind it."""

    def __init__(self, queue: Any, dequeue: Op, name: Optional[str] = None) -> None:
        self.queue, self.name = queue, name
        self._dequeue = dequeue

    def __call__(self) -> Any:
        return self._dequeue()

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


def _as_rows(value: Any) -> Any:
    """A tensor, or a list of bytes for strings, whose first dimension indexes the elements."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO":
            return [os.fsencode(item) if isinstance(item, str) else bytes(item) for item in value.tolist()]
        return torch.from_numpy(value)
    items = list(value)
    if items and all(isinstance(item, (bytes, str, os.PathLike)) for item in items):
        return [os.fsencode(item) for item in items]
    return torch.as_tensor(items)


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
    input_tensor: Any, element_shape: Optional[Sequence[int]] = None, num_epochs: Optional[int] = None,
    shuffle: bool = True, seed: Optional[int] = None, capacity: int = 32, name: Optional[str] = None,
) -> Any:
    """A FIFOQueue fed with the rows of ``input_tensor`` (a tensor, array or list; strings stay
    bytes), ``num_epochs`` times (forever when None), shuffled within each epoch with ``seed``."""
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0 not {num_epochs}")
    rows = _as_rows(input_tensor)
    if len(rows) == 0:
        raise ValueError(f"{name or 'input_producer'} requires a non-empty input")
    dtype, shape = (string, []) if isinstance(rows, list) else (rows.dtype, list(rows.shape[1:]))
    if element_shape is not None and list(element_shape) != shape:
        raise ValueError(f"element_shape {list(element_shape)} does not match the rows' shape {shape}")
    queue = FIFOQueue(capacity, dtypes=[dtype], shapes=[shape])
    feeder = _EpochFeeder(queue, rows, num_epochs, shuffle, seed, chunk=capacity)
    feeder()  # the first `capacity` elements now, so an op may read before start_queue_runners
    add_queue_runner(QueueRunner(queue, [feeder]))
    return queue


def string_input_producer(
    string_tensor: Sequence[Any], num_epochs: Optional[int] = None, shuffle: bool = True,
    seed: Optional[int] = None, capacity: int = 32, name: Optional[str] = None,
) -> Any:
    """A queue of strings (e.g. filenames, as bytes) for a reader: TF1's ``string_input_producer``."""
    if isinstance(string_tensor, (str, bytes)) or len(string_tensor) == 0:
        raise ValueError("string_input_producer requires a non-null input tensor: a non-empty list of strings")
    strings = [os.fsencode(item) for item in string_tensor]
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
    ``range_input_producer`` (so ``shuffle``/``num_epochs`` apply to the slices)."""
    if not tensor_list:
        raise ValueError("Expected at least one tensor in slice_input_producer().")
    tensors = [_as_rows(tensor) for tensor in tensor_list]
    sizes = {len(tensor) for tensor in tensors}
    if len(sizes) != 1:
        raise ValueError(f"slice_input_producer: all tensors need the same first dimension, got sizes {sorted(sizes)}")
    queue = range_input_producer(sizes.pop(), num_epochs, shuffle, seed, capacity, name)

    def dequeue() -> List[Any]:
        index = int(queue.dequeue())
        return [tensor[index] for tensor in tensors]

    return DequeueOp(queue, dequeue, name or "slice_input_producer")


# ---------------------------------------------------------------- batching


def _structure(example: Any) -> Tuple[Optional[List[str]], List[Any]]:
    """(names or None, components) of one example."""
    if isinstance(example, dict):
        names = list(example)
        return names, [example[key] for key in names]
    if isinstance(example, (list, tuple)):
        return None, list(example)
    return None, [example]


def _spec(value: Any, many: bool) -> Tuple[DType, List[int]]:
    """The dtype and (per-example) shape of one component."""
    if isinstance(value, (bytes, str)):
        return string, []
    if many and isinstance(value, (list, tuple)) and value and isinstance(value[0], (bytes, str)):
        return string, []
    if isinstance(value, torch.Tensor):
        dtype, shape = value.dtype, list(value.shape)
    elif isinstance(value, np.ndarray):
        dtype, shape = as_dtype(value.dtype), list(value.shape)
    elif isinstance(value, bool):
        dtype, shape = torch.bool, []
    elif isinstance(value, int):
        dtype, shape = torch.int32, []  # TF converts Python ints to int32 and floats to float32
    elif isinstance(value, float):
        dtype, shape = torch.float32, []
    else:
        tensor = torch.as_tensor(value)
        dtype, shape = tensor.dtype, list(tensor.shape)
    if many:
        if not shape:
            raise ValueError("enqueue_many=True needs every component to have a leading batch dimension")
        shape = shape[1:]
    return dtype, shape


def _enqueue_op(queue: Any, op: Op, many: bool) -> Op:
    """The runner's op: one example (or batch) from ``op`` into ``queue``, as a component list."""
    put = queue.enqueue_many if many else queue.enqueue

    def enqueue() -> None:
        example = op()
        put(example if isinstance(example, dict) else _structure(example)[1])

    return enqueue


def _batch(
    ops: Sequence[Op], batch_size: int, make_queue: Callable[[List[DType], List[Any], Optional[List[str]]], Any],
    enqueue_many: bool, shapes: Optional[Sequence[Sequence[Optional[int]]]], dynamic_pad: bool,
    allow_smaller_final_batch: bool, name: str,
) -> DequeueOp:
    """The common body: learn dtypes/shapes from the first example, build the queue and runner."""
    for op in ops:
        if not callable(op):
            raise TypeError(
                f"{name}() takes an op, a callable returning one example, not {type(op).__name__}: "
                f"write loaders.{name}(lambda: [features, label], ...) where TF1 had tf.train.{name}([features, label], ...)"
            )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    try:
        first = ops[0]()
    except OutOfRangeError as error:
        raise OutOfRangeError(f"{name}: the input ended before its first example, which gives the dtypes ({error})") from error
    names, components = _structure(first)
    specs = [_spec(component, enqueue_many) for component in components]
    dtypes = [dtype for dtype, _ in specs]
    if shapes is None:
        shapes = [[None] * len(shape) if dynamic_pad else shape for _, shape in specs]
    elif len(shapes) != len(components):
        raise ValueError(f"{name}: {len(shapes)} shapes for {len(components)} components")
    queue = make_queue(dtypes, [list(shape) for shape in shapes], names)
    runner_ops = [_enqueue_op(queue, op, enqueue_many) for op in ops]
    _enqueue_op(queue, lambda: first, enqueue_many)()
    add_queue_runner(QueueRunner(queue, runner_ops))
    take = queue.dequeue_up_to if allow_smaller_final_batch else queue.dequeue_many
    return DequeueOp(queue, functools.partial(take, batch_size), name)


def _fifo(capacity: int, dynamic_pad: bool) -> Callable[..., Any]:
    def make(dtypes: List[DType], shapes: List[Any], names: Optional[List[str]]) -> Any:
        if dynamic_pad:
            return PaddingFIFOQueue(capacity, dtypes, shapes, names=names)
        return FIFOQueue(capacity, dtypes, shapes=shapes, names=names)

    return make


def _shuffling(capacity: int, min_after_dequeue: int, seed: Optional[int]) -> Callable[..., Any]:
    if capacity <= min_after_dequeue:
        raise ValueError(f"capacity {capacity} must be bigger than min_after_dequeue {min_after_dequeue}.")

    def make(dtypes: List[DType], shapes: List[Any], names: Optional[List[str]]) -> Any:
        return RandomShuffleQueue(capacity, min_after_dequeue, dtypes, shapes=shapes, names=names, seed=seed)

    return make


def batch(
    tensors: Op, batch_size: int, num_threads: int = 1, capacity: int = 32, enqueue_many: bool = False,
    shapes: Optional[Sequence[Sequence[Optional[int]]]] = None, dynamic_pad: bool = False,
    allow_smaller_final_batch: bool = False, name: Optional[str] = None,
) -> DequeueOp:
    """Batches of the examples the op ``tensors`` returns, enqueued by ``num_threads`` threads
    into a FIFOQueue (a PaddingFIFOQueue with ``dynamic_pad``). At the end of input a smaller
    final batch comes out only with ``allow_smaller_final_batch``, then ``OutOfRangeError``."""
    return _batch([tensors] * num_threads, batch_size, _fifo(capacity, dynamic_pad), enqueue_many, shapes,
                  dynamic_pad, allow_smaller_final_batch, name or "batch")


def batch_join(
    tensors_list: Sequence[Op], batch_size: int, capacity: int = 32, enqueue_many: bool = False,
    shapes: Optional[Sequence[Sequence[Optional[int]]]] = None, dynamic_pad: bool = False,
    allow_smaller_final_batch: bool = False, name: Optional[str] = None,
) -> DequeueOp:
    """Like :func:`batch`, with one thread per op in ``tensors_list`` (e.g. one reader each)."""
    if not tensors_list:
        raise ValueError("Expected at least one input in batch_join().")
    return _batch(list(tensors_list), batch_size, _fifo(capacity, dynamic_pad), enqueue_many, shapes,
                  dynamic_pad, allow_smaller_final_batch, name or "batch_join")


def shuffle_batch(
    tensors: Op, batch_size: int, capacity: int, min_after_dequeue: int, num_threads: int = 1,
    seed: Optional[int] = None, enqueue_many: bool = False, shapes: Optional[Sequence[Sequence[int]]] = None,
    allow_smaller_final_batch: bool = False, name: Optional[str] = None,
) -> DequeueOp:
    """Like :func:`batch` through a RandomShuffleQueue: batches are drawn at random from at
    least ``min_after_dequeue`` buffered examples (fewer only once the input has ended)."""
    return _batch([tensors] * num_threads, batch_size, _shuffling(capacity, min_after_dequeue, seed), enqueue_many,
                  shapes, False, allow_smaller_final_batch, name or "shuffle_batch")


def shuffle_batch_join(
    tensors_list: Sequence[Op], batch_size: int, capacity: int, min_after_dequeue: int,
    seed: Optional[int] = None, enqueue_many: bool = False, shapes: Optional[Sequence[Sequence[int]]] = None,
    allow_smaller_final_batch: bool = False, name: Optional[str] = None,
) -> DequeueOp:
    """Like :func:`shuffle_batch`, with one thread per op in ``tensors_list``."""
    if not tensors_list:
        raise ValueError("Expected at least one input in shuffle_batch_join().")
    return _batch(list(tensors_list), batch_size, _shuffling(capacity, min_after_dequeue, seed), enqueue_many,
                  shapes, False, allow_smaller_final_batch, name or "shuffle_batch_join")


__all__ = [
    "DequeueOp", "input_producer", "string_input_producer", "range_input_producer", "slice_input_producer",
    "batch", "shuffle_batch", "batch_join", "shuffle_batch_join",
]
