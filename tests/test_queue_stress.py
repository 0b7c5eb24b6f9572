"""Stress: producer threads and processes feeding one queue; killed producers; Ctrl-C in the consumer."""
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
