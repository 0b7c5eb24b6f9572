"""Scenarios from tensorflow/python/training/queue_runner_test.py, plus edge cases around them.

TF's enqueue ops are graph ops run in a session; here they are Python callables. TF's
``var.count_up_to(n)`` (returns the count, OutOfRangeError at ``n``) becomes :class:`CountUpTo`.
TF's ``_MockOp`` is a namedtuple, which TF reads as a structure of tensor names (ValueError:
"not in the graph"); here it is :class:`NotAnOp`, an object that is neither a TF fetch nor
callable, which both sides reject with TypeError when the runner's thread runs it. Left out:
testMultipleSessions, the start_queue_runners session checks and the proto round trip (no
sessions or protos here). TF's runners made with a coordinator have one more thread
(close_on_stop), so thread counts are compared only without one.
"""
from __future__ import annotations

import threading

from harness import Scenario


class NotAnOp:
    """TF's _MockOp: something passed as an enqueue op that is not one."""

    def __init__(self, name):
        self.name = name


def wait_until(condition, what):
    """Poll ``condition()`` (every millisecond, up to 10 s): state is waited on, never slept for."""
    tick = threading.Event()
    for _ in range(10000):
        if condition():
            return
        tick.wait(0.001)
    raise AssertionError(f"timed out waiting until {what}")


class CountUpTo:
    """TF's ``variable.count_up_to(limit)`` as an op: returns the count, then raises OutOfRangeError."""

    def __init__(self, lo, limit):
        self.lo, self.limit, self.value = lo, limit, 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self.value >= self.limit:
                raise self.lo.OutOfRangeError(f"Reached limit of {self.limit}")
            self.value += 1
            return self.value - 1


def tf_count_up_to(tf, limit):
    var = tf.Variable(tf.constant(0, dtype=tf.int64))
    return var, var.count_up_to(limit)


def tf_init(tf):
    sess = tf.get_default_session()
    sess.run(tf.global_variables_initializer())
    return sess


def start_and_join(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def error_names(qr):
    return [type(e).__name__ for e in qr.exceptions_raised]


class testBasic(Scenario):
    def tf(self, tf, rec):
        var, count_up_to = tf_count_up_to(tf, 3)
        queue = tf.FIFOQueue(10, tf.float32)
        sess = tf_init(tf)
        qr = tf.train.QueueRunner(queue, [count_up_to])
        threads = qr.create_threads(sess)
        rec.put(len(threads))
        start_and_join(threads)
        rec.put(len(qr.exceptions_raised))
        rec.run(var.value())
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        count_up_to = CountUpTo(lo, 3)
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [count_up_to])
        threads = qr.create_threads()
        rec.put(len(threads))
        start_and_join(threads)
        rec.put(len(qr.exceptions_raised))
        rec.run(lambda: count_up_to.value)
        rec.run(queue.is_closed)


class testTwoOps(Scenario):
    def tf(self, tf, rec):
        var0, count_up_to_3 = tf_count_up_to(tf, 3)
        var1, count_up_to_30 = tf_count_up_to(tf, 30)
        queue = tf.FIFOQueue(10, tf.float32)
        sess = tf_init(tf)
        qr = tf.train.QueueRunner(queue, [count_up_to_3, count_up_to_30])
        threads = qr.create_threads(sess)
        rec.put(len(threads))
        start_and_join(threads)
        rec.put(len(qr.exceptions_raised))
        rec.run([var0.value(), var1.value()])
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        count_up_to_3, count_up_to_30 = CountUpTo(lo, 3), CountUpTo(lo, 30)
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [count_up_to_3, count_up_to_30])
        threads = qr.create_threads()
        rec.put(len(threads))
        start_and_join(threads)
        rec.put(len(qr.exceptions_raised))
        rec.run(lambda: [count_up_to_3.value, count_up_to_30.value])
        rec.run(queue.is_closed)


class testExceptionsCaptured(Scenario):
    """Without a coordinator the errors are kept, and (as in TF) nothing closes the queue."""

    def tf(self, tf, rec):
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [NotAnOp("i fail"), NotAnOp("so fail")])
        start_and_join(qr.create_threads(tf_init(tf)))
        rec.put(error_names(qr))
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [NotAnOp("i fail"), NotAnOp("so fail")])
        start_and_join(qr.create_threads())
        rec.put(error_names(qr))
        rec.run(queue.is_closed)


class testRealDequeueEnqueue(Scenario):
    def tf(self, tf, rec):
        q0 = tf.FIFOQueue(3, tf.float32)
        enqueue0, close0 = q0.enqueue((10.0,)), q0.close()
        q1 = tf.FIFOQueue(30, tf.float32)
        enqueue1, dequeue1 = q1.enqueue((q0.dequeue(),)), q1.dequeue()
        qr = tf.train.QueueRunner(q1, [enqueue1])
        threads = qr.create_threads(tf_init(tf))
        for t in threads:
            t.start()
        rec.run(enqueue0)
        rec.run(enqueue0)
        rec.run(close0)
        for t in threads:
            t.join()
        rec.put(len(qr.exceptions_raised))
        rec.run(dequeue1)
        rec.run(dequeue1)
        rec.run(dequeue1)

    def lo(self, lo, rec):
        q0 = lo.FIFOQueue(3, "float32")
        q1 = lo.FIFOQueue(30, "float32")
        qr = lo.QueueRunner(q1, [lambda: q1.enqueue((q0.dequeue(),))])
        threads = qr.create_threads()
        for t in threads:
            t.start()
        rec.run(lambda: q0.enqueue((10.0,)))
        rec.run(lambda: q0.enqueue((10.0,)))
        rec.run(q0.close)
        for t in threads:
            t.join()
        rec.put(len(qr.exceptions_raised))
        rec.run(q1.dequeue)
        rec.run(q1.dequeue)
        rec.run(q1.dequeue)


class testRespectCoordShouldStop(Scenario):
    def tf(self, tf, rec):
        var, count_up_to = tf_count_up_to(tf, 3)
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [count_up_to])
        coord = tf.train.Coordinator()
        coord.request_stop()  # the runner should finish immediately
        for t in qr.create_threads(tf_init(tf), coord):
            t.start()
        rec.run(coord.join)
        rec.put(len(qr.exceptions_raised))
        rec.run(var.value())
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        count_up_to = CountUpTo(lo, 3)
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [count_up_to])
        coord = lo.Coordinator()
        coord.request_stop()
        for t in qr.create_threads(coord):
            t.start()
        rec.run(coord.join)
        rec.put(len(qr.exceptions_raised))
        rec.run(lambda: count_up_to.value)
        rec.run(queue.is_closed)


class testRequestStopOnException(Scenario):
    def tf(self, tf, rec):
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [NotAnOp("not an op")])
        coord = tf.train.Coordinator()
        qr.create_threads(tf_init(tf), coord, start=True)
        rec.run(coord.join)  # the exception is re-raised when joining
        rec.put(len(qr.exceptions_raised))
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [NotAnOp("not an op")])
        coord = lo.Coordinator()
        qr.create_threads(coord, start=True)
        rec.run(coord.join)
        rec.put(len(qr.exceptions_raised))
        rec.run(queue.is_closed)


class testGracePeriod(Scenario):
    """The enqueue blocks on a full queue; request_stop cancels it, so join returns."""

    def tf(self, tf, rec):
        queue = tf.FIFOQueue(2, tf.float32)
        enqueue, dequeue, size = queue.enqueue((10.0,)), queue.dequeue(), queue.size()
        qr = tf.train.QueueRunner(queue, [enqueue])
        coord = tf.train.Coordinator()
        sess = tf_init(tf)
        qr.create_threads(sess, coord, start=True)
        rec.run(dequeue)
        wait_until(lambda: sess.run(size) == 2, "the queue is full again")
        coord.request_stop()
        rec.run(lambda: coord.join(stop_grace_period_secs=1.0))
        rec.run(queue.is_closed())
        rec.run(queue.enqueue((1.0,)))

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(2, "float32")
        qr = lo.QueueRunner(queue, [lambda: queue.enqueue((10.0,))])
        coord = lo.Coordinator()
        qr.create_threads(coord, start=True)
        rec.run(queue.dequeue)
        wait_until(lambda: queue.size() == 2, "the queue is full again")
        coord.request_stop()
        rec.run(lambda: coord.join(stop_grace_period_secs=1.0))
        rec.run(queue.is_closed)
        rec.run(lambda: queue.enqueue((1.0,)))


class testIgnoreMultiStarts(Scenario):
    def tf(self, tf, rec):
        _, count_up_to = tf_count_up_to(tf, 3)
        queue = tf.FIFOQueue(10, tf.float32)
        sess = tf_init(tf)
        coord = tf.train.Coordinator()
        qr = tf.train.QueueRunner(queue, [count_up_to])
        qr.create_threads(sess, coord=coord)  # not started
        rec.put(qr.create_threads(sess, coord=coord))

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32")
        coord = lo.Coordinator()
        qr = lo.QueueRunner(queue, [CountUpTo(lo, 3)])
        qr.create_threads(coord=coord)
        rec.put(qr.create_threads(coord=coord))


class testThreads(Scenario):
    """exceptions_raised starts afresh with each create_threads."""

    def tf(self, tf, rec):
        var, count_up_to = tf_count_up_to(tf, 3)
        queue = tf.FIFOQueue(10, tf.float32)
        sess = tf_init(tf)
        qr = tf.train.QueueRunner(queue, [count_up_to, NotAnOp("bad_op")])
        for _ in range(2):
            threads = qr.create_threads(sess, start=True)
            rec.put(len(threads))
            for t in threads:
                t.join()
            rec.put(error_names(qr))
        rec.run(var.value())

    def lo(self, lo, rec):
        count_up_to = CountUpTo(lo, 3)
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [count_up_to, NotAnOp("bad_op")])
        for _ in range(2):
            threads = qr.create_threads(start=True)
            rec.put(len(threads))
            for t in threads:
                t.join()
            rec.put(error_names(qr))
        rec.run(lambda: count_up_to.value)


class testName(Scenario):
    def tf(self, tf, rec):
        queue = tf.FIFOQueue(10, tf.float32, name="queue")
        qr = tf.train.QueueRunner(queue, [tf.no_op()])
        rec.put(qr.name)

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32", name="queue")
        qr = lo.QueueRunner(queue, [lambda: None])
        rec.put(qr.name)


class testStartQueueRunners(Scenario):
    def tf(self, tf, rec):
        var, count_up_to = tf_count_up_to(tf, 3)
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [count_up_to])
        tf.train.add_queue_runner(qr)
        threads = tf.train.start_queue_runners(tf_init(tf))
        for t in threads:
            t.join()
        rec.put(len(qr.exceptions_raised))
        rec.run(var.value())

    def lo(self, lo, rec):
        count_up_to = CountUpTo(lo, 3)
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [count_up_to])
        lo.add_queue_runner(qr)
        for t in lo.start_queue_runners():
            t.join()
        rec.put(len(qr.exceptions_raised))
        rec.run(lambda: count_up_to.value)


# ---------------------------------------------------------------- edge cases


class testNoEnqueueOps(Scenario):
    def tf(self, tf, rec):
        queue = tf.FIFOQueue(10, tf.float32)
        rec.run(lambda: tf.train.QueueRunner(queue, []) and None)

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32")
        rec.run(lambda: lo.QueueRunner(queue, []) and None)


class testQueueClosedOnlyWhenEveryOpEnded(Scenario):
    """One op ran out, the other still runs: the queue stays open until both end."""

    def tf(self, tf, rec):
        _, ends_now = tf_count_up_to(tf, 0)
        gate = tf.FIFOQueue(1, tf.float32)
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [ends_now, queue.enqueue((gate.dequeue(),))])
        threads = qr.create_threads(tf_init(tf), start=True)
        threads[0].join()
        rec.run(queue.is_closed())
        rec.run(gate.enqueue((5.0,)))
        rec.run(queue.dequeue())
        rec.run(gate.close())
        threads[1].join()
        rec.run(queue.is_closed())
        rec.put(len(qr.exceptions_raised))

    def lo(self, lo, rec):
        gate = lo.FIFOQueue(1, "float32")
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [CountUpTo(lo, 0), lambda: queue.enqueue((gate.dequeue(),))])
        threads = qr.create_threads(start=True)
        threads[0].join()
        rec.run(queue.is_closed)
        rec.run(lambda: gate.enqueue((5.0,)))
        rec.run(queue.dequeue)
        rec.run(gate.close)
        threads[1].join()
        rec.run(queue.is_closed)
        rec.put(len(qr.exceptions_raised))


class testExceptionWithCoordIsNotKept(Scenario):
    """With a coordinator the error goes to join, not to exceptions_raised; the queue is cancelled."""

    def tf(self, tf, rec):
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [NotAnOp("bad"), queue.enqueue((1.0,))])
        coord = tf.train.Coordinator()
        qr.create_threads(tf_init(tf), coord, start=True)
        rec.run(lambda: coord.join(stop_grace_period_secs=10))
        rec.put(error_names(qr))
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [NotAnOp("bad"), lambda: queue.enqueue((1.0,))])
        coord = lo.Coordinator()
        qr.create_threads(coord, start=True)
        rec.run(lambda: coord.join(stop_grace_period_secs=10))
        rec.put(error_names(qr))
        rec.run(queue.is_closed)


class testCustomQueueClosedExceptionTypes(Scenario):
    """With queue_closed_exception_types=(CancelledError,) an OutOfRangeError is an error."""

    def tf(self, tf, rec):
        _, ends_now = tf_count_up_to(tf, 0)
        queue = tf.FIFOQueue(10, tf.float32)
        qr = tf.train.QueueRunner(queue, [ends_now], queue_closed_exception_types=(tf.errors.CancelledError,))
        start_and_join(qr.create_threads(tf_init(tf)))
        rec.put(error_names(qr))
        rec.run(queue.is_closed())

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(10, "float32")
        qr = lo.QueueRunner(queue, [CountUpTo(lo, 0)], queue_closed_exception_types=(lo.CancelledError,))
        start_and_join(qr.create_threads())
        rec.put(error_names(qr))
        rec.run(queue.is_closed)


class testStopEndsAnEndlessProducer(Scenario):
    def tf(self, tf, rec):
        queue = tf.FIFOQueue(4, tf.int32, shapes=[[]])
        qr = tf.train.QueueRunner(queue, [queue.enqueue((7,))])
        coord = tf.train.Coordinator()
        threads = qr.create_threads(tf_init(tf), coord, start=True)
        rec.run(queue.dequeue_many(3))
        coord.request_stop()
        rec.run(lambda: coord.join(threads, stop_grace_period_secs=10))
        rec.put(any(t.is_alive() for t in threads))

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(4, "int32", shapes=[[]])
        qr = lo.QueueRunner(queue, [lambda: queue.enqueue((7,))])
        coord = lo.Coordinator()
        threads = qr.create_threads(coord, start=True)
        rec.run(lambda: queue.dequeue_many(3))
        coord.request_stop()
        rec.run(lambda: coord.join(threads, stop_grace_period_secs=10))
        rec.put(any(t.is_alive() for t in threads))


class testCancelledEnqueueWithoutCoordinator(Scenario):
    """A producer blocked in enqueue when its queue is cancelled: TF counts the CancelledError as
    an error of the runner (its default queue_closed_exception_types is OutOfRangeError alone)."""

    def tf(self, tf, rec):
        queue = tf.FIFOQueue(1, tf.float32)
        size = queue.size()
        qr = tf.train.QueueRunner(queue, [queue.enqueue((1.0,))])
        sess = tf_init(tf)
        threads = qr.create_threads(sess, start=True)
        wait_until(lambda: sess.run(size) == 1, "the queue is full")
        rec.run(queue.close(cancel_pending_enqueues=True))
        for t in threads:
            t.join()
        rec.put(error_names(qr))

    def lo(self, lo, rec):
        queue = lo.FIFOQueue(1, "float32")
        qr = lo.QueueRunner(queue, [lambda: queue.enqueue((1.0,))])
        threads = qr.create_threads(start=True)
        wait_until(lambda: queue.size() == 1, "the queue is full")
        rec.run(lambda: queue.close(cancel_pending_enqueues=True))
        for t in threads:
            t.join()
        rec.put(error_names(qr))
