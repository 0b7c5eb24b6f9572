"""Collate functions for batches of decoded records whose features vary in length.

``collate_padded`` pads variable-length tensors (``VarLenFeature``, ``FixedLenSequenceFeature``)
to the longest in the batch and adds ``<key>_length``; ``collate_lists`` keeps them as lists.
Equal-shaped tensors are stacked and bytes are gathered in lists, in both.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from loaders.errors import InvalidArgumentError


def _collate(batch: Sequence[Mapping[str, Any]], pad: bool, padding_value: float) -> dict[str, Any]:
    if not batch:
        raise InvalidArgumentError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        try:
            column = [record[key] for record in batch]
        except KeyError:
            raise InvalidArgumentError(f"feature {key!r} is missing from some records of the batch") from None
        if not all(isinstance(value, torch.Tensor) for value in column):
            out[key] = column
        elif all(value.shape == column[0].shape for value in column):
            out[key] = torch.stack(column)
        elif pad and all(value.dim() >= 1 and value.shape[1:] == column[0].shape[1:] for value in column):
            out[key] = pad_sequence(column, batch_first=True, padding_value=padding_value)
            out[f"{key}_length"] = torch.tensor([len(value) for value in column])
        elif pad:
            shapes = sorted({tuple(value.shape) for value in column})
            raise InvalidArgumentError(f"feature {key!r}: cannot pad tensors of shapes {shapes} (only the first dimension may vary)")
        else:
            out[key] = column
    return out


def collate_padded(batch: Sequence[Mapping[str, Any]], padding_value: float = 0) -> dict[str, Any]:
    """Stack equal shapes; pad tensors that differ in their first dimension and add ``<key>_length``."""
    return _collate(batch, True, padding_value)


def collate_lists(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack equal shapes; keep tensors that differ in shape as a list, one per record."""
    return _collate(batch, False, 0)


__all__ = ["collate_lists", "collate_padded"]
