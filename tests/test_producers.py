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


# -- what TensorFlow showed (tests/tf_oracle/scenarios/input.py) ----------------------------


def test_python_ints_are_int32_as_in_tensorflow(coord):
    rows = loaders.input_producer([[1, 2], [3, 4]], num_epochs=1, shuffle=False)
    big = loaders.input_producer([2**40, 1], num_epochs=1, shuffle=False)
    floats = loaders.input_producer([0.5, 1.5], num_epochs=1, shuffle=False)
    slices = loaders.slice_input_producer([[2, 3, 5], [b"a", b"b", b"c"]], num_epochs=1, shuffle=False)
    coord()
    assert rows.dequeue().dtype == torch.int32 and big.dequeue().dtype == torch.int64
    assert floats.dequeue().dtype == torch.float32
    number, label = slices()
    assert number.dtype == torch.int32 and int(number) == 2 and label == b"a"


def test_slice_input_producer_fails_only_at_an_index_the_shorter_tensor_lacks(coord):
    slices = loaders.slice_input_producer([[1, 2, 3], [10, 20]], shuffle=False)
    coord()
    assert [int(x) for x in slices()] == [1, 10] and [int(x) for x in slices()] == [2, 20]
    with pytest.raises(loaders.InvalidArgumentError, match=r"indices = 2 is not in \[0, 2\)"):
        slices()
    assert [int(x) for x in slices()] == [1, 10]  # the next epoch goes on, as in TF


def test_empty_input_ends_after_its_epochs_or_is_refused_without_them(coord):
    queue = loaders.input_producer([], num_epochs=2)
    coord()
    with pytest.raises(OutOfRangeError):
        queue.dequeue(timeout=10)
    with pytest.raises(ValueError, match="would never get an element"):
        loaders.range_input_producer(0)


def test_batch_does_not_call_the_op_before_the_runners_start(coord):
    calls = []
    batch = loaders.batch(lambda: calls.append(1) or [len(calls)], batch_size=2)
    with pytest.raises(loaders.DeadlineExceededError):
        batch(timeout=0.05)
    assert calls == []
    coord()
    assert batch(timeout=10).tolist() == [1, 2]


def test_outer_batch_built_before_the_runners_start_does_not_hang(coord):
    """TF1's order: inner batch, outer batch(inner, enqueue_many=True), then start_queue_runners."""
    inner = loaders.batch(counter(30), batch_size=2)
    outer = loaders.batch(inner, batch_size=10, enqueue_many=True)
    coord()
    labels = [labels.tolist() for _, labels in outer]
    assert labels == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]


def test_batch_of_a_queue_whose_runner_is_not_started_yet(coord):
    """TF1's FIFOQueue + QueueRunner + batch([queue.dequeue()]), then start_queue_runners."""
    queue = loaders.FIFOQueue(4, torch.int64, shapes=[])
    numbers = iter(range(6))

    def enqueue():
        for number in numbers:
            return queue.enqueue(number)
        raise OutOfRangeError("done")

    loaders.add_queue_runner(loaders.QueueRunner(queue, [enqueue]))
    batch = loaders.batch(lambda: [queue.dequeue()], batch_size=3)
    coord()
    assert [b.tolist() for b in batch] == [[0, 1, 2], [3, 4, 5]]


def test_dynamic_pad_pads_strings_with_empty_bytes_even_when_the_first_list_is_empty(coord):
    lengths = iter([0, 2, 1])

    def example():
        for length in lengths:
            return [length, [b"ab"] * length]
        raise OutOfRangeError("done")

    batch = loaders.batch(example, batch_size=3, dynamic_pad=True)
    coord()
    lengths_out, strings = batch(timeout=10)
    assert lengths_out.dtype == torch.int32
    assert strings == [[b"", b""], [b"ab", b"ab"], [b"ab", b""]]


def test_examples_that_never_show_a_dtype_are_batched_as_float32_at_the_end(coord):
    examples = iter([[1, []], [2, []]])

    def example():
        for values in examples:
            return values
        raise OutOfRangeError("done")

    batch = loaders.batch(example, batch_size=2, dynamic_pad=True)
    coord()
    numbers, empty = batch(timeout=10)
    assert numbers.tolist() == [1, 2] and empty.dtype == torch.float32 and empty.shape == (2, 0)


def test_an_op_failing_before_its_first_example_ends_the_batch_and_reaches_join():
    def example():
        raise ValueError("bad first record")

    batch = loaders.batch(example, batch_size=2)
    coordinator = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coordinator)
    with pytest.raises(OutOfRangeError):
        batch(timeout=10)
    with pytest.raises(ValueError, match="bad first record"):
        coordinator.join(threads, stop_grace_period_secs=10)


def test_batch_checks_what_it_can_when_built():
    with pytest.raises(ValueError, match="fully defined"):
        loaders.batch(lambda: [[1, 2]], batch_size=2, shapes=[[None]])
    with pytest.raises(ValueError, match="batch_size"):
        loaders.batch(lambda: [1], batch_size=-1)
    with pytest.raises(ValueError, match="at least one set"):
        loaders.batch_join([], batch_size=2)
    with pytest.raises(ValueError, match="Must provide"):
        loaders.batch(lambda: [1], batch_size=2, num_threads=0)


def test_python_and_numpy_values_batch_with_tensorflows_dtypes(coord):
    import numpy as np

    batch = loaders.batch(lambda: [1, 2.5, True, "s", [1, 2], np.float64(0.5), np.array([b"x"])], batch_size=2)
    coord()
    ints, floats, bools, strings, pairs, doubles, byte_rows = batch(timeout=10)
    assert (ints.dtype, floats.dtype, bools.dtype, pairs.dtype, doubles.dtype) == (
        torch.int32, torch.float32, torch.bool, torch.int32, torch.float64)
    assert strings == [b"s", b"s"] and pairs.shape == (2, 2) and byte_rows == [[b"x"], [b"x"]]


def test_a_batch_closed_before_its_first_example():
    batch = loaders.batch(lambda: [1], batch_size=2)
    batch.queue.close()
    with pytest.raises(OutOfRangeError):
        batch(timeout=10)
    with pytest.raises(loaders.CancelledError):  # as TF: a second close without cancel
        batch.queue.close()
    batch.queue.close(cancel_pending_enqueues=True)
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    # As TF: its runner's enqueue meets the closed queue, a CancelledError reported to the coordinator.
    with pytest.raises(loaders.CancelledError):
        coord.join(threads, stop_grace_period_secs=10)
    assert batch.queue.is_closed() and batch.queue.size() == 0
