"""Reshuffling: a new order every epoch by default (tf.data's reshuffle_each_iteration), the same
order for the same seed and epoch, file order shuffled alike by every reader, ``set_epoch``."""
from __future__ import annotations

import pytest
import torch
import torch.distributed
from torch.utils.data import DataLoader

from loaders.tfrecord import TFRecordDataset, TFRecordWriter

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


def write(folder, files=6, per_file=8):
    paths = [str(folder / f"part-{f}.tfrecord") for f in range(files)]
    for f, path in enumerate(paths):
        with TFRecordWriter(path) as writer:
            for n in range(per_file):
                writer.write(f"{f}:{n}".encode())
    return paths


def epoch(dataset, workers=0, **loader_args):
    loader = DataLoader(dataset, batch_size=4, num_workers=workers,
                        multiprocessing_context="fork" if workers else None, **loader_args)
    return [bytes(record).decode() for batch in loader for record in batch]


def every(files=6, per_file=8):
    return sorted(f"{f}:{n}" for f in range(files) for n in range(per_file))


@pytest.mark.parametrize("seed", [None, 7])
@pytest.mark.parametrize("workers", [0, 2])
def test_each_epoch_has_a_new_order_and_every_record_once(tmp_path, workers, seed):
    dataset = TFRecordDataset(write(tmp_path), raw=True, shuffle_buffer=10, seed=seed)
    loader = DataLoader(dataset, batch_size=4, num_workers=workers, multiprocessing_context="fork" if workers else None)
    orders = [[bytes(r).decode() for batch in loader for r in batch] for _ in range(3)]
    assert all(sorted(order) == every() for order in orders)
    assert len({tuple(order) for order in orders}) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_seed_makes_the_sequence_of_epochs_reproducible(tmp_path, workers):
    paths = write(tmp_path)

    def two_epochs():
        torch.manual_seed(4)
        dataset = TFRecordDataset(paths, raw=True, shuffle_buffer=10)
        return epoch(dataset, workers), epoch(dataset, workers)

    first = two_epochs()
    assert first == two_epochs() and first[0] != first[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_same_seed_and_epoch_give_the_same_order(tmp_path, workers):
    paths = write(tmp_path)
    orders = {}
    for run in range(2):
        for number in (1, 2):
            torch.manual_seed(run)  # torch's seed plays no part once the epoch is set
            dataset = TFRecordDataset(paths, raw=True, shuffle_buffer=10, seed=3)
            dataset.set_epoch(number)
            orders.setdefault(number, []).append(epoch(dataset, workers))
    assert orders[1][0] == orders[1][1] and orders[2][0] == orders[2][1] and orders[1][0] != orders[2][0]


def test_persistent_workers_reshuffle_too(tmp_path):
    dataset = TFRecordDataset(write(tmp_path), raw=True, shuffle_buffer=10, seed=1)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context="fork", persistent_workers=True)
    orders = [[bytes(r).decode() for batch in loader for r in batch] for _ in range(2)]
    assert sorted(orders[0]) == sorted(orders[1]) == every() and orders[0] != orders[1]


def test_file_order_is_shuffled_each_epoch(tmp_path):
    dataset = TFRecordDataset(write(tmp_path, files=8, per_file=2), raw=True, shuffle_buffer=1, cycle_length=1, seed=0)
    file_orders = [[record.decode().split(":")[0] for record in dataset][::2] for _ in range(3)]
    assert len({tuple(order) for order in file_orders}) == 3 and all(sorted(o) == list("01234567") for o in file_orders)
    unshuffled = TFRecordDataset(write(tmp_path, files=8, per_file=2), raw=True, cycle_length=1)
    assert [record.decode() for record in unshuffled] == every(8, 2)


@pytest.mark.parametrize("seed", [None, 5])
def test_ranks_agree_on_the_file_order(tmp_path, monkeypatch, seed):
    """Two ranks (simulated) with two workers each: every record once per epoch; with ``seed``
    the ranks shuffle files alike, without it files keep their order (ranks share no seed)."""
    paths = write(tmp_path, files=8, per_file=3)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    rank0_files = []
    for number in range(2):
        got = []
        for rank in range(2):
            monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
            torch.manual_seed(rank)  # ranks' torch seeds differ
            dataset = TFRecordDataset(paths, raw=True, shuffle_buffer=4, seed=seed, cycle_length=1)
            dataset.set_epoch(number)
            got.append(epoch(dataset, workers=2))
        assert sorted(got[0] + got[1]) == every(8, 3)
        rank0_files.append({record.split(":")[0] for record in got[0]})
    unshuffled = {"0", "4", "1", "5"}  # readers 0 and 1 of 4 (rank 0): files 0, 4 and 1, 5
    assert (rank0_files == [unshuffled, unshuffled]) == (seed is None)
