"""Collate functions for batches of decoded records, whose features may vary in length.

In all of them equal-shaped tensors are stacked and byte strings become one
:class:`~loaders.tfrecord.batches.RaggedBytes` (which reads like the list of ``bytes`` it
replaces). Tensors that differ in their first dimension (``VarLenFeature``,
``FixedLenSequenceFeature``) become a :class:`~loaders.tfrecord.batches.RaggedTensor` in
``collate_ragged``, are padded to the longest with ``<key>_length`` added in ``collate_padded``,
and are kept as a list in ``collate_lists``. In a worker of ``torch.utils.data.DataLoader`` each
batch's tensors are put into one shared-memory block, so that the batch crosses to the main
process as one transfer.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data._utils.collate import collate, collate_tensor_fn, default_collate_fn_map

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import batches
from loaders.tfrecord.batches import RaggedBytes, RaggedTensor, for_transfer


def _stack(column: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(column)``, into the memory the batch crosses in when a loaders.loader worker
    provides it (``batches.allocate_for_transfer``), as PyTorch's workers stack into shared memory."""
    allocate, rows = batches.allocate_for_transfer, list(column)
    if allocate is None or rows[0].device.type != "cpu" or len({value.dtype for value in rows}) != 1:
        return torch.stack(rows)  # mixed dtypes: torch.stack's promotion, which out= would not give
    try:
        return torch.stack(rows, out=allocate((len(rows), *rows[0].shape), rows[0].dtype))
    except RuntimeError:  # shapes that differ, another device, a tensor requiring grad: torch.stack's own verdict
        return torch.stack(rows)


def _collate(batch: Sequence[Mapping[str, Any]], pad: bool, padding_value: float) -> dict[str, Any]:
    if not batch:
        raise InvalidArgumentError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        try:
            column = [record[key] for record in batch]
        except KeyError:
            raise InvalidArgumentError(f"feature {key!r} is missing from some records of the batch") from None
        if all(type(value) is bytes for value in column):
            out[key] = RaggedBytes.from_rows(column)
        elif not all(isinstance(value, torch.Tensor) for value in column):
            out[key] = column
        elif all(value.shape == column[0].shape for value in column):
            out[key] = _stack(column)
        elif pad and all(value.dim() >= 1 and value.shape[1:] == column[0].shape[1:] for value in column):
            out[key] = pad_sequence(column, batch_first=True, padding_value=padding_value)
            out[f"{key}_length"] = torch.tensor([len(value) for value in column])
        elif pad:
            shapes = sorted({tuple(value.shape) for value in column})
            raise InvalidArgumentError(f"feature {key!r}: cannot pad tensors of shapes {shapes} (only the first dimension may vary)")
        else:
            out[key] = column
    return for_transfer(out)


def collate_padded(batch: Sequence[Mapping[str, Any]], padding_value: float = 0) -> dict[str, Any]:
    """Stack equal shapes; pad tensors that differ in their first dimension and add ``<key>_length``."""
    return _collate(batch, True, padding_value)


def collate_lists(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack equal shapes; keep tensors that differ in shape as a list, one per record."""
    return _collate(batch, False, 0)


def _bytes_fn(batch: Sequence[bytes], *, collate_fn_map: Any = None) -> RaggedBytes:
    return RaggedBytes.from_rows(batch)


def _tensor_fn(batch: Sequence[torch.Tensor], *, collate_fn_map: Any = None) -> Any:
    first = batch[0]
    if first.layout != torch.strided or first.is_nested:
        return collate_tensor_fn(batch, collate_fn_map=collate_fn_map)
    try:
        return _stack(batch)  # not a shared segment of its own: for_transfer or the worker's arena
    except RuntimeError:
        if all(value.shape == first.shape for value in batch):
            raise  # not a matter of lengths (dtypes, devices)
    return RaggedTensor.from_rows(batch)  # refuses shapes that differ beyond the first dimension


_RAGGED_MAP = {**default_collate_fn_map, bytes: _bytes_fn, torch.Tensor: _tensor_fn}


def collate_ragged(batch: Sequence[Any]) -> Any:
    """PyTorch's ``default_collate`` (any nesting of dicts, tuples, lists, numbers, arrays) with
    byte strings as one ``RaggedBytes`` and tensors that differ in their first dimension as a
    ``RaggedTensor`` (``default_collate`` refuses them)."""
    return for_transfer(collate(batch, collate_fn_map=_RAGGED_MAP))


__all__ = ["collate_lists", "collate_padded", "collate_ragged"]
