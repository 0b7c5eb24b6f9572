"""Producers and batching as in the lecture: build the pipeline, start the runners, check what
comes out, including TF1's behaviour at the end of input."""
from __future__ import annotations

import pytest
import torch

import loaders
from loaders import OutOfRangeError


@pytest.fixture
def coord():
    """A Coordinator whose runner threads are stopped and joined after the test."""
    coordinator = loaders.Coordinator()
    threads = []
    yield lambda: threads.extend(loaders.start_queue_runners(coord=coordinator)) or coordinator
    coordinator.request_stop()
    coordinator.join(threads, stop_grace_period_secs=10)


def drain(op):
    return list(op) if isinstance(op, loaders.producers.DequeueOp) else _drain_queue(op)


def _drain_queue(queue):
    out = []
    while True:
        try:
            out.append(queue.dequeue(timeout=10))
        except OutOfRangeError:
            return out


def test_string_input_producer_closes_after_num_epochs(coord):
    queue = loaders.string_input_producer(["file0.csv", "file1.csv"], num_epochs=2, shuffle=False)
    coord()
    assert drain(queue) == [b"file0.csv", b"file1.csv"] * 2


def test_shuffle_is_a_new_permutation_each_epoch_and_follows_the_seed(coord):
    names = [f"f{i}" for i in range(20)]
    first = loaders.string_input_producer(names, num_epochs=3, seed=7, capacity=5)
    again = loaders.string_input_producer(names, num_epochs=3, seed=7, capacity=5)
    coord()
    out, out_again = drain(first), drain(again)
    epochs = [out[i * 20 : (i + 1) * 20] for i in range(3)]
    assert all(sorted(epoch) == sorted(n.encode() for n in names) for epoch in epochs)
    assert epochs[0] != epochs[1] and out == out_again


def test_empty_string_input_is_an_error():
    with pytest.raises(ValueError, match="non-null"):
        loaders.string_input_producer([])
    with pytest.raises(ValueError, match="num_epochs"):
        loaders.string_input_producer(["a"], num_epochs=0)


def test_input_and_range_producers(coord):
    rows = loaders.input_producer(torch.arange(12).reshape(4, 3), num_epochs=1, shuffle=False)
    numbers = loaders.range_input_producer(5, num_epochs=1, shuffle=False)
    coord()
    assert [row.tolist() for row in drain(rows)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert [int(n) for n in drain(numbers)] == [0, 1, 2, 3, 4]


def test_slice_input_producer_keeps_slices_aligned(coord):
    images = torch.arange(10).reshape(5, 2).float()
    labels = [b"a", b"b", b"c", b"d", b"e"]
    image_and_label = loaders.slice_input_producer([images, labels], num_epochs=1, seed=1)
    coord()
    slices = drain(image_and_label)
    assert sorted(label for _, label in slices) == labels
    for image, label in slices:
        assert image.tolist() == images[labels.index(label)].tolist()


def counter(limit):
    """An op producing [value, label] examples 0..limit-1, then OutOfRangeError (end of input)."""
    state = iter(range(limit))

    def next_example():
        for value in state:
            return [torch.tensor([float(value), -float(value)]), value]
        raise OutOfRangeError("no more examples")

    return next_example


def test_batch_with_allow_smaller_final_batch(coord):
    batch = loaders.batch(counter(10), batch_size=4, allow_smaller_final_batch=True)
    coord()
    batches = list(batch)
    assert [labels.tolist() for _, labels in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].shape == (4, 2) and batches[0][1].dtype == torch.int32
    with pytest.raises(OutOfRangeError):
        batch()


def test_batch_without_smaller_final_batch_drops_the_rest(coord):
    batch = loaders.batch(counter(10), batch_size=4)
    coord()
    assert [labels.tolist() for _, labels in batch] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_dynamic_pad_pads_to_the_longest_in_the_batch(coord):
    lengths = iter([1, 3, 2, 2])

    def sequence():
        for length in lengths:
            return {"tokens": torch.arange(1, length + 1), "length": length}
        raise OutOfRangeError("done")

    batch = loaders.batch(sequence, batch_size=2, dynamic_pad=True, allow_smaller_final_batch=True)
    coord()
    first, second = list(batch)
    assert first["tokens"].tolist() == [[1, 0, 0], [1, 2, 3]] and first["length"].tolist() == [1, 3]
    assert second["tokens"].tolist() == [[1, 2], [1, 2]]


def test_enqueue_many_and_a_single_component(coord):
    chunks = iter([torch.arange(0, 5), torch.arange(5, 8)])

    def chunk():
        for values in chunks:
            return [values]
        raise OutOfRangeError("done")

    batch = loaders.batch(chunk, batch_size=3, enqueue_many=True, allow_smaller_final_batch=True)
    coord()
    assert [b.tolist() for b in batch] == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_batch_join_reads_every_input_once(coord):
    batch = loaders.batch_join([counter(6), counter(6)], batch_size=4, allow_smaller_final_batch=True)
    coord()
    labels = torch.cat([labels for _, labels in batch]).tolist()
    assert sorted(labels) == sorted(list(range(6)) * 2)


def test_shuffle_batch_mixes_and_keeps_every_example(coord):
    batch = loaders.shuffle_batch(counter(100), batch_size=10, capacity=60, min_after_dequeue=30, seed=3,
                                  num_threads=2, allow_smaller_final_batch=True)
    coord()
    labels = torch.cat([labels for _, labels in batch]).tolist()
    assert sorted(labels) == list(range(100)) and labels != list(range(100))


def test_shuffle_batch_join_and_capacity_check(coord):
    with pytest.raises(ValueError, match="capacity 10 must be bigger than min_after_dequeue 10"):
        loaders.shuffle_batch(counter(5), batch_size=2, capacity=10, min_after_dequeue=10)
    batch = loaders.shuffle_batch_join([counter(5), counter(5)], batch_size=4, capacity=20, min_after_dequeue=2,
                                       allow_smaller_final_batch=True)
    coord()
    assert sorted(torch.cat([labels for _, labels in batch]).tolist()) == sorted(list(range(5)) * 2)


def test_batch_needs_an_op():
    with pytest.raises(TypeError, match=r"loaders.batch\(lambda: \[features, label\]"):
        loaders.batch([torch.zeros(2), 1], batch_size=2)


def test_lecture_pipeline_end_to_end(tmp_path):
    """string_input_producer -> TextLineReader -> decode_csv -> batch, run by a Coordinator."""
    paths = []
    for part in range(2):
        paths.append(tmp_path / f"file{part}.csv")
        paths[-1].write_text("id,value\n" + "".join(f"{part * 10 + i},{i * 0.5}\n" for i in range(10)))
    filename_queue = loaders.string_input_producer([str(p) for p in paths], num_epochs=1)
    reader = loaders.TextLineReader(skip_header_lines=1)

    def read_example():
        key, value = reader.read(filename_queue)
        ident, number = loaders.decode_csv(value, record_defaults=[[0], [1.0]])
        return [ident, number, key]

    batch = loaders.batch(read_example, batch_size=6, num_threads=2, allow_smaller_final_batch=True)
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    ids, keys = [], []
    try:
        while not coord.should_stop():
            ident, number, key = batch()
            assert number.dtype == torch.float32 and isinstance(key, list)
            ids.extend(ident.tolist())
            keys.extend(key)
    except OutOfRangeError:
        pass
    finally:
        coord.request_stop()
    coord.join(threads)
    assert sorted(ids) == list(range(20))
    assert sorted(keys) == sorted(f"{p}:{line}".encode() for p in paths for line in range(2, 12))


def test_error_in_an_example_op_reaches_coordinator_join(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2\n3,oops\n")
    filename_queue = loaders.string_input_producer([str(path)], num_epochs=1)
    reader = loaders.TextLineReader()

    def read_example():
        return loaders.decode_csv(reader.read(filename_queue)[1], record_defaults=[[0], [0]])

    batch = loaders.batch(read_example, batch_size=2)
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    with pytest.raises(ValueError, match="column 1 is not a valid int32: 'oops'"):
        try:
            batch()
        except (OutOfRangeError, loaders.CancelledError):
            coord.join(threads, stop_grace_period_secs=10)
