"""Stress: producer threads and processes feeding one queue; killed producers; Ctrl-C in the consumer;
every kind of enqueue and dequeue on one small queue."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from loaders import Coordinator, FIFOQueue, QueueRunner, UnknownError

N_ITEMS = 20_000  # per producer
THREAD_PRODUCERS, PROCESS_PRODUCERS = 4, 2


class Numbered:
    """Enqueue op: items first, first+1, ... (an id and a vector holding the id); then wait for the stop.

    ``count=None`` produces forever. Works in threads and (pickled or forked) processes.
    """

    def __init__(self, queue, coord, first, count=None):
        self.queue, self.coord, self.next = queue, coord, first
        self.end = None if count is None else first + count

    def __call__(self):
        if self.next == self.end:
            self.coord.wait_for_stop()
            return
        self.queue.enqueue([self.next, torch.full((8,), float(self.next))])
        self.next += 1


def _start_producers(queue, coord, count):
    ops = [Numbered(queue, coord, k * N_ITEMS, count) for k in range(THREAD_PRODUCERS + PROCESS_PRODUCERS)]
    threads = QueueRunner(queue, ops[:THREAD_PRODUCERS]).create_threads(coord, start=True)
    processes = QueueRunner(queue, ops[THREAD_PRODUCERS:], use_processes=True, start_method="fork").create_threads(
        coord, start=True
    )
    return threads, processes


def _new_queue():
    return FIFOQueue(capacity=100, dtypes=[torch.int64, torch.float32], shapes=[[], [8]])


@pytest.mark.slow
def test_every_item_arrives_exactly_once_and_join_is_clean():
    queue, coord = _new_queue(), Coordinator()
    threads, processes = _start_producers(queue, coord, N_ITEMS)
    total = N_ITEMS * (THREAD_PRODUCERS + PROCESS_PRODUCERS)
    claimed, lock, received = [0], threading.Lock(), [[], []]

    def consume(out):
        with coord.stop_on_exception():
            while True:
                with lock:
                    if claimed[0] == total:
                        return
                    claimed[0] += 1
                item_id, vector = queue.dequeue(timeout=60)
                out.append((int(item_id), vector))

    consumers = [threading.Thread(target=consume, args=(out,)) for out in received]
    for consumer in consumers:
        consumer.start()
    for consumer in consumers:
        consumer.join()
    coord.request_stop()
    coord.join(threads + processes + consumers, stop_grace_period_secs=30)

    items = received[0] + received[1]
    assert sorted(i for i, _ in items) == list(range(total))
    assert all(bool((vector == i).all()) for i, vector in items)
    assert received[0] and received[1]  # both consumers took part
    assert [p.exitcode for p in processes] == [0] * PROCESS_PRODUCERS
    assert not any(w.is_alive() for w in threads + processes) and queue.is_closed()


@pytest.mark.slow
def test_a_producer_killed_with_sigkill_makes_join_raise_within_seconds():
    queue, coord = _new_queue(), Coordinator()
    threads, processes = _start_producers(queue, coord, None)
    for _ in range(2000):
        queue.dequeue(timeout=30)
    victim = processes[0]
    os.kill(victim.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(UnknownError, match=rf"process {victim.name} \(pid {victim.pid}\) was killed by signal SIGKILL"):
        coord.join(threads + processes, stop_grace_period_secs=30)
    assert time.monotonic() - started < 10
    assert not any(w.is_alive() for w in threads + processes)
    assert processes[1].exitcode == 0  # the other producer stopped cleanly
    with pytest.raises(ChildProcessError):  # already reaped: no zombie left
        os.waitpid(victim.pid, os.WNOHANG)


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, even where the runner was started with SIGINT ignored (nohup, CI)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_keyboard_interrupt_in_the_consumer_stops_every_producer(ctrl_c_raises):
    queue, coord = _new_queue(), Coordinator()
    threads, processes = _start_producers(queue, coord, None)
    with coord.stop_on_exception():
        for step in range(100_000):
            queue.dequeue(timeout=30)
            if step == 1000:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C
    assert coord.should_stop()
    with pytest.raises(KeyboardInterrupt):
        coord.join(threads + processes, stop_grace_period_secs=30)
    assert not any(w.is_alive() for w in threads + processes)
    assert [p.exitcode for p in processes] == [0] * PROCESS_PRODUCERS
    assert queue.is_closed()


@pytest.mark.slow
def test_mixed_batch_sizes_timeouts_and_close_lose_and_duplicate_nothing():
    """Producers and consumers of every kind on one small queue: dequeue_many larger than
    capacity, timeouts that give claimed elements back, dequeue_up_to draining after close."""
    import random

    from loaders import DeadlineExceededError, OutOfRangeError

    queue = FIFOQueue(capacity=8, dtypes=torch.int64, shapes=[])
    produced = [list(range(k * 2000, (k + 1) * 2000)) for k in range(3)]
    consumed, lock = [], threading.Lock()

    def produce(items, seed):
        draw = random.Random(seed)
        while items:
            if draw.random() < 0.05:
                time.sleep(0.002)  # a slow producer: waiting dequeue_manys time out holding claims
            count = draw.choice([1, 1, 3, 12])
            batch, items[:] = items[:count], items[count:]
            if count == 1:
                queue.enqueue(batch[0])
            else:
                queue.enqueue_many([batch])

    def consume(seed):
        draw, got = random.Random(seed), []
        while True:
            kind, n = draw.random(), draw.randint(0, 20)
            try:
                if kind < 0.4:
                    got.append(int(queue.dequeue()))
                elif kind < 0.8:
                    got.extend(queue.dequeue_many(n, timeout=draw.choice([None, 0.001])).tolist())
                else:
                    got.extend(queue.dequeue_up_to(max(n, 1)).tolist())
            except DeadlineExceededError:
                pass  # the elements it had claimed went back into the queue
            except OutOfRangeError:
                if 0.4 <= kind < 0.8:
                    continue  # closed with fewer than n: they went back for the others
                break  # closed and empty
        with lock:
            consumed.extend(got)

    producers = [threading.Thread(target=produce, args=(list(items), k)) for k, items in enumerate(produced)]
    consumers = [threading.Thread(target=consume, args=(10 + k,)) for k in range(3)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join(60)
    queue.close()
    for thread in consumers:
        thread.join(60)
    assert not any(t.is_alive() for t in producers + consumers)
    assert sorted(consumed) == sorted(sum(produced, [])) and queue.size() == 0
