"""TFRecord datasets: exactly-once sharding over ranks and workers, shuffling, index files, collate."""
from __future__ import annotations

import collections
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from torch.utils.data import DataLoader

from loaders.errors import DataLossError, InvalidArgumentError
from loaders.sharding import Shard
from loaders.tfrecord import (
    FixedLenFeature, IndexedTFRecordDataset, RaggedBytes, RaggedTensor, TFRecordDataset, TFRecordWriter, VarLenFeature,
    collate_lists, collate_padded, index_path, iter_records, read_index,
)
from loaders.tfrecord import dataset as dataset_module
from loaders.tfrecord.format import encode_record

FEATURES = {"file": FixedLenFeature([], torch.int64), "n": FixedLenFeature([], torch.int64)}


def write_files(folder, files=8, per_file=10, **writer_args):
    paths = []
    for f in range(files):
        suffix = {"GZIP": ".gz", "ZLIB": ".zlib"}.get(writer_args.get("compression"), "")
        path = folder / f"part-{f:05d}-of-{files:05d}.tfrecord{suffix}"
        with TFRecordWriter(path, **writer_args) as writer:
            for n in range(per_file + f):  # files of different lengths
                writer.write({"file": f, "n": n, "tokens": list(range(n % 4))})
        paths.append(path)
    return paths


def seen(dataset):
    return [(int(item["file"]), int(item["n"])) for item in dataset]


def expected(files=8, per_file=10):
    return sorted((f, n) for f in range(files) for n in range(per_file + f))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_eight_files_two_ranks_three_workers_read_every_record_once(tmp_path, monkeypatch):
    write_files(tmp_path)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    got = []
    for rank in range(2):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        dataset = TFRecordDataset(str(tmp_path / "*.tfrecord"), FEATURES)
        loader = DataLoader(dataset, batch_size=4, num_workers=3, multiprocessing_context="fork")
        for batch in loader:
            got.extend(zip(batch["file"].tolist(), batch["n"].tolist()))
    assert sorted(got) == expected() and len(got) == len(set(got))


@pytest.mark.parametrize("count", [1, 3, 6, 11])
def test_fewer_or_more_files_than_shards_still_exactly_once(tmp_path, monkeypatch, count):
    write_files(tmp_path, files=3, per_file=5)
    got = []
    for index in range(count):
        monkeypatch.setattr(dataset_module, "current_shard", lambda index=index: Shard(index, count))
        got.extend(seen(TFRecordDataset(sorted(tmp_path.glob("*.tfrecord")), FEATURES)))
    assert sorted(got) == expected(3, 5) and len(got) == len(set(got))


def test_files_are_interleaved(tmp_path):
    write_files(tmp_path, files=3, per_file=2)
    order = seen(TFRecordDataset(str(tmp_path / "*.tfrecord"), FEATURES, cycle_length=2))
    assert order[:4] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert sorted(order) == expected(3, 2)


def test_shuffle_buffer_is_seeded_per_epoch(tmp_path):
    write_files(tmp_path, files=2, per_file=20)
    dataset = TFRecordDataset(str(tmp_path / "*.tfrecord"), FEATURES, shuffle_buffer=8, seed=3)
    first, after = seen(dataset), seen(dataset)  # a new order each iteration (reshuffle_each_iteration)
    assert first != after and seen(TFRecordDataset(str(tmp_path / "*.tfrecord"), FEATURES, shuffle_buffer=8, seed=3)) == first
    dataset.set_epoch(1)
    second, again = seen(dataset), seen(dataset)
    assert second == again == after  # set_epoch(n) gives the order that the n-th iteration gets by itself
    assert sorted(first) == sorted(second) == expected(2, 20)
    assert first != sorted(first)
    clone = pickle.loads(pickle.dumps(dataset))  # as DataLoader workers started by spawn receive it
    assert seen(clone) == second


def test_transform_raw_and_compressed_files(tmp_path):
    write_files(tmp_path, files=2, per_file=3, compression="GZIP")
    labels = list(TFRecordDataset(str(tmp_path / "*"), FEATURES, transform=lambda ex: int(ex["n"]) * 10))
    assert sorted(labels) == [0, 0, 10, 10, 20, 20, 30]
    raw = list(TFRecordDataset(str(tmp_path / "*"), raw=True))
    assert len(raw) == 7 and all(isinstance(record, bytes) for record in raw)


def test_errors_name_the_file_and_record(tmp_path):
    (path,) = write_files(tmp_path, files=1, per_file=3)
    with pytest.raises(InvalidArgumentError, match=rf"{path}: record at byte offset 0: feature 'n' \(float32\)"):
        list(TFRecordDataset(path, {"n": FixedLenFeature([], torch.float32)}))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataLossError, match=f"{path}: corrupted record data at byte offset"):
        list(TFRecordDataset(path, FEATURES))
    with pytest.raises(FileNotFoundError, match="no file matches"):
        TFRecordDataset(str(tmp_path / "*.nothing"))


def test_indexed_dataset_random_access(tmp_path):
    paths = write_files(tmp_path, files=3, per_file=4)
    dataset = IndexedTFRecordDataset(paths, FEATURES)
    assert len(dataset) == 4 + 5 + 6
    assert all(index_path(p) for p in paths)
    assert (int(dataset[4]["file"]), int(dataset[4]["n"])) == (1, 0)
    assert (int(dataset[-1]["file"]), int(dataset[-1]["n"])) == (2, 5)
    with pytest.raises(IndexError, match="record 15 is out of range for 15 records"):
        dataset[15]
    loader = DataLoader(dataset, batch_size=5, shuffle=True, num_workers=2, multiprocessing_context="fork")
    got = [pair for batch in loader for pair in zip(batch["file"].tolist(), batch["n"].tolist())]
    assert sorted(got) == expected(3, 4)


def test_writer_index_matches_the_tfrecord_package_format(tmp_path):
    from tfrecord.tools.tfrecord2idx import create_index as package_create_index

    (path,) = write_files(tmp_path, files=1, per_file=5, index=True)
    package_create_index(str(path), str(tmp_path / "package.idx"))
    assert open(index_path(path)).read() == (tmp_path / "package.idx").read_text()
    framed = [[offset, len(data) + 16] for offset, data in iter_records(path)]
    assert read_index(index_path(path)).tolist() == framed and len(framed) == 5


def test_index_command_line_and_stale_index(tmp_path):
    paths = write_files(tmp_path, files=2, per_file=2)
    done = subprocess.run([sys.executable, "-m", "loaders.tfrecord.index", *map(str, paths)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert len(read_index(index_path(paths[1]))) == 3
    first, second = read_index(index_path(paths[0]))[:, 1]
    with open(index_path(paths[0]), "w") as f:  # ends where the file does, but splits it wrongly
        f.write(f"0 {first + 1}\n{first + 1} {second - 1}\n")
    with pytest.raises(DataLossError, match=f"expected {first + 1} bytes as its index says"):
        IndexedTFRecordDataset(paths[0], FEATURES)[0]
    with open(index_path(paths[0]), "w") as f:  # a record was appended after indexing
        f.write(f"0 {first}\n")
    with pytest.raises(DataLossError, match=f"out of date: its records end at byte offset {first} but"):
        IndexedTFRecordDataset(paths[0], FEATURES)
    with open(index_path(paths[0]), "w") as f:
        f.write(f"0 {first}\noops\n")
    with pytest.raises(DataLossError, match="bad index line 2"):
        IndexedTFRecordDataset(paths[0], FEATURES)


def test_indexed_dataset_refuses_compressed_files(tmp_path):
    write_files(tmp_path, files=1, per_file=1, compression="ZLIB")
    with pytest.raises(InvalidArgumentError, match="random access needs an uncompressed TFRecord file"):
        IndexedTFRecordDataset(str(tmp_path / "*"))


def test_collate_variable_length_features(tmp_path):
    write_files(tmp_path, files=1, per_file=4)
    dataset = TFRecordDataset(str(tmp_path / "*"), {**FEATURES, "tokens": VarLenFeature(torch.int64)})
    padded = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate_padded)))
    assert padded["tokens"].tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 2]]
    assert padded["tokens_length"].tolist() == [0, 1, 2, 3] and padded["n"].tolist() == [0, 1, 2, 3]
    lists = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate_lists)))
    assert [t.tolist() for t in lists["tokens"]] == [[], [0], [0, 1], [0, 1, 2]]
    counts = collections.Counter(type(v).__name__ for v in lists.values())
    assert counts == {"Tensor": 2, "list": 1}


@pytest.mark.parametrize("count", [3, 7, 40])
def test_fewer_files_than_shards_split_files_by_their_index(tmp_path, monkeypatch, count):
    write_files(tmp_path, files=2, per_file=12, index=True)
    opened = []
    real = dataset_module.iter_records
    monkeypatch.setattr(dataset_module, "iter_records", lambda *a, **k: opened.append(k) or real(*a, **k))
    got = []
    for index in range(count):
        monkeypatch.setattr(dataset_module, "current_shard", lambda index=index: Shard(index, count))
        mine = seen(TFRecordDataset(str(tmp_path / "*.tfrecord"), FEATURES))
        for f in (0, 1):  # each reader's share of a file is one contiguous run of its records
            numbers = [n for file, n in mine if file == f]
            assert numbers == list(range(min(numbers, default=0), min(numbers, default=0) + len(numbers)))
        got.extend(mine)
    assert sorted(got) == expected(2, 12) and len(got) == len(set(got))
    assert opened and all("start" in k and "stop" in k for k in opened)  # byte ranges, never whole files
    total = sum(k["stop"] - k["start"] for k in opened)
    assert total == sum(p.stat().st_size for p in tmp_path.glob("*.tfrecord"))  # every byte read once


def test_fewer_files_than_shards_without_index_or_compressed_still_exactly_once(tmp_path, monkeypatch):
    (tmp_path / "gzip").mkdir()
    plain = write_files(tmp_path, files=1, per_file=9)
    packed = write_files(tmp_path / "gzip", files=1, per_file=9, compression="GZIP", index=True)
    for paths in (plain, packed):
        got = []
        for index in range(4):
            monkeypatch.setattr(dataset_module, "current_shard", lambda index=index: Shard(index, 4))
            got.extend(seen(TFRecordDataset(paths, FEATURES)))
        assert sorted(got) == expected(1, 9) and len(got) == len(set(got))


def test_stale_index_is_refused_when_splitting_a_file(tmp_path, monkeypatch):
    (path,) = write_files(tmp_path, files=1, per_file=5, index=True)
    with open(path, "ab") as f:  # a record appended after the index was written
        f.write(encode_record(b"late"))
    monkeypatch.setattr(dataset_module, "current_shard", lambda: Shard(0, 2))
    with pytest.raises(DataLossError, match=r"tfindex: out of date: .* rewrite it with python -m loaders.tfrecord.index"):
        seen(TFRecordDataset(path, FEATURES))


def test_iter_records_byte_range(tmp_path):
    (path,) = write_files(tmp_path, files=1, per_file=6, index=True)
    table = read_index(index_path(path))
    start, stop = int(table[2, 0]), int(table[4].sum())
    assert [offset for offset, _ in iter_records(path, start=start, stop=stop)] == table[2:5, 0].tolist()
    assert list(iter_records(path, start=stop, stop=stop)) == []
    with pytest.raises(DataLossError, match=f"truncated record at byte offset {table[4, 0]}"):
        list(iter_records(path, start=start, stop=stop - 1))  # a range that cuts its last record
    with pytest.raises(DataLossError, match=f"byte offset {start + 1}"):
        list(iter_records(path, start=start + 1))  # not a record boundary: the length CRC fails
    with pytest.raises(InvalidArgumentError, match="needs an uncompressed file"):
        list(iter_records(path, "GZIP", start=start))
    size = path.stat().st_size
    with pytest.raises(InvalidArgumentError, match=f"start={size + 1} is past the end of the file"):
        list(iter_records(path, start=size + 1))
    with pytest.raises(InvalidArgumentError, match="expected 0 <= start <= stop"):
        list(iter_records(path, start=stop, stop=start))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_one_indexed_file_split_over_dataloader_workers(tmp_path):
    (path,) = write_files(tmp_path, files=1, per_file=50, index=True)
    loader = DataLoader(TFRecordDataset(path, FEATURES), batch_size=None, num_workers=3, multiprocessing_context="fork")
    got = [(int(item["file"]), int(item["n"])) for item in loader]
    assert sorted(got) == expected(1, 50) and len(got) == len(set(got))
    assert got[:3] == [(0, 0), (0, 16), (0, 33)]  # workers start at their own thirds of the file


def test_batch_size_yields_decoded_batches_like_the_record_stream(tmp_path):
    write_files(tmp_path, files=3, per_file=4)  # 4 + 5 + 6 records
    features = {**FEATURES, "tokens": VarLenFeature(torch.int64)}
    records = list(TFRecordDataset(str(tmp_path / "*"), features, shuffle_buffer=5, seed=1))
    batches = list(TFRecordDataset(str(tmp_path / "*"), features, shuffle_buffer=5, seed=1, batch_size=4))
    assert [len(batch["n"]) for batch in batches] == [4, 4, 4, 3]
    assert torch.equal(torch.cat([batch["file"] for batch in batches]), torch.stack([r["file"] for r in records]))
    assert torch.equal(torch.cat([batch["n"] for batch in batches]), torch.stack([r["n"] for r in records]))
    assert [t.tolist() for batch in batches for t in batch["tokens"]] == [r["tokens"].tolist() for r in records]
    kept = list(TFRecordDataset(str(tmp_path / "*"), features, batch_size=4, drop_last=True, transform=lambda b: b["n"]))
    assert [len(n) for n in kept] == [4, 4, 4]
    raw = list(TFRecordDataset(str(tmp_path / "*"), raw=True, batch_size=10))
    assert [len(batch) for batch in raw] == [10, 5] and all(isinstance(r, bytes) for r in raw[0])
    with pytest.raises(InvalidArgumentError, match="batch_size=4: expected .* a feature description"):
        TFRecordDataset(str(tmp_path / "*"), batch_size=4)
    with pytest.raises(InvalidArgumentError, match="batch_size=0: expected an integer >= 1"):
        TFRecordDataset(str(tmp_path / "*"), FEATURES, batch_size=0)


def test_batch_errors_name_the_record(tmp_path):
    (path,) = write_files(tmp_path, files=1, per_file=3)
    with TFRecordWriter(path) as writer:
        for n in range(5):
            writer.write({"file": 0, "n": n if n != 3 else [1, 2]})
    offset = [offset for offset, _ in iter_records(path)][3]  # the record with two values of 'n'
    with pytest.raises(InvalidArgumentError, match=rf"{path}: record at byte offset {offset}: feature 'n' \(int64\)"):
        list(TFRecordDataset(path, FEATURES, batch_size=4))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_batches_through_dataloader_workers(tmp_path):
    (path,) = write_files(tmp_path, files=1, per_file=40, index=True)
    dataset = TFRecordDataset(path, FEATURES, batch_size=8)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = [(int(f), int(n)) for batch in loader for f, n in zip(batch["file"], batch["n"])]
    assert sorted(got) == expected(1, 40) and len(got) == len(set(got))


def test_batches_hold_strings_and_var_len_features_as_ragged_types(tmp_path):
    path = tmp_path / "strings.tfrecord"
    with TFRecordWriter(path) as writer:
        for n in range(6):
            writer.write({"n": n, "name": b"record-%d" % n, "tokens": list(range(n % 3)), "tags": [b"t"] * (n % 2)})
    features = {"n": FixedLenFeature([], torch.int64), "name": FixedLenFeature([], "string"),
                "tokens": VarLenFeature(torch.int64), "tags": VarLenFeature("string")}
    records = list(TFRecordDataset(path, features))
    first, second = TFRecordDataset(path, features, batch_size=4)
    assert type(first["name"]) is RaggedBytes and type(first["tokens"]) is RaggedTensor
    assert type(first["tags"]) is RaggedTensor and isinstance(first["tags"].values, RaggedBytes)
    assert list(first["name"]) + list(second["name"]) == [r["name"] for r in records]
    assert first["tokens"] == [r["tokens"] for r in records[:4]] and second["tokens"].tolist() == [[0], [0, 1]]
    assert first["tags"].tolist() == [[], [b"t"], [], [b"t"]]
    (raw,) = TFRecordDataset(path, raw=True, batch_size=10)
    assert type(raw) is RaggedBytes and list(raw) == [data for _, data in iter_records(path)]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_batches_cross_dataloader_workers_as_one_shared_block(tmp_path):
    (path,) = write_files(tmp_path, files=1, per_file=40, index=True)
    features = {**FEATURES, "tokens": VarLenFeature(torch.int64)}
    loader = DataLoader(TFRecordDataset(path, features, batch_size=8), batch_size=None, num_workers=2,
                        multiprocessing_context="fork")
    batches = list(loader)
    for batch in batches:  # one storage per batch crossed, so its tensors are views of one block here too
        tensors = [batch["file"], batch["n"], batch["tokens"].values, batch["tokens"].row_splits]
        assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1
    got = sorted((int(n), t.tolist()) for batch in batches for n, t in zip(batch["n"], batch["tokens"]))
    assert got == [(n, list(range(n % 4))) for n in range(40)]
