"""Scenarios from tensorflow/python/kernel_tests/data_structures/random_shuffle_queue_test.py.

The two sides shuffle with different generators, so what leaves a RandomShuffleQueue is
compared as a multiset (``unordered=True``, or sorted in Python); what stays exact is which
operations block, fail or complete, the sizes, and min_after_dequeue's hold while open.
"""
from __future__ import annotations

import functools
import random

import numpy as np

from harness import Scenario
from scenarios._queues import Background, Program, as_lists, settle, value

P = functools.partial
FLOATS = [10.0 * (i + 1) for i in range(10)]
PAIRS = [[2 * i + 1, 2 * i + 2] for i in range(10)]


def rows(batch):
    """The rows of a dequeued batch of two components, as sortable Python pairs."""
    return [list(row) for row in zip(*as_lists(batch))]


class testEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, "float32")
        rec.run(q.size)
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)


class testEnqueueWithShape(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, "float32", shapes=(3, 2))
        rec.run(P(q.enqueue, ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],)))
        rec.run(q.size)
        rec.run(P(q.enqueue, ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],)))
        rec.run(q.size)


class testEnqueueManyWithShape(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, ["int32", "int32"], shapes=[(), (2,)])
        rec.run(P(q.enqueue_many, [[1, 2, 3, 4], [[1, 1], [2, 2], [3, 3], [4, 4]]]))
        rec.run(q.size)
        q2 = m.RandomShuffleQueue(10, 5, "int32", shapes=(3,))
        rec.run(P(q2.enqueue, ([1, 2, 3],)))
        rec.run(P(q2.enqueue_many, ([[1, 2, 3]],)))
        rec.run(q2.size)


class testScalarShapes(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, ["int32", "int32"], shapes=[(), (1,)])
        rec.run(P(q.enqueue_many, [[1, 2, 3, 4], [[5], [6], [7], [8]]]))
        rec.run(P(q.enqueue, [9, [10]]))
        got = [as_lists(value(rec, q.dequeue)) for _ in range(2)]
        got += rows(value(rec, P(q.dequeue_many, 3)))
        rec.put(sorted(got))
        rec.run(q.size)


class testParallelEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        threads = [Background(rec, P(q.enqueue, (x,))) for x in FLOATS]
        for thread in threads:
            thread.join(rec)
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in FLOATS])))


class testParallelDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        for x in FLOATS:
            rec.run(P(q.enqueue, (x,)))
        threads = [Background(rec, q.dequeue) for _ in FLOATS]
        rec.put(sorted(as_lists([t.join(rec, record=False)[0] for t in threads])))


class testDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, (x,)))
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in range(3)])))
        rec.run(q.size)


class testEnqueueAndBlockingDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(3, 0, "float32")
        dequeues = Background(rec, q.dequeue, q.dequeue, q.dequeue)
        settle(q, dequeues=1)
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, (x,)))
        rec.put(sorted(as_lists(dequeues.join(rec, record=False))))


class testMultiEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, ("int32", "float32"))
        for x in [(5, 10.0), (10, 20.0), (15, 30.0)]:
            rec.run(P(q.enqueue, x))
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in range(3)])))


class testQueueSizeEmpty(Program, Scenario):
    def program(self, m, rec):
        rec.run(m.RandomShuffleQueue(10, 5, "float32").size)


class testQueueSizeAfterEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)
        rec.run(q.dequeue)
        rec.run(q.size)


class testEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        elems = [10.0, 20.0, 30.0, 40.0]
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(P(q.enqueue_many, (elems,)))
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in range(8)])))


class testEmptyEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, "float32")
        rec.run(q.size)
        rec.run(P(q.enqueue_many, (np.zeros((0, 2, 3), np.float32),)))
        rec.run(q.size)


class testEmptyDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", shapes=())
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(P(q.dequeue_many, 0))


class testEmptyDequeueUpTo(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", shapes=())
        rec.run(P(q.dequeue_up_to, 0))
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(P(q.dequeue_up_to, 0))


class testEmptyDequeueManyWithNoShape(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.enqueue, (np.array([[10.0, 20.0]], np.float32),)))
        rec.run(P(q.dequeue_many, 0))


class testEmptyDequeueUpToWithNoShape(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        rec.run(P(q.dequeue_up_to, 0))
        rec.run(P(q.enqueue, (np.array([[10.0, 20.0]], np.float32),)))
        rec.run(P(q.dequeue_up_to, 0))


class testMultiEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, ("float32", "int32"))
        float_elems = [10.0, 20.0, 30.0, 40.0]
        int_elems = [[1, 2], [3, 4], [5, 6], [7, 8]]
        rec.run(P(q.enqueue_many, (float_elems, int_elems)))
        rec.run(P(q.enqueue_many, (float_elems, int_elems)))
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in range(8)])))


class testDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, (FLOATS,)))
        got = as_lists(value(rec, P(q.dequeue_many, 5))) + as_lists(value(rec, P(q.dequeue_many, 5)))
        rec.put(sorted(got))
        rec.run(q.size)


class testDequeueUpToNoBlocking(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, (FLOATS,)))
        got = as_lists(value(rec, P(q.dequeue_up_to, 5))) + as_lists(value(rec, P(q.dequeue_up_to, 5)))
        rec.put(sorted(got))
        rec.run(q.size)


class testMultiDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, ("float32", "int32"), shapes=((), (2,)))
        rec.run(P(q.enqueue_many, (FLOATS, PAIRS)))
        first = value(rec, P(q.dequeue_many, 4))
        rec.put([list(component.shape) for component in first])
        got = rows(first) + rows(value(rec, P(q.dequeue_many, 4)))
        got += [as_lists(value(rec, q.dequeue)) for _ in range(2)]
        rec.put(sorted(got))


class testMultiDequeueUpToNoBlocking(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, ("float32", "int32"), shapes=((), (2,)))
        rec.run(P(q.enqueue_many, (FLOATS, PAIRS)))
        got = rows(value(rec, P(q.dequeue_up_to, 4))) + rows(value(rec, P(q.dequeue_up_to, 4)))
        got += [as_lists(value(rec, q.dequeue)) for _ in range(2)]
        rec.put(sorted(got))
        rec.run(q.size)


class testHighDimension(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "int32", ((4, 4, 4, 4),))
        elems = np.array([[[[[x] * 4] * 4] * 4] * 4 for x in range(10)], np.int32)
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(P(q.dequeue_many, 10), unordered=True)


class testParallelEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(1000, 0, "float32", shapes=())
        elems = [10.0 * x for x in range(100)]
        threads = [Background(rec, P(q.enqueue_many, (elems,))) for _ in range(10)]
        for thread in threads:
            thread.join(rec)
        rec.run(P(q.dequeue_many, 1000), unordered=True)


class testParallelDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(1000, 0, "float32", shapes=())
        elems = [10.0 * x for x in range(1000)]
        rec.run(P(q.enqueue_many, (elems,)))
        threads = [Background(rec, P(q.dequeue_many, 100)) for _ in range(10)]
        batches = [t.join(rec, record=False)[0] for t in threads]
        rec.put(sorted(sum((as_lists(b) for b in batches), [])) == elems)


class testParallelDequeueUpTo(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(1000, 0, "float32", shapes=())
        elems = [10.0 * x for x in range(1000)]
        rec.run(P(q.enqueue_many, (elems,)))
        threads = [Background(rec, P(q.dequeue_up_to, 100)) for _ in range(10)]
        batches = [t.join(rec, record=False)[0] for t in threads]
        rec.put(sorted(sum((as_lists(b) for b in batches), [])) == elems)


class testParallelDequeueUpToRandomPartition(Program, Scenario):
    def program(self, m, rec):
        draw = random.Random(4)
        sizes = [draw.randint(50, 150) for _ in range(10)]
        q = m.RandomShuffleQueue(sum(sizes), 0, "float32", shapes=())
        elems = [10.0 * x for x in range(sum(sizes))]
        rec.run(P(q.enqueue_many, (elems,)))
        threads = [Background(rec, P(q.dequeue_up_to, size)) for size in sizes]
        batches = [t.join(rec, record=False)[0] for t in threads]
        rec.put(sorted(len(b) for b in batches) == sorted(sizes))
        rec.put(sorted(sum((as_lists(b) for b in batches), [])) == elems)


class testBlockingDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        dequeue = Background(rec, P(q.dequeue_many, 4), unordered=True)
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeue.join(rec)


class testBlockingDequeueUpTo(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        dequeue = Background(rec, P(q.dequeue_up_to, 4), unordered=True)
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeue.join(rec)


class testDequeueManyWithTensorParameter(Program, Scenario):
    up_to = False

    def program(self, m, rec):
        draw = random.Random(5)
        counts = [draw.randint(1, 10) for _ in range(20)]
        count_q = m.RandomShuffleQueue(100, 0, "int32")
        rec.run(P(count_q.enqueue_many, (counts,)))
        elems = [draw.randint(0, 100) for _ in range(sum(counts))]
        q = m.RandomShuffleQueue(sum(counts), 0, "int32", ((),))
        rec.run(P(q.enqueue_many, (elems,)))
        take = q.dequeue_up_to if self.up_to else q.dequeue_many
        out = [value(rec, lambda: take(count_q.dequeue())) for _ in counts]
        rec.put(sorted(len(batch) for batch in out) == sorted(counts))
        rec.put(sorted(sum(as_lists(out), [])) == sorted(elems))
        rec.run(q.size)


class testDequeueUpToWithTensorParameter(testDequeueManyWithTensorParameter):
    up_to = True


class testDequeueFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 2, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.close)
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in range(4)])))
        rec.run(q.dequeue)


class testBlockingDequeueFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 2, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        got = [value(rec, q.dequeue), value(rec, q.dequeue)]
        dequeues = Background(rec, q.dequeue, q.dequeue)
        settle(q, dequeues=1)
        dequeues.running(rec)  # held by min_after_dequeue
        rec.run(q.size)
        rec.run(q.close)  # lifts it
        got += dequeues.join(rec, record=False)
        rec.put(sorted(as_lists(got)))
        rec.run(q.dequeue)


class testBlockingDequeueFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32")
        dequeue = Background(rec, q.dequeue)
        settle(q, dequeues=1)
        dequeue.running(rec)
        rec.run(q.close)
        dequeue.join(rec)


class testBlockingDequeueManyFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 4), P(q.dequeue_many, 4), unordered=True)
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)


class testBlockingDequeueUpToFromClosedQueueReturnsRemainder(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_up_to, 3), P(q.dequeue_up_to, 3))
        settle(q, dequeues=1)
        rec.run(q.close)
        got = dequeues.join(rec, record=False)
        rec.put([len(batch) for batch in got])
        rec.put(sorted(sum(as_lists(got), [])))


class testBlockingDequeueUpToSmallerThanMinAfterDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(capacity=10, min_after_dequeue=2, dtypes="float32", shapes=((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_up_to, 3), P(q.dequeue_up_to, 3))
        settle(q, dequeues=1)
        rec.run(q.size)  # 2 claimed, 2 held back by min_after_dequeue
        rec.run(q.close)
        got = dequeues.join(rec, record=False)
        rec.put([len(batch) for batch in got])
        rec.put(sorted(sum(as_lists(got), [])))


class testBlockingDequeueManyFromClosedQueueWithElementsRemaining(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        got = as_lists(value(rec, P(q.dequeue_many, 3)))
        dequeue = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(q.size)
        rec.run(q.close)
        dequeue.join(rec)
        got += as_lists(value(rec, lambda: q.dequeue_many(q.size())))  # the claimed element is back
        rec.put(sorted(got))


class testBlockingDequeueManyFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, "float32", ((),))
        dequeue = Background(rec, P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)


class testBlockingDequeueUpToFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, "float32", ((),))
        dequeue = Background(rec, P(q.dequeue_up_to, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)


class testEnqueueToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 4, "float32")
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.close)
        rec.run(P(q.enqueue, (10.0,)))


class testEnqueueManyToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 5, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.close)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.size)


class testBlockingEnqueueToFullQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(4, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue, (50.0,)))
        settle(q, enqueues=1)
        got = as_lists([value(rec, q.dequeue) for _ in range(5)])
        enqueue.join(rec)
        rec.put(sorted(got))
        rec.put(got[0] != 50.0)  # there was no room for 50 when the first left


class testBlockingEnqueueManyToFullQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(4, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue_many, ([50.0, 60.0],)))
        settle(q, enqueues=1)
        got = as_lists([value(rec, q.dequeue) for _ in range(6)])
        enqueue.join(rec)
        rec.put(sorted(got))
        rec.put([got[0] not in (50.0, 60.0), got[1] != 60.0])


class testBlockingEnqueueToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(4, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueues = Background(rec, P(q.enqueue, (50.0,)))
        settle(q, enqueues=1)
        close = Background(rec, q.close)  # waits for the blocked enqueue
        settle(q, enqueues=2)
        close.running(rec)
        rec.put(as_lists(value(rec, q.dequeue)) in [10.0, 20.0, 30.0, 40.0])
        close.join(rec)
        enqueues.join(rec)
        rec.run(P(q.enqueue, (50.0,)))
        rec.run(q.size)


class testBlockingEnqueueManyToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(4, 0, "float32", ((),))
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0],)))
        rec.run(q.size)
        enqueue = Background(rec, P(q.enqueue_many, ([50.0, 60.0],)))
        settle(q, enqueues=1)
        rec.run(q.size)  # 50 is in, 60 waits
        close = Background(rec, q.close)
        settle(q, enqueues=2)
        value(rec, q.dequeue)
        close.join(rec)
        enqueue.join(rec)
        rec.run(P(q.enqueue_many, ([50.0, 60.0],)))
        rec.run(q.size)


class testDequeueManyInDifferentOrders(Program, Scenario):
    how = "many"

    def program(self, m, rec):
        queues = [m.RandomShuffleQueue(10, 5, "int32", ((),), seed=seed) for seed in (1729, 87539319)]
        for q in queues:
            rec.run(P(q.enqueue_many, ([1, 2, 3, 4, 5],)))
            rec.run(P(q.enqueue_many, ([1, 2, 3, 4, 5],)))

        def take(q):
            if self.how == "one":
                return as_lists([value(rec, q.dequeue) for _ in range(5)])
            return as_lists(value(rec, P(q.dequeue_many if self.how == "many" else q.dequeue_up_to, 5)))

        results = [take(q) for q in queues]
        for q in queues:
            rec.run(q.close)
        results += [take(q) for q in queues]
        rec.put(all(results[i] != results[j] for i in range(4) for j in range(i)))
        rec.put(sorted(sum(results, [])))


class testDequeueUpToInDifferentOrders(testDequeueManyInDifferentOrders):
    how = "up_to"


class testDequeueInDifferentOrders(testDequeueManyInDifferentOrders):
    how = "one"


class testBigEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(5, 0, "int32", ((),))
        enqueue = Background(rec, P(q.enqueue_many, (list(range(1, 11)),)))
        settle(q, enqueues=1)
        got = [value(rec, q.dequeue)]
        rec.run(q.size)
        got += [value(rec, q.dequeue) for _ in range(3)]
        settle(q, enqueues=1)
        enqueue.running(rec)
        rec.run(q.size)
        got.append(value(rec, q.dequeue))
        enqueue.join(rec)
        for _ in range(5):
            rec.run(q.size)
            got.append(value(rec, q.dequeue))
        rec.put(sorted(as_lists(got)))


class testBigDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(2, 0, "int32", ((),))
        dequeue = Background(rec, P(q.dequeue_many, 4), unordered=True)
        for e in range(4):
            settle(q, dequeues=1)
            dequeue.running(rec)
            rec.run(P(q.enqueue, (e,)))
            rec.run(q.size)
        dequeue.join(rec)


# -- edge cases around them ------------------------------------------------------------------


class testMinAfterDequeueNotBelowCapacity(Program, Scenario):
    cases = [(3, 3), (3, 5), (3, -1)]

    def program(self, m, rec):
        capacity, min_after_dequeue = self.case
        rec.run(lambda: m.RandomShuffleQueue(capacity, min_after_dequeue, "int32").size())


class testDequeueHoldsMinAfterDequeueUntilClosed(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 2, "int32", ())
        rec.run(P(q.enqueue_many, ([1, 2, 3],)))
        got = [value(rec, q.dequeue)]
        rec.blocks(q.dequeue)
        rec.blocks(P(q.dequeue_many, 1))
        rec.run(q.size)
        rec.run(q.close)
        got += [value(rec, q.dequeue), value(rec, q.dequeue)]
        rec.put(sorted(as_lists(got)))
        rec.run(q.dequeue)


class testDequeueManyBeyondCapacityMinusMinAfterDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(5, 3, "int32", ())
        dequeue = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([1, 2, 3, 4, 5],)))
        rec.run(q.size)  # two claimed, three kept
        dequeue.running(rec)
        rec.run(P(q.enqueue, 6))
        got = as_lists(dequeue.join(rec, record=False)[0])
        rec.run(q.size)
        rec.run(q.close)
        rest = as_lists(value(rec, P(q.dequeue_up_to, 3)))
        rec.put(sorted(got + rest))


class testClosedBlockingDequeueManyRestoresPartialBatch(Program, Scenario):
    def program(self, m, rec):
        q = m.RandomShuffleQueue(10, 0, ("float32", "float32"), ((), ()))
        rec.run(P(q.enqueue_many, ([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])))
        dequeue = Background(rec, P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.size)
        rec.run(q.close)
        dequeue.join(rec)
        rec.run(q.size)
        rec.run(P(q.dequeue_many, 3), unordered=True)


class testSameSeedSameOrder(Program, Scenario):
    def program(self, m, rec):
        def drain(seed):
            q = m.RandomShuffleQueue(20, 0, "int32", (), seed=seed)
            value(rec, P(q.enqueue_many, (list(range(20)),)))
            return as_lists(value(rec, P(q.dequeue_many, 20)))

        first, again, other = drain(7), drain(7), drain(8)
        rec.put([first == again, first != other, sorted(first) == list(range(20)), first != list(range(20))])
