"""SharedMemoryDataLoader: PyTorch's DataLoader with workers that hand batches over through arenas."""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate, get_worker_info

from loaders.loader import SharedMemoryDataLoader
from loaders.tfrecord import FixedLenFeature, RaggedBytes, TFRecordDataset, TFRecordWriter, VarLenFeature, collate_ragged

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


class Squares(Dataset):
    """Map-style: item i is ``{"i": i, "square": [i*i, i], "name": b"..."}``; item ``fail`` raises."""

    def __init__(self, size: int = 23, fail: int = -1) -> None:
        self.size, self.fail = size, fail

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        if i == self.fail:
            raise ValueError(f"item {i} is bad")
        return {"i": torch.tensor(i), "square": torch.tensor([i * i, i]), "name": b"n%d" % i}


class Counting(IterableDataset):
    """Iterable: each worker yields its own share of ``range(size)`` with the pid and worker info."""

    def __init__(self, size: int = 30) -> None:
        self.size = size

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for n in range(worker, self.size, workers):
            yield {"n": torch.tensor(n), "pid": torch.tensor(os.getpid()), "seed": torch.tensor(info.seed if info else -1),
                   "random": torch.rand(())}


class Dies(IterableDataset):
    def __iter__(self):
        yield torch.tensor(1)
        os._exit(3)


class Blocks(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == 2:
            time.sleep(120)  # longer than the loader's timeout; the loader stops this worker
        return torch.tensor(i)


def failing_init(worker_id: int) -> None:
    raise RuntimeError(f"worker {worker_id} cannot start")


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, (list, tuple, RaggedBytes)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_map_style_batches_equal_pytorchs_in_order():
    for kwargs in ({"batch_size": 4, "shuffle": True}, {"batch_size": 5, "drop_last": True}, {"batch_size": None}):
        theirs = list(DataLoader(Squares(), num_workers=2, generator=torch.Generator().manual_seed(1), **kwargs))
        loader = SharedMemoryDataLoader(Squares(), num_workers=2, generator=torch.Generator().manual_seed(1), **kwargs)
        ours = list(loader)
        assert len(ours) == len(theirs) == len(loader) and all(same(a, b) for a, b in zip(ours, theirs)), kwargs
    assert isinstance(loader, DataLoader)
    batch = next(iter(SharedMemoryDataLoader(Squares(), batch_size=3, num_workers=2)))
    assert type(batch["name"]) is RaggedBytes and batch["name"] == [b"n0", b"n1", b"n2"]  # collate_ragged
    listed = next(iter(SharedMemoryDataLoader(Squares(), batch_size=3, num_workers=2, collate_fn=default_collate)))
    assert listed["name"] == [b"n0", b"n1", b"n2"] and type(listed["name"]) is list  # a given collate_fn is kept


def test_iterable_batches_equal_pytorchs_in_order_with_worker_info_and_seeds():
    theirs = list(DataLoader(Counting(), batch_size=4, num_workers=3, generator=torch.Generator().manual_seed(5)))
    ours = list(SharedMemoryDataLoader(Counting(), batch_size=4, num_workers=3, generator=torch.Generator().manual_seed(5)))
    assert [b["n"].tolist() for b in ours] == [b["n"].tolist() for b in theirs]
    assert [b["seed"].tolist() for b in ours] == [b["seed"].tolist() for b in theirs]  # base seed + worker id
    assert [b["random"].tolist() for b in ours] == [b["random"].tolist() for b in theirs]  # torch seeded alike
    assert len({int(b["pid"][0]) for b in ours}) == 3 and os.getpid() not in {int(b["pid"][0]) for b in ours}
    single = list(SharedMemoryDataLoader(Counting(7), batch_size=None, num_workers=0))
    assert [int(item["n"]) for item in single] == list(range(7))  # no workers: PyTorch's own loop


def test_tfrecord_batches_cross_whole(tmp_path):
    path = tmp_path / "data.tfrecord"
    with TFRecordWriter(path, index=True) as writer:
        for n in range(300):
            writer.write({"n": n, "blob": bytes([n % 256]) * (n % 7), "floats": np.full(4, n, np.float32)})
    features = {"n": FixedLenFeature([], torch.int64), "blob": FixedLenFeature([], "string"),
                "floats": FixedLenFeature([4], torch.float32)}
    batches = list(SharedMemoryDataLoader(TFRecordDataset(path, features, batch_size=32), batch_size=None, num_workers=2))
    numbers = [int(n) for batch in batches for n in batch["n"]]
    assert sorted(numbers) == list(range(300))
    for batch in batches:
        assert type(batch["blob"]) is RaggedBytes
        assert list(batch["blob"]) == [bytes([n % 256]) * (n % 7) for n in batch["n"].tolist()]
        assert torch.equal(batch["floats"], batch["n"][:, None].float().expand(-1, 4))
    records = list(SharedMemoryDataLoader(TFRecordDataset(path, features), batch_size=64, num_workers=2))
    assert sorted(int(n) for batch in records for n in batch["n"]) == list(range(300))
    assert all(type(batch["blob"]) is RaggedBytes for batch in records)


def _write_parts(tmp_path, parts: int) -> list[str]:
    """``parts`` indexed files of 95 Examples; ``weight`` missing from every fourth."""
    paths = []
    for part in range(parts):
        path = str(tmp_path / f"part-{part}.tfrecord")
        with TFRecordWriter(path, index=True) as writer:
            for n in range(part * 100, part * 100 + 95):
                record = {"n": n, "blob": bytes([n % 256]) * (n % 5), "grid": np.full((2, 3), n, np.float32)}
                if n % 4:
                    record["weight"] = np.float32(n / 2)
                writer.write(record)
        paths.append(path)
    return paths


FIXED = {"n": FixedLenFeature([], torch.int64), "blob": FixedLenFeature([], "string"),
         "grid": FixedLenFeature([2, 3], torch.float32), "weight": FixedLenFeature([], torch.float32, default_value=-1.0)}


def same_batch(ours: dict, theirs: dict) -> bool:
    """Equal keys in the same order, tensors of equal dtype, shape and values, RaggedBytes alike."""
    if list(ours) != list(theirs):
        return False
    for key, value in ours.items():
        other = theirs[key]
        if type(value) is not type(other):
            return False
        if isinstance(value, torch.Tensor) and not (value.dtype == other.dtype and torch.equal(value, other)):
            return False
        if isinstance(value, RaggedBytes) and value.tolist() != other.tolist():
            return False
    return True


def test_batched_decodes_the_batches_collate_ragged_makes_of_the_records(tmp_path):
    dataset = TFRecordDataset(_write_parts(tmp_path, 2), FIXED, shuffle_buffer=40, seed=3)
    dataset.set_epoch(0)
    records = list(dataset)
    for drop_last in (False, True):
        batched = dataset.batched(7, drop_last)
        batched.set_epoch(0)
        expected = [collate_ragged(records[i:i + 7]) for i in range(0, len(records), 7)]
        expected = expected[:-1] if drop_last and len(records) % 7 else expected
        got = list(batched)
        assert len(got) == len(expected) and all(same_batch(a, b) for a, b in zip(got, expected))
    assert dataset.batch_size is None  # a copy: the dataset itself still yields records
    assert TFRecordDataset(dataset.files, raw=True).batched(5) is not None
    refused = [TFRecordDataset(dataset.files, FIXED, transform=lambda record: record),  # a transform sees records
               TFRecordDataset(dataset.files, {"v": VarLenFeature(torch.int64)}),  # stacked when lengths agree
               TFRecordDataset(dataset.files, {"s": FixedLenFeature([2], "string")}),  # default_collate transposes lists
               TFRecordDataset(dataset.files),  # every feature, undescribed
               TFRecordDataset(dataset.files, FIXED, batch_size=3)]
    assert all(candidate.batched(7) is None for candidate in refused)


def _expect_batches_of_7(worker_id: int) -> None:
    if get_worker_info().dataset.batch_size != 7:
        raise AssertionError(f"worker {worker_id} decodes records one by one")


@pytest.mark.parametrize("parts,shuffle,drop_last", [(3, 0, False), (1, 50, True), (3, 30, False)])
def test_records_in_batches_come_out_as_pytorch_collates_them_decoded_a_batch_at_a_time(tmp_path, parts, shuffle, drop_last):
    paths = _write_parts(tmp_path, parts)
    mine, reference = (TFRecordDataset(paths, FIXED, shuffle_buffer=shuffle, seed=5) for _ in range(2))
    mine.set_epoch(0)
    reference.set_epoch(0)  # the same order of files and records in both
    theirs = list(DataLoader(reference, batch_size=7, drop_last=drop_last, num_workers=2, collate_fn=collate_ragged))
    ours = list(SharedMemoryDataLoader(mine, batch_size=7, drop_last=drop_last, num_workers=2,
                                       worker_init_fn=_expect_batches_of_7))
    assert len(ours) == len(theirs) and all(same_batch(a, b) for a, b in zip(ours, theirs))
    assert sum(len(batch["n"]) for batch in ours) == (95 * parts if not drop_last else 7 * len(ours))


class Pictures(Dataset):
    """Map-style: item i is a 3x32x32 uint8 picture filled with ``i % 251``, and ``i``."""

    def __len__(self) -> int:
        return 400

    def __getitem__(self, i: int) -> dict:
        return {"picture": torch.full((3, 32, 32), i % 251, dtype=torch.uint8), "i": i}


def arena_mappings(pid: object = "self") -> list[tuple[int, int]]:
    """The address ranges of the loaders' shared-memory arenas mapped in process ``pid`` (this one by default)."""
    with open(f"/proc/{pid}/maps") as maps:
        lines = [line for line in maps if "loaders-arena" in line]
    return [tuple(int(end, 16) for end in line.split()[0].split("-")) for line in lines]


def holds_its_values(batch: dict) -> bool:
    return torch.equal(batch["picture"], (batch["i"] % 251).to(torch.uint8)[:, None, None, None].expand(-1, 3, 32, 32))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the process's mappings from /proc")
def test_batches_view_their_workers_arenas_which_come_back_once_a_batch_is_gone():
    loader = SharedMemoryDataLoader(Pictures(), batch_size=4, num_workers=2)
    for count, batch in enumerate(loader, 1):
        pointer = batch["picture"].data_ptr()
        assert any(low <= pointer < high for low, high in arena_mappings())  # not a copy
        assert holds_its_values(batch)
        mapped = len(arena_mappings())
    assert count == 100 and mapped <= 2 * 5  # each worker's few arenas, used again and again
    held = list(loader)  # a worker makes new arenas while the main process keeps batches
    assert len(held) == 100 and all(holds_its_values(batch) for batch in held)
    assert len(arena_mappings()) >= 100
    del held, batch
    assert len(arena_mappings()) <= 2 * 3  # each worker's idle arenas, kept for the next epoch's workers
    del loader
    assert arena_mappings() == []


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the process's mappings from /proc")
def test_the_next_epochs_workers_use_the_arenas_of_the_last_and_kept_batches_stay_whole():
    loader = SharedMemoryDataLoader(Pictures(), batch_size=4, num_workers=2)
    kept = next(iter(loader))  # from an epoch abandoned after one batch
    assert all(holds_its_values(batch) for batch in loader)
    pooled = arena_mappings()
    descriptors = len(os.listdir("/proc/self/fd"))
    for epoch in range(3):
        for count, batch in enumerate(loader):
            assert holds_its_values(batch)
            if count < 2:  # each worker's first batch is made in an arena of the last epoch
                pointer = batch["picture"].data_ptr()
                assert any(low <= pointer < high for low, high in pooled)
        del batch
        assert len(arena_mappings()) <= len(pooled) + 1 and len(os.listdir("/proc/self/fd")) == descriptors
    assert holds_its_values(kept) and int(kept["i"][0]) == 0  # its arena was not lent while it was viewed
    del loader, kept
    assert arena_mappings() == []


class CollectionCost(Dataset):
    """Item i: how many objects the worker's garbage collector leaves alone, and the page faults of a full collection."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple:
        import gc
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        gc.collect()
        return gc.get_freeze_count(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(sys.platform != "linux", reason="forked workers and their page faults")
def test_a_forked_worker_collects_its_garbage_without_copying_the_main_process_heap():
    inherited = [[i] for i in range(200_000)]  # 200k containers in this process's heap
    loader = SharedMemoryDataLoader(CollectionCost(), batch_size=None, num_workers=1,
                                    multiprocessing_context="fork")
    for frozen, faults in loader:
        assert frozen >= len(inherited)  # what the worker inherited is out of the collector's view
        assert faults < 2_000  # a collection over the inherited heap writes, so copies, 5k pages and more
    del inherited


def worker_arena_mappings() -> int:
    """How many arenas the loader's worker processes (children of this one) have mapped."""
    import multiprocessing

    return sum(len(arena_mappings(child.pid)) for child in multiprocessing.active_children()
               if child.name.startswith("loaders-worker"))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the processes' mappings from /proc")
def test_the_memory_of_batches_that_were_kept_comes_back_on_both_sides():
    loader = SharedMemoryDataLoader(Pictures(), batch_size=4, num_workers=2, persistent_workers=True)
    held = list(loader)  # the workers make arenas while these are kept
    assert len(arena_mappings()) >= 100 and worker_arena_mappings() >= 100
    del held
    for count, batch in enumerate(loader, 1):  # another epoch on the same workers, each batch dropped
        assert holds_its_values(batch)
    assert count == 100
    assert len(arena_mappings()) <= 2 * 5 and worker_arena_mappings() <= 2 * 5  # the extra arenas are gone
    del loader, batch  # the persistent workers stop


def test_large_and_non_tensor_values_cross():
    class Big(Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> dict:
            return {"big": torch.full((1 << 20,), i, dtype=torch.float64), "text": "x" * i, "array": np.arange(i)}

    got = list(SharedMemoryDataLoader(Big(), batch_size=None, num_workers=1, multiprocessing_context="fork"))
    assert [int(b["big"][-1]) for b in got] == [0, 1, 2] and [b["text"] for b in got] == ["", "x", "xx"]
    assert [b["array"].tolist() for b in got] == [[], [0], [0, 1]]


def test_a_dataset_error_is_raised_in_the_main_process_and_the_loader_goes_on():
    loader = SharedMemoryDataLoader(Squares(size=12, fail=5), batch_size=2, num_workers=2)
    iterator = iter(loader)
    assert [next(iterator)["i"].tolist() for _ in range(2)] == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match=r"item 5 is bad(.|\n)*Traceback in process loaders-worker-0"):
        next(iterator)
    assert [batch["i"].tolist() for batch in iterator] == [[6, 7], [8, 9], [10, 11]]


def test_worker_init_failure_is_raised():
    with pytest.raises(RuntimeError, match="worker 0 cannot start"):
        list(SharedMemoryDataLoader(Squares(), batch_size=2, num_workers=2, worker_init_fn=failing_init))


def test_a_worker_that_dies_is_reported():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid \d+\) exited unexpectedly with exit code 3"):
        list(SharedMemoryDataLoader(Dies(), batch_size=None, num_workers=1))


def test_timeout_ends_a_wait_for_a_stuck_worker():
    loader = SharedMemoryDataLoader(Blocks(), batch_size=None, num_workers=1, timeout=1.0, persistent_workers=True)
    iterator = iter(loader)
    assert [int(next(iterator)) for _ in range(2)] == [0, 1]
    process = iterator._workers[0].process
    with pytest.raises(RuntimeError, match="DataLoader timed out after 1.0 seconds"):
        next(iterator)
    assert not process.is_alive()  # stopped, not left sleeping
    again = iter(loader)  # persistent workers that were stopped start again
    assert [int(next(again)) for _ in range(2)] == [0, 1] and again._workers[0].process is not process


def test_persistent_workers_serve_every_epoch_and_stop_with_the_loader():
    for dataset in (Counting(20), Squares(20)):
        loader = SharedMemoryDataLoader(dataset, batch_size=3, num_workers=2, persistent_workers=True)
        key = "n" if isinstance(dataset, Counting) else "i"
        first = [n for batch in loader for n in batch[key].tolist()]
        iterator = iter(loader)
        next(iterator)  # an epoch abandoned after one batch
        processes = [worker.process for worker in iterator._workers]
        again = [n for batch in loader for n in batch[key].tolist()]
        assert sorted(first) == sorted(again) == list(range(20))
        assert [worker.process for worker in loader._iterator._workers] == processes and all(p.is_alive() for p in processes)
        del loader, iterator
        deadline = time.monotonic() + 60
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(p.is_alive() for p in processes)


def test_breaking_out_stops_the_workers():
    iterator = iter(SharedMemoryDataLoader(Counting(1000), batch_size=2, num_workers=2))
    next(iterator)
    processes = [worker.process for worker in iterator._workers]
    del iterator
    assert not any(p.is_alive() for p in processes)


def test_spawned_workers_receive_the_dataset_by_pickle():
    loader = SharedMemoryDataLoader(Squares(9), batch_size=4, num_workers=2, multiprocessing_context="spawn")
    for _ in range(2):  # the second epoch's workers are lent the first's arenas
        ours = [{"i": b["i"].tolist(), "name": list(b["name"])} for b in loader]
        assert [b["i"] for b in ours] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
        assert ours[0]["name"] == [b"n0", b"n1", b"n2", b"n3"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_pin_memory_pins_tensors_and_ragged_types():
    batch = next(iter(SharedMemoryDataLoader(Squares(), batch_size=4, num_workers=1, pin_memory=True)))
    assert batch["i"].is_pinned() and batch["name"].values.is_pinned() and batch["name"] == [b"n0", b"n1", b"n2", b"n3"]
