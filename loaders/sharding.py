"""One rule for splitting work over DataLoader workers and ``torch.distributed`` ranks.

Every dataset asks :func:`current_shard` which slice of the work is its own, so that each item
is handled exactly once per epoch however many ranks and workers there are, under every
DataLoader start method. A worker started by fork inherits its parent's process group; one
started by spawn or forkserver (Python 3.14's default on Linux) has none, so a dataset holds a
:class:`RankCarrier`, which records the rank when the DataLoader pickles the dataset in the
parent and hands it to the worker that unpickles it. Nothing is asked of the user.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional, Sequence, TypeVar

import torch.distributed as dist
from torch.utils.data import get_worker_info

T = TypeVar("T")

#: ``(rank, world size)`` of the process that pickled a dataset to this one (a spawned worker).
_parent_rank: Optional[tuple[int, int]] = None


class Shard(NamedTuple):
    """This reader's position among ``count`` readers: ``index`` in ``range(count)``."""

    index: int
    count: int


def distributed_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process: its own process group's; in a DataLoader worker
    without one (spawn, forkserver), its parent's as carried by :class:`RankCarrier`; else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if _parent_rank is not None and get_worker_info() is not None:
        return _parent_rank
    return 0, 1


class RankCarrier:
    """Held by a dataset so that DataLoader workers started by spawn or forkserver know their rank.

    Pickling it (as the DataLoader does with the dataset, in the parent, for each such worker)
    records the parent's :func:`distributed_rank`; unpickling it in another process makes that the
    rank of this process's DataLoader workers. A copy made within one process changes nothing.
    """

    def __getstate__(self) -> dict:
        rank, world = distributed_rank()
        return {"rank": rank, "world": world, "pid": os.getpid()}

    def __setstate__(self, state: dict) -> None:
        global _parent_rank
        if state["pid"] != os.getpid():
            _parent_rank = state["rank"], state["world"]


def current_shard() -> Shard:
    """The shard of the calling DataLoader worker on this rank (rank-major, worker-minor)."""
    rank, world = distributed_rank()
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return Shard(rank * workers + worker, world * workers)


def split(items: Sequence[T], shard: Shard) -> Sequence[T]:
    """The items of ``shard``: every ``count``-th item starting at ``index`` (round robin)."""
    return items[shard.index :: shard.count]


__all__ = ["RankCarrier", "Shard", "current_shard", "distributed_rank", "split"]
