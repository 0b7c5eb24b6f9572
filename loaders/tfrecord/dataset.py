"""``torch.utils.data`` datasets over TFRecord files: streaming (``TFRecordDataset``) and indexed.

``TFRecordDataset`` is an ``IterableDataset`` that splits the work with
:func:`loaders.sharding.current_shard` so that, over all DataLoader workers and
``torch.distributed`` ranks, every record is read exactly once per epoch under every DataLoader
start method (fork, spawn, forkserver): whole files round robin when there are at least as many
files as readers; otherwise every reader reads its own contiguous share of each file's records,
found in the file's index (``FILE.tfindex``), so no byte is read twice. A file without an index (or a compressed one) cannot be entered in the
middle: each reader then scans it and keeps every ``count``-th record.
``IndexedTFRecordDataset`` is map-style: ``len()`` and random access through index files
(created when missing), through files each process opens for itself.
"""
from __future__ import annotations

import bisect
import collections
import itertools
import random
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset, IterableDataset

from loaders.errors import DataLossError, InvalidArgumentError
from loaders.files import Paths, RangeReader, StorageOptions, exists, expand_paths, size
from loaders.sharding import RankCarrier, Shard, current_shard, split
from loaders.tfrecord.batches import RaggedBytes, for_transfer, ragged_column
from loaders.tfrecord.example import ExampleDecoder, FeatureSpec
from loaders.tfrecord.format import compression_for, iter_records, record_from_frame
from loaders.tfrecord.index import create_index, index_path, read_index


class _Decode:
    """Turn a ``(path, (offset, data))`` record into what the dataset yields, naming the record on error."""

    def __init__(self, features: Optional[Mapping[str, FeatureSpec]], raw: bool, transform: Optional[Callable]) -> None:
        self.decoder = None if raw else ExampleDecoder(features)
        self.transform = transform

    def __call__(self, path: str, offset: int, data: bytes) -> Any:
        return next(self.stream([(path, (offset, data))]))

    def stream(self, records: Iterable[tuple[str, tuple[int, bytes]]]) -> Iterator[Any]:
        """Decode and transform each ``(file, (offset, data))`` (one loop: the per-record hot path)."""
        decoder, transform = self.decoder, self.transform
        for path, (offset, data) in records:
            if decoder is not None:
                try:
                    data = decoder(data)
                except InvalidArgumentError as exc:
                    raise InvalidArgumentError(f"{path}: record at byte offset {offset}: {exc}") from None
            yield data if transform is None else transform(data)

    def batches(self, records: Iterable[tuple[str, tuple[int, bytes]]], size: int, drop_last: bool) -> Iterator[Any]:
        """Decode and transform ``size`` records at a time (TF's ``batch`` then ``parse_example``):
        fixed-length numbers become one ``[size, *shape]`` tensor per feature, lists of strings or
        of tensors the ragged types, ready to leave a DataLoader worker."""
        decoder, transform, records = self.decoder, self.transform, iter(records)
        while chunk := list(itertools.islice(records, size)):
            if drop_last and len(chunk) < size:
                return
            datas = [data for _, (_, data) in chunk]
            if decoder is None:
                batch: Any = RaggedBytes.from_rows(datas)
            else:
                try:
                    batch = {key: ragged_column(column) for key, column in decoder.batch(datas).items()}
                except InvalidArgumentError:
                    for path, (offset, data) in chunk:  # find the bad record, to name it
                        self(path, offset, data)
                    raise
            yield for_transfer(batch if transform is None else transform(batch))


class TFRecordDataset(IterableDataset):
    """Stream the records of TFRecord files, decoded as Examples by ``features`` (TF's feature specs;
    None decodes every feature; ``raw=True`` yields the serialized bytes).

    ``shuffle_buffer`` > 0 shuffles records through a buffer of that size (TF's ``shuffle``), seeded
    by ``seed``, the epoch (:meth:`set_epoch`) and the shard; ``transform`` is applied to each item.
    ``batch_size`` yields batches instead (TF's ``batch`` + ``parse_example``, about twice as fast
    as decoding records one by one; use ``DataLoader(batch_size=None)``): fixed-length numbers
    as ``[batch, *shape]`` tensors, byte strings as a ``RaggedBytes``, ``VarLenFeature`` numbers
    (and lists of strings) as a ``RaggedTensor`` (both read like the lists they stand for, see
    :mod:`loaders.tfrecord.batches`), ``raw=True`` records as a ``RaggedBytes``; ``drop_last``
    drops a short last batch. In a DataLoader worker a batch's tensors share one shared-memory
    block, so that it crosses to the main process as one transfer.
    ``cycle_length`` files are read at a time, one record from each in turn. With fewer files
    than readers (DataLoader workers x ranks), write index files (``TFRecordWriter(index=True)``
    or ``python -m loaders.tfrecord.index``) so that readers split files instead of each one
    scanning all of them. Files may be any URL of :mod:`loaders.files` (``s3://``, ``gs://``,
    ``https://``...), opened with ``storage_options``; their index files sit beside them.
    """

    def __init__(
        self,
        paths_or_glob: Paths,
        features: Optional[Mapping[str, FeatureSpec]] = None,
        transform: Optional[Callable[[Any], Any]] = None,
        compression: Any = None,
        shuffle_buffer: int = 0,
        seed: Optional[int] = None,
        verify: bool = True,
        *,
        raw: bool = False,
        cycle_length: int = 8,
        batch_size: Optional[int] = None,
        drop_last: bool = False,
        storage_options: StorageOptions = None,
    ) -> None:
        super().__init__()
        self.storage_options = storage_options
        self.files = expand_paths(paths_or_glob, type(self).__name__, storage_options)
        if shuffle_buffer < 0 or cycle_length < 1:
            raise InvalidArgumentError(f"shuffle_buffer must be >= 0 and cycle_length >= 1, got {shuffle_buffer}, {cycle_length}")
        if batch_size is not None and (batch_size < 1 or (features is None and not raw)):
            raise InvalidArgumentError(
                f"batch_size={batch_size}: expected an integer >= 1, with a feature description (features=...) "
                "or raw=True"
            )
        self.batch_size, self.drop_last = batch_size, drop_last
        self.compression, self.shuffle_buffer, self.seed, self.verify = compression, shuffle_buffer, seed, verify
        self.cycle_length = cycle_length
        self.epoch = 0
        self._decode = _Decode(features, raw, transform)
        self._rank = RankCarrier()  # the rank, for DataLoader workers started by spawn or forkserver

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffle order for a new epoch (as ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def _open(self, name: str, part: Optional[Shard]) -> Iterator[tuple[int, bytes]]:
        """The records of file ``name``, or only those of share ``part`` of its records."""
        kind, options = compression_for(name, self.compression), self.storage_options
        if part is None:
            return iter_records(name, kind, self.verify, storage_options=options)
        table = None if kind else _index_of(name, options)
        if table is None:
            return itertools.islice(iter_records(name, kind, self.verify, storage_options=options),
                                    part.index, None, part.count)
        first, last = len(table) * part.index // part.count, len(table) * (part.index + 1) // part.count
        if first == last:
            return iter(())
        return iter_records(name, kind, self.verify, start=int(table[first, 0]), stop=int(table[last - 1].sum()),
                            storage_options=options)

    def _records(self, files: Sequence[str], part: Optional[Shard]) -> Iterator[tuple[str, tuple[int, bytes]]]:
        """``(file, (offset, data))`` of ``files`` (or share ``part`` of each) interleaved: one
        record from each of ``cycle_length`` open files in turn."""
        if len(files) == 1 or self.cycle_length == 1:
            return itertools.chain.from_iterable(zip(itertools.repeat(name), self._open(name, part)) for name in files)
        return self._interleave(files, part)

    def _interleave(self, files: Sequence[str], part: Optional[Shard]) -> Iterator[tuple[str, tuple[int, bytes]]]:
        pending = collections.deque(files)
        active: collections.deque = collections.deque()
        while pending or active:
            while pending and len(active) < self.cycle_length:
                name = pending.popleft()
                active.append((name, self._open(name, part)))
            name, records = active[0]
            record = next(records, None)
            if record is None:
                active.popleft()
            else:
                yield name, record
                active.rotate(-1)

    def _shard_records(self, shard: Shard) -> Iterator[tuple[str, tuple[int, bytes]]]:
        if len(self.files) >= shard.count:
            return self._records(split(self.files, shard), None)
        return self._records(self.files, shard)  # fewer files than readers: a share of every file

    def __iter__(self) -> Iterator[Any]:
        shard = current_shard()
        records = self._shard_records(shard)
        if self.shuffle_buffer:
            seed = random.SystemRandom().randrange(1 << 62) if self.seed is None else self.seed
            records = shuffled(records, self.shuffle_buffer, random.Random(f"{seed}/{self.epoch}/{shard.index}"))
        if self.batch_size:
            return self._decode.batches(records, self.batch_size, self.drop_last)
        return self._decode.stream(records)


def _index_of(name: str, storage_options: StorageOptions = None) -> Optional[np.ndarray]:
    """The index table of an uncompressed file, None when it has no index file; a stale index
    (its records do not end where the file does) is an error."""
    index = index_path(name)
    if not exists(index, storage_options):
        return None
    table = read_index(index, storage_options)
    end, file_size = (int(table[-1].sum()) if len(table) else 0), size(name, storage_options)
    if end != file_size:
        raise DataLossError(
            f"{index}: out of date: its records end at byte offset {end} but {name} has {file_size} bytes; "
            f"rewrite it with python -m loaders.tfrecord.index {name}"
        )
    return table


def shuffled(items: Iterator[Any], buffer_size: int, rng: random.Random) -> Iterator[Any]:
    """TF's ``shuffle(buffer_size)``: fill a buffer, then yield a random element and replace it."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        slot = rng.randrange(buffer_size)
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


class IndexedTFRecordDataset(Dataset):
    """Map-style access to the records of uncompressed TFRecord files through their index files
    (``FILE.tfindex``, created when missing, refused when out of date): ``len(ds)`` and
    ``ds[i]``, decoded like :class:`TFRecordDataset`. Each process reads through files it opened
    itself, also a DataLoader worker forked after the parent read records; split the records over
    ``torch.distributed`` ranks with ``DistributedSampler``. Remote files (``storage_options``)
    are read one byte range per record, as their index gives it."""

    def __init__(
        self,
        paths_or_glob: Paths,
        features: Optional[Mapping[str, FeatureSpec]] = None,
        transform: Optional[Callable[[Any], Any]] = None,
        verify: bool = True,
        *,
        raw: bool = False,
        storage_options: StorageOptions = None,
    ) -> None:
        self.storage_options = storage_options
        self.files = expand_paths(paths_or_glob, type(self).__name__, storage_options)
        self.verify = verify
        self._decode = _Decode(features, raw, transform)
        self._tables = []
        for name in self.files:
            if compression_for(name):
                raise InvalidArgumentError(
                    f"{name}: random access needs an uncompressed TFRecord file, this one is {compression_for(name)}"
                )
            if not exists(index_path(name), storage_options):
                create_index(name, verify=verify, storage_options=storage_options)
            self._tables.append(_index_of(name, storage_options))
        self._starts = [0]
        for table in self._tables:
            self._starts.append(self._starts[-1] + len(table))
        self._readers = [RangeReader(name, storage_options) for name in self.files]  # open per process

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, item: int) -> Any:
        if item < 0:
            item += len(self)
        if not 0 <= item < len(self):
            raise IndexError(f"record {item} is out of range for {len(self)} records")
        number = bisect.bisect_right(self._starts, item) - 1
        offset, length = (int(v) for v in self._tables[number][item - self._starts[number]])
        name = self.files[number]
        frame = self._readers[number].read(offset, offset + length)
        data = record_from_frame(frame, name, offset, self.verify, "its index")
        return self._decode(name, offset, data)


__all__ = ["IndexedTFRecordDataset", "TFRecordDataset", "shuffled"]
