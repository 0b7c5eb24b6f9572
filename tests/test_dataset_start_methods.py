"""Every record exactly once under each DataLoader start method (fork, spawn, forkserver) with two
``torch.distributed`` ranks of three workers each, and datasets used in the parent before forking.

The ranks are real processes (this file run as a script, gloo over a ``file://`` rendezvous); one
pair runs every start method and dataset, and writes the record ids each rank read to a JSON file.
"""
from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset

from loaders import CSVDataset, sharding
from loaders.sharding import RankCarrier, Shard, current_shard, split
from loaders.tfrecord import FixedLenFeature, IndexedTFRecordDataset, TFRecordDataset, TFRecordWriter

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("fork", "spawn", "forkserver")
DATASETS = ("TFRecordDataset", "IndexedTFRecordDataset", "CSVDataset")
WORLD, WORKERS = 2, 3
ID = {"id": FixedLenFeature([], torch.int64)}


def write_tfrecords(folder: Path, sizes: list[int], index: bool) -> list[Path]:
    """TFRecord files holding records numbered 0, 1, ... across files, with a padding feature."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, first = [], 0
    for number, size in enumerate(sizes):
        path = folder / f"part-{number}.tfrecord"
        with TFRecordWriter(path, index=index) as writer:
            for record in range(first, first + size):
                writer.write({"id": record, "pad": b"x" * (record % 7 * 40)})
        paths.append(path)
        first += size
    return paths


def write_data(folder: Path) -> dict[str, int]:
    """The files of each dataset, and how many records each holds."""
    sizes = {"TFRecordDataset": [30, 1, 25, 44], "IndexedTFRecordDataset": [40, 31, 49], "CSVDataset": [150, 7, 90]}
    write_tfrecords(folder / "stream", sizes["TFRecordDataset"], index=True)  # fewer files than 6 readers
    write_tfrecords(folder / "indexed", sizes["IndexedTFRecordDataset"], index=False)
    (folder / "csv").mkdir()
    first = 0
    for number, size in enumerate(sizes["CSVDataset"]):
        lines = [f"{row},{row * 0.5}" for row in range(first, first + size)]
        (folder / "csv" / f"part-{number}.csv").write_text("id,value\n" + "\n".join(lines) + "\n")
        first += size
    return {name: sum(counts) for name, counts in sizes.items()}


class EveryDataset(IterableDataset):
    """``(dataset name, record id)`` of this shard's records of every dataset: one DataLoader reads
    all three, so each start method starts its (slow, under spawn) workers once per rank. The
    streaming datasets split themselves; the indexed one is split here by the same rule, and
    like any dataset that calls ``current_shard`` this one holds a ``RankCarrier``."""

    def __init__(self, folder: Path) -> None:
        self.stream = TFRecordDataset(str(folder / "stream" / "*.tfrecord"), ID)
        self.indexed = IndexedTFRecordDataset(str(folder / "indexed" / "*.tfrecord"), ID)
        self.table = CSVDataset(str(folder / "csv" / "*.csv"), label_column="id", chunk_bytes=300)
        self.rank = RankCarrier()

    def __iter__(self) -> Iterator[tuple[str, int]]:
        yield from (("TFRecordDataset", int(record["id"])) for record in self.stream)
        yield from (("CSVDataset", int(label)) for _, label in self.table)
        for item in split(range(len(self.indexed)), current_shard()):
            yield "IndexedTFRecordDataset", int(self.indexed[item]["id"])


def rank_main(rank: int, folder: Path) -> None:
    """One rank: read every dataset under every start method; write ``{method: [[name, id], ...]}``
    (or the error that stopped it, so that each start method's test reports its own)."""
    warnings.filterwarnings("ignore", "This DataLoader will create")
    dist.init_process_group("gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))
    multiprocessing.set_forkserver_preload(["torch", "loaders.tfrecord", "loaders.csv_dataset"])  # only faster
    read = {}
    for method in METHODS:
        dataset = EveryDataset(folder)
        list(dataset)  # used in this (parent) process first: files opened, layouts learned
        loader = DataLoader(dataset, batch_size=None, num_workers=WORKERS, multiprocessing_context=method)
        try:
            read[method] = list(loader)
        except Exception as error:  # recorded, and raised by this method's tests
            read[method] = f"{type(error).__name__}: {error}"
    dist.destroy_process_group()
    (folder / f"rank{rank}.json").write_text(json.dumps(read))


@pytest.fixture(scope="module")
def read_by_rank(tmp_path_factory) -> tuple[dict[str, int], list[dict[str, list]]]:
    """Run the two ranks once; the records of each dataset, and what each rank read."""
    folder = tmp_path_factory.mktemp("start_methods")
    counts = write_data(folder)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    ranks = [
        subprocess.Popen([sys.executable, __file__, str(rank), str(folder)], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(WORLD)
    ]
    try:
        outputs = [rank.communicate(timeout=400)[0] for rank in ranks]
    finally:
        for rank in ranks:
            rank.kill()
    for rank, output in zip(ranks, outputs):
        assert rank.returncode == 0, output
    return counts, [json.loads((folder / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


@pytest.mark.slow
@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_of_three_workers_read_every_record_once(read_by_rank, method, name):
    counts, by_rank = read_by_rank
    for read in by_rank:
        assert not isinstance(read[method], str), read[method]
    mine = [[record for dataset, record in read[method] if dataset == name] for read in by_rank]
    assert all(mine), "each rank reads its share"
    assert sorted(mine[0] + mine[1]) == list(range(counts[name]))


def test_a_worker_without_a_process_group_takes_the_rank_carried_from_its_parent(monkeypatch):
    monkeypatch.setattr(sharding, "_parent_rank", (1, WORLD))
    assert current_shard() == Shard(0, 1)  # outside DataLoader workers the carried rank plays no part
    monkeypatch.setattr(sharding, "get_worker_info", lambda: SimpleNamespace(id=2, num_workers=WORKERS))
    assert current_shard() == Shard(1 * WORKERS + 2, WORLD * WORKERS)


def test_a_copy_made_in_the_same_process_carries_no_rank(monkeypatch):
    monkeypatch.setattr(sharding, "_parent_rank", None)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: WORLD)
    copy = pickle.dumps(RankCarrier())
    assert pickle.loads(copy).__getstate__()["rank"] == 1
    assert sharding._parent_rank is None


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_indexed_dataset_used_in_the_parent_reopens_its_files_in_forked_workers(tmp_path):
    dataset = IndexedTFRecordDataset(write_tfrecords(tmp_path, [400, 300], index=False), ID)
    assert [int(dataset[i]["id"]) for i in (0, 699, 5)] == [0, 699, 5]  # both files open here
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=WORKERS, multiprocessing_context="fork")
    assert sorted(record for batch in loader for record in batch["id"].tolist()) == list(range(700))
    assert int(dataset[6]["id"]) == 6  # the parent's own files still read right


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_stream_dataset_iterated_in_the_parent_reads_each_record_once_in_forked_workers(tmp_path):
    write_tfrecords(tmp_path, [200, 150], index=True)
    dataset = TFRecordDataset(str(tmp_path / "*.tfrecord"), ID)
    records = iter(dataset)
    assert int(next(records)["id"]) == 0  # a file open, halfway through an iteration
    loader = DataLoader(dataset, batch_size=3, num_workers=WORKERS, multiprocessing_context="fork")
    assert sorted(record for batch in loader for record in batch["id"].tolist()) == list(range(350))
    assert sorted(int(record["id"]) for record in records) == list(range(1, 350))


if __name__ == "__main__":
    rank_main(int(sys.argv[1]), Path(sys.argv[2]))
