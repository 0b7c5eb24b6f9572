"""Resumable iteration with torchdata's StatefulDataLoader: a run stopped after K batches and
resumed from ``state_dict()`` yields exactly what the uninterrupted run would have yielded next,
reading on from byte offsets instead of from the start."""
from __future__ import annotations

import gzip
import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from loaders.csv_dataset import CSVDataset
from loaders.tfrecord import IndexedTFRecordDataset, TFRecordDataset, TFRecordWriter, read_index
from loaders.tfrecord.index import index_path
from loaders.tfrecord.format import HEADER_SIZE

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


def write(folder, files, per_file, index=True, compression=None):
    """Files of raw records ``b"file:n"`` (different lengths per file)."""
    paths = [str(folder / f"part-{f}.tfrecord{'.gz' if compression else ''}") for f in range(files)]
    for f, path in enumerate(paths):
        with TFRecordWriter(path, compression=compression, index=index) as writer:
            for n in range(per_file + f):
                writer.write(f"{f}:{n}".encode())
    return paths


def records(batch):
    return [bytes(record) for record in batch]


def drive(loader, ids, stop=None, state=None):
    """The ids of what ``loader`` yields (from ``state`` when given), and its state after ``stop``
    batches (then it stops there)."""
    if state is not None:
        loader.load_state_dict(state)
    got = []
    for number, batch in enumerate(loader):
        got.extend(ids(batch))
        if number + 1 == stop:
            return got, loader.state_dict()
    return got, None


def run(dataset, workers, batch_size, stop=None, state=None, torch_seed=0):
    """The records a StatefulDataLoader yields (from ``state`` when given), and its state after
    ``stop`` batches (then it stops there)."""
    torch.manual_seed(torch_seed)  # the loader's per-epoch seed, for shuffling without seed=
    loader = StatefulDataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                multiprocessing_context="fork" if workers else None)
    return drive(loader, records, stop, state)


def corrupt(folder, yielded):
    """Overwrite the data of every yielded record in place (found through the index files), so
    that reading one again fails its CRC: whoever resumes must seek past them."""
    for record in yielded:
        f, n = record.decode().split(":")
        path = folder / f"part-{f}.tfrecord"
        offset, _ = read_index(index_path(str(path)))[int(n)]
        with open(path, "r+b") as handle:
            handle.seek(int(offset) + HEADER_SIZE)
            handle.write(b"#" * len(record))


LAYOUTS = {  # name: (files, records per file, index files, compression)
    "whole files": (4, 9, True, None),
    "one indexed file": (1, 37, True, None),
    "one file without index": (1, 37, False, None),
    "gzip files": (3, 9, False, "GZIP"),
}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [0, 8])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_tfrecord_dataset_resumes_where_it_stopped(tmp_path, layout, shuffle, workers):
    files, per_file, index, compression = LAYOUTS[layout]
    pattern = write(tmp_path, files, per_file, index, compression)
    make = lambda: TFRecordDataset(pattern, raw=True, shuffle_buffer=shuffle, seed=5 if shuffle else None, cycle_length=2)
    full, _ = run(make(), workers, 3)
    first, state = run(make(), workers, 3, stop=4)
    if index:
        corrupt(tmp_path, first)  # readers seek to their offsets: none reads these bytes again
    rest, _ = run(make(), workers, 3, state=state)
    assert first + rest == full
    assert sorted(full) == sorted(f"{f}:{n}".encode() for f in range(files) for n in range(per_file + f))


@pytest.mark.parametrize("workers", [0, 2])
def test_tfrecord_batches_resume_and_the_next_epoch_follows(tmp_path, workers):
    pattern = write(tmp_path, 3, 10)
    make = lambda: TFRecordDataset(pattern, raw=True, batch_size=4, shuffle_buffer=6, seed=1)

    def epochs(dataset, stop=None, state=None):
        torch.manual_seed(0)
        loader = StatefulDataLoader(dataset, batch_size=None, num_workers=workers,
                                    multiprocessing_context="fork" if workers else None)
        if state is not None:
            loader.load_state_dict(state)
        got = []
        for epoch in range(2):
            for number, batch in enumerate(loader):
                got.append(records(batch))
                if epoch == 0 and number + 1 == stop:
                    return got, loader.state_dict()
        return got, None

    full, _ = epochs(make())
    first, state = epochs(make(), stop=2)
    rest, _ = epochs(make(), state=state)
    assert first + rest == full
    assert sorted(full[: len(full) // 2]) != full[: len(full) // 2]


def test_state_is_small_and_names_the_reader(tmp_path):
    pattern = write(tmp_path, 2, 50)
    dataset = TFRecordDataset(pattern, raw=True, shuffle_buffer=16, seed=0)
    items = iter(dataset)
    for _ in range(20):
        next(items)
    state = dataset.state_dict()
    resume = state["resume"]
    assert state["kind"] == "TFRecordDataset" and resume["shard"] == [0, 1]
    assert resume["shuffle"]["positions"].shape == (16, 2) and resume["shuffle"]["draws"] == 20
    assert len(resume["cursor"]["active"]) == 2  # [file, next byte offset, skip] of each open file
    other = TFRecordDataset(pattern, raw=True, shuffle_buffer=16, seed=0)
    state["resume"]["shard"] = [1, 2]
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="saved by reader 1 of 2 .* this is reader 0 of 1"):
        iter(other)
    with pytest.raises(ValueError, match="expected a state of a TFRecordDataset, got one of 'CSVDataset'"):
        other.load_state_dict({"kind": "CSVDataset", "next_iteration": 0})


@pytest.mark.parametrize("workers", [0, 2])
def test_indexed_dataset_resumes_through_the_sampler_state(tmp_path, workers):
    pattern = write(tmp_path, 2, 20)
    reads = []
    make = lambda: IndexedTFRecordDataset(pattern, raw=True, transform=lambda r: reads.append(r) or r)
    full, _ = run_map(make(), workers)
    first, state = run_map(make(), workers, stop=3)
    reads.clear()
    rest, _ = run_map(make(), workers, state=state)
    assert first + rest == full and sorted(full) == sorted(set(full)) and len(full) == 41
    if not workers:
        assert len(reads) == len(rest)  # only the remaining records are read
    changed = IndexedTFRecordDataset(pattern[:1], raw=True)
    with pytest.raises(ValueError, match="saved for 2 files"):
        changed.load_state_dict(state_of(make()))


def state_of(dataset):
    return dataset.state_dict()


def run_map(dataset, workers, stop=None, state=None):
    torch.manual_seed(0)
    loader = StatefulDataLoader(dataset, batch_size=4, shuffle=True, num_workers=workers,
                                multiprocessing_context="fork" if workers else None)
    return drive(loader, records, stop, state)


def write_csv(path, rows=60, bad=True):
    """A CSV file of rows ``id,value`` with a blank line, a CRLF line and a bad row among them;
    returns each row's (byte offset, line)."""
    lines, where, offset = [b"id,value\n"], {}, 9
    for n in range(rows):
        line = f"{n},{n * 0.5}\n".encode() if n % 7 else f"{n},{n * 0.5}\r\n".encode()
        if n == 11:
            lines.append(b"\n")
            offset += 1
        if n == 23 and bad:
            lines.append(b"23,oops\n")
            offset += 8
            continue
        where[n] = (offset, line)
        lines.append(line)
        offset += len(line)
    path.write_bytes(b"".join(lines))
    return where


def csv_ids(item):
    features = item[0] if isinstance(item, (tuple, list)) else item
    return [int(v) for v in features.reshape(-1, 2)[:, 0].tolist()]


def run_csv(dataset, workers, stop=None, state=None):
    loader = StatefulDataLoader(dataset, batch_size=None if dataset.batch_size else 4, num_workers=workers,
                                multiprocessing_context="fork" if workers else None)
    return drive(loader, csv_ids, stop, state)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("batch_size", [None, 5])
def test_csv_dataset_resumes_mid_range_with_blank_and_bad_rows(tmp_path, batch_size, workers):
    write_csv(tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv", rows=30)
    make = lambda: CSVDataset([tmp_path / "a.csv", tmp_path / "b.csv"], [0, 0.0], batch_size=batch_size,
                              chunk_bytes=100, on_bad_row="skip")
    full, _ = run_csv(make(), workers)
    first, state = run_csv(make(), workers, stop=3)
    rest, _ = run_csv(make(), workers, state=state)
    assert first + rest == full
    assert sorted(full) == sorted([n for n in range(60) if n != 23] + [n for n in range(30) if n != 23])


@pytest.mark.parametrize("workers", [0, 2])
def test_csv_resume_seeks_past_the_rows_read(tmp_path, workers):
    where = write_csv(tmp_path / "a.csv", rows=200, bad=False)
    make = lambda: CSVDataset(tmp_path / "a.csv", [0, 0.0], batch_size=7, chunk_bytes=300)
    full, _ = run_csv(make(), workers)
    first, state = run_csv(make(), workers, stop=5)
    with open(tmp_path / "a.csv", "r+b") as handle:  # rows read again would now be bad rows
        for n in first:
            offset, line = where[n]
            handle.seek(offset)
            handle.write(b"x" * len(line.rstrip()))
    rest, _ = run_csv(make(), workers, state=state)
    assert first + rest == full and len(first) == 35
    with pytest.raises(ValueError, match=r"a.csv:\d+: "):
        list(make())  # the check bites: reading from the start meets them


@pytest.mark.parametrize("workers", [0, 2])
def test_state_survives_torch_save_and_a_weights_only_load(tmp_path, workers):
    pattern = write(tmp_path, 2, 20)
    make = lambda: TFRecordDataset(pattern, raw=True, shuffle_buffer=5)  # no seed: the key is in the state
    full, _ = run(make(), workers, 3)
    first, state = run(make(), workers, 3, stop=2)
    torch.save(state, tmp_path / "loader.pt")
    rest, _ = run(make(), workers, 3, state=torch.load(tmp_path / "loader.pt", weights_only=True), torch_seed=1)
    assert first + rest == full


@pytest.mark.parametrize("where", ["local", "memory"])
@pytest.mark.parametrize("batch_size", [None, 5])
def test_compressed_csv_resumes_at_every_stop(tmp_path, where, batch_size):
    """A compressed file is read whole, block by block: a state taken between blocks or inside
    one resumes at the next row, from a local file or a URL."""
    import fsspec

    write_csv(tmp_path / "a.csv", rows=80)
    raw = (tmp_path / "a.csv").read_bytes()
    if where == "local":
        path = str(tmp_path / "a.csv.gz")
        (tmp_path / "a.csv.gz").write_bytes(gzip.compress(raw))
    else:
        path = f"memory://resume-{tmp_path.name}/a.csv.gz"
        with fsspec.open(path, "wb") as handle:
            handle.write(gzip.compress(raw))
    make = lambda: CSVDataset(path, [0, 0.0], batch_size=batch_size, chunk_bytes=64, on_bad_row="skip")
    full, _ = run_csv(make(), 0)
    assert sorted(full) == [n for n in range(80) if n != 23]
    for stop in range(1, len(full) // (batch_size or 4)):
        first, state = run_csv(make(), 0, stop=stop)
        rest, _ = run_csv(make(), 0, state=state)
        assert first + rest == full, stop
