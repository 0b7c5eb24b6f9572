"""Scenarios from tensorflow/python/kernel_tests/data_structures/fifo_queue_test.py."""
from __future__ import annotations

import functools
import random

import numpy as np

from harness import Scenario
from scenarios._queues import Background, Program, as_lists, settle, value

P = functools.partial


class testEnqueueAndDequeue(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, tf.float32)
        elems = [10.0, 20.0, 30.0]
        for x in elems:
            rec.run(q.enqueue((x,)))
        for _ in elems:
            rec.run(q.dequeue())

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, "float32")
        for x in [10.0, 20.0, 30.0]:
            rec.run(lambda: q.enqueue((x,)))
        for _ in range(3):
            rec.run(q.dequeue)


class testDequeueFromClosedEmptyQueue(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, tf.float32)
        rec.run(q.close())
        rec.run(q.dequeue())
        rec.run(q.size())
        rec.run(q.is_closed())

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, "float32")
        rec.run(q.close)
        rec.run(q.dequeue)
        rec.run(q.size)
        rec.run(q.is_closed)


class testBlockingDequeue(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, tf.float32, shapes=())
        rec.blocks(q.dequeue())
        rec.run(q.enqueue_many(([1.0, 2.0],)))
        rec.run(q.dequeue_many(2))

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, "float32", shapes=())
        rec.blocks(q.dequeue)
        rec.run(lambda: q.enqueue_many(([1.0, 2.0],)))
        rec.run(lambda: q.dequeue_many(2))


class testDequeueManyZero(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, tf.int32, shapes=(2,))
        rec.run(q.enqueue_many(([[1, 2], [3, 4]],)))
        rec.run(lambda: q.dequeue_many(0))
        rec.run(q.size())

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, "int32", shapes=(2,))
        rec.run(lambda: q.enqueue_many(([[1, 2], [3, 4]],)))
        rec.run(lambda: q.dequeue_many(0))
        rec.run(q.size)


class testDoubleClose(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, tf.float32)
        rec.run(q.close())
        rec.run(q.close())

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, "float32")
        rec.run(q.close)
        rec.run(q.close)


# -- FIFOQueueTest ---------------------------------------------------------------------------


class testEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)


class testEnqueueHalf(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float16")
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.dequeue)


class testEnqueueWithShape(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", shapes=(3, 2))
        rec.run(P(q.enqueue, ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],)))
        rec.run(P(q.enqueue, ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],)))
        rec.run(q.size)


class testEnqueueManyWithShape(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ["int32", "int32"], shapes=[(), (2,)])
        rec.run(P(q.enqueue_many, [[1, 2, 3, 4], [[1, 1], [2, 2], [3, 3], [4, 4]]]))
        rec.run(q.size)
        rec.run(q.dequeue)


class testMultipleDequeues(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ["int32"], shapes=[()])
        rec.run(P(q.enqueue_many, [[1, 2, 3]]))
        for _ in range(3):
            rec.run(q.dequeue)


class testQueuesDontShare(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ["int32"], shapes=[()])
        rec.run(P(q.enqueue, 1))
        q2 = m.FIFOQueue(10, ["int32"], shapes=[()])
        rec.run(P(q2.enqueue, 2))
        rec.run(q2.dequeue)
        rec.run(q.dequeue)


class testEnqueueDictWithoutNames(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue, {"a": 12.0}))
        rec.run(P(q.enqueue_many, {"a": [12.0, 13.0]}))
        rec.run(q.size)


class testDequeueHalf(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float16")
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, (x,)))
        for _ in range(3):
            rec.run(q.dequeue)


class testMultiEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("int32", "float32"))
        for x in [(5, 10.0), (10, 20.0), (15, 30.0)]:
            rec.run(P(q.enqueue, x))
        for _ in range(3):
            rec.run(q.dequeue)


class testQueueSizeEmpty(Program, Scenario):
    def program(self, m, rec):
        rec.run(m.FIFOQueue(10, "float32").size)


class testQueueSizeAfterEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)
        rec.run(q.dequeue)
        rec.run(q.size)


class testEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        elems = [10.0, 20.0, 30.0, 40.0]
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(P(q.enqueue_many, (elems,)))
        for _ in range(8):
            rec.run(q.dequeue)


class testEmptyEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(q.size)
        rec.run(P(q.enqueue_many, (np.zeros((0, 2, 3), np.float32),)))
        rec.run(q.size)


class testEmptyDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", shapes=())
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(P(q.dequeue_many, 0))
        rec.run(q.size)


class testEmptyDequeueUpTo(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", shapes=())
        rec.run(P(q.dequeue_up_to, 0))
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(P(q.dequeue_up_to, 0))
        rec.run(q.size)


class testEmptyDequeueManyWithNoShape(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.dequeue_up_to, 2))


class testMultiEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("float32", "int32"))
        float_elems = [10.0, 20.0, 30.0, 40.0]
        int_elems = [[1, 2], [3, 4], [5, 6], [7, 8]]
        rec.run(P(q.enqueue_many, (float_elems, int_elems)))
        rec.run(P(q.enqueue_many, (float_elems, int_elems)))
        for _ in range(8):
            rec.run(q.dequeue)


class testDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        rec.run(P(q.enqueue_many, ([10.0 * (i + 1) for i in range(10)],)))
        rec.run(P(q.dequeue_many, 4))
        rec.run(P(q.dequeue_many, 4))
        rec.run(q.size)


class testDequeueUpToNoBlocking(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        rec.run(P(q.enqueue_many, ([10.0 * (i + 1) for i in range(10)],)))
        rec.run(P(q.dequeue_up_to, 4))
        rec.run(P(q.dequeue_up_to, 4))
        rec.run(q.size)


FLOATS = [10.0 * (i + 1) for i in range(10)]
PAIRS = [[2 * i + 1, 2 * i + 2] for i in range(10)]


class testMultiDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("float32", "int32"), shapes=((), (2,)))
        rec.run(P(q.enqueue_many, (FLOATS, PAIRS)))
        rec.run(P(q.dequeue_many, 4))
        rec.run(P(q.dequeue_many, 4))
        rec.run(q.dequeue)


class testMultiDequeueUpToNoBlocking(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("float32", "int32"), shapes=((), (2,)))
        rec.run(P(q.enqueue_many, (FLOATS, PAIRS)))
        rec.run(P(q.dequeue_up_to, 4))
        rec.run(P(q.dequeue_up_to, 4))
        rec.run(q.size)


class testHighDimension(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "int32", (4, 4, 4, 4))
        elems = np.array([[[[[x] * 4] * 4] * 4] * 4 for x in range(10)], np.int32)
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(P(q.dequeue_many, 10))


class testEnqueueWrongShape(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("int32", "int32"), ((), (2,)))
        rec.run(P(q.enqueue, ([1, 2], [2, 2])))
        rec.run(P(q.enqueue_many, (7, [[1, 2], [3, 4], [5, 6]])))
        rec.run(q.size)


class testEnqueueWrongType(Scenario):
    differs = ("a tensor of another dtype is converted when no value changes (torch's integers default "
               "to int64, TF's to int32); TF raises ValueError for any tensor of another dtype")

    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, (tf.int32, tf.float32), ((), ()))
        rec.run(lambda: q.enqueue((tf.constant(1), tf.constant(2))))
        rec.run(lambda: q.enqueue_many((tf.constant([1]), tf.constant([2]))))
        rec.run(q.size())

    def lo(self, lo, rec):
        import torch

        q = lo.FIFOQueue(10, ("int32", "float32"), ((), ()))
        rec.run(lambda: q.enqueue((torch.tensor(1, dtype=torch.int32), torch.tensor(2, dtype=torch.int32))))
        rec.run(lambda: q.enqueue_many((torch.tensor([1], dtype=torch.int32), torch.tensor([2], dtype=torch.int32))))
        rec.run(q.size)


class testEnqueueWrongTypePythonValue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("int32", "float32"), ((), ()))
        rec.run(P(q.enqueue, (1.5, 1.0)))
        rec.run(P(q.enqueue, (1, "a")))
        rec.run(P(q.enqueue_many, ([1, 2], ["a", "b"])))
        rec.run(P(q.enqueue, (np.int64(3), np.float64(0.25))))
        rec.run(q.dequeue)


class testEnqueueLossyNumpyValue(Program, Scenario):
    differs = ("a value that would change on conversion (1.5 into int32, 2**40 into int32) is refused with "
               "a TypeError; TF's conversion of a numpy value truncates or wraps it silently")

    def program(self, m, rec):
        q = m.FIFOQueue(10, "int32", ())
        rec.run(P(q.enqueue, np.array(1.5)))
        rec.run(P(q.enqueue, np.array(2**40)))
        rec.run(q.size)


class testEnqueueTooFewComponents(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("int32", "float32"), ((), ()))
        rec.run(P(q.enqueue, (1,)))
        rec.run(q.size)


class testEnqueueTooManyComponents(Program, Scenario):
    differs = "an element with more components than the queue has is refused; TF drops the extra ones silently"

    def program(self, m, rec):
        q = m.FIFOQueue(10, ("int32", "float32"), ((), ()))
        rec.run(P(q.enqueue, (7, 2.0, 3.0)))
        rec.run(q.size)


class testDequeueManyWithTensorParameter(Program, Scenario):
    def program(self, m, rec):
        draw = random.Random(0)
        counts = [draw.randint(1, 10) for _ in range(20)]
        count_q = m.FIFOQueue(100, "int32", ())
        rec.run(P(count_q.enqueue_many, (counts,)))
        elems = [draw.randint(0, 100) for _ in range(sum(counts))]
        q = m.FIFOQueue(sum(counts), "int32", ())
        rec.run(P(q.enqueue_many, (elems,)))
        out = [value(rec, lambda: q.dequeue_many(count_q.dequeue())) for _ in counts]
        rec.put([len(batch) for batch in out])
        rec.put(sum(as_lists(out), []) == elems)


class testDequeueFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.close)
        for _ in range(5):
            rec.run(q.dequeue)


class testDoesNotLoseValue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(1, "float32")
        rec.run(P(q.enqueue, (10.0,)))
        for _ in range(50):
            rec.run(q.size)


DTYPES = ["float32", "float64", "int32", "uint8", "int16", "int8", "int64", "uint16", "bool", "complex64",
          "complex128"]


def dtype_columns(dtypes, shape):
    """One seeded array per dtype, as TF's testDtypes makes them (complex ones are square roots)."""
    state = np.random.RandomState(0)
    columns = []
    for dtype in dtypes:
        array = state.randint(-10, 10, shape)
        if dtype == "bool":
            array = array > 0
        elif dtype.startswith("complex"):
            array = np.sqrt(array.astype(dtype))
        columns.append(array.astype(dtype))
    return columns


def put_components(rec, values):
    """Record each component; complex ones as their real and imaginary parts (JSON has no complex)."""
    for column in values:
        rec.put([column.real, column.imag] if "complex" in str(column.dtype) else column)


class testDtypes(Program, Scenario):
    def program(self, m, rec):
        shape = (8, 2, 3)
        q = m.FIFOQueue(8, DTYPES, [shape[1:]] * len(DTYPES))
        rec.run(P(q.enqueue_many, dtype_columns(DTYPES, shape)))
        put_components(rec, value(rec, P(q.dequeue_many, 8)))


class testEnqueueDequeueOneComponent(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", shapes=((),), names="f")
        for bad in [10.0, (10.0,), {}, {"x": 12}, {"f": 10.0, "s": "aa"}]:
            rec.run(P(q.enqueue, bad))
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, {"f": x}))
        for bad in [[40.0, 50.0], {}, {"x": 12}, {"f": [40.0, 50.0], "s": ["aa", "bb"]}]:
            rec.run(P(q.enqueue_many, bad))
        rec.run(P(q.enqueue_many, {"f": [40.0, 50.0]}))
        rec.run(q.dequeue)
        rec.run(P(q.dequeue_many, 2))
        rec.run(P(q.dequeue_many, 2))


class testEnqueueDequeueMultipleComponent(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("float32", "int32", "string"), shapes=((), (), ()), names=("f", "i", "s"))
        bad_keys = [{}, {"x": 10.0}, {"i": 12, "s": "aa"}, {"i": 123, "s": "aa", "f": 10.0, "x": 10.0}]
        for bad in [(10.0, 123, "aa")] + bad_keys:
            rec.run(P(q.enqueue, bad))
        rec.run(P(q.enqueue, {"i": 123, "s": "aa", "f": 10.0}))
        rec.run(P(q.enqueue, {"i": 124, "s": "bb", "f": 20.0}))
        rec.run(P(q.enqueue, {"i": 125, "s": "cc", "f": 30.0}))
        rec.run(P(q.enqueue_many, ([40.0, 50.0], [126, 127], ["dd", "ee"])))
        rec.run(P(q.enqueue_many, {"f": [40.0, 50.0], "i": [126, 127], "s": ["dd", "ee"], "x": [1, 2]}))
        rec.run(P(q.enqueue_many, {"f": [40.0, 50.0], "i": [126, 127], "s": ["dd", "ee"]}))
        rec.run(q.dequeue)
        rec.run(P(q.dequeue_many, 2))
        rec.run(P(q.dequeue_many, 2))


class testBatchSizeMismatch(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, ("int32", "int32", "int32"), ((), (), ()))
        rec.run(P(q.enqueue_many, ([1, 2, 3], [1, 2], [1, 2, 3])))
        rec.run(q.size)


class testEnqueueWrongShapeAtRuntime(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, (tf.int32, tf.int32), ((2, 2), (3, 3)))
        bad = tf.placeholder_with_default(np.ones((3, 4), np.int32), shape=None)
        rec.run(q.enqueue((np.ones((2, 2), np.int32), bad)))
        rec.run(q.size())

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, ("int32", "int32"), ((2, 2), (3, 3)))
        rec.run(lambda: q.enqueue((np.ones((2, 2), np.int32), np.ones((3, 4), np.int32))))
        rec.run(q.size)


class testEnqueueDequeueManyWrongShape(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, (tf.int32, tf.int32), ((2, 2), (3, 3)))
        bad = tf.placeholder_with_default(np.ones((2, 3, 4), np.int32), shape=None)
        rec.run(q.enqueue_many((np.ones((2, 2, 2), np.int32), bad)))
        rec.run(q.size())

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, ("int32", "int32"), ((2, 2), (3, 3)))
        rec.run(lambda: q.enqueue_many((np.ones((2, 2, 2), np.int32), np.ones((2, 3, 4), np.int32))))
        rec.run(q.size)


class testDequeueManyNegative(Scenario):
    def tf(self, tf, rec):
        q = tf.FIFOQueue(10, tf.int32, ())
        rec.run(q.dequeue_many(tf.placeholder_with_default(-1, ())))
        rec.run(q.dequeue_up_to(tf.placeholder_with_default(-1, ())))

    def lo(self, lo, rec):
        q = lo.FIFOQueue(10, "int32", ())
        rec.run(lambda: q.dequeue_many(-1))
        rec.run(lambda: q.dequeue_up_to(-1))


class testCapacityZero(Program, Scenario):
    differs = ("capacity must be at least 1; TF takes 0 (a queue whose enqueues wait forever) and a "
               "negative capacity as unbounded")

    def program(self, m, rec):
        q = m.FIFOQueue(0, "float32")
        rec.blocks(P(q.enqueue, 1.0))


# -- FIFOQueueParallelTests ------------------------------------------------------------------


class testParallelEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        threads = [Background(rec, P(q.enqueue, (x,))) for x in FLOATS]
        for thread in threads:
            thread.join(rec)
        rec.put(sorted(as_lists([value(rec, q.dequeue) for _ in FLOATS])))


class testParallelDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        for x in FLOATS:
            rec.run(P(q.enqueue, (x,)))
        threads = [Background(rec, q.dequeue) for _ in FLOATS]
        rec.put(sorted(as_lists([t.join(rec, record=False) for t in threads])))


class testEnqueueAndBlockingDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(3, "float32")
        dequeues = Background(rec, q.dequeue, q.dequeue, q.dequeue)
        settle(q, dequeues=1)
        for x in [10.0, 20.0, 30.0]:
            rec.run(P(q.enqueue, (x,)))
        dequeues.join(rec)


class testBigDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(2, "int32", ((),))
        dequeue = Background(rec, P(q.dequeue_many, 4))
        for e in range(4):
            settle(q, dequeues=1)
            dequeue.running(rec)
            rec.run(P(q.enqueue, (e,)))
            rec.run(q.size)  # elements the waiting dequeue_many has claimed are not counted
        dequeue.join(rec)


class testBigEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(5, "int32", ((),))
        enqueue = Background(rec, P(q.enqueue_many, (list(range(1, 11)),)))
        settle(q, enqueues=1)
        rec.run(q.size)
        for _ in range(4):
            rec.run(q.dequeue)
        settle(q, enqueues=1)
        enqueue.running(rec)
        rec.run(q.size)
        rec.run(q.dequeue)  # makes room for the last element
        enqueue.join(rec)
        for _ in range(5):
            rec.run(q.size)
            rec.run(q.dequeue)
        rec.run(q.size)


class testBlockingDequeueFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, *[q.dequeue] * 5)
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)


class testBlockingDequeueFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        dequeue = Background(rec, q.dequeue)
        settle(q, dequeues=1)
        dequeue.running(rec)
        rec.run(q.close)
        dequeue.join(rec)


class testBlockingDequeueManyFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 4), P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)


class testBlockingDequeueManyButNotAllFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 3), P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(q.size)
        rec.run(q.close)
        dequeues.join(rec)
        rec.run(q.size)  # the failed dequeue_many gave back the element it had claimed
        rec.run(q.dequeue)


class testDequeueUpToFromClosedQueueReturnsRemainder(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_up_to, 3), P(q.dequeue_up_to, 3))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)
        rec.run(P(q.dequeue_up_to, 3))


class testEnqueueManyLargerThanCapacityWithConcurrentDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, "float32", ())
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeues = Background(rec, P(q.dequeue_many, 3), P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeues.join(rec)
        rec.run(q.dequeue)


class testClosedBlockingDequeueManyRestoresPartialBatch(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, ("float32", "float32"), ((), ()))
        rec.run(P(q.enqueue_many, ([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])))
        dequeue = Background(rec, P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.size)
        rec.run(q.close)
        dequeue.join(rec)
        for _ in range(3):
            rec.run(q.dequeue)
        rec.run(q.size)


class testBlockingDequeueManyFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        dequeue = Background(rec, P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)


class testBlockingDequeueUpToFromClosedEmptyQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        dequeue = Background(rec, P(q.dequeue_up_to, 4))
        settle(q, dequeues=1)
        rec.run(q.close)
        dequeue.join(rec)


class testEnqueueToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.close)
        rec.run(P(q.enqueue, (10.0,)))
        rec.run(q.size)


class testEnqueueManyToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.close)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        rec.run(q.size)


class testBlockingEnqueueToFullQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue, (50.0,)))
        settle(q, enqueues=1)
        enqueue.running(rec)
        for _ in range(5):
            rec.run(q.dequeue)
        enqueue.join(rec)


class testBlockingEnqueueManyToFullQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue_many, ([50.0, 60.0],)))
        settle(q, enqueues=1)
        for _ in range(6):
            rec.run(q.dequeue)
        enqueue.join(rec)


class testBlockingEnqueueBeforeClose(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, "float32")
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        enqueue = Background(rec, P(q.enqueue, (50.0,)))
        settle(q, enqueues=1)
        close = Background(rec, q.close)  # waits behind the blocked enqueue
        settle(q, enqueues=2)
        close.running(rec)
        rec.run(q.is_closed)
        rec.run(q.dequeue)  # unblocks both
        enqueue.join(rec)
        close.join(rec)
        rec.run(q.is_closed)
        for _ in range(4):
            rec.run(q.dequeue)
        rec.run(q.size)


class testBlockingEnqueueManyBeforeClose(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, "float32")
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


class testParallelEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(1000, "float32", shapes=())
        elems = [10.0 * x for x in range(100)]
        threads = [Background(rec, P(q.enqueue_many, (elems,))) for _ in range(10)]
        for thread in threads:
            thread.join(rec)
        rec.run(P(q.dequeue_many, 1000), unordered=True)


class testParallelDequeueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(1000, "float32", shapes=())
        elems = [10.0 * x for x in range(1000)]
        rec.run(P(q.enqueue_many, (elems,)))
        threads = [Background(rec, P(q.dequeue_many, 100)) for _ in range(10)]
        batches = [t.join(rec, record=False) for t in threads]
        rec.put(sorted(sum((as_lists(b[0]) for b in batches), [])) == elems)


class testParallelDequeueUpTo(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(1000, "float32", shapes=())
        elems = [10.0 * x for x in range(1000)]
        rec.run(P(q.enqueue_many, (elems,)))
        rec.run(q.close)
        threads = [Background(rec, P(q.dequeue_up_to, 101)) for _ in range(10)]
        batches = [t.join(rec, record=False)[0] for t in threads]
        rec.put(sorted(len(b) for b in batches))
        rec.put(sorted(sum((as_lists(b) for b in batches), [])) == elems)


class testParallelEnqueueAndDequeue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(50, "float32", shapes=())
        rec.run(P(q.enqueue_many, ([10.0] * 49,)))
        enqueuers = [Background(rec, *[P(q.enqueue, (20.0,))] * 20) for _ in range(10)]
        dequeuers = [Background(rec, *[q.dequeue] * 20) for _ in range(10)]
        for thread in enqueuers:
            thread.join(rec)
        got = sum((as_lists(t.join(rec, record=False)) for t in dequeuers), [])
        got += as_lists(value(rec, P(q.dequeue_many, 49)))
        rec.put(len(got))
        rec.put(sorted(set(got)) <= [10.0, 20.0])
        rec.run(q.size)


class testMixtureOfEnqueueAndEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "int32", shapes=())
        dequeues = Background(rec, *[q.dequeue] * 250)
        draw, enqueued = random.Random(2), 0
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
        q = m.FIFOQueue(10, "int32", shapes=())
        enqueue = Background(rec, P(q.enqueue_many, (np.arange(250, dtype=np.int32),)))
        draw, got = random.Random(3), []
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
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        dequeue = Background(rec, P(q.dequeue_many, 4))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeue.join(rec)


class testBlockingDequeueUpTo(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32", ())
        dequeue = Background(rec, P(q.dequeue_up_to, 4))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([10.0, 20.0, 30.0, 40.0],)))
        dequeue.join(rec)


# -- FIFOQueueDictTest, FIFOQueueWithTimeoutTest -----------------------------------------------


def shape_lists(shapes):
    """Declared shapes as lists (TF's TensorShapes and our tuples alike)."""
    return [shape.as_list() if hasattr(shape, "as_list") else list(shape) for shape in shapes]


class testConstructorWithNames(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(5, ("int32", "float32"), names=("i", "j"))
        rec.put(q.names)


class testConstructorWithNamesAndShapes(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(5, ("int32", "float32"), names=("i", "f"), shapes=([1, 1, 2, 3], [5, 8]))
        rec.put(q.names)
        rec.put(shape_lists(q.shapes))


class testReusableAfterTimeout(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.blocks(q.dequeue)
        rec.blocks(q.dequeue)
        rec.run(P(q.enqueue, 37))
        rec.run(q.dequeue)


# -- edge cases around them ------------------------------------------------------------------


class testCloseWithCancelTwice(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "float32")
        rec.run(P(q.close, cancel_pending_enqueues=True))
        rec.run(P(q.close, cancel_pending_enqueues=True))
        rec.run(q.close)
        rec.run(q.is_closed)


class testCloseWaitsBehindPendingEnqueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(1, "float32")
        rec.run(P(q.enqueue, 1.0))
        enqueue = Background(rec, P(q.enqueue, 2.0))
        settle(q, enqueues=1)
        close = Background(rec, q.close)
        settle(q, enqueues=2)
        rec.run(q.is_closed)
        rec.blocks(P(q.enqueue, 3.0))  # behind the waiting close, in arrival order
        rec.run(q.dequeue)
        enqueue.join(rec)
        close.join(rec)
        rec.run(q.is_closed)
        rec.run(q.size)
        rec.run(q.dequeue)
        rec.run(q.dequeue)


class testCancelPendingEnqueuesFailsPendingClose(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(1, "float32")
        rec.run(P(q.enqueue, 1.0))
        enqueue = Background(rec, P(q.enqueue, 2.0))
        settle(q, enqueues=1)
        close = Background(rec, q.close)
        settle(q, enqueues=2)
        rec.run(P(q.close, cancel_pending_enqueues=True))
        enqueue.join(rec)
        close.join(rec)
        rec.run(q.is_closed)
        rec.run(q.size)


class testCancelPendingEnqueuesKeepsPartOfEnqueueMany(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(3, "int32", ())
        enqueue = Background(rec, P(q.enqueue_many, ([0, 1, 2, 3, 4],)))
        settle(q, enqueues=1)
        rec.run(P(q.close, cancel_pending_enqueues=True))
        enqueue.join(rec)
        rec.run(q.size)
        rec.run(P(q.dequeue_many, 3))
        rec.run(q.dequeue)


class testEmptyEnqueueManyToClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(3, "int32", ())
        rec.run(q.close)
        rec.run(P(q.enqueue_many, (np.zeros(0, np.int32),)))
        rec.run(P(q.enqueue_many, (np.zeros(1, np.int32),)))
        rec.run(P(q.dequeue_many, 0))
        rec.run(P(q.dequeue_up_to, 0))


class testSizeExcludesClaimedElements(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(5, "int32", ())
        dequeue = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([1, 2],)))
        rec.run(q.size)
        rec.run(P(q.enqueue_many, ([3, 4],)))
        dequeue.join(rec)
        rec.run(q.size)
        rec.run(q.dequeue)


class testDequeuesAreServedInArrivalOrder(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(5, "int32", ())
        many = Background(rec, P(q.dequeue_many, 3))
        settle(q, dequeues=1)
        one = Background(rec, q.dequeue)  # arrives second: may not overtake the dequeue_many
        settle(q, dequeues=2)
        rec.run(P(q.enqueue, 1))
        one.running(rec)
        rec.run(P(q.enqueue_many, ([2, 3],)))
        many.join(rec)
        one.running(rec)
        rec.run(P(q.enqueue, 4))
        one.join(rec)


class testEnqueuesAreServedInArrivalOrder(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(3, "int32", ())
        many = Background(rec, P(q.enqueue_many, (list(range(10)),)))
        settle(q, enqueues=1)
        one = Background(rec, P(q.enqueue, 100))
        settle(q, enqueues=2)
        for _ in range(11):
            rec.run(q.dequeue)
        many.join(rec)
        one.join(rec)


class testTimedOutDequeueManyGivesBackClaimedElements(Program, Scenario):
    differs = ("a dequeue_many that times out (or whose remote caller dies) puts the elements it had "
               "claimed back at the front; TF's cancelled dequeue drops them")

    def program(self, m, rec):
        q = m.FIFOQueue(5, "int32", ())
        rec.run(P(q.enqueue_many, ([1, 2],)))
        rec.blocks(P(q.dequeue_many, 3))
        rec.run(q.size)
        rec.run(P(q.enqueue, 3))
        rec.run(q.dequeue)


class testDequeueUpToFromClosedQueueReturnsClaimedElements(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(10, "int32", ())
        dequeue = Background(rec, P(q.dequeue_up_to, 4))
        settle(q, dequeues=1)
        rec.run(P(q.enqueue_many, ([1, 2],)))
        rec.run(q.close)
        dequeue.join(rec)
        rec.run(q.size)


class testBigDequeueManyFromClosedQueue(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(2, "int32", ())
        rec.run(P(q.enqueue_many, ([1, 2],)))
        rec.run(q.close)
        rec.run(P(q.dequeue_many, 3))
        rec.run(P(q.dequeue_up_to, 3))
        rec.run(P(q.dequeue_up_to, 3))


class testBigDequeueUpToClosedMidway(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(2, "int32", ())
        dequeue = Background(rec, P(q.dequeue_up_to, 5))
        settle(q, dequeues=1)
        for e in range(3):
            rec.run(P(q.enqueue, e))
        rec.run(q.size)
        rec.run(q.close)
        dequeue.join(rec)


class testStrings(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, "string", shapes=[(2,)])
        rec.run(P(q.enqueue, ([b"a", "b"],)))
        rec.run(P(q.enqueue_many, ([["c", "d"], [b"e", b"f"]],)))
        rec.run(q.dequeue)
        rec.run(P(q.dequeue_many, 2))
        rec.run(P(q.enqueue, ([1, 2],)))


class testScalarStringComponents(Program, Scenario):
    def program(self, m, rec):
        q = m.FIFOQueue(4, ("string", "int64"), shapes=((), ()))
        rec.run(P(q.enqueue, ("héllo", 1)))
        rec.run(P(q.enqueue_many, ([b"x", b"y"], [2, 3])))
        rec.run(q.dequeue)
        rec.run(q.close)
        rec.run(P(q.dequeue_up_to, 4))
