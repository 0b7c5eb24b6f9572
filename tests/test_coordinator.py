"""Coordinator and QueueRunner with threads and processes, as in the lecture's examples."""
from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest
import torch

from loaders import (
    CancelledError, Coordinator, FIFOQueue, OutOfRangeError, QueueRunner, UnknownError, add_queue_runner,
    start_queue_runners,
)


def my_loop(coord, counter, limit):
    """The lecture's thread body: loop until told to stop; one thread asks for the stop."""
    while not coord.should_stop():
        with counter["lock"]:
            counter["n"] += 1
            if counter["n"] >= limit:
                coord.request_stop()
        time.sleep(0.001)


def test_coordinator_stops_every_thread_together():
    coord = Coordinator()
    counter = {"n": 0, "lock": threading.Lock()}
    threads = [threading.Thread(target=my_loop, args=(coord, counter, 50)) for _ in range(10)]
    for t in threads:
        t.start()
    coord.join(threads)
    assert coord.should_stop() and not any(t.is_alive() for t in threads)
    assert counter["n"] >= 50


def test_join_raises_the_first_reported_exception():
    coord = Coordinator()

    def worker(ex):
        with coord.stop_on_exception():
            raise ex

    threads = [threading.Thread(target=worker, args=(ValueError("bad row 3"),))]
    threads[0].start()
    threads[0].join()
    threading.Thread(target=worker, args=(KeyError("late"),)).start()  # after the stop: dropped
    with pytest.raises(ValueError, match="bad row 3"):
        coord.join(threads)


def test_out_of_range_is_a_clean_stop():
    coord = Coordinator()
    with coord.stop_on_exception():
        raise OutOfRangeError("epoch done")
    assert coord.should_stop()
    coord.join([])
    coord.raise_requested_exception()


def test_clear_stop_resets_and_wait_for_stop_times_out():
    coord = Coordinator()
    assert coord.wait_for_stop(0.01) is False
    coord.request_stop(RuntimeError("x"))
    assert coord.wait_for_stop(0.01) is True
    with pytest.raises(RuntimeError, match="x"):
        coord.raise_requested_exception()
    coord.clear_stop()
    assert not coord.should_stop()
    coord.raise_requested_exception()


def test_join_names_threads_alive_after_the_grace_period():
    coord = Coordinator()
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="stuck-reader")
    stuck.start()
    coord.request_stop()
    try:
        with pytest.raises(RuntimeError, match="stuck-reader"):
            coord.join([stuck], stop_grace_period_secs=0.05)
        coord.clear_stop()
        coord.request_stop()
        coord.join([stuck], stop_grace_period_secs=0.01, ignore_live_threads=True)
    finally:
        release.set()
        stuck.join()


def test_exceptions_cross_processes_with_type_message_and_traceback():
    from loaders import _remote

    def parse():
        raise ValueError("bad row 7")

    try:
        parse()
    except ValueError as ex:
        rebuilt = _remote.rebuild_exception(_remote.exception_payload(ex))
    assert type(rebuilt) is ValueError and str(rebuilt).startswith("bad row 7")
    assert "Traceback in process MainProcess" in str(rebuilt) and "in parse" in str(rebuilt)

    class Local(Exception):  # a class pickle cannot find by name
        pass

    rebuilt = _remote.rebuild_exception(_remote.exception_payload(Local("odd")))
    assert isinstance(rebuilt, UnknownError) and str(rebuilt).startswith("Local: odd")


def _sleep_forever():
    time.sleep(600)


def test_join_names_processes_alive_after_the_grace_period():
    import torch.multiprocessing as mp

    coord = Coordinator()
    process = mp.get_context("fork").Process(target=_sleep_forever, name="sleeper")
    process.start()
    coord.request_stop()
    try:
        with pytest.raises(RuntimeError, match=rf"still running: sleeper \(pid {process.pid}\)"):
            coord.join([process], stop_grace_period_secs=0.2)
    finally:
        process.kill()
        process.join()


def test_request_stop_after_join_raises_the_exception_directly():
    coord = Coordinator()
    coord.request_stop()
    coord.join([])
    with pytest.raises(ValueError, match="too late"):
        coord.request_stop(ValueError("too late"))


def _lecture_queue(n_samples):
    all_data = 10 * np.random.randn(n_samples, 4) + 1
    all_target = np.random.randint(0, 2, size=n_samples)
    queue = FIFOQueue(capacity=50, dtypes=[torch.float32, torch.int32], shapes=[[4], []])
    return queue, functools.partial(queue.enqueue_many, [all_data, all_target])


def test_lecture_queue_runner_with_threads():
    queue, enqueue_op = _lecture_queue(200)
    qr = QueueRunner(queue, [enqueue_op] * 4)
    coord = Coordinator()
    enqueue_threads = qr.create_threads(coord=coord, start=True)
    assert qr.create_threads(coord=coord) == []  # already running
    for _ in range(100):
        if coord.should_stop():
            break
        one_data, one_label = queue.dequeue()
        assert one_data.shape == (4,) and int(one_label) in (0, 1)
    coord.request_stop()
    coord.join(enqueue_threads)
    assert queue.is_closed() and not any(t.is_alive() for t in enqueue_threads)


class CountTo:
    """An enqueue op that enqueues 0..n-1, then reports the input exhausted."""

    def __init__(self, queue, n):
        self.queue, self.n, self.i = queue, n, 0

    def __call__(self):
        if self.i == self.n:
            raise OutOfRangeError("no more numbers")
        self.queue.enqueue(self.i)
        self.i += 1


def _drain(queue):
    got = []
    while True:
        try:
            got.append(int(queue.dequeue()))
        except OutOfRangeError:
            return got


def test_runner_closes_the_queue_when_every_op_ran_out():
    queue = FIFOQueue(5, torch.int64, shapes=[])
    coord = Coordinator()
    threads = QueueRunner(queue, [CountTo(queue, 20), CountTo(queue, 30)]).create_threads(coord, start=True)
    assert sorted(_drain(queue)) == sorted(list(range(20)) + list(range(30)))
    coord.join(threads)


def Failing(message):
    def op():
        raise ValueError(message)
    return op


def test_runner_reports_errors_and_cancels_blocked_producers():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    coord = Coordinator()
    threads = QueueRunner(queue, [lambda: queue.enqueue(1), Failing("bad record")]).create_threads(coord, start=True)
    with pytest.raises(ValueError, match="bad record"):
        coord.join(threads)
    assert queue.is_closed() and not any(t.is_alive() for t in threads)
    with pytest.raises(CancelledError):
        queue.enqueue(2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # re-raised in the thread, as TF1
def test_runner_without_coordinator_keeps_exceptions():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    qr = QueueRunner(queue, [Failing("no coord")])
    threads = qr.create_threads(start=True, daemon=True)
    threads[0].join(5)
    assert [str(e) for e in qr.exceptions_raised] == ["no coord"]
    assert not queue.is_closed()  # as TF: without a coordinator nothing closes the queue


def test_start_queue_runners_starts_the_collection_once():
    queue = FIFOQueue(5, torch.int64, shapes=[])
    add_queue_runner(QueueRunner(queue, [CountTo(queue, 10)]))
    coord = Coordinator()
    threads = start_queue_runners(coord)
    assert len(threads) == 1 and threads[0].daemon
    assert start_queue_runners(coord) == []  # started runners left the collection
    assert sorted(_drain(queue)) == list(range(10))
    coord.request_stop()
    coord.join(threads)


# -- processes ------------------------------------------------------------------------------

def _fail_in_child():
    raise KeyError("missing column 'age'")


class NumberedRows:
    """An enqueue op for processes: ``batches`` batches of numbered rows, then OutOfRangeError."""

    def __init__(self, queue, first, batches):
        self.queue, self.next, self.last = queue, first, first + 4 * batches

    def __call__(self):
        if self.next == self.last:
            raise OutOfRangeError("all rows sent")
        ids = torch.arange(self.next, self.next + 4)
        self.queue.enqueue_many([ids, ids[:, None].float().expand(4, 3)])
        self.next += 4


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_runner_processes_fill_the_queue_then_close_it(start_method):
    queue = FIFOQueue(8, [torch.int64, torch.float32], shapes=[[], [3]])
    ops = [NumberedRows(queue, 0, 5), NumberedRows(queue, 100, 5)]
    if start_method == "spawn":  # a spawned process imports torch afresh (seconds): one is enough
        ops = ops[:1]
    coord = Coordinator()
    processes = QueueRunner(queue, ops, use_processes=True, start_method=start_method).create_threads(coord, start=True)
    ids, rows = [], []
    while True:
        try:
            batch_ids, batch_rows = queue.dequeue_up_to(6)
        except OutOfRangeError:  # both processes ran out, so the runner closed the queue
            break
        ids += batch_ids.tolist()
        rows.append(batch_rows)
    assert sorted(ids) == [i for op in ops for i in range(op.next, op.last)]
    assert torch.equal(torch.cat(rows), torch.tensor(ids, dtype=torch.float32)[:, None].expand(len(ids), 3))
    coord.join(processes, stop_grace_period_secs=10)
    assert [p.exitcode for p in processes] == [0] * len(ops)


def test_child_exception_reaches_join_with_its_traceback():
    queue = FIFOQueue(2, torch.int64, shapes=[])
    coord = Coordinator()
    processes = QueueRunner(queue, [_fail_in_child], use_processes=True).create_threads(coord, start=True)
    with pytest.raises(KeyError, match="missing column") as info:
        coord.join(processes, stop_grace_period_secs=10)
    assert "_fail_in_child" in str(info.value) and "Traceback in process QueueRunner-fifo_queue-0" in str(info.value)
    assert queue.is_closed()
    assert processes[0].exitcode == 1


def _wait_in_child(coord, seen):
    seen.put(coord.wait_for_stop(0.01))
    seen.put(coord.wait_for_stop(30))
    seen.put(coord.should_stop())


def test_wait_for_stop_in_a_child_process():
    import torch.multiprocessing as mp

    coord = Coordinator()
    seen = mp.get_context("fork").SimpleQueue()
    process = mp.get_context("fork").Process(target=_wait_in_child, args=(coord, seen))
    process.start()
    assert seen.get() is False
    coord.request_stop()
    assert seen.get() is True and seen.get() is True
    coord.join([process], stop_grace_period_secs=10)


def _request_stop_in_child(coord):
    try:
        raise ArithmeticError("child gave up")
    except ArithmeticError as ex:
        coord.request_stop(ex)


def test_request_stop_from_a_spawned_process():
    import torch.multiprocessing as mp

    coord = Coordinator()
    process = mp.get_context("spawn").Process(target=_request_stop_in_child, args=(coord,))
    process.start()
    assert coord.wait_for_stop(30)
    with pytest.raises(ArithmeticError, match="child gave up"):
        coord.join([process], stop_grace_period_secs=10)
    assert process.exitcode == 0


def test_join_raises_for_a_process_that_exits_without_reporting():
    import torch.multiprocessing as mp

    coord = Coordinator()
    process = mp.get_context("fork").Process(target=_fail_in_child, name="crasher")
    process.start()
    with pytest.raises(UnknownError, match=r"process crasher \(pid \d+\) exited with code 1"):
        coord.join([process], stop_grace_period_secs=5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # re-raised in the thread, as TF1
def test_exceptions_raised_starts_afresh_with_each_create_threads():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    qr = QueueRunner(queue, [Failing("again")])
    for _ in range(2):
        threads = qr.create_threads(start=True, daemon=True)
        threads[0].join(5)
        assert [str(e) for e in qr.exceptions_raised] == ["again"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_enqueue_op_that_is_not_callable_fails_when_its_thread_runs_it():
    queue = FIFOQueue(1, torch.int64, shapes=[])
    qr = QueueRunner(queue, [None])  # e.g. queue.enqueue(x) called instead of passed
    threads = qr.create_threads(start=True, daemon=True)
    threads[0].join(5)
    assert [type(e) for e in qr.exceptions_raised] == [TypeError]
    with pytest.raises(ValueError, match="Must provide"):
        QueueRunner(queue, [])
