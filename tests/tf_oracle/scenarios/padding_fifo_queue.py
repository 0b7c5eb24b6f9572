"""Scenarios from tensorflow/python/kernel_tests/data_structures/padding_fifo_queue_test.py.

TF's PaddingFIFOQueue tests repeat its FIFOQueue tests with shapes given as a list (required
here) and add padding: None dims padded with 0 (b"" for strings) up to the batch's largest.
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
SCALAR = ((),)


class testEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)


class testEnqueueWithShape(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", shapes=((3, 2),))
        rec.run(P(q.enqueue, ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],)))
        rec.run(P(q.enqueue, ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],)))
        rec.run(q.size)


class testEnqueueManyWithShape(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ["int32", "int32"], shapes=[(), (2,)])
        rec.run(P(q.enqueue_many, [[1, 2, 3, 4], [[1, 1], [2, 2], [3, 3], [4, 4]]]))
        rec.run(q.size)


class testParallelEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        threads = [Background(rec, P(q.enqueue, (x,))) for x in FLOATS]
        for thread in threads:
            thread.join(rec)
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in FLOATS])))


class testParallelDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        for x in FLOATS:
            rec.run(P(q.enqueue, (x,)))
        threads = [Background(rec, q.dequeue) for _ in FLOATS]
        rec.put(sorted(as_lists([t.join(rec, record=False)[0] for t in threads])))


class testDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, (x,)))
        for _ in range(3):
            rec.run(q.dequeue)


class testEnqueueAndBlockingDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(3, "float32", SCALAR)
        dequeues = Background(rec, q.dequeue, q.dequeue, q.dequeue)
        settle(q, dequeues=1)
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, (x,)))
        dequeues.join(rec)


class testMultiEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("int32", "float32"), ((), ()))
        for x in [(5, 10.0), (10, 20.0), (15, 30.0)]:
            rec.run(P(q.enqueue, x))
        for _ in range(3):
            rec.run(q.dequeue)


class testQueueSizeEmpty(Program, Scenario):
    def program(self, m, rec):
        rec.run(m.PaddingFIFOQueue(10, "float32", SCALAR).size)


class testQueueSizeAfterEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)
        rec.run(q.dequeue)
        rec.run(q.size)


class testEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        elems = [10.0, 20.0, 30.0, 40.0]
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(P(q.enqueue_many, (elems,)))
        for _ in range(8):
            rec.run(q.dequeue)


class testEmptyEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", ((None, None),))
        rec.run(q.size)
        rec.run(P(q.enqueue_many, (np.zeros((0, 2, 3), np.float32),)))
        rec.run(q.size)


class testEmptyDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", shapes=SCALAR)
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(P(q.dequeue_many, 0))


class testEmptyDequeueManyWithDynamicShape(Program, Scenario):
    up_to = False

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", shapes=((None,),))
        take = q.dequeue_up_to if self.up_to else q.dequeue_many
        rec.run(P(take, 0))
        rec.run(P(q.enqueue, ([10.0],)))
        rec.run(P(take, 0))
        rec.run(q.size)


class testEmptyDequeueUpToWithDynamicShape(testEmptyDequeueManyWithDynamicShape):
    up_to = True


class testConstructPaddingFIFOQueueWithNoShape(Program, Scenario):
    cases = [None, (None,), [None], (3, 2), (), [(None,), None]]

    def program(self, m, rec):
        rec.run(lambda: m.PaddingFIFOQueue(10, "float32", self.case).size())


class testMultiEnqueueMany(Program, Scenario):
    shapes = ((), (2,))

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("float32", "int32"), self.shapes)
        float_elems = [10.0, 20.0, 30.0, 40.0]
        int_elems = [[1, 2], [3, 4], [5, 6], [7, 8]]
        rec.run(P(q.enqueue_many, (float_elems, int_elems)))
        rec.run(P(q.enqueue_many, (float_elems, int_elems)))
        for _ in range(8):
            rec.run(q.dequeue)


class testMultiEnqueueManyWithPartiallyKnownShapes(testMultiEnqueueMany):
    shapes = ((), (None,))


class testDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, (FLOATS,)))
        rec.run(P(q.dequeue_many, 4))
        rec.run(P(q.dequeue_many, 4))


class testDequeueUpToNoBlocking(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, (FLOATS,)))
        rec.run(P(q.dequeue_up_to, 4))
        rec.run(P(q.dequeue_up_to, 4))


class testMultiDequeueMany(Program, Scenario):
    shapes = ((), (2,))

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("float32", "int32"), shapes=self.shapes)
        rec.run(P(q.enqueue_many, (FLOATS, PAIRS)))
        rec.run(P(q.dequeue_many, 4))
        rec.run(P(q.dequeue_many, 4))
        rec.run(q.dequeue)


class testMultiDequeueManyWithPartiallyKnownShapes(testMultiDequeueMany):
    shapes = ((), (None,))


STRINGS = [["a"], ["ab"], ["abc"], ["abc", "d"], ["abc", "d", "e"], ["abc", "d", "e", "f"]]
ROWS = [[[1]], [[2]], [[3]], [[1, 2]], [[1, 2, 3]], [[1, 2, 3, 4]]]


class testMultiDequeueManyWithPartiallyKnownShapesAndVariableSizeInput(Program, Scenario):
    up_to = False

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("string", "int32"), shapes=((None,), (1, None)))
        for words, numbers in zip(STRINGS, ROWS):
            rec.run(P(q.enqueue, (words, numbers)))
        rec.run(P(q.dequeue_up_to if self.up_to else q.dequeue_many, 5))
        rec.run(q.dequeue)


class testMultiDequeueUpToPartiallyKnownShapesAndVariableInputNoBlocking(
        testMultiDequeueManyWithPartiallyKnownShapesAndVariableSizeInput):
    up_to = True


class testHighDimension(Program, Scenario):
    shape = (4, 4, 4, 4)

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "int32", (self.shape,))
        elems = np.array([[[[[x] * 4] * 4] * 4] * 4 for x in range(10)], np.int32)
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(P(q.dequeue_many, 10))


class testPartiallyKnownHighDimension(testHighDimension):
    shape = (4, None, 4, None)


class testEnqueueWrongShape(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("int32", "int32"), ((), (2,)))
        rec.run(P(q.enqueue, ([1, 2], [2, 2])))
        rec.run(P(q.enqueue_many, (7, [[1, 2], [3, 4], [5, 6]])))


class testBatchSizeMismatch(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("int32", "int32", "int32"), ((), (), ()))
        rec.run(P(q.enqueue_many, ([1, 2, 3], [1, 2], [1, 2, 3])))


class testEnqueueManyEmptyTypeConversion(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, ("int32", "float32"), ((), ()))
        rec.run(P(q.enqueue_many, ([], [])))
        rec.run(q.size)
        rec.run(P(q.dequeue_many, 0))


class testEnqueueWrongPartiallyKnownShapeAtRuntime(Scenario):
    def tf(self, tf, rec):
        q = tf.PaddingFIFOQueue(10, (tf.int32, tf.int32), ((2, 2), (None, 3)))
        bad = tf.placeholder_with_default(np.ones((3, 4), np.int32), shape=None)
        rec.run(q.enqueue((np.ones((2, 2), np.int32), bad)))
        rec.run(q.size())

    def lo(self, lo, rec):
        q = lo.PaddingFIFOQueue(10, ("int32", "int32"), ((2, 2), (None, 3)))
        rec.run(lambda: q.enqueue((np.ones((2, 2), np.int32), np.ones((3, 4), np.int32))))
        rec.run(q.size)


class testEnqueueDequeueManyWrongPartiallyKnownShape(Scenario):
    def tf(self, tf, rec):
        q = tf.PaddingFIFOQueue(10, (tf.int32, tf.int32), ((2, 2), (None, 3)))
        bad = tf.placeholder_with_default(np.ones((2, 3, 4), np.int32), shape=None)
        rec.run(q.enqueue_many((np.ones((2, 2, 2), np.int32), bad)))
        rec.run(q.size())

    def lo(self, lo, rec):
        q = lo.PaddingFIFOQueue(10, ("int32", "int32"), ((2, 2), (None, 3)))
        rec.run(lambda: q.enqueue_many((np.ones((2, 2, 2), np.int32), np.ones((2, 3, 4), np.int32))))
        rec.run(q.size)


class testParallelEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(1000, "float32", shapes=SCALAR)
        elems = [10.0 * x for x in range(100)]
        threads = [Background(rec, P(q.enqueue_many, (elems,))) for _ in range(10)]
        for thread in threads:
            thread.join(rec)
        rec.run(P(q.dequeue_many, 1000), unordered=True)


class testParallelDequeueMany(Program, Scenario):
    up_to = False

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(1000, "float32", shapes=SCALAR)
        elems = [10.0 * x for x in range(1000)]
        rec.run(P(q.enqueue_many, (elems,)))
        if self.up_to:
            rec.run(q.close)
        take = P(q.dequeue_up_to, 101) if self.up_to else P(q.dequeue_many, 100)
        threads = [Background(rec, take) for _ in range(10)]
        batches = [t.join(rec, record=False)[0] for t in threads]
        rec.put(sorted(sum((as_lists(b) for b in batches), [])) == elems)


class testParallelDequeueUpTo(testParallelDequeueMany):
    up_to = True


class testParallelEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(50, "float32", shapes=SCALAR)
        rec.run(P(q.enqueue_many, ([10.0] * 49,)))
        enqueuers = [Background(rec, *[P(q.enqueue, (20.0,))] * 20) for _ in range(10)]
        dequeuers = [Background(rec, *[q.dequeue] * 20) for _ in range(10)]
        for thread in enqueuers:
            thread.join(rec)
        got = sum((as_lists(t.join(rec, record=False)) for t in dequeuers), [])
        got += as_lists(value(rec, P(q.dequeue_many, 49)))
        rec.put(len(got))
        rec.put(sorted(set(got)) <= [10.0, 20.0])


class testMixtureOfEnqueueAndEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "int32", shapes=SCALAR)
        dequeues = Background(rec, *[q.dequeue] * 250)
        draw, enqueued = random.Random(6), 0
        while enqueued < 250:
            if draw.random() > 0.5:
                value(rec, P(q.enqueue, (enqueued,)))
                enqueued += 1
            else:
                count = draw.randint(0, min(20, 250 - enqueued))
                value(rec, P(q.enqueue_many, (np.arange(enqueued, enqueued + count, dtype=np.int32),)))
                enqueued += count
        rec.run(q.close)
        rec.put(as_lists(dequeues.join(rec, record=False)) == list(range(250)))
        rec.run(q.size)


class testMixtureOfDequeueAndDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "int32", shapes=SCALAR)
        enqueue = Background(rec, P(q.enqueue_many, (np.arange(250, dtype=np.int32),)))
        draw, got = random.Random(7), []
        while len(got) < 250:
            if draw.random() > 0.5:
                got.append(as_lists(value(rec, q.dequeue)))
            else:
                count = draw.randint(0, min(20, 250 - len(got)))
                got.extend(as_lists(value(rec, P(q.dequeue_many, count))))
        rec.put(got == list(range(250)))
        rec.run(q.close)
        enqueue.join(rec)
        rec.run(q.size)


class testBlockingDequeueMany(Program, Scenario):
    up_to = False

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        dequeue = Background(rec, P(q.dequeue_up_to if self.up_to else q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeue.join(rec)


class testBlockingDequeueUpTo(testBlockingDequeueMany):
    up_to = True


class testDequeueManyWithTensorParameter(Program, Scenario):
    def program(self, m, rec):
        draw = random.Random(8)
        counts = [draw.randint(1, 10) for _ in range(20)]
        count_q = m.PaddingFIFOQueue(100, "int32", SCALAR)
        rec.run(P(count_q.enqueue_many, (counts,)))
        elems = [draw.randint(0, 100) for _ in range(sum(counts))]
        q = m.PaddingFIFOQueue(sum(counts), "int32", SCALAR)
        rec.run(P(q.enqueue_many, (elems,)))
        out = [value(rec, lambda: q.dequeue_many(count_q.dequeue())) for _ in counts]
        rec.put([len(batch) for batch in out])
        rec.put(sum(as_lists(out), []) == elems)


class testDequeueFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.close)
        for _ in range(5):
            rec.run(q.dequeue)


class testBlockingDequeueFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, *[q.dequeue] * 5)
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)


class testDequeueUpToFromClosedQueueReturnsRemainder(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_up_to, 3), P(q.dequeue_up_to, 3))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)


class testBlockingDequeueFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        dequeue = Background(rec, q.dequeue)
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)


class testBlockingDequeueManyFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 4), P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)


class testBlockingDequeueManyButNotAllFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 3), P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)
        rec.run(q.dequeue)


class testEnqueueManyLargerThanCapacityWithConcurrentDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 3), P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)
        rec.run(q.dequeue)


class testClosedBlockingDequeueManyRestoresPartialBatch(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, ("float32", "float32"), ((), ()))
        rec.run(P(q.enqueue_many, ([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])))
        dequeue = Background(rec, P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)
        for _ in range(3):
            rec.run(q.dequeue)
        rec.run(q.size)


class testBlockingDequeueManyFromClosedEmptyQueue(Program, Scenario):
    up_to = False

    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        dequeue = Background(rec, P(q.dequeue_up_to if self.up_to else q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)


class testBlockingDequeueUpToFromClosedEmptyQueue(testBlockingDequeueManyFromClosedEmptyQueue):
    up_to = True


class testEnqueueToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.close)
        rec.run(P(q.enqueue, (10.0,)))


class testEnqueueManyToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(10, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.close)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))


class testBlockingEnqueueToFullQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue, (50.0,)))
        settle(q, enqueues=1)
        for _ in range(5):
            rec.run(q.dequeue)
        enqueue.join(rec)


class testBlockingEnqueueManyToFullQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue_many, ([50.0, 60.0],)))
        settle(q, enqueues=1)
        for _ in range(6):
            rec.run(q.dequeue)
        enqueue.join(rec)


class testBlockingEnqueueBeforeClose(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue, (50.0,)))
        settle(q, enqueues=1)
        close = Background(rec, q.close)
        settle(q, enqueues=2)
        close.running(rec)
        rec.run(q.dequeue)
        enqueue.join(rec)
        close.join(rec)
        for _ in range(4):
            rec.run(q.dequeue)
        rec.run(q.size)


class testBlockingEnqueueManyBeforeClose(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, "float32", SCALAR)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0],)))
        enqueue = Background(rec, P(q.enqueue_many, ([50.0, 60.0],)))
        settle(q, enqueues=1)
        close = Background(rec, q.close)
        settle(q, enqueues=2)
        rec.run(q.dequeue)
        enqueue.join(rec)
        close.join(rec)
        for _ in range(5):
            rec.run(q.dequeue)


class testDoesNotLoseValue(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(1, "float32", SCALAR)
        rec.run(P(q.enqueue, (10.0,)))
        for _ in range(50):
            rec.run(q.size)


class testBigEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(5, "int32", SCALAR)
        enqueue = Background(rec, P(q.enqueue_many, (list(range(1, 11)),)))
        settle(q, enqueues=1)
        rec.run(q.size)
        for _ in range(4):
            rec.run(q.dequeue)
        settle(q, enqueues=1)
        enqueue.running(rec)
        rec.run(q.size)
        rec.run(q.dequeue)
        enqueue.join(rec)
        for _ in range(5):
            rec.run(q.size)
            rec.run(q.dequeue)


class testBigDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(2, "int32", SCALAR)
        dequeue = Background(rec, P(q.dequeue_many, 4))
        for e in range(4):
            settle(q, dequeues=1)
            dequeue.running(rec)
            rec.run(P(q.enqueue, (e,)))
            rec.run(q.size)
        dequeue.join(rec)


DTYPES = ["float32", "float64", "int32", "uint8", "int16", "int8", "int64", "bool", "complex64", "complex128"]


class testDtypes(Program, Scenario):
    def program(self, m, rec):
        shape = (8, 2, 3)
        state = np.random.RandomState(1)
        columns = []
        for dtype in DTYPES:
            array = state.randint(-10, 10, shape)
            columns.append((array > 0) if dtype == "bool" else np.sqrt(array.astype(dtype)) if "complex" in dtype
                           else array.astype(dtype))
        q = m.PaddingFIFOQueue(8, DTYPES, [shape[1:]] * len(DTYPES))
        rec.run(P(q.enqueue_many, columns))
        for column in value(rec, P(q.dequeue_many, 8)):  # JSON has no complex: real and imaginary parts
            rec.put([column.real, column.imag] if "complex" in str(column.dtype) else column)


class testUnknownRank(Program, Scenario):
    def program(self, m, rec):
        rec.run(lambda: m.PaddingFIFOQueue(32, ["float32"], [None]).size())


# -- edge cases around them ------------------------------------------------------------------


class testPadsEveryNoneDimToTheBatchMaximum(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(5, ("int64", "string"), shapes=((None, 2), (None, None)))
        rec.run(P(q.enqueue, ([[1, 1], [2, 2]], [["a", "b"]])))
        rec.run(P(q.enqueue, ([[3, 3]], [["d", "e", "f"]])))
        rec.run(P(q.enqueue, (np.zeros((0, 2), np.int64), [["g"], ["h"], ["i"]])))
        rec.run(P(q.dequeue_many, 3))


class testDequeueUpToPadsToWhatIsLeft(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(5, "int32", shapes=((None,),))
        rec.run(P(q.enqueue, ([1, 2, 3, 4],)))
        rec.run(P(q.enqueue, ([5],)))
        rec.run(P(q.enqueue, ([6, 7],)))
        rec.run(q.dequeue)
        rec.run(q.close)
        rec.run(P(q.dequeue_up_to, 5))


class testBigDequeueManyOfVariableShapes(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(2, "float32", shapes=((None,),))
        dequeue = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        for row in ([1.0], [2.0, 3.0, 4.0], [5.0, 6.0]):
            rec.run(P(q.enqueue, (row,)))
        dequeue.join(rec)


class testClosedBlockingDequeueManyRestoresVariableShapes(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, "int32", shapes=((None,),))
        dequeue = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue, ([1],)))
        rec.run(P(q.enqueue, ([2, 3],)))
        rec.run(q.close)
        dequeue.join(rec)
        rec.run(q.dequeue)
        rec.run(q.dequeue)


class testNamedComponentsArePadded(Program, Scenario):
    def program(self, m, rec):
        q = m.PaddingFIFOQueue(4, ("string", "int64"), shapes=((None,), (None,)), names=("word", "ids"))
        rec.run(P(q.enqueue, {"word": ["a", "b"], "ids": [1, 2, 3]}))
        rec.run(P(q.enqueue, {"word": ["c"], "ids": [4]}))
        rec.run(P(q.dequeue_many, 2))
