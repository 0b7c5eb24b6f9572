"""Reshuffled and resumable epochs: what ``TFRecordDataset`` and ``CSVDataset`` share.

An iteration's order is a pure function of a short list of integers, its *key*
(:func:`iteration_keys`): with ``seed`` given and an epoch known in this process (``set_epoch``,
or the count of this object's iterations when it is iterated in the main process or in a
persistent DataLoader worker) the key is ``seed`` and the epoch, the same on every rank and run;
otherwise it takes in torch's seed for the iteration (a DataLoader worker's per-epoch base
seed, common to the loader's workers; in the main process a draw from torch's default
generator), so every epoch gets a new order, reproducible by ``torch.manual_seed``.

The shuffle buffer (:class:`ShuffleBuffer`) draws its random numbers in blocks, each derived
from the key and the block number (a counter-based generator), so its random state is the
number of draws made. A saved state is therefore small: the epoch and key, the readers'
positions (byte offsets), the draw count, and the shuffle buffer as ``(file, byte offset)``
pairs, whose records are read again by offset on resume.

:class:`Epochs` is the part of a dataset that counts iterations, keeps ``set_epoch`` and
``state_dict``/``load_state_dict`` (what torchdata's ``StatefulDataLoader`` calls in each worker).
"""
from __future__ import annotations

import array
import collections
import inspect
import itertools
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np
import torch
from torch.utils.data import get_worker_info

from loaders.sharding import Shard, distributed_rank

T = TypeVar("T")

#: Random numbers drawn at a time by a shuffle buffer (one block is derived per this many draws).
DRAW_BLOCK = 4096
_MASK = (1 << 64) - 1


def iteration_keys(seed: Optional[int], epoch: Optional[int], iteration: int) -> tuple[list[int], Optional[list[int]]]:
    """``(record key, file key)`` of an iteration: the record key seeds the shuffle of every
    shard's records, the file key (None: keep the file order) the file order, which must be the
    same for every reader of an epoch. ``epoch`` is ``set_epoch``'s value (or None),
    ``iteration`` the number of this dataset object's earlier iterations in this process."""
    info = get_worker_info()
    fixed = [1, seed & _MASK, (epoch if epoch is not None else iteration) & _MASK] if seed is not None else None
    if fixed is not None and (epoch is not None or info is None):
        return fixed, fixed
    if info is not None:
        torch_seed = info.seed - info.id  # the loader's base seed: new each epoch, the same in all its workers
    else:
        torch_seed = int(torch.empty((), dtype=torch.int64).random_().item())
    key = [2, torch_seed & _MASK, (seed or 0) & _MASK, (epoch if epoch is not None else iteration) & _MASK]
    # ranks share no torch seed: on several ranks files are shuffled only by seed and epoch
    return key, (key if distributed_rank()[1] == 1 else fixed)


def permutation(count: int, key: list[int]) -> list[int]:
    """A random order of ``range(count)`` given by ``key``."""
    return np.random.default_rng(key).permutation(count).tolist()


class ShuffleBuffer:
    """TF's ``shuffle(buffer_size)`` over ``(name, (offset, data))`` records whose state is their
    positions: ``size`` records are held; each step yields a random one and puts the next input
    record in its place (once the input ends, the last one). Draws come from blocks derived from
    ``key`` and the block number, so the random state is the draw count."""

    def __init__(self, size: int, key: list[int], numbers: dict[str, int]) -> None:
        self.size, self.key, self.numbers = size, key, numbers
        self.items: list[Any] = []
        self.files, self.offsets = array.array("q"), array.array("q")  # file number and byte offset of each held record
        self.draws = 0

    def state(self) -> dict:
        """The draw count and the held records' ``[file number, byte offset]``, slot by slot."""
        positions = np.stack([np.array(self.files, np.int64), np.array(self.offsets, np.int64)], axis=1)
        return {"draws": self._draws(), "positions": torch.from_numpy(positions)}

    def restore(self, state: dict, fetch: Callable[[list[tuple[int, int]]], list[Any]]) -> None:
        """Take the draw count and refill the buffer with ``fetch(positions)`` (records read again by offset)."""
        positions = [(int(number), int(offset)) for number, offset in state["positions"].tolist()]
        self.draws = int(state["draws"])
        self.items = fetch(positions)
        self.files = array.array("q", [number for number, _ in positions])
        self.offsets = array.array("q", [offset for _, offset in positions])

    def _uniforms(self) -> Iterator[float]:
        """Draws ``self.draws, self.draws + 1, ...``, uniform in [0, 1): block ``n`` is derived from
        the key and ``n``, so a resumed buffer draws on where it stood."""
        first, at = divmod(self.draws, DRAW_BLOCK)
        blocks = map(lambda n: np.random.default_rng([*self.key, n]).random(DRAW_BLOCK).tolist(), itertools.count(first))
        return itertools.islice(itertools.chain.from_iterable(blocks), at, None)

    def shuffle(self, records: Iterator[T]) -> Iterator[T]:
        """The records in shuffled order, continuing from the held ones."""
        self._run = self._shuffle(records)
        return self._run

    def _draws(self) -> int:
        """Draws made so far: the running loop's count (read from its frame, to keep the loop lean)."""
        run = getattr(self, "_run", None)
        return inspect.getgeneratorlocals(run).get("draws", self.draws) if run is not None else self.draws

    def _shuffle(self, records: Iterator[T]) -> Iterator[T]:
        """The per-record hot path of :meth:`shuffle`."""
        items, files, offsets, numbers, size = self.items, self.files, self.offsets, self.numbers, self.size
        for record in records:
            if len(items) == size:
                records = itertools.chain([record], records)
                break
            files.append(numbers[record[0]])
            offsets.append(record[1][0])
            items.append(record)
        uniforms, draws = self._uniforms(), self.draws
        for record, uniform in zip(records, uniforms):
            slot = int(uniform * size)
            out = items[slot]
            items[slot] = record
            files[slot] = numbers[record[0]]
            offsets[slot] = record[1][0]
            draws += 1
            yield out
        for uniform in uniforms:  # the input has ended
            if not items:
                break
            slot = int(uniform * len(items))
            out = items[slot]
            items[slot], files[slot], offsets[slot] = items[-1], files[-1], offsets[-1]
            items.pop(), files.pop(), offsets.pop()
            draws += 1
            yield out


class Epochs:
    """The iteration count, ``set_epoch`` and ``state_dict``/``load_state_dict`` of a dataset.

    ``state_dict()`` describes this object's latest iteration (in a DataLoader worker, that
    worker's part of the epoch): ``{"next_iteration": n}`` plus, while one runs, ``"resume"``
    (the identity and position of that iteration). ``load_state_dict`` makes the next ``iter()`` continue
    that iteration, or start the next one when it had ended.
    """

    epoch: Optional[int] = None  # set_epoch's value
    _iterations = 0  # iterations begun by this object in this process
    _running: Optional[dict] = None  # the running iteration's identity (iteration, key, shard)
    _pending: Optional[dict] = None  # a loaded state, for the next iteration
    _where: Callable[[], dict]  # the running iteration's position

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_running", None)  # a copy (a spawned DataLoader worker) starts its own iterations
        state.pop("_where", None)
        return state

    def set_epoch(self, epoch: int) -> None:
        """Fix the order of the next iterations to that of epoch ``epoch`` (as ``DistributedSampler.set_epoch``);
        without it every iteration gets a new order."""
        self.epoch = epoch

    def _begin(self, shard: Shard, where: Callable[[], dict], shuffle: bool) -> tuple[dict, Optional[dict]]:
        """Start an iteration: its identity (number, keys when ``shuffle``, shard) and the saved position
        to resume (or None); ``where()`` will tell its position."""
        pending, self._pending = self._pending, None
        if pending is not None:
            if list(pending["shard"]) != list(shard):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: the state was saved by reader {pending['shard'][0]} of "
                    f"{pending['shard'][1]} (DataLoader workers x ranks), this is reader {shard.index} of {shard.count}"
                )
            running = {key: pending[key] for key in ("iteration", "key", "file_key", "shard")}
        else:
            key, file_key = iteration_keys(getattr(self, "seed", None), self.epoch, self._iterations) if shuffle \
                else (None, None)
            running = {"iteration": self._iterations, "key": key, "file_key": file_key, "shard": list(shard)}
        self._iterations = running["iteration"] + 1
        self._running, self._where = running, where
        return running, pending

    def _end(self, running: dict) -> None:
        """Mark iteration ``running`` as ended (its state no longer needs a position)."""
        if self._running is running:
            self._running = None

    def state_dict(self) -> dict:
        """The position of this object's latest iteration: small (offsets and counts, no records)."""
        state: dict = {"kind": type(self).__name__, "next_iteration": self._iterations}
        if self._running is not None:
            state["resume"] = {**self._running, **self._where()}
        elif self._pending is not None:
            state["resume"] = self._pending
            state["next_iteration"] = self._pending["iteration"] + 1
        return state

    def load_state_dict(self, state: dict) -> None:
        """Resume from ``state_dict()``'s result at the next ``iter()``."""
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a state of a {type(self).__name__}, "
                             f"got one of {state.get('kind')!r}")
        self._iterations, self._pending, self._running = int(state["next_iteration"]), state.get("resume"), None


class RowCursor:
    """Where a reader of CSV byte ranges stands: the range to read next and the rows of the
    ranges read but not all yielded (``[range number, byte offset, block, skipped line
    indices, row count]``), ``used`` rows of the first one yielded. Each row is one line of its
    block; the offset of the next row is found only when a state is asked for."""

    def __init__(self, state: Optional[dict] = None) -> None:
        self.next = int(state["split"]) if state else 0
        self.resume_at: Optional[int] = None if state is None or state["offset"] is None else int(state["offset"])
        self.pieces: collections.deque = collections.deque()
        self.used = 0
        self._next_offset: Optional[int] = None  # where the range self.next goes on, when read in part
        self._starts: tuple[Any, np.ndarray] = (None, np.zeros(0, np.int64))  # the first piece's row offsets

    def read(self, split: int, offset: int, block: bytes, skipped: list[int], rows: int, last: bool = True) -> None:
        """Range ``split`` was read from ``offset``: ``block``, decoded into ``rows`` rows (lines
        ``skipped`` left out as bad rows); not ``last`` when more of the range follows (a
        compressed file, read block by block)."""
        self._drop_yielded()
        self.next, self._next_offset = (split + 1, None) if last else (split, offset + len(block))
        if rows:
            self.pieces.append((split, offset, block, skipped, rows))

    def _drop_yielded(self) -> None:
        while self.pieces and self.used >= self.pieces[0][4]:
            self.used -= self.pieces.popleft()[4]

    def state(self) -> dict:
        """``{"split": range number, "offset": byte offset of its next row, or None: its start}``."""
        self._drop_yielded()
        if not self.pieces:
            return {"split": self.next, "offset": self._next_offset}
        piece = self.pieces[0]
        if self._starts[0] is not piece:
            self._starts = (piece, _row_starts(piece[2], piece[3]))
        return {"split": piece[0], "offset": piece[1] + int(self._starts[1][self.used])}


def _row_starts(block: bytes, skipped: list[int]) -> np.ndarray:
    """Byte offsets in ``block`` of the lines that became rows: not blank (empty, or a lone ``\\r``), not skipped."""
    data = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    if len(data) and data[-1] != ord("\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    blank = (ends - starts == 0) | ((ends - starts == 1) & (data[np.minimum(starts, len(data) - 1)] == ord("\r")))
    kept = ~blank
    kept[skipped] = False
    return starts[kept]


__all__ = ["DRAW_BLOCK", "Epochs", "RowCursor", "ShuffleBuffer", "iteration_keys", "permutation"]
