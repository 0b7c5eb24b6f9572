"""Scenarios from tensorflow/python/kernel_tests/io_ops/reader_ops_test.py, and edge cases around them.

Each scenario is one program, written once (``program(side, rec)``) and run on both sides
through a thin adapter: ``_TF`` builds the graph ops once and runs them in the session,
``_Loaders`` calls the same readers of ``loaders``; readers are made with the same class name
and arguments on both sides. Files are written by the program itself, identically on both
sides, in a temporary folder; keys are recorded relative to that folder.
"""
from __future__ import annotations

import gzip
import os
import tempfile
import threading
import zlib

from harness import Scenario

# Edgar Allan Poe's 'Eldorado', as in the TF test (its first lines)
_TEXT = b"Gaily bedight,\n    A gallant knight,\n    In sunshine and in shadow,\n    Had journeyed long,\n"


class _Files:
    """A temporary folder of test files; ``rel`` strips its path from recorded keys."""

    def __enter__(self) -> "_Files":
        self._folder = tempfile.TemporaryDirectory(prefix="oracle_readers_")
        self.path = self._folder.name
        self._prefix = os.fsencode(self.path + os.sep)
        return self

    def __exit__(self, *exc) -> None:
        self._folder.cleanup()

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.path, name)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    def name(self, name: str) -> str:
        return os.path.join(self.path, name)

    def rel(self, value):
        if hasattr(value, "tolist") and not isinstance(value, bytes):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            return [self.rel(item) for item in value]
        if isinstance(value, bytes) and value.startswith(self._prefix):
            return value[len(self._prefix):]
        return value


class _TF:
    """The TF side: readers and queues are graph objects, each step runs its op (built once)."""

    def __init__(self, tf, files: _Files) -> None:
        self.tf, self.files, self.sess, self._ops = tf, files, tf.get_default_session(), {}

    def _op(self, key, build):
        if key not in self._ops:
            self._ops[key] = build()
        return self._ops[key]

    def reader(self, kind: str, **kwargs):
        if "options" in kwargs:
            kwargs["options"] = self.tf.io.TFRecordOptions(compression_type=kwargs["options"])
        return getattr(self.tf, kind)(**kwargs)

    def queue(self):
        return self.tf.FIFOQueue(99, [self.tf.string], shapes=())

    def enqueue(self, queue, names) -> None:
        self.sess.run(queue.enqueue_many([list(names)]))

    def close(self, queue) -> None:
        self.sess.run(queue.close())

    def size(self, queue):
        op = self._op(("size", id(queue)), queue.size)
        return lambda: self.sess.run(op)

    def read(self, reader, queue):
        op = self._op(("read", id(reader), id(queue)), lambda: reader.read(queue))
        return lambda: self.files.rel(self.sess.run(op))

    def read_up_to(self, reader, queue, count: int):
        op = self._op(("up_to", id(reader), id(queue), count), lambda: reader.read_up_to(queue, count))
        return lambda: self.files.rel(self.sess.run(op))

    def produced(self, reader):
        op = self._op(("produced", id(reader)), reader.num_records_produced)
        return lambda: self.sess.run(op)

    def completed(self, reader):
        op = self._op(("completed", id(reader)), reader.num_work_units_completed)
        return lambda: self.sess.run(op)

    def reset(self, reader):
        op = self._op(("reset", id(reader)), reader.reset)
        return lambda: self.sess.run(op)

    def write_tfrecords(self, path: str, records, compression: str = "") -> None:
        options = self.tf.io.TFRecordOptions(compression_type=compression)
        with self.tf.io.TFRecordWriter(path, options=options) as writer:
            for record in records:
                writer.write(record)


class _Loaders:
    """The loaders side: the same program, each step a call."""

    def __init__(self, lo, files: _Files) -> None:
        self.lo, self.files = lo, files

    def reader(self, kind: str, **kwargs):
        if "options" in kwargs:
            kwargs["options"] = self.lo.TFRecordOptions(kwargs["options"])
        return getattr(self.lo, kind)(**kwargs)

    def queue(self):
        return self.lo.FIFOQueue(99, [self.lo.string], shapes=())

    def enqueue(self, queue, names) -> None:
        queue.enqueue_many([list(names)])

    def close(self, queue) -> None:
        queue.close()

    def size(self, queue):
        return queue.size

    def read(self, reader, queue):
        return lambda: self.files.rel(reader.read(queue))

    def read_up_to(self, reader, queue, count: int):
        return lambda: self.files.rel(reader.read_up_to(queue, count))

    def produced(self, reader):
        return reader.num_records_produced

    def completed(self, reader):
        return reader.num_work_units_completed

    def reset(self, reader):
        return reader.reset

    def write_tfrecords(self, path: str, records, compression: str = "") -> None:
        with self.lo.TFRecordWriter(path, self.lo.TFRecordOptions(compression)) as writer:
            for record in records:
                writer.write(record)


class _Program:
    """Mixin: ``tf`` and ``lo`` both run ``self.program(side, rec)`` with files of their own."""

    def tf(self, tf, rec):
        with _Files() as files:
            self.program(_TF(tf, files), rec)

    def lo(self, lo, rec):
        with _Files() as files:
            self.program(_Loaders(lo, files), rec)


def _filled(side, names):
    """A queue holding ``names``, closed."""
    queue = side.queue()
    side.enqueue(queue, names)
    side.close(queue)
    return queue


def _read_all(side, rec, reader, names, count, counters=False):
    """``count`` reads from a closed queue of ``names`` (one past the end shows OutOfRangeError)."""
    queue = _filled(side, names)
    step = side.read(reader, queue)
    for _ in range(count):
        rec.run(step)
        if counters:
            rec.run(side.completed(reader))
            rec.run(side.produced(reader))


# ---------------------------------------------------------------- TextLineReaderTest


def _text_files(side, crlf=False, num_files=2, num_lines=5):
    """TF's _CreateFiles: "f: l" lines; the last file has no newline after its last line."""
    names = []
    for i in range(num_files):
        lines = []
        for j in range(num_lines):
            lines.append(b"%d: %d" % (i, j))
            if j + 1 != num_lines or i == 0:
                lines.append(b"\r\n" if crlf else b"\n")
        names.append(side.files.write(f"text_line.{i}.txt", b"".join(lines)))
    return names


class testOneEpochLF(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("TextLineReader"), _text_files(side), 11)


class testOneEpochCRLF(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("TextLineReader"), _text_files(side, crlf=True), 11)


class testSkipHeaderLines(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("TextLineReader", skip_header_lines=1), _text_files(side), 9)


class testSkipHeaderLinesLongerThanFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("h1", b"h1\n"), side.files.write("h2", b"h1\nh2\n"),
                 side.files.write("h3", b"h1\nh2\nr3"), side.files.write("h4", b"")]
        _read_all(side, rec, side.reader("TextLineReader", skip_header_lines=2), names, 2, counters=True)


class testSkipHeaderLinesCRLF(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("crlf", b"head\r\nr2\r\nr3\r\n")]
        _read_all(side, rec, side.reader("TextLineReader", skip_header_lines=1), names, 3)


class testLoneCarriageReturnIsNoLineBreak(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("cr", b"a\rb\r\nc\n\r\nd\r")]
        _read_all(side, rec, side.reader("TextLineReader"), names, 5)


class testOneCarriageReturnStripped(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("crcr", b"x\r\r\ny"), side.files.write("two", b"\r\r")]
        _read_all(side, rec, side.reader("TextLineReader"), names, 4)


class testCarriageReturnAfterLastNewline(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("a", b"a\n\r"), side.files.write("b", b"\r"), side.files.write("c", b"c")]
        _read_all(side, rec, side.reader("TextLineReader"), names, 3, counters=True)


class testEmptyFilesAndEmptyLines(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("empty", b""), side.files.write("newline", b"\n"),
                 side.files.write("blank", b"a\n\nb\n\n"), side.files.write("empty2", b"")]
        _read_all(side, rec, side.reader("TextLineReader"), names, 6, counters=True)


class testNoTrailingNewline(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("TextLineReader"), [side.files.write("poem", _TEXT.rstrip(b"\n"))], 5)


class testBinaryBytesKept(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("bin", b"\x00\xff\xfe\n\xef\xbb\xbfbom\n\t tabs \t\n")]
        _read_all(side, rec, side.reader("TextLineReader"), names, 4)


class testCountersAcrossFiles(_Program, Scenario):
    def program(self, side, rec):
        reader = side.reader("TextLineReader")
        rec.run(side.completed(reader))
        rec.run(side.produced(reader))
        _read_all(side, rec, reader, _text_files(side, num_lines=2), 5, counters=True)


class testReadUpToStopsAtFileEnd(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("x1", b"1\n2\n3\n"), side.files.write("x2", b"4\n5\n")]
        reader = side.reader("TextLineReader")
        step = side.read_up_to(reader, _filled(side, names), 2)
        for _ in range(4):
            rec.run(step)
            rec.run(side.completed(reader))
            rec.run(side.produced(reader))


class testReadUpToLargerThanFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("x1", _TEXT), side.files.write("x2", b"4\n5\n")]
        reader = side.reader("TextLineReader", skip_header_lines=1)
        step = side.read_up_to(reader, _filled(side, names), 10)
        for _ in range(3):
            rec.run(step)


class testReadUpToThenRead(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("x1", b"1\n2\n3\n4\n")]
        reader = side.reader("TextLineReader")
        queue = _filled(side, names)
        rec.run(side.read_up_to(reader, queue, 3))
        rec.run(side.read(reader, queue))
        rec.run(side.read(reader, queue))
        rec.run(side.completed(reader))


class testMissingFileThenNextFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("k", b"1\n"), side.files.name("nope"), side.files.write("l", b"2\n")]
        _read_all(side, rec, side.reader("TextLineReader"), names, 4, counters=True)


class testReset(_Program, Scenario):
    """IdentityReaderTest.testReset, with one-line files X, Y, Z, K, L."""

    def program(self, side, rec):
        files = {name: side.files.write(name, name.encode() + b"\n") for name in "XYZKL"}
        reader = side.reader("TextLineReader")
        queue = side.queue()
        side.enqueue(queue, [files["X"], files["Y"], files["Z"]])
        read, size = side.read(reader, queue), side.size(queue)
        rec.run(read)
        rec.run(size)
        rec.run(side.produced(reader))
        rec.run(read)
        rec.run(side.completed(reader))
        rec.run(side.produced(reader))
        rec.run(side.reset(reader))
        rec.run(side.completed(reader))
        rec.run(side.produced(reader))
        rec.run(size)
        rec.run(read)
        side.enqueue(queue, [files["K"], files["L"]])
        rec.run(read)


class testResetMidFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("a", b"a1\na2\na3\n"), side.files.write("b", b"b1\n")]
        reader = side.reader("TextLineReader")
        queue = _filled(side, names)
        read = side.read(reader, queue)
        rec.run(read)
        rec.run(side.reset(reader))
        rec.run(read)
        rec.run(side.produced(reader))
        rec.run(read)


class testMultipleEpochs(_Program, Scenario):
    """IdentityReaderTest.testMultipleEpochs, the work units being files DD and EE."""

    def program(self, side, rec):
        names = [side.files.write("DD", b"DD"), side.files.write("EE", b"EE")]
        reader = side.reader("TextLineReader")
        queue = side.queue()
        read = side.read(reader, queue)
        for _ in range(3):
            side.enqueue(queue, names)
            rec.run(read)
            rec.run(read)
        side.close(queue)
        rec.run(read)
        rec.run(side.completed(reader))


class testQueueSizeShrinksAsFilesAreTaken(_Program, Scenario):
    """IdentityReaderTest.testOneEpoch: the queue's size as the reader takes files A, B, C."""

    def program(self, side, rec):
        names = [side.files.write(name, name.encode()) for name in "ABC"]
        reader = side.reader("TextLineReader")
        queue = side.queue()
        size = side.size(queue)
        rec.run(side.completed(reader))
        rec.run(size)
        side.enqueue(queue, names)
        side.close(queue)
        rec.run(size)
        for _ in range(3):
            rec.run(side.read(reader, queue))
            rec.run(size)
        rec.run(side.read(reader, queue))
        rec.run(side.completed(reader))
        rec.run(side.produced(reader))


class testNoDeadlockFromQueue(_Program, Scenario):
    """AsyncReaderTest: three readers wait on empty queues in threads, unblocked in reverse order."""

    def program(self, side, rec):
        waiting = []
        for _ in range(3):
            queue = side.queue()
            step = side.read(side.reader("TextLineReader"), queue)
            output = []
            thread = threading.Thread(target=lambda step=step, output=output: output.append(step()[1]))
            waiting.append((thread, queue, output))
        for thread, _, _ in waiting:
            thread.start()
        for i, (thread, queue, output) in enumerate(reversed(waiting)):
            side.enqueue(queue, [side.files.write(f"deadlock.{i}.txt", b"file-%d" % i)])
            thread.join(10)
            rec.put(output)


# ---------------------------------------------------------------- WholeFileReaderTest

_CONTENT = [b"One\na\nb\n", b"Two\nC\nD", b"Three x, y, z"]


def _whole_files(side):
    return [side.files.write(f"whole_file.{i}.txt", content) for i, content in enumerate(_CONTENT)]


class testWholeFileOneEpoch(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("WholeFileReader"), _whole_files(side), 4)


class testWholeFileInfiniteEpochs(_Program, Scenario):
    def program(self, side, rec):
        names = _whole_files(side)
        reader = side.reader("WholeFileReader")
        queue = side.queue()
        read = side.read(reader, queue)
        for reads in (2, 3, 2):
            side.enqueue(queue, names)
            for _ in range(reads):
                rec.run(read)


class testWholeFileCountsEachFileWhenRead(_Program, Scenario):
    def program(self, side, rec):
        names = _whole_files(side) + [side.files.write("empty", b"")]
        _read_all(side, rec, side.reader("WholeFileReader"), names, 5, counters=True)


class testWholeFileReadUpTo(_Program, Scenario):
    def program(self, side, rec):
        reader = side.reader("WholeFileReader")
        step = side.read_up_to(reader, _filled(side, _whole_files(side)), 2)
        for _ in range(4):
            rec.run(step)
            rec.run(side.completed(reader))


class testWholeFileMissingFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("k", b"1\n"), side.files.name("nope")]
        _read_all(side, rec, side.reader("WholeFileReader"), names, 2, counters=True)


class testWholeFileMissingFileThenNextFile(_Program, Scenario):
    differs = ("after a missing file TF's WholeFileReader raises NotFoundError on every later read; "
               "loaders, like TF's other readers, moves on to the next file")

    def program(self, side, rec):
        names = [side.files.name("nope"), side.files.write("l", b"2\n")]
        _read_all(side, rec, side.reader("WholeFileReader"), names, 3)


class testWholeFileReset(_Program, Scenario):
    def program(self, side, rec):
        names = _whole_files(side)
        reader = side.reader("WholeFileReader")
        queue = _filled(side, names)
        read = side.read(reader, queue)
        rec.run(read)
        rec.run(side.reset(reader))
        rec.run(side.completed(reader))
        rec.run(side.produced(reader))
        rec.run(read)
        rec.run(side.completed(reader))


# ---------------------------------------------------------------- FixedLengthRecordReaderTest

_HEADER, _RECORD, _FOOTER, _HOP = 5, 3, 2, 2


def _fixed_record(f, r):
    return str(f * 2 + r).encode() * _RECORD


def _fixed_files(side, num_records, gap_bytes, encoding=None):
    """TF's _CreateFiles (and its GZIP/ZLIB variants): header, records with gaps, footer."""
    names = []
    for i in range(2):
        data = b"H" * _HEADER
        for j in range(num_records):
            data += (b"G" * gap_bytes if j else b"") + _fixed_record(i, j)
        data += b"F" * _FOOTER
        names.append(side.files.write(f"fixed_length_record.{i}.txt", _compress(data, encoding)))
    return names


def _overlapped_files(side, num_overlapped, encoding=None):
    """TF's _CreateOverlappedRecordFiles: the digits 0, 1, 2, ... (first digit of each)."""
    names = []
    for i in range(2):
        body = "".join(str(k)[0] for k in range(_RECORD + _HOP * (num_overlapped - 1))) if num_overlapped else ""
        data = b"H" * _HEADER + body.encode() + b"F" * _FOOTER
        names.append(side.files.write(f"fixed_length_overlapped_record.{i}.txt", _compress(data, encoding)))
    return names


def _compress(data, encoding):
    if encoding == "GZIP":
        return gzip.compress(data)
    if encoding == "ZLIB":
        return zlib.compress(data)
    return data


def _fixed_reader(side, hop_bytes, encoding):
    return side.reader("FixedLengthRecordReader", header_bytes=_HEADER, record_bytes=_RECORD,
                       footer_bytes=_FOOTER, hop_bytes=hop_bytes, encoding=encoding)


class _OneEpoch(_Program):
    """TF's _TestOneEpoch for every (num_records, gap_bytes) of its loops."""

    encoding = None
    cases = [(0, 0), (0, 1), (7, 0), (7, 1)]

    def program(self, side, rec):
        num_records, gap_bytes = self.case
        hop = 0 if gap_bytes == 0 else _RECORD + gap_bytes
        names = _fixed_files(side, num_records, gap_bytes, self.encoding)
        _read_all(side, rec, _fixed_reader(side, hop, self.encoding), names, 2 * num_records + 1)


class _OneEpochWithHopBytes(_Program):
    """TF's _TestOneEpochWithHopBytes: overlapping records, hop_bytes=2."""

    encoding = None
    cases = [0, 2]

    def program(self, side, rec):
        names = _overlapped_files(side, self.case, self.encoding)
        _read_all(side, rec, _fixed_reader(side, _HOP, self.encoding), names, 2 * self.case + 1)


class testFixedLengthOneEpoch(_OneEpoch, Scenario):
    pass


class testGzipOneEpoch(_OneEpoch, Scenario):
    encoding = "GZIP"


class testZlibOneEpoch(_OneEpoch, Scenario):
    encoding = "ZLIB"


class testOneEpochWithHopBytes(_OneEpochWithHopBytes, Scenario):
    pass


class testGzipOneEpochWithHopBytes(_OneEpochWithHopBytes, Scenario):
    encoding = "GZIP"


class testZlibOneEpochWithHopBytes(_OneEpochWithHopBytes, Scenario):
    encoding = "ZLIB"


class testFixedLengthReadUpTo(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("z1", b"12345"), side.files.write("z2", b"67")]
        reader = side.reader("FixedLengthRecordReader", record_bytes=1)
        step = side.read_up_to(reader, _filled(side, names), 2)
        for _ in range(5):
            rec.run(step)
            rec.run(side.completed(reader))
            rec.run(side.produced(reader))


class testFixedLengthGapsLargerThanRecords(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("s", b"abcdef"), side.files.write("t", b"abcdefg")]
        _read_all(side, rec, side.reader("FixedLengthRecordReader", record_bytes=2, hop_bytes=4), names, 5)


class testFixedLengthHeaderAndFooterOnly(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("hf", b"hhfff"), side.files.write("q", b"hhabcdfff")]
        reader = side.reader("FixedLengthRecordReader", record_bytes=4, header_bytes=2, footer_bytes=3)
        _read_all(side, rec, reader, names, 2, counters=True)


class testFixedLengthMissingFileThenNextFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.name("nope"), side.files.write("l", b"2\n")]
        _read_all(side, rec, side.reader("FixedLengthRecordReader", record_bytes=1), names, 4, counters=True)


class testFixedLengthCorruptGzip(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("bad", b"not gzip at all")]
        _read_all(side, rec, side.reader("FixedLengthRecordReader", record_bytes=2, encoding="GZIP"), names, 1)


class testFixedLengthConcatenatedGzipMembers(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("two", gzip.compress(b"Haabb") + gzip.compress(b"ccF"))]
        reader = side.reader("FixedLengthRecordReader", record_bytes=2, header_bytes=1, footer_bytes=1,
                             encoding="GZIP")
        _read_all(side, rec, reader, names, 4)


class testFixedLengthPartialRecord(_Program, Scenario):
    differs = ("bytes before the footer that no whole record holds are a DataLossError naming the file "
               "and offset in loaders; TF drops them silently")

    def program(self, side, rec):
        names = [side.files.write("p", b"x" * 14), side.files.write("q", b"abcd")]
        _read_all(side, rec, side.reader("FixedLengthRecordReader", record_bytes=4), names, 5)


class testFixedLengthFileShorterThanHeader(_Program, Scenario):
    differs = ("a file shorter than header_bytes + footer_bytes is a DataLossError in loaders; TF skips it, "
               "or ends the input with OutOfRangeError when it is shorter than the header alone")

    def program(self, side, rec):
        names = [side.files.write("short", b"x" * 14), side.files.write("q", b"abcd" * 6)]
        _read_all(side, rec, side.reader("FixedLengthRecordReader", record_bytes=4, header_bytes=20), names, 2)


# ---------------------------------------------------------------- TFRecordReaderTest


def _tfrecord_files(side, compression=""):
    """TF's TFCompressionTestCase._CreateFiles: 2 files of 7 records, "Record r of file f"."""
    names = []
    for i in range(2):
        name = side.files.name(f"tfrecord.{i}.txt")
        side.write_tfrecords(name, [b"Record %d of file %d" % (j, i) for j in range(7)], compression)
        names.append(name)
    return names


class testTFRecordOneEpoch(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("TFRecordReader"), _tfrecord_files(side), 15)


class testTFRecordReadUpTo(_Program, Scenario):
    def program(self, side, rec):
        reader = side.reader("TFRecordReader")
        step = side.read_up_to(reader, _filled(side, _tfrecord_files(side)), 3)
        for _ in range(7):
            rec.run(step)


class testReadZlibFiles(_Program, Scenario):
    def program(self, side, rec):
        names = _tfrecord_files(side, "ZLIB")
        _read_all(side, rec, side.reader("TFRecordReader", options="ZLIB"), names, 15)


class testReadGzipFiles(_Program, Scenario):
    def program(self, side, rec):
        names = _tfrecord_files(side, "GZIP")
        _read_all(side, rec, side.reader("TFRecordReader", options="GZIP"), names, 15)


class testTFRecordMissingFile(_Program, Scenario):
    def program(self, side, rec):
        _read_all(side, rec, side.reader("TFRecordReader"), [side.files.name("nope")], 1, counters=True)


class testTFRecordEmptyFile(_Program, Scenario):
    def program(self, side, rec):
        names = [side.files.write("empty.tfrecord", b"")] + _tfrecord_files(side)[:1]
        _read_all(side, rec, side.reader("TFRecordReader"), names, 2, counters=True)
