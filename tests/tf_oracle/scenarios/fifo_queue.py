"""Scenarios from tensorflow/python/kernel_tests/data_structures/fifo_queue_test.py."""
from __future__ import annotations

from harness import Scenario


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
