"""Scenarios from tensorflow/python/kernel_tests/data_structures/priority_queue_test.py.

An element is ``(priority, *components)`` with an int64 priority; the lowest leaves first, and
a dequeue_many waits for its whole batch so that it leaves sorted. TF's random inputs are
seeded here. Within one priority TF's order is its heap's (unspecified), so equal priorities
are compared as multisets, except in the one scenario that shows ours are FIFO.
"""
from __future__ import annotations

import functools
import random

import numpy as np

from harness import Scenario
from scenarios._queues import Background, Program, as_lists, settle, value

P = functools.partial


def side_values(seed, count):
    """TF's random priorities in [-5, 5) and two string side values per element (seeded)."""
    state = np.random.RandomState(seed)
    return (state.randint(-5, 5, size=count).astype(np.int64), state.rand(count).astype(bytes),
            state.rand(count).astype(bytes))


def put_sorted_batch(rec, batch):
    """Record a batch's priorities in order (they must leave sorted) and its rows as a multiset."""
    rec.put(batch[0])
    rec.put(sorted(zip(*as_lists(batch))))


class testRoundTripInsertReadOnceSorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("string", "string"), ((), ()))
        for e, v0, v1 in zip(*side_values(0, 100)):
            value(rec, P(q.enqueue, (e, v0, v1)))
        put_sorted_batch(rec, value(rec, P(q.dequeue_many, 100)))


class testRoundTripInsertMultiThreadedReadOnceSorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("string", "string"), ((), ()))
        threads = [Background(rec, P(q.enqueue, (e, v0, v1))) for e, v0, v1 in zip(*side_values(1, 100))]
        put_sorted_batch(rec, value(rec, P(q.dequeue_many, 100)))  # waits for all 100, then sorted
        for thread in threads:
            thread.join(rec, record=False)


class testRoundTripFillsCapacityMultiThreadedEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(10, ("int64",), ((),))
        draw = np.random.RandomState(2)
        counts = draw.randint(10, size=40)
        values = [draw.randint(5, size=count) for count in counts]
        shuffled = list(counts)
        random.Random(2).shuffle(shuffled)
        dequeuers = [Background(rec, P(q.dequeue_many, int(count))) for count in shuffled]
        enqueuers = [Background(rec, P(q.enqueue_many, (v, v))) for v in values]
        for thread in enqueuers:
            thread.join(rec)
        batches = [thread.join(rec, record=False)[0] for thread in dequeuers]
        rec.put(all(as_lists(b[0]) == as_lists(b[1]) == sorted(as_lists(b[0])) for b in batches))
        rec.put(sorted(sum((as_lists(b[0]) for b in batches), [])) == sorted(np.hstack(values).tolist()))
        rec.run(q.size)


class testRoundTripInsertManyMultiThreadedReadManyMultithreadedSorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("int64",), ((),))
        draw = np.random.RandomState(3)
        counts = draw.randint(10, size=40)
        values = [draw.randint(5, size=count) for count in counts]
        for thread in [Background(rec, P(q.enqueue_many, (v, v))) for v in values]:
            thread.join(rec)
        shuffled = list(counts)
        random.Random(3).shuffle(shuffled)
        dequeuers = [Background(rec, P(q.dequeue_many, int(count))) for count in shuffled]
        batches = [thread.join(rec, record=False)[0] for thread in dequeuers]
        rec.put(all(as_lists(b[0]) == as_lists(b[1]) == sorted(as_lists(b[0])) for b in batches))
        rec.put(sorted(sum((as_lists(b[0]) for b in batches), [])) == sorted(np.hstack(values).tolist()))


class testRoundTripInsertManyMultiThreadedReadOnceSorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("string", "string"), ((), ()))
        elem, side_0, side_1 = side_values(4, 100)
        threads = [Background(rec, P(q.enqueue_many, (elem[i * 5:(i + 1) * 5], side_0[i * 5:(i + 1) * 5],
                                                       side_1[i * 5:(i + 1) * 5]))) for i in range(20)]
        put_sorted_batch(rec, value(rec, P(q.dequeue_many, 100)))
        for thread in threads:
            thread.join(rec)


class testRoundTripInsertOnceReadOnceSorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("string", "string"), ((), ()))
        state = np.random.RandomState(5)
        elem = state.randint(-100, 100, size=1000).astype(np.int64)
        rec.run(P(q.enqueue_many, (elem, state.rand(1000).astype(bytes), state.rand(1000).astype(bytes))))
        put_sorted_batch(rec, value(rec, P(q.dequeue_many, 1000)))


class testRoundTripInsertOnceReadManySorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("int64",), ((),))
        elem = np.random.RandomState(6).randint(-100, 100, size=1000).astype(np.int64)
        rec.run(P(q.enqueue_many, (elem, elem)))
        got = sum((as_lists(value(rec, P(q.dequeue_many, 100))[0]) for _ in range(10)), [])
        rec.put(got == sorted(elem.tolist()))


class testRoundTripInsertOnceReadOnceLotsSorts(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("int64",), ((),))
        elem = np.random.RandomState(7).randint(-100, 100, size=200).astype(np.int64)
        rec.run(P(q.enqueue_many, (elem, elem)))
        got = [as_lists(value(rec, q.dequeue)[0]) for _ in range(200)]
        rec.put(got == sorted(elem.tolist()))


class testInsertingNonInt64Fails(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2000, ("string",), ((),))
        rec.run(P(q.enqueue_many, (["a", "b", "c"], ["a", "b", "c"])))
        rec.run(P(q.enqueue, (1.5, "a")))
        rec.run(P(q.enqueue, (np.int32(2), "b")))
        rec.run(q.dequeue)


class testInsertingNonScalarFails(Scenario):
    def tf(self, tf, rec):
        q = tf.PriorityQueue(2000, (tf.string,), ((),))
        priority = tf.placeholder_with_default(np.array([0, 2], np.int64), shape=None)
        rec.run(q.enqueue((priority, tf.constant("a"))))
        priorities = tf.placeholder_with_default(np.array([[0, 2], [3, 4]], np.int64), shape=None)
        rec.run(q.enqueue_many((priorities, tf.constant(["a", "b"]))))
        rec.run(q.size())

    def lo(self, lo, rec):
        q = lo.PriorityQueue(2000, ("string",), ((),))
        rec.run(lambda: q.enqueue((np.array([0, 2], np.int64), "a")))
        rec.run(lambda: q.enqueue_many((np.array([[0, 2], [3, 4]], np.int64), ["a", "b"])))
        rec.run(q.size)


# -- edge cases around them ------------------------------------------------------------------


class testTiesLeaveInEnqueueOrder(Program, Scenario):
    differs = ("equal priorities leave in the order they were enqueued; TF's std::priority_queue "
               "leaves them in its heap's order, which TF does not specify")

    def program(self, m, rec):
        q = m.PriorityQueue(20, ("int32",), ((),))
        rec.run(P(q.enqueue_many, ([1, 1, 1, 1, 1, 1, 0, 1, 1, 1], list(range(10)))))
        rec.run(P(q.dequeue_many, 10))


class testTiesAreTheSameMultiset(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(20, ("int32",), ((),))
        rec.run(P(q.enqueue_many, ([5, 1, 5, 3, 5, 1, 5], list(range(7)))))
        got = [as_lists(value(rec, q.dequeue)) for _ in range(7)]
        rec.put([priority for priority, _ in got])
        rec.put(sorted(got))


class testDequeueManyWaitsForTheWholeBatch(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(10, ("string",), ((),))
        dequeue = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([5, 3], ["e", "c"])))
        rec.run(q.size)  # nothing claimed: the batch must leave sorted
        dequeue.running(rec)
        rec.run(P(q.enqueue, (1, "a")))
        dequeue.join(rec)
        rec.run(q.size)


class testDequeueManyLargerThanCapacityWaits(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2, ("int32",), ((),))
        rec.run(P(q.enqueue_many, ([2, 1], [20, 10])))
        rec.blocks(P(q.dequeue_many, 3))
        rec.run(q.size)
        rec.run(q.close)
        rec.run(P(q.dequeue_many, 3))
        rec.run(P(q.dequeue_many, 2))


class testDequeueWaitsBehindDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(10, ("int32",), ((),))
        rec.run(P(q.enqueue, (7, 70)))
        many = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        one = Background(rec, q.dequeue)
        settle(q, dequeues=2)
        one.running(rec)  # an element is there, but the dequeue_many came first
        rec.run(P(q.enqueue_many, ([9, 8], [90, 80])))
        many.join(rec)
        one.running(rec)
        rec.run(P(q.enqueue, (1, 10)))
        one.join(rec)


class testDequeueUpToFromClosedQueue(Program, Scenario):
    differs = ("dequeue_up_to(n) on a closed PriorityQueue holding 1..n-1 elements returns them, sorted; "
               "TF's takes them, then fails with OutOfRangeError waiting for the rest, and they are lost")

    def program(self, m, rec):
        q = m.PriorityQueue(10, ("float32",), ((),))
        rec.run(P(q.enqueue_many, ([3, 1, 2], [3.0, 1.0, 2.0])))
        rec.run(q.close)
        rec.run(P(q.dequeue_up_to, 5))
        rec.run(P(q.dequeue_up_to, 5))
        rec.run(P(q.dequeue_many, 1))
        rec.run(q.dequeue)


class testEmptyDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(10, ("float32", "int32"), ((), (2,)))
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.enqueue, (1, 1.0, [1, 2])))
        rec.run(P(q.dequeue_up_to, 0))
        rec.run(q.size)


class testNamesIncludeThePriority(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(10, ("float32",), ((),), names=("p", "x"))
        rec.put(q.names)
        rec.run(P(q.enqueue, {"p": 2, "x": 2.0}))
        rec.run(P(q.enqueue_many, {"p": [3, 1], "x": [3.0, 1.0]}))
        rec.run(P(q.enqueue, {"x": 4.0}))
        rec.run(q.dequeue)
        rec.run(P(q.dequeue_many, 2))


class testNamesMustCountThePriority(Program, Scenario):
    def program(self, m, rec):
        rec.run(lambda: m.PriorityQueue(10, ("float32",), ((),), names=("x",)).size())


class testShapesAreRequired(Program, Scenario):
    cases = [None, [(), ()]]

    def program(self, m, rec):
        rec.run(lambda: m.PriorityQueue(3, ["int32"], self.case).size())


class testOneShapeForOneType(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(3, ["int32"], ())
        rec.run(P(q.enqueue, (4, 40)))
        rec.run(q.dequeue)


class testBlockingEnqueueBeforeClose(Program, Scenario):
    def program(self, m, rec):
        q = m.PriorityQueue(2, ("int32",), ((),))
        rec.run(P(q.enqueue_many, ([2, 3], [20, 30])))
        enqueue = Background(rec, P(q.enqueue, (1, 10)))
        settle(q, enqueues=1)
        close = Background(rec, q.close)
        settle(q, enqueues=2)
        rec.run(q.is_closed)
        rec.run(q.dequeue)
        enqueue.join(rec)
        close.join(rec)
        rec.run(P(q.dequeue_many, 2))
        rec.run(q.dequeue)
