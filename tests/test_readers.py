"""Readers: TF's key formats, skip_header_lines, work units, read_up_to, FixedLength framing,
TFRecord, sharing one reader between threads, and a custom ReaderBase."""
from __future__ import annotations

import gzip
import threading

import pytest

import loaders
from loaders import (
    DataLossError, FixedLengthRecordReader, OutOfRangeError, ReaderBase, TextLineReader, WholeFileReader,
)


def filename_queue(*paths, num_epochs=1):
    """The lecture's filename queue, in order; closed after `num_epochs`."""
    queue = loaders.FIFOQueue(32, [loaders.string], shapes=[[]])
    for _ in range(num_epochs):
        for path in paths:
            queue.enqueue(str(path).encode())
    queue.close()
    return queue


def write(path, text):
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_lecture_heart_csv_key_and_value(tmp_path):
    heart = write(tmp_path / "heart.csv", "sbp,tobacco\n144,0.01\n118,0.08\n")
    reader = TextLineReader(skip_header_lines=1)
    key, value = reader.read(filename_queue(heart))
    assert key == f"{heart}:2".encode()  # the lecture prints data/heart.csv:2
    assert value == b"144,0.01"
    assert reader.read(filename_queue(heart))[0] == f"{heart}:3".encode()


def test_lines_across_files_then_out_of_range(tmp_path):
    first = write(tmp_path / "a.txt", "a1\r\na2\n\na4")  # CRLF stripped, empty line kept, no final newline
    second = write(tmp_path / "b.txt", "")
    third = write(tmp_path / "c.txt", "c1\n")
    queue = filename_queue(first, second, third)
    reader = TextLineReader()
    records = [reader.read(queue) for _ in range(5)]
    assert records == [
        (f"{first}:1".encode(), b"a1"), (f"{first}:2".encode(), b"a2"), (f"{first}:3".encode(), b""),
        (f"{first}:4".encode(), b"a4"), (f"{third}:1".encode(), b"c1"),
    ]
    with pytest.raises(OutOfRangeError):
        reader.read(queue)
    assert reader.num_records_produced() == 5
    assert reader.num_work_units_completed() == 3


def test_header_longer_than_file_skips_the_file(tmp_path):
    short = write(tmp_path / "short.csv", "only header\n")
    full = write(tmp_path / "full.csv", "h1\nh2\nrow\n")
    reader = TextLineReader(skip_header_lines=2)
    assert reader.read(filename_queue(short, full)) == (f"{full}:3".encode(), b"row")


def test_read_up_to_stops_at_file_end_like_tf(tmp_path):
    first = write(tmp_path / "a.txt", "1\n2\n3\n")
    second = write(tmp_path / "b.txt", "4\n5\n")
    queue = filename_queue(first, second)
    reader = TextLineReader()
    assert reader.read_up_to(queue, 2)[1] == [b"1", b"2"]
    keys, values = reader.read_up_to(queue, 5)
    assert values == [b"3"] and keys == [f"{first}:3".encode()]
    assert reader.read_up_to(queue, 5)[1] == [b"4", b"5"]
    with pytest.raises(OutOfRangeError):
        reader.read_up_to(queue, 5)


def test_reset_drops_the_file_in_progress(tmp_path):
    path = write(tmp_path / "a.txt", "1\n2\n")
    reader = TextLineReader()
    queue = filename_queue(path, path)
    reader.read(queue)
    reader.reset()
    assert reader.num_records_produced() == 0
    assert reader.read(queue) == (f"{path}:1".encode(), b"1")  # the second copy, from its start


def test_string_input_producer_epochs_then_out_of_range(tmp_path):
    paths = [write(tmp_path / f"{name}.txt", f"{name}\n") for name in "ab"]
    queue = loaders.string_input_producer([str(p) for p in paths], num_epochs=2, shuffle=False)
    reader = TextLineReader()
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    values = []
    with pytest.raises(OutOfRangeError):
        while True:
            values.append(reader.read(queue)[1])
    coord.request_stop()
    coord.join(threads)
    assert values == [b"a", b"b", b"a", b"b"]


def test_fixed_length_header_footer_and_keys(tmp_path):
    path = write(tmp_path / "data.bin", b"HDR" + b"aabbcc" + b"FT")
    reader = FixedLengthRecordReader(record_bytes=2, header_bytes=3, footer_bytes=2)
    queue = filename_queue(path)
    assert [reader.read(queue) for _ in range(3)] == [
        (f"{path}:0".encode(), b"aa"), (f"{path}:1".encode(), b"bb"), (f"{path}:2".encode(), b"cc"),
    ]
    with pytest.raises(OutOfRangeError):
        reader.read(queue)


def test_fixed_length_hop_bytes_gives_overlapping_records(tmp_path):
    path = write(tmp_path / "data.bin", b"abcdef")
    reader = FixedLengthRecordReader(record_bytes=3, hop_bytes=1, footer_bytes=1)
    assert reader.read_up_to(filename_queue(path), 10)[1] == [b"abc", b"bcd", b"cde"]
    gaps = FixedLengthRecordReader(record_bytes=2, hop_bytes=4)  # the tail "ef" is a record, "cd" a gap
    assert gaps.read_up_to(filename_queue(path), 10)[1] == [b"ab", b"ef"]


def test_fixed_length_partial_record_names_file_and_offset(tmp_path):
    path = write(tmp_path / "cifar.bin", b"x" * (3 * 4 + 2))
    reader = FixedLengthRecordReader(record_bytes=4)
    queue = filename_queue(path)
    assert len(reader.read_up_to(queue, 3)[1]) == 3
    with pytest.raises(DataLossError, match=r"cifar.bin: partial record 3 at byte offset 12: only 2 of its"):
        reader.read(queue)
    windows = FixedLengthRecordReader(record_bytes=3, hop_bytes=2)  # windows at 0 and 2; byte 5 in none
    queue = filename_queue(write(tmp_path / "w.bin", b"abcdef"))
    assert windows.read_up_to(queue, 10)[1] == [b"abc", b"cde"]  # the good records first
    with pytest.raises(DataLossError, match="partial record 2 at byte offset 4"):
        windows.read_up_to(queue, 10)
    with pytest.raises(DataLossError, match="shorter than header_bytes"):
        FixedLengthRecordReader(record_bytes=4, header_bytes=20).read(filename_queue(path))


def test_whole_file_reader_key_is_the_filename(tmp_path):
    image = write(tmp_path / "image.png", b"\x89PNG\x00\x01")
    assert WholeFileReader().read(filename_queue(image)) == (str(image).encode(), b"\x89PNG\x00\x01")


def _framed(payloads):
    from loaders.tfrecord.format import encode_record

    return b"".join(encode_record(payload) for payload in payloads)


@pytest.mark.parametrize("compression", [None, "GZIP"])
def test_tfrecord_reader_keys_are_byte_offsets(tmp_path, compression):
    data = _framed([b"one", b"three"])
    path = tmp_path / "data.tfrecord"
    path.write_bytes(gzip.compress(data) if compression else data)
    options = loaders.TFRecordOptions(compression) if compression else None
    keys, values = loaders.TFRecordReader(options).read_up_to(filename_queue(path), 10)
    assert values == [b"one", b"three"]
    assert keys == [f"{path}:0".encode(), f"{path}:{12 + 3 + 4}".encode()]


def test_tfrecord_reader_reports_corruption(tmp_path):
    data = bytearray(_framed([b"payload"]))
    data[14] ^= 0xFF
    path = write(tmp_path / "bad.tfrecord", bytes(data))
    with pytest.raises(DataLossError, match="bad.tfrecord"):
        loaders.TFRecordReader().read(filename_queue(path))


def test_threads_sharing_a_reader_read_each_record_once(tmp_path):
    paths = [write(tmp_path / f"f{n}.txt", "".join(f"{n}-{i}\n" for i in range(400))) for n in range(3)]
    queue = filename_queue(*paths)
    reader = TextLineReader()
    seen, lock = [], threading.Lock()

    def work():
        while True:
            try:
                keys, _ = reader.read_up_to(queue, 7) if len(seen) % 2 else ([reader.read(queue)[0]], None)
            except OutOfRangeError:
                return
            with lock:
                seen.extend(keys)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(f"{p}:{i}".encode() for p in paths for i in range(1, 401))
    assert reader.num_records_produced() == 1200


def test_custom_reader_in_a_few_lines(tmp_path):
    class ParagraphReader(ReaderBase):
        def _open(self, path):
            with open(path, "rb") as handle:
                for number, text in enumerate(handle.read().split(b"\n\n")):
                    yield self.key_name(path, number), text

    path = write(tmp_path / "doc.txt", "first\npara\n\nsecond")
    keys, values = ParagraphReader().read_up_to(filename_queue(path), 10)
    assert values == [b"first\npara", b"second"] and keys[1] == f"{path}:1".encode()


def test_queue_of_numbers_is_rejected(tmp_path):
    queue = loaders.FIFOQueue(4, [loaders.as_dtype("int32")], shapes=[[]])
    queue.enqueue(3)
    with pytest.raises(loaders.InvalidArgumentError, match="single string component"):
        TextLineReader().read(queue)


def test_missing_file_is_not_found_and_the_next_read_moves_on(tmp_path):
    present = write(tmp_path / "here.txt", "x\n")
    queue = filename_queue(tmp_path / "gone.txt", present)
    reader = TextLineReader()
    with pytest.raises(loaders.NotFoundError, match="gone.txt: no such file") as info:
        reader.read(queue)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, loaders.OpError)
    assert reader.read(queue) == (f"{present}:1".encode(), b"x")
    with pytest.raises(OutOfRangeError):
        reader.read(queue)
    assert reader.num_work_units_completed() == 1  # the missing file is not a completed work unit
    for make in (WholeFileReader, lambda: FixedLengthRecordReader(1), loaders.TFRecordReader):
        with pytest.raises(FileNotFoundError):
            make().read(filename_queue(tmp_path / "gone.bin"))


def test_whole_file_counts_a_file_when_its_record_is_returned(tmp_path):
    paths = [write(tmp_path / f"{n}.bin", n * 3) for n in "ab"]
    reader = WholeFileReader()
    queue = filename_queue(*paths)
    reader.read(queue)
    assert reader.num_work_units_completed() == 1 and reader.num_records_produced() == 1
    assert reader.read_up_to(queue, 5) == ([str(paths[1]).encode()], [b"bbb"])
    assert reader.num_work_units_completed() == 2


@pytest.mark.parametrize("encoding", ["GZIP", "ZLIB"])
def test_fixed_length_compressed_header_footer_and_hop(tmp_path, encoding):
    import zlib

    raw = b"HDR" + b"abcdefg" + b"FT"
    packed = gzip.compress(raw) if encoding == "GZIP" else zlib.compress(raw)
    path = write(tmp_path / "data.bin", packed)
    reader = FixedLengthRecordReader(record_bytes=3, header_bytes=3, footer_bytes=2, hop_bytes=2, encoding=encoding)
    keys, values = reader.read_up_to(filename_queue(path), 10)
    assert values == [b"abc", b"cde", b"efg"] and keys[2] == f"{path}:2".encode()
    cut = write(tmp_path / "cut.bin", packed[: len(packed) // 2])
    with pytest.raises(DataLossError, match="cut.bin"):
        FixedLengthRecordReader(record_bytes=3, encoding=encoding).read_up_to(filename_queue(cut), 10)
    with pytest.raises(loaders.InvalidArgumentError, match="encoding"):
        FixedLengthRecordReader(record_bytes=3, encoding="BZIP2")


def test_fixed_length_reads_files_larger_than_its_buffer(tmp_path):
    records = [bytes([i % 251]) * 3073 for i in range(60)]  # CIFAR-10 sized, 180 KB: several chunks
    path = write(tmp_path / "cifar.bin", b"".join(records))
    values = []
    queue = filename_queue(path)
    reader = FixedLengthRecordReader(record_bytes=3073)
    with pytest.raises(OutOfRangeError):
        while True:
            values.extend(reader.read_up_to(queue, 7)[1])
    assert values == records
    gaps = FixedLengthRecordReader(record_bytes=10, hop_bytes=100_000)  # a gap beyond the buffer
    assert gaps.read_up_to(filename_queue(path), 5)[1] == [records[0][:10], records[32][:10]]
