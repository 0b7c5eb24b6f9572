"""The four TF1 queues within one process: ordering, batching, padding, closing, timeouts, bad input."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import loaders
from loaders import (
    CancelledError, DeadlineExceededError, FIFOQueue, InvalidArgumentError, OutOfRangeError, PaddingFIFOQueue,
    PriorityQueue, RandomShuffleQueue, string,
)


def test_lecture_queue_enqueue_many_then_dequeue_one_by_one():
    all_data = 10 * np.random.randn(20, 4) + 1
    all_target = np.random.randint(0, 2, size=20)
    queue = FIFOQueue(capacity=50, dtypes=[torch.float32, torch.int32], shapes=[[4], []])
    queue.enqueue_many([all_data, all_target])
    data_sample, label_sample = queue.dequeue()
    assert data_sample.dtype == torch.float32 and data_sample.shape == (4,)
    assert torch.allclose(data_sample, torch.tensor(all_data[0], dtype=torch.float32))
    assert label_sample.dtype == torch.int32 and int(label_sample) == all_target[0]
    assert queue.size() == 19


def test_fifo_keeps_order_and_batches_on_a_new_dim_0():
    queue = FIFOQueue(10, ["int64", "float32"], shapes=[[], [2]])
    for i in range(5):
        queue.enqueue([i, [i, -i]])
    first = queue.dequeue()
    assert isinstance(first, list) and int(first[0]) == 0
    ids, vecs = queue.dequeue_many(3)
    assert ids.tolist() == [1, 2, 3] and vecs.shape == (3, 2) and vecs[2].tolist() == [3.0, -3.0]


def test_attributes_describe_the_components():
    queue = FIFOQueue(7, [np.float32, "string"], shapes=[[3], []], names=["x", "label"])
    assert queue.capacity == 7
    assert queue.dtypes == [torch.float32, string]
    assert queue.shapes == [(3,), ()]
    assert queue.names == ["x", "label"]
    assert FIFOQueue(1, torch.int64).shapes == [None]


def test_single_component_values_come_back_bare():
    queue = FIFOQueue(4, torch.int64, shapes=[])
    queue.enqueue(7)
    queue.enqueue_many([[8, 9]])
    assert int(queue.dequeue()) == 7
    assert queue.dequeue_many(2).tolist() == [8, 9]


def test_names_make_elements_dicts():
    queue = FIFOQueue(4, [torch.int64, string], shapes=[[], []], names=["id", "text"])
    queue.enqueue({"id": 1, "text": "héllo"})
    queue.enqueue_many({"id": [2, 3], "text": [b"a", "b"]})
    assert queue.dequeue() == {"id": torch.tensor(1), "text": "héllo".encode()}
    batch = queue.dequeue_many(2)
    assert batch["id"].tolist() == [2, 3] and batch["text"] == [b"a", b"b"]


def test_strings_are_bytes_and_batches_are_lists():
    queue = FIFOQueue(4, string, shapes=[[2]])
    queue.enqueue([["a", b"b"]])
    queue.enqueue([np.array([b"c", b"d"])])
    assert queue.dequeue_many(2) == [[b"a", b"b"], [b"c", b"d"]]


def test_random_shuffle_queue_keeps_min_after_dequeue_until_closed():
    queue = RandomShuffleQueue(capacity=20, min_after_dequeue=5, dtypes=torch.int64, shapes=[], seed=3)
    queue.enqueue_many([list(range(10))])
    taken = [int(queue.dequeue()) for _ in range(5)]
    with pytest.raises(DeadlineExceededError):
        queue.dequeue(timeout=0.05)  # 5 left = min_after_dequeue: waits
    queue.close()
    rest = queue.dequeue_up_to(20).tolist()
    assert sorted(taken + rest) == list(range(10))
    assert taken + rest != list(range(10))  # shuffled


def test_random_shuffle_queue_is_reproducible_with_a_seed():
    def drain(seed):
        queue = RandomShuffleQueue(10, 0, torch.int64, shapes=[], seed=seed)
        queue.enqueue_many([list(range(10))])
        return queue.dequeue_many(10).tolist()

    assert drain(7) == drain(7)
    assert sorted(drain(8)) == list(range(10))


def test_padding_fifo_queue_pads_none_dims_to_the_batch_maximum():
    queue = PaddingFIFOQueue(5, [torch.int64, string], shapes=[[None, 2], [None]])
    queue.enqueue([[[1, 1], [2, 2]], ["a"]])
    queue.enqueue([[[3, 3]], ["b", "c", "d"]])
    numbers, words = queue.dequeue_many(2)
    assert numbers.tolist() == [[[1, 1], [2, 2]], [[3, 3], [0, 0]]]
    assert words == [[b"a", b"", b""], [b"b", b"c", b"d"]]


def test_padding_fifo_queue_still_checks_known_dims():
    queue = PaddingFIFOQueue(5, torch.float32, shapes=[[None, 2]])
    with pytest.raises(ValueError, match=r"component 0: expected shape \[None, 2\], got \[1, 3\]"):
        queue.enqueue(torch.zeros(1, 3))


def test_priority_queue_dequeues_lowest_priority_first_fifo_on_ties():
    queue = PriorityQueue(10, [string], shapes=[[]])
    for priority, word in [(5, "e"), (1, "a"), (5, "f"), (3, "c")]:
        queue.enqueue([priority, word])
    priority, word = queue.dequeue()
    assert priority.dtype == torch.int64 and int(priority) == 1 and word == b"a"
    priorities, words = queue.dequeue_many(3)
    assert priorities.tolist() == [3, 5, 5] and words == [b"c", b"e", b"f"]
    assert queue.dtypes == [torch.int64, string]


def test_dequeue_on_closed_queue_drains_then_raises_out_of_range():
    queue = FIFOQueue(5, torch.int64, shapes=[])
    queue.enqueue_many([[1, 2, 3]])
    queue.close()
    assert queue.is_closed()
    with pytest.raises(OutOfRangeError):
        queue.dequeue_many(4)
    assert queue.dequeue_up_to(2).tolist() == [1, 2]
    assert queue.dequeue_up_to(2).tolist() == [3]
    with pytest.raises(OutOfRangeError):
        queue.dequeue_up_to(2)
    with pytest.raises(OutOfRangeError):
        queue.dequeue()


def test_enqueue_on_closed_queue_is_cancelled():
    queue = FIFOQueue(5, torch.int64, shapes=[])
    queue.close()
    with pytest.raises(CancelledError, match="is closed"):
        queue.enqueue(1)


def _wait_for(condition, deadline=30.0):
    """Poll until ``condition()`` holds (a test's blocked thread has reached its wait)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the queue to reach the expected state"
        time.sleep(0.005)


def _blocked(target):
    """Start ``target`` in a thread; return the thread and the list that receives its outcome."""
    outcome = []

    def run():
        try:
            outcome.append(target())
        except Exception as ex:  # the test inspects it
            outcome.append(ex)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.05)
    return thread, outcome


def test_enqueue_blocks_while_full_and_dequeue_while_empty():
    queue = FIFOQueue(2, torch.int64, shapes=[])
    queue.enqueue_many([[1, 2]])
    thread, outcome = _blocked(lambda: queue.enqueue(3))
    assert thread.is_alive() and queue.size() == 2
    assert int(queue.dequeue()) == 1
    thread.join(5)
    assert outcome == [None] and queue.dequeue_many(2).tolist() == [2, 3]
    thread, outcome = _blocked(queue.dequeue)
    assert thread.is_alive()
    queue.enqueue(4)
    thread.join(5)
    assert int(outcome[0]) == 4


def test_close_wakes_blocked_dequeue_with_out_of_range():
    queue = FIFOQueue(2, torch.int64, shapes=[])
    thread, outcome = _blocked(lambda: queue.dequeue_many(2))
    queue.enqueue(1)
    queue.close()
    thread.join(5)
    assert isinstance(outcome[0], OutOfRangeError)


def test_close_waits_behind_a_pending_enqueue_unless_cancelled():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    queue.enqueue(1)
    enqueue, enqueued = _blocked(lambda: queue.enqueue(2))
    _wait_for(lambda: len(queue._core._enqueuers) == 1)
    close, closed = _blocked(queue.close)  # TF1: the close waits its turn behind the enqueue
    _wait_for(lambda: len(queue._core._enqueuers) == 2)
    assert close.is_alive() and not queue.is_closed()
    assert int(queue.dequeue()) == 1
    enqueue.join(5)
    close.join(5)
    assert enqueued == [None] and closed == [None] and queue.is_closed()
    assert int(queue.dequeue()) == 2

    queue = FIFOQueue(1, torch.int64, shapes=[])
    queue.enqueue(1)
    enqueue, enqueued = _blocked(lambda: queue.enqueue(2))
    _wait_for(lambda: len(queue._core._enqueuers) == 1)
    queue.close(cancel_pending_enqueues=True)
    enqueue.join(5)
    assert isinstance(enqueued[0], CancelledError) and queue.size() == 1 and queue.is_closed()


def test_enqueue_many_larger_than_capacity_goes_in_as_room_frees_and_stays_contiguous():
    queue = FIFOQueue(3, torch.int64, shapes=[])
    thread, outcome = _blocked(lambda: queue.enqueue_many([list(range(10))]))
    other, _ = _blocked(lambda: queue.enqueue(100))
    got = [int(queue.dequeue()) for _ in range(11)]
    thread.join(5)
    other.join(5)
    assert got == list(range(10)) + [100]


def test_timeouts_raise_deadline_exceeded():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    with pytest.raises(DeadlineExceededError, match="dequeue"):
        queue.dequeue(timeout=0.05)
    queue.enqueue(1)
    with pytest.raises(DeadlineExceededError, match="enqueue"):
        queue.enqueue(2, timeout=0.05)
    assert queue.dequeue_many(1, timeout=1).tolist() == [1]
    with pytest.raises(TimeoutError):  # DeadlineExceededError is a TimeoutError
        queue.dequeue_up_to(1, timeout=0.01)


def test_batch_waiter_is_woken_alongside_single_waiters():
    queue = FIFOQueue(10, torch.int64, shapes=[])
    batch, batch_out = _blocked(lambda: queue.dequeue_many(3))
    single, single_out = _blocked(queue.dequeue)
    queue.enqueue_many([[1, 2, 3, 4]])
    batch.join(5)
    single.join(5)
    assert sorted(batch_out[0].tolist() + [int(single_out[0])]) == [1, 2, 3, 4]


def test_dequeue_many_larger_than_capacity_claims_elements_as_they_arrive():
    queue = FIFOQueue(2, torch.int64, shapes=[])
    thread, outcome = _blocked(lambda: queue.dequeue_many(5))
    for i in range(5):
        queue.enqueue(i)  # never blocks: the waiting dequeue_many takes each element at once
        assert queue.size() == 0  # claimed elements are not counted, as in TF
    thread.join(5)
    assert outcome[0].tolist() == [0, 1, 2, 3, 4]


def test_a_later_dequeue_does_not_overtake_a_waiting_dequeue_many():
    queue = FIFOQueue(10, torch.int64, shapes=[])
    many, many_out = _blocked(lambda: queue.dequeue_many(3))
    _wait_for(lambda: len(queue._core._dequeuers) == 1)
    one, one_out = _blocked(queue.dequeue)
    _wait_for(lambda: len(queue._core._dequeuers) == 2)
    queue.enqueue_many([[1, 2]])
    assert one.is_alive() and queue.size() == 0  # 1 and 2 belong to the dequeue_many
    queue.enqueue_many([[3, 4]])
    many.join(5)
    one.join(5)
    assert many_out[0].tolist() == [1, 2, 3] and int(one_out[0]) == 4


def test_a_dequeue_many_that_times_out_gives_its_claimed_elements_back():
    queue = FIFOQueue(5, torch.int64, shapes=[])
    queue.enqueue_many([[1, 2]])
    with pytest.raises(DeadlineExceededError):
        queue.dequeue_many(3, timeout=0.05)
    assert queue.size() == 2 and queue.dequeue_many(2).tolist() == [1, 2]


def test_closing_gives_a_partial_batch_back_in_order_or_returns_it_with_dequeue_up_to():
    queue = FIFOQueue(4, torch.int64, shapes=[])
    many, many_out = _blocked(lambda: queue.dequeue_many(4))
    queue.enqueue_many([[1, 2, 3]])
    _wait_for(lambda: len(queue._core._dequeuers) == 1)
    queue.close()
    many.join(5)
    assert isinstance(many_out[0], OutOfRangeError) and queue.dequeue_up_to(5).tolist() == [1, 2, 3]

    queue = PriorityQueue(4, [torch.int64], shapes=[[]])
    up_to, up_to_out = _blocked(lambda: queue.dequeue_up_to(4))
    queue.enqueue_many([[2, 1, 2], [20, 10, 21]])
    queue.close()
    up_to.join(5)
    assert up_to_out[0][1].tolist() == [10, 20, 21]


def test_random_shuffle_queue_claims_only_beyond_min_after_dequeue_while_open():
    queue = RandomShuffleQueue(capacity=5, min_after_dequeue=3, dtypes=torch.int64, shapes=[], seed=0)
    thread, outcome = _blocked(lambda: queue.dequeue_many(4))
    queue.enqueue_many([[0, 1, 2, 3, 4]])  # claims 2, keeps 3
    _wait_for(lambda: queue.size() == 3)
    assert thread.is_alive()
    queue.enqueue_many([[5, 6]])
    thread.join(5)
    assert len(set(outcome[0].tolist())) == 4 and queue.size() == 3


def test_priority_queue_dequeue_many_waits_for_its_whole_batch_so_it_leaves_sorted():
    queue = PriorityQueue(10, [string], shapes=[[]])
    thread, outcome = _blocked(lambda: queue.dequeue_many(3))
    queue.enqueue_many([[5, 3], ["e", "c"]])
    assert thread.is_alive() and queue.size() == 2  # nothing claimed yet
    queue.enqueue([1, "a"])
    thread.join(5)
    priorities, words = outcome[0]
    assert priorities.tolist() == [1, 3, 5] and words == [b"a", b"c", b"e"]


def test_dequeue_many_zero_is_an_empty_batch_and_n_may_be_a_tensor():
    queue = PaddingFIFOQueue(5, [torch.float32, string], shapes=[[None, 2], []])
    empty, words = queue.dequeue_many(0)
    assert empty.shape == (0, 0, 2) and words == []
    queue.close()
    assert FIFOQueue(3, torch.int32, shapes=[3]).dequeue_up_to(0).shape == (0, 3)
    counts = FIFOQueue(3, torch.int32, shapes=[])
    counts.enqueue(2)
    numbers = FIFOQueue(3, torch.int64, shapes=[])
    numbers.enqueue_many([[7, 8, 9]])
    assert numbers.dequeue_many(counts.dequeue()).tolist() == [7, 8]


def test_a_second_close_is_cancelled_and_cancelling_fails_a_waiting_close():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    queue.close()
    with pytest.raises(CancelledError, match="already closed"):
        queue.close()
    queue.close(cancel_pending_enqueues=True)  # closing again with cancel is allowed, as in TF

    queue = FIFOQueue(1, torch.int64, shapes=[])
    queue.enqueue(1)
    enqueue, enqueued = _blocked(lambda: queue.enqueue(2))
    _wait_for(lambda: len(queue._core._enqueuers) == 1)
    close, closed = _blocked(queue.close)
    _wait_for(lambda: len(queue._core._enqueuers) == 2)
    queue.close(cancel_pending_enqueues=True)
    enqueue.join(5)
    close.join(5)
    assert isinstance(enqueued[0], CancelledError) and isinstance(closed[0], CancelledError)


def test_errors_are_tensorflows_classes():
    queue = FIFOQueue(5, [torch.int32, torch.float32], shapes=[[], [2]])
    with pytest.raises(InvalidArgumentError, match=r"expected shape \[2\], got \[3\]"):
        queue.enqueue([1, [1.0, 2.0, 3.0]])
    with pytest.raises(TypeError, match="do not convert"):  # TF: TypeError for a Python value
        queue.enqueue([1.5, [1.0, 2.0]])
    with pytest.raises(InvalidArgumentError, match="expected 2 components, got 1"):
        queue.enqueue([1])
    with pytest.raises(InvalidArgumentError, match="min_after_dequeue=3 must be less than capacity=3"):
        RandomShuffleQueue(3, 3, torch.int64)
    with pytest.raises(ValueError, match="a list with one shape per component"):
        PaddingFIFOQueue(5, torch.int64, shapes=[None, 2])
    with pytest.raises(TypeError, match="PriorityQueue needs shapes="):
        PriorityQueue(5, [torch.int64], shapes=None)
    assert PriorityQueue(5, [torch.int64], shapes=()).shapes == [(), ()]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FIFOQueue(0, torch.int64), "capacity must be an int > 0"),
        (lambda: RandomShuffleQueue(5, 5, torch.int64), "min_after_dequeue=5 must be less than capacity=5"),
        (lambda: FIFOQueue(5, [torch.int64, torch.int64], shapes=[[]]), "shapes has 1 entries but dtypes has 2"),
        (lambda: FIFOQueue(5, torch.int64, shapes=[None]), "None dims need PaddingFIFOQueue"),
        (lambda: PaddingFIFOQueue(5, torch.int64, shapes=None), "needs shapes="),
        (lambda: FIFOQueue(5, [torch.int64], names=["a", "b"]), "must be 1 distinct names"),
        (lambda: FIFOQueue(5, "flaot32"), "unknown dtype"),
    ],
)
def test_bad_construction_is_a_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_values_name_the_component():
    queue = FIFOQueue(5, [torch.float32, torch.int32], shapes=[[4], []], names=["x", "y"])
    with pytest.raises(ValueError, match=r"component 0 \('x'\): expected shape \[4\], got \[3\]"):
        queue.enqueue({"x": [1.0, 2.0, 3.0], "y": 1})
    with pytest.raises(ValueError, match=r"component 1 \('y'\): values of dtype float64 do not convert to int32"):
        queue.enqueue({"x": [1.0] * 4, "y": 1.5})
    with pytest.raises(ValueError, match=r"unknown keys \['z'\]"):
        queue.enqueue({"x": [1.0] * 4, "y": 1, "z": 2})
    with pytest.raises(ValueError, match=r"missing keys \['y'\]"):
        queue.enqueue({"x": [1.0] * 4})
    with pytest.raises(ValueError, match="component 1 \\('y'\\): expected int32 values"):
        queue.enqueue({"x": [1.0] * 4, "y": "one"})
    assert queue.size() == 0


def test_lossless_conversions_are_accepted():
    queue = FIFOQueue(5, [torch.int32, torch.float32, torch.float64], shapes=[[], [], []])
    queue.enqueue([np.int64(3), np.float64(0.1), 2])  # float narrowing is rounding, as in TF1
    assert [x.dtype for x in queue.dequeue()] == [torch.int32, torch.float32, torch.float64]
    with pytest.raises(ValueError, match="do not convert"):
        queue.enqueue([2**40, 0.0, 0.0])


def test_wrong_number_of_components_and_bad_batch_sizes():
    queue = FIFOQueue(5, torch.int64, shapes=[3])
    with pytest.raises(ValueError, match=r"expected 1 components, got 3 \(wrap a list value"):
        queue.enqueue([1, 2, 3])
    with pytest.raises(ValueError, match="differ in dim 0"):
        FIFOQueue(5, [torch.int64, torch.int64], shapes=[[], []]).enqueue_many([[1, 2], [1]])
    with pytest.raises(InvalidArgumentError, match=r"n must be an int >= 0, got -1"):
        queue.dequeue_many(-1)
    with pytest.raises(InvalidArgumentError, match="needs every component's shape"):
        FIFOQueue(5, torch.int64).dequeue_many(2)


def test_public_names_are_exported():
    assert loaders.FIFOQueue is FIFOQueue and issubclass(PriorityQueue, loaders.QueueBase)


# -- other processes ------------------------------------------------------------------------

def _square_in_child(queue):
    value = queue.dequeue()
    queue.enqueue(value * value)
    queue.enqueue_many(torch.zeros(3, 2, 2))
    queue.close()


def test_a_forked_process_uses_the_same_queue():
    import torch.multiprocessing as mp

    queue = FIFOQueue(5, torch.float32, shapes=[2, 2])
    queue.enqueue(torch.full((2, 2), 3.0))
    process = mp.get_context("fork").Process(target=_square_in_child, args=(queue,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert queue.dequeue().tolist() == [[9.0, 9.0], [9.0, 9.0]]
    assert queue.dequeue_many(3).shape == (3, 2, 2) and queue.is_closed()


def test_unpickling_in_the_owner_gives_back_the_queue_itself():
    import pickle

    queue = PaddingFIFOQueue(3, string, shapes=[[None]])
    assert pickle.loads(pickle.dumps(queue)) is queue


def test_tensors_cross_in_a_reused_shared_memory_arena():
    import socket

    from loaders._remote import _Channel

    class End:
        """One end of a connection that keeps the messages, for the test to look at."""

        def __init__(self, messages, sock):
            self.messages, self.sock = messages, sock

        def send_bytes(self, data):
            self.messages.append(bytes(data))

        def recv_bytes(self):
            return self.messages.pop(0)

        def fileno(self):  # the arena's file descriptor crosses a real socket
            return self.sock.fileno()

    messages, (a, b) = [], socket.socketpair()
    sender, receiver = _Channel(End(messages, a)), _Channel(End(messages, b))
    big = torch.randn(1024, 1024)  # 4 MB
    sender.send(("put", [(big, b"label")]))
    assert len(messages) == 2 and max(map(len, messages)) < 1000  # arena announcement + offsets
    _, [(copy, label)] = receiver.recv()
    assert torch.equal(copy, big) and label == b"label"
    sender.send(("put", [(big.T + 1, torch.tensor(2.5, dtype=torch.bfloat16))]))
    assert len(messages) == 1 and len(messages[0]) < 200  # the arena is reused: offsets only
    _, [(again, scalar)] = receiver.recv()
    assert torch.equal(again, big.T + 1) and scalar.dtype == torch.bfloat16 and float(scalar) == 2.5
    a.close()
    b.close()


def test_a_tensor_allocated_in_the_arena_crosses_as_itself_and_is_released_when_gone():
    import gc
    import multiprocessing

    from loaders._channel import Channel

    ours, theirs = multiprocessing.Pipe()
    sender, receiver = Channel(ours), Channel(theirs)
    sender.begin(3)
    made = sender.allocate((4, 3), torch.float32)
    made.copy_(torch.arange(12.0).reshape(4, 3))
    other = torch.arange(5)
    sender.send({"made": made, "other": other, "label": b"x"})
    released = []
    got = receiver.recv(release=released.append)
    made.fill_(7.0)  # written after the send: the receiver sees the very memory
    other.fill_(0)  # placed by a copy: the receiver does not
    assert torch.equal(got["made"], torch.full((4, 3), 7.0)) and got["other"].tolist() == [0, 1, 2, 3, 4]
    assert got["label"] == b"x" and released == []
    view = got["other"][1:]
    del got
    gc.collect()
    assert released == [] and view.tolist() == [1, 2, 3, 4]  # a view of a view keeps the arena
    del view
    assert released == [3]
    sender.send(("no tensors", 1))  # in the last message's arena again
    assert receiver.recv(release=released.append) == ("no tensors", 1) and released == [3, 3]
    sender.retire(3)  # unmapped here, and by the receiver with the next message
    sender.begin(0)
    sender.send(torch.ones(2))
    assert receiver.recv().tolist() == [1.0, 1.0] and 3 not in receiver._in
    sender.begin(3)  # made again: a new arena, announced again
    sender.send(torch.arange(3))
    assert receiver.recv().tolist() == [0, 1, 2] and 3 in receiver._in
    ours.close()
    theirs.close()


def test_an_arena_detached_from_a_gone_peer_is_adopted_by_a_new_pair_without_crossing_again():
    import multiprocessing
    import os

    from loaders._channel import Channel

    ours, theirs = multiprocessing.Pipe()
    sender, receiver = Channel(ours), Channel(theirs, keep_descriptors=True)
    sender.begin(0)
    sender.allocate((3,), torch.int64).copy_(torch.tensor([1, 2, 3]))
    sender.send(None)
    assert receiver.recv(release=lambda number: None) is None
    sender.begin(1)
    sender.send(torch.zeros(2))
    kept = receiver.recv(release=lambda number: None)  # arena 1 still viewed
    ours.close()
    theirs.close()
    detached = receiver.detach_unviewed()
    assert len(detached) == 1 and receiver.detach(1) is not None and receiver.detach(1) is None
    (fd, mapping), = detached
    ours, theirs = multiprocessing.Pipe()
    sender, receiver = Channel(ours), Channel(theirs, keep_descriptors=True)
    sender.adopt_own(5, os.dup(fd), len(mapping))
    receiver.adopt(5, fd, mapping)
    assert bytes(mapping[:8]) == (1).to_bytes(8, "little")  # the memory of the first pair
    sender.begin(5)
    made = sender.allocate((2,), torch.int64)
    made.copy_(torch.tensor([8, 9]))
    sender.send(made)
    got = receiver.recv(release=lambda number: None)
    start = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    assert got.tolist() == [8, 9] and start <= got.data_ptr() < start + len(mapping)  # the adopted memory itself
    assert kept.tolist() == [0.0, 0.0]
    ours.close()
    theirs.close()


def _block_in_dequeue(queue):
    queue.dequeue()


def test_a_killed_remote_caller_does_not_take_an_element():
    import signal

    import torch.multiprocessing as mp

    queue = FIFOQueue(2, torch.int64, shapes=[])
    process = mp.get_context("fork").Process(target=_block_in_dequeue, args=(queue,))
    process.start()
    _wait_for(lambda: len(queue._core._dequeuers) == 1)  # the child's dequeue waits at the owner
    process.kill()
    process.join()
    assert process.exitcode == -signal.SIGKILL
    _wait_for(lambda: not queue._core._dequeuers)  # the owner notices the closed connection and abandons it
    queue.enqueue(1)
    assert int(queue.dequeue(timeout=5)) == 1


def _make_queue_in_child(out):
    queue = FIFOQueue(2, torch.int64, shapes=[])
    out.put(queue)


def test_a_proxy_whose_owner_is_gone_raises_cancelled():
    import torch.multiprocessing as mp

    out = mp.get_context("fork").SimpleQueue()
    process = mp.get_context("fork").Process(target=_make_queue_in_child, args=(out,))
    process.start()
    proxy = out.get()
    process.join()
    with pytest.raises(CancelledError, match=f"pid {process.pid}"):
        proxy.enqueue(1)


def _batch_strings_in_child(queue, out):
    batch = queue.dequeue_many(2)
    out.put((batch["word"], batch["ids"].tolist()))
    queue.enqueue_many({"word": [["from"], ["child"]], "ids": [[7], [8]]})


def test_a_forked_process_gets_padded_string_batches_and_dicts():
    import torch.multiprocessing as mp

    queue = PaddingFIFOQueue(4, [string, torch.int64], shapes=[[None], [None]], names=["word", "ids"])
    queue.enqueue({"word": ["a", "b"], "ids": [1, 2, 3]})
    queue.enqueue({"word": ["c"], "ids": [4]})
    out = mp.get_context("fork").SimpleQueue()
    process = mp.get_context("fork").Process(target=_batch_strings_in_child, args=(queue, out))
    process.start()
    words, ids = out.get()
    process.join(30)
    assert process.exitcode == 0
    assert words == [[b"a", b"b"], [b"c", b""]] and ids == [[1, 2, 3], [4, 0, 0]]
    batch = queue.dequeue_many(2)
    assert batch["word"] == [[b"from"], [b"child"]] and batch["ids"].tolist() == [[7], [8]]
