"""Batch types that cross processes as a few tensors: byte strings and rows of different lengths.

A DataLoader worker hands each batch to the main process by pickling it. A list of 256 ``bytes``
objects pickles record by record and a list of 256 tensors costs 256 shared-memory transfers, so
batches hold such columns as one tensor of values plus int64 row splits (TF's ``RaggedTensor``
layout: row ``i`` is ``values[row_splits[i]:row_splits[i + 1]]``):

* :class:`RaggedBytes`: byte strings (a ``string`` feature of a batch) in one uint8 tensor. It
  indexes, iterates, compares and has a ``len()`` like the list of ``bytes`` it replaces;
  ``tolist()`` gives that list.
* :class:`RaggedTensor`: rows of numbers of different lengths (a ``VarLenFeature`` of a batch),
  or of byte strings (its values a :class:`RaggedBytes`). It indexes and iterates like the list
  of 1-D tensors it replaces; ``to_tensor()`` pads it.

Neither is a ``collections.abc.Sequence``, so ``DataLoader``'s ``default_convert`` and
``pin_memory`` pass them through whole. :func:`share_batch` puts every tensor of a batch into one
shared-memory block, so that ``torch.multiprocessing`` hands a whole batch over with one file
descriptor instead of one per tensor.
"""
from __future__ import annotations

import collections.abc
import copy
import itertools
import reprlib
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import get_worker_info

from loaders.errors import InvalidArgumentError


_BYTES = (bytes, bytearray, memoryview)


class _Ragged:
    """What both ragged types share: ``values``, ``row_splits``, slicing, devices and pickling."""

    __slots__ = ("values", "row_splits", "_splits")

    def __init__(self, values: Any, row_splits: torch.Tensor) -> None:
        if not isinstance(row_splits, torch.Tensor) or row_splits.dtype != torch.int64 or row_splits.dim() != 1 \
                or len(row_splits) < 1:
            raise InvalidArgumentError(f"{type(self).__name__}: row_splits must be a 1-D int64 tensor of at least one "
                                       f"element, got {_describe(row_splits)}")
        self.values, self.row_splits = values, row_splits
        self._splits: Optional[list[int]] = None

    @classmethod
    def from_row_splits(cls, values: Any, row_splits: Any) -> "_Ragged":
        """Rows ``values[row_splits[i]:row_splits[i + 1]]`` (TF's ``RaggedTensor.from_row_splits``)."""
        return cls(values, torch.as_tensor(row_splits, dtype=torch.int64))

    def splits(self) -> list[int]:
        """The row splits as a Python list, kept (element access reads them often)."""
        if self._splits is None:
            self._splits = self.row_splits.tolist()
        return self._splits

    def __len__(self) -> int:
        return len(self.row_splits) - 1

    def row_lengths(self) -> torch.Tensor:
        """The length of every row (TF's ``row_lengths``)."""
        return self.row_splits[1:] - self.row_splits[:-1]

    def __getitem__(self, item: Union[int, slice]) -> Any:
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step != 1:
                return self.from_rows([self.row(i) for i in range(start, stop, step)])
            return self._slice(start, max(start, stop))
        try:
            index = item.__index__()
        except AttributeError:
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, not {type(item).__name__}") from None
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {item} is out of range for {len(self)} rows")
        return self.row(index)

    def _slice(self, start: int, stop: int) -> "_Ragged":
        return type(self)(self.values, self.row_splits[start:stop + 1])

    def __iter__(self) -> Iterator[Any]:
        return map(self.row, range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Ragged) and type(other) is not type(self):
            return False
        if not isinstance(other, (_Ragged, collections.abc.Sequence)) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(_same(a, b) for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable, like the list it replaces

    def to(self, *args: Any, **kwargs: Any) -> "_Ragged":
        """On another device or of another dtype (``Tensor.to``'s arguments): the row splits move
        along and stay int64; byte strings stay uint8."""
        device = _device_of(args, kwargs)
        splits = self.row_splits
        if device is not None:
            splits = splits.to(device, non_blocking=kwargs.get("non_blocking", False))
        return type(self)(self._values_to(device, args, kwargs), splits)

    def _values_to(self, device: Optional[torch.device], args: tuple, kwargs: dict) -> Any:
        return self.values.to(*args, **kwargs)

    def pin_memory(self) -> "_Ragged":
        """A copy in pinned memory (``DataLoader(pin_memory=True)`` calls this)."""
        return type(self)(self.values.pin_memory(), self.row_splits.pin_memory())

    def __reduce__(self) -> tuple:
        return type(self), (self.values, self.row_splits)

    def __repr__(self) -> str:
        shown = ", ".join(reprlib.repr(row) if isinstance(row, bytes) else repr(row) for row in itertools.islice(self, 4))
        return f"{type(self).__name__}([{shown}{', ...' if len(self) > 4 else ''}], rows={len(self)})"

    def row(self, index: int) -> Any:  # pragma: no cover - each subclass defines it
        raise NotImplementedError

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> "_Ragged":  # pragma: no cover - each subclass defines it
        raise NotImplementedError


def _row_splits(rows: Sequence[Any]) -> np.ndarray:
    """Where each row ends when ``rows`` are laid end to end, after a leading 0 (TF's row splits)."""
    splits = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, rows), np.int64, len(rows)), out=splits[1:])
    return splits


class RaggedBytes(_Ragged):
    """Byte strings in one uint8 tensor: string ``i`` is ``values[row_splits[i]:row_splits[i + 1]]``.

    Reads like the list of ``bytes`` it stands for (``len``, indexing, slicing, iteration, ``==``
    with a list); ``tolist()`` returns that list, ``values`` and ``row_splits`` the tensors.
    """

    __slots__ = ("_data",)

    def __init__(self, values: torch.Tensor, row_splits: torch.Tensor) -> None:
        super().__init__(values, row_splits)
        if not isinstance(values, torch.Tensor) or values.dtype != torch.uint8 or values.dim() != 1:
            raise InvalidArgumentError(f"RaggedBytes: values must be a 1-D uint8 tensor, got {_describe(values)}")
        self._data: Optional[bytes] = None

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> "RaggedBytes":
        """The byte strings ``rows`` (bytes, bytearray or memoryview) in one tensor: in a loaders.loader
        worker's collate, written straight into the memory the batch crosses in (no joined copy to
        place there, and none of the page faults a new half-megabyte buffer costs every batch)."""
        allocate = allocate_for_transfer
        if allocate is not None and all(type(row) is bytes for row in rows):
            splits = _row_splits(rows)
            values = allocate((int(splits[-1]),), torch.uint8)
            into, start = memoryview(values.numpy()), 0
            for row in rows:
                end = start + len(row)
                into[start:end] = row
                start = end
            return cls(values, torch.from_numpy(splits))
        try:
            joined = bytearray().join(rows)
        except TypeError:
            bad = next(i for i, row in enumerate(rows) if not isinstance(row, _BYTES))
            raise TypeError(f"RaggedBytes: row {bad} is a {type(rows[bad]).__name__}, expected bytes") from None
        splits = _row_splits(rows)
        if len(rows) and splits[-1] != len(joined):  # a memoryview of items wider than a byte
            return cls.from_rows([bytes(row) for row in rows])
        values = torch.frombuffer(joined, dtype=torch.uint8) if joined else torch.zeros(0, dtype=torch.uint8)
        return cls(values, torch.from_numpy(splits))

    def data(self) -> bytes:
        """All strings, concatenated, as one ``bytes`` object (kept: rows are slices of it)."""
        if self._data is None:
            values = self.values.cpu()
            self._data = values.numpy().tobytes() if values.is_contiguous() else bytes(values.tolist())
        return self._data

    def _values_to(self, device: Optional[torch.device], args: tuple, kwargs: dict) -> Any:
        return self.values if device is None else self.values.to(device, non_blocking=kwargs.get("non_blocking", False))

    def _slice(self, start: int, stop: int) -> "RaggedBytes":
        part = RaggedBytes(self.values, self.row_splits[start:stop + 1])
        part._data = self.data()  # rows of a slice are slices of the same bytes
        return part

    def row(self, index: int) -> bytes:
        splits = self.splits()
        return self.data()[splits[index]:splits[index + 1]]

    def __iter__(self) -> Iterator[bytes]:
        splits, data = self.splits(), self.data()
        return map(data.__getitem__, map(slice, splits[:-1], splits[1:]))

    def tolist(self) -> list[bytes]:
        """The strings as a list of ``bytes``."""
        return list(self)


class RaggedTensor(_Ragged):
    """Rows of different lengths (TF's ``tf.RaggedTensor`` with one ragged dimension): row ``i``
    is ``values[row_splits[i]:row_splits[i + 1]]``, a tensor (or a :class:`RaggedBytes` slice,
    for byte strings). Indexes and iterates like the list of rows it stands for."""

    __slots__ = ()

    def __init__(self, values: Union[torch.Tensor, RaggedBytes], row_splits: torch.Tensor) -> None:
        super().__init__(values, row_splits)
        if not isinstance(values, (torch.Tensor, RaggedBytes)) or (isinstance(values, torch.Tensor) and values.dim() < 1):
            raise InvalidArgumentError(f"RaggedTensor: values must be a tensor of at least one dimension or a "
                                       f"RaggedBytes, got {_describe(values)}")

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> "RaggedTensor":
        """Rows of tensors (or lists of numbers) alike but for their first dimension, or lists of byte strings."""
        if all(isinstance(row, (list, tuple)) and all(isinstance(item, _BYTES) for item in row) for row in rows) \
                and any(rows):
            values: Any = RaggedBytes.from_rows([item for row in rows for item in row])
        else:
            rows = [row if isinstance(row, torch.Tensor) else torch.as_tensor(row) for row in rows]
            if rows and (len({row.shape[1:] for row in rows}) > 1 or min(row.dim() for row in rows) < 1):
                shapes = sorted({tuple(row.shape) for row in rows})
                raise InvalidArgumentError(f"RaggedTensor: rows of shapes {shapes}: only the first dimension may vary")
            values = torch.cat(rows) if rows else torch.zeros(0)
        splits = _row_splits(rows)
        return cls(values, torch.from_numpy(splits))

    def row(self, index: int) -> Any:
        splits = self.splits()
        return self.values[splits[index]:splits[index + 1]]

    def tolist(self) -> list:
        """The rows as nested lists of numbers or ``bytes`` (as ``Tensor.tolist`` gives them)."""
        return [row.tolist() for row in self]

    def to_tensor(self, default_value: Any = 0) -> torch.Tensor:
        """The rows padded with ``default_value`` to the longest (TF's ``to_tensor``): ``[rows, longest, ...]``."""
        if isinstance(self.values, RaggedBytes):
            raise InvalidArgumentError("RaggedTensor.to_tensor: byte strings cannot be padded into a tensor")
        lengths = self.row_lengths()
        longest = int(lengths.max()) if len(lengths) else 0
        out = self.values.new_full((len(self), longest, *self.values.shape[1:]), default_value)
        start = self.row_splits[0]
        mask = torch.arange(longest, device=lengths.device) < lengths[:, None]
        out[mask] = self.values[start:start + int(lengths.sum())]
        return out


def _same(a: Any, b: Any) -> bool:
    """Row equality as the list a ragged type replaces would see it (tensors by value)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            b = torch.as_tensor(b) if isinstance(a, torch.Tensor) else b
            a = torch.as_tensor(a) if isinstance(b, torch.Tensor) else a
        return a.shape == b.shape and bool(torch.equal(a.cpu(), b.cpu().to(a.dtype)))
    return a == b


def _device_of(args: tuple, kwargs: dict) -> Optional[torch.device]:
    """The device that ``Tensor.to(*args, **kwargs)`` moves to, None when it stays."""
    for arg in (*args, kwargs.get("device"), kwargs.get("other")):
        if isinstance(arg, (str, torch.device, int)) and not isinstance(arg, bool):
            return torch.device(arg)
        if isinstance(arg, torch.Tensor):
            return arg.device
    return None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def share_batch(batch: Any) -> Any:
    """``batch`` with all its CPU tensors moved into one shared-memory block (views of it).

    ``torch.multiprocessing`` hands each storage over separately (a file descriptor passed to the
    other process, or a file name); a batch whose tensors share one storage crosses as one. Dicts,
    lists, tuples and the ragged types are followed; anything else is kept as it is.
    """
    found: dict[int, torch.Tensor] = {}
    _collect(batch, found)
    if len(found) < 2:
        return batch
    tensors, offsets, total = list(found.values()), [], 0
    for tensor in tensors:
        offsets.append(total)
        total += -(-tensor.numel() * tensor.element_size() // 64) * 64
    block = torch.empty(total, dtype=torch.uint8).share_memory_()
    placed = {}
    for tensor, offset in zip(tensors, offsets):
        view = block[offset:offset + tensor.numel() * tensor.element_size()].view(tensor.dtype).view(tensor.shape)
        view.copy_(tensor)
        placed[id(tensor)] = view
    return _replace(batch, placed)


def _collect(obj: Any, out: dict) -> None:
    """The CPU tensors in ``obj`` that can move into a shared block, by id."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu" and obj.layout == torch.strided and obj.numel() and not obj.requires_grad:
            out[id(obj)] = obj
    elif isinstance(obj, _Ragged):
        _collect(obj.values, out)
        _collect(obj.row_splits, out)
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect(value, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _collect(value, out)


def _replace(obj: Any, placed: dict) -> Any:
    if isinstance(obj, torch.Tensor):
        return placed.get(id(obj), obj)
    if isinstance(obj, _Ragged):
        return type(obj)(_replace(obj.values, placed), _replace(obj.row_splits, placed))
    if isinstance(obj, dict):
        out = copy.copy(obj)  # keeps a dict subclass and its state (a defaultdict's factory)
        for key, value in obj.items():
            out[key] = _replace(value, placed)
        return out
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_replace(value, placed) for value in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace(value, placed) for value in obj)
    return obj


def ragged_column(column: Any) -> Any:
    """A batch's column in its crossing form: a list of byte strings becomes a :class:`RaggedBytes`,
    a list of tensors or of lists of byte strings a :class:`RaggedTensor`; anything else is kept."""
    if not isinstance(column, list) or not column:
        return column
    first = column[0]
    if isinstance(first, bytes):
        try:
            return RaggedBytes.from_rows(column)
        except TypeError:  # not all byte strings
            return column
    if isinstance(first, torch.Tensor) and all(isinstance(item, torch.Tensor) and item.dim() >= 1 for item in column):
        if all(item.shape[1:] == first.shape[1:] for item in column):
            return RaggedTensor.from_rows(column)
    if isinstance(first, list) and all(isinstance(row, list) and all(type(item) is bytes for item in row) for row in column):
        return RaggedTensor.from_rows(column)
    return column


#: False in a process whose batches cross by another way than torch.multiprocessing (set by
#: loaders.loader's workers): :func:`for_transfer` then leaves batches as they are.
share_in_workers = True

#: While loaders.loader's worker collates a batch: ``allocate(shape, dtype)``, an uninitialised
#: tensor where the batch crosses without a copy, for the collate functions to stack into.
allocate_for_transfer: Optional[Callable[[tuple, torch.dtype], torch.Tensor]] = None


def for_transfer(batch: Any) -> Any:
    """``batch`` ready to leave a DataLoader worker: :func:`share_batch` in a worker of
    ``torch.utils.data.DataLoader``, unchanged in the main process (nothing crosses)."""
    if share_in_workers and get_worker_info() is not None:
        return share_batch(batch)
    return batch


__all__ = ["RaggedBytes", "RaggedTensor", "for_transfer", "ragged_column", "share_batch"]
