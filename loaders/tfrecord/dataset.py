"""``torch.utils.data`` datasets over TFRecord files: streaming (``TFRecordDataset``) and indexed.

``TFRecordDataset`` is an ``IterableDataset`` that splits the work with
:func:`loaders.sharding.current_shard` so that, over all DataLoader workers and
``torch.distributed`` ranks, every record is read exactly once per epoch under every DataLoader
start method (fork, spawn, forkserver): whole files round robin when there are at least as many
files as readers; otherwise every reader reads its own contiguous share of each file's records,
found in the file's index (``FILE.tfindex``), so no byte is read twice. Epochs are reshuffled and
resumable (:mod:`loaders.resume`). A file without an index (or a compressed one) cannot be entered in the
middle: each reader then scans it and keeps every ``count``-th record.
``IndexedTFRecordDataset`` is map-style: ``len()`` and random access through index files
(created when missing), through files each process opens for itself.
"""
from __future__ import annotations

import bisect
import collections
import copy
import itertools
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import numpy as np
from torch.utils.data import Dataset, IterableDataset

from loaders.errors import DataLossError, InvalidArgumentError
from loaders.files import Paths, RangeReader, StorageOptions, exists, expand_paths, size
from loaders.resume import Epochs, ShuffleBuffer, permutation
from loaders.sharding import RankCarrier, Shard, current_shard, split
from loaders.tfrecord.batches import RaggedBytes, for_transfer, ragged_column
from loaders.tfrecord.example import ExampleDecoder, FeatureSpec
from loaders.tfrecord.format import FOOTER_SIZE, HEADER_SIZE, compression_for, iter_records, read_record_at, record_from_frame
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


class TFRecordDataset(Epochs, IterableDataset):
    """Stream the records of TFRecord files, decoded as Examples by ``features`` (TF's feature specs;
    None decodes every feature; ``raw=True`` yields the serialized bytes).

    ``shuffle_buffer`` > 0 shuffles the files and the records, through a buffer of that size (TF's
    ``shuffle``), in a new order every epoch: fixed by ``seed`` and the epoch (:meth:`set_epoch`, else
    the iteration count; see :mod:`loaders.resume`); ``transform`` is applied to each item.
    ``state_dict()``/``load_state_dict()`` resume an epoch where it stopped (torchdata's
    ``StatefulDataLoader``): files are entered again at their byte offsets.
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
        self._numbers = {name: number for number, name in enumerate(self.files)}
        self._decode = _Decode(features, raw, transform)
        self._rank = RankCarrier()  # the rank, for DataLoader workers started by spawn or forkserver

    def _open(self, number: int, part: Optional[Shard], offset: int, skip: int) -> Iterator[tuple[int, bytes]]:
        """The records of file ``number`` from byte ``offset`` (0: its start), or only those of share
        ``part`` of its records: a byte range found in its index, else every ``part.count``-th record
        after the first ``skip``. A compressed file cannot be entered in the middle: it is read
        from its start and the records before ``offset`` are dropped."""
        name = self.files[number]
        kind, stop, options = compression_for(name, self.compression), None, self.storage_options
        table = None if kind or part is None else _index_of(name, options)
        if table is not None:
            first, last = len(table) * part.index // part.count, len(table) * (part.index + 1) // part.count
            if first == last:
                return iter(())
            offset, stop, part = max(offset, int(table[first, 0])), int(table[last - 1].sum()), None
        if kind:
            records = iter_records(name, kind, self.verify, storage_options=options)
            if offset:
                records = itertools.dropwhile(lambda record: record[0] < offset, records)
        else:
            records = iter_records(name, kind, self.verify, start=offset, stop=stop, storage_options=options)
        return records if part is None else itertools.islice(records, skip, None, part.count)

    def _records(self, cursor: "_Cursor", part: Optional[Shard]) -> Iterator[tuple[str, tuple[int, bytes]]]:
        """``(file, (offset, data))`` of the cursor's files (or share ``part`` of each) interleaved:
        one record from each of ``cycle_length`` open files in turn; ``cursor`` follows."""
        files, queue, names = cursor.files, cursor.active, self.files
        cursor.skip = part.count - 1 if part is not None else 0  # records of other readers after one of ours
        while cursor.next < len(files) or queue:
            while cursor.next < len(files) and len(queue) < self.cycle_length:
                queue.append([files[cursor.next], 0, part.index if part is not None else 0, None, None])
                cursor.next += 1
            entry = queue[0]
            if entry[3] is None:
                entry[3] = self._open(entry[0], part, entry[1], entry[2])
            name = names[entry[0]]
            if self.cycle_length == 1 or len(queue) == 1 and cursor.next == len(files):
                for record in entry[3]:  # one file at a time: the fast path
                    entry[4] = record
                    yield name, record
                queue.popleft()
                continue
            record = next(entry[3], None)
            if record is None:
                queue.popleft()
                continue
            entry[4] = record
            queue.rotate(-1)
            yield name, record

    def _fetch(self, positions: list[tuple[int, int]]) -> list[tuple[str, tuple[int, bytes]]]:
        """The records at ``(file number, byte offset)`` positions (a saved shuffle buffer), read again."""
        found: dict[tuple[int, int], bytes] = {}
        for number in sorted({number for number, _ in positions}):
            name, offsets = self.files[number], {offset for n, offset in positions if n == number}
            kind = compression_for(name, self.compression)
            if kind:
                last = max(offsets)
                records = iter_records(name, kind, self.verify, storage_options=self.storage_options)
                for offset, data in itertools.takewhile(lambda r: r[0] <= last, records):
                    if offset in offsets:
                        found[number, offset] = data
                continue
            reader = RangeReader(name, self.storage_options)
            try:
                for offset in sorted(offsets):
                    found[number, offset] = read_record_at(reader, name, offset, self.verify, size(name, self.storage_options))
            finally:
                reader.close()
        missing = [(self.files[n], offset) for n, offset in positions if (n, offset) not in found]
        if missing:
            raise DataLossError(f"{missing[0][0]}: no record at byte offset {missing[0][1]}, where the saved state "
                                "has one (the file changed since the state was saved)")
        return [(self.files[number], (offset, found[number, offset])) for number, offset in positions]

    def __iter__(self) -> Iterator[Any]:
        shard = current_shard()
        cursor, buffer = _Cursor(), None
        running, saved = self._begin(shard, lambda: {"cursor": cursor.state(), "shuffle": buffer and buffer.state()},
                                     bool(self.shuffle_buffer))
        files = list(range(len(self.files)))
        if self.shuffle_buffer and running["file_key"] is not None:
            files = permutation(len(files), running["file_key"])
        whole = len(self.files) >= shard.count  # else fewer files than readers: a share of every file
        cursor.start(list(split(files, shard)) if whole else files, saved and saved["cursor"])
        records = self._records(cursor, None if whole else shard)
        if self.shuffle_buffer:
            buffer = ShuffleBuffer(self.shuffle_buffer, [*running["key"], shard.index], self._numbers)
            if saved:
                buffer.restore(saved["shuffle"], self._fetch)
            records = buffer.shuffle(records)
        if self.batch_size:
            return self._until_end(self._decode.batches(records, self.batch_size, self.drop_last), running)
        return self._until_end(self._decode.stream(records), running)

    def batched(self, batch_size: int, drop_last: bool = False) -> Optional["TFRecordDataset"]:
        """This dataset decoding ``batch_size`` records at a time (tf.data's map vectorization:
        ``map(parse_single_example).batch`` run as ``batch.map(parse_example)``), where its batches
        equal ``collate_ragged`` of the same records: records or features of fixed length (numbers
        of any shape, scalar strings), no transform. None where they would differ."""
        decoder = self._decode.decoder
        if type(self) is not TFRecordDataset or self.batch_size is not None or self._decode.transform is not None:
            return None
        if decoder is not None and (decoder.specs is None or not all(
                spec.stacked or (spec.scalar and spec.kind == 1) for spec in decoder.specs)):
            return None
        batched = copy.copy(self)
        batched.batch_size, batched.drop_last = batch_size, drop_last
        return batched

    def _until_end(self, items: Iterator[Any], running: dict) -> Iterator[Any]:
        yield from items
        self._end(running)


class _Cursor:
    """Where a reader of a :class:`TFRecordDataset` stands: its files (numbers, in reading order),
    the next one to open, and for each open file ``[number, byte offset and records to skip when
    opened, its record iterator, the last record read]`` in turn order."""

    def __init__(self) -> None:
        self.files: list[int] = []
        self.next, self.skip = 0, 0  # skip: records to skip after one that was read
        self.active: collections.deque = collections.deque()

    def start(self, files: list[int], state: Optional[dict]) -> None:
        """Read ``files`` from their start, or from where ``state`` (a :meth:`state`) stood."""
        self.files = files
        if state:
            self.next = int(state["next"])
            self.active.extend([int(number), int(offset), int(skip), None, None] for number, offset, skip in state["active"])

    def state(self) -> dict:
        """``{"next": files opened, "active": [[number, next byte offset, records to skip], ...]}``."""
        active = [entry[:3] if entry[4] is None else
                  [entry[0], entry[4][0] + len(entry[4][1]) + HEADER_SIZE + FOOTER_SIZE, self.skip]
                  for entry in self.active]
        return {"next": self.next, "active": active}


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


class IndexedTFRecordDataset(Dataset):
    """Map-style access to the records of uncompressed TFRecord files through their index files
    (``FILE.tfindex``, created when missing, refused when out of date): ``len(ds)`` and
    ``ds[i]``, decoded like :class:`TFRecordDataset`. Each process reads through files it opened
    itself, also a DataLoader worker forked after the parent read records; split the records over
    ``torch.distributed`` ranks with ``DistributedSampler``. Remote files (``storage_options``)
    are read one byte range per record, as their index gives it. With torchdata's
    ``StatefulDataLoader`` a run resumes through its sampler's state; :meth:`state_dict` only
    identifies the records."""

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

    def state_dict(self) -> dict:
        """What the records are (files and record counts): the position of a map-style dataset is
        its sampler's, saved by torchdata's ``StatefulDataLoader``; this lets a resume check that
        the data is the same."""
        return {"kind": type(self).__name__, "files": list(self.files), "records": [len(t) for t in self._tables]}

    def load_state_dict(self, state: dict) -> None:
        """Refuse a state saved for other files or other record counts (a changed dataset)."""
        if state != self.state_dict():
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state was saved for {len(state.get('files', []))} files "
                f"({sum(state.get('records', []))} records), this dataset has {len(self.files)} files ({len(self)} records)"
            )

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


__all__ = ["IndexedTFRecordDataset", "TFRecordDataset"]
