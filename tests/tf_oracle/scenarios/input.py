"""Scenarios from tensorflow/python/training/input_test.py, plus edge cases around them.

Names are ``<TF test class>_<test>`` (TF's file has several ``testNoShuffle``). TF's examples are
graph tensors; here an example is an op, a Python callable: TF's ``var.count_up_to(n)`` becomes
:class:`Counter` (int64 0-d tensors 0..n-1, then OutOfRangeError) and ``limit_epochs(99, n)``
becomes :class:`LimitEpochs`. Left out: SparseTensor components and the ``maybe_*`` functions
(loaders has neither), ``shared_name``, ``match_filenames_once``, ``limit_epochs`` itself, the
private dict helpers, and placeholders of unknown shape (an op's values always have a shape).
Where threads or RandomShuffleQueue make the order differ from run to run, the programs record
what TF's test asserts (the multiset of values, the batch sizes, an order kept) rather than the
order itself.
"""
from __future__ import annotations

import itertools
import threading

import numpy as np

from harness import Scenario


def py(value):
    """Plain Python lists of a fetched value (numpy arrays, tensors, lists of bytes, dicts)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {key: py(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [py(item) for item in value]
    return value


class Counter:
    """TF's ``variable.count_up_to(limit)`` on an int64 variable, as an op."""

    def __init__(self, lo, limit):
        self.lo, self.limit, self.value = lo, limit, 0
        self._lock = threading.Lock()

    def __call__(self):
        import torch

        with self._lock:
            if self.value >= self.limit:
                raise self.lo.OutOfRangeError(f"Reached limit of {self.limit}")
            self.value += 1
            return torch.tensor(self.value - 1, dtype=torch.int64)


class LimitEpochs:
    """TF's ``limit_epochs(constant(value, int64), num_epochs)``: ``value`` num_epochs times."""

    def __init__(self, lo, value, num_epochs):
        self.inner = Counter(lo, num_epochs)
        self.constant = value

    def __call__(self):
        import torch

        self.inner()
        return torch.tensor(self.constant, dtype=torch.int64)


def tf_counter(tf, limit):
    return tf.Variable(tf.constant(0, dtype=tf.int64)).count_up_to(limit)


def tf_start(tf):
    """Initialize the variables and start the runners, as TF's tests do: (session, coord, threads)."""
    sess = tf.get_default_session()
    sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
    coord = tf.train.Coordinator()
    return sess, coord, tf.train.start_queue_runners(sess=sess, coord=coord)


def lo_start(lo):
    coord = lo.Coordinator()
    return coord, lo.start_queue_runners(coord=coord)


def stop(coord, threads):
    coord.request_stop()
    coord.join(threads, stop_grace_period_secs=10)


def frequencies_even(keys, expected):
    """TF's check that every order came up within 40% of its expected share."""
    share = len(keys) / len(expected)
    counts = {key: keys.count(key) for key in expected}
    return all(share * 0.6 < count < share * 1.4 for count in counts.values())


# ---------------------------------------------------------------- InputProducerTest


INPUT = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]


class InputProducerTest_testNoShuffle(Scenario):
    element_shape = None

    def tf(self, tf, rec):
        queue = tf.train.input_producer(INPUT, element_shape=self.element_shape, num_epochs=2, shuffle=False)
        dequeue_many, dequeue = queue.dequeue_many(len(INPUT) * 2), queue.dequeue()
        _, coord, threads = tf_start(tf)
        rec.run(dequeue_many)
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.input_producer(INPUT, element_shape=self.element_shape, num_epochs=2, shuffle=False)
        coord, threads = lo_start(lo)
        rec.run(lambda: queue.dequeue_many(len(INPUT) * 2))
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


class InputProducerTest_testNoShapeInference(InputProducerTest_testNoShuffle):
    element_shape = [4]


class InputProducerTest_testPartialElementShape(InputProducerTest_testNoShuffle):
    element_shape = [None]


class InputProducerTest_testElementShapeMismatch(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.input_producer(INPUT, element_shape=[3]) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.input_producer(INPUT, element_shape=[3]) and None)


class InputProducerTest_testScalarInput(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.input_producer(5) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.input_producer(5) and None)


class InputProducerTest_testNumEpochsNotPositive(Scenario):
    cases = [0, -1]

    def tf(self, tf, rec):
        rec.run(lambda: tf.train.input_producer(INPUT, num_epochs=self.case) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.input_producer(INPUT, num_epochs=self.case) and None)


DTYPE_INPUTS = {
    "python floats": [1.5, 2.0],
    "python ints beyond int32": [2**40, 1],
    "python bools": [True, False],
    "numpy int64": np.array([3, 4], dtype=np.int64),
    "numpy float64": np.array([0.25, 0.5]),
    "numpy uint8 rows": np.arange(6, dtype=np.uint8).reshape(3, 2),
    "nested python ints": [[1, 2], [3, 4]],
}


class InputProducerTest_testDtypes(Scenario):
    """TF converts Python ints to int32 (int64 when a value needs it) and floats to float32."""

    cases = sorted(DTYPE_INPUTS)

    def tf(self, tf, rec):
        rows = DTYPE_INPUTS[self.case]
        queue = tf.train.input_producer(rows, num_epochs=1, shuffle=False)
        dequeue_many = queue.dequeue_many(len(rows))
        _, coord, threads = tf_start(tf)
        rec.run(dequeue_many)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        rows = DTYPE_INPUTS[self.case]
        queue = lo.input_producer(rows, num_epochs=1, shuffle=False)
        coord, threads = lo_start(lo)
        rec.run(lambda: queue.dequeue_many(len(rows)))
        rec.run(lambda: stop(coord, threads))


class InputProducerTest_testEmptyInputWithNumEpochs(Scenario):
    def tf(self, tf, rec):
        queue = tf.train.input_producer([], num_epochs=2)
        dequeue = queue.dequeue()
        _, coord, threads = tf_start(tf)
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.input_producer([], num_epochs=2)
        coord, threads = lo_start(lo)
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


class InputProducerTest_testEmptyInputForever(Scenario):
    differs = ("input_producer (and range_input_producer) with no rows and num_epochs=None: TF's runner loops "
               "forever enqueueing nothing and a dequeue waits; loaders raises ValueError when the producer is made")

    def tf(self, tf, rec):
        queue = tf.train.input_producer([])
        dequeue = queue.dequeue()
        _, coord, threads = tf_start(tf)
        rec.blocks(dequeue)
        stop(coord, threads)

    def lo(self, lo, rec):
        queue = rec.run(lambda: lo.input_producer([]))
        if queue is not None:
            rec.blocks(queue.dequeue)


class InputProducerTest_testCapacityOne(Scenario):
    """A capacity of one: each epoch's rows still come out in order, then OutOfRangeError."""

    def tf(self, tf, rec):
        queue = tf.train.input_producer([10, 20, 30], num_epochs=2, shuffle=False, capacity=1)
        dequeue = queue.dequeue()
        _, coord, threads = tf_start(tf)
        for _ in range(7):
            rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.input_producer([10, 20, 30], num_epochs=2, shuffle=False, capacity=1)
        coord, threads = lo_start(lo)
        for _ in range(7):
            rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


# ---------------------------------------------------------------- StringInputProducerTest


STRINGS = [b"to", b"be", b"or", b"not", b"to", b"be"]


class StringInputProducerTest_testNoShuffle(Scenario):
    def tf(self, tf, rec):
        queue = tf.train.string_input_producer(STRINGS, num_epochs=3, shuffle=False)
        dequeue_many, dequeue = queue.dequeue_many(len(STRINGS) * 3), queue.dequeue()
        _, coord, threads = tf_start(tf)
        rec.run(dequeue_many)
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.string_input_producer(STRINGS, num_epochs=3, shuffle=False)
        coord, threads = lo_start(lo)
        rec.run(lambda: queue.dequeue_many(len(STRINGS) * 3))
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


def shuffled_epochs(fetch, epochs, expected):
    """TF's shuffle checks: every epoch is one of the orders, and the orders come up evenly."""
    keys = [b"".join(py(fetch())) for _ in range(epochs)]
    return {"only orders of one epoch": all(key in expected for key in keys),
            "orders seen": sorted(set(keys)), "even": frequencies_even(keys, expected)}


class StringInputProducerTest_testShuffle(Scenario):
    expected = [b"abc", b"acb", b"bac", b"bca", b"cab", b"cba"]

    def tf(self, tf, rec):
        queue = tf.train.string_input_producer([b"a", b"b", b"c"], num_epochs=600, shuffle=True, seed=271828)
        dequeue_many, dequeue = queue.dequeue_many(3), queue.dequeue()
        sess, coord, threads = tf_start(tf)
        rec.put(shuffled_epochs(lambda: sess.run(dequeue_many), 600, self.expected))
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.string_input_producer([b"a", b"b", b"c"], num_epochs=600, shuffle=True, seed=271828)
        coord, threads = lo_start(lo)
        rec.put(shuffled_epochs(lambda: queue.dequeue_many(3), 600, self.expected))
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


class StringInputProducerTest_testNullStringPython(Scenario):
    cases = ["list", "numpy array"]

    def empty(self):
        return [] if self.case == "list" else np.array([], dtype=bytes)

    def tf(self, tf, rec):
        rec.run(lambda: tf.train.string_input_producer(self.empty()) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.string_input_producer(self.empty()) and None)


class StringInputProducerTest_testConstructionRace(Scenario):
    """A new dequeue op for every read (TF's discouraged but common style)."""

    def tf(self, tf, rec):
        queue = tf.train.string_input_producer(STRINGS, shuffle=False)
        sess, coord, threads = tf_start(tf)
        rec.put([sess.run(queue.dequeue()) for _ in range(2 * len(STRINGS))])
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.string_input_producer(STRINGS, shuffle=False)
        coord, threads = lo_start(lo)
        rec.put([queue.dequeue() for _ in range(2 * len(STRINGS))])
        rec.run(lambda: stop(coord, threads))


class StringInputProducerTest_testSingleString(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.string_input_producer("abc") and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.string_input_producer("abc") and None)


class StringInputProducerTest_testNotStrings(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.string_input_producer([1, 2]) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.string_input_producer([1, 2]) and None)


class StringInputProducerTest_testUnicodeStrings(Scenario):
    names = ["données.csv", "b.csv", np.str_("ü")]

    def tf(self, tf, rec):
        queue = tf.train.string_input_producer(self.names, num_epochs=1, shuffle=False)
        dequeue_many = queue.dequeue_up_to(10)
        _, coord, threads = tf_start(tf)
        rec.run(dequeue_many)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.string_input_producer(self.names, num_epochs=1, shuffle=False)
        coord, threads = lo_start(lo)
        rec.run(lambda: queue.dequeue_up_to(10))
        rec.run(lambda: stop(coord, threads))


class StringInputProducerTest_testSizeBeforeStartQueueRunners(Scenario):
    differs = ("input producers enqueue their first capacity elements when created, so that a reader can read "
               "before start_queue_runners (the lecture's first look at a record); in TF the queue is empty until then")

    def tf(self, tf, rec):
        queue = tf.train.string_input_producer(STRINGS, shuffle=False)
        rec.run(queue.size())

    def lo(self, lo, rec):
        queue = lo.string_input_producer(STRINGS, shuffle=False)
        rec.run(queue.size)


# ---------------------------------------------------------------- RangeInputProducerTest


class RangeInputProducerTest_testNoShuffle(Scenario):
    def tf(self, tf, rec):
        queue = tf.train.range_input_producer(5, num_epochs=3, shuffle=False)
        dequeue_many, dequeue = queue.dequeue_many(15), queue.dequeue()
        _, coord, threads = tf_start(tf)
        rec.run(dequeue_many)
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.range_input_producer(5, num_epochs=3, shuffle=False)
        coord, threads = lo_start(lo)
        rec.run(lambda: queue.dequeue_many(15))
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


def range_epochs(fetch, epochs):
    keys = [10 * (pair[0] + 1) + (pair[1] + 1) for pair in (py(fetch()) for _ in range(epochs))]
    return {"only orders of one epoch": all(key in (12, 21) for key in keys), "even": frequencies_even(keys, [12, 21])}


class RangeInputProducerTest_testShuffle(Scenario):
    def tf(self, tf, rec):
        queue = tf.train.range_input_producer(2, num_epochs=200, shuffle=True, seed=314159)
        dequeue_many, dequeue = queue.dequeue_many(2), queue.dequeue()
        sess, coord, threads = tf_start(tf)
        rec.put(range_epochs(lambda: sess.run(dequeue_many), 200))
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.range_input_producer(2, num_epochs=200, shuffle=True, seed=314159)
        coord, threads = lo_start(lo)
        rec.put(range_epochs(lambda: queue.dequeue_many(2), 200))
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


class RangeInputProducerTest_testEmptyRangeWithNumEpochs(Scenario):
    def tf(self, tf, rec):
        dequeue = tf.train.range_input_producer(0, num_epochs=1).dequeue()
        _, coord, threads = tf_start(tf)
        rec.run(dequeue)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.range_input_producer(0, num_epochs=1)
        coord, threads = lo_start(lo)
        rec.run(queue.dequeue)
        rec.run(lambda: stop(coord, threads))


# ---------------------------------------------------------------- SliceInputProducerTest


class SliceInputProducerTest_testNoShuffle(Scenario):
    source_strings = [b"Alpha", b"Beta", b"Delta", b"Gamma"]
    source_ints = [2, 3, 5, 7]

    def tf(self, tf, rec):
        slices = tf.train.slice_input_producer([self.source_strings, self.source_ints], num_epochs=3, shuffle=False)
        _, coord, threads = tf_start(tf)
        for _ in range(len(self.source_strings) * 3):
            rec.run(slices)
        rec.run(slices)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        slices = lo.slice_input_producer([self.source_strings, self.source_ints], num_epochs=3, shuffle=False)
        coord, threads = lo_start(lo)
        for _ in range(len(self.source_strings) * 3):
            rec.run(slices)
        rec.run(slices)
        rec.run(lambda: stop(coord, threads))


def slice_epochs(fetch, epochs):
    expected = [b",".join(x) for x in itertools.permutations([b"A7", b"B3", b"D5", b"G2"])]
    keys = []
    for _ in range(epochs):
        keys.append(b",".join(py(s) + str(py(i)).encode() for s, i in (fetch() for _ in range(4))))
    return {"only orders of one epoch": all(key in expected for key in keys), "even": frequencies_even(keys, expected)}


class SliceInputProducerTest_testShuffle(Scenario):
    def tf(self, tf, rec):
        slices = tf.train.slice_input_producer([["A", "B", "D", "G"], [7, 3, 5, 2]], num_epochs=1200, shuffle=True,
                                               seed=161803)
        sess, coord, threads = tf_start(tf)
        rec.put(slice_epochs(lambda: sess.run(slices), 1200))
        rec.run(slices)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        slices = lo.slice_input_producer([["A", "B", "D", "G"], [7, 3, 5, 2]], num_epochs=1200, shuffle=True,
                                         seed=161803)
        coord, threads = lo_start(lo)
        rec.put(slice_epochs(slices, 1200))
        rec.run(slices)
        rec.run(lambda: stop(coord, threads))


class SliceInputProducerTest_testShorterTensor(Scenario):
    """TF does not check the sizes: the shorter tensor fails only at an index it lacks."""

    def tf(self, tf, rec):
        slices = tf.train.slice_input_producer([[1, 2, 3], [10, 20]], shuffle=False)
        _, coord, threads = tf_start(tf)
        for _ in range(4):
            rec.run(slices)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        slices = lo.slice_input_producer([[1, 2, 3], [10, 20]], shuffle=False)
        coord, threads = lo_start(lo)
        for _ in range(4):
            rec.run(slices)
        rec.run(lambda: stop(coord, threads))


class SliceInputProducerTest_testNoTensors(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.slice_input_producer([]) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.slice_input_producer([]) and None)


class SliceInputProducerTest_testRowsAndDtypes(Scenario):
    """Slices of a 2-D float64 array, Python floats (float32), bools and strings."""

    tensors = [np.arange(6.0).reshape(3, 2), [0.5, 1.5, 2.5], [True, False, True], ["x", "y", "z"]]

    def tf(self, tf, rec):
        slices = tf.train.slice_input_producer(self.tensors, num_epochs=1, shuffle=False)
        _, coord, threads = tf_start(tf)
        for _ in range(4):
            rec.run(slices)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        slices = lo.slice_input_producer(self.tensors, num_epochs=1, shuffle=False)
        coord, threads = lo_start(lo)
        for _ in range(4):
            rec.run(slices)
        rec.run(lambda: stop(coord, threads))


# ---------------------------------------------------------------- BatchTest


def gathered(fetch, batches, shuffled=False):
    """``batches`` batches of [counts, strings]: their sizes, the counts sorted, the strings seen,
    and when ``shuffled`` whether the order was scrambled (TF's check for shuffle_batch)."""
    fetched = [py(fetch()) for _ in range(batches)]
    counts = [count for batch in fetched for count in batch[0]]
    result = {"sizes": [len(batch[0]) for batch in fetched], "sorted counts": sorted(counts),
              "strings": sorted({s for batch in fetched for s in batch[1]})}
    if shuffled:
        deltas = [b - a for a, b in zip(counts, counts[1:])]
        result["scrambled"] = not all(d == deltas[0] for d in deltas)
    return result


def by_key(fetch):
    """A fetch of a dict batch {"c": counts, "S": strings} as the list [counts, strings]."""
    def fetch_list():
        batch = fetch()
        return [batch["c"], batch["S"]]
    return fetch_list


class BatchTest_testOneThread(Scenario):
    use_dict = False

    def tf(self, tf, rec):
        counter = tf_counter(tf, 30)
        if self.use_dict:
            batched = tf.train.batch({"c": counter, "S": "string"}, batch_size=10)
        else:
            batched = tf.train.batch([counter, "string"], batch_size=10)
        _, coord, threads = tf_start(tf)
        for _ in range(4):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 30)
        if self.use_dict:
            batched = lo.batch(lambda: {"c": counter(), "S": "string"}, batch_size=10)
        else:
            batched = lo.batch(lambda: [counter(), "string"], batch_size=10)
        coord, threads = lo_start(lo)
        for _ in range(4):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testOneThreadDict(BatchTest_testOneThread):
    use_dict = True


class BatchTest_testUnsignedDataTypes(Scenario):
    """TF's testUint32DataTypes and testUint64DataTypes."""

    cases = ["uint32", "uint64"]

    def tf(self, tf, rec):
        batched = tf.train.batch([tf.constant([0, 1, 2, 3, 4, 5], dtype=getattr(tf, self.case))], batch_size=2)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        import torch

        values = torch.tensor([0, 1, 2, 3, 4, 5], dtype=getattr(torch, self.case))
        batched = lo.batch(lambda: [values], batch_size=2)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testOneThreadDynamicPad(Scenario):
    """Strings padded with b"": the first example's list is empty, so it says nothing of its dtype."""

    def tf(self, tf, rec):
        counter = tf_counter(tf, 30)
        string = tf.tile(["string"], tf.cast(tf.stack([counter]), tf.int32))
        batched = tf.train.batch([counter, string], batch_size=10, dynamic_pad=True)
        _, coord, threads = tf_start(tf)
        for _ in range(4):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 30)

        def example():
            count = counter()
            return [count, ["string"] * int(count)]

        batched = lo.batch(example, batch_size=10, dynamic_pad=True)
        coord, threads = lo_start(lo)
        for _ in range(4):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testOneThreadEnqueueMany(Scenario):
    """TF1's statement order: inner batch, outer batch(inner, enqueue_many=True), then the runners."""

    def tf(self, tf, rec):
        pre_batched = tf.train.batch([tf_counter(tf, 30), "string"], batch_size=2)
        batched = tf.train.batch(pre_batched, enqueue_many=True, batch_size=10)
        _, coord, threads = tf_start(tf)
        for _ in range(4):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 30)
        pre_batched = lo.batch(lambda: [counter(), "string"], batch_size=2)
        batched = lo.batch(pre_batched, enqueue_many=True, batch_size=10)
        coord, threads = lo_start(lo)
        for _ in range(4):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testManyThreads(Scenario):
    smaller = False

    def tf(self, tf, rec):
        total = 35 if self.smaller else 30
        batched = tf.train.batch([tf_counter(tf, total), "string"], batch_size=10, num_threads=4,
                                 allow_smaller_final_batch=self.smaller)
        sess, coord, threads = tf_start(tf)
        rec.put(gathered(lambda: sess.run(batched), 4 if self.smaller else 3))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 35 if self.smaller else 30)
        batched = lo.batch(lambda: [counter(), "string"], batch_size=10, num_threads=4,
                           allow_smaller_final_batch=self.smaller)
        coord, threads = lo_start(lo)
        rec.put(gathered(batched, 4 if self.smaller else 3))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testManyThreadsSmallerBatch(BatchTest_testManyThreads):
    smaller = True


class BatchTest_testOneThreadSmallerBatch(Scenario):
    def tf(self, tf, rec):
        batched = tf.train.batch([tf_counter(tf, 35), "string"], batch_size=10, allow_smaller_final_batch=True)
        _, coord, threads = tf_start(tf)
        for _ in range(5):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 35)
        batched = lo.batch(lambda: [counter(), "string"], batch_size=10, allow_smaller_final_batch=True)
        coord, threads = lo_start(lo)
        for _ in range(5):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testSingleElementDict(Scenario):
    def tf(self, tf, rec):
        x = tf.train.batch({"c": [12, 12]}, batch_size=8)
        _, coord, threads = tf_start(tf)
        rec.run(x)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        x = lo.batch(lambda: {"c": [12, 12]}, batch_size=8)
        coord, threads = lo_start(lo)
        rec.run(x)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testBatchSizeLargerThanCapacity(Scenario):
    def tf(self, tf, rec):
        batched = tf.train.batch([tf_counter(tf, 7)], batch_size=5, capacity=2)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 7)
        batched = lo.batch(lambda: [counter()], batch_size=5, capacity=2)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


def counts_and_string_count(batch):
    """[counts, how many strings]: an empty list of bytes does not say it holds strings."""
    return [batch[0], len(batch[1])]


class BatchTest_testBatchSizeZero(Scenario):
    def tf(self, tf, rec):
        batched = tf.train.batch([tf_counter(tf, 3), "string"], batch_size=0)
        sess, coord, threads = tf_start(tf)
        rec.run(lambda: counts_and_string_count(sess.run(batched)))
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 3)
        batched = lo.batch(lambda: [counter(), "string"], batch_size=0)
        coord, threads = lo_start(lo)
        rec.run(lambda: counts_and_string_count(batched()))
        rec.run(lambda: stop(coord, threads))


class BatchTest_testNegativeBatchSize(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.batch([tf.constant(1)], batch_size=-1) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.batch(lambda: [1], batch_size=-1) and None)


class BatchTest_testZeroThreads(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.batch([tf.constant(1)], batch_size=2, num_threads=0) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.batch(lambda: [1], batch_size=2, num_threads=0) and None)


class BatchTest_testPythonValues(Scenario):
    """Python ints batch as int32, floats as float32, bools as bool, str as bytes, lists as vectors."""

    def tf(self, tf, rec):
        batched = tf.train.batch([1, 2.5, True, "s", [1, 2], [[0.5], [1.5]]], batch_size=2)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        batched = lo.batch(lambda: [1, 2.5, True, "s", [1, 2], [[0.5], [1.5]]], batch_size=2)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testNumpyValues(Scenario):
    """numpy values keep their dtype: float64 arrays, int64 and float32 scalars, byte strings."""

    values = [np.array([1.0, 2.0]), np.int64(3), np.float32(0.5), np.array([b"a", b"bc"])]

    def tf(self, tf, rec):
        batched = tf.train.batch(list(self.values), batch_size=3)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        batched = lo.batch(lambda: list(self.values), batch_size=3)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testShapesNotFullyDefined(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.batch([tf.constant([1, 2])], batch_size=2, shapes=[[None]]) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.batch(lambda: [[1, 2]], batch_size=2, shapes=[[None]]) and None)


class BatchTest_testShapeMismatchAtRunTime(Scenario):
    """An example whose shape is not the declared one: InvalidArgumentError when the runner
    enqueues it, reported to the coordinator; the consumer sees the input end."""

    def tf(self, tf, rec):
        values = tf.placeholder_with_default(tf.constant([1, 2, 3]), shape=[None])
        batched = tf.train.batch([values], batch_size=2, shapes=[[2]])
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        batched = lo.batch(lambda: [[1, 2, 3]], batch_size=2, shapes=[[2]])
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testDynamicPadNumbers(Scenario):
    """Numbers padded with 0; the first example is an empty list (int32 only from the second)."""

    def tf(self, tf, rec):
        counter = tf_counter(tf, 6)
        sevens = tf.tile([7], tf.cast(tf.stack([counter]), tf.int32))
        batched = tf.train.batch([counter, sevens], batch_size=3, dynamic_pad=True)
        _, coord, threads = tf_start(tf)
        for _ in range(3):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 6)

        def example():
            count = counter()
            return [count, [7] * int(count)]

        batched = lo.batch(example, batch_size=3, dynamic_pad=True)
        coord, threads = lo_start(lo)
        for _ in range(3):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testDynamicPadTwoDims(Scenario):
    shapes = None

    def tf(self, tf, rec):
        counter = tf_counter(tf, 4)
        size = tf.cast(counter, tf.int32)
        batched = tf.train.batch([tf.ones(tf.stack([size, size + 1]))], batch_size=2, dynamic_pad=True,
                                 shapes=self.shapes)
        _, coord, threads = tf_start(tf)
        for _ in range(3):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        import torch

        counter = Counter(lo, 4)

        def example():
            size = int(counter())
            return [torch.ones(size, size + 1)]

        batched = lo.batch(example, batch_size=2, dynamic_pad=True, shapes=self.shapes)
        coord, threads = lo_start(lo)
        for _ in range(3):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testDynamicPadWithShapes(BatchTest_testDynamicPadTwoDims):
    shapes = [[None, None]]


class BatchTest_testDynamicPadAlwaysEmpty(Scenario):
    differs = ("a batched component that is an empty list in every example has no dtype to learn from the op: "
               "loaders batches it as float32 (TF's dtype of []), where TF knows the graph's dtype")

    def tf(self, tf, rec):
        counter = tf_counter(tf, 2)
        nothing = tf.tile(["string"], tf.cast(tf.stack([counter * 0]), tf.int32))
        batched = tf.train.batch([counter, nothing], batch_size=2, dynamic_pad=True)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 2)
        batched = lo.batch(lambda: [counter(), []], batch_size=2, dynamic_pad=True)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testBlocksUntilStartQueueRunners(Scenario):
    def tf(self, tf, rec):
        batched = tf.train.batch([tf_counter(tf, 4), "string"], batch_size=2)
        rec.blocks(batched)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 4)
        batched = lo.batch(lambda: [counter(), "string"], batch_size=2)
        rec.blocks(batched)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testNotEnoughForABatch(Scenario):
    """The input ends with 3 examples for a batch of 5: OutOfRangeError, or the 3 with
    allow_smaller_final_batch."""

    cases = [False, True]

    def tf(self, tf, rec):
        batched = tf.train.batch([tf_counter(tf, 3)], batch_size=5, allow_smaller_final_batch=self.case)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 3)
        batched = lo.batch(lambda: [counter()], batch_size=5, allow_smaller_final_batch=self.case)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testFromStringInputProducer(Scenario):
    """The lecture's shape: a producer, an op that dequeues from it, a batch, then the runners."""

    def tf(self, tf, rec):
        queue = tf.train.string_input_producer([b"a", b"b", b"c"], num_epochs=2, shuffle=False)
        batched = tf.train.batch([queue.dequeue()], batch_size=4, allow_smaller_final_batch=True)
        _, coord, threads = tf_start(tf)
        for _ in range(3):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        queue = lo.string_input_producer([b"a", b"b", b"c"], num_epochs=2, shuffle=False)
        batched = lo.batch(lambda: [queue.dequeue()], batch_size=4, allow_smaller_final_batch=True)
        coord, threads = lo_start(lo)
        for _ in range(3):
            rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testEnqueueManyPythonLists(Scenario):
    """enqueue_many of Python lists: each call adds the rows 1, 2, 3 (and x, y, z)."""

    def tf(self, tf, rec):
        batched = tf.train.batch([[1, 2, 3], ["x", "y", "z"]], batch_size=2, enqueue_many=True)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        batched = lo.batch(lambda: [[1, 2, 3], ["x", "y", "z"]], batch_size=2, enqueue_many=True)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testErrorInTheOpReachesJoin(Scenario):
    """An example op failing at run time: the batch in progress ends (OutOfRangeError), join raises."""

    def tf(self, tf, rec):
        counter = tf_counter(tf, 10)
        check = tf.debugging.Assert(counter < 3, ["bad example"])
        with tf.control_dependencies([check]):
            counter = tf.identity(counter)
        batched = tf.train.batch([counter], batch_size=2)
        _, coord, threads = tf_start(tf)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 10)

        def example():
            count = counter()
            if not count < 3:
                raise lo.InvalidArgumentError("assertion failed: bad example")
            return [count]

        batched = lo.batch(example, batch_size=2)
        coord, threads = lo_start(lo)
        rec.run(batched)
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchTest_testNestedShuffleBatch(Scenario):
    """An outer batch reading a shuffle_batch with enqueue_many, built before the runners start."""

    def tf(self, tf, rec):
        inner = tf.train.shuffle_batch([tf_counter(tf, 20), "string"], batch_size=2, capacity=10,
                                       min_after_dequeue=4, seed=7)
        batched = tf.train.batch(inner, batch_size=10, enqueue_many=True)
        sess, coord, threads = tf_start(tf)
        rec.put(gathered(lambda: sess.run(batched), 2))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 20)
        inner = lo.shuffle_batch(lambda: [counter(), "string"], batch_size=2, capacity=10, min_after_dequeue=4, seed=7)
        batched = lo.batch(inner, batch_size=10, enqueue_many=True)
        coord, threads = lo_start(lo)
        rec.put(gathered(batched, 2))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


# ---------------------------------------------------------------- BatchJoinTest


def join_summary(fetch, batches, batch_size, final=0, padded=False):
    """TF's checks on [counts, labels] batches from an "a" thread (0, 1, ...) and a "b" thread
    (99): sizes, every b is 99, the a's keep their order, how many b's, how many batches mix."""
    all_a, a_lengths, seen_b, saw_both, b_ok = [], [], 0, 0, True
    sizes = []
    for index in range(batches + (1 if final else 0)):
        counts, labels = py(fetch())
        sizes.append(len(counts))
        if padded:
            which_b = [i for i, row in enumerate(labels) if row[0] == b"b"]
            b_ok &= all(labels[i] == [b"b"] * 99 for i in which_b)
            a_lengths += [sum(x == b"a" for x in row) for i, row in enumerate(labels) if i not in which_b]
        else:
            which_b = [i for i, label in enumerate(labels) if label == b"b"]
            b_ok &= all(labels[i] in (b"a", b"b") for i in range(len(labels)))
        which_a = [i for i in range(len(counts)) if i not in which_b]
        b_ok &= all(counts[i] == 99 for i in which_b)
        saw_both += bool(which_a and which_b)
        all_a += [counts[i] for i in which_a]
        seen_b += len(which_b)
    deltas = [b - a for a, b in zip(all_a, all_a[1:])]
    return {"sizes": sizes, "b are 99": b_ok, "a in order": all_a == sorted(all_a), "sorted a": sorted(all_a),
            "a lengths": a_lengths, "seen b": seen_b, "saw both more than once": saw_both > 1,
            "a scrambled": not all(d == deltas[0] for d in deltas)}


class BatchJoinTest_testTwoThreads(Scenario):
    """batch_join of an "a" thread (0..69) and a "b" thread (99, 90 times): TF's checks, the
    mixing left out (TF only logs it: thread scheduling decides)."""

    use_dict = False
    extra = 0
    dynamic_pad = False

    def summary(self, fetch):
        result = join_summary(fetch, (70 + 90 + 2 * self.extra) // 5, 5, self.extra, self.dynamic_pad)
        del result["saw both more than once"], result["a scrambled"]
        return result

    def tf(self, tf, rec):
        counter = tf_counter(tf, 70 + self.extra)
        ninety_nine = tf.train.limit_epochs(tf.constant(99, dtype=tf.int64), 90 + self.extra)
        a, b = "a", "b"
        if self.dynamic_pad:
            a = tf.tile(["a"], tf.cast(tf.stack([counter + 1]), tf.int32))
            b = tf.tile(["b"], tf.cast(tf.stack([ninety_nine]), tf.int32))
        inputs = [[counter, a], [ninety_nine, b]]
        if self.use_dict:
            inputs = [{"c": c, "S": s} for c, s in inputs]
        batched = tf.train.batch_join(inputs, batch_size=5, dynamic_pad=self.dynamic_pad,
                                      allow_smaller_final_batch=bool(self.extra))
        sess, coord, threads = tf_start(tf)
        fetch = (lambda: sess.run(batched))
        rec.put(self.summary(by_key(fetch) if self.use_dict else fetch))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter, ninety_nine = Counter(lo, 70 + self.extra), LimitEpochs(lo, 99, 90 + self.extra)

        def example(op, label, length):
            def make():
                count = op()
                value = [label] * length(count) if self.dynamic_pad else label
                return {"c": count, "S": value} if self.use_dict else [count, value]
            return make

        batched = lo.batch_join([example(counter, "a", lambda c: int(c) + 1), example(ninety_nine, "b", int)],
                                batch_size=5, dynamic_pad=self.dynamic_pad, allow_smaller_final_batch=bool(self.extra))
        coord, threads = lo_start(lo)
        rec.put(self.summary(by_key(batched) if self.use_dict else batched))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class BatchJoinTest_testTwoThreadsDict(BatchJoinTest_testTwoThreads):
    use_dict = True


class BatchJoinTest_testTwoThreadsDynamicPad(BatchJoinTest_testTwoThreads):
    dynamic_pad = True


class BatchJoinTest_testTwoThreadsSmallerBatch(BatchJoinTest_testTwoThreads):
    extra = 2


class BatchJoinTest_testTwoThreadsDynamicPadSmallerBatch(BatchJoinTest_testTwoThreads):
    dynamic_pad = True
    extra = 2


MISMATCHED = [{"c": 12, "s": 123, "S": "a"}, {"cool": -12, "s": 99, "S": "b"}]


class BatchJoinTest_testMismatchedDictKeys(Scenario):
    differs = ("batch_join/shuffle_batch_join of ops returning dicts with different keys: TF raises ValueError when "
               "the graph is built; an op's keys are known only when it runs, so loaders reports the ValueError "
               "through the Coordinator when the runner enqueues")

    def tf(self, tf, rec):
        rec.run(lambda: tf.train.batch_join(MISMATCHED, batch_size=8) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.batch_join([lambda: MISMATCHED[0], lambda: MISMATCHED[1]], batch_size=8) and None)


class BatchJoinTest_testSingleElementDict(Scenario):
    def tf(self, tf, rec):
        x = tf.train.batch_join([{"c": [12, 12]}], batch_size=8)
        _, coord, threads = tf_start(tf)
        rec.run(x)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        x = lo.batch_join([lambda: {"c": [12, 12]}], batch_size=8)
        coord, threads = lo_start(lo)
        rec.run(x)
        rec.run(lambda: stop(coord, threads))


class BatchJoinTest_testNoInputs(Scenario):
    cases = ["batch_join", "shuffle_batch_join"]

    def tf(self, tf, rec):
        extra = {"capacity": 10, "min_after_dequeue": 2} if self.case.startswith("shuffle") else {}
        rec.run(lambda: getattr(tf.train, self.case)([], batch_size=2, **extra) and None)

    def lo(self, lo, rec):
        extra = {"capacity": 10, "min_after_dequeue": 2} if self.case.startswith("shuffle") else {}
        rec.run(lambda: getattr(lo, self.case)([], batch_size=2, **extra) and None)


# ---------------------------------------------------------------- ShuffleBatchTest


class ShuffleBatchTest_testOneThread(Scenario):
    """Scrambled, but every count once: TF's checks (RandomShuffleQueue orders differ by design)."""

    use_dict = False
    extra = 0
    num_threads = 1
    seed = 141421

    def tf(self, tf, rec):
        counter = tf_counter(tf, 30 + self.extra)
        tensors = {"c": counter, "S": "string"} if self.use_dict else [counter, "string"]
        batched = tf.train.shuffle_batch(tensors, batch_size=10, capacity=32, min_after_dequeue=16, seed=self.seed,
                                         num_threads=self.num_threads, allow_smaller_final_batch=bool(self.extra))
        sess, coord, threads = tf_start(tf)
        fetch = (lambda: sess.run(batched))
        rec.put(gathered(by_key(fetch) if self.use_dict else fetch, 3 + bool(self.extra), shuffled=True))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 30 + self.extra)
        op = (lambda: {"c": counter(), "S": "string"}) if self.use_dict else (lambda: [counter(), "string"])
        batched = lo.shuffle_batch(op, batch_size=10, capacity=32, min_after_dequeue=16, seed=self.seed,
                                   num_threads=self.num_threads, allow_smaller_final_batch=bool(self.extra))
        coord, threads = lo_start(lo)
        rec.put(gathered(by_key(batched) if self.use_dict else batched, 3 + bool(self.extra), shuffled=True))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class ShuffleBatchTest_testOneThreadDict(ShuffleBatchTest_testOneThread):
    use_dict = True


class ShuffleBatchTest_testOneThreadSmallerBatch(ShuffleBatchTest_testOneThread):
    extra = 5


class ShuffleBatchTest_testManyThreads(ShuffleBatchTest_testOneThread):
    num_threads = 4
    seed = 173205


class ShuffleBatchTest_testManyThreadsSmallerBatch(ShuffleBatchTest_testManyThreads):
    extra = 5


class ShuffleBatchTest_testCapacityNotAboveMinAfterDequeue(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.train.shuffle_batch([tf.constant(1)], 2, capacity=10, min_after_dequeue=10) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.shuffle_batch(lambda: [1], 2, capacity=10, min_after_dequeue=10) and None)


class ShuffleBatchTest_testEnqueueMany(Scenario):
    def tf(self, tf, rec):
        inner = tf.train.batch([tf_counter(tf, 30), "string"], batch_size=5)
        batched = tf.train.shuffle_batch(inner, batch_size=10, capacity=20, min_after_dequeue=5, enqueue_many=True,
                                         seed=5)
        sess, coord, threads = tf_start(tf)
        rec.put(gathered(lambda: sess.run(batched), 3))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 30)
        inner = lo.batch(lambda: [counter(), "string"], batch_size=5)
        batched = lo.shuffle_batch(inner, batch_size=10, capacity=20, min_after_dequeue=5, enqueue_many=True, seed=5)
        coord, threads = lo_start(lo)
        rec.put(gathered(batched, 3))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class ShuffleBatchTest_testMinAfterDequeueAtEndOfInput(Scenario):
    """Once the input ends, batches come out below min_after_dequeue; the rest only with
    allow_smaller_final_batch."""

    cases = [False, True]

    def summary(self, fetch):
        sizes, counts = [], []
        for _ in range(3 if self.case else 2):
            batch = py(fetch())
            sizes.append(len(batch))
            counts += batch
        return {"sizes": sizes, "distinct": len(set(counts)) == len(counts), "in range": set(counts) <= set(range(5))}

    def tf(self, tf, rec):
        batched = tf.train.shuffle_batch([tf_counter(tf, 5)], batch_size=2, capacity=20, min_after_dequeue=10,
                                         allow_smaller_final_batch=self.case)
        sess, coord, threads = tf_start(tf)
        rec.put(self.summary(lambda: sess.run(batched)))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter = Counter(lo, 5)
        batched = lo.shuffle_batch(lambda: [counter()], batch_size=2, capacity=20, min_after_dequeue=10,
                                   allow_smaller_final_batch=self.case)
        coord, threads = lo_start(lo)
        rec.put(self.summary(batched))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


# ---------------------------------------------------------------- ShuffleBatchJoinTest


class ShuffleBatchJoinTest_testTwoThreads(Scenario):
    """shuffle_batch_join of an "a" thread (0..24) and a "b" thread (99, 35 times): TF's checks."""

    use_dict = False
    extra = 0

    def summary(self, fetch):
        result = join_summary(fetch, (25 + 35 + 2 * self.extra) // 5, 5, self.extra)
        del result["a in order"]
        return result

    def tf(self, tf, rec):
        counter = tf_counter(tf, 25 + self.extra)
        ninety_nine = tf.train.limit_epochs(tf.constant(99, dtype=tf.int64), 35 + self.extra)
        inputs = [[counter, "a"], [ninety_nine, "b"]]
        if self.use_dict:
            inputs = [{"c": c, "S": s} for c, s in inputs]
        batched = tf.train.shuffle_batch_join(inputs, batch_size=5, capacity=32, min_after_dequeue=16, seed=223607,
                                              allow_smaller_final_batch=bool(self.extra))
        sess, coord, threads = tf_start(tf)
        fetch = (lambda: sess.run(batched))
        rec.put(self.summary(by_key(fetch) if self.use_dict else fetch))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))

    def lo(self, lo, rec):
        counter, ninety_nine = Counter(lo, 25 + self.extra), LimitEpochs(lo, 99, 35 + self.extra)

        def example(op, label):
            if self.use_dict:
                return lambda: {"c": op(), "S": label}
            return lambda: [op(), label]

        batched = lo.shuffle_batch_join([example(counter, "a"), example(ninety_nine, "b")], batch_size=5, capacity=32,
                                        min_after_dequeue=16, seed=223607, allow_smaller_final_batch=bool(self.extra))
        coord, threads = lo_start(lo)
        rec.put(self.summary(by_key(batched) if self.use_dict else batched))
        rec.run(batched)
        rec.run(lambda: stop(coord, threads))


class ShuffleBatchJoinTest_testTwoThreadsDict(ShuffleBatchJoinTest_testTwoThreads):
    use_dict = True


class ShuffleBatchJoinTest_testTwoThreadsSmallerBatch(ShuffleBatchJoinTest_testTwoThreads):
    extra = 2


class ShuffleBatchJoinTest_testMismatchedDictKeys(Scenario):
    differs = BatchJoinTest_testMismatchedDictKeys.differs

    def tf(self, tf, rec):
        rec.run(lambda: tf.train.shuffle_batch_join(MISMATCHED, batch_size=8, capacity=32, min_after_dequeue=16,
                                                    seed=223607) and None)

    def lo(self, lo, rec):
        rec.run(lambda: lo.shuffle_batch_join([lambda: MISMATCHED[0], lambda: MISMATCHED[1]], batch_size=8, capacity=32,
                                              min_after_dequeue=16, seed=223607) and None)
