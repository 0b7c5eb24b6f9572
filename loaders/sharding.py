"""One rule for splitting work over DataLoader workers and ``torch.distributed`` ranks.

Every dataset asks :func:`current_shard` which slice of the work is its own, so that each item
is handled exactly once per epoch however many ranks and workers there are.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence, TypeVar

import torch.distributed as dist
from torch.utils.data import get_worker_info

T = TypeVar("T")


class Shard(NamedTuple):
    """This reader's position among ``count`` readers: ``index`` in ``range(count)``."""

    index: int
    count: int


def current_shard() -> Shard:
    """The shard of the calling DataLoader worker on this rank (rank-major, worker-minor)."""
    rank, world = 0, 1
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return Shard(rank * workers + worker, world * workers)


def split(items: Sequence[T], shard: Shard) -> Sequence[T]:
    """The items of ``shard``: every ``count``-th item starting at ``index`` (round robin)."""
    return items[shard.index :: shard.count]


__all__ = ["Shard", "current_shard", "split"]
